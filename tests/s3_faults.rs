//! S3 faults between the AWS SDK and moto: a small fault-injecting HTTP/1.1 proxy on
//! 127.0.0.1 answers chosen requests itself (503 `SlowDown`, 500 `InternalError`, a
//! connection reset, a response cut off half-way) and forwards the others to moto.
//!
//! What is proved: transient faults within the retry budget lose and repeat nothing
//! (every record read once, the same findings as a fault-free run); a fault that
//! outlasts the retries fails that one object by name, with the service's error, and
//! every other object is still read; the `run` daemon rides out an outage of every
//! request, then reads everything, its checkpoint ending at each prefix's last key.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::moto::Moto;
use serde_json::Value;

// ---------------------------------------------------------------------------------
// The proxy
// ---------------------------------------------------------------------------------

/// What the proxy does instead of forwarding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    /// `503 SlowDown`.
    SlowDown,
    /// `500 InternalError`.
    Internal,
    /// The request is read, then the connection is reset without an answer.
    Reset,
    /// The upstream response's head and half its body, then a reset.
    Truncate,
}

/// The S3 operation of a request (path-style addressing).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    /// `GET /bucket?list-type=2…`.
    List,
    /// `GET /bucket/key`.
    Get(String),
    /// Anything else.
    Other,
}

/// One request as the proxy saw it.
#[derive(Clone, Debug)]
struct Call {
    method: String,
    /// Path and query as sent.
    target: String,
    op: Op,
}

/// What was done with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Done {
    /// Forwarded; moto's status code (0: no answer from moto).
    Forwarded(u16),
    /// Answered or dropped by the proxy.
    Injected(Fault),
}

#[derive(Clone, Debug)]
struct Entry {
    call: Call,
    done: Done,
}

type Plan = Box<dyn FnMut(&Call) -> Option<Fault> + Send>;

struct Shared {
    upstream: u16,
    plan: Mutex<Plan>,
    log: Mutex<Vec<Entry>>,
    stop: AtomicBool,
}

/// A fault-injecting proxy in front of moto.
struct Proxy {
    endpoint: String,
    port: u16,
    shared: Arc<Shared>,
}

impl Proxy {
    fn start(upstream: u16, plan: Plan) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        let shared = Arc::new(Shared {
            upstream,
            plan: Mutex::new(plan),
            log: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let sh = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sh.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let sh = sh.clone();
                std::thread::spawn(move || {
                    let _ = handle(conn, &sh);
                });
            }
        });
        Proxy {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            shared,
        }
    }

    /// Every request so far, in arrival order.
    fn log(&self) -> Vec<Entry> {
        self.shared.log.lock().expect("log").clone()
    }

    /// How many requests got each fault.
    fn fault_counts(&self) -> BTreeMap<Fault, usize> {
        let mut out = BTreeMap::new();
        for e in self.log() {
            if let Done::Injected(f) = e.done {
                *out.entry(f).or_default() += 1;
            }
        }
        out
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads one request: its head (up to the blank line) and its Content-Length body.
/// None when the client closed without sending anything.
fn read_request(s: &mut TcpStream) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "request head cut off",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let len = header(&head, "content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = buf[end + 4..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Some((head, body)))
}

/// Header `name` of a request or response head, compared case-insensitively.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The head with its `Connection`/`Keep-Alive` headers replaced by `Connection: close`.
fn closing(head: &str) -> String {
    let mut out = String::new();
    for (i, l) in head.split("\r\n").enumerate() {
        let name = l
            .split_once(':')
            .map(|(k, _)| k.trim().to_ascii_lowercase());
        if i > 0 && matches!(name.as_deref(), Some("connection" | "keep-alive")) {
            continue;
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out
}

fn classify(method: &str, target: &str) -> Op {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let rest = path.strip_prefix('/').unwrap_or(path);
    let (_bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if method != "GET" {
        return Op::Other;
    }
    if key.is_empty() && query.split('&').any(|p| p == "list-type=2") {
        Op::List
    } else if !key.is_empty() {
        Op::Get(percent_decode(key))
    } else {
        Op::Other
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Resets the connection (RST, not FIN) when the stream is dropped.
fn reset_on_close(s: &TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor owned by `s`, and a correctly sized option.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

fn error_response(status: u16, reason: &str, code: &str, message: &str) -> Vec<u8> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message><RequestId>FAULT0123456789</RequestId></Error>"
    );
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nx-amz-request-id: FAULT0123456789\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Sends the request to moto on a new connection and reads the whole response.
fn forward(sh: &Shared, head: &str, body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut up = TcpStream::connect(("127.0.0.1", sh.upstream))?;
    up.set_read_timeout(Some(Duration::from_secs(60)))?;
    up.write_all(closing(head).as_bytes())?;
    up.write_all(body)?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp)?;
    Ok(resp)
}

fn handle(mut client: TcpStream, sh: &Shared) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(60)))?;
    let Some((head, body)) = read_request(&mut client)? else {
        return Ok(());
    };
    let line = head.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let call = Call {
        op: classify(&method, &target),
        method,
        target,
    };
    let fault = (sh.plan.lock().expect("plan"))(&call);
    let record = |done: Done| {
        sh.log.lock().expect("log").push(Entry {
            call: call.clone(),
            done,
        })
    };
    match fault {
        Some(Fault::SlowDown) => {
            record(Done::Injected(Fault::SlowDown));
            client.write_all(&error_response(
                503,
                "Slow Down",
                "SlowDown",
                "Please reduce your request rate.",
            ))?;
        }
        Some(Fault::Internal) => {
            record(Done::Injected(Fault::Internal));
            client.write_all(&error_response(
                500,
                "Internal Server Error",
                "InternalError",
                "We encountered an internal error. Please try again.",
            ))?;
        }
        Some(Fault::Reset) => {
            record(Done::Injected(Fault::Reset));
            reset_on_close(&client);
            return Ok(());
        }
        Some(Fault::Truncate) => {
            let resp = forward(sh, &head, &body)?;
            record(Done::Injected(Fault::Truncate));
            let split = find(&resp, b"\r\n\r\n").map_or(resp.len(), |i| i + 4);
            let half = split + (resp.len() - split) / 2;
            client.write_all(&resp[..half])?;
            client.flush()?;
            reset_on_close(&client);
            return Ok(());
        }
        None => match forward(sh, &head, &body) {
            Ok(resp) => {
                let split = find(&resp, b"\r\n\r\n");
                let rhead = String::from_utf8_lossy(&resp[..split.unwrap_or(0)]).into_owned();
                let status = rhead
                    .split_whitespace()
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                record(Done::Forwarded(status));
                match split {
                    Some(i) => {
                        client.write_all(closing(&rhead).as_bytes())?;
                        client.write_all(&resp[i + 4..])?;
                    }
                    None => client.write_all(&resp)?,
                }
            }
            Err(_) => {
                record(Done::Forwarded(0));
                reset_on_close(&client);
                return Ok(());
            }
        },
    }
    client.flush()?;
    let _ = client.shutdown(Shutdown::Write);
    // Let the client read the answer and close first.
    let mut sink = [0u8; 256];
    let _ = client.set_read_timeout(Some(Duration::from_secs(5)));
    while matches!(client.read(&mut sink), Ok(n) if n > 0) {}
    Ok(())
}

// ---------------------------------------------------------------------------------
// Helpers (as in tests/aws_s3.rs)
// ---------------------------------------------------------------------------------

/// What the fixture script put in the bucket.
struct Manifest {
    objects: BTreeMap<String, u64>,
    records: u64,
}

impl Manifest {
    /// Per leaf prefix, its last key.
    fn leaves(&self) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = BTreeMap::new();
        for k in self.objects.keys() {
            let p = k[..k.rfind('/').expect("slash") + 1].to_string();
            let e = out.entry(p).or_default();
            if k > e {
                *e = k.clone();
            }
        }
        out
    }
}

fn fill(moto: &Moto, bucket: &str, extra: &[&str]) -> Manifest {
    let script = common::root().join("tests/moto/make_trail_bucket.py");
    let out = Command::new(moto.python())
        .arg(&script)
        .arg(bucket)
        .args(extra)
        .envs(moto.client_env())
        .output()
        .expect("run the fixture script");
    assert!(
        out.status.success(),
        "fixture: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("manifest json");
    let objects = v["objects"]
        .as_object()
        .expect("objects")
        .iter()
        .map(|(k, n)| (k.clone(), n.as_u64().expect("count")))
        .collect();
    Manifest {
        objects,
        records: v["records"].as_u64().expect("records"),
    }
}

/// `trailhound` with the emulator's credentials and nothing from the user's AWS setup.
fn trailhound(moto: &Moto) -> Command {
    let mut c = Command::new(common::BIN);
    common::moto::clean_aws_env(&mut c, moto.dir());
    c.envs(moto.client_env()).env_remove("AWS_ENDPOINT_URL");
    c
}

/// A config with one connection `local` to `endpoint`, retrying `attempts` times in all
/// with a 10 ms initial backoff; `rest` is appended (sources, state_dir).
fn config(dir: &Path, endpoint: &str, attempts: u32, rest: &str) -> std::path::PathBuf {
    let cfg = dir.join("trailhound.yaml");
    std::fs::write(
        &cfg,
        format!(
            "version: 1\nconnections:\n  local: {{endpoint_url: \"{endpoint}\", region: us-east-1, s3_force_path_style: true, max_error_retry_attempts: {attempts}, min_error_retry_delay: 10ms}}\n{rest}"
        ),
    )
    .expect("config");
    cfg
}

/// `detect s3://trail/` through `endpoint`; returns the exit code, the stats, the
/// findings and stderr.
fn detect_s3(
    moto: &Moto,
    endpoint: &str,
    attempts: u32,
    extra: &[&str],
) -> (Option<i32>, Value, Vec<Value>, String) {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(dir.path(), endpoint, attempts, "");
    let out = trailhound(moto)
        .arg("s3://trail/")
        .arg("--config")
        .arg(&cfg)
        .args(["--connection", "local"])
        .args(["--no-record", "--stats", "json"])
        .args(extra)
        .output()
        .expect("run trailhound");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let stats: Value = serde_json::from_str(err.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("stats line ({e}): {err}"));
    common::check_accounting(&stats);
    let findings = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("finding json"))
        .collect();
    (out.status.code(), stats, findings, err)
}

fn counter(stats: &Value, key: &str) -> u64 {
    stats["sources"][0]["counters"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("sources[0].counters.{key} in {stats}"))
}

/// Keys whose GetObject moto answered with 200, with how often.
fn served(log: &[Entry]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for e in log {
        if let (Op::Get(k), Done::Forwarded(200), "GET") =
            (&e.call.op, e.done, e.call.method.as_str())
        {
            *out.entry(k.clone()).or_default() += 1;
        }
    }
    out
}

/// Requests to `target` after position `i` of the log.
fn later(log: &[Entry], i: usize) -> impl Iterator<Item = &Entry> {
    let target = log[i].call.target.clone();
    log[i + 1..].iter().filter(move |e| e.call.target == target)
}

// ---------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------

/// Every 4th object's first GetObject gets 503 SlowDown, every 5th 500 InternalError,
/// every 7th a reset, every 9th a response cut off half-way (an object that is due
/// several gets them one after another); the first listing gets 503. Four attempts
/// cover that: nothing is lost, nothing is read twice.
#[test]
fn transient_faults_within_the_retry_budget_lose_nothing() {
    let Some(moto) = Moto::start() else { return };
    let m = fill(&moto, "trail", &["--days", "2024-12-01", "--per-day", "10"]);
    assert_eq!(m.objects.len(), 60);
    // The reference: straight to moto, no faults.
    let (code, clean, clean_findings, err) = detect_s3(&moto, &moto.endpoint, 4, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(clean["records_in"], m.records);
    assert!(!clean_findings.is_empty());

    // Per key, the faults still due on its next requests.
    let mut due: BTreeMap<String, Vec<Fault>> = BTreeMap::new();
    let mut seen = 0usize;
    let mut lists = 0usize;
    let proxy = Proxy::start(
        moto.port,
        Box::new(move |c: &Call| match &c.op {
            Op::List => {
                lists += 1;
                (lists == 1).then_some(Fault::SlowDown)
            }
            Op::Get(k) => {
                let q = due.entry(k.clone()).or_insert_with(|| {
                    seen += 1;
                    let mut v = Vec::new();
                    for (every, f) in [
                        (4, Fault::SlowDown),
                        (5, Fault::Internal),
                        (7, Fault::Reset),
                        (9, Fault::Truncate),
                    ] {
                        if seen.is_multiple_of(every) {
                            v.push(f);
                        }
                    }
                    v.reverse();
                    v
                });
                q.pop()
            }
            Op::Other => None,
        }),
    );
    let started = Instant::now();
    let (code, stats, findings, err) = detect_s3(&moto, &proxy.endpoint, 4, &[]);
    let secs = started.elapsed().as_secs_f64();
    let log = proxy.log();
    let counts = proxy.fault_counts();
    eprintln!("faults {counts:?} over {} requests, {secs:.2}s", log.len());
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(stats["records_in"], m.records, "{stats}");
    assert_eq!(stats["inputs"], m.objects.len() as u64);
    assert_eq!(stats["inputs_failed"], 0, "{err}");
    assert_eq!(counter(&stats, "objects_fetched"), m.objects.len() as u64);
    assert_eq!(counter(&stats, "objects_failed"), 0);
    assert_eq!(common::keys(&findings), common::keys(&clean_findings));

    // Each kind was injected, and each faulted request succeeded on a later attempt.
    let n = m.objects.len();
    assert_eq!(
        counts.get(&Fault::SlowDown),
        Some(&(n / 4 + 1)),
        "{counts:?}"
    );
    assert_eq!(counts.get(&Fault::Internal), Some(&(n / 5)), "{counts:?}");
    assert_eq!(counts.get(&Fault::Reset), Some(&(n / 7)), "{counts:?}");
    assert_eq!(counts.get(&Fault::Truncate), Some(&(n / 9)), "{counts:?}");
    for (i, e) in log.iter().enumerate() {
        if let Done::Injected(f) = e.done {
            assert!(
                later(&log, i).any(|x| x.done == Done::Forwarded(200)),
                "{f:?} on {} was not retried to success",
                e.call.target
            );
        }
    }
    // A body cut off half-way is read again, and says so.
    for e in log
        .iter()
        .filter(|e| e.done == Done::Injected(Fault::Truncate))
    {
        let Op::Get(k) = &e.call.op else {
            panic!("{e:?}")
        };
        let url = format!("s3://trail/{k}: reading the object:");
        let line = err
            .lines()
            .find(|l| l.contains(&url) && l.contains("retrying"));
        assert!(line.is_some(), "no retry line for {url}:\n{err}");
        eprintln!("{}", line.unwrap_or(""));
    }
    // The first request of all, the discovery listing, was the one refused.
    assert_eq!(log[0].call.op, Op::List);
    assert_eq!(log[0].done, Done::Injected(Fault::SlowDown));
    // Every object served exactly once.
    let got = served(&log);
    assert_eq!(
        got.keys().cloned().collect::<BTreeSet<_>>(),
        m.objects.keys().cloned().collect::<BTreeSet<_>>()
    );
    assert!(got.values().all(|&c| c == 1), "{got:?}");
}

/// One object answers 503 SlowDown to every request, another 500 InternalError: each
/// is tried exactly `max_error_retry_attempts` times, then reported by name with the
/// service's error and counted as a failed input (exit code 3); every other object is
/// read.
#[test]
fn persistent_fault_fails_only_that_object() {
    let Some(moto) = Moto::start() else { return };
    let m = fill(&moto, "trail", &["--days", "2024-12-01", "--per-day", "10"]);
    let keys: Vec<&String> = m.objects.keys().collect();
    let slow = keys[7].clone();
    let broken = keys[33].clone();
    let (s, b) = (slow.clone(), broken.clone());
    let proxy = Proxy::start(
        moto.port,
        Box::new(move |c: &Call| match &c.op {
            Op::Get(k) if *k == s => Some(Fault::SlowDown),
            Op::Get(k) if *k == b => Some(Fault::Internal),
            _ => None,
        }),
    );
    let attempts = 3;
    let (code, stats, _, err) = detect_s3(&moto, &proxy.endpoint, attempts, &[]);
    let counts = proxy.fault_counts();
    eprintln!("faults {counts:?}");
    assert_eq!(
        code,
        Some(3),
        "exit code 3: an input could not be read\n{err}"
    );
    assert_eq!(stats["inputs"], m.objects.len() as u64, "{stats}");
    assert_eq!(stats["inputs_failed"], 2, "{stats}");
    assert_eq!(counter(&stats, "objects_failed"), 2);
    assert_eq!(
        stats["records_in"],
        m.records - m.objects[&slow] - m.objects[&broken],
        "{stats}"
    );
    // The error names the object and the service's code.
    for (key, code) in [(&slow, "SlowDown"), (&broken, "InternalError")] {
        let url = format!("s3://trail/{key}");
        assert!(
            err.lines().any(|l| l.contains(&url) && l.contains(code)),
            "no line names {url} with {code}:\n{err}"
        );
    }
    // Tried exactly the configured number of times.
    assert_eq!(counts.get(&Fault::SlowDown), Some(&(attempts as usize)));
    assert_eq!(counts.get(&Fault::Internal), Some(&(attempts as usize)));
    let got = served(&proxy.log());
    let want: BTreeSet<String> = m
        .objects
        .keys()
        .filter(|k| **k != slow && **k != broken)
        .cloned()
        .collect();
    assert_eq!(got.keys().cloned().collect::<BTreeSet<_>>(), want);
    assert!(got.values().all(|&c| c == 1), "{got:?}");
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn checkpoint(path: &Path) -> Option<BTreeMap<String, String>> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| serde_json::from_value(v["done"].clone()).ok())
}

/// `run` with an S3 source while every request gets 503 for a while: the daemon stays
/// up and says what fails, then reads every object once; the checkpoint ends at each
/// prefix's last key.
#[test]
fn daemon_rides_out_an_outage() {
    let Some(moto) = Moto::start() else { return };
    let m = fill(&moto, "trail", &["--days", "2024-12-01", "--per-day", "10"]);
    let outage = Arc::new(AtomicBool::new(true));
    let o = outage.clone();
    let proxy = Proxy::start(
        moto.port,
        Box::new(move |_| o.load(Ordering::SeqCst).then_some(Fault::SlowDown)),
    );
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(
        dir.path(),
        &proxy.endpoint,
        3,
        &format!(
            "state_dir: {}\nsources:\n  - s3: {{name: org, connection: local, bucket: trail, concurrency: 4, poll_interval: 1s}}\n",
            dir.path().join("state").display()
        ),
    );
    let stats_path = dir.path().join("stats.json");
    let log_path = dir.path().join("stderr.log");
    let mut child = trailhound(&moto)
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--no-record", "--no-dedup", "--stats-file"])
        .arg(&stats_path)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).expect("log file"))
        .spawn()
        .expect("start the daemon");
    let pid = child.id();
    // The outage: ~10 s of 503 to everything.
    let mut peak = 0u64;
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "the daemon exited during the outage:\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        if let Some(kib) = rss_kib(pid) {
            peak = peak.max(kib);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    outage.store(false, Ordering::SeqCst);
    let during = proxy.fault_counts();
    let during_log = std::fs::read_to_string(&log_path).unwrap_or_default();
    // Then it reads everything: wait for the checkpoint to cover every prefix.
    let leaves = m.leaves();
    let cp_path = dir.path().join("state/checkpoints/org.json");
    let deadline = Instant::now() + Duration::from_secs(90);
    while checkpoint(&cp_path).as_ref() != Some(&leaves) && Instant::now() < deadline {
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "daemon exited"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: signalling a child process we started and still own.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let out = child.wait_with_output().expect("wait");
    let log_text = std::fs::read_to_string(&log_path).unwrap_or_default();
    eprintln!(
        "outage faults {during:?}; after: {:?}; peak VmRSS {peak} KiB",
        proxy.fault_counts()
    );
    assert!(out.status.success(), "{:?}\n{log_text}", out.status);
    assert!(peak > 0 && peak < 500 * 1024, "VmRSS {peak} KiB");
    assert!(
        during.get(&Fault::SlowDown).copied().unwrap_or(0) > 0,
        "{during:?}"
    );
    // A clear message while it lasts: the bucket, what failed, the service's error.
    assert!(
        during_log
            .lines()
            .any(|l| l.contains("s3://trail/") && l.contains("SlowDown")),
        "{during_log}"
    );
    assert_eq!(checkpoint(&cp_path).as_ref(), Some(&leaves), "{log_text}");
    let stats: Value =
        serde_json::from_slice(&std::fs::read(&stats_path).expect("stats")).expect("json");
    common::check_accounting(&stats);
    assert_eq!(stats["records_in"], m.records, "{stats}\n{log_text}");
    let got = served(&proxy.log());
    assert_eq!(
        got.keys().cloned().collect::<BTreeSet<_>>(),
        m.objects.keys().cloned().collect::<BTreeSet<_>>()
    );
    assert!(got.values().all(|&c| c == 1), "{got:?}");
    let findings: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert!(!findings.is_empty());
    let mut ids: Vec<&str> = findings
        .iter()
        .map(|f| f["id"].as_str().expect("id"))
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "no finding repeated");
}

/// `run` with two objects that fail beyond the retry budget (503 SlowDown) while the
/// listing works: the checkpoint of their prefixes stops before them, the daemon says
/// it will fetch them again, and once the fault clears it does, without re-reading
/// anything else; the checkpoint then moves over them.
#[test]
fn daemon_fetches_failed_objects_again() {
    let Some(moto) = Moto::start() else { return };
    let m = fill(&moto, "trail", &["--days", "2024-12-01", "--per-day", "10"]);
    let keys: Vec<String> = m.objects.keys().cloned().collect();
    let victims: BTreeSet<String> = [keys[3].clone(), keys[41].clone()].into();
    let failing = Arc::new(AtomicBool::new(true));
    let (f, v) = (failing.clone(), victims.clone());
    let proxy = Proxy::start(
        moto.port,
        Box::new(move |c: &Call| match &c.op {
            Op::Get(k) if v.contains(k) && f.load(Ordering::SeqCst) => Some(Fault::SlowDown),
            _ => None,
        }),
    );
    let dir = tempfile::tempdir().expect("tmp");
    let attempts = 2;
    let cfg = config(
        dir.path(),
        &proxy.endpoint,
        attempts,
        &format!(
            "state_dir: {}\nsources:\n  - s3: {{name: org, connection: local, bucket: trail, concurrency: 4, poll_interval: 1s}}\n",
            dir.path().join("state").display()
        ),
    );
    let stats_path = dir.path().join("stats.json");
    let log_path = dir.path().join("stderr.log");
    let mut child = trailhound(&moto)
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--no-record", "--no-dedup", "--stats-file"])
        .arg(&stats_path)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).expect("log file"))
        .spawn()
        .expect("start the daemon");
    let pid = child.id();
    // Until each victim has failed twice over (two passes) and every other object is in.
    let refused = |k: &String| {
        proxy
            .log()
            .iter()
            .filter(|e| e.call.op == Op::Get(k.clone()) && e.done != Done::Forwarded(200))
            .count()
    };
    let others = m.objects.len() - victims.len();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (victims.iter().any(|k| refused(k) < 2 * attempts as usize)
        || served(&proxy.log()).len() < others)
        && Instant::now() < deadline
    {
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "daemon exited"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let cp_path = dir.path().join("state/checkpoints/org.json");
    let cp = checkpoint(&cp_path).unwrap_or_default();
    for k in &victims {
        let prefix = &k[..k.rfind('/').expect("slash") + 1];
        assert!(
            cp.get(prefix).is_none_or(|done| done < k),
            "the checkpoint moved past a failed object: {prefix} at {:?}, {k} failed",
            cp.get(prefix)
        );
    }
    let failing_log = std::fs::read_to_string(&log_path).unwrap_or_default();
    failing.store(false, Ordering::SeqCst);
    let leaves = m.leaves();
    let deadline = Instant::now() + Duration::from_secs(60);
    while checkpoint(&cp_path).as_ref() != Some(&leaves) && Instant::now() < deadline {
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "daemon exited"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: signalling a child process we started and still own.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let out = child.wait_with_output().expect("wait");
    let log_text = std::fs::read_to_string(&log_path).unwrap_or_default();
    eprintln!("faults {:?}", proxy.fault_counts());
    let stats: Value =
        serde_json::from_slice(&std::fs::read(&stats_path).expect("stats")).expect("json");
    common::check_accounting(&stats);
    // Each failed fetch was a failed input; the exit code says so (3), as for detect.
    let failed = counter(&stats, "objects_failed");
    assert!(failed >= 2 * victims.len() as u64, "{stats}");
    assert_eq!(stats["inputs_failed"], failed, "{stats}");
    assert_eq!(out.status.code(), Some(3), "{:?}\n{log_text}", out.status);
    for k in &victims {
        let url = format!("s3://trail/{k}");
        assert!(
            failing_log
                .lines()
                .any(|l| l.contains(&url) && l.contains("SlowDown")),
            "no line names {url} with SlowDown:\n{failing_log}"
        );
    }
    assert!(
        failing_log.contains("could not be fetched; fetching them again"),
        "{failing_log}"
    );
    assert_eq!(checkpoint(&cp_path).as_ref(), Some(&leaves), "{log_text}");
    assert_eq!(stats["records_in"], m.records, "{stats}\n{log_text}");
    let got = served(&proxy.log());
    assert_eq!(
        got.keys().cloned().collect::<BTreeSet<_>>(),
        m.objects.keys().cloned().collect::<BTreeSet<_>>()
    );
    assert!(got.values().all(|&c| c == 1), "read twice: {got:?}");
    let mut ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("json");
            v["id"].as_str().expect("id").to_string()
        })
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert!(n > 0);
    assert_eq!(ids.len(), n, "no finding repeated");
}
