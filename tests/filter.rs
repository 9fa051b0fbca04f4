//! The pre-storage filter on the real CloudTrail samples: for every record,
//! `RecordFilter::keep` agrees with the same question answered directly on the record
//! parsed by serde_json, with SQL's rule that only TRUE keeps a record.

mod common;

use serde_json::Value;
use trailhound::event::RecordParser;
use trailhound::event::path::RootCache;
use trailhound::filter::RecordFilter;

/// A key as the archive reads it: the exact key, else one that matches ASCII
/// case-insensitively. `None` for a missing key or JSON `null` (a NULL column).
fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    let o = v.as_object()?;
    o.get(key)
        .or_else(|| {
            o.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        })
        .filter(|v| !v.is_null())
}

/// A struct field path (`userIdentity.sessionContext.sessionIssuer.userName`).
fn field<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, get)
}

/// A VARCHAR column: a string, or another value's JSON text.
fn text(v: &Value, path: &str) -> Option<String> {
    field(v, path).map(|x| match x {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// A BOOLEAN column: a JSON boolean or the words true/false in any case.
fn boolean(v: &Value, path: &str) -> Option<bool> {
    match field(v, path)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

fn eq(a: Option<String>, b: &str) -> Option<bool> {
    a.map(|a| a == b)
}

fn and(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn or(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

type Oracle = fn(&Value) -> Option<bool>;

/// Each expression with the same question asked of the serde_json value.
fn cases() -> Vec<(&'static str, Oracle)> {
    vec![
        (
            "event_source = 'kms.amazonaws.com' and event_name = 'Decrypt'",
            |v| {
                and(
                    eq(text(v, "eventSource"), "kms.amazonaws.com"),
                    eq(text(v, "eventName"), "Decrypt"),
                )
            },
        ),
        (
            "not (event_source = 'kms.amazonaws.com' and event_name = 'Decrypt')",
            |v| {
                and(
                    eq(text(v, "eventSource"), "kms.amazonaws.com"),
                    eq(text(v, "eventName"), "Decrypt"),
                )
                .map(|b| !b)
            },
        ),
        ("error_code != 'AccessDenied'", |v| {
            eq(text(v, "errorCode"), "AccessDenied").map(|b| !b)
        }),
        ("error_code is distinct from 'AccessDenied'", |v| {
            Some(text(v, "errorCode").as_deref() != Some("AccessDenied"))
        }),
        (
            "event_name in ('ConsoleLogin', 'GetObject', 'AssumeRole')",
            |v| {
                text(v, "eventName")
                    .map(|n| ["ConsoleLogin", "GetObject", "AssumeRole"].contains(&n.as_str()))
            },
        ),
        ("read_only = false", |v| boolean(v, "readOnly").map(|b| !b)),
        ("management_event is not true", |v| {
            Some(boolean(v, "managementEvent") != Some(true))
        }),
        (
            "user_identity.session_context.session_issuer.user_name like '%Admin%' \
             or user_identity.type = 'Root'",
            |v| {
                or(
                    text(v, "userIdentity.sessionContext.sessionIssuer.userName")
                        .map(|n| n.contains("Admin")),
                    eq(text(v, "userIdentity.type"), "Root"),
                )
            },
        ),
        ("user_identity.arn ilike '%:ASSUMED-ROLE/%'", |v| {
            text(v, "userIdentity.arn").map(|a| a.to_lowercase().contains(":assumed-role/"))
        }),
        ("source_ip_address like '%.amazonaws.com'", |v| {
            text(v, "sourceIPAddress").map(|s| s.ends_with(".amazonaws.com"))
        }),
        ("contains(lower(user_agent), 'boto')", |v| {
            text(v, "userAgent").map(|s| s.to_lowercase().contains("boto"))
        }),
        ("request_parameters ->> 'bucketName' is not null", |v| {
            Some(
                get(v, "requestParameters")
                    .and_then(|r| r.as_object())
                    .and_then(|r| r.get("bucketName"))
                    .is_some_and(|b| !b.is_null()),
            )
        }),
        ("resources -> 0 ->> 'ARN' like 'arn:aws:s3:::%'", |v| {
            let arn = get(v, "resources")?
                .as_array()?
                .first()?
                .as_object()?
                .get("ARN")?;
            match arn {
                Value::String(s) => Some(s.starts_with("arn:aws:s3:::")),
                Value::Null => None,
                other => Some(other.to_string().starts_with("arn:aws:s3:::")),
            }
        }),
        (
            "event_time >= '2023-07-10T12:15:00Z' and aws_region between 'eu' and 'us-east-2'",
            |v| {
                let cut = trailhound::archive::parse_time_micros("2023-07-10T12:15:00Z");
                let t = text(v, "eventTime")
                    .filter(|_| field(v, "eventTime").is_some_and(Value::is_string))
                    .and_then(|t| trailhound::archive::parse_time_micros(&t));
                and(
                    t.zip(cut).map(|(t, c)| t >= c),
                    text(v, "awsRegion").map(|r| r.as_str() >= "eu" && r.as_str() <= "us-east-2"),
                )
            },
        ),
    ]
}

#[test]
fn filter_agrees_with_serde_json_on_every_real_record() {
    let cases = cases();
    let filters: Vec<RecordFilter> = cases
        .iter()
        .map(|(e, _)| RecordFilter::compile(&[e.to_string()]).unwrap_or_else(|err| panic!("{err}")))
        .collect();
    let mut parser = RecordParser::new();
    let mut kept = vec![0usize; cases.len()];
    let mut records = 0usize;
    let mut mismatches: Vec<String> = Vec::new();
    for sample in common::samples() {
        let data = common::gunzip_file(&sample);
        for line in common::lines(&data) {
            let v: Value = serde_json::from_slice(line).expect("sample line is JSON");
            records += 1;
            let got: Vec<bool> = parser.parse(line, |root| {
                let rec = RootCache::new(root.expect("sample line is JSON"));
                filters.iter().map(|f| f.keep(&rec)).collect()
            });
            for (i, ((expr, oracle), got)) in cases.iter().zip(got).enumerate() {
                let want = oracle(&v) == Some(true);
                kept[i] += usize::from(got);
                if got != want && mismatches.len() < 20 {
                    mismatches.push(format!(
                        "{}: {expr}: keep={got}, serde_json says {want}; eventID {}",
                        sample.display(),
                        v["eventID"]
                    ));
                }
            }
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
    assert_eq!(records, 11_625);
    // Every expression splits the samples: it keeps some records and drops others.
    for ((expr, _), k) in cases.iter().zip(&kept) {
        assert!(*k > 0 && *k < records, "{expr}: kept {k} of {records}");
    }
    // The example: the KMS Decrypt records are exactly the ones filtered out.
    assert_eq!(kept[0] + kept[1], records, "{kept:?}");
}

#[test]
fn filter_with_shared_root_cache_slots_agrees_on_real_records() {
    // Conditions on overlapping keys (eventSource and eventName, errorCode, readOnly,
    // userIdentity) sharing one cache.
    let exprs: Vec<String> = [1, 3, 5, 8]
        .iter()
        .map(|&i| cases()[i].0.to_string())
        .collect();
    let plain: Vec<RecordFilter> = exprs
        .iter()
        .map(|e| RecordFilter::compile(std::slice::from_ref(e)).expect("compiles"))
        .collect();
    let mut all = RecordFilter::compile(&exprs).expect("compiles");
    let mut keys: Vec<String> = Vec::new();
    all.paths_mut(&mut |p| {
        let Some(key) = p.first_key() else { return };
        let slot = keys.iter().position(|k| k == key).unwrap_or_else(|| {
            keys.push(key.to_string());
            keys.len() - 1
        });
        p.set_slot(slot as u8);
    });
    let mut parser = RecordParser::new();
    let data = common::gunzip_file(&common::sample("invictus-aws-dataset"));
    let mut kept = 0;
    for line in common::lines(&data) {
        let (a, b) = parser.parse(line, |root| {
            let root = root.expect("JSON");
            let rec = RootCache::new(root);
            let shared = all.keep(&rec);
            let fresh = plain.iter().all(|f| f.keep(&RootCache::new(root)));
            (shared, fresh)
        });
        assert_eq!(a, b, "{}", String::from_utf8_lossy(line));
        kept += usize::from(a);
    }
    assert!(kept > 0, "the AND kept nothing");
}

/// Expressions that read the same in DuckDB: there `->` binds more loosely than `=`
/// and `->>`, so every `->` step is parenthesised.
const DUCKDB_EXPRESSIONS: &[&str] = &[
    "event_source = 'kms.amazonaws.com' and event_name = 'Decrypt'",
    "not (event_source = 'kms.amazonaws.com' and event_name = 'Decrypt')",
    "error_code != 'AccessDenied'",
    "error_code is distinct from 'AccessDenied'",
    "error_code is null and (error_message is null or error_message like '%denied%')",
    "event_name like 'Get%'",
    "event_name ilike 'get%'",
    "event_name not in ('GetObject', 'ListBuckets')",
    "lower(event_name) like '%list%'",
    "upper(aws_region) = 'US-EAST-1'",
    "aws_region >= 'us' and aws_region < 'ut'",
    "starts_with(event_source, 's3')",
    "contains(lower(user_agent), 'boto')",
    "source_ip_address in ('127.0.0.1', 'AWS Internal')",
    "source_ip_address like '%.amazonaws.com'",
    "recipient_account_id between '1' and '5'",
    "event_version >= '1.08'",
    "event_category = 'Management'",
    "session_credential_from_console = 'true'",
    "vpc_endpoint_id like 'vpce-%'",
    "shared_event_id is not null",
    "read_only",
    "not read_only",
    "read_only is null",
    "read_only = 'true'",
    "event_type = 'AwsApiCall' and read_only = false",
    "management_event is not true",
    "event_time > '2023-07-10T12:15:00Z'",
    "event_time between '2023-07-10' and '2023-07-10 12:20:00'",
    "event_time is null",
    "user_identity is null",
    "user_identity.session_context is null",
    "user_identity.type in ('Root', null)",
    "user_identity.arn ilike '%:ASSUMED-ROLE/%'",
    "contains(user_identity.arn, 'role')",
    "user_identity.invoked_by like '%.amazonaws.com'",
    "user_identity.session_context.attributes.mfa_authenticated = 'true'",
    "user_identity.session_context.session_issuer.user_name like '%Admin%' \
     or user_identity.type = 'Root'",
    "tls_details is null",
    "tls_details.tls_version = 'TLSv1.2'",
    "request_parameters ->> 'bucketName' is not null",
    "request_parameters ->> 'maxResults' = '1000'",
    "(request_parameters -> 'maxResults') = '1000'",
    "request_parameters ->> 'Tagging' is not null",
    "request_parameters ->> 'tagging' is not null",
    "request_parameters ->> '$.tagging' is not null",
    "request_parameters like '%Tagging%'",
    "((((request_parameters -> 'instancesSet') -> 'items') -> 0) ->> 'instanceId') like 'i-%'",
    "request_parameters ->> '/instancesSet/items/0/instanceId' like 'i-%'",
    "((resources -> 0) ->> 'ARN') is not null",
    "((resources -> -1) ->> 'type') like 'AWS::%'",
    "resources ->> -1 is not null",
    "response_elements is null",
    "response_elements like '%.%'",
    "response_elements ->> 'ConsoleLogin' = 'Success'",
    "additional_event_data ->> 'MFAUsed' = 'No'",
    "service_event_details is not null",
];

/// Asks DuckDB, over the archive trailhound writes, how many rows each expression
/// selects; `None` when the oracle's Python (target/oracle-venv, from
/// scripts/oracle.sh) is missing.
fn duckdb_counts(exprs: &[&str]) -> Option<Vec<u64>> {
    let python = common::root().join("target/oracle-venv/bin/python");
    if !python.exists() {
        assert!(
            std::env::var("TRAILHOUND_ORACLE").as_deref() != Ok("required"),
            "target/oracle-venv is missing: run scripts/oracle.sh"
        );
        return None;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let archive = tmp.path().join("archive");
    common::archive_samples(&archive);
    let script = "import duckdb, json, sys\n\
                  con = duckdb.connect()\n\
                  con.execute(open(sys.argv[1], encoding='utf-8').read())\n\
                  exprs = json.loads(sys.stdin.read())\n\
                  q = 'select count(*) from aws_cloudtrail_log where {}'\n\
                  print(json.dumps([con.execute(q.format(e)).fetchone()[0] for e in exprs]))\n";
    let mut child = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(archive.join("aws_cloudtrail_log.sql"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        let json = serde_json::to_vec(exprs).expect("json");
        stdin.write_all(&json).expect("write expressions");
    }
    let out = child.wait_with_output().expect("python output");
    assert!(
        out.status.success(),
        "duckdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("counts"))
}

/// DuckDB over the archived table answers every expression as the filter does on the
/// records themselves: the filter is SQL over the archive's columns.
#[test]
fn filter_selects_what_duckdb_selects_from_the_archive() {
    let Some(duck) = duckdb_counts(DUCKDB_EXPRESSIONS) else {
        eprintln!("skipped: no target/oracle-venv (run scripts/oracle.sh, or ./scripts/test.sh)");
        return;
    };
    let filters: Vec<RecordFilter> = DUCKDB_EXPRESSIONS
        .iter()
        .map(|e| RecordFilter::compile(&[e.to_string()]).unwrap_or_else(|err| panic!("{err}")))
        .collect();
    let mut ours = vec![0u64; filters.len()];
    let mut parser = RecordParser::new();
    for sample in common::samples() {
        let data = common::gunzip_file(&sample);
        for line in common::lines(&data) {
            parser.parse(line, |root| {
                let rec = RootCache::new(root.expect("sample line is JSON"));
                for (n, f) in ours.iter_mut().zip(&filters) {
                    *n += u64::from(f.keep(&rec));
                }
            });
        }
    }
    let differ: Vec<String> = DUCKDB_EXPRESSIONS
        .iter()
        .zip(ours.iter().zip(&duck))
        .filter(|(_, (a, b))| a != b)
        .map(|(e, (a, b))| format!("{e}: filter keeps {a}, DuckDB selects {b}"))
        .collect();
    assert!(differ.is_empty(), "{differ:#?}");
    // Each expression splits the table, so agreeing says something.
    for (e, n) in DUCKDB_EXPRESSIONS.iter().zip(&duck) {
        assert!(
            *n > 0 && *n < 11_625,
            "{e}: DuckDB selects {n} of 11625 rows"
        );
    }
}
