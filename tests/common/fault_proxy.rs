//! A fault-injecting HTTP/1.1 proxy between the SDK and LocalStack, for the
//! fault and leak tests (`#[path = "common/fault_proxy.rs"] mod fault_proxy;`
//! next to `mod common;`).
//!
//! It listens on a random local port and is switched at run time between
//! pass-through and the faults of [`Fault`], on the requests a [`Schedule`]
//! picks. It speaks just enough HTTP/1.1 for the SDK: `Content-Length` and
//! chunked bodies, keep-alive connections, one upstream connection per request.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One way a request can fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Nothing listens: new connections are refused and open ones are
    /// closed. Only as [`Schedule::Always`].
    Refuse,
    /// The request is read, never forwarded, and the connection is reset
    /// without a response.
    Drop,
    /// The request reaches LocalStack (so its effect happens); the
    /// response is cut half-way by a connection reset.
    ResetMidResponse,
    /// HTTP 500 with a non-JSON body; LocalStack never sees the request.
    Http500,
    /// HTTP 503 with an empty body; LocalStack never sees the request.
    Http503,
    /// HTTP 400 `ThrottlingException`; LocalStack never sees the request.
    Throttle,
    /// The request reaches LocalStack (so its effect happens); the
    /// response is held back for the proxy's slow delay.
    Slow,
    /// The request reaches LocalStack (so its effect happens); a successful
    /// response comes back with its JSON body cut short by one byte (so the
    /// SDK cannot parse it; the body still holds what LocalStack sent).
    Garble,
}

/// Which requests fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// None.
    PassThrough,
    /// Every request.
    Always(Fault),
    /// The first attempt of every SDK call (its `amz-sdk-request:
    /// attempt=1` header); retries pass.
    FirstAttempt(Fault),
    /// The first attempt of every call that writes (any operation but
    /// `Get*`, `BatchGet*`, `List*`, `Describe*`).
    FirstAttemptOfWrites(Fault),
    /// Every n-th request, but never the last attempt the SDK allows.
    OneIn(u64, Fault),
    /// Every n-th request, whatever the attempt: some calls fail.
    EveryNth(u64, Fault),
}

/// A request held by [`Proxy::hold`]; dropping it releases the request.
pub struct Hold(Arc<HoldState>);

impl Hold {
    /// Waits until the request is held at the proxy.
    pub async fn arrived(&self) {
        loop {
            let notified = self.0.arrived.notified();
            if self.0.has_arrived.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }

    /// Lets the held request (or the next one, if none came yet) through.
    pub fn release(&self) {
        if self.0.release.available_permits() == 0 {
            self.0.release.add_permits(1);
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.release();
    }
}

struct HoldState {
    operation: String,
    contains: Vec<String>,
    /// A request matched (later ones pass).
    taken: std::sync::atomic::AtomicBool,
    arrived: tokio::sync::Notify,
    has_arrived: std::sync::atomic::AtomicBool,
    release: tokio::sync::Semaphore,
}

/// Calls to fail on every attempt, from [`Proxy::fail_calls`].
struct Target {
    operation: String,
    contains: Vec<String>,
    /// Calls still to pick.
    calls: u64,
    fault: Fault,
    /// `amz-sdk-invocation-id`s of the calls picked.
    invocations: Vec<String>,
}

/// The call that [`Proxy::fail_call_number`] fails.
struct Numbered {
    /// 1-based number of the call to fail, counted from when it was set.
    call: usize,
    /// Every call from `call` on fails, not only that one.
    and_later: bool,
    fault: Fault,
    /// `amz-sdk-invocation-id`s of the calls seen since, in order.
    seen: Vec<String>,
}

struct State {
    schedule: Mutex<Schedule>,
    /// Requests to hold until the test releases them ([`Proxy::hold`]).
    holds: Mutex<Vec<Arc<HoldState>>>,
    /// Calls to fail on every attempt ([`Proxy::fail_calls`]).
    targets: Mutex<Vec<Target>>,
    /// The call picked by number ([`Proxy::fail_call_number`]).
    numbered: Mutex<Option<Numbered>>,
    /// Secrets whose `BatchGetSecretValue` answers show an older version
    /// ([`Proxy::lag_batch_reads`]): name, value and version id shown.
    lagging: Mutex<Vec<(String, String, String)>>,
    /// Whether a force-deleted name stays taken until [`Proxy::purge`]
    /// ([`Proxy::hold_deleted_names`]).
    holding_deleted: std::sync::atomic::AtomicBool,
    /// Force-deleted names whose purge has not finished.
    purging: Mutex<std::collections::BTreeSet<String>>,
    upstream: SocketAddr,
    slow: Duration,
    requests: AtomicU64,
    injected: AtomicU64,
    connections: Mutex<Vec<JoinHandle<()>>>,
}

impl State {
    fn schedule(&self) -> Schedule {
        *self.schedule.lock().unwrap()
    }

    /// The fault of a call picked by [`Proxy::fail_calls`], if it is one.
    fn targeted(&self, operation: &str, body: &str, invocation: Option<&str>) -> Option<Fault> {
        let mut targets = self.targets.lock().unwrap();
        for target in targets.iter_mut() {
            if invocation.is_some_and(|id| target.invocations.iter().any(|i| i == id)) {
                self.injected.fetch_add(1, Ordering::SeqCst);
                return Some(target.fault);
            }
        }
        for target in targets.iter_mut() {
            if target.calls > 0
                && target.operation == operation
                && target.contains.iter().all(|c| body.contains(c.as_str()))
            {
                target.calls -= 1;
                target.invocations.extend(invocation.map(str::to_owned));
                self.injected.fetch_add(1, Ordering::SeqCst);
                return Some(target.fault);
            }
        }
        None
    }

    /// The fault of a call picked by [`Proxy::fail_call_number`], if it is one.
    fn numbered(&self, invocation: Option<&str>) -> Option<Fault> {
        let invocation = invocation?;
        let mut numbered = self.numbered.lock().unwrap();
        let numbered = numbered.as_mut()?;
        let position = match numbered.seen.iter().position(|i| i == invocation) {
            Some(position) => position,
            None => {
                numbered.seen.push(invocation.to_owned());
                numbered.seen.len() - 1
            }
        };
        let number = position + 1;
        let picked = number == numbered.call || (numbered.and_later && number > numbered.call);
        if picked {
            self.injected.fetch_add(1, Ordering::SeqCst);
        }
        picked.then_some(numbered.fault)
    }

    /// Waits while a [`Proxy::hold`] holds this request.
    async fn wait_if_held(&self, operation: &str, body: &str) {
        let hold = self.holds.lock().unwrap().iter().find_map(|hold| {
            let matches = hold.operation == operation
                && hold.contains.iter().all(|c| body.contains(c.as_str()));
            (matches && !hold.taken.swap(true, Ordering::SeqCst)).then(|| Arc::clone(hold))
        });
        if let Some(hold) = hold {
            hold.has_arrived.store(true, Ordering::SeqCst);
            hold.arrived.notify_waiters();
            let _ = hold.release.acquire().await;
        }
    }

    /// `response` (to a `BatchGetSecretValue`) with the secrets of
    /// [`Proxy::lag_batch_reads`] shown at their older version.
    fn lagged(&self, mut response: Message) -> Message {
        let lagging = self.lagging.lock().unwrap().clone();
        if lagging.is_empty() || !response.head[0].contains(" 200 ") {
            return response;
        }
        let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(&response.body) else {
            return response;
        };
        if let Some(values) = json
            .get_mut("SecretValues")
            .and_then(serde_json::Value::as_array_mut)
        {
            for value in values {
                let name = value.get("Name").and_then(|n| n.as_str()).unwrap_or("");
                if let Some((_, old, version)) = lagging.iter().find(|(n, _, _)| n == name) {
                    value["SecretString"] = serde_json::Value::from(old.as_str());
                    value["VersionId"] = serde_json::Value::from(version.as_str());
                }
            }
        }
        response.body = serde_json::to_vec(&json).unwrap_or(response.body);
        response
    }

    /// The refusal AWS sends to a `CreateSecret` of a name still purging.
    fn refused_as_purging(&self, operation: &str, body: &str) -> Option<Vec<u8>> {
        if operation != "CreateSecret" {
            return None;
        }
        let json: serde_json::Value = serde_json::from_str(body).ok()?;
        let name = json.get("Name")?.as_str()?;
        if !self.purging.lock().unwrap().contains(name) {
            return None;
        }
        self.injected.fetch_add(1, Ordering::SeqCst);
        Some(canned(
            "400 Bad Request",
            &[
                "x-amzn-ErrorType: InvalidRequestException",
                "Content-Type: application/x-amz-json-1.1",
            ],
            r#"{"__type":"InvalidRequestException","message":"You can't create this secret because a secret with this name is already scheduled for deletion."}"#,
        ))
    }

    /// Records a force-deleted name as purging, when names are held.
    fn note_delete(&self, body: &str, response: &Message, existed: bool) {
        if !existed
            || !self.holding_deleted.load(Ordering::SeqCst)
            || !response.head[0].contains(" 200 ")
        {
            return;
        }
        let Ok(json) = serde_json::from_str::<serde_json::Value>(body) else {
            return;
        };
        let forced = json
            .get("ForceDeleteWithoutRecovery")
            .and_then(serde_json::Value::as_bool)
            == Some(true);
        if let (true, Some(name)) = (forced, json.get("SecretId").and_then(|n| n.as_str())) {
            self.purging.lock().unwrap().insert(name.to_owned());
        }
    }

    fn decide(&self, operation: &str, attempt: u64, max: u64) -> Option<Fault> {
        let n = self.requests.fetch_add(1, Ordering::SeqCst);
        let fault = match self.schedule() {
            Schedule::PassThrough => None,
            Schedule::Always(fault) => Some(fault),
            Schedule::FirstAttempt(fault) => (attempt <= 1).then_some(fault),
            Schedule::FirstAttemptOfWrites(fault) => {
                let read = ["Get", "BatchGet", "List", "Describe"]
                    .iter()
                    .any(|verb| operation.starts_with(verb));
                (attempt <= 1 && !read).then_some(fault)
            }
            Schedule::OneIn(every, fault) => {
                (n.is_multiple_of(every) && attempt < max).then_some(fault)
            }
            Schedule::EveryNth(every, fault) => n.is_multiple_of(every).then_some(fault),
        };
        if fault.is_some() {
            self.injected.fetch_add(1, Ordering::SeqCst);
        }
        fault
    }
}

/// The proxy; dropping it stops it.
pub struct Proxy {
    addr: SocketAddr,
    state: Arc<State>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(accept) = self.accept.lock().unwrap().take() {
            accept.abort();
        }
        for connection in self.state.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }
}

impl Proxy {
    /// A pass-through proxy to `upstream` (`http://host:port`) on a random
    /// local port; `slow` is how long [`Fault::Slow`] holds a response.
    pub async fn start(upstream: &str, slow: Duration) -> Self {
        let hostport = upstream.trim_start_matches("http://").trim_end_matches('/');
        let upstream = tokio::net::lookup_host(hostport)
            .await
            .expect("resolving the LocalStack endpoint")
            .next()
            .expect("an address for the LocalStack endpoint");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            schedule: Mutex::new(Schedule::PassThrough),
            holds: Mutex::new(Vec::new()),
            targets: Mutex::new(Vec::new()),
            numbered: Mutex::new(None),
            lagging: Mutex::new(Vec::new()),
            holding_deleted: std::sync::atomic::AtomicBool::new(false),
            purging: Mutex::new(std::collections::BTreeSet::new()),
            upstream,
            slow,
            requests: AtomicU64::new(0),
            injected: AtomicU64::new(0),
            connections: Mutex::new(Vec::new()),
        });
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&state)));
        Self {
            addr,
            state,
            accept: Mutex::new(Some(accept)),
        }
    }

    /// The endpoint URL to give the SDK.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many requests had a fault injected so far.
    pub fn injected(&self) -> u64 {
        self.state.injected.load(Ordering::SeqCst)
    }

    /// Holds the next request of `operation` whose body contains every
    /// string of `contains` before it reaches LocalStack, until the returned
    /// [`Hold`] is released (or dropped): a hook that orders a step of the
    /// store under test after what the test does meanwhile. Give the store
    /// an attempt timeout longer than the hold, or the SDK retries around it.
    pub fn hold(&self, operation: &str, contains: &[&str]) -> Hold {
        let state = Arc::new(HoldState {
            operation: operation.to_owned(),
            contains: contains.iter().map(|c| (*c).to_owned()).collect(),
            taken: std::sync::atomic::AtomicBool::new(false),
            arrived: tokio::sync::Notify::new(),
            has_arrived: std::sync::atomic::AtomicBool::new(false),
            release: tokio::sync::Semaphore::new(0),
        });
        self.state.holds.lock().unwrap().push(Arc::clone(&state));
        Hold(state)
    }

    /// Fails every attempt (the SDK's retries included: they share the
    /// call's `amz-sdk-invocation-id`) of the next `calls` SDK calls of
    /// `operation` whose body contains every string of `contains`, with `fault`; other
    /// requests follow the schedule. A call that fails past the SDK's
    /// retries, exactly where the test wants it.
    pub fn fail_calls(&self, operation: &str, contains: &[&str], calls: u64, fault: Fault) {
        assert_ne!(fault, Fault::Refuse, "a refusal cannot pick requests");
        self.state.targets.lock().unwrap().push(Target {
            operation: operation.to_owned(),
            contains: contains.iter().map(|c| (*c).to_owned()).collect(),
            calls,
            fault,
            invocations: Vec::new(),
        });
    }

    /// Fails every attempt of the `call`-th SDK call from now on (1-based,
    /// calls told apart by their `amz-sdk-invocation-id`, so the SDK's
    /// retries of a call count once) with `fault`, and with `and_later`
    /// every call after it too (a process that dies between two calls:
    /// use [`Fault::Drop`]). Replaces the call picked before; other
    /// requests follow the targets and the schedule. The fault a test wants
    /// on a store operation's n-th call, whatever that call is.
    pub fn fail_call_number(&self, call: usize, fault: Fault, and_later: bool) {
        assert!(call >= 1, "calls are numbered from 1");
        assert_ne!(fault, Fault::Refuse, "a refusal cannot pick requests");
        *self.state.numbered.lock().unwrap() = Some(Numbered {
            call,
            and_later,
            fault,
            seen: Vec::new(),
        });
    }

    /// Forgets the call [`Proxy::fail_call_number`] picked, and the calls
    /// [`Proxy::fail_calls`] picked and has not failed yet: requests
    /// follow the schedule alone.
    pub fn clear_call_faults(&self) {
        *self.state.numbered.lock().unwrap() = None;
        self.state.targets.lock().unwrap().clear();
    }

    /// Whether the call [`Proxy::fail_call_number`] picked has come (and failed).
    pub fn picked_call_came(&self) -> bool {
        self.state
            .numbered
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|n| n.seen.len() >= n.call)
    }

    /// From now on, `BatchGetSecretValue` answers show secret `name` with
    /// `value` and `version_id` (an older version), while `GetSecretValue`
    /// follows its `AWSCURRENT` label: what LocalStack 4.13 does after an
    /// `UpdateSecretVersionStage` that failed half-way under concurrent
    /// load, which no sequence of calls makes it do on purpose.
    pub fn lag_batch_reads(&self, name: &str, value: &str, version_id: &str) {
        self.state.lagging.lock().unwrap().push((
            name.to_owned(),
            value.to_owned(),
            version_id.to_owned(),
        ));
    }

    /// From now on, a name deleted with `ForceDeleteWithoutRecovery` stays
    /// taken, as AWS keeps it while its background purge runs: a
    /// `CreateSecret` of it answers `InvalidRequestException` ("already
    /// scheduled for deletion") until [`Proxy::purge`] frees it, however long
    /// that is (LocalStack frees the name at once). Other calls on the name
    /// answer as for an absent secret, as LocalStack already does.
    pub fn hold_deleted_names(&self) {
        self.state.holding_deleted.store(true, Ordering::SeqCst);
    }

    /// The names whose purge has not finished ([`Proxy::hold_deleted_names`]).
    pub fn purging(&self) -> Vec<String> {
        self.state.purging.lock().unwrap().iter().cloned().collect()
    }

    /// Finishes the purge of every held name: they can be created again.
    pub fn purge(&self) {
        self.state.purging.lock().unwrap().clear();
    }

    /// Switches to `schedule`. [`Schedule::Always`]`(`[`Fault::Refuse`]`)`
    /// closes the listening socket and every open connection; any other
    /// schedule listens again on the same port.
    pub async fn set(&self, schedule: Schedule) {
        assert!(
            !matches!(
                schedule,
                Schedule::FirstAttempt(Fault::Refuse)
                    | Schedule::FirstAttemptOfWrites(Fault::Refuse)
                    | Schedule::OneIn(_, Fault::Refuse)
                    | Schedule::EveryNth(_, Fault::Refuse)
            ),
            "a refusal cannot pick requests: use Always(Refuse)"
        );
        *self.state.schedule.lock().unwrap() = schedule;
        let refusing = schedule == Schedule::Always(Fault::Refuse);
        let running = self.accept.lock().unwrap().take();
        match (refusing, running) {
            (true, Some(accept)) => {
                accept.abort();
                let _ = accept.await; // the listener is closed once this returns
                let connections: Vec<_> =
                    self.state.connections.lock().unwrap().drain(..).collect();
                for connection in connections {
                    connection.abort();
                    let _ = connection.await;
                }
            }
            (false, None) => {
                let listener = TcpListener::bind(self.addr)
                    .await
                    .expect("listening again on the proxy's port");
                *self.accept.lock().unwrap() =
                    Some(tokio::spawn(accept_loop(listener, Arc::clone(&self.state))));
            }
            (_, running) => *self.accept.lock().unwrap() = running,
        }
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    while let Ok((stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        let task = tokio::spawn(serve(Arc::clone(&state), stream));
        let mut connections = state.connections.lock().unwrap();
        connections.retain(|c| !c.is_finished());
        connections.push(task);
    }
}

/// An HTTP/1.1 message: its head (start line and headers, without the
/// blank line) and its whole body.
struct Message {
    head: Vec<String>,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.iter().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then_some(value.trim())
        })
    }

    /// The message framed by `Content-Length` (a chunked body is sent dechunked).
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::new();
        for (n, line) in self.head.iter().enumerate() {
            let name = line
                .split_once(':')
                .map(|(k, _)| k.trim().to_ascii_lowercase());
            if n > 0
                && matches!(
                    name.as_deref(),
                    Some("content-length") | Some("transfer-encoding")
                )
            {
                continue;
            }
            out.push_str(line);
            out.push_str("\r\n");
        }
        out.push_str(&format!("Content-Length: {}\r\n\r\n", self.body.len()));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// Reads one message; `Ok(None)` at a clean end of stream.
async fn read_message<R: AsyncBufReadExt + Unpin>(
    reader: &mut R,
    is_response: bool,
) -> std::io::Result<Option<Message>> {
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(std::io::ErrorKind::UnexpectedEof.into())
            };
        }
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        if line.is_empty() {
            if head.is_empty() {
                continue;
            }
            break;
        }
        head.push(line);
    }
    let mut message = Message {
        head,
        body: Vec::new(),
    };
    let chunked = message
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).await?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidData))?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).await?;
            chunk.truncate(size);
            message.body.extend_from_slice(&chunk);
            if size == 0 {
                break;
            }
        }
    } else if let Some(length) = message.header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidData))?;
        message.body = vec![0; length];
        reader.read_exact(&mut message.body).await?;
    } else if is_response {
        reader.read_to_end(&mut message.body).await?;
    }
    Ok(Some(message))
}

/// The SDK's `amz-sdk-request: attempt=N; max=M`, as (N, M).
fn attempt_of(request: &Message) -> (u64, u64) {
    let mut attempt = 1;
    let mut max = 1;
    for part in request.header("amz-sdk-request").unwrap_or("").split(';') {
        match part.trim().split_once('=') {
            Some(("attempt", n)) => attempt = n.parse().unwrap_or(1),
            Some(("max", n)) => max = n.parse().unwrap_or(1),
            _ => {}
        }
    }
    (attempt, max)
}

/// Sends `request` to LocalStack and reads its response.
///
/// LocalStack 4.13 (moto) answers `InternalError: dictionary changed size
/// during iteration` when a request looks a secret up while another creates
/// or deletes one (its secrets map is scanned without a lock). That fault is
/// LocalStack's, not one this proxy injects, and it happens before the
/// request has any effect, so the proxy retries it: the tests then see
/// exactly the faults they ask for.
async fn forward(upstream: std::net::SocketAddr, request: &Message) -> std::io::Result<Message> {
    let mut tries = 0;
    loop {
        let mut stream = BufReader::new(TcpStream::connect(upstream).await?);
        stream.get_mut().write_all(&request.to_bytes()).await?;
        let response = read_message(&mut stream, true)
            .await?
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
        tries += 1;
        let localstack_race = response.head[0].contains(" 500 ")
            && String::from_utf8_lossy(&response.body).contains("changed size during iteration");
        if !localstack_race || tries >= 10 {
            return Ok(response);
        }
        tokio::time::sleep(Duration::from_millis(10 * tries)).await;
    }
}

/// Whether the secret a `DeleteSecret` request names exists upstream (a
/// `DescribeSecret` made from the request; LocalStack does not check the
/// signature).
async fn exists(upstream: std::net::SocketAddr, request: &Message, body: &str) -> bool {
    let Some(id) = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|json| json.get("SecretId")?.as_str().map(str::to_owned))
    else {
        return false;
    };
    let head = request
        .head
        .iter()
        .map(|line| match line.split_once(':') {
            Some((key, _)) if key.trim().eq_ignore_ascii_case("x-amz-target") => {
                "X-Amz-Target: secretsmanager.DescribeSecret".to_owned()
            }
            _ => line.clone(),
        })
        .collect();
    let describe = Message {
        head,
        body: serde_json::to_vec(&serde_json::json!({ "SecretId": id })).unwrap_or_default(),
    };
    forward(upstream, &describe)
        .await
        .is_ok_and(|response| response.head[0].contains(" 200 "))
}

fn canned(status: &str, headers: &[&str], body: &str) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\nx-amzn-RequestId: fault-proxy\r\n");
    for header in headers {
        out.push_str(header);
        out.push_str("\r\n");
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    out.into_bytes()
}

/// Closes with a TCP reset rather than a clean FIN.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn serve(state: Arc<State>, stream: TcpStream) {
    let mut client = BufReader::new(stream);
    loop {
        let request = match read_message(&mut client, false).await {
            Ok(Some(request)) => request,
            _ => return,
        };
        let (attempt, max) = attempt_of(&request);
        let operation = request
            .header("x-amz-target")
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or("")
            .to_owned();
        let body = String::from_utf8_lossy(&request.body).into_owned();
        state.wait_if_held(&operation, &body).await;
        if let Some(refusal) = state.refused_as_purging(&operation, &body) {
            if client.get_mut().write_all(&refusal).await.is_err() {
                return;
            }
            continue;
        }
        let invocation = request.header("amz-sdk-invocation-id").map(str::to_owned);
        let fault = match state.numbered(invocation.as_deref()) {
            Some(fault) => Some(fault),
            None => match state.targeted(&operation, &body, invocation.as_deref()) {
                Some(fault) => Some(fault),
                None => state.decide(&operation, attempt, max),
            },
        };
        // Only a name that exists is held once deleted: Secrets Manager (and
        // LocalStack) answer a forced delete of an absent name with success,
        // and there is nothing to purge then.
        let existed = operation == "DeleteSecret"
            && fault.is_none()
            && state.holding_deleted.load(Ordering::SeqCst)
            && exists(state.upstream, &request, &body).await;
        let reply = match fault {
            None => match forward(state.upstream, &request).await {
                Ok(response) if operation == "BatchGetSecretValue" => {
                    state.lagged(response).to_bytes()
                }
                Ok(response) if operation == "DeleteSecret" => {
                    state.note_delete(&body, &response, existed);
                    response.to_bytes()
                }
                Ok(response) => response.to_bytes(),
                Err(_) => return reset(client.into_inner()),
            },
            Some(Fault::Refuse | Fault::Drop) => return reset(client.into_inner()),
            Some(Fault::ResetMidResponse) => {
                let Ok(response) = forward(state.upstream, &request).await else {
                    return reset(client.into_inner());
                };
                let bytes = response.to_bytes();
                let head_len = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0) + 4;
                let cut = head_len + (bytes.len() - head_len) / 2;
                let mut stream = client.into_inner();
                let _ = stream.write_all(&bytes[..cut.max(1)]).await;
                let _ = stream.flush().await;
                // Let the partial response reach the client before the reset.
                tokio::time::sleep(Duration::from_millis(20)).await;
                return reset(stream);
            }
            Some(Fault::Http500) => canned(
                "500 Internal Server Error",
                &["Content-Type: text/html"],
                "<html><body>Internal Server Error</body></html>",
            ),
            Some(Fault::Http503) => canned("503 Service Unavailable", &[], ""),
            Some(Fault::Throttle) => canned(
                "400 Bad Request",
                &[
                    "x-amzn-ErrorType: ThrottlingException",
                    "Content-Type: application/x-amz-json-1.1",
                ],
                r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
            ),
            Some(Fault::Garble) => {
                let Ok(mut response) = forward(state.upstream, &request).await else {
                    return reset(client.into_inner());
                };
                if response.head[0].contains(" 200 ") {
                    response.body.pop();
                }
                response.to_bytes()
            }
            Some(Fault::Slow) => {
                let response = forward(state.upstream, &request).await;
                tokio::time::sleep(state.slow).await;
                match response {
                    Ok(response) => response.to_bytes(),
                    Err(_) => return reset(client.into_inner()),
                }
            }
        };
        if client.get_mut().write_all(&reply).await.is_err() {
            return;
        }
    }
}

/// A Secrets Manager client for `endpoint` (e.g. [`Proxy::url`]) with
/// LocalStack's region and credentials and its own retry partition, so that
/// tests in one binary never drain each other's retry quota (the SDK shares
/// one quota per partition, process-wide). `backoff` is the initial retry
/// backoff (the SDK's default is 1 s); the SDK's default of 3 attempts.
pub async fn client_for(endpoint: &str, backoff: Duration) -> aws_sdk_secretsmanager::Client {
    use aws_sdk_secretsmanager::config::retry::RetryConfig;
    client_with(
        endpoint,
        RetryConfig::standard().with_initial_backoff(backoff),
    )
    .await
}

/// A client straight to LocalStack for setting up and checking a test (not
/// the client under test): 10 attempts, so that LocalStack's own sporadic
/// `InternalError`s under concurrent load (see [`forward`]) cannot fail a
/// test's setup.
pub async fn checking_client() -> aws_sdk_secretsmanager::Client {
    use aws_sdk_secretsmanager::config::retry::RetryConfig;
    let endpoint = crate::common::localstack().await;
    client_with(
        endpoint,
        RetryConfig::standard()
            .with_max_attempts(10)
            .with_initial_backoff(Duration::from_millis(50)),
    )
    .await
}

async fn client_with(
    endpoint: &str,
    retry: aws_sdk_secretsmanager::config::retry::RetryConfig,
) -> aws_sdk_secretsmanager::Client {
    use aws_sdk_secretsmanager::config::retry::RetryPartition;
    use aws_sdk_secretsmanager::config::{Credentials, Region};

    crate::common::localstack().await;
    let sdk_config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "fault-proxy"))
        .retry_config(retry)
        .load()
        .await;
    let config = aws_sdk_secretsmanager::config::Builder::from(&sdk_config)
        .retry_partition(RetryPartition::new(format!(
            "fault-proxy-{}",
            uuid::Uuid::new_v4().simple()
        )))
        .build();
    aws_sdk_secretsmanager::Client::from_conf(config)
}
