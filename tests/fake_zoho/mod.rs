//! A fake Zoho: an accounts server (`POST /oauth/v2/token`) and a CRM API
//! endpoint (`GET /crm/v8/users?type=CurrentUser`), a real HTTP server on
//! loopback, for `tests/auth.rs` (`mod fake_zoho;`) and for running the
//! Lambda example locally (`examples/fake_zoho.rs`, `#[path]`).
//!
//! The accounts server counts calls, records the Host each was sent to,
//! enforces Zoho's documented limits per refresh token (10 access tokens in
//! 10 minutes, then "Access Denied"; 15 live access tokens, the 16th
//! invalidating the oldest) and answers errors as Zoho does: in the JSON
//! body, with HTTP 200. The CRM endpoint answers the current user for a live
//! access token and, as Zoho does for one it invalidated or never issued,
//! HTTP 401 with `{"code":"INVALID_TOKEN",…}`.
#![allow(dead_code, unreachable_pub)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{Value, json};

/// The client id the fake accepts.
pub const CLIENT_ID: &str = "1000.CLIENTID";
/// The client secret the fake accepts ("canary": tests look for it in output).
pub const CLIENT_SECRET: &str = "canary-client-secret";
/// Zoho's window for its 10 access tokens per refresh token.
const WINDOW: Duration = Duration::from_secs(600);
/// The API domain the fake answers with unless told otherwise.
pub const ZOHO_API_DOMAIN: &str = "https://www.zohoapis.com";

/// What the fake knows of one refresh token.
#[derive(Default)]
pub struct Grant {
    /// When each access token was issued, within the last 10 minutes.
    issued: VecDeque<Instant>,
    /// Live access tokens, oldest first (at most 15).
    live: VecDeque<String>,
    revoked: bool,
    /// The CRM user it was issued for: email and full name.
    user: Option<(String, String)>,
}

#[derive(Default)]
pub struct FakeState {
    grants: HashMap<String, Grant>,
    /// Grant codes and the refresh token each is exchanged for; `None` once used.
    codes: HashMap<String, Option<String>>,
    next: u64,
}

/// The fake Zoho accounts server and CRM endpoint.
#[derive(Default)]
pub struct Fake {
    pub addr: Mutex<Option<SocketAddr>>,
    pub calls: AtomicUsize,
    pub hosts: Mutex<Vec<String>>,
    /// What each call carried: grant_type and every value, to look for leaks.
    pub forms: Mutex<Vec<HashMap<String, String>>>,
    pub state: Mutex<FakeState>,
    /// Milliseconds each answer waits, so that concurrent callers overlap.
    pub delay_ms: AtomicU64,
    /// Answer like older Zoho versions: `expires_in` in ms + `expires_in_sec`.
    pub old_format: AtomicBool,
    /// Answer every call with HTTP 503 and no JSON (a transient failure).
    pub broken: AtomicBool,
    /// The `api_domain` of its answers; `None`: [`ZOHO_API_DOMAIN`].
    pub api_domain: Mutex<Option<String>>,
    /// Calls to the CRM endpoint, and how many were answered 401.
    pub crm_calls: AtomicUsize,
    pub crm_rejected: AtomicUsize,
}

impl Fake {
    /// Starts a fake on a free loopback port.
    pub async fn start() -> Arc<Self> {
        Self::start_on("127.0.0.1:0").await
    }

    /// Starts a fake on `addr` (e.g. `127.0.0.1:9090`).
    pub async fn start_on(addr: &str) -> Arc<Self> {
        let fake = Arc::new(Self::default());
        let app = Router::new()
            .route("/oauth/v2/token", post(token_endpoint))
            .route("/crm/v8/users", get(users_endpoint))
            .with_state(Arc::clone(&fake));
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        *fake.addr.lock().unwrap() = Some(listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fake
    }

    /// Its origin, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr.lock().unwrap().unwrap())
    }

    /// Calls to the accounts server so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// A refresh token the fake accepts.
    pub fn refresh_token(&self) -> String {
        self.refresh_token_of("test@example.com", "Test User")
    }

    /// A refresh token the fake accepts, of the CRM user `email` named `full_name`.
    pub fn refresh_token_of(&self, email: &str, full_name: &str) -> String {
        let mut state = self.state.lock().unwrap();
        state.next += 1;
        let token = format!(
            "1000.canary-refresh-{}-{}",
            state.next,
            uuid::Uuid::new_v4()
        );
        let grant = Grant {
            user: Some((email.to_owned(), full_name.to_owned())),
            ..Grant::default()
        };
        state.grants.insert(token.clone(), grant);
        token
    }

    /// A grant code the fake exchanges once.
    pub fn grant_code(&self) -> String {
        let refresh = self.refresh_token();
        let code = format!("1000.canary-grant-{}", uuid::Uuid::new_v4());
        self.state
            .lock()
            .unwrap()
            .codes
            .insert(code.clone(), Some(refresh));
        code
    }

    /// Revokes a refresh token: refreshing with it is `invalid_code`.
    pub fn revoke(&self, refresh: &str) {
        self.state
            .lock()
            .unwrap()
            .grants
            .get_mut(refresh)
            .unwrap()
            .revoked = true;
    }

    /// Invalidates an access token as Zoho does when a 16th is issued (or
    /// the user revokes a session): the CRM endpoint answers 401 for it.
    pub fn invalidate_access(&self, access: &str) {
        for grant in self.state.lock().unwrap().grants.values_mut() {
            grant.live.retain(|l| l != access);
        }
    }

    /// Uses up the refresh token's 10 access tokens of this 10 minutes.
    pub fn exhaust(&self, refresh: &str) {
        let mut state = self.state.lock().unwrap();
        let grant = state.grants.get_mut(refresh).unwrap();
        while grant.issued.len() < 10 {
            grant.issued.push_back(Instant::now());
        }
    }

    /// Whether Zoho would still accept `access` (not pushed out by the 16th).
    pub fn is_live(&self, access: &str) -> bool {
        self.state
            .lock()
            .unwrap()
            .grants
            .values()
            .any(|g| g.live.iter().any(|l| l == access))
    }

    /// Issues an access token for `refresh`, enforcing Zoho's limits.
    pub fn issue(&self, refresh: &str) -> Result<String, Value> {
        let mut state = self.state.lock().unwrap();
        state.next += 1;
        let n = state.next;
        let Some(grant) = state.grants.get_mut(refresh).filter(|g| !g.revoked) else {
            return Err(json!({"error": "invalid_code"}));
        };
        let now = Instant::now();
        while grant
            .issued
            .front()
            .is_some_and(|t| now.duration_since(*t) > WINDOW)
        {
            grant.issued.pop_front();
        }
        if grant.issued.len() >= 10 {
            return Err(json!({
                "error": "Access Denied",
                "error_description": "You have made too many requests continuously. Please try again after some time."
            }));
        }
        grant.issued.push_back(now);
        let access = format!("1000.canary-access-{n}-{}", uuid::Uuid::new_v4().simple());
        grant.live.push_back(access.clone());
        if grant.live.len() > 15 {
            grant.live.pop_front();
        }
        Ok(access)
    }

    fn answer(&self, access: String, refresh: Option<String>) -> Value {
        let mut answer = json!({
            "access_token": access,
            "api_domain": self
                .api_domain
                .lock()
                .unwrap()
                .clone()
                .unwrap_or_else(|| ZOHO_API_DOMAIN.to_owned()),
            "token_type": "Bearer",
        });
        if self.old_format.load(Ordering::SeqCst) {
            answer["expires_in"] = json!(3_600_000);
            answer["expires_in_sec"] = json!(3600);
        } else {
            answer["expires_in"] = json!(3600);
        }
        if let Some(refresh) = refresh {
            answer["refresh_token"] = json!(refresh);
        }
        answer
    }
}

async fn token_endpoint(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Json<Value> {
    fake.calls.fetch_add(1, Ordering::SeqCst);
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    fake.hosts.lock().unwrap().push(host.to_owned());
    fake.forms.lock().unwrap().push(form.clone());
    let delay = fake.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if fake.broken.load(Ordering::SeqCst) {
        return Json(json!({"status": "unavailable"}));
    }
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    // Errors in the body, with HTTP 200, as Zoho answers them.
    if get("client_id") != CLIENT_ID || get("client_secret") != CLIENT_SECRET {
        return Json(json!({"error": "invalid_client"}));
    }
    match get("grant_type") {
        "refresh_token" => match fake.issue(get("refresh_token")) {
            Ok(access) => Json(fake.answer(access, None)),
            Err(error) => Json(error),
        },
        "authorization_code" => {
            let refresh = {
                let mut state = fake.state.lock().unwrap();
                match state.codes.get_mut(get("code")) {
                    Some(slot) => slot.take(),
                    None => None,
                }
            };
            let Some(refresh) = refresh else {
                return Json(json!({"error": "invalid_code"}));
            };
            match fake.issue(&refresh) {
                Ok(access) => Json(fake.answer(access, Some(refresh))),
                Err(error) => Json(error),
            }
        }
        _ => Json(json!({"error": "unsupported_grant_type"})),
    }
}

/// `GET /crm/v8/users?type=CurrentUser`: the user whose live access token
/// the `Authorization: Zoho-oauthtoken …` header carries, else 401
/// `INVALID_TOKEN` as Zoho answers it.
async fn users_endpoint(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    fake.crm_calls.fetch_add(1, Ordering::SeqCst);
    let bearer = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Zoho-oauthtoken "))
        .unwrap_or_default();
    let user = {
        let state = fake.state.lock().unwrap();
        state
            .grants
            .values()
            .find(|g| g.live.iter().any(|l| l == bearer))
            .map(|g| g.user.clone().unwrap_or_default())
    };
    match user {
        Some((email, full_name)) => (
            StatusCode::OK,
            Json(json!({"users": [{
                "id": "4150868000000225013",
                "full_name": full_name,
                "email": email,
                "status": "active",
            }]})),
        ),
        None => {
            fake.crm_rejected.fetch_add(1, Ordering::SeqCst);
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({
                    "code": "INVALID_TOKEN",
                    "details": {},
                    "message": "invalid oauth token",
                    "status": "error",
                })),
            )
        }
    }
}
