//! [`OAuthToken`], its redacting `Debug`, and the JSON codec of a stored token
//! (the layout is documented on [`encode_token`]).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::StoreError;

/// The largest encoded token a store accepts, in bytes.
///
/// This is the Secrets Manager limit on a secret value (65,536 bytes); every
/// backend enforces it so that a token accepted by one store is accepted by all.
pub const MAX_TOKEN_BYTES: usize = 65_536;

/// The longest user name a store accepts, in bytes (UTF-8).
///
/// Longer than any email address (at most 320 characters of ASCII). Stores
/// that index user names (such as `SecretsManagerStore`, whose index secrets
/// are limited in size) need a bound; every store enforces this one so that
/// a token accepted by one store is accepted by all.
pub const MAX_USER_NAME_BYTES: usize = 320;

/// A Zoho CRM OAuth token, as the Zoho SDKs' `TokenStore` interface stores it.
///
/// Every field is optional, as in the Zoho SDKs: a *query* token sets only the
/// fields to match on (see [`LookupKey`](crate::LookupKey)), a *stored* token
/// carries everything known about one grant.
///
/// `Debug` shows which secret fields are set but never their values:
///
/// ```
/// use zoho_token_store::OAuthToken;
///
/// let token = OAuthToken::from_refresh_token("1000.CLIENT", "s3cr3t", "1000.r3fr3sh");
/// let shown = format!("{token:?}");
/// assert!(shown.contains("refresh_token: Some(<redacted>)"));
/// assert!(!shown.contains("s3cr3t") && !shown.contains("r3fr3sh"));
/// ```
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthToken {
    /// The store's id of this token: 1 to 64 characters of `A-Z a-z 0-9 _ . @ + = -`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The CRM user's name (Zoho's `UserSignature`, usually an email address),
    /// at most [`MAX_USER_NAME_BYTES`] bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// The OAuth client id from the Zoho API console.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The OAuth client secret (redacted in `Debug`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// The long-lived refresh token (redacted in `Debug`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The short-lived access token (redacted in `Debug`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// The one-time grant token (redacted in `Debug`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_token: Option<String>,
    /// When the access token expires: Unix epoch milliseconds (Zoho's `expires_in`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "deserialize_expiry_time"
    )]
    pub expiry_time: Option<i64>,
    /// The redirect URL registered with the OAuth client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_url: Option<String>,
    /// The API domain Zoho returned with the token, e.g. `https://www.zohoapis.eu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_domain: Option<String>,
}

impl OAuthToken {
    /// Every field's name, as the JSON encoding ([`encode_token`]) and the
    /// Python and Node packages' tokens name it, in declaration order.
    pub const FIELDS: [&'static str; 10] = [
        "id",
        "user_name",
        "client_id",
        "client_secret",
        "refresh_token",
        "access_token",
        "grant_token",
        "expiry_time",
        "redirect_url",
        "api_domain",
    ];

    /// The token `fields` describes: JSON values by field name (`null` for
    /// an absent field), each read as [`decode_token`] reads it (an
    /// `expiry_time` as a whole number or a numeric string). For a binding
    /// that builds a token from a dict or an object, so that it lists no
    /// field itself.
    ///
    /// A name not in [`FIELDS`](Self::FIELDS), or a value of the wrong
    /// type, is [`StoreError::InvalidInput`] that names the field, never its
    /// value.
    ///
    /// ```
    /// use zoho_token_store::OAuthToken;
    /// use serde_json::json;
    ///
    /// let fields = json!({"user_name": "me@example.com", "expiry_time": 1_900_000_000_000_i64});
    /// let token = OAuthToken::from_fields(fields.as_object().unwrap().clone()).unwrap();
    /// assert_eq!(token.expiry_time, Some(1_900_000_000_000));
    /// let wrong = json!({"refresh_token": 1000});
    /// assert!(OAuthToken::from_fields(wrong.as_object().unwrap().clone()).is_err());
    /// ```
    pub fn from_fields(
        fields: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Self, StoreError> {
        for (name, value) in &fields {
            if !Self::FIELDS.contains(&name.as_str()) {
                let shown: String = name.chars().take(64).collect();
                return Err(StoreError::invalid_input(format!(
                    "unknown token field {shown:?}"
                )));
            }
            if !Self::takes(name, value.clone()) {
                let wanted = match (Self::takes(name, "x".into()), Self::takes(name, 0.into())) {
                    (true, false) => "a string",
                    (false, true) => "a whole number",
                    _ => "another type",
                };
                return Err(StoreError::invalid_input(format!(
                    "token field {name} must be {wanted} or absent"
                )));
            }
        }
        serde_json::from_value(serde_json::Value::Object(fields))
            .map_err(|_| StoreError::invalid_input("the token's fields do not make a token"))
    }

    /// Whether field `name` of a token can hold `value`.
    fn takes(name: &str, value: serde_json::Value) -> bool {
        let mut one = serde_json::Map::new();
        one.insert(name.to_owned(), value);
        serde_json::from_value::<Self>(serde_json::Value::Object(one)).is_ok()
    }

    /// A token for a client that already holds a refresh token.
    pub fn from_refresh_token(
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        refresh_token: impl Into<String>,
    ) -> Self {
        Self {
            client_id: Some(client_id.into()),
            client_secret: Some(client_secret.into()),
            refresh_token: Some(refresh_token.into()),
            ..Self::default()
        }
    }

    /// A token for a client that holds a one-time grant token (from the Zoho API console).
    pub fn from_grant_token(
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        grant_token: impl Into<String>,
    ) -> Self {
        Self {
            client_id: Some(client_id.into()),
            client_secret: Some(client_secret.into()),
            grant_token: Some(grant_token.into()),
            ..Self::default()
        }
    }

    /// A query token that matches the stored token of one CRM user.
    pub fn for_user(user_name: impl Into<String>) -> Self {
        Self {
            user_name: Some(user_name.into()),
            ..Self::default()
        }
    }

    /// Sets the user name (builder style).
    pub fn with_user_name(mut self, user_name: impl Into<String>) -> Self {
        self.user_name = Some(user_name.into());
        self
    }

    /// Sets the id (builder style).
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Whether the access token is expired (or has no expiry) at `now_millis`.
    pub fn is_expired_at(&self, now_millis: i64) -> bool {
        self.expiry_time.is_none_or(|expiry| expiry <= now_millis)
    }

    /// Whether this token carries any of refresh, grant or access token, the
    /// least a new stored token needs.
    pub fn has_credential(&self) -> bool {
        [&self.refresh_token, &self.grant_token, &self.access_token]
            .into_iter()
            .any(is_set)
    }

    /// This token with every field it leaves unset filled from `stored`.
    ///
    /// This is Zoho's merge: `find_token` answers with the stored token
    /// overlaid by the query's fields, and `save_token` keeps stored fields
    /// the new token leaves empty.
    pub fn merged_over(&self, stored: &Self) -> Self {
        fn pick<T: Clone>(ours: &Option<T>, theirs: &Option<T>) -> Option<T> {
            ours.as_ref().or(theirs.as_ref()).cloned()
        }
        Self {
            id: pick(&self.id, &stored.id),
            user_name: pick(&self.user_name, &stored.user_name),
            client_id: pick(&self.client_id, &stored.client_id),
            client_secret: pick(&self.client_secret, &stored.client_secret),
            refresh_token: pick(&self.refresh_token, &stored.refresh_token),
            access_token: pick(&self.access_token, &stored.access_token),
            grant_token: pick(&self.grant_token, &stored.grant_token),
            expiry_time: self.expiry_time.or(stored.expiry_time),
            redirect_url: pick(&self.redirect_url, &stored.redirect_url),
            api_domain: pick(&self.api_domain, &stored.api_domain),
        }
    }

    /// The values `Debug`, logs and errors must never show.
    #[cfg(test)]
    pub(crate) fn secret_values(&self) -> impl Iterator<Item = &str> {
        [
            &self.client_secret,
            &self.refresh_token,
            &self.access_token,
            &self.grant_token,
        ]
        .into_iter()
        .filter_map(|field| field.as_deref())
    }
}

/// `Some` and not empty: Zoho treats an empty string as an absent field.
pub(crate) fn is_set(field: &Option<String>) -> bool {
    field.as_deref().is_some_and(|value| !value.is_empty())
}

impl fmt::Debug for OAuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        /// Shows `Some(<redacted>)` or `None`, never the value.
        struct Redacted<'a>(&'a Option<String>);
        impl fmt::Debug for Redacted<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.0 {
                    Some(_) => f.write_str("Some(<redacted>)"),
                    None => f.write_str("None"),
                }
            }
        }
        f.debug_struct("OAuthToken")
            .field("id", &self.id)
            .field("user_name", &self.user_name)
            .field("client_id", &self.client_id)
            .field("client_secret", &Redacted(&self.client_secret))
            .field("refresh_token", &Redacted(&self.refresh_token))
            .field("access_token", &Redacted(&self.access_token))
            .field("grant_token", &Redacted(&self.grant_token))
            .field("expiry_time", &self.expiry_time)
            .field("redirect_url", &self.redirect_url)
            .field("api_domain", &self.api_domain)
            .finish()
    }
}

/// Accepts `expiry_time` as an integer or as a numeric string (the Zoho SDKs
/// write it as a string in their CSV and database stores).
fn deserialize_expiry_time<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Millis {
        Int(i64),
        Float(f64),
        Text(String),
    }
    match Option::<Millis>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Millis::Int(millis)) => Ok(Some(millis)),
        Some(Millis::Float(millis)) if millis.fract() == 0.0 && millis.abs() < 9.0e15 => {
            Ok(Some(millis as i64))
        }
        Some(Millis::Text(text)) if text.trim().is_empty() => Ok(None),
        Some(Millis::Text(text)) => text
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| serde::de::Error::custom("expiry_time is not a whole number")),
        Some(Millis::Float(_)) => Err(serde::de::Error::custom(
            "expiry_time is not a whole number",
        )),
    }
}

/// Encodes a token as the JSON object stored for it.
///
/// The stored layout, shared by every store that keeps tokens as JSON (one
/// Secrets Manager secret value, or one file, per token):
///
/// - one JSON object per token, with the field names of [`OAuthToken`]:
///   `id`, `user_name`, `client_id`, `client_secret`, `refresh_token`,
///   `access_token`, `grant_token`, `expiry_time`, `redirect_url`,
///   `api_domain`;
/// - absent fields are omitted (never `null`);
/// - `expiry_time` is an integer, Unix epoch milliseconds;
/// - at most [`MAX_TOKEN_BYTES`] bytes, the Secrets Manager limit on a secret
///   value.
///
/// Readers ([`decode_token`]) are lenient so that other tools may write the
/// value: they ignore unknown fields and accept `expiry_time` as a numeric
/// string (as the Zoho SDKs write it in their CSV and database stores).
///
/// ```
/// use zoho_token_store::{OAuthToken, encode_token};
///
/// let token = OAuthToken::for_user("me@example.com").with_id("abc");
/// let token = OAuthToken { expiry_time: Some(1_900_000_000_000), ..token };
/// assert_eq!(
///     encode_token(&token).unwrap(),
///     r#"{"id":"abc","user_name":"me@example.com","expiry_time":1900000000000}"#
/// );
/// ```
///
/// Fails with [`StoreError::InvalidInput`] when the encoding exceeds
/// [`MAX_TOKEN_BYTES`].
pub fn encode_token(token: &OAuthToken) -> Result<String, StoreError> {
    let json = serde_json::to_string(token).map_err(|error| StoreError::InvalidInput {
        reason: format!("token cannot be encoded as JSON ({:?})", error.classify()),
    })?;
    if json.len() > MAX_TOKEN_BYTES {
        return Err(StoreError::InvalidInput {
            reason: format!(
                "token {} encodes to {} bytes, over the {MAX_TOKEN_BYTES}-byte limit",
                token.id.as_deref().unwrap_or("(new)"),
                json.len()
            ),
        });
    }
    Ok(json)
}

/// Decodes a stored token (the layout of [`encode_token`]). `id` names the
/// token in the error and sets the `id` field, whatever the stored JSON says.
///
/// Unknown fields are ignored; `expiry_time` may be a numeric string. The error
/// names what is wrong and where, never the stored contents.
pub fn decode_token(id: &str, json: &str) -> Result<OAuthToken, StoreError> {
    // serde would also read a struct from a JSON array: only an object is a token.
    if !json.trim_start().starts_with('{') {
        return Err(StoreError::Corrupt {
            id: id.to_owned(),
            reason: "not a JSON object".into(),
        });
    }
    let mut token: OAuthToken =
        serde_json::from_str(json).map_err(|error| StoreError::Corrupt {
            id: id.to_owned(),
            // serde_json's message can quote the offending value: keep only
            // the category and the position.
            reason: format!(
                "not a token JSON object ({:?} error at line {} column {})",
                error.classify(),
                error.line(),
                error.column()
            ),
        })?;
    token.id = Some(id.to_owned());
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_the_json_encodings_names_in_order() {
        let all = OAuthToken {
            id: Some("i".into()),
            user_name: Some("u".into()),
            client_id: Some("c".into()),
            client_secret: Some("s".into()),
            refresh_token: Some("r".into()),
            access_token: Some("a".into()),
            grant_token: Some("g".into()),
            expiry_time: Some(1),
            redirect_url: Some("ru".into()),
            api_domain: Some("d".into()),
        };
        let json = encode_token(&all).unwrap();
        let mut at = 0;
        for name in OAuthToken::FIELDS {
            let found = json[at..].find(&format!("\"{name}\":"));
            at += found.unwrap_or_else(|| panic!("{name} missing or out of order in {json}"));
        }
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value.as_object().unwrap().len(), OAuthToken::FIELDS.len());
        let back = OAuthToken::from_fields(value.as_object().unwrap().clone()).unwrap();
        assert_eq!(back, all);
    }

    #[test]
    fn from_fields_names_the_bad_field_never_its_value() {
        let of =
            |json: serde_json::Value| OAuthToken::from_fields(json.as_object().unwrap().clone());
        let reason = |json| match of(json) {
            Err(StoreError::InvalidInput { reason }) => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            reason(serde_json::json!({"refresh_token": 1000})),
            "token field refresh_token must be a string or absent"
        );
        assert_eq!(
            reason(serde_json::json!({"expiry_time": "1000.secret"})),
            "token field expiry_time must be a whole number or absent"
        );
        assert_eq!(
            reason(serde_json::json!({"refresh_tokn": "1000.secret"})),
            "unknown token field \"refresh_tokn\""
        );
        let absent = of(serde_json::json!({"user_name": "u", "access_token": null})).unwrap();
        assert_eq!(absent, OAuthToken::for_user("u"));
        assert_eq!(
            of(serde_json::json!({"expiry_time": "42"}))
                .unwrap()
                .expiry_time,
            Some(42)
        );
    }

    pub(crate) fn full_token() -> OAuthToken {
        OAuthToken {
            id: Some("tok-1".into()),
            user_name: Some("user@example.com".into()),
            client_id: Some("1000.CLIENTID".into()),
            client_secret: Some("client-secret-value".into()),
            refresh_token: Some("1000.refresh-token-value".into()),
            access_token: Some("1000.access-token-value".into()),
            grant_token: Some("1000.grant-token-value".into()),
            expiry_time: Some(1_700_000_000_000),
            redirect_url: Some("https://example.com/callback".into()),
            api_domain: Some("https://www.zohoapis.com".into()),
        }
    }

    #[test]
    fn debug_redacts_every_secret_value() {
        let token = full_token();
        let shown = format!("{token:?} {token:#?}");
        for secret in token.secret_values() {
            assert!(!shown.contains(secret), "Debug leaks a secret: {shown}");
        }
        assert!(shown.contains("user@example.com"));
        assert!(shown.contains("refresh_token: Some(<redacted>)"));
        assert!(format!("{:?}", OAuthToken::default()).contains("access_token: None"));
    }

    #[test]
    fn encodes_zoho_field_names_and_omits_absent_fields() {
        let token = OAuthToken {
            user_name: Some("u@example.com".into()),
            refresh_token: Some("r".into()),
            expiry_time: Some(42),
            ..OAuthToken::default()
        };
        let json = encode_token(&token).unwrap();
        assert_eq!(
            json,
            r#"{"user_name":"u@example.com","refresh_token":"r","expiry_time":42}"#
        );
    }

    #[test]
    fn round_trips_a_full_token() {
        let token = full_token();
        let json = encode_token(&token).unwrap();
        assert_eq!(decode_token("tok-1", &json).unwrap(), token);
    }

    #[test]
    fn decodes_numeric_string_expiry_and_ignores_unknown_fields() {
        let token = decode_token(
            "abc",
            r#"{"user_name":"u","expiry_time":"1700000000000","extra":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!(token.expiry_time, Some(1_700_000_000_000));
        assert_eq!(token.id.as_deref(), Some("abc"));
        let token = decode_token("abc", r#"{"expiry_time":""}"#).unwrap();
        assert_eq!(token.expiry_time, None);
    }

    #[test]
    fn corrupt_values_name_the_id_but_never_the_contents() {
        for bad in [
            "not json at all",
            r#"["a list"]"#,
            r#"{"refresh_token": 12345678}"#,
            r#"{"refresh_token":"leaky-secret","expiry_time":"soon-leaky"}"#,
            r#"{"access_token":"leaky-secret""#,
        ] {
            let error = decode_token("the-id", bad).unwrap_err();
            assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
            let shown = format!("{error} {error:?}");
            assert!(shown.contains("the-id"), "{shown}");
            assert!(!shown.contains("leaky"), "{shown}");
            assert!(!shown.contains("12345678"), "{shown}");
        }
    }

    #[test]
    fn oversized_tokens_are_invalid_input() {
        let token = OAuthToken {
            access_token: Some("x".repeat(MAX_TOKEN_BYTES)),
            ..OAuthToken::default()
        };
        let error = encode_token(&token).unwrap_err();
        assert!(matches!(error, StoreError::InvalidInput { .. }));
        assert!(!error.to_string().contains("xxxx"));
    }

    #[test]
    fn merge_prefers_set_fields() {
        let stored = full_token();
        let query = OAuthToken {
            access_token: Some("new-access".into()),
            expiry_time: Some(7),
            ..OAuthToken::default()
        };
        let merged = query.merged_over(&stored);
        assert_eq!(merged.access_token.as_deref(), Some("new-access"));
        assert_eq!(merged.expiry_time, Some(7));
        assert_eq!(merged.refresh_token, stored.refresh_token);
        assert_eq!(merged.id, stored.id);
    }
}
