//! Kafka end to end, against a real Kafka-protocol broker process (Tansu on 127.0.0.1,
//! started per test by scripts/kafka-local): the findings sink, the record source in a
//! consumer group, at-least-once delivery across broker and instance crashes, and
//! several instances sharing one archive root.
//!
//! The records are the real public CloudTrail samples of tests/data/cloudtrail. Tests
//! that must see every record evaluated use tests/fixtures/kafka/every-record.yml, a
//! rule that matches any record with an event time, so "one finding per eventID" means
//! "every record was processed".

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::kafka::{Broker, Consumed};
use serde_json::Value;

fn records(n: usize) -> Vec<(String, Vec<u8>)> {
    common::distinct_records(n)
}

/// Messages keyed by eventID, which spreads the few accounts of the samples over every
/// partition (the every-record rule has no correlation that a key must keep together).
fn keyed(recs: &[(String, Vec<u8>)]) -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
    recs.iter()
        .map(|(id, raw)| (Some(id.as_bytes().to_vec()), raw.clone()))
        .collect()
}

fn every_record_rule() -> PathBuf {
    common::root().join("tests/fixtures/kafka/every-record.yml")
}

/// eventIDs of the findings in `msgs` (Kafka payloads).
fn event_ids(msgs: &[Consumed]) -> Vec<String> {
    msgs.iter()
        .map(|m| {
            let v: Value = serde_json::from_slice(&m.payload).expect("finding JSON");
            v["event"]["eventID"].as_str().expect("eventID").to_string()
        })
        .collect()
}

fn distinct(ids: &[String]) -> BTreeSet<String> {
    ids.iter().cloned().collect()
}

/// A `trailhound run` process with its stdout and stderr in files.
struct Daemon {
    child: Child,
    stderr: PathBuf,
}

impl Daemon {
    fn start(config: &Path, dir: &Path, tag: &str, extra: &[&str]) -> Daemon {
        let stderr = dir.join(format!("{tag}.stderr"));
        let stdout = dir.join(format!("{tag}.stdout"));
        let mut cmd = Command::new(common::BIN);
        cmd.arg("run")
            .arg("--config")
            .arg(config)
            .args(["--stats", "json"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        Daemon {
            child: cmd.spawn().expect("spawn trailhound run"),
            stderr,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with the pid of a child this test spawned.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// SIGTERM, then the exit code and the stats line.
    fn stop(mut self) -> (i32, Value) {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("trailhound did not stop after SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let log = self.log();
        let last = log.lines().last().unwrap_or_default().to_string();
        let stats: Value = serde_json::from_str(&last)
            .unwrap_or_else(|e| panic!("no stats line ({e}); stderr:\n{log}"));
        (status.code().unwrap_or(-1), stats)
    }

    fn child_running(&mut self) -> std::io::Result<bool> {
        Ok(self.child.try_wait()?.is_none())
    }

    fn kill9(mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    let mut f = std::fs::File::create(&p).expect("config");
    f.write_all(text.as_bytes()).expect("write config");
    p
}

/// The accounting invariant of the run and of each source in a stats object.
fn assert_accounting(stats: &Value) {
    assert!(stats["sources"].is_array(), "{stats}");
    common::check_accounting(stats);
}

#[test]
fn findings_round_trip_matches_stdout() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("findings", 3);
    let out = Command::new(common::BIN)
        .arg(common::s3_layout())
        .args([
            "--kafka-brokers",
            &broker.bootstrap,
            "--kafka-topic",
            "findings",
        ])
        .args(["--stdout", "--stats", "json"])
        .output()
        .expect("run");
    let run = common::Output {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<Vec<u8>> = run.stdout_lines().iter().map(|l| l.to_vec()).collect();
    assert!(lines.len() >= 5, "the sample data yields findings");
    let got = broker.consume_until(
        "findings",
        |m| m.len() >= lines.len(),
        Duration::from_secs(60),
    );
    assert_eq!(got.len(), lines.len(), "one message per finding");
    let mut from_kafka: Vec<Vec<u8>> = got.iter().map(|m| m.payload.clone()).collect();
    let mut from_stdout = lines.clone();
    from_kafka.sort();
    from_stdout.sort();
    assert_eq!(
        from_kafka, from_stdout,
        "the same bytes as stdout, without the newline"
    );
    for m in &got {
        let v: Value = serde_json::from_slice(&m.payload).expect("json");
        assert_eq!(
            m.key.as_deref(),
            Some(v["id"].as_str().expect("id").as_bytes()),
            "the default key is the finding id"
        );
    }
    let stats = run.stats();
    let sinks = stats["sinks"].as_array().expect("sinks");
    let kafka = sinks
        .iter()
        .find(|s| s["kind"] == "kafka")
        .expect("kafka sink");
    assert_eq!(kafka["delivered"], lines.len());
    assert_eq!(kafka["findings"], lines.len());
    let stdout = sinks
        .iter()
        .find(|s| s["kind"] == "stdout")
        .expect("stdout sink");
    assert_eq!(stdout["findings"], lines.len());
}

#[test]
fn routes_and_key_templates() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("high", 1);
    let dir = broker.scratch();
    let all_path = dir.join("all.ndjson");
    let config = write_config(
        &dir,
        "sinks.yaml",
        &format!(
            "sinks:\n  - kafka: {{name: siem, brokers: [\"{b}\"], topic: high, key: \"{{event.recipientAccountId}}/{{rule.level}}\", route: {{levels: [high, critical]}}}}\n  - file: {{path: {all}}}\n",
            b = broker.bootstrap,
            all = all_path.display()
        ),
    );
    let out = Command::new(common::BIN)
        .arg(common::s3_layout())
        .arg("--config")
        .arg(&config)
        .args(["--stats", "json"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(out.stdout.is_empty(), "stdout is not a sink here");
    let all = std::fs::read(&all_path).expect("file sink");
    let all: Vec<Value> = common::lines(&all)
        .iter()
        .map(|l| serde_json::from_slice(l).expect("finding"))
        .collect();
    let high: Vec<&Value> = all
        .iter()
        .filter(|f| matches!(f["rule"]["level"].as_str(), Some("high" | "critical")))
        .collect();
    assert!(
        !high.is_empty() && high.len() < all.len(),
        "the samples have both kinds"
    );
    let got = broker.consume_until("high", |m| m.len() >= high.len(), Duration::from_secs(60));
    assert_eq!(
        got.len(),
        high.len(),
        "only high and critical findings reach the route"
    );
    for m in &got {
        let v: Value = serde_json::from_slice(&m.payload).expect("json");
        let want = format!(
            "{}/{}",
            v["event"]["recipientAccountId"]
                .as_str()
                .unwrap_or_default(),
            v["rule"]["level"].as_str().unwrap_or_default()
        );
        assert_eq!(m.key.as_deref(), Some(want.as_bytes()));
    }
}

/// Every payload shape a topic may carry, in one partition, read by `trailhound run`
/// with `stop_at_end`.
#[test]
fn every_payload_shape_is_read_and_committed() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("shapes", 1);
    let recs = records(12);
    let raw = |i: usize| recs[i].1.clone();
    let obj = |i: usize| -> Value { serde_json::from_slice(&recs[i].1).expect("json") };
    let records_object = |r: std::ops::Range<usize>| {
        let v: Vec<Value> = r.map(obj).collect();
        serde_json::to_vec(&serde_json::json!({"Records": v})).expect("json")
    };
    let cloudwatch = {
        let events: Vec<Value> = (9..11)
            .map(|i| {
                serde_json::json!({"id": format!("{i}"), "timestamp": 1_700_000_000_000i64,
                    "message": String::from_utf8(raw(i)).expect("utf-8")})
            })
            .collect();
        let payload = serde_json::json!({"messageType": "DATA_MESSAGE", "owner": "111122223333",
            "logGroup": "aws-cloudtrail-logs", "logStream": "111122223333_CloudTrail_us-east-1",
            "subscriptionFilters": ["all"], "logEvents": events});
        common::gzip(&serde_json::to_vec(&payload).expect("json"))
    };
    let eventbridge = serde_json::to_vec(&serde_json::json!({
        "version": "0", "id": "6f0c1a8e-0000-4000-8000-000000000000",
        "detail-type": "AWS API Call via CloudTrail", "source": "aws.iam",
        "account": "111122223333", "time": "2024-01-01T00:00:00Z", "region": "us-east-1",
        "resources": [], "detail": obj(11)}))
    .expect("json");
    let mut ndjson = raw(7);
    ndjson.push(b'\n');
    ndjson.extend_from_slice(&raw(8));
    let messages: Vec<Vec<u8>> = vec![
        raw(0),                              // 0: one record
        records_object(1..4),                // 1: a delivery object
        common::gzip(&records_object(4..7)), // 2: the same, gzip
        ndjson,                              // 3: two lines
        cloudwatch,                          // 4: a CloudWatch Logs subscription payload
        eventbridge,                         // 5: an EventBridge envelope
        b"{\"eventName\": broken".to_vec(),  // 6: not JSON
        Vec::new(),                          // 7: empty
    ];
    let msgs: Vec<_> = messages.into_iter().map(|m| (None, m)).collect();
    broker.produce("shapes", &msgs);
    let dir = broker.scratch();
    let dead = dir.join("dead.ndjson");
    let config = write_config(
        &dir,
        "shapes.yaml",
        &format!(
            "sources:\n  - kafka: {{name: bus, brokers: \"{}\", topics: [shapes], group_id: shapes-test, stop_at_end: true}}\ndead_letter: {{path: {}}}\n",
            broker.bootstrap,
            dead.display()
        ),
    );
    let out = Command::new(common::BIN)
        .arg("run")
        .arg("--config")
        .arg(&config)
        .arg("--rules")
        .arg(every_record_rule())
        .args(["--no-builtin", "--no-dedup", "--stats", "json"])
        .output()
        .expect("run");
    let run = common::Output {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_eq!(run.code, 0, "{}", run.stderr);
    let findings = run.findings();
    // Which message each record was in, by eventID.
    let mut want: BTreeMap<String, i64> = BTreeMap::new();
    for (i, off) in [
        (0, 0),
        (1, 1),
        (2, 1),
        (3, 1),
        (4, 2),
        (5, 2),
        (6, 2),
        (7, 3),
        (8, 3),
    ]
    .into_iter()
    .chain([(9, 4), (10, 4), (11, 5)])
    {
        want.insert(recs[i].0.clone(), off);
    }
    let got: BTreeMap<String, i64> = findings
        .iter()
        .map(|f| {
            assert_eq!(f["input"]["name"], "kafka:shapes/0");
            (
                f["event"]["eventID"].as_str().expect("eventID").to_string(),
                f["input"]["line"].as_i64().expect("line"),
            )
        })
        .collect();
    assert_eq!(findings.len(), 12, "one finding per record, none twice");
    assert_eq!(got, want, "every record, named by its message's offset");
    let stats = run.stats();
    assert_accounting(&stats);
    assert_eq!(stats["records_in"], 13);
    assert_eq!(stats["records_kept"], 12);
    assert_eq!(stats["records_dead_lettered"], 1);
    let src = &stats["sources"][0];
    assert_eq!(src["kind"], "kafka");
    assert_eq!(src["counters"]["messages"], 8);
    let dl = std::fs::read_to_string(&dead).expect("dead letters");
    let dl: Value = serde_json::from_str(dl.lines().next().expect("one")).expect("json");
    assert_eq!(dl["input"], "kafka:shapes/0");
    assert_eq!(dl["line"], 6, "the dead letter names its message's offset");
    let committed = common::kafka::committed(&broker.bootstrap, "shapes-test", "shapes", 1);
    assert_eq!(
        committed.get(&0),
        Some(&8),
        "everything acknowledged is committed"
    );
}

fn daemon_config(dir: &Path, name: &str, broker: &Broker, group: &str, extra: &str) -> PathBuf {
    write_config(
        dir,
        name,
        &format!(
            "sources:\n  - kafka: {{name: bus, brokers: \"{b}\", topics: [records], group_id: {group}, key_field: eventID, rdkafka_options: {{session.timeout.ms: 6000, heartbeat.interval.ms: 500}}}}\nsinks:\n  - kafka: {{name: siem, brokers: \"{b}\", topic: findings}}\n{extra}",
            b = broker.bootstrap
        ),
    )
}

#[test]
fn two_instances_in_one_group_process_each_record_once() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("records", 12);
    broker.create_topic("findings", 4);
    let dir = broker.scratch();
    let config = daemon_config(&dir, "group.yaml", &broker, "pair", "");
    let rules = every_record_rule();
    let args = [
        "--rules",
        rules.to_str().expect("utf-8"),
        "--no-builtin",
        "--no-dedup",
    ];
    let a = Daemon::start(&config, &dir, "a", &args);
    let b = Daemon::start(&config, &dir, "b", &args);
    // Both members hold partitions before records arrive.
    wait_for("both instances to join", Duration::from_secs(60), || {
        a.log().contains("partitions assigned") && b.log().contains("partitions assigned")
    });
    std::thread::sleep(Duration::from_secs(3));
    let recs = records(1500);
    broker.produce("records", &keyed(&recs));
    let n = recs.len();
    let got = broker.consume_until("findings", |m| m.len() >= n, Duration::from_secs(120));
    // Anything extra would arrive right after.
    std::thread::sleep(Duration::from_secs(2));
    let (ca, sa) = a.stop();
    let (cb, sb) = b.stop();
    assert_eq!((ca, cb), (0, 0));
    let all = broker.consume_until("findings", |m| m.len() > n, Duration::from_secs(5));
    assert!(got.len() >= n);
    let ids = event_ids(&all);
    assert_eq!(
        ids.len(),
        n,
        "every record exactly once: no loss, no duplicate"
    );
    let want: BTreeSet<String> = recs.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(distinct(&ids), want);
    let (ra, rb) = (
        sa["records_in"].as_u64().expect("n"),
        sb["records_in"].as_u64().expect("n"),
    );
    assert!(
        ra > 0 && rb > 0,
        "both instances took partitions ({ra}, {rb})"
    );
    assert_eq!(ra + rb, n as u64);
    assert_accounting(&sa);
    assert_accounting(&sb);
}

#[test]
fn a_broker_restart_loses_no_finding() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("records", 4);
    broker.create_topic("findings", 4);
    let dir = broker.scratch();
    let config = daemon_config(&dir, "restart.yaml", &broker, "restart", "");
    let rules = every_record_rule();
    let d = Daemon::start(
        &config,
        &dir,
        "d",
        &["--rules", rules.to_str().expect("utf-8"), "--no-builtin"],
    );
    let recs = records(1200);
    let (first, second) = recs.split_at(600);
    broker.produce("records", &keyed(first));
    let _ = broker.consume_until("findings", |m| m.len() >= 100, Duration::from_secs(60));
    broker.restart();
    broker.produce("records", &keyed(second));
    let want: BTreeSet<String> = recs.iter().map(|(id, _)| id.clone()).collect();
    let got = broker.consume_until(
        "findings",
        |m| m.len() >= want.len() && distinct(&event_ids(m)) == want,
        Duration::from_secs(180),
    );
    let (code, stats) = d.stop();
    assert_eq!(code, 0);
    assert_eq!(
        distinct(&event_ids(&got)),
        want,
        "every record's finding reached the topic"
    );
    assert_accounting(&stats);
}

fn temp_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(".parquet.tmp") {
                out.push(p);
            }
        }
    }
    out
}

fn archived_ids(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.join("tp_table=aws_cloudtrail_log")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                let f = std::fs::File::open(&p).expect("open parquet");
                let reader =
                    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
                        .unwrap_or_else(|e| panic!("{} is a whole Parquet file: {e}", p.display()))
                        .build()
                        .expect("reader");
                for b in reader {
                    let b = b.expect("batch");
                    let col = b.column_by_name("event_id").expect("event_id column");
                    let s = arrow_array::cast::AsArray::as_string::<i32>(col.as_ref());
                    for v in s.iter().flatten() {
                        out.push(v.to_string());
                    }
                }
            }
        }
    }
    out
}

/// Two instances share one archive root; one is killed with SIGKILL while its files are
/// open, then restarted with the same state directory. Its own temporary files are
/// cleaned at start-up, the other instance's open files are left alone, and in the end
/// every record was evaluated (a finding) and archived (a row), duplicates only as the
/// same finding id and the same tp_id, which compaction drops.
#[test]
fn an_instance_killed_mid_write_is_restarted_without_loss() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("records", 6);
    broker.create_topic("findings", 2);
    let dir = broker.scratch();
    let root = dir.join("archive");
    let extra = |state: &str| {
        format!(
            "archive: {{root: {}, max_age: 30s}}\nstate_dir: {}\n",
            root.display(),
            dir.join(state).display()
        )
    };
    let ca = daemon_config(&dir, "a.yaml", &broker, "shared", &extra("state-a"));
    let cb = daemon_config(&dir, "b.yaml", &broker, "shared", &extra("state-b"));
    let rules = every_record_rule();
    let args = ["--rules", rules.to_str().expect("utf-8"), "--no-builtin"];
    let a = Daemon::start(&ca, &dir, "a", &args);
    let b = Daemon::start(&cb, &dir, "b", &args);
    wait_for("both instances to join", Duration::from_secs(60), || {
        a.log().contains("partitions assigned") && b.log().contains("partitions assigned")
    });
    std::thread::sleep(Duration::from_secs(3));
    let recs = records(1500);
    let (first, second) = recs.split_at(900);
    broker.produce("records", &keyed(first));
    // Wait until both hold open archive files (rows written, not yet finished).
    let id_of = |state: &str| {
        std::fs::read_to_string(dir.join(state).join("instance_id"))
            .expect("instance id")
            .trim()
            .to_string()
    };
    let owned_by = |id: &str| -> Vec<PathBuf> {
        temp_files(&root)
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!(".{id}-")))
            })
            .collect()
    };
    wait_for(
        "open files of both instances",
        Duration::from_secs(60),
        || {
            root.join(".trailhound").exists()
                && dir.join("state-a/instance_id").exists()
                && dir.join("state-b/instance_id").exists()
                && !owned_by(&id_of("state-a")).is_empty()
                && !owned_by(&id_of("state-b")).is_empty()
        },
    );
    let (ida, idb) = (id_of("state-a"), id_of("state-b"));
    a.kill9();
    let a_left = owned_by(&ida);
    assert!(
        !a_left.is_empty(),
        "the killed instance left temporary files"
    );
    let b_open = owned_by(&idb);
    let a2 = Daemon::start(&ca, &dir, "a2", &args);
    wait_for(
        "the restarted instance to clean up",
        Duration::from_secs(60),
        || a_left.iter().all(|p| !p.exists()),
    );
    for p in &b_open {
        let name = p.file_name().and_then(|n| n.to_str()).expect("name");
        let finished = p.with_file_name(&name[1..name.len() - 4]);
        assert!(
            p.exists() || finished.exists(),
            "the live instance's open file {} was removed",
            p.display()
        );
    }
    broker.produce("records", &keyed(second));
    let want: BTreeSet<String> = recs.iter().map(|(id, _)| id.clone()).collect();
    let got = broker.consume_until(
        "findings",
        |m| m.len() >= want.len() && distinct(&event_ids(m)) == want,
        Duration::from_secs(180),
    );
    assert_eq!(
        distinct(&event_ids(&got)),
        want,
        "every record was evaluated"
    );
    let (c2, s2) = a2.stop();
    let (cb2, sb2) = b.stop();
    assert_eq!((c2, cb2), (0, 0));
    assert_accounting(&s2);
    assert_accounting(&sb2);
    // Findings of redone records repeat with the same id.
    let mut ids_by_event: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in &got {
        let v: Value = serde_json::from_slice(&m.payload).expect("json");
        ids_by_event
            .entry(v["event"]["eventID"].as_str().expect("eventID").to_string())
            .or_default()
            .insert(v["id"].as_str().expect("id").to_string());
    }
    assert!(ids_by_event.values().all(|s| s.len() == 1));
    assert!(
        temp_files(&root).is_empty(),
        "both stopped cleanly: no temporary file"
    );
    let archived = archived_ids(&root);
    assert_eq!(distinct(&archived), want, "every record was archived");
    // Compaction drops the rows written twice.
    let out = Command::new(common::BIN)
        .args(["archive", "compact", "--all"])
        .arg(&root)
        .output()
        .expect("compact");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = archived_ids(&root);
    assert_eq!(
        after.len(),
        want.len(),
        "exactly one row per record after compaction"
    );
}

#[test]
fn a_missing_topic_is_a_configuration_error() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let out = Command::new(common::BIN)
        .arg(common::s3_layout())
        .args([
            "--kafka-brokers",
            &broker.bootstrap,
            "--kafka-topic",
            "nowhere",
        ])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("\"nowhere\"") && stderr.contains("create it first"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn a_kafka_sink_in_ocsf_keys_its_messages_from_the_native_finding() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("ocsf", 1);
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = write_config(
        dir.path(),
        "c.yaml",
        &format!(
            "version: 1\nsinks:\n  - stdout: {{}}\n  - kafka: {{brokers: [\"{}\"], topic: ocsf, key: \"{{rule.id}}\", format: ocsf}}\n",
            broker.bootstrap
        ),
    );
    let out = Command::new(common::BIN)
        .arg(common::s3_layout())
        .arg("--config")
        .arg(&cfg)
        .args(["--stats", "json"])
        .output()
        .expect("run");
    let run = common::Output {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_eq!(run.code, 0, "{}", run.stderr);
    let native = run.findings();
    assert!(native.len() >= 5);
    let got = broker.consume_until("ocsf", |m| m.len() >= native.len(), Duration::from_secs(60));
    assert_eq!(got.len(), native.len());
    let mut ids = Vec::new();
    for m in &got {
        let v: Value = serde_json::from_slice(&m.payload).expect("json");
        assert_eq!(v["class_uid"], 2004, "{v}");
        let rule = v["finding_info"]["analytic"]["uid"]
            .as_str()
            .expect("rule id");
        assert_eq!(
            m.key.as_deref(),
            Some(rule.as_bytes()),
            "the key template reads the native finding"
        );
        ids.push(v["finding_info"]["uid"].as_str().expect("uid").to_string());
    }
    let mut want: Vec<String> = native
        .iter()
        .map(|f| f["id"].as_str().expect("id").to_string())
        .collect();
    ids.sort();
    want.sort();
    assert_eq!(ids, want, "the same findings on both sinks");
}

/// Resident memory of a process, in KiB (from /proc).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// The broker of the Kafka sink is down for a minute while records keep arriving on
/// the source's (another) broker: the daemon stays up, says what is wrong, commits no
/// source offset past what was delivered, keeps its memory bounded; once the sink's
/// broker is back every finding is delivered and every offset committed.
#[test]
fn a_sink_broker_down_for_a_minute_holds_back_and_recovers() {
    let (Some(src), Some(sink)) = (Broker::start(), Broker::start()) else {
        return;
    };
    src.create_topic("records", 4);
    sink.create_topic("findings", 2);
    let dir = src.scratch();
    let config = write_config(
        &dir,
        "outage.yaml",
        &format!(
            "sources:\n  - kafka: {{name: bus, brokers: \"{s}\", topics: [records], group_id: outage, key_field: eventID}}\nsinks:\n  - kafka: {{name: siem, brokers: \"{k}\", topic: findings}}\nstate_dir: {state}\n",
            s = src.bootstrap,
            k = sink.bootstrap,
            state = dir.join("state").display()
        ),
    );
    let rules = every_record_rule();
    let mut d = Daemon::start(
        &config,
        &dir,
        "d",
        &["--rules", rules.to_str().expect("utf-8"), "--no-builtin"],
    );
    wait_for("partitions assigned", Duration::from_secs(60), || {
        d.log().contains("partitions assigned")
    });
    let recs = records(3000);
    let (first, second) = recs.split_at(300);
    src.produce("records", &keyed(first));
    let got = sink.consume_until(
        "findings",
        |m| m.len() >= first.len(),
        Duration::from_secs(60),
    );
    assert_eq!(got.len(), first.len());
    let committed_total = || -> i64 {
        common::kafka::committed(&src.bootstrap, "outage", "records", 4)
            .values()
            .sum()
    };
    sink.kill();
    let down = Instant::now();
    src.produce("records", &keyed(second));
    let mut max_rss = 0;
    let mut max_committed = 0;
    while down.elapsed() < Duration::from_secs(60) {
        assert!(
            matches!(d.child_running(), Ok(true)),
            "the daemon exited during the outage:\n{}",
            d.log()
        );
        max_rss = max_rss.max(rss_kib(d.child.id()));
        max_committed = max_committed.max(committed_total());
        std::thread::sleep(Duration::from_secs(2));
    }
    println!(
        "outage: max RSS {} MiB, committed offsets at most {max_committed} of {}",
        max_rss / 1024,
        recs.len()
    );
    assert!(
        max_committed <= first.len() as i64,
        "offsets committed past what the down sink delivered: {max_committed}"
    );
    assert!(max_rss < 400 * 1024, "RSS {max_rss} KiB during the outage");
    let log = d.log();
    assert!(
        log.lines()
            .any(|l| l.contains("kafka sink siem") && l.contains(&sink.port.to_string())),
        "no message names the sink and its broker:\n{log}"
    );
    if let Some(l) = log.lines().find(|l| l.contains("kafka sink siem")) {
        println!("outage: first message: {l}");
    }
    sink.start_again();
    let back = Instant::now();
    // Offsets are committed only after the sink's deliveries: the first commit past
    // the 300 marks the sink delivering again.
    wait_for("a commit past the outage", Duration::from_secs(180), || {
        committed_total() > first.len() as i64
    });
    println!(
        "outage: first commit past the outage {:?} after the broker was back",
        back.elapsed()
    );
    wait_for("every offset committed", Duration::from_secs(180), || {
        committed_total() == recs.len() as i64
    });
    println!(
        "outage: every offset committed {:?} after the broker was back",
        back.elapsed()
    );
    let want: BTreeSet<String> = recs.iter().map(|(id, _)| id.clone()).collect();
    // Reading back from the restarted broker (Tansu) takes about two minutes, the same
    // with or without a consumer group; the commits above already show the deliveries.
    let got = common::kafka::read_assigned(
        &sink.bootstrap,
        "findings",
        2,
        |m| distinct(&event_ids(m)) == want,
        Duration::from_secs(420),
    );
    let missing = want.difference(&distinct(&event_ids(&got))).count();
    assert_eq!(
        missing,
        0,
        "{missing} of {} findings not on the topic",
        want.len()
    );
    println!(
        "outage: every finding read back {:?} after the broker was back",
        back.elapsed()
    );
    let (code, stats) = d.stop();
    assert_eq!(code, 0);
    assert_accounting(&stats);
    assert_eq!(stats["records_in"], recs.len() as u64, "{stats}");
}
