//! Hot rule reload under a running process: a changed rule file is picked up and the
//! next records are matched by the new rule; a broken rule set is rejected whole and
//! the old one keeps working; SIGHUP reloads; correlation state of unchanged
//! correlations survives a reload, that of a changed one starts afresh. Exercised on
//! `detect` reading stdin and on `run` with a stdin source.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long to wait for something the process is expected to do. Not a performance
/// bound: only a guard against a hung test.
const PATIENCE: Duration = Duration::from_secs(30);

struct Daemon {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Receiver<String>,
    err: Receiver<String>,
    stderr_seen: Vec<String>,
}

impl Daemon {
    fn start(args: &[&str]) -> Daemon {
        let mut child = Command::new(common::BIN)
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn trailhound");
        let stdin = child.stdin.take();
        let (otx, out) = channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = otx.send(l);
            }
        });
        let (etx, err) = channel();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = etx.send(l);
            }
        });
        Daemon {
            child,
            stdin,
            out,
            err,
            stderr_seen: Vec::new(),
        }
    }

    fn send(&mut self, record: &str) {
        let s = self.stdin.as_mut().expect("stdin open");
        s.write_all(record.as_bytes()).expect("write");
        s.write_all(b"\n").expect("write");
        s.flush().expect("flush");
    }

    /// The next finding on stdout.
    fn finding(&mut self) -> Value {
        let line = self
            .out
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("no finding; stderr: {:?}", self.stderr_seen));
        serde_json::from_str(&line).expect("finding is JSON")
    }

    /// Waits for a stderr line containing `text`.
    fn wait_log(&mut self, text: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Ok(l) = self.err.recv_timeout(Duration::from_millis(200)) {
                self.stderr_seen.push(l.clone());
                if l.contains(text) {
                    return l;
                }
            }
        }
        panic!("no log line with {text:?}; stderr: {:?}", self.stderr_seen)
    }

    /// Asserts nothing more arrives on stdout for a while (after a marker record
    /// whose finding is awaited, so "nothing" is not just "not yet").
    fn no_finding_before(&mut self, marker_rule: &str) {
        let f = self.finding();
        assert_eq!(
            f["rule"]["id"], marker_rule,
            "expected only the marker's finding, got {f}"
        );
    }

    /// The rule ids of the next `n` findings, sorted (their order within a record is
    /// not part of the contract).
    fn rule_ids_of_next(&mut self, n: usize) -> Vec<String> {
        let mut ids: Vec<String> = (0..n)
            .map(|_| {
                self.finding()["rule"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        ids.sort();
        ids
    }

    fn finish(mut self) -> Value {
        drop(self.stdin.take());
        let status = self.child.wait().expect("wait");
        let mut stats = None;
        while let Ok(l) = self.err.recv_timeout(Duration::from_secs(5)) {
            if l.starts_with('{') {
                stats = serde_json::from_str(&l).ok();
            }
            self.stderr_seen.push(l);
        }
        assert!(
            status.success(),
            "exit {status:?}; stderr: {:?}",
            self.stderr_seen
        );
        stats.unwrap_or_else(|| panic!("no stats line: {:?}", self.stderr_seen))
    }
}

const CREATE: &str = "11111111-1111-4111-8111-111111111111";
const MARKER: &str = "22222222-2222-4222-8222-222222222222";

fn rule(id: &str, title: &str, event_name: &str) -> String {
    format!(
        "title: {title}\nid: {id}\nstatus: test\nlevel: high\nlogsource: {{product: aws, service: cloudtrail}}\ndetection:\n  sel: {{eventName: {event_name}}}\n  condition: sel\n"
    )
}

fn record(n: u32, event_name: &str, ip: &str) -> String {
    format!(
        r#"{{"eventVersion":"1.08","eventID":"9d3f0000-0000-4000-8000-{n:012}","eventTime":"2024-05-01T10:{:02}:{:02}Z","eventSource":"iam.amazonaws.com","eventName":"{event_name}","awsRegion":"us-east-1","recipientAccountId":"111122223333","sourceIPAddress":"{ip}","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/alice","accountId":"111122223333"}}}}"#,
        n / 60,
        n % 60
    )
}

/// Replaces a file the way editors do: write a new one, rename it over the old.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

#[test]
fn detect_on_stdin_reloads_changed_rules_and_rejects_a_broken_set() {
    let dir = tempfile::tempdir().expect("tmp");
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).expect("mkdir");
    let target = rules.join("target.yml");
    std::fs::write(&target, rule(CREATE, "User created", "CreateUser")).expect("write");
    std::fs::write(
        rules.join("marker.yml"),
        rule(MARKER, "Marker", "GetCallerIdentity"),
    )
    .expect("write");
    let rules_arg = rules.display().to_string();
    let mut d = Daemon::start(&["--no-builtin", "--rules", &rules_arg, "--stats", "json"]);

    d.send(&record(1, "CreateUser", "198.51.100.1"));
    let f = d.finding();
    assert_eq!(f["rule"]["id"], CREATE);
    assert_eq!(f["event"]["eventName"], "CreateUser");

    // The rule now looks for DeleteUser.
    replace(&target, &rule(CREATE, "User deleted", "DeleteUser"));
    d.wait_log("rules reloaded");
    d.send(&record(2, "CreateUser", "198.51.100.1"));
    d.send(&record(3, "GetCallerIdentity", "198.51.100.1"));
    d.no_finding_before(MARKER);
    d.send(&record(4, "DeleteUser", "198.51.100.1"));
    let f = d.finding();
    assert_eq!(f["rule"]["id"], CREATE);
    assert_eq!(f["rule"]["title"], "User deleted");
    assert_eq!(f["event"]["eventName"], "DeleteUser");

    // A broken rule file: the whole new set is rejected, the rules in force stay.
    std::fs::write(rules.join("broken.yml"), "title: broken\ndetection: [\n").expect("write");
    let line = d.wait_log("rule reload rejected");
    assert!(
        line.contains("broken.yml"),
        "the error names the file: {line}"
    );
    d.send(&record(5, "DeleteUser", "198.51.100.1"));
    let f = d.finding();
    assert_eq!(
        f["rule"]["title"], "User deleted",
        "the old set keeps working"
    );

    // Fixed again, and SIGHUP asks for a reload too.
    std::fs::remove_file(rules.join("broken.yml")).expect("rm");
    d.wait_log("rules reloaded");
    replace(&target, &rule(CREATE, "User created again", "CreateUser"));
    d.wait_log("rules reloaded");
    // SAFETY: sending a signal to our own child process.
    let rc = unsafe { libc::kill(d.child.id() as i32, libc::SIGHUP) };
    assert_eq!(rc, 0);
    d.wait_log("rules reloaded (SIGHUP)");
    d.send(&record(6, "CreateUser", "198.51.100.1"));
    let f = d.finding();
    assert_eq!(f["rule"]["title"], "User created again");

    let stats = d.finish();
    common::check_accounting(&stats);
    assert_eq!(stats["records_in"], 6);
    assert_eq!(stats["accounting_ok"], true);
    assert_eq!(stats["findings"]["total"], 5);
    assert_eq!(stats["findings"]["by_rule"][CREATE], 4);
}

const BASE: &str = "33333333-3333-4333-8333-333333333333";
const BURST: &str = "44444444-4444-4444-8444-444444444444";

fn burst(threshold: u32) -> String {
    format!(
        "title: Key burst\nid: {BURST}\nstatus: test\nlevel: high\ncorrelation:\n  type: event_count\n  rules: [{BASE}]\n  group-by: [sourceIPAddress]\n  timespan: 1h\n  condition: {{gte: {threshold}}}\ngenerate: true\n"
    )
}

#[test]
fn run_keeps_the_state_of_unchanged_correlations_across_a_reload() {
    let dir = tempfile::tempdir().expect("tmp");
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).expect("mkdir");
    std::fs::write(
        rules.join("base.yml"),
        rule(BASE, "Access key created", "CreateAccessKey"),
    )
    .expect("write");
    std::fs::write(rules.join("burst.yml"), burst(3)).expect("write");
    let other = rules.join("other.yml");
    std::fs::write(&other, rule(MARKER, "Marker", "GetCallerIdentity")).expect("write");
    let cfg = common::write_file(
        dir.path(),
        "trailhound.yaml",
        format!(
            "version: 1\nrules: {{paths: [{}], builtin: false}}\nsources:\n  - stdin: {{name: pipe}}\n",
            rules.display()
        )
        .as_bytes(),
    );
    let cfg = cfg.display().to_string();
    let mut d = Daemon::start(&["run", "--config", &cfg, "--stats", "json"]);
    let ip = "203.0.113.77";
    for n in [1, 2] {
        d.send(&record(n, "CreateAccessKey", ip));
        assert_eq!(d.finding()["rule"]["id"], BASE);
    }
    // An unrelated rule changes: the burst correlation is the same, its two events stay.
    replace(
        &other,
        &rule(MARKER, "Marker (renamed)", "GetCallerIdentity"),
    );
    d.wait_log("rules reloaded");
    d.send(&record(3, "CreateAccessKey", ip));
    let ids = d.rule_ids_of_next(2);
    assert_eq!(
        ids,
        [BASE, BURST],
        "the third event completes the burst begun before the reload"
    );

    // The correlation itself changes: it starts afresh (its earlier events do not count).
    replace(&rules.join("burst.yml"), &burst(2));
    d.wait_log("rules reloaded");
    d.send(&record(4, "CreateAccessKey", ip));
    assert_eq!(d.finding()["rule"]["id"], BASE);
    d.send(&record(5, "GetCallerIdentity", ip));
    let f = d.finding();
    assert_eq!(
        f["rule"]["id"], MARKER,
        "no burst from one event after the change: {f}"
    );
    assert_eq!(f["rule"]["title"], "Marker (renamed)");
    d.send(&record(6, "CreateAccessKey", ip));
    let ids = d.rule_ids_of_next(2);
    assert_eq!(
        ids,
        [BASE, BURST],
        "two events after the change meet the new threshold"
    );
    let stats = d.finish();
    common::check_accounting(&stats);
    assert_eq!(stats["records_in"], 6);
    assert_eq!(stats["accounting_ok"], true);
}
