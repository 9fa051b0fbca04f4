//! S3 faults through the real AWS SDK: a fault-injecting proxy
//! (`tests/common/fault_proxy.rs`) sits between trailhound and a local moto server and
//! answers chosen requests itself with 503 `SlowDown`, 500 `InternalError`, 403
//! `AccessDenied`, a connection reset or a body cut off half-way, which moto cannot
//! produce.
//!
//! What is proved: faults within the retry budget are retried (the proxy sees the
//! SDK's next attempt, or trailhound's re-read of a cut-off body) and lose or repeat
//! nothing — every record is read once and the findings are those of a fault-free run;
//! a fault beyond the budget fails that object by name with the service's error code,
//! exits 3, reads every other object, and holds the prefix's checkpoint before it; a
//! prefix whose listing is denied is named and skipped, the others are all read; the
//! `run` daemon rides out an outage of every request without exiting, then reads every
//! object exactly once, its checkpoint ending at each prefix's last key, with bounded
//! memory; an SQS message whose object fails is kept until the object is read.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::fault_proxy::{Entry, Fault, FaultProxy, Op, Outcome, Rule};
use common::moto::Moto;
use serde_json::{Value, json};

/// The bucket the fixture fills.
const BUCKET: &str = "trail";

/// `trailhound` with the emulator's credentials and nothing from the user's AWS setup
/// (no `AWS_ENDPOINT_URL` either: each run names its endpoint).
fn trailhound(moto: &Moto) -> Command {
    let mut c = Command::new(common::BIN);
    common::moto::clean_aws_env(&mut c, moto.dir());
    c.envs(moto.client_env()).env_remove("AWS_ENDPOINT_URL");
    c
}

/// Runs `trailhound ARGS --no-record --no-dedup --stats json` to its end.
fn run(moto: &Moto, args: &[&str]) -> common::Output {
    let out = trailhound(moto)
        .args(args)
        .args(["--no-record", "--no-dedup", "--stats", "json"])
        .stdin(Stdio::null())
        .output()
        .expect("run trailhound");
    common::Output {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `detect s3://trail/` straight against moto: the findings a fault-free run gives.
fn reference(moto: &Moto) -> (Value, Vec<(String, String)>) {
    let out = run(
        moto,
        &[
            "s3://trail/",
            "--endpoint-url",
            &moto.endpoint,
            "--s3-force-path-style",
        ],
    );
    assert_eq!(out.code, 0, "reference run failed:\n{}", out.stderr);
    let stats = out.stats();
    common::check_accounting(&stats);
    (stats, out.keys())
}

/// A config file with connection `local` to `endpoint` (`retry`: extra connection
/// settings such as `max_error_retry_attempts: 2`) and the given `sources:` entries
/// (none: no `sources:` key).
fn config(dir: &Path, endpoint: &str, retry: &str, sources: &str) -> PathBuf {
    let p = dir.join("trailhound.yaml");
    let sources = if sources.is_empty() {
        String::new()
    } else {
        format!("sources:\n{sources}")
    };
    let retry = if retry.is_empty() {
        String::new()
    } else {
        format!(", {retry}")
    };
    std::fs::write(
        &p,
        format!(
            "version: 1\nstate_dir: \"{state}\"\nconnections:\n  local: {{endpoint_url: \"{endpoint}\", region: us-east-1, access_key: test, secret_key: test, s3_force_path_style: true{retry}}}\n{sources}",
            state = dir.join("state").display(),
        ),
    )
    .expect("config");
    p
}

/// The first source's counter `key`.
fn counter(stats: &Value, key: &str) -> u64 {
    stats["sources"][0]["counters"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("sources[0].counters.{key} in {stats}"))
}

/// Per key, how often a GetObject of it was answered 200 by moto.
fn gets_ok(log: &[Entry]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for e in log {
        if e.request.op == Op::GetObject && e.forwarded(200) {
            let k = e.request.key.clone().expect("GetObject has a key");
            *out.entry(k).or_default() += 1;
        }
    }
    out
}

/// Every injected fault is followed by another request for the same resource (the
/// SDK's next attempt for a fault before the response; a new request, attempt 1, for a
/// body cut off), and every faulted resource is answered 200 in the end.
fn assert_every_fault_retried(log: &[Entry]) {
    for (i, e) in log.iter().enumerate() {
        let Some(f) = e.fault() else { continue };
        let resource = e.request.resource();
        let next = log[i + 1..]
            .iter()
            .find(|n| n.request.resource() == resource)
            .unwrap_or_else(|| panic!("{f:?} on {resource} was never retried"));
        let want = if f.before_response() {
            e.request.attempt.map(|a| a + 1)
        } else {
            Some(1)
        };
        assert_eq!(
            next.request.attempt, want,
            "{f:?} on {resource} (attempt {:?}) was followed by attempt {:?}",
            e.request.attempt, next.request.attempt
        );
        assert!(
            log[i + 1..]
                .iter()
                .any(|n| n.request.resource() == resource && n.forwarded(200)),
            "{f:?} on {resource}: never answered 200 afterwards"
        );
    }
}

/// Polls `cond` every 100 ms until it holds or `timeout` passes; returns whether it held.
fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The resident set of a process, in KiB (`VmRSS` of /proc/PID/status).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Generous: the daemon holds a few objects of a few KiB and the rules.
const RSS_LIMIT_KIB: u64 = 500 * 1024;

/// A running `trailhound run`, stdout and stderr going to files.
struct Daemon {
    child: Option<Child>,
    stdout: PathBuf,
    stderr: PathBuf,
    stats: PathBuf,
    peak_rss_kib: u64,
}

impl Daemon {
    fn start(moto: &Moto, dir: &Path, config: &Path) -> Daemon {
        let stdout = dir.join("run.stdout");
        let stderr = dir.join("run.stderr");
        let stats = dir.join("run.stats.json");
        let child = trailhound(moto)
            .args(["run", "--config"])
            .arg(config)
            .args(["--no-record", "--no-dedup", "--stats-file"])
            .arg(&stats)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("start trailhound run");
        Daemon {
            child: Some(child),
            stdout,
            stderr,
            stats,
            peak_rss_kib: 0,
        }
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.stderr).unwrap_or_default()).into_owned()
    }

    /// Panics (with its stderr) if the daemon has exited; samples its memory.
    fn assert_running(&mut self) {
        let child = self.child.as_mut().expect("running");
        if let Ok(Some(st)) = child.try_wait() {
            panic!("trailhound run exited ({st}):\n{}", self.stderr());
        }
        if let Some(kib) = rss_kib(child.id()) {
            self.peak_rss_kib = self.peak_rss_kib.max(kib);
            assert!(
                kib < RSS_LIMIT_KIB,
                "trailhound run uses {kib} KiB resident:\n{}",
                self.stderr()
            );
        }
    }

    /// SIGTERM, then waits (60 s at most); returns what it wrote and its summary.
    fn stop(mut self) -> (common::Output, Value) {
        let mut child = self.child.take().expect("running");
        // SAFETY: signalling a child process this test started and still owns.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait") {
                break st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "trailhound run did not stop within 60 s of SIGTERM:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let out = common::Output {
            code: status.code().unwrap_or(-1),
            stdout: std::fs::read(&self.stdout).expect("stdout"),
            stderr: self.stderr(),
        };
        let stats: Value = serde_json::from_slice(
            &std::fs::read(&self.stats)
                .unwrap_or_else(|e| panic!("stats file: {e}\n{}", out.stderr)),
        )
        .expect("stats json");
        (out, stats)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The `done` map of a checkpoint file (None while it does not exist).
fn checkpoint(path: &Path) -> Option<BTreeMap<String, String>> {
    let v: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    serde_json::from_value(v["done"].clone()).ok()
}

/// 503 SlowDown, 500 InternalError, resets and cut-off bodies on a share of the
/// ListObjectsV2 and GetObject requests, each within the SDK's default three attempts
/// (a cut-off body is re-read by trailhound): `detect s3://` reads every record once,
/// its findings are those of a fault-free run, and the proxy saw every fault retried.
#[test]
fn transient_faults_within_the_retry_budget_lose_and_repeat_nothing() {
    let Some(moto) = Moto::start() else { return };
    let m = moto.fill_trail_bucket(BUCKET, &["--days", "2024-12-01", "--per-day", "12"]);
    assert_eq!(m.objects.len(), 72);
    let (ref_stats, ref_keys) = reference(&moto);
    assert_eq!(common::stat(&ref_stats, "records_in"), m.records);
    assert!(!ref_keys.is_empty(), "the fixture raises findings");

    let proxy = FaultProxy::start(&moto.endpoint);
    // GetObject: per key class, at most two faulted attempts of each request.
    let keys: Vec<String> = m.objects.keys().cloned().collect();
    let class = |c: usize| -> Vec<String> {
        keys.iter()
            .enumerate()
            .filter(|(i, _)| i % 12 == c)
            .map(|(_, k)| k.clone())
            .collect()
    };
    let get = |f: Fault, c: usize| Rule::new(f).op(Op::GetObject).keys(class(c));
    proxy.add(get(Fault::SlowDown, 0).first_per_resource(2));
    proxy.add(get(Fault::InternalError, 1).first_per_resource(2));
    proxy.add(get(Fault::Reset, 2).first_per_resource(2));
    proxy.add(get(Fault::Truncate, 3).first_per_resource(1));
    proxy.add(get(Fault::SlowDown, 4).first_per_resource(1));
    // ListObjectsV2 (one lister, so requests come one at a time): every fifth is
    // reset, and the first attempt of each day listing of eu-west-1 and of each region
    // discovery listing fails; never more than two attempts of one request.
    proxy.add(Rule::new(Fault::Reset).op(Op::ListObjectsV2).every(5));
    proxy.add(
        Rule::new(Fault::InternalError)
            .op(Op::ListObjectsV2)
            .matching(|r| {
                r.query_param("delimiter").is_none()
                    && r.list_prefix().is_some_and(|p| p.contains("/eu-west-1/"))
            })
            .first_per_resource(1),
    );
    proxy.add(
        Rule::new(Fault::SlowDown)
            .op(Op::ListObjectsV2)
            .matching(|r| {
                r.query_param("delimiter").is_some()
                    && r.list_prefix().is_some_and(|p| p.ends_with("/CloudTrail/"))
            })
            .first_per_resource(1),
    );

    let out = run(
        &moto,
        &[
            "s3://trail/",
            "--endpoint-url",
            &proxy.endpoint,
            "--s3-force-path-style",
        ],
    );
    let counts = proxy.fault_counts();
    eprintln!("faults injected: {counts:?}\nproxy: {}", proxy.summary());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let stats = out.stats();
    common::check_accounting(&stats);
    assert_eq!(common::stat(&stats, "records_in"), m.records, "{stats}");
    assert_eq!(common::stat(&stats, "inputs"), m.objects.len() as u64);
    assert_eq!(common::stat(&stats, "inputs_failed"), 0, "{}", out.stderr);
    assert_eq!(counter(&stats, "objects_fetched"), m.objects.len() as u64);
    assert_eq!(counter(&stats, "objects_failed"), 0);
    assert_eq!(out.keys(), ref_keys, "the findings of a fault-free run");

    let log = proxy.log();
    // Each object answered once: none skipped, none read twice.
    let want: BTreeMap<String, usize> = m.objects.keys().map(|k| (k.clone(), 1)).collect();
    assert_eq!(gets_ok(&log), want);
    assert_every_fault_retried(&log);
    for f in Fault::TRANSIENT {
        assert!(
            counts.get(&(Op::GetObject, f)).is_some_and(|&n| n > 0),
            "no {f:?} on GetObject: {counts:?}"
        );
    }
    for f in [Fault::SlowDown, Fault::InternalError, Fault::Reset] {
        assert!(
            counts.get(&(Op::ListObjectsV2, f)).is_some_and(|&n| n > 0),
            "no {f:?} on ListObjectsV2: {counts:?}"
        );
    }
    // Exactly as planned on GetObject: the 6 keys of classes 0–2 twice each, those of
    // classes 3 and 4 once.
    let on_get = |f: Fault| counts.get(&(Op::GetObject, f)).copied().unwrap_or(0);
    assert_eq!(on_get(Fault::SlowDown), 6 * 2 + 6);
    assert_eq!(on_get(Fault::InternalError), 6 * 2);
    assert_eq!(on_get(Fault::Reset), 6 * 2);
    assert_eq!(on_get(Fault::Truncate), 6);
    assert!(
        log.iter()
            .all(|e| !matches!(e.outcome, Outcome::UpstreamFailed(_))),
        "moto always answered"
    );
}

/// GetObject of four objects fails on every attempt (`max_error_retry_attempts: 2`):
/// SlowDown, InternalError, a reset, a body cut off. `detect` names each object with
/// the error on stderr, exits 3 (inputs failed), reads every other object, and each
/// failed object's prefix checkpoint stops before it; a second run without faults
/// reads exactly the failed objects and those after them in their prefixes.
#[test]
fn faults_beyond_the_retry_budget_fail_the_object_by_name() {
    let Some(moto) = Moto::start() else { return };
    let m = moto.fill_trail_bucket(BUCKET, &["--days", "2024-12-01", "--per-day", "4"]);
    let by_leaf = m.by_leaf();
    assert_eq!(by_leaf.len(), 6);
    let proxy = FaultProxy::start(&moto.endpoint);
    // The second key of the first four prefixes, one fault each.
    let plan: Vec<(Fault, String)> = Fault::TRANSIENT
        .iter()
        .zip(by_leaf.values())
        .map(|(f, keys)| (*f, keys[1].clone()))
        .collect();
    for (f, key) in &plan {
        proxy.add(Rule::new(*f).op(Op::GetObject).key(key));
    }
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(
        dir.path(),
        &proxy.endpoint,
        "max_error_retry_attempts: 2, min_error_retry_delay: 10ms",
        "",
    );
    let state = dir.path().join("state");
    let args = [
        "s3://trail/",
        "--config",
        cfg.to_str().expect("utf-8"),
        "--connection",
        "local",
        "--state-dir",
        state.to_str().expect("utf-8"),
    ];
    let out = run(&moto, &args);
    eprintln!(
        "faults injected: {:?}\nproxy: {}",
        proxy.fault_counts(),
        proxy.summary()
    );
    assert_eq!(out.code, 3, "exit code 3: inputs failed\n{}", out.stderr);
    let stats = out.stats();
    common::check_accounting(&stats);
    let failed: BTreeSet<&str> = plan.iter().map(|(_, k)| k.as_str()).collect();
    let lost: u64 = failed.iter().map(|k| m.objects[*k]).sum();
    assert_eq!(common::stat(&stats, "records_in"), m.records - lost);
    assert_eq!(common::stat(&stats, "inputs_failed"), plan.len() as u64);
    assert_eq!(counter(&stats, "objects_failed"), plan.len() as u64);
    assert_eq!(
        counter(&stats, "objects_fetched"),
        (m.objects.len() - plan.len()) as u64
    );

    // Each failure is one error line naming the object and what went wrong.
    for (f, key) in &plan {
        let name = format!("s3://{BUCKET}/{key}");
        let lines: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.contains(&name))
            .filter(|l| l.contains("ERROR"))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "{f:?}: one error line for {name}:\n{}",
            out.stderr
        );
        let line = lines[0];
        let what: &[&str] = match f {
            Fault::SlowDown => &["SlowDown", "Please reduce your request rate."],
            Fault::InternalError => &["InternalError", "We encountered an internal error."],
            Fault::Reset => &["connection failed", "reset"],
            Fault::Truncate => &["reading the object"],
            Fault::AccessDenied => &["AccessDenied"],
        };
        for w in what {
            assert!(line.contains(w), "{f:?}: {w:?} missing from: {line}");
        }
    }

    // Bounded retries: each failed object was requested exactly twice (the SDK's two
    // attempts; for the cut-off body, trailhound's two reads); the others once.
    let log = proxy.log();
    for (f, key) in &plan {
        let tries: Vec<&Entry> = log
            .iter()
            .filter(|e| e.request.key.as_deref() == Some(key.as_str()))
            .collect();
        assert_eq!(tries.len(), 2, "{f:?}: {tries:#?}");
        assert!(tries.iter().all(|e| e.fault() == Some(*f)), "{tries:#?}");
        let attempts: Vec<Option<u32>> = tries.iter().map(|e| e.request.attempt).collect();
        let want = if f.before_response() {
            vec![Some(1), Some(2)]
        } else {
            vec![Some(1), Some(1)]
        };
        assert_eq!(attempts, want, "{f:?}");
    }
    let want: BTreeMap<String, usize> = m
        .objects
        .keys()
        .filter(|k| !failed.contains(k.as_str()))
        .map(|k| (k.clone(), 1))
        .collect();
    assert_eq!(gets_ok(&log), want, "every other object read once");

    // The checkpoint stops before each failed object.
    let cp = checkpoint(&state.join("checkpoints/s3.json")).expect("checkpoint");
    for (leaf, keys) in &by_leaf {
        let want = if keys.iter().any(|k| failed.contains(k.as_str())) {
            &keys[0]
        } else {
            &keys[keys.len() - 1]
        };
        assert_eq!(cp.get(leaf), Some(want), "checkpoint of {leaf}: {cp:#?}");
    }

    // Faults gone: the next run reads from each checkpoint on.
    proxy.clear();
    proxy.clear_log();
    let again = run(&moto, &args);
    assert_eq!(again.code, 0, "{}", again.stderr);
    let redo: BTreeMap<String, usize> = by_leaf
        .values()
        .filter(|keys| keys.iter().any(|k| failed.contains(k.as_str())))
        .flat_map(|keys| keys[1..].iter().map(|k| (k.clone(), 1)))
        .collect();
    assert_eq!(gets_ok(&proxy.log()), redo);
    let stats = again.stats();
    let redo_records: u64 = redo.keys().map(|k| m.objects[k]).sum();
    assert_eq!(common::stat(&stats, "records_in"), redo_records);
    let cp = checkpoint(&state.join("checkpoints/s3.json")).expect("checkpoint");
    assert_eq!(cp, m.leaves());
}

/// Access to part of the bucket is denied (403 `AccessDenied` on one day listing, and
/// on the region discovery of one account): `detect` names both prefixes with the
/// error, exits 3, and still lists and reads every other prefix, those after the
/// denied ones included; their checkpoints advance, the denied ones get none. The
/// `run` daemon with the same faults reads the other prefixes too, keeps running, and
/// reads the denied ones once access is granted.
#[test]
fn a_denied_prefix_does_not_hold_up_the_others() {
    let Some(moto) = Moto::start() else { return };
    let m = moto.fill_trail_bucket(BUCKET, &["--days", "2024-12-01", "--per-day", "3"]);
    let by_leaf = m.by_leaf();
    assert_eq!(by_leaf.len(), 6);
    // The first prefix is AWSLogs/111111111111/CloudTrail/eu-west-1/…; deny its
    // us-east-1 day and everything of account 333333333333.
    let bad_leaf = by_leaf.keys().nth(1).expect("six prefixes").clone();
    assert!(bad_leaf.starts_with("AWSLogs/111111111111/CloudTrail/us-east-1/"));
    let bad_account = "AWSLogs/333333333333/CloudTrail/";
    let proxy = FaultProxy::start(&moto.endpoint);
    let plan = || {
        let leaf = bad_leaf.clone();
        [
            Rule::new(Fault::AccessDenied)
                .op(Op::ListObjectsV2)
                .matching(move |r| r.list_prefix().as_deref() == Some(leaf.as_str())),
            Rule::new(Fault::AccessDenied)
                .op(Op::ListObjectsV2)
                .matching(move |r| r.list_prefix().as_deref() == Some(bad_account)),
        ]
    };
    for r in plan() {
        proxy.add(r);
    }
    let dir = tempfile::tempdir().expect("tmp");
    let retry = "max_error_retry_attempts: 2, min_error_retry_delay: 10ms";
    let cfg = config(dir.path(), &proxy.endpoint, retry, "");
    let state = dir.path().join("state");
    let out = run(
        &moto,
        &[
            "s3://trail/",
            "--config",
            cfg.to_str().expect("utf-8"),
            "--connection",
            "local",
            "--state-dir",
            state.to_str().expect("utf-8"),
        ],
    );
    eprintln!(
        "faults injected: {:?}\nproxy: {}",
        proxy.fault_counts(),
        proxy.summary()
    );
    assert_eq!(out.code, 3, "{}", out.stderr);
    for prefix in [bad_leaf.as_str(), bad_account] {
        let line = format!("s3://{BUCKET}/{prefix}: listing: AccessDenied: Access Denied");
        assert!(
            out.stderr
                .lines()
                .any(|l| l.contains("ERROR") && l.contains(&line)),
            "{line:?} not in:\n{}",
            out.stderr
        );
    }
    let stats = out.stats();
    common::check_accounting(&stats);
    let error = stats["sources"][0]["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("2 listing(s) denied, their objects not read: "),
        "{stats}"
    );
    let log = proxy.log();
    // Not retried: the SDK does not retry AccessDenied.
    assert_eq!(
        proxy.fault_counts(),
        BTreeMap::from([((Op::ListObjectsV2, Fault::AccessDenied), 2)])
    );
    let denied = |leaf: &str| leaf == bad_leaf || leaf.starts_with(bad_account);
    let others: BTreeMap<String, usize> = by_leaf
        .iter()
        .filter(|(leaf, _)| !denied(leaf))
        .flat_map(|(_, keys)| keys.iter().map(|k| (k.clone(), 1)))
        .collect();
    assert_eq!(others.len(), 3 * 3, "three prefixes are readable");
    assert_eq!(gets_ok(&log), others, "every other prefix is read");
    let read: u64 = others.keys().map(|k| m.objects[k]).sum();
    assert_eq!(common::stat(&stats, "records_in"), read);
    // The failed source still reports its counters.
    assert_eq!(counter(&stats, "objects_fetched"), others.len() as u64);
    assert_eq!(counter(&stats, "objects_failed"), 0);
    let mut want_cp = m.leaves();
    want_cp.retain(|leaf, _| !denied(leaf));
    assert_eq!(
        checkpoint(&state.join("checkpoints/s3.json")),
        Some(want_cp.clone())
    );

    // The daemon, from a fresh state: the other prefixes are read while access is
    // denied, the denied ones once it is granted.
    std::fs::remove_dir_all(&state).expect("fresh state");
    proxy.clear_log();
    let cfg = config(
        dir.path(),
        &proxy.endpoint,
        retry,
        "  - s3: {name: org, connection: local, bucket: trail, poll_interval: 1s}\n",
    );
    let cp_path = state.join("checkpoints/org.json");
    let mut daemon = Daemon::start(&moto, dir.path(), &cfg);
    let others_done = wait_for(Duration::from_secs(60), || {
        daemon.assert_running();
        checkpoint(&cp_path).as_ref() == Some(&want_cp)
    });
    assert!(
        others_done,
        "the other prefixes were not read: {:?}\n{}",
        checkpoint(&cp_path),
        daemon.stderr()
    );
    // Denied again on the next pass, still running.
    let denials = |p: &FaultProxy| p.fault_counts().values().sum::<usize>();
    assert!(wait_for(Duration::from_secs(30), || {
        daemon.assert_running();
        denials(&proxy) >= 4
    }));
    proxy.clear();
    let leaves = m.leaves();
    let all_done = wait_for(Duration::from_secs(60), || {
        daemon.assert_running();
        checkpoint(&cp_path).as_ref() == Some(&leaves)
    });
    assert!(all_done, "{:?}\n{}", checkpoint(&cp_path), daemon.stderr());
    let (out, stats) = daemon.stop();
    common::check_accounting(&stats);
    assert_eq!(common::stat(&stats, "records_in"), m.records, "{stats}");
    let want: BTreeMap<String, usize> = m.objects.keys().map(|k| (k.clone(), 1)).collect();
    assert_eq!(gets_ok(&proxy.log()), want, "{}", out.stderr);
    assert!(
        out.stderr.lines().any(|l| l.contains("listing(s) denied")
            && l.contains("AccessDenied")
            && l.contains("listing again in 1s")),
        "{}",
        out.stderr
    );
}

/// `run` with an S3 source: after its 12th object, every request fails with 503
/// SlowDown for 10 s (listings and fetches, beyond `max_error_retry_attempts: 2`). The
/// daemon does not exit, logs the failed fetches and listings, then reads every object
/// exactly once (each answered 200 once by moto, none skipped by the checkpoint though
/// its first fetches failed); the checkpoint covers every prefix; the findings are
/// those of a fault-free run, none repeated; memory stays bounded.
#[test]
fn daemon_rides_out_an_outage_and_reads_everything_once() {
    let Some(moto) = Moto::start() else { return };
    let m = moto.fill_trail_bucket(
        BUCKET,
        &["--days", "2024-12-01,2024-12-02", "--per-day", "6"],
    );
    assert_eq!(m.objects.len(), 72);
    let (_, ref_keys) = reference(&moto);
    assert!(!ref_keys.is_empty(), "the fixture raises findings");
    let proxy = FaultProxy::start(&moto.endpoint);
    proxy.add(
        Rule::new(Fault::SlowDown)
            .armed_after(Op::GetObject, 12)
            .lasting(Duration::from_secs(10)),
    );
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(
        dir.path(),
        &proxy.endpoint,
        "max_error_retry_attempts: 2, min_error_retry_delay: 10ms",
        "  - s3: {name: org, connection: local, bucket: trail, concurrency: 4, poll_interval: 1s}\n",
    );
    let mut daemon = Daemon::start(&moto, dir.path(), &cfg);
    // The outage: armed by the 12th object, over 10 s later.
    let outage = wait_for(Duration::from_secs(120), || {
        daemon.assert_running();
        proxy.windows_over()
    });
    assert!(outage, "the outage never ended:\n{}", daemon.stderr());
    let during = proxy.fault_counts();
    // Then everything is read.
    let cp_path = dir.path().join("state/checkpoints/org.json");
    let leaves = m.leaves();
    let done = wait_for(Duration::from_secs(120), || {
        daemon.assert_running();
        checkpoint(&cp_path).as_ref() == Some(&leaves)
    });
    assert!(
        done,
        "the checkpoint never covered every prefix: {:#?}\n{}",
        checkpoint(&cp_path),
        daemon.stderr()
    );
    // A few more polls: nothing is read again.
    let polls = proxy
        .log()
        .iter()
        .filter(|e| e.request.op == Op::ListObjectsV2)
        .count();
    wait_for(Duration::from_secs(30), || {
        daemon.assert_running();
        proxy
            .log()
            .iter()
            .filter(|e| e.request.op == Op::ListObjectsV2)
            .count()
            >= polls + 4
    });
    daemon.assert_running();
    let peak = daemon.peak_rss_kib;
    let (out, stats) = daemon.stop();
    let log = proxy.log();
    eprintln!(
        "faults injected: {:?}\nproxy: {}\npeak RSS {peak} KiB",
        proxy.fault_counts(),
        proxy.summary()
    );

    for op in [Op::GetObject, Op::ListObjectsV2] {
        assert!(
            during.get(&(op, Fault::SlowDown)).is_some_and(|&n| n > 0),
            "the outage hit no {op:?}: {during:?}"
        );
    }
    // Every object answered 200 exactly once, the failed ones included.
    let want: BTreeMap<String, usize> = m.objects.keys().map(|k| (k.clone(), 1)).collect();
    assert_eq!(gets_ok(&log), want, "each object read once");
    let faulted: BTreeSet<String> = log
        .iter()
        .filter(|e| e.request.op == Op::GetObject && e.fault().is_some())
        .filter_map(|e| e.request.key.clone())
        .collect();
    assert!(!faulted.is_empty());
    for k in &faulted {
        let last_fault = log
            .iter()
            .rposition(|e| e.request.key.as_ref() == Some(k) && e.fault().is_some());
        let ok = log
            .iter()
            .rposition(|e| e.request.key.as_ref() == Some(k) && e.forwarded(200));
        assert!(ok > last_fault, "{k}: not read after its failures");
    }

    // Every record once, the findings of a fault-free run, none repeated.
    common::check_accounting(&stats);
    assert_eq!(common::stat(&stats, "records_in"), m.records, "{stats}");
    assert_eq!(out.keys(), ref_keys);
    let mut ids: Vec<String> = out
        .findings()
        .iter()
        .map(|f| f["id"].as_str().expect("id").to_string())
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "no finding repeated");
    // Failed fetches are failed inputs, counted and logged by name with the code; the
    // failed listings are logged with the prefix and the next attempt.
    let failed = counter(&stats, "objects_failed");
    assert!(failed >= faulted.len() as u64 / 2, "{stats}");
    assert_eq!(common::stat(&stats, "inputs_failed"), failed, "{stats}");
    assert_eq!(counter(&stats, "objects_fetched"), m.objects.len() as u64);
    let fetch_errors = out
        .stderr
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("s3://trail/AWSLogs/"))
        .filter(|l| l.contains("SlowDown: Please reduce your request rate."))
        .count() as u64;
    assert!(fetch_errors >= failed, "{}", out.stderr);
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains("listing") && l.contains("SlowDown") && l.contains("again")),
        "no listing failure logged:\n{}",
        out.stderr
    );
    // Stopped by SIGTERM; the exit code says inputs failed on the way.
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_eq!(
        checkpoint(&cp_path).as_ref(),
        Some(&leaves),
        "the final checkpoint"
    );
}

/// Creates queue `trail-q` and sends `messages`; prints the queue URL.
const SQS_SETUP_PY: &str = r#"
import json, sys
import boto3
sqs = boto3.client("sqs")
url = sqs.create_queue(QueueName="trail-q")["QueueUrl"]
for body in json.loads(sys.argv[1]):
    sqs.send_message(QueueUrl=url, MessageBody=body)
print(url)
"#;

/// Waits until the queue holds no message, visible or in flight (argv: url, seconds).
const QUEUE_EMPTY_PY: &str = r#"
import json, sys, time
import boto3
sqs = boto3.client("sqs")
url, deadline = sys.argv[1], time.time() + float(sys.argv[2])
while True:
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    v, nv = int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"])
    if (v == 0 and nv == 0) or time.time() > deadline:
        print(json.dumps({"visible": v, "not_visible": nv}))
        break
    time.sleep(0.3)
"#;

/// An SQS source, each message naming one object (CloudTrail's SNS message shape);
/// GetObject of one of them fails three times (two attempts per read): the first
/// receive fails the object and keeps the message, which comes back after its
/// visibility timeout; the second read succeeds. Every message ends deleted once,
/// the failed one only after its object was read; every record is read once.
#[test]
fn sqs_message_is_kept_until_its_object_is_read() {
    let Some(moto) = Moto::start() else { return };
    let m = moto.fill_trail_bucket(
        BUCKET,
        &[
            "--days",
            "2024-12-01",
            "--per-day",
            "2",
            "--accounts",
            "111111111111",
        ],
    );
    let keys: Vec<String> = m.objects.keys().cloned().collect();
    assert_eq!(keys.len(), 4);
    let (_, ref_keys) = reference(&moto);
    let messages: Vec<String> = keys
        .iter()
        .map(|k| json!({"s3Bucket": BUCKET, "s3ObjectKey": [k]}).to_string())
        .collect();
    let url = moto
        .run_python(
            SQS_SETUP_PY,
            &[&serde_json::to_string(&messages).expect("json")],
        )
        .trim()
        .to_string();
    let flaky = keys[1].clone();
    let proxy = FaultProxy::start(&moto.endpoint);
    proxy.add(
        Rule::new(Fault::SlowDown)
            .op(Op::GetObject)
            .key(&flaky)
            .first_per_resource(3),
    );
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(
        dir.path(),
        &proxy.endpoint,
        "max_error_retry_attempts: 2, min_error_retry_delay: 10ms",
        &format!(
            "  - sqs: {{name: live, connection: local, queue_url: \"{url}\", wait_time: 1s, visibility_timeout: 2s, max_receives: 5}}\n"
        ),
    );
    let mut daemon = Daemon::start(&moto, dir.path(), &cfg);
    let left: Value = serde_json::from_str(&moto.run_python(QUEUE_EMPTY_PY, &[&url, "90"]))
        .expect("queue attributes");
    daemon.assert_running();
    let (out, stats) = daemon.stop();
    let log = proxy.log();
    eprintln!(
        "faults injected: {:?}\nproxy: {}",
        proxy.fault_counts(),
        proxy.summary()
    );
    assert_eq!(
        left,
        json!({"visible": 0, "not_visible": 0}),
        "queue not drained:\n{}",
        out.stderr
    );
    common::check_accounting(&stats);
    assert_eq!(common::stat(&stats, "records_in"), m.records, "{stats}");
    assert_eq!(out.keys(), ref_keys);
    // The flaky message was received twice (kept after the failure), the others once;
    // each deleted once.
    assert_eq!(counter(&stats, "messages_received"), 5, "{stats}");
    assert_eq!(counter(&stats, "messages_deleted"), 4, "{stats}");
    assert_eq!(counter(&stats, "messages_dead_lettered"), 0, "{stats}");
    assert_eq!(counter(&stats, "objects_fetched"), 4, "{stats}");
    assert_eq!(counter(&stats, "objects_failed"), 1, "{stats}");
    // GetObject: the flaky key's three faults, then one 200; the others once.
    let want: BTreeMap<String, usize> = keys.iter().map(|k| (k.clone(), 1)).collect();
    assert_eq!(gets_ok(&log), want);
    let flaky_tries: Vec<(Option<Fault>, Option<u32>)> = log
        .iter()
        .filter(|e| e.request.key.as_ref() == Some(&flaky))
        .map(|e| (e.fault(), e.request.attempt))
        .collect();
    assert_eq!(
        flaky_tries,
        [
            (Some(Fault::SlowDown), Some(1)),
            (Some(Fault::SlowDown), Some(2)),
            (Some(Fault::SlowDown), Some(1)),
            (None, Some(2)),
        ]
    );
    // Between the failed read and the successful one, the message was received again:
    // it had not been deleted.
    let flaky_at: Vec<usize> = log
        .iter()
        .enumerate()
        .filter(|(_, e)| e.request.key.as_ref() == Some(&flaky))
        .map(|(i, _)| i)
        .collect();
    let receives_between = log[flaky_at[1]..flaky_at[2]]
        .iter()
        .filter(|e| e.request.operation.as_deref() == Some("ReceiveMessage") && e.forwarded(200))
        .count();
    assert!(
        receives_between >= 1,
        "the message was not received again before its second read"
    );
    let deletes: Vec<usize> = log
        .iter()
        .enumerate()
        .filter(|(_, e)| e.request.operation.as_deref() == Some("DeleteMessage"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(deletes.len(), 4, "one DeleteMessage per message");
    let flaky_ok = log
        .iter()
        .position(|e| e.request.key.as_ref() == Some(&flaky) && e.forwarded(200))
        .expect("flaky object read");
    assert!(
        deletes.iter().filter(|&&i| i > flaky_ok).count() >= 1,
        "the flaky message is deleted after its object was read"
    );
    assert!(
        deletes.iter().filter(|&&i| i < flaky_ok).count() <= 3,
        "at most the three other messages are deleted before"
    );
    // The failed read is logged with the object and the code.
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains(&format!("s3://{BUCKET}/{flaky}")) && l.contains("SlowDown")),
        "{}",
        out.stderr
    );
}
