//! Credentials through the real AWS SDK against a local moto server with IAM
//! authentication on: only the key of an IAM user whose policy allows `s3:*` is
//! accepted (unknown keys and wrong secrets get 403), so a run that reads the bucket
//! proves that the credentials came from where they should.
//!
//! What is proved: the environment, a named profile of the shared files, the default
//! profile and `credential_process` are each used; `role_arn` assumes the role through
//! STS and reads with the role's temporary credentials; a failure is reported by the
//! source (exit 3) with the service's error code; and a secret, right or wrong, never
//! appears in logs (even at trace level), errors or `config check` output.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::moto::Moto;
use serde_json::json;

/// The bucket of every test.
const BUCKET: &str = "cred-trail";
/// A wrong secret, distinctive enough to search for.
const WRONG_SECRET: &str = "WrongSecret/doNotLog+0123456789abcdefGHIJKLMNOP";

/// Uploads three gzip'd `{"Records":[…]}` objects (10 records each, real records from
/// the samples) in CloudTrail's layout, before authentication is on; returns the
/// number of records.
fn fill_bucket(moto: &Moto, dir: &Path) -> u64 {
    let mut uploads = Vec::new();
    let mut total = 0u64;
    for (i, name) in [
        "stratus-red-team",
        "invictus-aws-dataset",
        "grycap-cloudtrail-tracker",
    ]
    .iter()
    .enumerate()
    {
        let lines = common::gunzip_file(&common::sample(name));
        let records: Vec<Vec<u8>> = common::lines(&lines)[..10]
            .iter()
            .map(|l| l.to_vec())
            .collect();
        total += records.len() as u64;
        let path = common::write_file(
            dir,
            &format!("objects/{i}.json.gz"),
            &common::gzip(&common::records_object(&records)),
        );
        let key = format!(
            "AWSLogs/111122223333/CloudTrail/us-east-1/2024/11/30/111122223333_CloudTrail_us-east-1_20241130T08{i}5Z_Cred{i}.json.gz"
        );
        uploads.push((key, path));
    }
    let manifest = dir.join("uploads.json");
    std::fs::write(&manifest, json!(uploads).to_string()).expect("manifest");
    moto.run_python(
        r#"
import json, sys
import boto3
s3 = boto3.client("s3")
s3.create_bucket(Bucket=sys.argv[1])
for key, path in json.load(open(sys.argv[2])):
    s3.put_object(Bucket=sys.argv[1], Key=key, Body=open(path, "rb").read())
"#,
        &[BUCKET, manifest.to_str().expect("utf-8 path")],
    );
    total
}

/// `trailhound` with nothing of the user's AWS setup: every `AWS_*` variable that the
/// SDK reads removed, the shared files pointed at files that do not exist, no instance
/// metadata. Each test then sets what it needs.
fn trailhound(dir: &Path) -> Command {
    let mut c = Command::new(common::BIN);
    common::moto::clean_aws_env(&mut c, dir);
    c.stdin(Stdio::null());
    c
}

/// Runs a prepared command to its end.
fn output(mut c: Command) -> common::Output {
    let out = c.output().expect("run trailhound");
    common::Output {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `detect s3://BUCKET/` against the emulator with `extra` arguments.
fn detect_bucket(moto: &Moto, dir: &Path, env: &[(&str, &str)], extra: &[&str]) -> common::Output {
    let mut c = trailhound(dir);
    c.args(["detect", &format!("s3://{BUCKET}/")])
        .args(["--endpoint-url", &moto.endpoint, "--s3-force-path-style"])
        .args(["--no-record", "--stats", "json"])
        .args(extra)
        .envs(env.iter().copied());
    output(c)
}

/// Asserts a run read the whole bucket.
fn assert_read_all(out: &common::Output, records: u64) {
    assert_eq!(out.code, 0, "{}", out.stderr);
    let stats = out.stats();
    common::check_accounting(&stats);
    common::assert_valid(&common::validator("stats.schema.json"), &stats, "stats");
    assert!(stats["sources"][0]["error"].is_null(), "{stats}");
    assert_eq!(common::stat(&stats, "records_in"), records, "{stats}");
    assert_eq!(
        stats["sources"][0]["counters"]["objects_fetched"], 3,
        "{stats}"
    );
    out.findings();
}

/// Asserts a run was refused by the emulator: exit 3, the source's error names the
/// failure, no record read.
fn assert_refused(out: &common::Output, codes: &[&str]) -> String {
    assert_eq!(out.code, 3, "{}", out.stderr);
    let stats = out.stats();
    common::assert_valid(&common::validator("stats.schema.json"), &stats, "stats");
    let err = stats["sources"][0]["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no source error: {stats}"))
        .to_string();
    assert!(
        codes.iter().any(|c| err.contains(c)),
        "error {err:?} names none of {codes:?}"
    );
    assert!(
        codes.iter().any(|c| out.stderr.contains(c)),
        "stderr names none of {codes:?}:\n{}",
        out.stderr
    );
    assert_eq!(common::stat(&stats, "records_in"), 0, "{stats}");
    err
}

/// Asserts that none of `secrets` occurs in any output of a run.
fn assert_no_secret(out: &common::Output, secrets: &[&str]) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    for s in secrets {
        assert!(
            !out.stderr.contains(s),
            "stderr holds a secret:\n{}",
            out.stderr
        );
        assert!(!stdout.contains(s), "stdout holds a secret");
    }
}

/// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` are used: the right pair reads the
/// bucket; the right key with a wrong secret is refused (SignatureDoesNotMatch, exit 3)
/// and neither secret shows up anywhere.
#[test]
fn credentials_from_environment() {
    let Some(moto) = Moto::start() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let records = fill_bucket(&moto, dir.path());
    let (key, secret) = moto.enable_iam_auth(&["s3:*"]);

    let good = [
        ("AWS_ACCESS_KEY_ID", key.as_str()),
        ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
    ];
    let out = detect_bucket(&moto, dir.path(), &good, &["--region", "us-east-1"]);
    assert_read_all(&out, records);
    assert_no_secret(&out, &[&secret]);
    let signed_by_key = moto.requests().iter().any(|r| {
        r.header("Authorization")
            .is_some_and(|a| a.contains(&format!("Credential={key}/")))
    });
    assert!(signed_by_key, "no request signed with the IAM key");

    let bad = [
        ("AWS_ACCESS_KEY_ID", key.as_str()),
        ("AWS_SECRET_ACCESS_KEY", WRONG_SECRET),
    ];
    let out = detect_bucket(&moto, dir.path(), &bad, &["--region", "us-east-1"]);
    assert_refused(&out, &["SignatureDoesNotMatch"]);
    assert_no_secret(&out, &[&secret, WRONG_SECRET]);
}

/// The shared credentials and config files: `--profile other` takes that profile's
/// key (and its region from `[profile other]`, no `--region`); without `--profile` the
/// default profile is used, whose key moto does not know (InvalidAccessKeyId).
#[test]
fn credentials_from_a_profile_file() {
    let Some(moto) = Moto::start() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let records = fill_bucket(&moto, d);
    let (key, secret) = moto.enable_iam_auth(&["s3:*"]);
    let credentials = common::write_file(
        d,
        "aws/credentials",
        format!(
            "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = {WRONG_SECRET}\n\n[other]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n"
        )
        .as_bytes(),
    );
    let config = common::write_file(
        d,
        "aws/config",
        b"[default]\nregion = us-east-1\n\n[profile other]\nregion = us-east-1\n",
    );
    let files = [
        ("AWS_CONFIG_FILE", config.to_str().expect("utf-8")),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            credentials.to_str().expect("utf-8"),
        ),
    ];

    let out = detect_bucket(&moto, d, &files, &["--profile", "other"]);
    assert_read_all(&out, records);
    assert_no_secret(&out, &[&secret, WRONG_SECRET]);

    let out = detect_bucket(&moto, d, &files, &[]);
    assert_refused(&out, &["InvalidAccessKeyId", "403"]);
    assert_no_secret(&out, &[&secret, WRONG_SECRET]);
}

/// A profile with `credential_process`: the SDK runs the program (it leaves a marker)
/// and signs with the key it prints.
#[test]
fn credentials_from_credential_process() {
    let Some(moto) = Moto::start() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let records = fill_bucket(&moto, d);
    let (key, secret) = moto.enable_iam_auth(&["s3:*"]);
    let marker = d.join("credential-process-ran");
    let script = common::write_file(
        d,
        "bin/creds.sh",
        format!(
            "#!/bin/sh\ntouch '{}'\nprintf '%s\\n' '{}'\n",
            marker.display(),
            json!({"Version": 1, "AccessKeyId": key, "SecretAccessKey": secret})
        )
        .as_bytes(),
    );
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let config = common::write_file(
        d,
        "aws/config",
        format!(
            "[profile proc]\nregion = us-east-1\ncredential_process = {}\n",
            script.display()
        )
        .as_bytes(),
    );
    let env = [("AWS_CONFIG_FILE", config.to_str().expect("utf-8"))];
    let out = detect_bucket(&moto, d, &env, &["--profile", "proc"]);
    assert_read_all(&out, records);
    assert!(marker.exists(), "the credential process did not run");
    assert_no_secret(&out, &[&secret]);
}

/// Starts `trailhound run`, lets it fail to list for a while (the error logged), then
/// stops it with SIGTERM and returns what it wrote.
fn run_until_error(dir: &Path, config: &Path, moto: &Moto) -> common::Output {
    let stderr = dir.join("run.stderr");
    let mut c = trailhound(dir);
    c.args(["run", "--config"])
        .arg(config)
        .args(["--no-record", "--stats", "json", "--log-level", "trace"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).expect("stderr file"));
    let mut child = c.spawn().expect("start trailhound run");
    let deadline = Instant::now() + Duration::from_secs(30);
    let read = || String::from_utf8_lossy(&std::fs::read(&stderr).unwrap_or_default()).into_owned();
    while !read().contains("SignatureDoesNotMatch") && Instant::now() < deadline {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("trailhound run exited early ({st}):\n{}", read());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let listed = moto.requests().iter().any(|r| r.is_s3_list_v2());
    // SAFETY: signalling a child process this test started and still owns.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let out = child.wait_with_output().expect("wait for trailhound run");
    assert!(listed, "the daemon never listed the bucket");
    common::Output {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: read(),
    }
}

/// Secrets written inline in `connections:` stay out of everything: the error of
/// `detect --connection` (and its trace-level log, with the SDK's own lines), the log
/// of `run` (trace level) and `config check`, both when the file is fine and when it
/// is rejected.
#[test]
fn secrets_are_not_logged() {
    let Some(moto) = Moto::start() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    fill_bucket(&moto, d);
    let (key, secret) = moto.enable_iam_auth(&["s3:*"]);
    let connection = |secret: &str| {
        format!(
            "  local: {{endpoint_url: \"{}\", region: us-east-1, access_key: \"{key}\", secret_key: \"{secret}\", s3_force_path_style: true}}\n",
            moto.endpoint
        )
    };
    let config = common::write_file(
        d,
        "wrong.yaml",
        format!(
            "version: 1\nstate_dir: \"{}\"\nconnections:\n{}sources:\n  - s3: {{name: org, connection: local, bucket: {BUCKET}, poll_interval: 1s}}\n",
            d.join("state").display(),
            connection(WRONG_SECRET)
        )
        .as_bytes(),
    );

    // detect, at info and at trace level.
    for level in ["info", "trace"] {
        let mut c = trailhound(d);
        c.args(["detect", "--config"])
            .arg(&config)
            .args(["--connection", "local", &format!("s3://{BUCKET}/")])
            .args(["--no-record", "--stats", "json", "--log-level", level]);
        let out = output(c);
        assert_refused(&out, &["SignatureDoesNotMatch"]);
        assert_no_secret(&out, &[WRONG_SECRET, &secret]);
        if level == "trace" {
            // The SDK's own lines are there: the check covers them too.
            assert!(out.stderr.lines().count() > 20, "{}", out.stderr);
        }
    }

    // The daemon logs the failed listing and carries on until stopped.
    let out = run_until_error(d, &config, &moto);
    assert!(
        out.stderr.contains("SignatureDoesNotMatch"),
        "{}",
        out.stderr
    );
    assert_no_secret(&out, &[WRONG_SECRET, &secret]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let stats = out.stats();
    assert_eq!(common::stat(&stats, "records_in"), 0, "{stats}");

    // config check: fine, and rejected (external_id without role_arn).
    let mut c = trailhound(d);
    c.args(["config", "check"]).arg(&config);
    let out = output(c);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok"));
    assert_no_secret(&out, &[WRONG_SECRET]);
    let rejected = common::write_file(
        d,
        "rejected.yaml",
        format!(
            "version: 1\nconnections:\n{}  other: {{access_key: \"{key}\", secret_key: \"{WRONG_SECRET}\", external_id: x}}\n",
            connection(WRONG_SECRET)
        )
        .as_bytes(),
    );
    let mut c = trailhound(d);
    c.args(["config", "check"]).arg(&rejected);
    let out = output(c);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("external_id needs role_arn"),
        "{}",
        out.stderr
    );
    assert_no_secret(&out, &[WRONG_SECRET]);
}

/// `role_arn` assumes the role through STS (with `external_id`, `session_name` and
/// `session_duration`) on top of the connection's own keys, and the bucket is then read
/// with the temporary credentials STS returned, not with the base keys.
#[test]
fn role_arn_assumes_the_role_and_reads_with_its_credentials() {
    let Some(moto) = Moto::start() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let records = fill_bucket(&moto, dir.path());
    let cfg = dir.path().join("trailhound.yaml");
    std::fs::write(
        &cfg,
        format!(
            "version: 1\nconnections:\n  reader:\n    endpoint_url: \"{ep}\"\n    region: us-east-1\n    s3_force_path_style: true\n    access_key: AKIABASEKEY000000001\n    secret_key: base-secret\n    role_arn: arn:aws:iam::123456789012:role/trail-reader\n    external_id: ext-42\n    session_name: trailhound-test\n    session_duration: 15m\n",
            ep = moto.endpoint
        ),
    )
    .expect("config");
    moto.clear_recording();
    let mut c = trailhound(dir.path());
    c.args(["detect", &format!("s3://{BUCKET}/"), "--config"])
        .arg(&cfg)
        .args(["--connection", "reader", "--no-record", "--stats", "json"]);
    let out = output(c);
    assert_read_all(&out, records);
    let reqs = moto.requests();
    let assume: Vec<String> = reqs
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .filter(|b| b.contains("Action=AssumeRole"))
        .collect();
    assert_eq!(assume.len(), 1, "one AssumeRole call");
    for want in [
        "RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Ftrail-reader",
        "ExternalId=ext-42",
        "RoleSessionName=trailhound-test",
        "DurationSeconds=900",
    ] {
        assert!(assume[0].contains(want), "{want} in {}", assume[0]);
    }
    let gets: Vec<&common::moto::Request> = reqs
        .iter()
        .filter(|r| r.s3_get_object_key().is_some())
        .collect();
    assert_eq!(gets.len(), 3);
    for g in gets {
        let auth = g.header("Authorization").expect("signed");
        assert!(
            auth.contains("Credential=") && !auth.contains("AKIABASEKEY000000001"),
            "S3 is read with the role's credentials: {auth}"
        );
        assert!(
            g.header("X-Amz-Security-Token").is_some(),
            "a session token"
        );
    }
    assert_no_secret(&out, &["base-secret"]);
}
