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
