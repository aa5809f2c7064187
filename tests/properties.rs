//! Property tests (proptest): the stored-token codec, and `MemoryStore`
//! against a naive model of the Zoho lookup, merge and upsert rules (the
//! `TokenStore` contract) over random operation sequences.
//!
//! Replay a failure with `PROPTEST_CASES`/the seed proptest prints; raise the
//! effort with e.g. `PROPTEST_CASES=10000 cargo test --test properties`.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::Value;
use zoho_token_store::{
    MAX_TOKEN_BYTES, MAX_USER_NAME_BYTES, MemoryStore, OAuthToken, StoreError, TokenStore,
    decode_token, encode_token,
};

// ---------------------------------------------------------------------------
// The codec

/// Any token: every field absent, empty or any Unicode string (quotes,
/// backslashes, control characters, astral planes), any `expiry_time`.
fn any_token() -> impl Strategy<Value = OAuthToken> {
    let text = || proptest::option::of(any::<String>());
    (
        (text(), text(), text(), text(), text()),
        (
            text(),
            text(),
            proptest::option::of(any::<i64>()),
            text(),
            text(),
        ),
    )
        .prop_map(
            |(
                (id, user_name, client_id, client_secret, refresh_token),
                (access_token, grant_token, expiry_time, redirect_url, api_domain),
            )| OAuthToken {
                id,
                user_name,
                client_id,
                client_secret,
                refresh_token,
                access_token,
                grant_token,
                expiry_time,
                redirect_url,
                api_domain,
            },
        )
}

/// A value shaped like a Zoho secret: `1000.` and 64 hex digits.
fn secret_looking() -> impl Strategy<Value = String> {
    "1000\\.[0-9a-f]{32}\\.[0-9a-f]{32}"
}

/// Any JSON value whose strings (values and keys) are secret-looking or token
/// field names, nested a few levels.
fn json_with_secrets() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        secret_looking().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        let key = prop_oneof![
            proptest::sample::select(OAuthToken::FIELDS.to_vec()).prop_map(str::to_owned),
            secret_looking(),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Stored values that go wrong in the ways stored data does, each holding the
/// secret `s`: wrong types, truncation, a non-numeric expiry, not JSON, ….
fn corrupt_document(s: &str) -> Vec<String> {
    vec![
        s.to_owned(),
        format!("{{\"refresh_token\":\"{s}\""),
        format!("{{\"refresh_token\":\"{s}"),
        format!("{{\"refresh_token\":{s}}}"),
        format!("{{\"refresh_token\":[\"{s}\"]}}"),
        format!("{{\"refresh_token\":{{\"{s}\":1}}}}"),
        format!("{{\"expiry_time\":\"{s}\"}}"),
        format!("{{\"expiry_time\":{{\"v\":\"{s}\"}}}}"),
        format!("{{\"access_token\":\"{s}\",\"expiry_time\":1.5}}"),
        format!("{{\"{s}\"}}"),
        format!("{{\"{s}\":}}"),
        format!("[\"{s}\"]"),
        format!("\"{s}\""),
        format!("{{\"client_secret\":\"{s}\"}} trailing {s}"),
        format!("{{\"grant_token\":\"{s}\\u12\"}}"),
        format!("{{\"grant_token\":\"{s}\",\"grant_token\":\"{s}\"}}"),
    ]
}

fn shown(error: &StoreError) -> String {
    format!("{error} {error:?} {error:#?}")
}

proptest! {
    /// Every token (any Unicode in any field, any expiry) survives `encode_token` then `decode_token` unchanged, with the id given to the decoder.
    #[test]
    fn codec_round_trips_every_token(token in any_token(), id in "[A-Za-z0-9_.@+=-]{1,64}") {
        let json = encode_token(&token).expect("a small token encodes");
        let decoded = decode_token(&id, &json).expect("an encoded token decodes");
        prop_assert_eq!(decoded, OAuthToken { id: Some(id), ..token });
    }

    /// The decoder accepts unknown fields and `expiry_time` written as a numeric string (what readers of the stored JSON must accept).
    #[test]
    fn decoder_accepts_unknown_fields_and_string_expiry(
        token in any_token(),
        expiry in any::<i64>(),
        extra in prop::collection::btree_map("[a-z]{1,12}x", any::<String>(), 0..4),
    ) {
        let mut object = serde_json::to_value(&token).unwrap();
        let map = object.as_object_mut().unwrap();
        map.insert("expiry_time".into(), Value::String(expiry.to_string()));
        for (key, value) in extra {
            map.insert(key, Value::String(value));
        }
        let decoded = decode_token("the-id", &object.to_string()).expect("decodes");
        prop_assert_eq!(
            decoded,
            OAuthToken { id: Some("the-id".into()), expiry_time: Some(expiry), ..token }
        );
    }

    /// Any input string to `decode_token` gives a token or `StoreError::Corrupt` naming the id, never a panic.
    #[test]
    fn decoder_never_panics_on_any_string(input in any::<String>()) {
        if let Err(error) = decode_token("the-id", &input) {
            prop_assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
            prop_assert!(error.to_string().contains("the-id"));
        }
    }

    /// Any bytes read as (lossy) UTF-8 never make the decoder panic.
    #[test]
    fn decoder_never_panics_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_token("the-id", &String::from_utf8_lossy(&bytes));
    }

    /// Any JSON value, whatever its shape, decodes to a token or to `StoreError::Corrupt`, and the error never contains any of the (secret-looking) strings in it.
    #[test]
    fn decoder_errors_never_show_stored_contents(value in json_with_secrets()) {
        let json = value.to_string();
        if let Err(error) = decode_token("the-id", &json) {
            prop_assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
            let shown = shown(&error);
            let mut strings = Vec::new();
            collect_strings(&value, &mut strings);
            for s in strings.iter().filter(|s| s.starts_with("1000.")) {
                prop_assert!(!shown.contains(s.as_str()), "error shows {s}: {shown}");
                // Nor a good part of it.
                prop_assert!(!shown.contains(&s[5..21]), "error shows part of {s}: {shown}");
            }
        }
    }

    /// Corrupt stored values of every kind that hold a secret give `StoreError::Corrupt` (never a panic) whose message never contains the secret.
    #[test]
    fn corrupt_values_never_show_their_secret(secret in secret_looking()) {
        for document in corrupt_document(&secret) {
            match decode_token("the-id", &document) {
                Ok(token) => prop_assert!(false, "{document} decoded to {token:?}"),
                Err(error) => {
                    prop_assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
                    let shown = shown(&error);
                    prop_assert!(!shown.contains(&secret[5..21]), "{document}: {shown}");
                }
            }
        }
    }

    /// A token over the size limit is `StoreError::InvalidInput` whose message never contains its values.
    #[test]
    fn oversized_tokens_are_invalid_input_without_their_contents(secret in secret_looking(), extra in 0usize..2_000) {
        let token = OAuthToken {
            refresh_token: Some(secret.clone()),
            access_token: Some(secret.repeat(MAX_TOKEN_BYTES / secret.len() + 1) + &"x".repeat(extra)),
            ..OAuthToken::default()
        };
        let error = encode_token(&token).unwrap_err();
        prop_assert!(matches!(error, StoreError::InvalidInput { .. }), "{error:?}");
        prop_assert!(!shown(&error).contains(&secret[5..21]));
    }
}

fn collect_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k.clone());
                collect_strings(v, out);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// MemoryStore against a model

/// The `TokenStore` rules (Zoho lookup keys, merge, upsert, unique user
/// names, id validation), re-implemented naively: a list of tokens, scanned.
#[derive(Debug, Default, Clone)]
struct Model {
    tokens: Vec<OAuthToken>,
}

/// What a query is matched on (§3 "Lookup key").
#[derive(Debug, Clone, PartialEq)]
enum Key {
    User(String),
    Access(String),
    Grant(String),
    Refresh(String),
}

/// A field that is present: set and not empty.
fn present(field: &Option<String>) -> Option<String> {
    field.clone().filter(|v| !v.is_empty())
}

fn key_of(q: &OAuthToken) -> Option<Key> {
    if let Some(user) = present(&q.user_name) {
        return Some(Key::User(user));
    }
    let client_id = present(&q.client_id).is_some();
    let client_secret = present(&q.client_secret).is_some();
    if let Some(access) = present(&q.access_token)
        && !client_id
        && !client_secret
    {
        return Some(Key::Access(access));
    }
    if client_id && client_secret {
        if let Some(grant) = present(&q.grant_token) {
            return Some(Key::Grant(grant));
        }
        if let Some(refresh) = present(&q.refresh_token) {
            return Some(Key::Refresh(refresh));
        }
    }
    None
}

fn key_matches(key: &Key, t: &OAuthToken) -> bool {
    let (field, wanted) = match key {
        Key::User(v) => (&t.user_name, v),
        Key::Access(v) => (&t.access_token, v),
        Key::Grant(v) => (&t.grant_token, v),
        Key::Refresh(v) => (&t.refresh_token, v),
    };
    field.as_ref() == Some(wanted)
}

/// `q` with every field it leaves unset taken from `stored` (Zoho's merge).
fn merge(q: &OAuthToken, stored: &OAuthToken) -> OAuthToken {
    OAuthToken {
        id: q.id.clone().or(stored.id.clone()),
        user_name: q.user_name.clone().or(stored.user_name.clone()),
        client_id: q.client_id.clone().or(stored.client_id.clone()),
        client_secret: q.client_secret.clone().or(stored.client_secret.clone()),
        refresh_token: q.refresh_token.clone().or(stored.refresh_token.clone()),
        access_token: q.access_token.clone().or(stored.access_token.clone()),
        grant_token: q.grant_token.clone().or(stored.grant_token.clone()),
        expiry_time: q.expiry_time.or(stored.expiry_time),
        redirect_url: q.redirect_url.clone().or(stored.redirect_url.clone()),
        api_domain: q.api_domain.clone().or(stored.api_domain.clone()),
    }
}

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.@+=-".contains(c))
}

/// What a save may do: fail (invalid input), or store this token. A token
/// whose id is `None` gets a new, generated id.
#[derive(Debug, Clone, PartialEq)]
enum SaveOutcome {
    Invalid,
    Stores(Box<OAuthToken>),
}

impl Model {
    fn by_id(&self, id: &str) -> Option<&OAuthToken> {
        self.tokens.iter().find(|t| t.id.as_deref() == Some(id))
    }

    fn matching(&self, key: &Key) -> Vec<&OAuthToken> {
        self.tokens.iter().filter(|t| key_matches(key, t)).collect()
    }

    /// The answers `find_token(q)` may give (several when several stored
    /// tokens match: the rules do not say which one wins); `None`: invalid.
    fn find_token(&self, q: &OAuthToken) -> Option<Vec<Option<OAuthToken>>> {
        let key = key_of(q)?;
        let found = self.matching(&key);
        if found.is_empty() {
            return Some(vec![None]);
        }
        Some(found.into_iter().map(|t| Some(merge(q, t))).collect())
    }

    /// The outcomes `save_token(t)` may have (several when several stored
    /// tokens match its key).
    fn save(&self, t: &OAuthToken) -> Vec<SaveOutcome> {
        if let Some(id) = &t.id
            && !valid_id(id)
        {
            return vec![SaveOutcome::Invalid];
        }
        // An id names the target alone; without one, the lookup key decides.
        let targets: Vec<Option<&OAuthToken>> = match &t.id {
            Some(id) => vec![self.by_id(id)],
            None => {
                let found = key_of(t).map(|k| self.matching(&k)).unwrap_or_default();
                if found.is_empty() {
                    vec![None]
                } else {
                    found.into_iter().map(Some).collect()
                }
            }
        };
        targets
            .into_iter()
            .map(|target| self.save_over(t, target))
            .collect()
    }

    fn save_over(&self, t: &OAuthToken, target: Option<&OAuthToken>) -> SaveOutcome {
        let updated = match target {
            Some(stored) => {
                let mut updated = merge(t, stored);
                updated.id = stored.id.clone();
                updated
            }
            None => {
                let credential = [&t.refresh_token, &t.grant_token, &t.access_token]
                    .into_iter()
                    .any(|f| present(f).is_some());
                if !credential {
                    return SaveOutcome::Invalid;
                }
                t.clone() // id None: generated by the store
            }
        };
        if present(&updated.user_name).is_some_and(|u| u.len() > MAX_USER_NAME_BYTES) {
            return SaveOutcome::Invalid;
        }
        if let Some(user) = present(&updated.user_name) {
            let other = self.tokens.iter().any(|s| {
                s.user_name.as_deref() == Some(user.as_str())
                    && (updated.id.is_none() || s.id != updated.id)
            });
            if other {
                return SaveOutcome::Invalid;
            }
        }
        let mut sized = updated.clone();
        sized.id.get_or_insert_with(|| "0".repeat(32));
        if serde_json::to_string(&sized).unwrap().len() > MAX_TOKEN_BYTES {
            return SaveOutcome::Invalid;
        }
        SaveOutcome::Stores(Box::new(updated))
    }

    fn store(&mut self, token: OAuthToken) {
        self.tokens.retain(|t| t.id != token.id);
        self.tokens.push(token);
    }

    fn sorted(&self) -> Vec<OAuthToken> {
        let mut tokens = self.tokens.clone();
        tokens.sort_by(|a, b| a.id.cmp(&b.id));
        tokens
    }
}

/// An id: mostly from a small pool (so operations collide), sometimes one
/// the store generated, sometimes invalid.
#[derive(Debug, Clone)]
enum IdChoice {
    Named(String),
    Known(Index),
}

impl IdChoice {
    fn resolve(&self, model: &Model) -> String {
        match self {
            Self::Named(id) => id.clone(),
            Self::Known(index) if !model.tokens.is_empty() => {
                let mut ids: Vec<&String> =
                    model.tokens.iter().filter_map(|t| t.id.as_ref()).collect();
                ids.sort();
                index.get(&ids).to_string()
            }
            Self::Known(_) => "t1".into(),
        }
    }
}

fn id_choice() -> impl Strategy<Value = IdChoice> {
    prop_oneof![
        4 => proptest::sample::select(vec!["t1", "t2", "t3"]).prop_map(|s| IdChoice::Named(s.into())),
        4 => any::<Index>().prop_map(IdChoice::Known),
        1 => proptest::sample::select(vec!["", "bad/id", "a b", "é"]).prop_map(|s| IdChoice::Named(s.into())),
        1 => Just(IdChoice::Named("x".repeat(65))),
    ]
}

fn pick(values: &'static [&'static str]) -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        2 => Just(None),
        1 => Just(Some(String::new())),
        4 => proptest::sample::select(values).prop_map(|s| Some(s.to_owned())),
    ]
}

/// Tokens from small pools of values, so that keys collide and every branch
/// of the rules is taken; rarely one too large to store or with too long a user name.
fn model_token() -> impl Strategy<Value = OAuthToken> {
    (
        (
            prop_oneof![
                40 => pick(&["u1@example.com", "u2@example.com", "u3@example.com"]),
                1 => Just(Some("u".repeat(MAX_USER_NAME_BYTES + 1))),
            ],
            pick(&["c1", "c2"]),
            pick(&["s1", "s2"]),
            pick(&["r1", "r2", "r3"]),
        ),
        (
            prop_oneof![
                40 => pick(&["a1", "a2", "a3"]),
                1 => Just(Some("a".repeat(MAX_TOKEN_BYTES))),
            ],
            pick(&["g1", "g2"]),
            proptest::option::of(0i64..3),
            pick(&["https://example.com/cb"]),
            pick(&["https://www.zohoapis.eu"]),
        ),
    )
        .prop_map(
            |(
                (user_name, client_id, client_secret, refresh_token),
                (access_token, grant_token, expiry_time, redirect_url, api_domain),
            )| OAuthToken {
                id: None,
                user_name,
                client_id,
                client_secret,
                refresh_token,
                access_token,
                grant_token,
                expiry_time,
                redirect_url,
                api_domain,
            },
        )
}

#[derive(Debug, Clone)]
enum Op {
    /// `save_token` with no id (the lookup key decides).
    Save(OAuthToken),
    /// `save_token` with an id.
    SaveWithId(IdChoice, OAuthToken),
    /// `save_token` of a query for a stored user: the hourly refresh.
    SaveForUser(OAuthToken),
    FindToken(OAuthToken),
    FindTokenById(IdChoice),
    DeleteToken(IdChoice),
    DeleteTokens,
    GetTokens,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => model_token().prop_map(Op::Save),
        3 => (id_choice(), model_token()).prop_map(|(id, t)| Op::SaveWithId(id, t)),
        2 => (pick(&["u1@example.com", "u2@example.com"]), pick(&["a4", "a5"]), proptest::option::of(3i64..6))
            .prop_map(|(user_name, access_token, expiry_time)| Op::SaveForUser(OAuthToken {
                user_name, access_token, expiry_time, ..OAuthToken::default()
            })),
        5 => model_token().prop_map(Op::FindToken),
        3 => id_choice().prop_map(Op::FindTokenById),
        2 => id_choice().prop_map(Op::DeleteToken),
        1 => Just(Op::DeleteTokens),
        2 => Just(Op::GetTokens),
    ]
}

fn sorted(mut tokens: Vec<OAuthToken>) -> Vec<OAuthToken> {
    tokens.sort_by(|a, b| a.id.cmp(&b.id));
    tokens
}

fn is_invalid<T: std::fmt::Debug>(result: &Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::InvalidInput { .. }))
}

/// Runs `ops` on a `MemoryStore` and the model; fails at the first
/// difference. Ids the store generates are adopted by the model.
fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let store = MemoryStore::new();
    let mut model = Model::default();
    for (step, op) in ops.iter().enumerate() {
        let at = format!("step {step}: {op:?}");
        match op {
            Op::Save(t) | Op::SaveForUser(t) | Op::SaveWithId(_, t) => {
                let mut sent = t.clone();
                if let Op::SaveWithId(id, _) = op {
                    sent.id = Some(id.resolve(&model));
                }
                let allowed = model.save(&sent);
                let mut saved = sent.clone();
                let result = futures::executor::block_on(store.save_token(&mut saved));
                match result {
                    Ok(()) => {
                        let id = saved.id.clone().expect("an Ok save sets the id");
                        let generated = !model.tokens.iter().any(|t| t.id.as_ref() == Some(&id))
                            && sent.id.is_none();
                        let matched = allowed.iter().any(|outcome| match outcome {
                            SaveOutcome::Stores(expected) if expected.id.is_none() => {
                                generated
                                    && valid_id(&id)
                                    && **expected
                                        == OAuthToken {
                                            id: None,
                                            ..saved.clone()
                                        }
                            }
                            SaveOutcome::Stores(expected) => **expected == saved,
                            SaveOutcome::Invalid => false,
                        });
                        prop_assert!(
                            matched,
                            "{at}: stored {saved:?}, the rules allow {allowed:?}"
                        );
                        model.store(saved);
                    }
                    Err(error) => {
                        prop_assert!(
                            matches!(error, StoreError::InvalidInput { .. }),
                            "{at}: {error:?}"
                        );
                        prop_assert!(
                            allowed.contains(&SaveOutcome::Invalid),
                            "{at}: rejected ({error}), the rules allow {allowed:?}"
                        );
                    }
                }
            }
            Op::FindToken(q) => {
                let result = futures::executor::block_on(store.find_token(q));
                match model.find_token(q) {
                    None => prop_assert!(is_invalid(&result), "{at}: {result:?}"),
                    Some(allowed) => {
                        let found =
                            result.map_err(|e| TestCaseError::fail(format!("{at}: {e:?}")))?;
                        prop_assert!(
                            allowed.contains(&found),
                            "{at}: found {found:?}, the rules allow {allowed:?}"
                        );
                    }
                }
            }
            Op::FindTokenById(id) => {
                let id = id.resolve(&model);
                let result = futures::executor::block_on(store.find_token_by_id(&id));
                if valid_id(&id) {
                    prop_assert_eq!(result.ok(), Some(model.by_id(&id).cloned()), "{}", at);
                } else {
                    prop_assert!(is_invalid(&result), "{at}: {result:?}");
                }
            }
            Op::DeleteToken(id) => {
                let id = id.resolve(&model);
                let result = futures::executor::block_on(store.delete_token(&id));
                if valid_id(&id) {
                    prop_assert!(result.is_ok(), "{at}: {result:?}");
                    model
                        .tokens
                        .retain(|t| t.id.as_deref() != Some(id.as_str()));
                } else {
                    prop_assert!(is_invalid(&result), "{at}: {result:?}");
                }
            }
            Op::DeleteTokens => {
                futures::executor::block_on(store.delete_tokens()).unwrap();
                model.tokens.clear();
            }
            Op::GetTokens => {}
        }
        // After every step, the store holds exactly what the model holds.
        let listed = futures::executor::block_on(store.get_tokens()).unwrap();
        prop_assert_eq!(sorted(listed), model.sorted(), "after {}", at);
        let mut users = BTreeMap::new();
        for t in &model.tokens {
            if let Some(user) = present(&t.user_name) {
                prop_assert!(
                    users.insert(user.clone(), ()).is_none(),
                    "{at}: two tokens for {user}"
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// `MemoryStore` follows the Zoho lookup rules and the `TokenStore` contract (lookup keys, merge, upsert, unique user names, id validation, size and user name limits, idempotent deletes) over random sequences of every operation, step by step against a naive model.
    #[test]
    fn memory_store_follows_the_model(ops in prop::collection::vec(op(), 1..40)) {
        run(&ops)?;
    }
}
