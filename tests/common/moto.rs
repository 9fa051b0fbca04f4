//! A local AWS emulator for the integration tests: moto server (S3, SQS, CloudWatch Logs,
//! IAM) from `target/moto-venv`, which `scripts/moto.sh` installs. See tests/moto/README.md.
//!
//! ```ignore
//! let Some(moto) = common::moto::Moto::start() else { return }; // skipped without moto
//! moto.run_python(SETUP_PY, &[]);          // boto3: buckets, objects, queues, log events
//! moto.clear_recording();                  // forget the setup requests
//! /* run trailhound with moto.client_env() or moto.endpoint */
//! let lists: Vec<_> = moto.requests().into_iter().filter(|r| r.is_s3_list_v2()).collect();
//! assert_eq!(lists[0].query_param("prefix"), Some("AWSLogs/111122223333/CloudTrail/"));
//! ```
//!
//! Each server runs on its own free port on 127.0.0.1 with its own temporary directory
//! (`recording.jsonl`, `stderr.log`), so tests may start servers in parallel. The server is
//! killed when the `Moto` is dropped; the directory is removed then, unless the thread is
//! panicking, in which case its path is printed so the logs can be read.
//!
//! What the requests come from: moto's request recorder (`MOTO_ENABLE_RECORDING`), which
//! appends one JSON object per request to `MOTO_RECORDER_FILEPATH` before the request is
//! handled, so a request is in the recording by the time its client has the response:
//! `{"headers": {..}, "method": "GET", "url": "http://127.0.0.1:PORT/bucket?list-type=2&prefix=AWSLogs%2F&encoding-type=url", "body": "", "body_encoded": false}`
//! (`url` keeps the client's percent-encoding; `body` is base64 when `body_encoded`).
//! Concurrent requests with large bodies can leave two objects on one line, so the file is
//! read as a stream of JSON objects, not line by line.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// How long `start` waits for the server to answer.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The credentials and region that `client_env` hands to clients. moto accepts any
/// credentials until IAM authentication is switched on (`enable_iam_auth`).
pub const ACCESS_KEY_ID: &str = "test";
pub const SECRET_ACCESS_KEY: &str = "test";
pub const REGION: &str = "us-east-1";
/// The account moto puts every resource in (queue URLs, ARNs).
pub const ACCOUNT_ID: &str = "123456789012";

/// `target/moto-venv`, made by `scripts/moto.sh`.
pub fn venv() -> PathBuf {
    super::root().join("target/moto-venv")
}

/// `target/moto-venv/bin/moto_server`.
pub fn server_bin() -> PathBuf {
    venv().join("bin/moto_server")
}

/// Whether moto is installed. When it is not: panics if `TRAILHOUND_MOTO=required` (as
/// `scripts/test.sh` sets it), otherwise prints a skip notice to stderr and returns false.
pub fn moto_available() -> bool {
    let bin = server_bin();
    if bin.is_file() {
        return true;
    }
    if std::env::var("TRAILHOUND_MOTO").as_deref() == Ok("required") {
        panic!(
            "TRAILHOUND_MOTO=required but {} is missing: run scripts/moto.sh",
            bin.display()
        );
    }
    eprintln!("skipping: moto not installed (run scripts/moto.sh)");
    false
}

/// One request that moto received, from its recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// Percent-decoded path, e.g. `/bucket/AWSLogs/111122223333/CloudTrail/x.json.gz`
    /// (S3 path style); `/` for the JSON-protocol services (SQS, CloudWatch Logs).
    pub path: String,
    /// The path as the client sent it (still percent-encoded).
    pub raw_path: String,
    /// Query parameters in order, decoded (`%XX` and `+` as a space, as moto reads them).
    pub query: Vec<(String, String)>,
    /// The query string as the client sent it, without the `?`.
    pub raw_query: String,
    /// Request headers as moto saw them (names as sent, e.g. `X-Amz-Target`).
    pub headers: Vec<(String, String)>,
    /// The request body (empty for GET, and for bodies sent without Content-Length).
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of query parameter `name`.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `X-Amz-Target` of a JSON-protocol call: `AmazonSQS.ReceiveMessage`,
    /// `Logs_20140328.FilterLogEvents`, ...
    pub fn target(&self) -> Option<&str> {
        self.header("X-Amz-Target")
    }

    /// The operation name of a JSON-protocol call (`ReceiveMessage`, `FilterLogEvents`).
    pub fn operation(&self) -> Option<&str> {
        self.target().and_then(|t| t.rsplit('.').next())
    }

    /// The body parsed as JSON (the parameters of a JSON-protocol call).
    pub fn json_body(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// Path-style S3 bucket and key: `/bucket` → `("bucket", None)`,
    /// `/bucket/a/b.gz` → `("bucket", Some("a/b.gz"))`; None for `/`.
    pub fn s3_bucket_key(&self) -> Option<(&str, Option<&str>)> {
        let rest = self.path.strip_prefix('/')?;
        if rest.is_empty() {
            return None;
        }
        Some(match rest.split_once('/') {
            Some((bucket, key)) if !key.is_empty() => (bucket, Some(key)),
            Some((bucket, _)) => (bucket, None),
            None => (rest, None),
        })
    }

    /// An S3 ListObjectsV2 (`GET /bucket?list-type=2&...`).
    pub fn is_s3_list_v2(&self) -> bool {
        self.method == "GET"
            && self.query_param("list-type") == Some("2")
            && matches!(self.s3_bucket_key(), Some((_, None)))
    }

    /// An S3 GetObject: the key, if this is one (`GET /bucket/key`, no `list-type`).
    pub fn s3_get_object_key(&self) -> Option<&str> {
        if self.method != "GET" || self.target().is_some() {
            return None;
        }
        match self.s3_bucket_key() {
            Some((_, Some(key))) => Some(key),
            _ => None,
        }
    }
}

/// A running moto server on 127.0.0.1.
pub struct Moto {
    pub port: u16,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    child: Child,
    dir: PathBuf,
    recording: PathBuf,
    stderr_log: PathBuf,
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

impl Moto {
    /// Starts a server (see `moto_available` for when this returns None).
    pub fn start() -> Option<Moto> {
        Self::start_with_env(&[])
    }

    /// Starts a server with extra environment variables, e.g.
    /// `[("INITIAL_NO_AUTH_ACTION_COUNT", "4")]` (see `enable_iam_auth` for the easier way).
    /// `MOTO_ENABLE_RECORDING` and `MOTO_RECORDER_FILEPATH` are set by this helper and win.
    pub fn start_with_env(env: &[(&str, &str)]) -> Option<Moto> {
        if !moto_available() {
            return None;
        }
        let dir = std::env::temp_dir().join(format!(
            "trailhound-moto-{}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let recording = dir.join("recording.jsonl");
        let stderr_log = dir.join("stderr.log");

        for attempt in 1..=5 {
            let port = free_port();
            let stderr = std::fs::File::create(&stderr_log)
                .unwrap_or_else(|e| panic!("creating {}: {e}", stderr_log.display()));
            let mut cmd = Command::new(server_bin());
            cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .current_dir(&dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .env_remove("MOTO_PORT")
                .env_remove("INITIAL_NO_AUTH_ACTION_COUNT");
            for (k, v) in env {
                cmd.env(k, v);
            }
            cmd.env("MOTO_ENABLE_RECORDING", "True")
                .env("MOTO_RECORDER_FILEPATH", &recording);
            let mut child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", server_bin().display()));
            let probe = format!(
                "probe-{}-{attempt}",
                dir.file_name().unwrap_or_default().to_string_lossy()
            );
            match wait_ready(&mut child, port, &probe, &recording, &stderr_log) {
                Ready::Yes => {
                    let moto = Moto {
                        port,
                        endpoint: format!("http://127.0.0.1:{port}"),
                        child,
                        dir,
                        recording,
                        stderr_log,
                    };
                    moto.clear_recording();
                    return Some(moto);
                }
                Ready::PortTaken => continue,
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        panic!("moto_server: no free port on 127.0.0.1 after 5 attempts");
    }

    /// Stops the server (its state is lost: moto keeps everything in memory).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts a killed server again on the same port, empty.
    pub fn start_again(&mut self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let stderr = std::fs::File::create(&self.stderr_log).expect("stderr log");
            let mut child = Command::new(server_bin())
                .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
                .current_dir(&self.dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .env_remove("MOTO_PORT")
                .env_remove("INITIAL_NO_AUTH_ACTION_COUNT")
                .env("MOTO_ENABLE_RECORDING", "True")
                .env("MOTO_RECORDER_FILEPATH", &self.recording)
                .spawn()
                .expect("restart moto_server");
            match wait_ready(
                &mut child,
                self.port,
                "probe-again",
                &self.recording,
                &self.stderr_log,
            ) {
                Ready::Yes => {
                    self.child = child;
                    self.clear_recording();
                    return;
                }
                // The old socket may linger for a moment.
                Ready::PortTaken if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
                Ready::PortTaken => panic!("port {} stayed taken", self.port),
            }
        }
    }

    /// This server's temporary directory (`recording.jsonl`, `stderr.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What the server printed to stderr so far: werkzeug's access log
    /// (`127.0.0.1 - - [date] "GET /bucket?list-type=2&... HTTP/1.1" 200 -`) and tracebacks.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.stderr_log).unwrap_or_default()).into_owned()
    }

    /// Calls a `/moto-api/...` endpoint; returns the status and the body.
    pub fn api(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let ct = (!body.is_empty()).then_some("text/plain");
        match http(self.port, method, path, ct, body.as_bytes()) {
            Ok((status, body)) => (status, String::from_utf8_lossy(&body).into_owned()),
            Err(e) => panic!("{method} {}{path}: {e}\n{}", self.endpoint, self.stderr()),
        }
    }

    fn api_ok(&self, path: &str, body: &str) -> String {
        let (status, text) = self.api("POST", path, body);
        if status != 200 {
            panic!(
                "POST {}{path}: HTTP {status}\n{text}\n{}",
                self.endpoint,
                self.stderr()
            );
        }
        text
    }

    /// Drops all emulated state (buckets, queues, log groups, IAM users). Leaves the
    /// recording and the IAM-auth setting as they are.
    pub fn reset(&self) {
        self.api_ok("/moto-api/reset", "");
    }

    /// Records requests from now on (the default after `start`).
    pub fn start_recording(&self) {
        self.api_ok("/moto-api/recorder/start-recording", "");
    }

    /// Stops recording requests; what was recorded stays.
    pub fn stop_recording(&self) {
        self.api_ok("/moto-api/recorder/stop-recording", "");
    }

    /// Empties the recording (moto's `reset-recording`).
    pub fn clear_recording(&self) {
        self.api_ok("/moto-api/recorder/reset-recording", "");
    }

    /// The requests recorded since the last `clear_recording`, in arrival order, without
    /// this helper's own `/moto-api/...` calls.
    pub fn requests(&self) -> Vec<Request> {
        self.recorded()
            .into_iter()
            .filter(|r| !r.path.starts_with("/moto-api/"))
            .collect()
    }

    /// Every recorded request, `/moto-api/...` ones (other than the recorder's) included.
    pub fn recorded(&self) -> Vec<Request> {
        // A request that is being recorded right now may be half written: retry briefly.
        for _ in 0..40 {
            let raw = std::fs::read(&self.recording).unwrap_or_default();
            match parse_recording(&raw) {
                Ok(out) => return out,
                Err(e) if e.is_eof() => std::thread::sleep(Duration::from_millis(25)),
                Err(e) => panic!("{}: {e}", self.recording.display()),
            }
        }
        panic!(
            "{}: still ends in a partial entry after 1 s",
            self.recording.display()
        );
    }

    /// Switches on moto's IAM authentication and returns the access key id and secret of
    /// a new IAM user whose policy allows `actions` (e.g. `["s3:GetObject",
    /// "s3:ListBucket"]`) on every resource. From then on every AWS call must be signed
    /// with that key: unknown keys get 403 (`InvalidAccessKeyId` from S3,
    /// `InvalidClientTokenId` from SQS and Logs), a wrong secret 403
    /// `SignatureDoesNotMatch`, and actions outside the policy 403 `AccessDenied`.
    /// `reset` removes the user but leaves authentication on; `disable_iam_auth` turns it off.
    pub fn enable_iam_auth(&self, actions: &[&str]) -> (String, String) {
        // The script makes exactly four IAM calls, let through unauthenticated.
        self.api_ok("/moto-api/reset-auth", "4");
        let actions = serde_json::to_string(actions).expect("actions to JSON");
        let out = self.run_python(IAM_USER_PY, &[&actions]);
        let mut lines = out.lines();
        match (lines.next(), lines.next()) {
            (Some(id), Some(secret)) => (id.to_string(), secret.to_string()),
            _ => panic!("IAM setup printed {out:?}"),
        }
    }

    /// Switches IAM authentication off again: any credentials work.
    pub fn disable_iam_auth(&self) {
        self.api_ok("/moto-api/reset-auth", "inf");
    }

    /// `target/moto-venv/bin/python`, which has boto3.
    pub fn python(&self) -> PathBuf {
        venv().join("bin/python")
    }

    /// Environment for an AWS client pointed at this server: the standard variables that
    /// boto3 and the AWS SDKs read (`AWS_ENDPOINT_URL`, static test credentials, region),
    /// with the user's config and credential files and the instance metadata service off.
    pub fn client_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
            ("AWS_REGION", REGION),
            ("AWS_DEFAULT_REGION", REGION),
            ("AWS_CONFIG_FILE", "/dev/null"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Runs a Python script (given as text) with the venv's python and `client_env`, plus
    /// `MOTO_ENDPOINT`; `args` become `sys.argv[1..]`. So `boto3.client("s3")` in the
    /// script talks to this server. Returns stdout; panics with stderr if it fails.
    pub fn run_python(&self, script: &str, args: &[&str]) -> String {
        let mut cmd = Command::new(self.python());
        cmd.arg("-")
            .args(args)
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .envs(self.client_env())
            .env("MOTO_ENDPOINT", &self.endpoint)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.python().display()));
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(script.as_bytes())
            .expect("writing the script to python");
        let out = child.wait_with_output().expect("waiting for python");
        if !out.status.success() {
            panic!(
                "python script failed ({}):\n{}\n--- script ---\n{script}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8(out.stdout).expect("python printed UTF-8")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "moto: keeping {} (stderr.log, recording.jsonl)",
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

enum Ready {
    Yes,
    PortTaken,
}

/// Waits until the server answers. `probe` goes into the query string of the readiness
/// request and so into this server's own recording, which tells this server from any
/// other process that took the port in the meantime.
fn wait_ready(
    child: &mut Child,
    port: u16,
    probe: &str,
    recording: &Path,
    stderr_log: &Path,
) -> Ready {
    let read_stderr =
        || String::from_utf8_lossy(&std::fs::read(stderr_log).unwrap_or_default()).into_owned();
    let fail = |child: &mut Child, what: String| -> ! {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{what}:\n{}", read_stderr());
    };
    let probe_path = format!("/moto-api/?probe={}", encode_query_value(probe));
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                if read_stderr().contains("Address already in use") {
                    return Ready::PortTaken;
                }
                fail(
                    child,
                    format!("moto_server exited ({status}) before it was ready"),
                );
            }
            Ok(None) => {}
            Err(e) => fail(child, format!("waiting for moto_server: {e}")),
        }
        if let Ok((200, _)) = http(port, "GET", &probe_path, None, b"") {
            let rec = std::fs::read(recording).unwrap_or_default();
            if contains(&rec, probe.as_bytes()) {
                return Ready::Yes;
            }
        }
        if Instant::now() >= deadline {
            fail(
                child,
                format!("moto_server did not answer on 127.0.0.1:{port} within {READY_TIMEOUT:?}"),
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

const IAM_USER_PY: &str = r#"
import json, sys, uuid
import boto3
iam = boto3.client("iam")
name = "trailhound-" + uuid.uuid4().hex[:8]
doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": json.loads(sys.argv[1]), "Resource": "*"}]}
iam.create_user(UserName=name)
arn = iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(doc))["Policy"]["Arn"]
iam.attach_user_policy(UserName=name, PolicyArn=arn)
key = iam.create_access_key(UserName=name)["AccessKey"]
print(key["AccessKeyId"])
print(key["SecretAccessKey"])
"#;

/// A port that was free a moment ago (the server may still lose a race for it: `start`
/// retries then).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0")
}

/// A minimal HTTP/1.1 client for moto's own endpoints: one request per connection.
fn http(
    port: u16,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(ct) = content_type {
        req.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let split = find(&resp, b"\r\n\r\n").ok_or_else(|| bad("no end of headers"))?;
    let head = String::from_utf8_lossy(&resp[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| bad("no status code"))?;
    let mut body = resp[split + 4..].to_vec();
    let chunked = head.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    if chunked {
        body = dechunk(&body).ok_or_else(|| bad("bad chunked body"))?;
    }
    Ok((status, body))
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = find(b, b"\r\n")?;
        let size = std::str::from_utf8(&b[..eol]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        b = &b[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}

/// Parses moto's recording: JSON objects one after another (normally one a line).
/// `{a}{b}\n\n{c}\n` gives three requests; a file ending inside an object gives an
/// error for which `is_eof()` is true.
fn parse_recording(raw: &[u8]) -> Result<Vec<Request>, serde_json::Error> {
    let mut out = Vec::new();
    for entry in serde_json::Deserializer::from_slice(raw).into_iter::<Value>() {
        let entry = entry?;
        out.push(request_from_entry(&entry));
    }
    Ok(out)
}

// {"method": "GET", "url": "http://127.0.0.1:1/b?list-type=2&prefix=a%2Fb", ..} ->
// Request { method: "GET", path: "/b", query: [("list-type", "2"), ("prefix", "a/b")], .. }
fn request_from_entry(e: &Value) -> Request {
    let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("");
    let url = s("url");
    // "http://127.0.0.1:PORT/path?query" -> "/path?query"
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let target = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
    let (raw_path, raw_query) = target.split_once('?').unwrap_or((target, ""));
    let query = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect();
    let headers = e
        .get("headers")
        .and_then(Value::as_object)
        .map(|h| {
            h.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default();
    let body = if e.get("body_encoded").and_then(Value::as_bool) == Some(true) {
        base64_decode(s("body"))
            .unwrap_or_else(|| panic!("moto recording: bad base64 body in {url}"))
    } else {
        s("body").as_bytes().to_vec()
    };
    Request {
        method: s("method").to_string(),
        path: percent_decode(raw_path, false),
        raw_path: raw_path.to_string(),
        query,
        raw_query: raw_query.to_string(),
        headers,
        body,
    }
}

// percent_decode("a%2Fb+c", true) == "a/b c"; percent_decode("k+x%20y", false) == "k+x y";
// a stray "%" or "%zz" stays as it is.
pub fn percent_decode(s: &str, plus_as_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_as_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn encode_query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~') {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

// base64_decode("aGVsbG8=") == Some(b"hello"); any character outside the alphabet -> None.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in s.as_bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\n' | b'\r' => continue,
            _ => return None,
        };
        acc = acc << 6 | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Leaves nothing of the user's AWS setup in a child's environment: every `AWS_*`
/// variable the SDK reads removed, the shared config and credentials files pointed at
/// files in `dir` that do not exist, instance metadata off. Tests then set what they
/// need.
pub fn clean_aws_env(cmd: &mut Command, dir: &Path) {
    for k in [
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "RUST_LOG",
    ] {
        cmd.env_remove(k);
    }
    cmd.env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", dir.join("no-such-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.join("no-such-aws-credentials"),
        );
}

/// What `tests/moto/make_trail_bucket.py` put in a bucket: log objects (key → record
/// count) in the AWSLogs layout, and their records in all.
pub struct TrailBucket {
    pub objects: std::collections::BTreeMap<String, u64>,
    pub records: u64,
}

/// `AWSLogs/…/2024/12/01/x.json.gz` → `AWSLogs/…/2024/12/01/`.
pub fn leaf_of(key: &str) -> &str {
    &key[..key.rfind('/').map_or(0, |i| i + 1)]
}

impl TrailBucket {
    /// Per leaf (day) prefix, its keys in order.
    pub fn by_leaf(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        let mut out: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for k in self.objects.keys() {
            out.entry(leaf_of(k).to_string())
                .or_default()
                .push(k.clone());
        }
        out
    }

    /// Per leaf prefix, its last key: the S3 checkpoint once everything is read.
    pub fn leaves(&self) -> std::collections::BTreeMap<String, String> {
        self.by_leaf()
            .into_iter()
            .map(|(p, keys)| (p, keys.last().cloned().unwrap_or_default()))
            .collect()
    }
}

impl Moto {
    /// Fills `bucket` with CloudTrail log objects built from the real samples
    /// (`tests/moto/make_trail_bucket.py BUCKET EXTRA…`, e.g. `--days 2024-12-01
    /// --per-day 10`).
    pub fn fill_trail_bucket(&self, bucket: &str, extra: &[&str]) -> TrailBucket {
        let script = super::root().join("tests/moto/make_trail_bucket.py");
        let out = Command::new(self.python())
            .arg(&script)
            .arg(bucket)
            .args(extra)
            .envs(self.client_env())
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
        TrailBucket {
            objects,
            records: v["records"].as_u64().expect("records"),
        }
    }
}
