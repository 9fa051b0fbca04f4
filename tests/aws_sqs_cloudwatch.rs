//! The SQS and CloudWatch Logs sources of the `run` daemon, through the real AWS SDK
//! against a local moto server, with records from the real samples.
//!
//! What is proved: every notification shape a queue can carry is understood, each named
//! object is read exactly once, and every message ends deleted (read, ignored or
//! dead-lettered with its reason); a message is deleted only after its records are in a
//! finished archive file, its visibility being extended meanwhile; a log group is read
//! page by page from the chosen streams only, and a restart from the checkpoint reads
//! exactly what is new.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::moto::Moto;
use serde_json::{Value, json};

/// The bucket the SQS tests deliver to.
const BUCKET: &str = "trail-bucket";
/// The account in the object keys (CloudTrail's layout).
const ACCOUNT: &str = "111122223333";

/// The non-blank lines of a sample, owned.
fn sample_lines(name: &str) -> Vec<Vec<u8>> {
    common::lines(&common::gunzip_file(&common::sample(name)))
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect()
}

/// A key in CloudTrail's S3 layout for the day 2024-11-30.
fn trail_key(time: &str, tag: &str) -> String {
    format!(
        "AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2024/11/30/{ACCOUNT}_CloudTrail_us-east-1_20241130T{time}Z_{tag}.json.gz"
    )
}

/// A key as S3 event notifications write it: `+` for a space, `%XX` for reserved bytes.
fn form_encode(key: &str) -> String {
    let mut out = String::new();
    for &b in key.as_bytes() {
        match b {
            b' ' => out.push('+'),
            b if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) => out.push(b as char),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// One record of an S3 event notification.
fn s3_event_record(event_name: &str, bucket: &str, encoded_key: &str) -> Value {
    json!({
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2024-11-30T08:45:12.345Z",
        "eventName": event_name,
        "userIdentity": {"principalId": "AWS:AROAEXAMPLEID:regionalDeliverySession"},
        "requestParameters": {"sourceIPAddress": "10.0.12.34"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "trailhound-new-logs",
            "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
            "object": {"key": encoded_key, "size": 1024, "sequencer": "0055AED6DCD90281E5"}
        }
    })
}

/// A running `trailhound run`, its stdout and stderr going to files.
struct Daemon {
    child: Option<Child>,
    config: PathBuf,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Daemon {
    /// Starts `trailhound run --config CONFIG --stats json ARGS`; `tag` names its
    /// output files in `dir`.
    fn start(dir: &Path, tag: &str, config: &Path, args: &[&str]) -> Daemon {
        let stdout = dir.join(format!("{tag}.stdout"));
        let stderr = dir.join(format!("{tag}.stderr"));
        let mut cmd = Command::new(common::BIN);
        cmd.arg("run")
            .arg("--config")
            .arg(config)
            .args(["--stats", "json"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        common::moto::clean_aws_env(&mut cmd, dir);
        let child = cmd.spawn().expect("start trailhound run");
        Daemon {
            child: Some(child),
            config: config.to_path_buf(),
            stdout,
            stderr,
        }
    }

    /// Stderr so far.
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.stderr).unwrap_or_default()).into_owned()
    }

    /// Panics (with its stderr) if the daemon has exited.
    fn assert_running(&mut self) {
        let child = self.child.as_mut().expect("running");
        if let Ok(Some(st)) = child.try_wait() {
            panic!(
                "trailhound run exited early ({st}):\n{}\n--- config ---\n{}",
                self.stderr(),
                std::fs::read_to_string(&self.config).unwrap_or_default()
            );
        }
    }

    /// SIGTERM, then waits (30 s at most) and returns what it wrote.
    fn stop(mut self) -> common::Output {
        let mut child = self.child.take().expect("running");
        // SAFETY: signalling a child process this test started and still owns.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait") {
                break st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "trailhound run did not stop within 30 s of SIGTERM:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        common::Output {
            code: status.code().unwrap_or(-1),
            stdout: std::fs::read(&self.stdout).expect("stdout"),
            stderr: self.stderr(),
        }
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

/// The summary is valid against its schema, adds up, and its only source accounts
/// for every record.
fn check_stats(stats: &Value) {
    common::check_accounting(stats);
    common::assert_valid(&common::validator("stats.schema.json"), stats, "stats");
    let s = &stats["sources"][0];
    assert_eq!(s["records_in"], stats["records_in"], "{stats}");
    assert_eq!(s["inputs_failed"], stats["inputs_failed"], "{stats}");
    assert_eq!(s["accounting_ok"], true, "{stats}");
}

/// The first source's counters in a stats object.
fn counters(stats: &Value) -> &Value {
    let s = &stats["sources"][0];
    assert!(s["error"].is_null(), "source failed: {stats}");
    &s["counters"]
}

fn counter(stats: &Value, key: &str) -> u64 {
    counters(stats)[key]
        .as_u64()
        .unwrap_or_else(|| panic!("counter {key} missing: {stats}"))
}

/// Recorded requests of one JSON-protocol operation (`DeleteMessage`, ...).
fn ops(moto: &Moto, op: &str) -> Vec<common::moto::Request> {
    moto.requests()
        .into_iter()
        .filter(|r| r.operation() == Some(op))
        .collect()
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

/// `detect` over local copies of the same records: what the daemon must find.
fn oracle(files: &[PathBuf]) -> common::Output {
    let mut args: Vec<&std::ffi::OsStr> = vec!["--no-record".as_ref()];
    args.extend(files.iter().map(|p| p.as_os_str()));
    common::detect(&args, b"")
}

/// Creates the bucket, uploads `objects` (key, local file), creates queue `queue` and
/// sends `messages` in order; prints the queue URL.
const SQS_SETUP_PY: &str = r#"
import json, sys
import boto3
m = json.load(open(sys.argv[1]))
s3 = boto3.client("s3")
if m["objects"]:
    s3.create_bucket(Bucket=m["bucket"])
for key, path in m["objects"]:
    s3.put_object(Bucket=m["bucket"], Key=key, Body=open(path, "rb").read())
sqs = boto3.client("sqs")
url = sqs.create_queue(QueueName=m["queue"])["QueueUrl"]
for body in m["messages"]:
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

/// Uploads the objects and sends the messages; returns the queue URL.
fn setup_queue(
    moto: &Moto,
    dir: &Path,
    objects: &[(String, PathBuf)],
    messages: &[String],
) -> String {
    let manifest = dir.join("setup.json");
    let m = json!({"bucket": BUCKET, "objects": objects, "queue": "trail-q", "messages": messages});
    std::fs::write(&manifest, m.to_string()).expect("manifest");
    let url = moto.run_python(SQS_SETUP_PY, &[manifest.to_str().expect("utf-8 path")]);
    url.trim().to_string()
}

/// Writes `records` as one gzip'd `{"Records":[…]}` object under `dir`.
fn object_file(dir: &Path, i: usize, records: &[Vec<u8>]) -> PathBuf {
    common::write_file(
        dir,
        &format!("objects/{i}.json.gz"),
        &common::gzip(&common::records_object(records)),
    )
}

/// Direct S3 event, SNS-wrapped S3 event, EventBridge, CloudTrail's SNS message (two
/// keys), `s3:TestEvent`, ObjectRemoved, a body that is not JSON and an event naming a
/// missing key: every message ends deleted; each named object is read exactly once
/// (the `+`-encoded key with a space included), the removed object is never read; the
/// malformed and the missing-key messages (after `max_receives`) are dead-lettered
/// with their reason; findings are those of the same records read from files.
#[test]
fn sqs_all_notification_shapes_are_read_and_deleted() {
    let Some(moto) = Moto::start() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();

    let stratus = sample_lines("stratus-red-team");
    let invictus = sample_lines("invictus-aws-dataset");
    let grycap = sample_lines("grycap-cloudtrail-tracker");
    let otrf = sample_lines("otrf-security-datasets");
    let permiso = sample_lines("permiso-cartographer");
    let mut obj4 = otrf[..10].to_vec();
    obj4.extend_from_slice(&permiso[..10]);
    // (key, records); object 0's key has a space, object 5 is only ever "removed".
    let objects: Vec<(String, Vec<Vec<u8>>)> = vec![
        (trail_key("0840", "with space"), stratus[..12].to_vec()),
        (trail_key("0845", "Snsw"), stratus[12..30].to_vec()),
        (trail_key("0850", "EvBr"), invictus[..25].to_vec()),
        (trail_key("0855", "Ctk1"), grycap[..15].to_vec()),
        (trail_key("0900", "Ctk2"), obj4),
        (trail_key("0905", "Gone"), stratus[30..40].to_vec()),
    ];
    let missing_key = trail_key("0910", "Nope");
    let files: Vec<PathBuf> = objects
        .iter()
        .enumerate()
        .map(|(i, (_, recs))| object_file(d, i, recs))
        .collect();
    let uploads: Vec<(String, PathBuf)> = objects
        .iter()
        .zip(&files)
        .map(|((k, _), f)| (k.clone(), f.clone()))
        .collect();
    let key = |i: usize| objects[i].0.as_str();

    let s3_event = |name: &str, k: &str| {
        json!({"Records": [s3_event_record(name, BUCKET, &form_encode(k))]}).to_string()
    };
    let direct = s3_event("ObjectCreated:Put", key(0));
    assert!(direct.contains("with+space"), "{direct}");
    let sns = json!({
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:trail-logs",
        "Subject": "Amazon S3 Notification",
        "Message": s3_event("ObjectCreated:CompleteMultipartUpload", key(1)),
        "Timestamp": "2024-11-30T08:45:13.002Z",
        "SignatureVersion": "1"
    })
    .to_string();
    let eventbridge = json!({
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2024-11-30T08:50:12Z",
        "region": "us-east-1",
        "resources": [format!("arn:aws:s3:::{BUCKET}")],
        "detail": {
            "version": "0",
            "bucket": {"name": BUCKET},
            "object": {"key": key(2), "size": 5321},
            "reason": "PutObject"
        }
    })
    .to_string();
    let cloudtrail = json!({"s3Bucket": BUCKET, "s3ObjectKey": [key(3), key(4)]}).to_string();
    let test_event = json!({
        "Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2024-11-30T08:00:02.089Z",
        "Bucket": BUCKET, "RequestId": "5582815E1AEA5ADF"
    })
    .to_string();
    let removed = s3_event("ObjectRemoved:Delete", key(5));
    let malformed = "not json".to_string();
    let missing = s3_event("ObjectCreated:Put", &missing_key);
    let messages = vec![
        direct,
        sns,
        eventbridge,
        cloudtrail,
        test_event,
        removed,
        malformed.clone(),
        missing.clone(),
    ];
    let url = setup_queue(&moto, d, &uploads, &messages);
    moto.clear_recording();

    let sqs_dead = d.join("sqs-dead.ndjson");
    let config = d.join("trailhound.yaml");
    std::fs::write(
        &config,
        format!(
            "version: 1\nstate_dir: \"{state}\"\nconnections:\n  local: {{endpoint_url: \"{ep}\", region: us-east-1, access_key: test, secret_key: test, s3_force_path_style: true}}\nsources:\n  - sqs: {{name: live, connection: local, queue_url: \"{url}\", wait_time: 1s, visibility_timeout: 4s, max_receives: 2, dead_letter: \"{dl}\"}}\n",
            state = d.join("state").display(),
            ep = moto.endpoint,
            dl = sqs_dead.display(),
        ),
    )
    .expect("config");
    let record_dead = d.join("records-dead.ndjson");
    let mut daemon = Daemon::start(
        d,
        "run",
        &config,
        &[
            "--no-record",
            "--dead-letter",
            record_dead.to_str().expect("utf-8"),
        ],
    );
    let left: Value = serde_json::from_str(&moto.run_python(QUEUE_EMPTY_PY, &[&url, "60"]))
        .expect("queue attributes");
    daemon.assert_running();
    let out = daemon.stop();
    assert_eq!(
        left,
        json!({"visible": 0, "not_visible": 0}),
        "queue not drained:\n{}",
        out.stderr
    );
    let stats = out.stats();
    check_stats(&stats);

    // Each named object once; the removed one never; the missing one on each receive.
    let named: Vec<usize> = vec![0, 1, 2, 3, 4];
    let want_records: u64 = named.iter().map(|&i| objects[i].1.len() as u64).sum();
    assert_eq!(common::stat(&stats, "records_in"), want_records, "{stats}");
    let mut gets: BTreeMap<String, usize> = BTreeMap::new();
    for r in moto.requests() {
        if let Some(k) = r.s3_get_object_key() {
            *gets.entry(k.to_string()).or_default() += 1;
        }
    }
    let mut want_gets: BTreeMap<String, usize> =
        named.iter().map(|&i| (key(i).to_string(), 1)).collect();
    want_gets.insert(missing_key.clone(), 2);
    assert_eq!(gets, want_gets, "GetObject requests");

    // Every message deleted, two ignored, two dead-lettered.
    let deletes = ops(&moto, "DeleteMessage");
    assert_eq!(deletes.len(), messages.len(), "DeleteMessage requests");
    assert_eq!(counter(&stats, "messages_deleted"), messages.len() as u64);
    assert_eq!(counter(&stats, "messages_ignored"), 2, "{stats}");
    assert_eq!(counter(&stats, "messages_dead_lettered"), 2, "{stats}");
    assert_eq!(counter(&stats, "objects_fetched"), 5, "{stats}");
    assert_eq!(counter(&stats, "objects_failed"), 2, "{stats}");
    // 8 first receives, the missing-key message twice more.
    assert_eq!(counter(&stats, "messages_received"), 10, "{stats}");
    let recv = ops(&moto, "ReceiveMessage");
    let body = recv[0].json_body().expect("ReceiveMessage body");
    assert_eq!(body["QueueUrl"], url.as_str(), "{body}");
    assert_eq!(body["VisibilityTimeout"], 4, "{body}");
    assert_eq!(body["WaitTimeSeconds"], 1, "{body}");
    // Each failed fetch is logged with the object and the service's error code.
    let failed_logs = out
        .stderr
        .lines()
        .filter(|l| l.contains("input could not be read"))
        .filter(|l| l.contains(&format!("s3://{BUCKET}/{missing_key}")) && l.contains("NoSuchKey"))
        .count();
    assert_eq!(failed_logs, 2, "{}", out.stderr);
    // The two failed fetches are failed inputs: the run says so in its exit code.
    assert_eq!(common::stat(&stats, "inputs_failed"), 2, "{stats}");
    assert_eq!(out.code, 3, "{}", out.stderr);

    let v = common::validator("dead-letter.schema.json");
    let dead: Vec<Value> = common::lines(&std::fs::read(&sqs_dead).expect("sqs dead letters"))
        .iter()
        .map(|l| serde_json::from_slice(l).expect("dead letter json"))
        .collect();
    assert_eq!(dead.len(), 2, "{dead:#?}");
    for dl in &dead {
        common::assert_valid(&v, dl, "SQS dead letter");
        assert_eq!(dl["schema"], "trailhound.dead_letter/1");
        assert!(
            dl["input"]
                .as_str()
                .is_some_and(|i| i.starts_with(&format!("sqs:{url}#"))),
            "{dl}"
        );
    }
    let bad = dead
        .iter()
        .find(|d| d["raw"] == malformed.as_str())
        .expect("malformed one");
    let reason = bad["reason"].as_str().expect("reason");
    assert!(reason.contains("not JSON"), "{reason}");
    let gone = dead
        .iter()
        .find(|d| d["raw"] == missing.as_str())
        .expect("missing-key one");
    let reason = gone["reason"].as_str().expect("reason");
    assert!(
        reason.contains("received 3 times") && reason.contains("max_receives 2"),
        "{reason}"
    );
    // It also says what kept failing: the object and the service's error code.
    assert!(
        reason.contains("last failure: s3://") && reason.contains("NoSuchKey"),
        "{reason}"
    );
    // Record-level dead letters: none (the samples' records are all well formed).
    assert_eq!(common::stat(&stats, "records_dead_lettered"), 0, "{stats}");

    // Findings: valid, named after the object, and those of the same records as files.
    let findings = out.findings();
    let fv = common::validator("finding.schema.json");
    let names: BTreeSet<String> = named
        .iter()
        .map(|&i| format!("s3://{BUCKET}/{}", key(i)))
        .collect();
    for f in &findings {
        common::assert_valid(&fv, f, "finding");
        let n = f["input"]["name"].as_str().expect("input.name");
        assert!(names.contains(n), "finding from an unexpected input {n}");
    }
    let spaced = format!("s3://{BUCKET}/{}", key(0));
    assert!(
        findings
            .iter()
            .any(|f| f["input"]["name"] == spaced.as_str()),
        "no finding names {spaced}"
    );
    let want = oracle(&named.iter().map(|&i| files[i].clone()).collect::<Vec<_>>());
    assert_eq!(out.keys(), want.keys(), "findings differ from detect's");
    assert_eq!(
        stats["findings"]["total"],
        want.stats()["findings"]["total"]
    );
}

/// One object (30 stratus records, which raise findings) announced by one CloudTrail
/// notification, and a daemon config that archives with `max_age`.
struct ArchiveCase {
    dir: tempfile::TempDir,
    key: String,
    records: usize,
    root: PathBuf,
    config: PathBuf,
}

impl ArchiveCase {
    fn new(moto: &Moto, max_age: &str, visibility: &str) -> ArchiveCase {
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path();
        let records = sample_lines("stratus-red-team")[..30].to_vec();
        let key = trail_key("1000", "Arch");
        let file = object_file(d, 0, &records);
        let body = json!({"s3Bucket": BUCKET, "s3ObjectKey": [key]}).to_string();
        let url = setup_queue(moto, d, &[(key.clone(), file)], &[body]);
        moto.clear_recording();
        let root = d.join("archive");
        let config = d.join("trailhound.yaml");
        std::fs::write(
            &config,
            format!(
                "version: 1\nstate_dir: \"{state}\"\narchive: {{root: \"{root}\", max_age: {max_age}}}\nconnections:\n  local: {{endpoint_url: \"{ep}\", region: us-east-1, access_key: test, secret_key: test, s3_force_path_style: true}}\nsources:\n  - sqs: {{name: live, connection: local, queue_url: \"{url}\", wait_time: 1s, visibility_timeout: {visibility}, max_receives: 3}}\n",
                state = d.join("state").display(),
                root = root.display(),
                ep = moto.endpoint,
            ),
        )
        .expect("config");
        ArchiveCase {
            dir,
            key,
            records: records.len(),
            root,
            config,
        }
    }

    /// Starts the daemon and waits until the object is fetched and its archive file
    /// is open; returns when the fetch was seen.
    fn start_until_open(&self, moto: &Moto) -> (Daemon, Instant) {
        let daemon = Daemon::start(
            self.dir.path(),
            "run",
            &self.config,
            &[
                "--no-record",
                "--archive",
                self.root.to_str().expect("utf-8"),
            ],
        );
        let fetched = wait_for(Duration::from_secs(30), || {
            moto.requests()
                .iter()
                .any(|r| r.s3_get_object_key() == Some(self.key.as_str()))
        });
        assert!(
            fetched,
            "the object was never fetched:\n{}",
            daemon.stderr()
        );
        let fetched_at = Instant::now();
        let open = wait_for(Duration::from_secs(10), || {
            !common::files_ending(&self.root, ".parquet.tmp").is_empty()
        });
        assert!(open, "no archive file was opened:\n{}", daemon.stderr());
        (daemon, fetched_at)
    }

    /// What holds once the run is over: every record read, archived in a finished
    /// file, the message received and deleted once, findings named after the object.
    fn check_end(&self, moto: &Moto, out: &common::Output) -> Value {
        assert_eq!(out.code, 0, "{}", out.stderr);
        let stats = out.stats();
        check_stats(&stats);
        assert_eq!(common::stat(&stats, "records_in"), self.records as u64);
        assert_eq!(stats["records_archived"], self.records as u64, "{stats}");
        assert_eq!(counter(&stats, "messages_received"), 1, "{stats}");
        assert_eq!(counter(&stats, "messages_deleted"), 1, "{stats}");
        assert_eq!(ops(moto, "DeleteMessage").len(), 1);
        assert!(common::files_ending(&self.root, ".parquet.tmp").is_empty());
        assert_eq!(common::files_ending(&self.root, ".parquet").len(), 1);
        let name = format!("s3://{BUCKET}/{}", self.key);
        let findings = out.findings();
        assert!(!findings.is_empty(), "the stratus records raise findings");
        assert!(findings.iter().all(|f| f["input"]["name"] == name.as_str()));
        stats
    }
}

/// With an archive whose files close after `max_age` (5 s), a message is deleted only
/// once the file holding its records is finished (renamed to `.parquet`), not when the
/// object is read; meanwhile its visibility (2 s) is extended, so it is received once.
#[test]
fn sqs_message_is_not_deleted_before_its_records_are_delivered() {
    let Some(moto) = Moto::start() else { return };
    let case = ArchiveCase::new(&moto, "5s", "2s");
    let (mut daemon, fetched_at) = case.start_until_open(&moto);
    // Until a finished file exists, the message must stay: read the requests first, then
    // look for the file (the file is renamed before the deletion is sent).
    let mut deleted_at = None;
    let done = wait_for(Duration::from_secs(30), || {
        let deleted = !ops(&moto, "DeleteMessage").is_empty();
        let finished = !common::files_ending(&case.root, ".parquet").is_empty();
        assert!(
            !deleted || finished,
            "message deleted while its archive file is still open"
        );
        if deleted {
            deleted_at = Some(Instant::now());
        }
        deleted
    });
    daemon.assert_running();
    let out = daemon.stop();
    assert!(done, "the message was never deleted:\n{}", out.stderr);
    let gap = deleted_at.expect("deleted").duration_since(fetched_at);
    assert!(
        gap >= Duration::from_secs(4),
        "deleted {gap:?} after the fetch, before max_age (5 s) could close the file"
    );
    let stats = case.check_end(&moto, &out);
    assert!(counter(&stats, "visibility_extended") > 0, "{stats}");
    let extends = ops(&moto, "ChangeMessageVisibility");
    assert!(!extends.is_empty(), "no ChangeMessageVisibility request");
    assert_eq!(
        extends[0].json_body().expect("body")["VisibilityTimeout"],
        2
    );
}

/// Stopped while the archive file holding a message's records is still open (max_age
/// 60 s), the daemon finishes the file while draining and only then deletes the
/// message: nothing is left to redo, nothing half-written.
#[test]
fn sqs_stop_with_an_open_archive_file_finishes_it_then_deletes() {
    let Some(moto) = Moto::start() else { return };
    let case = ArchiveCase::new(&moto, "60s", "30s");
    let (mut daemon, _) = case.start_until_open(&moto);
    // A few receive rounds with the file open: no deletion yet.
    let rounds = ops(&moto, "ReceiveMessage").len();
    assert!(
        wait_for(Duration::from_secs(10), || ops(&moto, "ReceiveMessage")
            .len()
            >= rounds + 2),
        "the daemon stopped polling:\n{}",
        daemon.stderr()
    );
    assert!(
        ops(&moto, "DeleteMessage").is_empty(),
        "deleted before the file was finished"
    );
    assert!(common::files_ending(&case.root, ".parquet").is_empty());
    daemon.assert_running();
    let out = daemon.stop();
    case.check_end(&moto, &out);
}

/// Creates log group `trail` with streams a, b, c (argv: JSON list of [stream,
/// timestamp, message] in time order; the group and streams only when missing).
const PUT_EVENTS_PY: &str = r#"
import json, sys
import boto3
logs = boto3.client("logs")
events = json.load(open(sys.argv[1]))
if not logs.describe_log_groups(logGroupNamePrefix="trail")["logGroups"]:
    logs.create_log_group(logGroupName="trail")
    for s in ("a", "b", "c"):
        logs.create_log_stream(logGroupName="trail", logStreamName=s)
for s in ("a", "b", "c"):
    batch = [{"timestamp": t, "message": m} for (st, t, m) in events if st == s]
    if batch:
        r = logs.put_log_events(logGroupName="trail", logStreamName=s, logEvents=batch)
        assert not r.get("rejectedLogEventsInfo"), r
"#;

fn put_events(moto: &Moto, dir: &Path, tag: &str, events: &[(&str, i64, String)]) {
    let p = dir.join(format!("{tag}.events.json"));
    std::fs::write(&p, serde_json::to_string(events).expect("json")).expect("events");
    moto.run_python(PUT_EVENTS_PY, &[p.to_str().expect("utf-8")]);
}

/// The CloudWatch checkpoint of source `cw`, if written.
fn checkpoint(state: &Path) -> Option<Value> {
    let raw = std::fs::read(state.join("checkpoints/cw.json")).ok()?;
    serde_json::from_slice(&raw).ok()
}

/// A log group with three streams, read with `limit: 20` from two of them: each scan
/// pages through FilterLogEvents, every event of the two streams is read once and none
/// of the third; the checkpoint holds the newest time (with the ids seen at it), and a
/// restart reads exactly the new events, including one at that same millisecond.
#[test]
fn cloudwatch_streams_pagination_and_checkpoint() {
    let Some(moto) = Moto::start() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let records = sample_lines("invictus-aws-dataset");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let base = now_ms - 3_600_000;
    // 150 events, a/b/c in turn, each triple at one millisecond.
    let streams = ["a", "b", "c"];
    let first: Vec<(&str, i64, String)> = (0..150)
        .map(|i| {
            let msg = String::from_utf8(records[i].clone()).expect("utf-8 record");
            (streams[i % 3], base + (i as i64 / 3) * 1000, msg)
        })
        .collect();
    let newest = first.last().expect("events").1;
    let want_first = first.iter().filter(|e| e.0 != "c").count() as u64;
    put_events(&moto, d, "first", &first);
    moto.clear_recording();

    let state = d.join("state");
    let config = d.join("trailhound.yaml");
    std::fs::write(
        &config,
        format!(
            "version: 1\nstate_dir: \"{state}\"\nconnections:\n  local: {{endpoint_url: \"{ep}\", region: us-east-1, access_key: test, secret_key: test}}\nsources:\n  - cloudwatch_logs: {{name: cw, connection: local, log_group_name: trail, log_streams: [a, b], start_position: beginning, scan_frequency: 1s, api_sleep: 10ms, limit: 20, lookback: 0s}}\n",
            state = state.display(),
            ep = moto.endpoint,
        ),
    )
    .expect("config");

    let mut daemon = Daemon::start(d, "run1", &config, &["--no-record"]);
    let cp_done = |state: &Path, t: i64| checkpoint(state).is_some_and(|c| c["start_time"] == t);
    let ok = wait_for(Duration::from_secs(30), || cp_done(&state, newest));
    daemon.assert_running();
    let out = daemon.stop();
    assert!(ok, "checkpoint never reached {newest}:\n{}", out.stderr);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let stats = out.stats();
    check_stats(&stats);
    assert_eq!(common::stat(&stats, "records_in"), want_first, "{stats}");
    assert_eq!(counter(&stats, "events"), want_first, "{stats}");
    let cp = checkpoint(&state).expect("checkpoint");
    assert_eq!(cp["start_time"], newest, "{cp}");
    assert_eq!(
        cp["seen"].as_object().map(serde_json::Map::len),
        Some(2),
        "a and b at {newest}: {cp}"
    );

    // The requests: one group, the two streams, pages of 20; the first scan pages.
    let reqs: Vec<Value> = ops(&moto, "FilterLogEvents")
        .iter()
        .map(|r| r.json_body().expect("FilterLogEvents body"))
        .collect();
    for b in &reqs {
        assert_eq!(b["logGroupName"], "trail", "{b}");
        assert_eq!(b["logStreamNames"], json!(["a", "b"]), "{b}");
        assert_eq!(b["limit"], 20, "{b}");
    }
    let starts: Vec<usize> = (0..reqs.len())
        .filter(|&i| reqs[i].get("nextToken").is_none())
        .collect();
    assert!(starts.len() >= 2, "fewer than two scans: {reqs:#?}");
    let first_scan = starts[1] - starts[0];
    assert!(
        first_scan as u64 >= want_first.div_ceil(20),
        "the first scan made {first_scan} requests for {want_first} events"
    );
    assert!(reqs[starts[0]].get("startTime").is_none(), "{}", reqs[0]);
    assert!(
        reqs[starts[1]]["startTime"] == newest,
        "the second scan does not start at the newest time: {}",
        reqs[starts[1]]
    );

    let findings = out.findings();
    assert!(
        !findings.is_empty(),
        "no findings from {want_first} invictus records"
    );
    assert!(
        findings
            .iter()
            .all(|f| f["input"]["name"] == "cloudwatch:trail"),
        "input.name"
    );
    let oracle_file = common::write_file(
        d,
        "first.ndjson",
        &common::join(
            &first
                .iter()
                .filter(|e| e.0 != "c")
                .map(|e| e.2.as_bytes().to_vec())
                .collect::<Vec<_>>(),
            b"\n",
        ),
    );
    let want = oracle(&[oracle_file]);
    assert_eq!(out.keys(), want.keys(), "findings differ from detect's");

    // New events: 10 in a (the first at the checkpoint's millisecond), 5 in c.
    let mut second: Vec<(&str, i64, String)> = (0..10)
        .map(|i| {
            let msg = String::from_utf8(records[200 + i].clone()).expect("utf-8");
            ("a", newest + i as i64 * 1000, msg)
        })
        .collect();
    second.extend((0..5).map(|i| {
        let msg = String::from_utf8(records[300 + i].clone()).expect("utf-8");
        ("c", newest + 500 + i as i64 * 1000, msg)
    }));
    let newest2 = newest + 9000;
    put_events(&moto, d, "second", &second);
    moto.clear_recording();
    let mut daemon = Daemon::start(d, "run2", &config, &["--no-record"]);
    let ok = wait_for(Duration::from_secs(30), || cp_done(&state, newest2));
    // A couple of scans more: nothing else may come.
    let scans = |moto: &Moto| {
        ops(moto, "FilterLogEvents")
            .iter()
            .filter(|r| r.json_body().is_some_and(|b| b.get("nextToken").is_none()))
            .count()
    };
    let at = scans(&moto);
    let more = wait_for(Duration::from_secs(15), || scans(&moto) >= at + 2);
    daemon.assert_running();
    let out = daemon.stop();
    assert!(ok, "checkpoint never reached {newest2}:\n{}", out.stderr);
    assert!(more, "no further scans:\n{}", out.stderr);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let stats = out.stats();
    check_stats(&stats);
    assert_eq!(common::stat(&stats, "records_in"), 10, "{stats}");
    assert_eq!(common::stat(&stats, "records_deduplicated"), 0, "{stats}");
    let first_req = ops(&moto, "FilterLogEvents")[0].json_body().expect("body");
    assert_eq!(
        first_req["startTime"], newest,
        "resumes at the checkpoint: {first_req}"
    );
    let cp = checkpoint(&state).expect("checkpoint");
    assert_eq!(
        cp["seen"].as_object().map(serde_json::Map::len),
        Some(1),
        "{cp}"
    );
}

/// Events that arrive late — with times older than the newest event already read, as
/// when one account's region stream is delivered after another's — are read by the next
/// scan when they fall within `lookback` (default 15m), and not read twice; the ids
/// kept in the checkpoint are those of the window.
#[test]
fn cloudwatch_late_events_within_lookback_are_read_once() {
    let Some(moto) = Moto::start() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let records = sample_lines("invictus-aws-dataset");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let base = now_ms - 600_000;
    let msg = |i: usize| String::from_utf8(records[i].clone()).expect("utf-8");
    let first: Vec<(&str, i64, String)> = (0..20)
        .map(|i| ("a", base + i as i64 * 1000, msg(i)))
        .collect();
    let newest = first.last().expect("events").1;
    put_events(&moto, d, "first", &first);
    let state = d.join("state");
    let config = d.join("trailhound.yaml");
    std::fs::write(
        &config,
        format!(
            "version: 1\nstate_dir: \"{state}\"\nconnections:\n  local: {{endpoint_url: \"{ep}\", region: us-east-1, access_key: test, secret_key: test}}\nsources:\n  - cloudwatch_logs: {{name: cw, connection: local, log_group_name: trail, scan_frequency: 1s, api_sleep: 10ms}}\n",
            state = state.display(),
            ep = moto.endpoint,
        ),
    )
    .expect("config");
    let mut daemon = Daemon::start(d, "run", &config, &["--no-record", "--no-dedup"]);
    let ok = wait_for(Duration::from_secs(30), || {
        checkpoint(&state).is_some_and(|c| c["start_time"] == newest)
    });
    assert!(ok, "first scan never acknowledged");
    // Late: 5 events in stream b, 10 s to 6 s older than the newest read.
    let late: Vec<(&str, i64, String)> = (0..5)
        .map(|i| ("b", newest - 10_000 + i as i64 * 1000, msg(100 + i)))
        .collect();
    put_events(&moto, d, "late", &late);
    let ok = wait_for(Duration::from_secs(30), || {
        checkpoint(&state)
            .and_then(|c| c["seen"].as_object().map(|o| o.len()))
            .is_some_and(|n| n == 25)
    });
    daemon.assert_running();
    let out = daemon.stop();
    assert!(ok, "late events never read:\n{}", out.stderr);
    let stats = out.stats();
    check_stats(&stats);
    assert_eq!(
        common::stat(&stats, "records_in"),
        25,
        "each event once: {stats}"
    );
    let cp = checkpoint(&state).expect("checkpoint");
    assert_eq!(
        cp["start_time"], newest,
        "late events do not move the newest time"
    );
}
