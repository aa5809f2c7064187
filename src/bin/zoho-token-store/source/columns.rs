//! The columns of the Zoho SDK's token stores, by name, and how their text
//! becomes [`OAuthToken`] fields.
//!
//! Every generation is covered: the Python SDK 5 to 8 FileStore header
//! `id,user_name,client_id,client_secret,refresh_token,access_token,
//! grant_token,expiry_time,redirect_uri,api_domain`; the Java and Node SDKs'
//! `redirect_url`; SDK 2.x's `user_mail` (9 columns, no `api_domain`); SDK
//! 3.x's 6 columns without `id` or `client_secret`. An empty value and the
//! text `None` (what a Python `None` becomes in some files) are absent.

use zoho_token_store::OAuthToken;

use super::{BadRow, Row};

/// One token field a store's column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Column {
    Id,
    UserName,
    ClientId,
    ClientSecret,
    RefreshToken,
    AccessToken,
    GrantToken,
    ExpiryTime,
    RedirectUrl,
    ApiDomain,
}

impl Column {
    /// The field a column name stands for (case and spaces ignored).
    pub(super) fn from_name(name: &str) -> Option<Self> {
        Some(match name.trim().to_ascii_lowercase().as_str() {
            "id" => Self::Id,
            "user_name" | "user_mail" => Self::UserName,
            "client_id" => Self::ClientId,
            "client_secret" => Self::ClientSecret,
            "refresh_token" => Self::RefreshToken,
            "access_token" => Self::AccessToken,
            "grant_token" => Self::GrantToken,
            "expiry_time" => Self::ExpiryTime,
            "redirect_uri" | "redirect_url" => Self::RedirectUrl,
            "api_domain" => Self::ApiDomain,
            _ => return None,
        })
    }

    /// Whether the column holds a credential (so a table of tokens has one).
    pub(super) fn is_credential(self) -> bool {
        matches!(
            self,
            Self::RefreshToken | Self::AccessToken | Self::GrantToken
        )
    }

    /// The field's name, for messages.
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::UserName => "user_name",
            Self::ClientId => "client_id",
            Self::ClientSecret => "client_secret",
            Self::RefreshToken => "refresh_token",
            Self::AccessToken => "access_token",
            Self::GrantToken => "grant_token",
            Self::ExpiryTime => "expiry_time",
            Self::RedirectUrl => "redirect_url",
            Self::ApiDomain => "api_domain",
        }
    }
}

/// The columns of a header, each known column once; an error names the
/// problem. `strict`: an unknown column is an error (a FileStore CSV has
/// none), else it is skipped (`None`), as extra columns of a table are.
pub(super) fn map_header<'a>(
    names: impl IntoIterator<Item = &'a str>,
    strict: bool,
) -> Result<Vec<Option<Column>>, String> {
    let mut columns: Vec<Option<Column>> = Vec::new();
    for name in names {
        let column = Column::from_name(name);
        match column {
            None if strict => {
                return Err(format!(
                    "unknown column {name:?} (expected the Zoho SDK's: id, user_name or \
                     user_mail, client_id, client_secret, refresh_token, access_token, \
                     grant_token, expiry_time, redirect_uri or redirect_url, api_domain)"
                ));
            }
            Some(c) if columns.contains(&Some(c)) => {
                return Err(format!("column {} appears twice", c.name()));
            }
            _ => {}
        }
        columns.push(column);
    }
    if !columns.iter().flatten().any(|c| c.is_credential()) {
        return Err("no refresh_token, access_token or grant_token column".into());
    }
    Ok(columns)
}

/// `value` as a field value: empty and `None` are absent.
pub(super) fn present(value: &str) -> Option<&str> {
    (!value.is_empty() && value != "None").then_some(value)
}

/// Sets `column` of `token` from the text of one cell. The error says what
/// is wrong without repeating a secret value.
pub(super) fn set(
    token: &mut OAuthToken,
    column: Column,
    text: Option<&str>,
) -> Result<(), String> {
    let Some(text) = text.and_then(present) else {
        return Ok(());
    };
    let value = Some(text.to_owned());
    match column {
        Column::Id => token.id = value,
        Column::UserName => token.user_name = value,
        Column::ClientId => token.client_id = value,
        Column::ClientSecret => token.client_secret = value,
        Column::RefreshToken => token.refresh_token = value,
        Column::AccessToken => token.access_token = value,
        Column::GrantToken => token.grant_token = value,
        Column::RedirectUrl => token.redirect_url = value,
        Column::ApiDomain => token.api_domain = value,
        Column::ExpiryTime => {
            let millis = text.trim().parse::<i64>().map_err(|_| {
                format!("expiry_time {text:?} is not a whole number of Unix milliseconds")
            })?;
            token.expiry_time = Some(millis);
        }
    }
    Ok(())
}

/// The token of one table row (SQLite, MySQL), whose cells `columns` maps:
/// `cell(at, column)` reads the cell at index `at` as text (`None`: NULL),
/// or says why it cannot be a token field. The first problem makes the row
/// a [`BadRow`] at `origin`.
pub(super) fn table_row(
    origin: String,
    columns: &[Option<Column>],
    mut cell: impl FnMut(usize, Column) -> Result<Option<String>, String>,
) -> Result<Row, BadRow> {
    let mut token = OAuthToken::default();
    for (at, column) in columns.iter().enumerate() {
        let Some(column) = *column else { continue };
        let filled = cell(at, column).and_then(|text| set(&mut token, column, text.as_deref()));
        if let Err(reason) = filled {
            return Err(BadRow { origin, reason });
        }
    }
    Ok(Row { origin, token })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_header_generation_maps() {
        let python8 = "id,user_name,client_id,client_secret,refresh_token,access_token,\
                       grant_token,expiry_time,redirect_uri,api_domain";
        let sdk3 = "user_mail,client_id,refresh_token,access_token,grant_token,expiry_time";
        for header in [python8, sdk3] {
            let columns = map_header(header.split(','), true).unwrap();
            assert!(columns.iter().all(Option::is_some), "{header}");
        }
        assert!(map_header("id,name".split(','), true).is_err());
        assert!(map_header("id,refresh_token,refresh_token".split(','), true).is_err());
        assert_eq!(
            map_header("id,refresh_token,extra".split(','), false).unwrap()[2],
            None
        );
    }

    #[test]
    fn absent_values_and_expiry() {
        let mut token = OAuthToken::default();
        set(&mut token, Column::UserName, Some("None")).unwrap();
        set(&mut token, Column::ClientId, Some("")).unwrap();
        set(&mut token, Column::ExpiryTime, Some("1700000000000")).unwrap();
        assert_eq!(token.user_name, None);
        assert_eq!(token.client_id, None);
        assert_eq!(token.expiry_time, Some(1_700_000_000_000));
        assert!(set(&mut token, Column::ExpiryTime, Some("soon")).is_err());
    }
}
