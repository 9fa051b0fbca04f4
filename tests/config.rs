//! The configuration file of `detect`: sections applied, flags win over the file,
//! `${ENV}` interpolation, errors with a position and exit code 2.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_trailhound");

fn fixture() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/cloudtrail/s3-layout")
}

#[test]
fn archive_rules_and_dead_letter_sections_apply_and_flags_win() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = tmp.path().join("trailhound.yaml");
    std::fs::write(
        &cfg,
        "version: 1\nrules: {builtin: true, min_level: medium}\narchive: {root: \"${TH_TEST_DIR}/a\", tp_index: aws_region, partition: from-file}\ndead_letter: {path: \"${TH_TEST_DIR}/dl.ndjson\"}\n",
    )
    .expect("config");
    let archive = tmp.path().join("a");
    let run = |extra: &[&str]| {
        let out = Command::new(BIN)
            .arg(fixture())
            .arg("--config")
            .arg(&cfg)
            .args(["--no-record", "--stats", "json"])
            .args(extra)
            .env("TH_TEST_DIR", tmp.path())
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        let stats: serde_json::Value =
            serde_json::from_str(err.lines().last().expect("stats")).expect("json");
        stats
    };
    let stats = run(&[]);
    assert_eq!(stats["records_archived"], 2880);
    // min_level medium from the file: no informational or low findings.
    assert_eq!(stats["findings"]["by_level"]["low"], 0);
    assert_eq!(stats["findings"]["by_level"]["informational"], 0);
    let table = archive.join("tp_table=aws_cloudtrail_log");
    assert!(
        table
            .join("tp_partition=from-file/tp_index=us-east-1")
            .is_dir(),
        "tp_index from aws_region"
    );
    assert!(
        tmp.path().join("dl.ndjson").exists(),
        "dead-letter file from the config"
    );
    // A flag wins over the file.
    let stats = run(&["--partition", "from-flag", "--min-level", "informational"]);
    assert!(table.join("tp_partition=from-flag").is_dir());
    assert!(stats["findings"]["by_level"]["low"].as_u64() > Some(0));
}

#[test]
fn bad_configs_fail_before_running_with_a_position() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cases = [
        ("archive: {rot: x}\n", "1:"),
        ("archive: {root: a, max_bytes: lots}\n", "max_bytes"),
        ("archive: {root: a, tp_index: no_such_column}\n", "tp_index"),
        (
            "rules: {paths: [\"${TH_SURELY_UNSET_VAR}\"]}\n",
            "TH_SURELY_UNSET_VAR",
        ),
        ("version: 7\n", "version"),
    ];
    for (text, needle) in cases {
        let cfg = tmp.path().join("c.yaml");
        std::fs::write(&cfg, text).expect("write");
        let out = Command::new(BIN)
            .arg(fixture())
            .arg("--config")
            .arg(&cfg)
            .arg("--archive")
            .arg(tmp.path().join("a"))
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {err}");
        assert!(err.contains(needle), "{text}: {err}");
        assert!(out.stdout.is_empty(), "{text}: nothing runs");
    }
    let check = Command::new(BIN)
        .args(["config", "check"])
        .arg(tmp.path().join("c.yaml"))
        .output()
        .expect("check");
    assert_eq!(check.status.code(), Some(2));
}

/// The documented daemon configuration is valid against the schema and loads.
#[test]
fn daemon_example_matches_the_schema_and_loads() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let example = root.join("docs/examples/daemon.yaml");
    let text = std::fs::read_to_string(&example).expect("example");
    let text = text.replace("${TRAILHOUND_EXTERNAL_ID}", "ext-123");
    let doc: serde_json::Value = serde_yaml_ng::from_str(&text).expect("yaml");
    let schema: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join("schemas/config.schema.json")).expect("schema"),
    )
    .expect("schema json");
    let v = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    // The Kafka worker example too (config check connects to nothing).
    let kafka = root.join("docs/examples/kafka.yaml");
    let ktext = std::fs::read_to_string(&kafka)
        .expect("example")
        .replace("${KAFKA_PASSWORD}", "secret");
    let kdoc: serde_json::Value = serde_yaml_ng::from_str(&ktext).expect("yaml");
    let errors: Vec<String> = v.iter_errors(&kdoc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    let out = Command::new(BIN)
        .args(["config", "check"])
        .arg(&kafka)
        .env("KAFKA_PASSWORD", "hunter2")
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("source cloudtrail-bus (kafka)"), "{text}");
    assert!(text.contains("sink siem (kafka)") && text.contains("sink all-findings (file)"));
    assert!(!text.contains("hunter2"), "secrets are never echoed");
    // And trailhound reads it (the environment variable is interpolated).
    let out = Command::new(BIN)
        .args(["config", "check"])
        .arg(&example)
        .env("TRAILHOUND_EXTERNAL_ID", "ext-123")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A broken source is reported with its index and kind.
    let tmp = tempfile::tempdir().expect("tmp");
    let bad = tmp.path().join("bad.yaml");
    for (body, needle) in [
        (
            "sources:\n  - s3: {bucket: b, since: yesterday}\n",
            "sources[0] (s3",
        ),
        (
            "sources:\n  - sqs: {queue_url: q, connection: nowhere}\n",
            "nowhere",
        ),
        ("sources:\n  - ftp: {}\n", "unknown source kind"),
        (
            "sinks:\n  - kafka: {brokers: b, topic: t, rdkafka_options: {acks: 1}}\n",
            "acks must be all",
        ),
        (
            "sinks:\n  - file: {path: f, route: {levels: [severe]}}\n",
            "sinks[0] (file)",
        ),
        (
            "sources:\n  - kafka: {brokers: b, topics: [t], group_id: g, start_offset: middle}\n",
            "start_offset",
        ),
        (
            "sources:\n  - stdin: {}\n  - stdin: {}\n",
            "second source named",
        ),
        (
            "sources:\n  - cloudwatch_logs: {log_group_name: g, start_position: middle}\n",
            "start_position",
        ),
    ] {
        std::fs::write(&bad, body).expect("write");
        let out = Command::new(BIN)
            .args(["config", "check"])
            .arg(&bad)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{body}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{body}: {err}");
    }
    // run without sources, and run with INPUTs, are usage errors.
    std::fs::write(&bad, "version: 1\n").expect("write");
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&bad)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sources"));
}
