//! The calls to Zoho's token endpoint, `POST {accounts}/oauth/v2/token`, and
//! how their answers are read.

use serde::Deserialize;

use super::AuthError;
use crate::token::OAuthToken;

/// Zoho's access token lifetime, for an answer that names none.
const DEFAULT_LIFETIME_SECS: i64 = 3600;

/// A token Zoho issued.
#[derive(Clone)]
pub(super) struct Issued {
    pub(super) access_token: String,
    /// How long the access token lasts, in milliseconds (the caller adds
    /// it to its clock's now).
    pub(super) lifetime_ms: i64,
    pub(super) api_domain: Option<String>,
    /// Only a grant exchange returns one.
    pub(super) refresh_token: Option<String>,
}

/// Zoho's answer: a token, or an error, whatever the HTTP status.
#[derive(Deserialize)]
struct Answer {
    access_token: Option<String>,
    /// Seconds (very old answers gave milliseconds here, with seconds in
    /// `expires_in_sec`, which then wins).
    expires_in: Option<i64>,
    expires_in_sec: Option<i64>,
    api_domain: Option<String>,
    refresh_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Which request was made, for errors.
#[derive(Clone, Copy)]
pub(super) enum Request {
    Refresh,
    Grant,
}

impl Request {
    /// `refresh` or `grant exchange`, as errors name it.
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Refresh => "refresh",
            Self::Grant => "grant exchange",
        }
    }
}

/// Scheme, host and port of `url`: what errors show of it.
pub(super) fn origin(url: &reqwest::Url) -> String {
    url.origin().ascii_serialization()
}

/// Zoho's error code as an error shows it: codes are short words; anything
/// else (which could echo a request value) is not shown.
fn safe_code(code: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || " _.-".contains(c);
    if !code.is_empty() && code.len() <= 64 && code.chars().all(plain) {
        code.to_owned()
    } else {
        "(an unrecognised error code)".to_owned()
    }
}

/// Whether Zoho's error is its rate limit.
fn is_throttle(code: &str, description: Option<&str>) -> bool {
    code.eq_ignore_ascii_case("Access Denied")
        || description.is_some_and(|d| d.to_ascii_lowercase().contains("too many requests"))
}

/// The error of a Zoho error answer `code`, for token `id`.
pub(super) fn zoho_error(
    id: &str,
    request: Request,
    code: &str,
    description: Option<&str>,
) -> AuthError {
    if is_throttle(code, description) {
        throttled(id, request)
    } else {
        AuthError::Rejected {
            id: id.to_owned(),
            request: request.name(),
            error: safe_code(code),
        }
    }
}

/// Zoho's rate limit on `request` for token `id`.
pub(super) fn throttled(id: &str, request: Request) -> AuthError {
    AuthError::Throttled {
        id: id.to_owned(),
        request: request.name(),
    }
}

fn transport(url: &reqwest::Url, error: &reqwest::Error) -> AuthError {
    // Without the URL (shown once, as the origin) and never the request.
    let error_without_url = error.to_string();
    let mut reason = error_without_url;
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    AuthError::Transport {
        url: origin(url),
        reason,
        timeout: error.is_timeout(),
    }
}

/// Posts `form` to `endpoint` and reads Zoho's answer.
async fn post(
    http: &reqwest::Client,
    endpoint: &reqwest::Url,
    id: &str,
    request: Request,
    form: &[(&str, &str)],
) -> Result<Issued, AuthError> {
    let response = http
        .post(endpoint.clone())
        .form(form)
        .send()
        .await
        .map_err(|e| transport(endpoint, &e.without_url()))?;
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .map_err(|e| transport(endpoint, &e.without_url()))?;
    let unexpected = |reason: &str| AuthError::UnexpectedResponse {
        url: origin(endpoint),
        status,
        reason: reason.to_owned(),
    };
    let Ok(answer) = serde_json::from_slice::<Answer>(&body) else {
        if status == 429 {
            return Err(zoho_error(id, request, "Access Denied", None));
        }
        return Err(unexpected("the body is not a JSON token answer"));
    };
    if let Some(code) = answer.error.as_deref() {
        return Err(zoho_error(
            id,
            request,
            code,
            answer.error_description.as_deref(),
        ));
    }
    if status == 429 {
        return Err(zoho_error(id, request, "Access Denied", None));
    }
    let Some(access_token) = answer.access_token.filter(|a| !a.is_empty()) else {
        return Err(unexpected("no access_token and no error"));
    };
    if !(200..300).contains(&status) {
        return Err(unexpected("a token with an error status"));
    }
    let lifetime = answer
        .expires_in_sec
        .or(answer.expires_in)
        .filter(|s| *s > 0)
        .unwrap_or(DEFAULT_LIFETIME_SECS);
    Ok(Issued {
        access_token,
        lifetime_ms: lifetime.saturating_mul(1000),
        api_domain: answer.api_domain.filter(|d| !d.is_empty()),
        refresh_token: answer.refresh_token.filter(|r| !r.is_empty()),
    })
}

/// A new access token for `token`'s refresh token.
pub(super) async fn refresh(
    http: &reqwest::Client,
    endpoint: &reqwest::Url,
    id: &str,
    token: &OAuthToken,
) -> Result<Issued, AuthError> {
    let field = |value: &Option<String>, name: &str| {
        value
            .as_deref()
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| {
                AuthError::invalid_input(format!("token {id} has no {name} to refresh with"))
            })
    };
    let client_id = field(&token.client_id, "client_id")?;
    let client_secret = field(&token.client_secret, "client_secret")?;
    let refresh_token = field(&token.refresh_token, "refresh_token")?;
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", client_id.as_str()),
        ("client_secret", client_secret.as_str()),
        ("refresh_token", refresh_token.as_str()),
    ];
    post(http, endpoint, id, Request::Refresh, &form).await
}

/// The tokens Zoho issues for `token`'s grant token.
pub(super) async fn exchange(
    http: &reqwest::Client,
    endpoint: &reqwest::Url,
    token: &OAuthToken,
    client_id: &str,
    client_secret: &str,
    grant: &str,
) -> Result<Issued, AuthError> {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("client_id", client_id),
        ("client_secret", client_secret),
        ("code", grant),
    ];
    if let Some(redirect) = token.redirect_url.as_deref().filter(|r| !r.is_empty()) {
        form.push(("redirect_uri", redirect));
    }
    post(http, endpoint, "(new)", Request::Grant, &form).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zoho_errors_are_classified() {
        assert!(matches!(
            zoho_error("a", Request::Refresh, "invalid_code", None),
            AuthError::Rejected { error, .. } if error == "invalid_code"
        ));
        assert!(matches!(
            zoho_error(
                "a",
                Request::Refresh,
                "Access Denied",
                Some(
                    "You have made too many requests continuously. Please try again after some time."
                )
            ),
            AuthError::Throttled { .. }
        ));
        assert!(matches!(
            zoho_error("a", Request::Refresh, "x", Some("Too many requests")),
            AuthError::Throttled { .. }
        ));
        let leaky = zoho_error("a", Request::Grant, "bad {1000.secret-refresh}", None);
        assert!(!leaky.to_string().contains("secret-refresh"), "{leaky}");
    }
}
