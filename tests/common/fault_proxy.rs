//! A fault-injecting HTTP/1.1 proxy for the AWS tests: it listens on 127.0.0.1 (a free
//! port), reads each request of a client connection, and either forwards it to the
//! emulator's endpoint or answers it with a fault chosen by a programmable plan (503
//! `SlowDown`, 500 `InternalError`, 403 `AccessDenied`, a connection reset, a body cut
//! off half-way). moto cannot produce these faults itself.
//!
//! ```ignore
//! let proxy = FaultProxy::start(&moto.endpoint);
//! // The first two GetObject requests of this key (a request and its first retry).
//! proxy.add(Rule::new(Fault::SlowDown).op(Op::GetObject).key(&key).first_per_resource(2));
//! // Every third ListObjectsV2 request.
//! proxy.add(Rule::new(Fault::Reset).op(Op::ListObjectsV2).every(3));
//! // Everything, for ten seconds from the 10th forwarded GetObject on.
//! proxy.add(Rule::new(Fault::SlowDown).armed_after(Op::GetObject, 10).lasting(Duration::from_secs(10)));
//! /* point the client at proxy.endpoint */
//! let log = proxy.log(); // per request: method, path, query, attempt, what was done
//! ```
//!
//! **Plan.** Rules are tried in the order they were added; the first that fires decides
//! the request, the others do not see it (their counters do not move). A rule matches
//! by operation, key, or any predicate, fires always, for its first N matching
//! requests, for the first N of each distinct resource (method, path and query: a
//! request and the SDK's retries of it), or for every Nth matching request, optionally
//! only within a time window (from when it is added or armed). Requests no rule fires
//! for are forwarded.
//!
//! **Forwarding.** One upstream connection per request, sent with `Connection: close`;
//! the response is read to its end and relayed (a chunked response is re-framed with
//! `Content-Length`). The client connection is kept alive unless the client asks to
//! close it. Request bodies with `Content-Length` or `Transfer-Encoding: chunked` are
//! read (the chunked ones are forwarded with `Content-Length`); `Expect: 100-continue`
//! is answered at once.
//!
//! **Faults.** `SlowDown`, `InternalError` and `AccessDenied` answer with S3's XML error
//! document (`<Error><Code>SlowDown</Code><Message>Please reduce your request
//! rate.</Message>…`) and status 503, 500 or 403, so the SDK classifies them as
//! throttling, transient or not retryable errors (JSON-protocol services such as SQS
//! get the same body and are classified by status alone). `Reset` reads the request and closes the connection with `SO_LINGER` 0 (a
//! TCP RST, no response). `Truncate` forwards the request, relays the response head and
//! half of its body, then resets.
//!
//! **Log.** Every request is logged before its answer is written, so it is in
//! [`FaultProxy::log`] by the time the client has the response.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest request or response head read.
const MAX_HEAD: usize = 64 * 1024;
/// How long a forwarded request may wait for the upstream's answer (SQS long polls
/// are at most 20 s).
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(120);

/// What the proxy does instead of forwarding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// `503 Slow Down` with S3's `SlowDown` error (throttling).
    SlowDown,
    /// `500 Internal Server Error` with S3's `InternalError` error (transient).
    InternalError,
    /// `403 Forbidden` with S3's `AccessDenied` error (not retried).
    AccessDenied,
    /// The request is read, then the connection is reset without an answer.
    Reset,
    /// Forwarded, then the response head and half its body are relayed and the
    /// connection is reset.
    Truncate,
}

impl Fault {
    /// The faults a retry can get past, in order (not `AccessDenied`).
    pub const TRANSIENT: [Fault; 4] = [
        Fault::SlowDown,
        Fault::InternalError,
        Fault::Reset,
        Fault::Truncate,
    ];

    /// The S3 error answered for it: status, reason phrase, code, message.
    fn s3_error(self) -> Option<(u16, &'static str, &'static str, &'static str)> {
        match self {
            Fault::SlowDown => Some((
                503,
                "Slow Down",
                "SlowDown",
                "Please reduce your request rate.",
            )),
            Fault::InternalError => Some((
                500,
                "Internal Server Error",
                "InternalError",
                "We encountered an internal error. Please try again.",
            )),
            Fault::AccessDenied => Some((403, "Forbidden", "AccessDenied", "Access Denied")),
            Fault::Reset | Fault::Truncate => None,
        }
    }

    /// Whether the SDK sees it before any response head (and so retries it itself).
    pub fn before_response(self) -> bool {
        !matches!(self, Fault::Truncate)
    }
}

/// The operation of a request, as far as the proxy tells them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// S3 `GET /bucket?list-type=2&…` (path style).
    ListObjectsV2,
    /// S3 `GET /bucket/key` (path style).
    GetObject,
    /// A JSON-protocol call (`X-Amz-Target` header: SQS, CloudWatch Logs).
    Json,
    /// Anything else.
    Other,
}

/// One request as the proxy read it.
#[derive(Clone, Debug)]
pub struct Request {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path as sent (percent-encoded).
    pub raw_path: String,
    /// The query string as sent, without `?` (empty when there is none).
    pub raw_query: String,
    /// The operation.
    pub op: Op,
    /// Path-style S3 bucket (None for `/`).
    pub bucket: Option<String>,
    /// Path-style S3 key, percent-decoded (None for a bucket-level request).
    pub key: Option<String>,
    /// The operation name of a JSON-protocol call (`ReceiveMessage`, `DeleteMessage`).
    pub operation: Option<String>,
    /// The SDK's attempt number (`amz-sdk-request: attempt=2; max=3`).
    pub attempt: Option<u32>,
    /// The SDK's attempt limit from the same header.
    pub max_attempts: Option<u32>,
    /// The request body (decoded when it was chunked).
    pub body: Vec<u8>,
}

impl Request {
    /// Method, path and query: the same for a request and the SDK's retries of it.
    pub fn resource(&self) -> String {
        if self.raw_query.is_empty() {
            format!("{} {}", self.method, self.raw_path)
        } else {
            format!("{} {}?{}", self.method, self.raw_path, self.raw_query)
        }
    }

    /// The first value of query parameter `name`, decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.raw_query.split('&').find_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (super::moto::percent_decode(k, true) == name)
                .then(|| super::moto::percent_decode(v, true))
        })
    }

    /// The `prefix` of a ListObjectsV2.
    pub fn list_prefix(&self) -> Option<String> {
        (self.op == Op::ListObjectsV2).then(|| self.query_param("prefix").unwrap_or_default())
    }
}

/// What the proxy did with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Forwarded; the upstream's status code.
    Forwarded(u16),
    /// Answered or cut by the proxy.
    Injected(Fault),
    /// Forwarding failed (the upstream could not be reached or did not answer); the
    /// client connection was reset.
    UpstreamFailed(String),
}

/// One logged request.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Arrival order, from 0.
    pub seq: u64,
    /// The request.
    pub request: Request,
    /// What was done.
    pub outcome: Outcome,
}

impl Entry {
    /// The fault injected, if any.
    pub fn fault(&self) -> Option<Fault> {
        match self.outcome {
            Outcome::Injected(f) => Some(f),
            _ => None,
        }
    }

    /// Whether it was forwarded and the upstream answered `status`.
    pub fn forwarded(&self, status: u16) -> bool {
        self.outcome == Outcome::Forwarded(status)
    }
}

type Predicate = Box<dyn Fn(&Request) -> bool + Send>;

/// When a rule fires among the requests it matches.
#[derive(Clone, Copy, Debug)]
enum Budget {
    Always,
    First(u64),
    FirstPerResource(u64),
    Every(u64),
}

/// One entry of the plan: which requests, which fault, how often, when.
pub struct Rule {
    fault: Fault,
    op: Option<Op>,
    matches: Vec<Predicate>,
    budget: Budget,
    lasting: Option<Duration>,
    armed_after: Option<(Op, u64)>,
    // State.
    added: Option<Instant>,
    armed_at: Option<Instant>,
    matched: u64,
    fired: u64,
    per_resource: HashMap<String, u64>,
}

impl Rule {
    /// A rule that injects `fault` into every request (narrow it with the methods
    /// below).
    pub fn new(fault: Fault) -> Rule {
        Rule {
            fault,
            op: None,
            matches: Vec::new(),
            budget: Budget::Always,
            lasting: None,
            armed_after: None,
            added: None,
            armed_at: None,
            matched: 0,
            fired: 0,
            per_resource: HashMap::new(),
        }
    }

    /// Only requests of this operation.
    pub fn op(mut self, op: Op) -> Rule {
        self.op = Some(op);
        self
    }

    /// Only requests for this S3 key.
    pub fn key(self, key: &str) -> Rule {
        let key = key.to_string();
        self.matching(move |r| r.key.as_deref() == Some(key.as_str()))
    }

    /// Only requests for one of these S3 keys.
    pub fn keys<I: IntoIterator<Item = String>>(self, keys: I) -> Rule {
        let keys: std::collections::BTreeSet<String> = keys.into_iter().collect();
        self.matching(move |r| r.key.as_ref().is_some_and(|k| keys.contains(k)))
    }

    /// Only requests for which `f` holds (several conditions must all hold).
    pub fn matching(mut self, f: impl Fn(&Request) -> bool + Send + 'static) -> Rule {
        self.matches.push(Box::new(f));
        self
    }

    /// Fires for the first `n` matching requests only.
    pub fn first(mut self, n: u64) -> Rule {
        self.budget = Budget::First(n);
        self
    }

    /// Fires for the first `n` matching requests of each resource (method, path and
    /// query): with `n` below the SDK's attempts, every request succeeds in the end.
    pub fn first_per_resource(mut self, n: u64) -> Rule {
        self.budget = Budget::FirstPerResource(n);
        self
    }

    /// Fires for every `n`th matching request (the `n`th, `2n`th, …).
    pub fn every(mut self, n: u64) -> Rule {
        self.budget = Budget::Every(n.max(1));
        self
    }

    /// Fires only for `d` from when it is added (or armed, with `armed_after`).
    pub fn lasting(mut self, d: Duration) -> Rule {
        self.lasting = Some(d);
        self
    }

    /// Does nothing until `n` requests of `op` have been forwarded; `lasting` counts
    /// from then.
    pub fn armed_after(mut self, op: Op, n: u64) -> Rule {
        self.armed_after = Some((op, n));
        self
    }

    fn decide(&mut self, r: &Request, now: Instant, forwarded: &HashMap<Op, u64>) -> bool {
        if let Some((op, n)) = self.armed_after
            && self.armed_at.is_none()
        {
            if forwarded.get(&op).copied().unwrap_or(0) < n {
                return false;
            }
            self.armed_at = Some(now);
        }
        let start = self.armed_at.or(self.added).unwrap_or(now);
        if self.lasting.is_some_and(|d| now >= start + d) {
            return false;
        }
        if self.op.is_some_and(|op| op != r.op) || !self.matches.iter().all(|m| m(r)) {
            return false;
        }
        self.matched += 1;
        let fire = match self.budget {
            Budget::Always => true,
            Budget::First(n) => self.fired < n,
            Budget::FirstPerResource(n) => {
                let c = self.per_resource.entry(r.resource()).or_default();
                *c += 1;
                *c <= n
            }
            Budget::Every(n) => self.matched.is_multiple_of(n),
        };
        if fire {
            self.fired += 1;
        }
        fire
    }

    /// Whether the rule can fire no more: its window is over.
    fn expired(&self, now: Instant) -> bool {
        let start = match (self.armed_after, self.armed_at) {
            (Some(_), None) => return false,
            (_, Some(t)) => t,
            (None, None) => self.added.unwrap_or(now),
        };
        self.lasting.is_some_and(|d| now >= start + d)
    }
}

struct Plan {
    rules: Vec<Rule>,
    forwarded: HashMap<Op, u64>,
}

struct Shared {
    upstream: SocketAddr,
    plan: Mutex<Plan>,
    log: Mutex<Vec<Entry>>,
    seq: AtomicU64,
    stop: AtomicBool,
}

/// A running proxy; stops accepting when dropped (connections already open are served
/// until their client closes them).
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The port it listens on.
    pub port: u16,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`http://127.0.0.1:PORT`, plain HTTP) with an empty
    /// plan: everything is forwarded.
    pub fn start(upstream: &str) -> FaultProxy {
        let hostport = upstream
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("fault proxy: {upstream:?} is not an http:// endpoint"))
            .trim_end_matches('/');
        let upstream: SocketAddr = hostport
            .parse()
            .unwrap_or_else(|e| panic!("fault proxy: upstream {hostport:?}: {e}"));
        let listener = TcpListener::bind("127.0.0.1:0").expect("fault proxy: bind 127.0.0.1:0");
        let port = listener
            .local_addr()
            .expect("fault proxy: local addr")
            .port();
        let shared = Arc::new(Shared {
            upstream,
            plan: Mutex::new(Plan {
                rules: Vec::new(),
                forwarded: HashMap::new(),
            }),
            log: Mutex::new(Vec::new()),
            seq: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let sh = shared.clone();
        std::thread::Builder::new()
            .name("fault-proxy-accept".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if sh.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let sh = sh.clone();
                    let _ = std::thread::Builder::new()
                        .name("fault-proxy-conn".into())
                        .spawn(move || serve(conn, &sh));
                }
            })
            .expect("fault proxy: accept thread");
        FaultProxy {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            shared,
        }
    }

    /// Adds a rule at the end of the plan; a `lasting` window starts now (or when the
    /// rule is armed).
    pub fn add(&self, mut rule: Rule) {
        rule.added = Some(Instant::now());
        self.shared.plan.lock().expect("plan").rules.push(rule);
    }

    /// Removes every rule: everything is forwarded from now on.
    pub fn clear(&self) {
        self.shared.plan.lock().expect("plan").rules.clear();
    }

    /// Whether every rule with a window has seen its window end (rules without one
    /// never expire).
    pub fn windows_over(&self) -> bool {
        let now = Instant::now();
        let plan = self.shared.plan.lock().expect("plan");
        plan.rules
            .iter()
            .filter(|r| r.lasting.is_some())
            .all(|r| r.expired(now))
    }

    /// Every request so far, in arrival order.
    pub fn log(&self) -> Vec<Entry> {
        let mut l = self.shared.log.lock().expect("log").clone();
        l.sort_by_key(|e| e.seq);
        l
    }

    /// Forgets the log.
    pub fn clear_log(&self) {
        self.shared.log.lock().expect("log").clear();
    }

    /// How often each fault was injected into each operation.
    pub fn fault_counts(&self) -> BTreeMap<(Op, Fault), usize> {
        let mut out = BTreeMap::new();
        for e in self.log() {
            if let Some(f) = e.fault() {
                *out.entry((e.request.op, f)).or_default() += 1;
            }
        }
        out
    }

    /// One line per operation: requests, forwarded by status, injected by fault.
    pub fn summary(&self) -> String {
        let mut by_op: BTreeMap<Op, BTreeMap<String, usize>> = BTreeMap::new();
        for e in self.log() {
            let what = match &e.outcome {
                Outcome::Forwarded(s) => format!("forwarded {s}"),
                Outcome::Injected(f) => format!("{f:?}"),
                Outcome::UpstreamFailed(_) => "upstream failed".to_string(),
            };
            *by_op
                .entry(e.request.op)
                .or_default()
                .entry(what)
                .or_default() += 1;
        }
        by_op
            .iter()
            .map(|(op, m)| {
                let parts: Vec<String> = m.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
                format!("{op:?}: {}", parts.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A request read off the client connection, with what relaying it needs.
struct Incoming {
    request: Request,
    /// Request line and headers, without the framing and connection headers.
    head_lines: Vec<String>,
    /// Whether the client asked to close after this request.
    close: bool,
}

/// Serves one client connection until it closes, a fault ends it, or reading fails.
fn serve(client: TcpStream, sh: &Shared) {
    let _ = client.set_nodelay(true);
    let Ok(write_half) = client.try_clone() else {
        return;
    };
    let mut out = write_half;
    let mut reader = BufReader::new(client);
    loop {
        let inc = match read_request(&mut reader, &mut out) {
            Ok(Some(inc)) => inc,
            Ok(None) => return,
            Err(e) => {
                let _ = respond_plain(&mut out, 400, "Bad Request", &e.to_string());
                return;
            }
        };
        let keep = handle(inc, &mut out, sh);
        if !keep {
            return;
        }
    }
}

/// Decides and answers one request; false when the connection must end.
fn handle(inc: Incoming, out: &mut TcpStream, sh: &Shared) -> bool {
    let fault = {
        let now = Instant::now();
        let mut plan = sh.plan.lock().expect("plan");
        let Plan { rules, forwarded } = &mut *plan;
        rules
            .iter_mut()
            .find_map(|r| r.decide(&inc.request, now, forwarded).then_some(r.fault))
    };
    let seq = sh.seq.fetch_add(1, Ordering::SeqCst);
    let log = |outcome: Outcome| {
        if let Outcome::Forwarded(_) = outcome {
            *sh.plan
                .lock()
                .expect("plan")
                .forwarded
                .entry(inc.request.op)
                .or_default() += 1;
        }
        sh.log.lock().expect("log").push(Entry {
            seq,
            request: inc.request.clone(),
            outcome,
        });
    };
    match fault {
        Some(f @ (Fault::SlowDown | Fault::InternalError | Fault::AccessDenied)) => {
            log(Outcome::Injected(f));
            let (status, reason, code, message) = f.s3_error().unwrap_or_default();
            let resource = super::moto::percent_decode(&inc.request.raw_path, false);
            let ok = out
                .write_all(&s3_error(
                    status, reason, code, message, &resource, seq, inc.close,
                ))
                .and_then(|()| out.flush())
                .is_ok();
            ok && !inc.close
        }
        Some(Fault::Reset) => {
            log(Outcome::Injected(Fault::Reset));
            reset(out);
            false
        }
        Some(Fault::Truncate) => {
            match forward(sh, &inc) {
                Ok(resp) => {
                    log(Outcome::Injected(Fault::Truncate));
                    let head = resp.head(false);
                    let half = resp.body.len() / 2;
                    let _ = out
                        .write_all(head.as_bytes())
                        .and_then(|()| out.write_all(&resp.body[..half]))
                        .and_then(|()| out.flush());
                    // Lets the bytes reach the client before the reset discards what
                    // is still unsent.
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => log(Outcome::UpstreamFailed(e.to_string())),
            }
            reset(out);
            false
        }
        None => match forward(sh, &inc) {
            Ok(resp) => {
                log(Outcome::Forwarded(resp.status));
                let ok = out
                    .write_all(resp.head(inc.close).as_bytes())
                    .and_then(|()| out.write_all(&resp.body))
                    .and_then(|()| out.flush())
                    .is_ok();
                if inc.close {
                    let _ = out.shutdown(Shutdown::Write);
                }
                ok && !inc.close
            }
            Err(e) => {
                log(Outcome::UpstreamFailed(e.to_string()));
                reset(out);
                false
            }
        },
    }
}

/// Makes the connection end with a TCP RST instead of a FIN (`SO_LINGER` 0) when its
/// handles are dropped, which the callers do next.
fn reset(s: &TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `s` owns a valid socket descriptor for the duration of the call, and the
    // option value is a correctly sized `linger`.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    // The RST goes out when the connection's last handle (the reader's and the
    // writer's) is dropped, which the caller does next; a shutdown would send a FIN.
}

/// S3's error response.
fn s3_error(
    status: u16,
    reason: &str,
    code: &str,
    message: &str,
    resource: &str,
    seq: u64,
    close: bool,
) -> Vec<u8> {
    let id = format!("FAULTPROXY{seq:010}");
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><Resource>{}</Resource><RequestId>{id}</RequestId><HostId>fault-proxy/{id}</HostId></Error>",
        xml_escape(resource)
    );
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nx-amz-request-id: {id}\r\nx-amz-id-2: fault-proxy/{id}\r\nServer: AmazonS3\r\nConnection: {}\r\n\r\n{body}",
        body.len(),
        if close { "close" } else { "keep-alive" }
    )
    .into_bytes()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn respond_plain(
    out: &mut TcpStream,
    status: u16,
    reason: &str,
    text: &str,
) -> std::io::Result<()> {
    let body = format!("fault proxy: {text}\n");
    write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    out.flush()
}

fn bad(what: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.into())
}

/// Reads one head (up to the blank line): its lines, without line ends. None on a
/// clean end of stream before the first byte.
fn read_head<R: BufRead>(r: &mut R) -> std::io::Result<Option<Vec<String>>> {
    let mut lines = Vec::new();
    let mut total = 0usize;
    loop {
        let mut line = Vec::new();
        let n = r.read_until(b'\n', &mut line)?;
        if n == 0 {
            if lines.is_empty() && total == 0 {
                return Ok(None);
            }
            return Err(bad("head cut off"));
        }
        total += n;
        if total > MAX_HEAD {
            return Err(bad("head too long"));
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        if line.is_empty() {
            if lines.is_empty() {
                // Stray line ends between requests.
                continue;
            }
            return Ok(Some(lines));
        }
        lines.push(String::from_utf8_lossy(&line).into_owned());
    }
}

/// Header `name` of a head (the first line is skipped), compared case-insensitively.
fn header<'a>(lines: &'a [String], name: &str) -> Option<&'a str> {
    lines.iter().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn has_token(value: Option<&str>, token: &str) -> bool {
    value.is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Reads a chunked body to its end (trailers are read and dropped).
fn read_chunked<R: BufRead>(r: &mut R) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(bad("chunked body cut off"));
        }
        let size = line.trim().split(';').next().unwrap_or("").trim();
        let size =
            usize::from_str_radix(size, 16).map_err(|_| bad(format!("bad chunk size {size:?}")))?;
        if size == 0 {
            // Trailers, up to the blank line.
            loop {
                let mut t = String::new();
                if r.read_line(&mut t)? == 0 || t.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return Err(bad("chunk not followed by CRLF"));
        }
    }
}

/// Reads the next request of a client connection; None when the client closed it.
fn read_request(
    r: &mut BufReader<TcpStream>,
    out: &mut TcpStream,
) -> std::io::Result<Option<Incoming>> {
    let Some(lines) = read_head(r)? else {
        return Ok(None);
    };
    let mut parts = lines[0].split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v)) if v.starts_with("HTTP/1.") => (m, t, v),
        _ => return Err(bad(format!("bad request line {:?}", lines[0]))),
    };
    let conn = header(&lines, "connection");
    let close =
        has_token(conn, "close") || (version == "HTTP/1.0" && !has_token(conn, "keep-alive"));
    if has_token(header(&lines, "expect"), "100-continue") {
        out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        out.flush()?;
    }
    let body = if has_token(header(&lines, "transfer-encoding"), "chunked") {
        read_chunked(r)?
    } else if let Some(len) = header(&lines, "content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| bad(format!("bad Content-Length {len:?}")))?;
        let mut b = vec![0u8; len];
        r.read_exact(&mut b)?;
        b
    } else {
        Vec::new()
    };
    let (raw_path, raw_query) = target.split_once('?').unwrap_or((target, ""));
    // Path style: /bucket or /bucket/key.
    let rest = raw_path.strip_prefix('/').unwrap_or(raw_path);
    let (bucket, key) = match rest.split_once('/') {
        Some((b, k)) if !k.is_empty() => (Some(b), Some(super::moto::percent_decode(k, false))),
        Some((b, _)) => (Some(b), None),
        None if !rest.is_empty() => (Some(rest), None),
        None => (None, None),
    };
    let operation =
        header(&lines, "x-amz-target").map(|t| t.rsplit('.').next().unwrap_or(t).to_string());
    let is_list = raw_query.split('&').any(|p| p == "list-type=2");
    let op = if operation.is_some() {
        Op::Json
    } else if method == "GET" && bucket.is_some() && key.is_none() && is_list {
        Op::ListObjectsV2
    } else if method == "GET" && key.is_some() {
        Op::GetObject
    } else {
        Op::Other
    };
    let sdk = header(&lines, "amz-sdk-request").unwrap_or("");
    let sdk_field = |name: &str| {
        sdk.split(';').find_map(|f| {
            let (k, v) = f.split_once('=')?;
            (k.trim() == name)
                .then(|| v.trim().parse::<u32>().ok())
                .flatten()
        })
    };
    let head_lines: Vec<String> = lines
        .iter()
        .enumerate()
        .filter(|(i, l)| {
            *i == 0
                || !l.split_once(':').is_some_and(|(k, _)| {
                    matches!(
                        k.trim().to_ascii_lowercase().as_str(),
                        "connection"
                            | "keep-alive"
                            | "proxy-connection"
                            | "expect"
                            | "transfer-encoding"
                            | "content-length"
                            | "te"
                            | "upgrade"
                    )
                })
        })
        .map(|(_, l)| l.clone())
        .collect();
    let had_length =
        header(&lines, "content-length").is_some() || header(&lines, "transfer-encoding").is_some();
    let mut head_lines = head_lines;
    if had_length || !body.is_empty() {
        head_lines.push(format!("Content-Length: {}", body.len()));
    }
    Ok(Some(Incoming {
        request: Request {
            method: method.to_string(),
            raw_path: raw_path.to_string(),
            raw_query: raw_query.to_string(),
            op,
            bucket: bucket.map(|b| super::moto::percent_decode(b, false)),
            key,
            operation,
            attempt: sdk_field("attempt"),
            max_attempts: sdk_field("max"),
            body,
        },
        head_lines,
        close,
    }))
}

/// An upstream response, read to its end.
struct Response {
    status: u16,
    /// Status line and headers, without the framing and connection headers.
    lines: Vec<String>,
    /// The body as sent (de-chunked).
    body: Vec<u8>,
    /// The upstream's Content-Length when the body is not the full length (a HEAD).
    declared_length: Option<String>,
}

impl Response {
    /// The head to relay, framed with `Content-Length`.
    fn head(&self, close: bool) -> String {
        let mut h = String::new();
        for l in &self.lines {
            h.push_str(l);
            h.push_str("\r\n");
        }
        let len = self
            .declared_length
            .clone()
            .unwrap_or_else(|| self.body.len().to_string());
        h.push_str(&format!(
            "Content-Length: {len}\r\nConnection: {}\r\n\r\n",
            if close { "close" } else { "keep-alive" }
        ));
        h
    }
}

/// Sends the request upstream on a new connection and reads the whole response.
fn forward(sh: &Shared, inc: &Incoming) -> std::io::Result<Response> {
    let mut up = TcpStream::connect_timeout(&sh.upstream, Duration::from_secs(10))?;
    up.set_read_timeout(Some(UPSTREAM_TIMEOUT))?;
    up.set_write_timeout(Some(UPSTREAM_TIMEOUT))?;
    let mut head = String::new();
    for l in &inc.head_lines {
        head.push_str(l);
        head.push_str("\r\n");
    }
    head.push_str("Connection: close\r\n\r\n");
    up.write_all(head.as_bytes())?;
    up.write_all(&inc.request.body)?;
    up.flush()?;
    let mut r = BufReader::new(up);
    // Interim 1xx answers are skipped.
    let lines = loop {
        let lines = read_head(&mut r)?.ok_or_else(|| bad("upstream closed without answering"))?;
        let status: u16 = lines[0]
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(format!("bad status line {:?}", lines[0])))?;
        if !(100..200).contains(&status) {
            break lines;
        }
    };
    let status: u16 = lines[0]
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = has_token(header(&lines, "transfer-encoding"), "chunked");
    let no_body = inc.request.method == "HEAD" || status == 204 || status == 304;
    let mut declared_length = None;
    let body = if no_body {
        declared_length = header(&lines, "content-length").map(str::to_string);
        Vec::new()
    } else if chunked {
        read_chunked(&mut r)?
    } else if let Some(len) = header(&lines, "content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| bad(format!("bad upstream Content-Length {len:?}")))?;
        let mut b = vec![0u8; len];
        r.read_exact(&mut b)?;
        b
    } else {
        let mut b = Vec::new();
        r.read_to_end(&mut b)?;
        b
    };
    let lines = lines
        .into_iter()
        .enumerate()
        .filter(|(i, l)| {
            *i == 0
                || !l.split_once(':').is_some_and(|(k, _)| {
                    matches!(
                        k.trim().to_ascii_lowercase().as_str(),
                        "connection" | "keep-alive" | "transfer-encoding" | "content-length"
                    )
                })
        })
        .map(|(_, l)| l)
        .collect();
    Ok(Response {
        status,
        lines,
        body,
        declared_length,
    })
}
