use super::*;
use crate::event::RecordParser;
use eval::Val;

/// A KMS Decrypt by an assumed role; booleans as JSON booleans.
const KMS: &str = r#"{"eventVersion":"1.08","eventSource":"kms.amazonaws.com","eventName":"Decrypt","awsRegion":"us-east-1","readOnly":true,"managementEvent":true,"eventTime":"2023-07-10T12:00:00Z","userIdentity":{"type":"AssumedRole","arn":"arn:aws:sts::111122223333:assumed-role/app/i-0abc","sessionContext":{"sessionIssuer":{"type":"Role","userName":"app"}}},"requestParameters":{"encryptionContext":{"aws:lambda:FunctionArn":"arn:aws:lambda:us-east-1:111122223333:function:f"}},"sourceIPAddress":"lambda.amazonaws.com","recipientAccountId":"111122223333"}"#;

/// A denied S3 GetObject by an IAM user; `readOnly` as a string, JSON in the request.
const S3: &str = r#"{"eventVersion":"1.09","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"eu-west-1","readOnly":"true","eventTime":"2024-01-31T08:30:00.123Z","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::222233334444:user/alice","userName":"alice"},"requestParameters":{"bucketName":"logs","key":"a/b.txt","n":null,"count":5,"list":[1,"two",{"k":"v"}],"a.b":"dotted","Quoted":"q\"x"},"resources":[{"ARN":"arn:aws:s3:::logs/a/b.txt","type":"AWS::S3::Object"},{"ARN":"arn:aws:s3:::logs"}],"errorCode":"AccessDenied","errorMessage":"Access Denied","sourceIPAddress":"203.0.113.9","userAgent":"aws-cli/2.15.0 Python/3.11"}"#;

fn with_rec<R>(rec: &str, f: impl FnOnce(&RootCache<'_, '_>) -> R) -> R {
    let mut p = RecordParser::new();
    p.parse(rec.as_bytes(), |root| {
        f(&RootCache::new(root.expect("test record is JSON")))
    })
}

/// The expression's truth value on the record: TRUE, FALSE or NULL (`None`).
fn eval3(expr: &str, rec: &str) -> Option<bool> {
    let node = compile::compile(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
    with_rec(rec, |c| match node.eval(c) {
        Val::Bool(b) => Some(b),
        Val::Null => None,
        other => panic!("{expr}: not a condition: {other:?}"),
    })
}

fn keep(exprs: &[&str], rec: &str) -> bool {
    let exprs: Vec<String> = exprs.iter().map(|s| s.to_string()).collect();
    let f = RecordFilter::compile(&exprs).unwrap_or_else(|e| panic!("{e}"));
    with_rec(rec, |c| f.keep(c))
}

fn error(expr: &str) -> String {
    match RecordFilter::compile(&[expr.to_string()]) {
        Ok(_) => panic!("{expr}: compiled, expected an error"),
        Err(e) => e.to_string(),
    }
}

fn assert_error(expr: &str, parts: &[&str]) {
    let e = error(expr);
    for p in parts {
        assert!(e.contains(p), "{expr}: error {e:?} lacks {p:?}");
    }
}

#[test]
fn filter_issue_example_drops_kms_decrypt_and_keeps_s3() {
    let f = "not (event_source = 'kms.amazonaws.com' and event_name = 'Decrypt')";
    assert!(!keep(&[f], KMS));
    assert!(keep(&[f], S3));
    // Both fields missing: the inner AND is NULL, NOT NULL is NULL, the record goes.
    assert!(!keep(&[f], r#"{"eventVersion":"1.08"}"#));
    assert!(keep(&[], KMS), "an empty filter keeps everything");
    assert!(RecordFilter::compile(&[]).expect("empty").is_empty());
    assert!(
        !RecordFilter::compile(&[f.to_string()])
            .expect("f")
            .is_empty()
    );
}

#[test]
fn filter_expressions_are_and_ed() {
    let a = "event_source = 's3.amazonaws.com'";
    let b = "aws_region = 'eu-west-1'";
    assert!(keep(&[a, b], S3));
    assert!(!keep(&[a, "aws_region = 'us-east-1'"], S3));
    assert!(!keep(&["aws_region = 'eu-west-1'", a], KMS));
}

#[test]
fn filter_comparison_operators() {
    let cases: &[(&str, bool)] = &[
        ("event_name = 'GetObject'", true),
        ("event_name = 'getobject'", false),
        ("event_name != 'GetObject'", false),
        ("event_name != 'PutObject'", true),
        ("event_name <> 'PutObject'", true),
        ("event_name <> 'GetObject'", false),
        ("event_name < 'H'", true),
        ("event_name < 'GetObject'", false),
        ("event_name <= 'GetObject'", true),
        ("event_name <= 'GetObjec'", false),
        ("event_name > 'GetObjec'", true),
        ("event_name > 'a'", false),
        ("event_name >= 'GetObject'", true),
        ("event_name >= 'Z'", false),
        // Byte order: upper case sorts before lower case.
        ("'B' < 'a'", true),
        ("'GetObject' = event_name", true),
        ("1 < 2", true),
        ("2 <= 1.5", false),
        ("1 = 1.0", true),
        ("-3 < -2", true),
        ("'1' = 1", true),
    ];
    for (expr, want) in cases {
        assert_eq!(eval3(expr, S3), Some(*want), "{expr}");
    }
}

#[test]
fn filter_null_semantics() {
    // KMS has no errorCode.
    assert_eq!(eval3("error_code != 'AccessDenied'", KMS), None);
    assert_eq!(eval3("not (error_code = 'AccessDenied')", KMS), None);
    assert_eq!(eval3("error_code = 'AccessDenied'", KMS), None);
    assert!(!keep(&["error_code != 'AccessDenied'"], KMS));
    assert!(!keep(&["not (error_code = 'AccessDenied')"], KMS));
    assert_eq!(eval3("error_code is null", KMS), Some(true));
    assert_eq!(eval3("error_code is not null", KMS), Some(false));
    assert_eq!(eval3("error_code is null", S3), Some(false));
    assert_eq!(
        eval3("error_code is distinct from 'AccessDenied'", KMS),
        Some(true)
    );
    assert_eq!(
        eval3("error_code is not distinct from null", KMS),
        Some(true)
    );
    assert_eq!(
        eval3("error_code is distinct from 'AccessDenied'", S3),
        Some(false)
    );
    assert_eq!(
        eval3("error_code is null or error_code != 'AccessDenied'", KMS),
        Some(true)
    );
    // Three-valued AND / OR / NOT.
    assert_eq!(eval3("null and false", KMS), Some(false));
    assert_eq!(eval3("null and true", KMS), None);
    assert_eq!(eval3("null or true", KMS), Some(true));
    assert_eq!(eval3("null or false", KMS), None);
    assert_eq!(eval3("not null", KMS), None);
    assert_eq!(eval3("event_name = null", S3), None);
    assert_eq!(eval3("null = null", S3), None);
    assert_eq!(eval3("null is null", S3), Some(true));
    // JSON null is NULL too.
    let rec = r#"{"eventName":null,"errorCode":"x"}"#;
    assert_eq!(eval3("event_name is null", rec), Some(true));
    assert_eq!(eval3("event_name = 'x'", rec), None);
    assert!(!keep(&["null"], S3), "a NULL filter keeps nothing");
}

#[test]
fn filter_is_true_false_unknown() {
    assert_eq!(eval3("(event_name = 'GetObject') is true", S3), Some(true));
    assert_eq!(eval3("(event_name = 'x') is true", S3), Some(false));
    assert_eq!(eval3("(event_name = 'x') is false", S3), Some(true));
    assert_eq!(eval3("(error_code = 'x') is unknown", KMS), Some(true));
    assert_eq!(eval3("(error_code = 'x') is not true", KMS), Some(true));
    assert_eq!(eval3("(error_code = 'x') is not false", KMS), Some(true));
    assert_eq!(eval3("(error_code = 'x') is not unknown", KMS), Some(false));
    assert_eq!(eval3("read_only is true", KMS), Some(true));
    assert_eq!(eval3("read_only is not false", S3), Some(true));
    assert_eq!(eval3("management_event is unknown", S3), Some(true));
}

#[test]
fn filter_in_and_not_in() {
    let list = "('Decrypt', 'GenerateDataKey', 'Encrypt')";
    assert_eq!(eval3(&format!("event_name in {list}"), KMS), Some(true));
    assert_eq!(eval3(&format!("event_name in {list}"), S3), Some(false));
    assert_eq!(eval3(&format!("event_name not in {list}"), S3), Some(true));
    assert_eq!(
        eval3(&format!("event_name not in {list}"), KMS),
        Some(false)
    );
    // NULL in the list or as the value.
    assert_eq!(eval3("event_name in ('Decrypt', null)", KMS), Some(true));
    assert_eq!(eval3("event_name in ('x', null)", KMS), None);
    assert_eq!(eval3("event_name not in ('x', null)", KMS), None);
    assert_eq!(eval3("error_code in ('x', 'y')", KMS), None);
    assert_eq!(eval3("error_code not in ('x', 'y')", KMS), None);
    // Items are any expressions of the same type.
    assert_eq!(
        eval3("'alice' in (user_identity.user_name, 'bob')", S3),
        Some(true)
    );
    assert_eq!(eval3("read_only in ('true')", S3), Some(true));
}

#[test]
fn filter_between() {
    assert_eq!(eval3("event_name between 'A' and 'H'", S3), Some(true));
    assert_eq!(eval3("event_name between 'H' and 'Z'", S3), Some(false));
    assert_eq!(eval3("event_name not between 'H' and 'Z'", S3), Some(true));
    assert_eq!(eval3("error_code between 'A' and 'Z'", KMS), None);
    assert_eq!(eval3("event_name between null and 'Z'", S3), None);
    assert_eq!(eval3("event_name between null and 'A'", S3), Some(false));
    assert_eq!(eval3("2 between 1 and 3", S3), Some(true));
}

#[test]
fn filter_like_ilike_and_escape() {
    let cases: &[(&str, Option<bool>)] = &[
        ("event_name like 'Get%'", Some(true)),
        ("event_name like 'get%'", Some(false)),
        ("event_name not like 'Get%'", Some(false)),
        ("event_name like '%Object'", Some(true)),
        ("event_name like '%tOb%'", Some(true)),
        ("event_name like 'Get_bject'", Some(true)),
        ("event_name like 'Get_'", Some(false)),
        ("event_name ilike 'get%'", Some(true)),
        ("event_name ilike 'GETOBJECT'", Some(true)),
        ("event_name not ilike '%object'", Some(false)),
        ("user_agent like 'aws-cli/%'", Some(true)),
        ("vpc_endpoint_id like '%'", None),
        ("event_name like null", None),
        ("event_name like 'Get%' escape null", None),
        // ESCAPE makes % and _ literal.
        ("'100%' like '100!%' escape '!'", Some(true)),
        ("'1000' like '100!%' escape '!'", Some(false)),
        ("'a_b' like 'a\\_b' escape '\\'", Some(true)),
        ("'axb' like 'a\\_b' escape '\\'", Some(false)),
        // Without ESCAPE a backslash is an ordinary character.
        ("'a\\%' like 'a\\%'", Some(true)),
        ("'a%' like 'a\\%'", Some(false)),
        ("'ab' like 'ab' escape ''", Some(true)),
        ("request_parameters ->> 'key' like 'a/%.txt'", Some(true)),
        (
            "request_parameters like '%\"bucketName\":\"logs\"%'",
            Some(true),
        ),
    ];
    for (expr, want) in cases {
        assert_eq!(eval3(expr, S3), *want, "{expr}");
    }
}

#[test]
fn filter_struct_fields() {
    assert_eq!(
        eval3(
            "user_identity.arn = 'arn:aws:iam::222233334444:user/alice'",
            S3
        ),
        Some(true)
    );
    assert_eq!(eval3("user_identity.type = 'IAMUser'", S3), Some(true));
    assert_eq!(
        eval3(
            "user_identity.session_context.session_issuer.user_name = 'app'",
            KMS
        ),
        Some(true)
    );
    assert_eq!(
        eval3(
            "user_identity.session_context.session_issuer.user_name = 'app'",
            S3
        ),
        None
    );
    // Case-insensitive names and a table qualifier, as in DuckDB.
    assert_eq!(eval3("USER_IDENTITY.Type = 'IAMUser'", S3), Some(true));
    assert_eq!(eval3("\"Event_Name\" = 'GetObject'", S3), Some(true));
    assert_eq!(
        eval3("aws_cloudtrail_log.event_name = 'GetObject'", S3),
        Some(true)
    );
    // A struct is NULL when missing or not an object, and so are its fields.
    assert_eq!(eval3("user_identity is not null", S3), Some(true));
    assert_eq!(
        eval3("user_identity.session_context is null", S3),
        Some(true)
    );
    assert_eq!(
        eval3("user_identity.session_context is null", KMS),
        Some(false)
    );
    assert_eq!(eval3("tls_details is null", S3), Some(true));
    let odd = r#"{"userIdentity":"root"}"#;
    assert_eq!(eval3("user_identity is null", odd), Some(true));
    assert_eq!(eval3("user_identity.type is null", odd), Some(true));
    // The archive does not fan out an array on the way.
    let arr = r#"{"userIdentity":[{"type":"Root"}]}"#;
    assert_eq!(eval3("user_identity.type = 'Root'", arr), None);
    assert_eq!(eval3("user_identity is null", arr), Some(true));
}

#[test]
fn filter_json_access() {
    let cases: &[(&str, Option<bool>)] = &[
        ("request_parameters ->> 'bucketName' = 'logs'", Some(true)),
        ("request_parameters ->> 'bucketName' = 'other'", Some(false)),
        // Keys are exact: no case folding inside JSON.
        ("request_parameters ->> 'BucketName' is null", Some(true)),
        ("request_parameters ->> 'missing' is null", Some(true)),
        ("request_parameters ->> 'n' is null", Some(true)),
        ("request_parameters -> 'n' = 'null'", Some(true)),
        ("request_parameters ->> 'count' = '5'", Some(true)),
        (
            "request_parameters -> 'bucketName' = '\"logs\"'",
            Some(true),
        ),
        ("request_parameters -> 'list' ->> 1 = 'two'", Some(true)),
        ("request_parameters -> 'list' ->> 0 = '1'", Some(true)),
        (
            "request_parameters -> 'list' ->> -1 = '{\"k\":\"v\"}'",
            Some(true),
        ),
        (
            "request_parameters -> 'list' -> 2 ->> 'k' = 'v'",
            Some(true),
        ),
        ("request_parameters -> 'list' ->> 7 is null", Some(true)),
        ("request_parameters -> 'list' ->> '0' is null", Some(true)),
        ("request_parameters ->> '$.list[2].k' = 'v'", Some(true)),
        ("request_parameters ->> '$.list[#-1].k' = 'v'", Some(true)),
        ("request_parameters ->> '$.\"a.b\"' = 'dotted'", Some(true)),
        ("request_parameters ->> 'a.b' = 'dotted'", Some(true)),
        ("request_parameters ->> '/list/2/k' = 'v'", Some(true)),
        ("request_parameters ->> 'Quoted' = 'q\"x'", Some(true)),
        ("request_parameters -> 'Quoted' = '\"q\\\"x\"'", Some(true)),
        ("(request_parameters -> 'list') ->> 1 = 'two'", Some(true)),
        (
            "resources -> 0 ->> 'ARN' = 'arn:aws:s3:::logs/a/b.txt'",
            Some(true),
        ),
        ("resources -> 1 ->> 'ARN' like '%:::logs'", Some(true)),
        // An array has no keys.
        ("resources ->> 'ARN' is null", Some(true)),
        ("request_parameters ->> null is null", Some(true)),
        (
            "starts_with(request_parameters ->> 'key', 'a/')",
            Some(true),
        ),
    ];
    for (expr, want) in cases {
        assert_eq!(eval3(expr, S3), *want, "{expr}");
    }
    assert_eq!(
        eval3("request_parameters ->> 'bucketName' = 'logs'", KMS),
        None
    );
    // The whole JSON column is its compact text.
    let rec = r#"{"requestParameters": {"a": [1, 2], "b": "x"}}"#;
    assert_eq!(
        eval3(r#"request_parameters = '{"a":[1,2],"b":"x"}'"#, rec),
        Some(true)
    );
    assert_eq!(
        eval3(r#"request_parameters ->> 'a' = '[1,2]'"#, rec),
        Some(true)
    );
    // A JSON column holding a string is that string as JSON text.
    let rec = r#"{"requestParameters":"plain"}"#;
    assert_eq!(eval3(r#"request_parameters = '"plain"'"#, rec), Some(true));
    assert_eq!(eval3("request_parameters ->> 'a' is null", rec), Some(true));
}

#[test]
fn filter_booleans_mirror_the_archive() {
    // JSON booleans and the strings "true"/"false" (any case) are BOOLEAN values.
    assert_eq!(eval3("read_only = true", KMS), Some(true));
    assert_eq!(eval3("read_only = true", S3), Some(true));
    assert_eq!(eval3("read_only", S3), Some(true));
    assert_eq!(eval3("not read_only", KMS), Some(false));
    assert_eq!(eval3("read_only = false", S3), Some(false));
    assert_eq!(eval3("read_only = 'true'", KMS), Some(true));
    assert_eq!(eval3("read_only = 'yes'", KMS), Some(true));
    assert_eq!(eval3("read_only = 1", KMS), Some(true));
    assert_eq!(eval3("read_only = 0", KMS), Some(false));
    assert_eq!(eval3("false < read_only", KMS), Some(true));
    assert_eq!(
        eval3("read_only = true", r#"{"readOnly":"TRUE"}"#),
        Some(true)
    );
    assert_eq!(
        eval3("read_only = false", r#"{"readOnly":"False"}"#),
        Some(true)
    );
    // A value that is no boolean is NULL in the archive (and kept in tp_misfits).
    assert_eq!(eval3("read_only = true", r#"{"readOnly":"yes"}"#), None);
    assert_eq!(eval3("read_only is null", r#"{"readOnly":1}"#), Some(true));
    assert_eq!(eval3("management_event", S3), None);
}

#[test]
fn filter_timestamps() {
    assert_eq!(eval3("event_time > '2023-07-10'", KMS), Some(true));
    assert_eq!(
        eval3("event_time = '2023-07-10T12:00:00Z'", KMS),
        Some(true)
    );
    assert_eq!(eval3("event_time = '2023-07-10 12:00:00'", KMS), Some(true));
    assert_eq!(eval3("event_time = '2023-07-10 12:00'", KMS), Some(true));
    assert_eq!(
        eval3("event_time < '2023-07-10T12:00:00.000001Z'", KMS),
        Some(true)
    );
    assert_eq!(
        eval3("event_time between '2024-01-31' and '2024-02-01'", S3),
        Some(true)
    );
    assert_eq!(
        eval3("event_time = '2024-01-31T08:30:00.123Z'", S3),
        Some(true)
    );
    assert_eq!(eval3("event_time >= '2024-02-01'", S3), Some(false));
    assert_eq!(
        eval3(
            "event_time > '2000-01-01'",
            r#"{"eventTime":"Jul 3, 2023"}"#
        ),
        None
    );
    assert_eq!(
        eval3("event_time is null", r#"{"eventName":"x"}"#),
        Some(true)
    );
    assert_eq!(
        compile::timestamp_literal("1970-01-01T00:00:01.5Z"),
        Some(1_500_000)
    );
    assert_eq!(
        compile::timestamp_literal("2000-02-29"),
        crate::archive::parse_time_micros("2000-02-29T00:00:00Z")
    );
    assert_eq!(compile::timestamp_literal("2001-02-29"), None);
    assert_eq!(compile::timestamp_literal("2001-13-01"), None);
    assert_eq!(compile::timestamp_literal("2001-01-01T25:00"), None);
}

#[test]
fn filter_string_functions() {
    let cases: &[(&str, Option<bool>)] = &[
        ("lower(event_name) = 'getobject'", Some(true)),
        ("upper(event_name) = 'GETOBJECT'", Some(true)),
        ("lower(event_name) = 'GetObject'", Some(false)),
        ("lower('ÉTÉ') = 'été'", Some(true)),
        ("LOWER(user_identity.user_name) = 'alice'", Some(true)),
        ("starts_with(event_name, 'Get')", Some(true)),
        ("starts_with(event_name, 'Put')", Some(false)),
        ("prefix(event_name, '')", Some(true)),
        ("ends_with(event_name, 'Object')", Some(true)),
        ("suffix(event_name, 'Objects')", Some(false)),
        ("contains(user_agent, 'Python/')", Some(true)),
        ("contains(user_agent, 'python/')", Some(false)),
        ("contains(lower(user_agent), 'python/')", Some(true)),
        ("event_name ^@ 'Get'", Some(true)),
        ("contains(error_code, 'x')", Some(true)),
        ("contains(vpc_endpoint_id, 'x')", None),
        ("lower(vpc_endpoint_id) is null", Some(true)),
        ("contains(null, 'x')", None),
    ];
    for (expr, want) in cases {
        let rec = if expr.contains("error_code") {
            r#"{"errorCode":"xyz"}"#
        } else {
            S3
        };
        assert_eq!(eval3(expr, rec), *want, "{expr}");
    }
}

#[test]
fn filter_varchar_columns_read_like_the_archive() {
    // A scalar that is no string is its JSON text.
    let rec = r#"{"eventVersion":1.5,"recipientAccountId":123456789012,"eventType":true}"#;
    assert_eq!(eval3("event_version = '1.5'", rec), Some(true));
    assert_eq!(
        eval3("recipient_account_id = '123456789012'", rec),
        Some(true)
    );
    assert_eq!(eval3("event_type = 'true'", rec), Some(true));
    // An array is not fanned out: the column holds its JSON text.
    let rec = r#"{"eventName":["GetObject"]}"#;
    assert_eq!(eval3("event_name = 'GetObject'", rec), Some(false));
    assert_eq!(eval3(r#"event_name = '["GetObject"]'"#, rec), Some(true));
    let rec = r#"{"eventName":[]}"#;
    assert_eq!(eval3("event_name = '[]'", rec), Some(true));
    let rec = r#"{"eventName":{"0":"x"}}"#;
    assert_eq!(eval3(r#"event_name = '{"0":"x"}'"#, rec), Some(true));
    // Keys: exact first, then ASCII case-insensitive, as the archive reads them.
    let rec = r#"{"EventName":"folded"}"#;
    assert_eq!(eval3("event_name = 'folded'", rec), Some(true));
    let rec = r#"{"eventname":"folded","eventName":"exact"}"#;
    assert_eq!(eval3("event_name = 'exact'", rec), Some(true));
    // A key that spells a dotted path is not a struct field.
    let rec = r#"{"userIdentity.arn":"x"}"#;
    assert_eq!(eval3("user_identity.arn is null", rec), Some(true));
}

#[test]
fn filter_paths_share_a_root_cache() {
    let exprs = vec![
        "event_name in ('GetObject', 'Decrypt')".to_string(),
        "user_identity.arn like 'arn:%' and request_parameters ->> 'bucketName' = 'logs'"
            .to_string(),
    ];
    let plain = RecordFilter::compile(&exprs).expect("compiles");
    let mut slotted = plain.clone();
    let mut keys: Vec<String> = Vec::new();
    slotted.paths_mut(&mut |p| {
        let key = p.first_key().expect("key").to_string();
        let slot = match keys.iter().position(|k| *k == key) {
            Some(i) => i,
            None => {
                keys.push(key);
                keys.len() - 1
            }
        };
        p.set_slot(slot as u8);
    });
    assert_eq!(keys, ["eventName", "userIdentity", "requestParameters"]);
    for rec in [KMS, S3, r#"{"eventName":["GetObject"]}"#] {
        let a = with_rec(rec, |c| plain.keep(c));
        let b = with_rec(rec, |c| {
            // Evaluate twice on one cache: the second run reads the slots.
            let first = slotted.keep(c);
            assert_eq!(first, slotted.keep(c));
            first
        });
        assert_eq!(a, b, "{rec}");
    }
    assert!(with_rec(S3, |c| slotted.keep(c)));
}

#[test]
fn filter_errors_name_the_expression_and_position() {
    let exprs = vec![
        "event_name = 'x'".to_string(),
        "event_name ~ 'x'".to_string(),
    ];
    let e = RecordFilter::compile(&exprs).expect_err("unsupported operator");
    assert_eq!(e.index, 2);
    assert_eq!(e.text, "event_name ~ 'x'");
    assert_eq!(
        e.to_string(),
        "filter 2 (event_name ~ 'x'): unsupported operator '~' at line 1 column 12"
    );
    assert_error(
        "(event_name) || 'x' = 'y'",
        &["unsupported operator '||' at line 1 column 14"],
    );
    assert_error(
        "event_name = 'x'\n  and aws_region + 1",
        &["'+' at line 2 column 18"],
    );
    assert_error(
        "event_name = 'x' extra",
        &["unexpected 'extra'", "line 1 column 18"],
    );
    assert_error("event_name = 'x';", &["unexpected ';'", "line 1 column 17"]);
    assert_error(
        "event_name = ",
        &["filter 1 (event_name = ):", "Expected: an expression"],
    );
    assert_error("", &["Expected: an expression"]);
    assert_error(
        "event_name = 'open",
        &["Unterminated string literal at line 1 column 14"],
    );
}

#[test]
fn filter_unknown_columns_list_the_nearest_names() {
    assert_error(
        "event_nme = 'x'",
        &[
            "unknown column 'event_nme' at line 1 column 1",
            "event_name",
        ],
    );
    // CloudTrail spellings are not columns; the error names the column.
    let e = error("eventName = 'x'");
    assert!(e.contains("unknown column 'eventName'"), "{e}");
    assert!(e.contains("nearest: event_name"), "{e}");
    let e = error("userIdentity.arn = 'x'");
    assert!(e.contains("nearest: user_identity.arn"), "{e}");
    assert_error(
        "user_identity.session_context.session_issuer.username = 'x'",
        &["user_identity.session_context.session_issuer.user_name"],
    );
    assert_error("tp_index = 'x'", &["tp_* columns", "line 1 column 1"]);
    assert_error(
        "event_name = 'x' and tp_date > '2024-01-01'",
        &["'tp_date'", "line 1 column 22"],
    );
    assert_error(
        "request_parameters.bucketName = 'x'",
        &["not a struct", "request_parameters ->> 'bucketName'"],
    );
    assert_error(
        "event_name.x = 'y'",
        &["column 'event_name' has no field 'x'"],
    );
}

#[test]
fn filter_unsupported_syntax_is_an_error() {
    let cases: &[(&str, &str)] = &[
        (
            "regexp_matches(event_name, 'x')",
            "unsupported function 'regexp_matches' at line 1 column 1",
        ),
        ("length(event_name) > 3", "unsupported function 'length'"),
        ("event_name in (select 1)", "subqueries"),
        ("exists (select 1)", "subqueries are not supported"),
        ("event_name::varchar = 'x'", "casts are not supported"),
        ("case when true then true end", "CASE is not supported"),
        (
            "event_name similar to 'x'",
            "unsupported operator 'SIMILAR TO' at line 1 column 12",
        ),
        ("user_identity['arn'] = 'x'", "subscripts are not supported"),
        (
            "event_name = 1",
            "cannot compare a number with VARCHAR at line 1 column 14; quote the number",
        ),
        (
            "event_name in ('a', 2)",
            "cannot compare a number with VARCHAR at line 1 column 21",
        ),
        ("event_time > 5", "cannot compare a number with TIMESTAMP"),
        (
            "event_time > 'yesterday'",
            "'yesterday' at line 1 column 14 is not a TIMESTAMP",
        ),
        (
            "read_only = 'maybe'",
            "'maybe' at line 1 column 13 is not BOOLEAN",
        ),
        (
            "user_identity = 'x'",
            "user_identity is a STRUCT at line 1 column 1; compare one of its fields",
        ),
        ("user_identity = user_identity", "user_identity is a STRUCT"),
        (
            "'x' in (tls_details)",
            "tls_details is a STRUCT at line 1 column 9",
        ),
        (
            "event_name",
            "expected a condition, found VARCHAR 'event_name' at line 1 column 1",
        ),
        ("not event_name", "expected a condition, found VARCHAR"),
        (
            "event_name = 'a' and 'b'",
            "expected a condition, found VARCHAR ''b'' at line 1 column 22",
        ),
        (
            "read_only like 't%'",
            "LIKE applies to text, not to BOOLEAN",
        ),
        (
            "event_name like event_source",
            "pattern must be a string literal at line 1 column 17",
        ),
        (
            "event_name like 'a' escape 'xy'",
            "ESCAPE must be empty or one character",
        ),
        (
            "event_name like 'a!' escape '!'",
            "ends with its escape character at line 1 column 17",
        ),
        (
            "event_name ->> 'x' = 'y'",
            "'->>' at line 1 column 12 applies to JSON columns",
        ),
        (
            "request_parameters ->> 'a' ->> 'b' = 'c'",
            "use -> for every step but the last",
        ),
        (
            "request_parameters ->> event_name = 'c'",
            "must be a string key",
        ),
        (
            "request_parameters ->> 1.5 = 'c'",
            "JSON index 1.5 is not an integer",
        ),
        (
            "request_parameters ->> '$.a[*]' = 'c'",
            "JSON path '$.a[*]' is not supported",
        ),
        (
            "lower(event_name, 'x') = 'y'",
            "lower() takes 1 argument, not 2",
        ),
        (
            "contains(event_name) ",
            "contains() takes 2 arguments, not 1",
        ),
        (
            "lower(read_only) = 'true'",
            "lower() takes text, not BOOLEAN",
        ),
        (
            "starts_with(event_time, '2024')",
            "starts_with() takes text, not TIMESTAMP",
        ),
        ("count(*) > 1", "unsupported function 'count'"),
        (
            "lower(distinct event_name) = 'x'",
            "takes plain arguments only",
        ),
        (
            "- event_name = 'x'",
            "unsupported operator '-' at line 1 column 1",
        ),
        ("event_name = 1e999", "number 1e999 is out of range"),
        ("event_name = X'00'", "unsupported literal"),
        ("event_name like any ('a')", "LIKE ANY is not supported"),
    ];
    for (expr, want) in cases {
        let e = error(expr);
        assert!(e.contains(want), "{expr}: {e:?} lacks {want:?}");
        assert!(e.starts_with(&format!("filter 1 ({expr}): ")), "{e}");
    }
}

#[test]
fn filter_size_limits() {
    // A long AND chain compiles into one flat node.
    let terms = vec!["event_name = 'x'"; 240].join(" and ");
    assert!(RecordFilter::compile(&[terms]).is_ok());
    let or = vec!["event_name = 'GetObject'"; 200].join(" or ");
    assert!(keep(&[&or], S3));
    // Past the token limit, and deep nesting, are errors, not a stack overflow.
    let long = vec!["event_name = 'x'"; 20_000].join(" and ");
    assert!(error(&long).contains("more than the 1024 a filter may have"));
    let deep = |n: usize| format!("{}event_name = 'x'{}", "(".repeat(n), ")".repeat(n));
    assert!(error(&deep(5000)).contains("more than the 1024"));
    assert!(
        error(&deep(60)).contains("nested too deeply"),
        "{}",
        error(&deep(60))
    );
    assert!(RecordFilter::compile(&[deep(30)]).is_ok());
    for n in [150, 5000] {
        let nots = format!("{}read_only", "not ".repeat(n));
        assert!(RecordFilter::compile(&[nots]).is_err(), "{n} NOTs");
    }
    assert!(RecordFilter::compile(&[format!("{}read_only", "not ".repeat(40))]).is_ok());
    let chain = vec!["'x'"; 400].join(" = ");
    assert!(
        error(&chain).contains("nested more than"),
        "{}",
        error(&chain)
    );
}

#[test]
fn filter_never_panics_on_odd_input() {
    let seeds = [
        "not (event_source = 'kms.amazonaws.com' and event_name = 'Decrypt')",
        "request_parameters -> 'list' ->> -1 like '%k%' escape '\\'",
        "user_identity.session_context.session_issuer.user_name in ('a', null)",
        "event_time between '2024-01-01' and '2024-12-31T23:59:59Z' or read_only is not true",
        "lower(user_agent) ilike '%cli%' and contains(error_code, 'Denied')",
    ];
    let alphabet: Vec<char> =
        "abc_ ()'\",.;:%-><=!~*/\\$#[]{}0123456789éNTRUEnotandorinlike->>\n\t\u{0}"
            .chars()
            .collect();
    let records = [
        KMS,
        S3,
        r#"{}"#,
        r#"{"userIdentity":[],"requestParameters":[1,{"a":null}],"readOnly":{}}"#,
    ];
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut compiled = 0;
    for i in 0..3000 {
        let mut text: Vec<char> = seeds[i % seeds.len()].chars().collect();
        for _ in 0..(1 + next() % 4) {
            let pos = (next() as usize) % (text.len() + 1);
            match next() % 3 {
                0 if pos < text.len() => {
                    text.remove(pos);
                }
                1 if pos < text.len() => {
                    text[pos] = alphabet[(next() as usize) % alphabet.len()];
                }
                _ => text.insert(pos, alphabet[(next() as usize) % alphabet.len()]),
            }
        }
        let text: String = text.into_iter().collect();
        if let Ok(f) = RecordFilter::compile(std::slice::from_ref(&text)) {
            compiled += 1;
            for rec in records {
                with_rec(rec, |c| f.keep(c));
            }
        }
    }
    assert!(compiled > 100, "only {compiled} mutants compiled");
}

#[test]
fn filter_identifiers_starting_with_multibyte_characters_are_unknown_columns() {
    // Found by the `sql_filter` fuzz target: a name whose third byte falls inside a
    // character was sliced there.
    for name in ["ؒؒ", "tpé_x", "日本語"] {
        assert_error(&format!("{name} = 'x'"), &["filter 1", "unknown column"]);
    }
    // Not an identifier at all: a syntax error naming where.
    assert_error("t€ = 'x'", &["filter 1", "line 1 column 2"]);
}
