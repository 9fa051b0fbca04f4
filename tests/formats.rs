//! Finding formats on real CloudTrail: every OCSF line validates against the vendored
//! OCSF 1.3.0 Detection Finding schema, every ECS line against the ECS 8.11 schema,
//! the text line follows its grammar (`schemas/finding-text.md`), and `enrich:`
//! reaches each format. Same findings, whatever the format.

mod common;

use std::path::Path;

use serde_json::Value;

fn validator(name: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(common::root().join("schemas").join(name)).expect("schema");
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{name} compiles: {e}"))
}

fn samples() -> Vec<String> {
    common::samples()
        .iter()
        .map(|p| p.display().to_string())
        .collect()
}

fn detect(extra: &[&str]) -> common::Output {
    let mut args: Vec<String> = samples();
    args.extend(["--stats", "json", "--threads", "2"].map(String::from));
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = common::run(&args, b"");
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    out
}

fn json_lines(out: &common::Output) -> Vec<Value> {
    out.stdout_lines()
        .iter()
        .map(|l| serde_json::from_slice(l).expect("line is JSON"))
        .collect()
}

fn assert_valid(v: &jsonschema::Validator, docs: &[Value], what: &str) {
    for (i, d) in docs.iter().enumerate() {
        let errors: Vec<String> = v
            .iter_errors(d)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .take(5)
            .collect();
        assert!(
            errors.is_empty(),
            "{what} line {i} is not valid: {errors:?}\n{d}"
        );
    }
}

#[test]
fn ocsf_findings_are_valid_detection_findings() {
    let native = detect(&[]);
    let ocsf = detect(&["--format", "ocsf"]);
    let native = native.findings();
    let docs = json_lines(&ocsf);
    assert!(
        docs.len() > 100,
        "the samples give many findings: {}",
        docs.len()
    );
    assert_eq!(docs.len(), native.len(), "same findings in every format");
    assert_valid(
        &validator("ocsf-1.3.0-detection-finding.schema.json"),
        &docs,
        "OCSF",
    );
    // The mapping, checked against the native findings line by line.
    for (n, o) in native.iter().zip(&docs) {
        assert_eq!(o["class_uid"], 2004);
        assert_eq!(o["type_uid"], 200401);
        assert_eq!(o["finding_info"]["uid"], n["id"]);
        assert_eq!(o["finding_info"]["analytic"]["uid"], n["rule"]["id"]);
        assert_eq!(o["finding_info"]["title"], n["rule"]["title"]);
        let sev = match n["rule"]["level"].as_str() {
            Some("informational") => 1,
            Some("low") => 2,
            Some("medium") => 3,
            Some("high") => 4,
            Some("critical") => 5,
            other => panic!("level {other:?}"),
        };
        assert_eq!(o["severity_id"], sev);
        assert_eq!(o["metadata"]["version"], "1.3.0");
        assert_eq!(o["cloud"]["provider"], "AWS");
        if let Some(acct) = n["event"]["recipientAccountId"].as_str() {
            assert_eq!(o["cloud"]["account"]["uid"], acct);
        }
        if let Some(name) = n["event"]["eventName"].as_str()
            && n.get("correlation").is_none()
        {
            assert_eq!(o["api"]["operation"], name);
        }
        if let Some(rec) = n.get("record") {
            let raw: Value = serde_json::from_str(o["raw_data"].as_str().expect("raw_data"))
                .expect("raw_data is the record");
            assert_eq!(&raw, rec);
        }
    }
    // ATT&CK tags become attacks with tactic ids.
    let with_attacks = docs
        .iter()
        .filter(|d| {
            d["finding_info"]["attacks"][0]["tactic"]["uid"]
                .as_str()
                .is_some_and(|u| u.starts_with("TA"))
        })
        .count();
    assert!(
        with_attacks * 2 > docs.len(),
        "most built-in rules carry ATT&CK tags"
    );
    // Correlation findings name their events.
    let corr = docs
        .iter()
        .find(|d| d["unmapped"]["correlation"].is_object())
        .expect("a correlation finding");
    assert!(
        corr["finding_info"]["related_events"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );
    assert!(corr["count"].as_u64().is_some_and(|n| n >= 1));
}

#[test]
fn ecs_findings_are_valid_ecs_alerts() {
    let native = detect(&[]).findings();
    let out = detect(&["--format", "ecs"]);
    let docs = json_lines(&out);
    assert_eq!(docs.len(), native.len());
    assert_valid(&validator("ecs-8.11-event.schema.json"), &docs, "ECS");
    let allowed = |cat: &str, ty: &str| match cat {
        "iam" => [
            "admin", "change", "creation", "deletion", "group", "info", "user",
        ]
        .contains(&ty),
        "configuration" => ["access", "change", "creation", "deletion", "info"].contains(&ty),
        "authentication" => ["start", "end", "info"].contains(&ty),
        _ => false,
    };
    for (n, e) in native.iter().zip(&docs) {
        assert_eq!(e["event"]["kind"], "alert");
        assert_eq!(e["ecs"]["version"], "8.11.0");
        assert_eq!(e["rule"]["id"], n["rule"]["id"]);
        assert_eq!(e["event"]["id"], n["id"]);
        let cat = e["event"]["category"][0].as_str().expect("category");
        let ty = e["event"]["type"][0].as_str().expect("type");
        assert!(allowed(cat, ty), "ECS allows type {ty} for category {cat}");
        if n.get("correlation").is_none() {
            assert_eq!(e["@timestamp"], n["event"]["eventTime"]);
            assert_eq!(e["event"]["action"], n["event"]["eventName"]);
        }
        assert_eq!(
            e["event"].get("original").is_some(),
            n.get("record").is_some(),
            "the record is event.original"
        );
    }
    let signin = docs
        .iter()
        .find(|d| d["event"]["provider"] == "signin.amazonaws.com")
        .expect("a console sign-in finding");
    assert_eq!(signin["event"]["category"][0], "authentication");
}

/// `<time> <LEVEL> <title> | <what> in <account>[ (<alias>)] <region>[ (+N suppressed)] | <input>:<line> [<rule id>]`
fn parse_text(line: &str) -> Option<(&str, &str, &str)> {
    let (time, rest) = line.split_once(' ')?;
    let (level, rest) = rest.split_once(' ')?;
    let (title, rest) = rest.split_once(" | ")?;
    let (_what, tail) = rest.rsplit_once(" | ")?;
    let id = tail.strip_suffix(']')?.rsplit_once(" [")?.1;
    (time.len() >= 20
        && ["INFO", "LOW", "MED", "HIGH", "CRIT"].contains(&level)
        && !title.is_empty())
    .then_some((level, title, id))
}

#[test]
fn text_lines_follow_their_grammar_and_escape_what_the_record_says() {
    let native = detect(&[]).findings();
    let out = detect(&["--format", "text"]);
    let text = String::from_utf8(out.stdout.clone()).expect("utf-8");
    assert!(
        !text.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), native.len());
    for (l, n) in lines.iter().zip(&native) {
        let (level, title, id) = parse_text(l).unwrap_or_else(|| panic!("not in the grammar: {l}"));
        assert_eq!(title, n["rule"]["title"].as_str().expect("title"));
        assert_eq!(id, n["rule"]["id"].as_str().expect("id"));
        let code = match n["rule"]["level"].as_str() {
            Some("informational") => "INFO",
            Some("low") => "LOW",
            Some("medium") => "MED",
            Some("high") => "HIGH",
            _ => "CRIT",
        };
        assert_eq!(level, code);
    }
    let coloured = detect(&["--format", "text", "--color", "always"]);
    let coloured = String::from_utf8(coloured.stdout).expect("utf-8");
    assert!(
        coloured.contains("\x1b[1m"),
        "--color always paints the title"
    );

    // A record that tries to write to the terminal.
    let evil = br#"{"eventVersion":"1.08","eventID":"x1","eventTime":"2024-05-01T10:00:00Z","eventSource":"cloudtrail.amazonaws.com","eventName":"StopLogging\u001b[2J\u001b]0;owned\u0007","awsRegion":"us-east-1","recipientAccountId":"111122223333","sourceIPAddress":"198.51.100.7","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/mallory\nFAKE LINE","accountId":"111122223333"}}"#;
    let dir = tempfile::tempdir().expect("tmp");
    let rule = common::write_file(
        dir.path(),
        "r.yml",
        b"title: Any CloudTrail call\nid: 7a0f7f55-0c1f-4f5e-9a59-3c1d2c3b4a5f\nstatus: test\nlevel: high\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  sel: {eventSource: cloudtrail.amazonaws.com}\n  condition: sel\n",
    );
    let out = common::run(
        &[
            Path::new("--no-builtin").as_os_str(),
            "--rules".as_ref(),
            rule.as_os_str(),
            "--format".as_ref(),
            "text".as_ref(),
            "--color".as_ref(),
            "never".as_ref(),
        ],
        evil,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(text.lines().count(), 1, "one finding, one line: {text:?}");
    assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text:?}");
    assert!(text.contains("StopLogging\\x1b[2J"), "{text:?}");
    assert!(text.contains("mallory\\x0aFAKE LINE"), "{text:?}");
}

#[test]
fn enrichment_reaches_every_format() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = common::write_file(
        dir.path(),
        "c.yml",
        b"version: 1\nenrich:\n  tags: {environment: prod, team: secops}\n  account_aliases: {457448411975: stratus-lab}\n",
    );
    let cfg = cfg.display().to_string();
    let stratus = common::sample("stratus-red-team").display().to_string();
    let run = |fmt: &str| {
        let out = common::run(
            &[
                stratus.as_str(),
                "--config",
                &cfg,
                "--format",
                fmt,
                "--stats",
                "none",
            ],
            b"",
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
        out
    };
    let native = run("native").findings();
    assert!(!native.is_empty());
    let finding_schema = validator("finding.schema.json");
    assert_valid(&finding_schema, &native, "native");
    for f in &native {
        assert_eq!(f["enrichment"]["tags"]["environment"], "prod");
        if f["event"]["recipientAccountId"] == "457448411975" {
            assert_eq!(f["enrichment"]["account_alias"], "stratus-lab");
        }
    }
    assert!(
        native
            .iter()
            .any(|f| f["enrichment"]["account_alias"] == "stratus-lab")
    );
    let ocsf = json_lines(&run("ocsf"));
    assert_valid(
        &validator("ocsf-1.3.0-detection-finding.schema.json"),
        &ocsf,
        "OCSF",
    );
    assert!(
        ocsf.iter()
            .any(|o| o["cloud"]["account"]["name"] == "stratus-lab")
    );
    assert!(
        ocsf.iter()
            .all(|o| o["enrichments"].as_array().is_some_and(|e| e
                .iter()
                .any(|x| x["name"] == "team" && x["value"] == "secops")))
    );
    let ecs = json_lines(&run("ecs"));
    assert_valid(&validator("ecs-8.11-event.schema.json"), &ecs, "ECS");
    assert!(ecs.iter().all(|e| e["labels"]["environment"] == "prod"));
    assert!(
        ecs.iter()
            .any(|e| e["cloud"]["account"]["name"] == "stratus-lab")
    );
    let text = String::from_utf8(run("text").stdout).expect("utf-8");
    assert!(text.contains("457448411975 (stratus-lab)"), "{text}");

    // A bad alias map is a config error naming the key.
    let bad = common::write_file(
        dir.path(),
        "bad.yml",
        b"version: 1\nenrich:\n  account_aliases: {prod: x}\n",
    );
    let out = common::run(
        &[stratus.as_str(), "--config", &bad.display().to_string()],
        b"",
    );
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("enrich.account_aliases") && out.stderr.contains("12-digit"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_sink_format_applies_to_that_sink_only() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = dir.path().join("ocsf.ndjson");
    let cfg = common::write_file(
        dir.path(),
        "c.yml",
        format!(
            "version: 1\nsinks:\n  - stdout: {{}}\n  - file: {{path: {}, format: ocsf}}\n",
            f.display()
        )
        .as_bytes(),
    );
    let stratus = common::sample("stratus-red-team").display().to_string();
    let out = common::run(
        &[
            stratus.as_str(),
            "--config",
            &cfg.display().to_string(),
            "--stats",
            "none",
        ],
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let native = out.findings();
    let file = std::fs::read(&f).expect("file sink");
    let ocsf: Vec<Value> = common::lines(&file)
        .iter()
        .map(|l| serde_json::from_slice(l).expect("json"))
        .collect();
    assert_eq!(ocsf.len(), native.len());
    assert!(ocsf.iter().all(|o| o["class_uid"] == 2004));
    let bad = common::write_file(
        dir.path(),
        "bad.yml",
        b"version: 1\nsinks:\n  - stdout: {format: cef}\n",
    );
    let out = common::run(
        &[stratus.as_str(), "--config", &bad.display().to_string()],
        b"",
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("cef"), "{}", out.stderr);
}
