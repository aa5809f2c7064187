//! `list`: the stored tokens without their secret values, as a table or
//! as JSON, with each access token's expiry as a relative time.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use zoho_token_store::{OAuthToken, SecretsManagerStore, TokenStore};

use crate::progress;

/// Runs `list`.
pub(crate) async fn run(store: &SecretsManagerStore, json: bool) -> anyhow::Result<()> {
    let spinner = progress::spinner("reading tokens");
    let mut tokens = store
        .get_tokens()
        .await
        .context("cannot read the stored tokens")?;
    spinner.finish_and_clear();
    tokens.sort_by(|a, b| (&a.user_name, &a.id).cmp(&(&b.user_name, &b.id)));
    if json {
        println!("{}", to_json(&tokens));
    } else {
        print!("{}", table(&tokens, now_millis()));
    }
    Ok(())
}

/// The time now, Unix epoch milliseconds.
pub(crate) fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The JSON array of `list --json`: for each token, exactly `id`,
/// `user_name`, `client_id`, `api_domain` and `expiry_time` (Unix ms);
/// absent values are `null`.
fn to_json(tokens: &[OAuthToken]) -> String {
    let items: Vec<serde_json::Value> = tokens
        .iter()
        .map(|t| {
            serde_json::json!({
                "id": t.id,
                "user_name": t.user_name,
                "client_id": t.client_id,
                "api_domain": t.api_domain,
                "expiry_time": t.expiry_time,
            })
        })
        .collect();
    serde_json::Value::Array(items).to_string()
}

/// The table `list` prints: a header line, then one line per token.
fn table(tokens: &[OAuthToken], now: i64) -> String {
    let rows: Vec<[String; 5]> = tokens
        .iter()
        .map(|t| {
            let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
            [
                show(&t.id),
                show(&t.user_name),
                show(&t.client_id),
                show(&t.api_domain),
                relative_expiry(t.expiry_time, now),
            ]
        })
        .collect();
    let header = ["ID", "USER", "CLIENT ID", "API DOMAIN", "ACCESS TOKEN"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out.push_str(&format!("{} token(s)\n", tokens.len()));
    out
}

/// When an access token expires, relative to `now` (both Unix ms):
/// `expired 3 h ago`, `in 42 min`, `no expiry`.
pub(crate) fn relative_expiry(expiry: Option<i64>, now: i64) -> String {
    let Some(expiry) = expiry else {
        return "no expiry".into();
    };
    let span = duration_words(expiry.abs_diff(now) / 1000);
    if expiry <= now {
        format!("expired {span} ago")
    } else {
        format!("in {span}")
    }
}

/// `secs` in the largest unit that keeps it a whole number above zero.
fn duration_words(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3_600 => format!("{} min", secs / 60),
        3_600..172_800 => format!("{} h", secs / 3_600),
        _ => format!("{} d", secs / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times() {
        let now = 1_800_000_000_000;
        assert_eq!(
            relative_expiry(Some(now - 3 * 3_600_000 - 5), now),
            "expired 3 h ago"
        );
        assert_eq!(
            relative_expiry(Some(now + 42 * 60_000 + 10), now),
            "in 42 min"
        );
        assert_eq!(relative_expiry(Some(now + 5_000), now), "in 5 s");
        assert_eq!(
            relative_expiry(Some(now - 3 * 86_400_000), now),
            "expired 3 d ago"
        );
        assert_eq!(relative_expiry(None, now), "no expiry");
    }

    #[test]
    fn json_has_the_five_fields_and_no_secret() {
        let token = OAuthToken {
            api_domain: Some("https://www.zohoapis.eu".into()),
            access_token: Some("a-secret".into()),
            ..OAuthToken::from_refresh_token("1000.C", "c-secret", "r-secret")
                .with_user_name("u@x")
                .with_id("1")
        };
        let json = to_json(std::slice::from_ref(&token));
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let object = value[0].as_object().unwrap();
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["api_domain", "client_id", "expiry_time", "id", "user_name"]
        );
        assert_eq!(object["expiry_time"], serde_json::Value::Null);
        let shown = format!("{json}{}", table(&[token], 0));
        assert!(!shown.contains("secret"), "{shown}");
    }
}
