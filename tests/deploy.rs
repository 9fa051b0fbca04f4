//! `deploy/`: the example daemon configuration loads with the real config loader and
//! matches the schema; the command lines of the systemd unit and of the Dockerfile parse
//! with the real CLI. (The image itself is not built here.)

use std::path::PathBuf;
use std::process::Command;

use clap::Parser;
use trailhound::cli::{Cli, Command as Sub, LogFormat};

const BIN: &str = env!("CARGO_BIN_EXE_trailhound");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The environment the example's `${…}` placeholders expect.
const ENV: &[(&str, &str)] = &[
    (
        "TRAILHOUND_ROLE_ARN",
        "arn:aws:iam::111122223333:role/trailhound-reader",
    ),
    ("TRAILHOUND_EXTERNAL_ID", "ext-123"),
    ("TRAILHOUND_TRAIL_BUCKET", "org-cloudtrail-logs"),
    (
        "TRAILHOUND_QUEUE_URL",
        "https://sqs.us-east-1.amazonaws.com/111122223333/cloudtrail-new-objects",
    ),
    (
        "KAFKA_BROKERS",
        "kafka-1.internal:9093,kafka-2.internal:9093",
    ),
    ("KAFKA_PASSWORD", "hunter2-secret"),
];

#[test]
fn the_example_config_loads_and_matches_the_schema() {
    let path = root().join("deploy/trailhound.yaml");
    let mut text = std::fs::read_to_string(&path).expect("example");
    for (k, v) in ENV {
        text = text.replace(&format!("${{{k}}}"), v);
    }
    let doc: serde_json::Value = serde_yaml_ng::from_str(&text).expect("yaml");
    let schema: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root().join("schemas/config.schema.json")).expect("schema"),
    )
    .expect("schema json");
    let v = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        doc["sinks"][0]["kafka"]["brokers"][1],
        "kafka-2.internal:9093"
    );

    // The real loader, through `config check` (interpolation included); the secret is
    // not echoed.
    let mut cmd = Command::new(BIN);
    cmd.args(["config", "check"]).arg(&path);
    for (k, val) in ENV {
        cmd.env(k, val);
    }
    let out = cmd.output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("source org-trail (s3)"), "{stdout}");
    assert!(stdout.contains("source new-objects (sqs)"), "{stdout}");
    assert!(stdout.contains("sink siem (kafka)"), "{stdout}");
    assert!(!stdout.contains("hunter2") && !stderr.contains("hunter2"));

    // Without the environment it names what is missing.
    let out = Command::new(BIN)
        .args(["config", "check"])
        .arg(&path)
        .env_remove("KAFKA_PASSWORD")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

/// The words of a shell-free command line (systemd's ExecStart, a JSON-array CMD).
fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_string).collect()
}

/// The command line after `key` in the unit, as written and as argv with the binary's
/// name first.
fn unit_command<'a>(unit: &'a str, key: &str) -> (&'a str, Vec<String>) {
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in the unit"));
    let mut argv = words(line);
    argv[0] = "trailhound".into();
    (line, argv)
}

#[test]
fn the_unit_and_the_image_run_commands_the_cli_accepts() {
    let unit = std::fs::read_to_string(root().join("deploy/trailhound.service")).expect("unit");
    let (exec, argv) = unit_command(&unit, "ExecStart=");
    let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{exec}: {e}"));
    let Some(Sub::Run(args)) = cli.command else {
        panic!("ExecStart does not run the daemon: {exec}");
    };
    assert_eq!(args.log_format, LogFormat::Json);
    assert_eq!(
        args.config.as_deref(),
        Some(std::path::Path::new("/etc/trailhound/trailhound.yaml"))
    );
    let (_, argv) = unit_command(&unit, "ExecStartPre=");
    assert!(matches!(
        Cli::try_parse_from(&argv).map(|c| c.command),
        Ok(Some(Sub::Config(_)))
    ));

    let docker = std::fs::read_to_string(root().join("deploy/Dockerfile")).expect("Dockerfile");
    let cmd = docker
        .lines()
        .find_map(|l| l.strip_prefix("CMD "))
        .expect("CMD");
    let parts: Vec<String> = serde_json::from_str(cmd).expect("CMD is a JSON array");
    let mut argv = vec!["trailhound".to_string()];
    argv.extend(parts);
    let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(matches!(cli.command, Some(Sub::Run(_))));
    // The image ships the example config at the path its command reads.
    assert!(docker.contains("COPY deploy/trailhound.yaml /etc/trailhound/trailhound.yaml"));
    assert!(docker.contains("USER 10001"), "the image runs as non-root");
}

#[test]
fn version_completions_and_man_page() {
    let out = Command::new(BIN).arg("--version").output().expect("run");
    let v = String::from_utf8_lossy(&out.stdout);
    assert!(
        v.starts_with(&format!("trailhound {} (git ", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef trailhound"),
        ("fish", "complete -c trailhound"),
    ] {
        let out = Command::new(BIN)
            .args(["completions", shell])
            .output()
            .expect("run");
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(marker), "{shell}: {text:.200}");
        assert!(text.contains("explain"), "{shell} completes subcommands");
    }
    let out = Command::new(BIN).arg("man").output().expect("run");
    let man = String::from_utf8_lossy(&out.stdout);
    assert!(man.contains(".TH trailhound 1"), "{man:.200}");
    assert!(
        man.contains("\\-\\-fail\\-on") || man.contains("fail\\-on"),
        "{man:.400}"
    );
}
