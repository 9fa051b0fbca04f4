//! The body of one SQS message that announces new CloudTrail log objects in S3.
//!
//! [`parse`] turns the body into a [`Notification`]: the objects to read, or a reason
//! there is nothing to read, or a [`NotificationError`] that says precisely what is
//! wrong with it.
//!
//! ## Shapes
//!
//! A queue can be fed in five ways, and each sends a different JSON body:
//!
//! | Shape | Recognised by | Keys |
//! |---|---|---|
//! | S3 event notification (bucket → SQS) | top-level `Records` | URL-encoded |
//! | `s3:TestEvent`, sent once when the bucket notification is configured | `"Event": "s3:TestEvent"` | — |
//! | SNS envelope (bucket or CloudTrail → SNS → SQS, raw delivery off) | top-level `Type` | those of the inner shape |
//! | EventBridge S3 event (bucket → EventBridge → SQS) | `detail-type` and `source` | as is |
//! | CloudTrail's own delivery notification (CloudTrail → SNS → SQS) | `s3Bucket` / `s3ObjectKey` | as is |
//!
//! The SNS envelope carries another shape as a JSON *string* in its `Message`; that
//! string is parsed in turn, at most [`MAX_SNS_DEPTH`] envelopes deep. An error inside
//! it is wrapped in [`NotificationError::InSnsMessage`], so its path and line:column
//! refer to the inner document.
//!
//! ## Why only one shape decodes its keys
//!
//! S3 event notifications write `s3.object.key` the way an HTML form encodes a value:
//! a space is `+` and other reserved bytes are `%XX` escapes, so a log file named
//! `file name:1.json.gz` arrives as `file+name%3A1.json.gz`. The key is decoded by
//! replacing `+` with a space *first* and then percent-decoding, so that an escaped
//! plus (`%2B`) survives as `+`; bytes that do not decode to UTF-8 are an error, as
//! S3 keys are UTF-8. EventBridge events and CloudTrail's notification carry the key
//! exactly as stored: decoding them would corrupt any key with a `+` or a `%` in it.
//!
//! ## Ignored, Test, or an error
//!
//! * [`Notification::Objects`]: read every object, then delete the message.
//! * [`Notification::Test`] and [`Notification::Ignored`]: the message is well formed
//!   and recognised, but names nothing to read (the test event; an SNS subscription
//!   confirmation; an S3 event whose records are all `ObjectRemoved:*` or come from
//!   another `eventSource`; an EventBridge event that is not `Object Created` or not
//!   from `aws.s3`; an empty key list). The caller deletes it without reading, and
//!   logs the reason at debug level.
//! * [`NotificationError`]: the body is not JSON, not an object, of no known shape,
//!   or lacks (or mistypes) a field that its shape requires. The caller should
//!   dead-letter the message rather than delete it: it may be a misconfigured queue
//!   (a CloudTrail log file itself sent as the message, which also has a top-level
//!   `Records`, is recognised and reported as such) or a format this module does not
//!   know yet. One bad record makes the whole message an error, so that no object it
//!   names is silently skipped.

use percent_encoding::percent_decode_str;
use serde_json::{Map, Value};

/// How many SNS envelopes may be nested in one another before the body is rejected.
pub const MAX_SNS_DEPTH: usize = 3;

/// One S3 object named by a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// The bucket name.
    pub bucket: String,
    /// The object key, decoded (never empty).
    pub key: String,
    /// The object size in bytes, when the notification gives it.
    pub size: Option<u64>,
}

/// What a message body announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// New objects to read (one message may name several).
    Objects(Vec<ObjectRef>),
    /// `s3:TestEvent`, sent when a bucket notification is configured: nothing to read.
    Test,
    /// A well-formed message that names nothing to read (e.g. an ObjectRemoved event,
    /// an SNS SubscriptionConfirmation): the reason, for a debug log line.
    Ignored(String),
}

/// Why a message body cannot be understood; the message should be dead-lettered.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum NotificationError {
    /// The body is not valid JSON.
    #[error("not JSON: {message} at line {line}, column {column}")]
    NotJson {
        /// The 1-based line of the error.
        line: usize,
        /// The 1-based column of the error (0 for an empty body).
        column: usize,
        /// The parser's message, without its position.
        message: String,
    },
    /// The body is JSON, but not an object.
    #[error("expected a JSON object, found {found}")]
    NotAnObject {
        /// What was found instead (`an array`, `a string`, …).
        found: &'static str,
    },
    /// An object of no known shape.
    #[error("unknown notification shape: {0}")]
    UnknownShape(String),
    /// A field the shape requires is absent.
    #[error("missing field `{0}`")]
    MissingField(String),
    /// A field has the wrong JSON type.
    #[error("field `{path}` should be {expected}, found {found}")]
    WrongType {
        /// The JSON path of the field.
        path: String,
        /// What the shape requires.
        expected: &'static str,
        /// What was found.
        found: &'static str,
    },
    /// A bucket name or object key is the empty string.
    #[error("field `{0}` is an empty string")]
    Empty(String),
    /// A URL-encoded key whose decoded bytes are not UTF-8.
    #[error("field `{path}`: key {key:?} does not URL-decode to UTF-8")]
    BadKeyEncoding {
        /// The JSON path of the key.
        path: String,
        /// The key as written.
        key: String,
    },
    /// SNS envelopes nested deeper than [`MAX_SNS_DEPTH`].
    #[error("SNS envelopes nested more than {MAX_SNS_DEPTH} deep")]
    TooDeep,
    /// An error in the JSON string held by an SNS envelope's `Message`.
    #[error("in the SNS `Message` string: {0}")]
    InSnsMessage(Box<NotificationError>),
}

type Result<T> = std::result::Result<T, NotificationError>;

/// Parses the body of one SQS message.
///
/// ```
/// use trailhound::source::notification::{parse, Notification, ObjectRef};
///
/// let body = r#"{"s3Bucket":"trail","s3ObjectKey":["AWSLogs/123456789012/x.json.gz"]}"#;
/// assert_eq!(
///     parse(body),
///     Ok(Notification::Objects(vec![ObjectRef {
///         bucket: "trail".into(),
///         key: "AWSLogs/123456789012/x.json.gz".into(),
///         size: None,
///     }]))
/// );
/// ```
pub fn parse(body: &str) -> Result<Notification> {
    parse_at(body, 0)
}

/// Parses `body`, which sits inside `depth` SNS envelopes.
fn parse_at(body: &str, depth: usize) -> Result<Notification> {
    let value: Value = serde_json::from_str(body).map_err(not_json)?;
    let Value::Object(top) = &value else {
        return Err(NotificationError::NotAnObject {
            found: kind(&value),
        });
    };
    if top.contains_key("Records") {
        s3_event(top)
    } else if top.contains_key("Type") {
        sns(top, depth)
    } else if top.contains_key("Event") {
        test_event(top)
    } else if top.contains_key("detail-type") && top.contains_key("source") {
        eventbridge(top)
    } else if top.contains_key("s3Bucket") || top.contains_key("s3ObjectKey") {
        cloudtrail(top)
    } else {
        Err(NotificationError::UnknownShape(describe_keys(top)))
    }
}

/// A direct S3 event notification: `{"Records":[{"eventSource":"aws:s3",…}]}`.
fn s3_event(top: &Map<String, Value>) -> Result<Notification> {
    let records = require(top, "", "Records")?;
    let Value::Array(records) = records else {
        return Err(wrong_type("Records".into(), "an array", records));
    };
    if records.is_empty() {
        return Ok(Notification::Ignored("an S3 event with no records".into()));
    }
    let mut objects = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let at = format!("Records[{i}]");
        let Value::Object(record) = record else {
            return Err(wrong_type(at, "an object", record));
        };
        if is_cloudtrail_record(record) {
            return Err(NotificationError::UnknownShape(format!(
                "a CloudTrail log file, not an S3 notification ({at} is a CloudTrail \
                 record: eventVersion {}, no `s3`)",
                record
                    .get("eventVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("?"),
            )));
        }
        let source = require_str(record, &at, "eventSource")?;
        if source != "aws:s3" {
            note(&mut skipped, format!("eventSource {source}"));
            continue;
        }
        let name = require_str(record, &at, "eventName")?;
        if !name.starts_with("ObjectCreated:") {
            note(&mut skipped, name.to_owned());
            continue;
        }
        let s3_at = join(&at, "s3");
        let s3 = require_object(record, &at, "s3")?;
        let bucket_at = join(&s3_at, "bucket");
        let bucket = require_object(s3, &s3_at, "bucket")?;
        let bucket = require_nonempty(bucket, &bucket_at, "name")?;
        let object_at = join(&s3_at, "object");
        let object = require_object(s3, &s3_at, "object")?;
        let raw_key = require_nonempty(object, &object_at, "key")?;
        let key = url_decode(raw_key, &join(&object_at, "key"))?;
        let size = optional_size(object, &object_at, "size")?;
        objects.push(ObjectRef {
            bucket: bucket.to_owned(),
            key,
            size,
        });
    }
    if objects.is_empty() {
        Ok(Notification::Ignored(format!(
            "an S3 event with no ObjectCreated record ({})",
            skipped.join(", ")
        )))
    } else {
        Ok(Notification::Objects(objects))
    }
}

/// Whether a `Records` entry is a CloudTrail record rather than an S3 event record:
/// it has no `s3` object and an `eventVersion` 1.x or an `eventSource` that is a
/// service endpoint (`s3.amazonaws.com`) rather than `aws:s3`.
fn is_cloudtrail_record(record: &Map<String, Value>) -> bool {
    if record.contains_key("s3") {
        return false;
    }
    let version = record.get("eventVersion").and_then(Value::as_str);
    let source = record.get("eventSource").and_then(Value::as_str);
    version.is_some_and(|v| v.starts_with("1."))
        || source.is_some_and(|s| s.ends_with(".amazonaws.com"))
}

/// Adds `reason` to the list of skipped-record reasons, once.
fn note(skipped: &mut Vec<String>, reason: String) {
    if !skipped.contains(&reason) {
        skipped.push(reason);
    }
}

/// An SNS envelope: `{"Type":"Notification","Message":"<JSON>",…}`.
fn sns(top: &Map<String, Value>, depth: usize) -> Result<Notification> {
    match require_str(top, "", "Type")? {
        "Notification" => {
            let message = require_str(top, "", "Message")?;
            if depth >= MAX_SNS_DEPTH {
                return Err(NotificationError::TooDeep);
            }
            parse_at(message, depth + 1).map_err(|e| match e {
                NotificationError::TooDeep => e,
                _ => NotificationError::InSnsMessage(Box::new(e)),
            })
        }
        kind @ ("SubscriptionConfirmation" | "UnsubscribeConfirmation") => {
            let topic = top.get("TopicArn").and_then(Value::as_str).unwrap_or("?");
            Ok(Notification::Ignored(format!("SNS {kind} for {topic}")))
        }
        other => Err(NotificationError::UnknownShape(format!(
            "an SNS message of Type {other:?}"
        ))),
    }
}

/// `{"Service":"Amazon S3","Event":"s3:TestEvent",…}`.
fn test_event(top: &Map<String, Value>) -> Result<Notification> {
    match require_str(top, "", "Event")? {
        "s3:TestEvent" => Ok(Notification::Test),
        other => Err(NotificationError::UnknownShape(format!(
            "an `Event` of {other:?}, not s3:TestEvent"
        ))),
    }
}

/// An EventBridge event: `{"detail-type":"Object Created","source":"aws.s3",…}`.
fn eventbridge(top: &Map<String, Value>) -> Result<Notification> {
    let source = require_str(top, "", "source")?;
    let detail_type = require_str(top, "", "detail-type")?;
    if source != "aws.s3" {
        return Ok(Notification::Ignored(format!(
            "an EventBridge {detail_type:?} event from {source}"
        )));
    }
    if detail_type != "Object Created" {
        return Ok(Notification::Ignored(format!(
            "an EventBridge S3 {detail_type:?} event"
        )));
    }
    let detail = require_object(top, "", "detail")?;
    let bucket = require_object(detail, "detail", "bucket")?;
    let bucket = require_nonempty(bucket, "detail.bucket", "name")?;
    let object = require_object(detail, "detail", "object")?;
    let key = require_nonempty(object, "detail.object", "key")?;
    let size = optional_size(object, "detail.object", "size")?;
    Ok(Notification::Objects(vec![ObjectRef {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        size,
    }]))
}

/// CloudTrail's delivery notification: `{"s3Bucket":"b","s3ObjectKey":["k",…]}`.
fn cloudtrail(top: &Map<String, Value>) -> Result<Notification> {
    let bucket = require_nonempty(top, "", "s3Bucket")?;
    let object_ref = |key: &str| ObjectRef {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        size: None,
    };
    let keys = require(top, "", "s3ObjectKey")?;
    let objects = match keys {
        Value::String(key) if key.is_empty() => {
            return Err(NotificationError::Empty("s3ObjectKey".into()));
        }
        Value::String(key) => vec![object_ref(key)],
        Value::Array(keys) => {
            let mut objects = Vec::with_capacity(keys.len());
            for (i, key) in keys.iter().enumerate() {
                let at = format!("s3ObjectKey[{i}]");
                match key {
                    Value::String(key) if key.is_empty() => {
                        return Err(NotificationError::Empty(at));
                    }
                    Value::String(key) => objects.push(object_ref(key)),
                    other => return Err(wrong_type(at, "a string", other)),
                }
            }
            objects
        }
        other => {
            return Err(wrong_type(
                "s3ObjectKey".into(),
                "a string or an array of strings",
                other,
            ));
        }
    };
    if objects.is_empty() {
        Ok(Notification::Ignored(format!(
            "a CloudTrail notification for {bucket} with no s3ObjectKey"
        )))
    } else {
        Ok(Notification::Objects(objects))
    }
}

/// Decodes a key written the way HTML forms encode values: `+` is a space, then `%XX`.
fn url_decode(raw: &str, path: &str) -> Result<String> {
    let spaced = raw.replace('+', " ");
    match percent_decode_str(&spaced).decode_utf8() {
        Ok(key) => Ok(key.into_owned()),
        Err(_) => Err(NotificationError::BadKeyEncoding {
            path: path.to_owned(),
            key: raw.to_owned(),
        }),
    }
}

/// `prefix.key`, or `key` at the top level.
fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// The field `key` of the object at `prefix`.
fn require<'a>(obj: &'a Map<String, Value>, prefix: &str, key: &str) -> Result<&'a Value> {
    obj.get(key)
        .ok_or_else(|| NotificationError::MissingField(join(prefix, key)))
}

/// The object field `key` of the object at `prefix`.
fn require_object<'a>(
    obj: &'a Map<String, Value>,
    prefix: &str,
    key: &str,
) -> Result<&'a Map<String, Value>> {
    match require(obj, prefix, key)? {
        Value::Object(inner) => Ok(inner),
        other => Err(wrong_type(join(prefix, key), "an object", other)),
    }
}

/// The string field `key` of the object at `prefix`.
fn require_str<'a>(obj: &'a Map<String, Value>, prefix: &str, key: &str) -> Result<&'a str> {
    match require(obj, prefix, key)? {
        Value::String(s) => Ok(s),
        other => Err(wrong_type(join(prefix, key), "a string", other)),
    }
}

/// The non-empty string field `key` of the object at `prefix`.
fn require_nonempty<'a>(obj: &'a Map<String, Value>, prefix: &str, key: &str) -> Result<&'a str> {
    let s = require_str(obj, prefix, key)?;
    if s.is_empty() {
        return Err(NotificationError::Empty(join(prefix, key)));
    }
    Ok(s)
}

/// The optional size field `key` of the object at `prefix`: absent or null is `None`.
fn optional_size(obj: &Map<String, Value>, prefix: &str, key: &str) -> Result<Option<u64>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => match value.as_u64() {
            Some(size) => Ok(Some(size)),
            None => Err(wrong_type(
                join(prefix, key),
                "a non-negative integer",
                value,
            )),
        },
    }
}

fn wrong_type(path: String, expected: &'static str, found: &Value) -> NotificationError {
    NotificationError::WrongType {
        path,
        expected,
        found: kind(found),
    }
}

/// The JSON type of `value`, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_u64() => "a number",
        Value::Number(n) if n.is_i64() => "a negative number",
        Value::Number(_) => "a fractional number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Names the top-level keys of an unknown object (at most 8 of them).
fn describe_keys(top: &Map<String, Value>) -> String {
    const SHOWN: usize = 8;
    if top.is_empty() {
        return "an empty object".into();
    }
    let mut keys: Vec<String> = top.keys().take(SHOWN).map(|k| format!("{k:?}")).collect();
    if top.len() > SHOWN {
        keys.push(format!("… ({} keys in all)", top.len()));
    }
    format!("an object with keys {}", keys.join(", "))
}

/// Converts serde_json's error, moving its position out of the message.
fn not_json(e: serde_json::Error) -> NotificationError {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
    NotificationError::NotJson {
        line: e.line(),
        column: e.column(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The S3 event notification as the documentation shows it, for one key.
    fn s3_record(event_name: &str, key: &str) -> String {
        format!(
            r#"{{
         "eventVersion":"2.1",
         "eventSource":"aws:s3",
         "awsRegion":"us-east-1",
         "eventTime":"2024-12-01T00:05:12.345Z",
         "eventName":"{event_name}",
         "userIdentity":{{
            "principalId":"AWS:AROAEXAMPLEID:regionalDeliverySession"
         }},
         "requestParameters":{{
            "sourceIPAddress":"10.0.12.34"
         }},
         "responseElements":{{
            "x-amz-request-id":"C3D13FE58DE4C810",
            "x-amz-id-2":"FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"
         }},
         "s3":{{
            "s3SchemaVersion":"1.0",
            "configurationId":"trailhound-new-logs",
            "bucket":{{
               "name":"org-trail-logs",
               "ownerIdentity":{{
                  "principalId":"A3NL1KOZZKExample"
               }},
               "arn":"arn:aws:s3:::org-trail-logs"
            }},
            "object":{{
               "key":"{key}",
               "size":1024,
               "eTag":"d41d8cd98f00b204e9800998ecf8427e",
               "sequencer":"0055AED6DCD90281E5"
            }}
         }}
      }}"#
        )
    }

    fn s3_event(records: &[String]) -> String {
        format!(
            "{{\n   \"Records\":[\n      {}\n   ]\n}}",
            records.join(",\n      ")
        )
    }

    /// An SNS envelope, as SQS receives it with raw message delivery off.
    fn sns(message: &str) -> String {
        let message = serde_json::to_string(message).unwrap();
        format!(
            r#"{{
  "Type" : "Notification",
  "MessageId" : "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
  "TopicArn" : "arn:aws:sns:us-east-1:123456789012:trail-logs",
  "Subject" : "Amazon S3 Notification",
  "Message" : {message},
  "Timestamp" : "2024-12-01T00:05:13.002Z",
  "SignatureVersion" : "1",
  "Signature" : "EXAMPLEw6JRNwm1LFQL4ICB0bnXrdB8ClRMTQFGBqwLpGbM78tJ4etTwC5zU7O3tS6tGpey3ejedNdOJ+1fkIp9F2/LmNVKb5aFlYq+9rk9ZiPph5YlLmWsDcyC5T+Sy9/umic5S0UQc2PEtgdpVBahwNOdMW4JPwk0kAJJztnc=",
  "SigningCertURL" : "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem",
  "UnsubscribeURL" : "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-east-1:123456789012:trail-logs:c9135db0-26c4-47ec-8998-413945fb5a96"
}}"#
        )
    }

    const KEY: &str = "AWSLogs/123456789012/CloudTrail/us-east-1/2024/12/01/\
                       123456789012_CloudTrail_us-east-1_20241201T0005Z_EXAMPLE.json.gz";

    const TEST_EVENT: &str = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2024-12-01T00:00:02.089Z","Bucket":"org-trail-logs","RequestId":"5582815E1AEA5ADF","HostId":"8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"}"#;

    const CLOUDTRAIL_MESSAGE: &str = r#"{"s3Bucket":"org-trail-logs","s3ObjectKey":["AWSLogs/123456789012/CloudTrail/us-east-1/2024/12/01/123456789012_CloudTrail_us-east-1_20241201T0005Z_EXAMPLE.json.gz"]}"#;

    const EVENTBRIDGE_CREATED: &str = r#"{
  "version": "0",
  "id": "17793124-05d4-b198-2fde-7ededc63b103",
  "detail-type": "Object Created",
  "source": "aws.s3",
  "account": "123456789012",
  "time": "2024-12-01T00:05:12Z",
  "region": "us-east-1",
  "resources": [
    "arn:aws:s3:::org-trail-logs"
  ],
  "detail": {
    "version": "0",
    "bucket": {
      "name": "org-trail-logs"
    },
    "object": {
      "key": "AWSLogs/123456789012/CloudTrail/us-east-1/2024/12/01/a+b%20c.json.gz",
      "size": 5321,
      "etag": "b1946ac92492d2347c6235b4d2611184",
      "sequencer": "617f08299329d189"
    },
    "request-id": "N4N7GDK58NMKJ12R",
    "requester": "cloudtrail.amazonaws.com",
    "source-ip-address": "cloudtrail.amazonaws.com",
    "reason": "PutObject"
  }
}"#;

    fn one(bucket: &str, key: &str, size: Option<u64>) -> Notification {
        Notification::Objects(vec![ObjectRef {
            bucket: bucket.into(),
            key: key.into(),
            size,
        }])
    }

    fn missing(path: &str) -> NotificationError {
        NotificationError::MissingField(path.into())
    }

    fn ignored(body: &str) -> String {
        match parse(body) {
            Ok(Notification::Ignored(reason)) => reason,
            other => panic!("expected Ignored, got {other:?}"),
        }
    }

    fn error(body: &str) -> (NotificationError, String) {
        match parse(body) {
            Err(e) => {
                let text = e.to_string();
                (e, text)
            }
            Ok(other) => panic!("expected an error, got {other:?}"),
        }
    }

    // ---- S3 event notifications ----

    #[test]
    fn s3_event_put() {
        let body = s3_event(&[s3_record("ObjectCreated:Put", KEY)]);
        assert_eq!(parse(&body), Ok(one("org-trail-logs", KEY, Some(1024))));
    }

    #[test]
    fn s3_event_key_is_url_decoded() {
        let raw = "AWSLogs/123456789012/CloudTrail/us-east-1/2024/12/01/file+name%3A1.json.gz";
        let body = s3_event(&[s3_record("ObjectCreated:Put", raw)]);
        assert_eq!(
            parse(&body),
            Ok(one(
                "org-trail-logs",
                "AWSLogs/123456789012/CloudTrail/us-east-1/2024/12/01/file name:1.json.gz",
                Some(1024)
            ))
        );
    }

    #[test]
    fn s3_event_escaped_plus_and_utf8_survive_decoding() {
        let body = s3_event(&[s3_record(
            "ObjectCreated:Put",
            "logs/a%2Bb/caf%C3%A9.json.gz",
        )]);
        assert_eq!(
            parse(&body),
            Ok(one("org-trail-logs", "logs/a+b/café.json.gz", Some(1024)))
        );
    }

    #[test]
    fn s3_event_several_records() {
        let body = s3_event(&[
            s3_record("ObjectCreated:Put", "AWSLogs/1.json.gz"),
            s3_record("ObjectCreated:CompleteMultipartUpload", "AWSLogs/2.json.gz"),
            s3_record("ObjectCreated:Copy", "AWSLogs/3.json.gz"),
        ]);
        let Ok(Notification::Objects(objects)) = parse(&body) else {
            panic!("expected objects");
        };
        let keys: Vec<&str> = objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "AWSLogs/1.json.gz",
                "AWSLogs/2.json.gz",
                "AWSLogs/3.json.gz"
            ]
        );
        assert!(objects.iter().all(|o| o.bucket == "org-trail-logs"));
    }

    #[test]
    fn s3_event_removed_is_ignored() {
        let body = s3_event(&[s3_record("ObjectRemoved:Delete", KEY)]);
        let reason = ignored(&body);
        assert!(reason.contains("ObjectRemoved:Delete"), "{reason}");
    }

    #[test]
    fn s3_event_removed_records_are_skipped_among_created() {
        let body = s3_event(&[
            s3_record("ObjectRemoved:DeleteMarkerCreated", "AWSLogs/old.json.gz"),
            s3_record("ObjectCreated:Put", "AWSLogs/new.json.gz"),
            s3_record("ObjectRestore:Completed", "AWSLogs/cold.json.gz"),
        ]);
        assert_eq!(
            parse(&body),
            Ok(one("org-trail-logs", "AWSLogs/new.json.gz", Some(1024)))
        );
    }

    #[test]
    fn s3_event_other_event_source_is_skipped() {
        let foreign = s3_record("ObjectCreated:Put", KEY).replace("aws:s3", "aws:s3-outposts");
        let reason = ignored(&s3_event(&[foreign]));
        assert!(reason.contains("eventSource aws:s3-outposts"), "{reason}");
    }

    #[test]
    fn s3_event_skipped_records_are_not_validated() {
        // A removal record without an `s3` key is skipped, not an error.
        let body = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","eventName":"ObjectRemoved:Delete"}]}"#;
        assert!(ignored(body).contains("ObjectRemoved:Delete"));
    }

    #[test]
    fn s3_event_without_size() {
        let body = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k"}}}]}"#;
        assert_eq!(parse(body), Ok(one("b", "k", None)));
    }

    #[test]
    fn s3_event_with_no_records_is_ignored() {
        assert!(ignored(r#"{"Records":[]}"#).contains("no records"));
    }

    #[test]
    fn cloudtrail_log_file_is_an_error() {
        let body = r#"{"Records":[{"eventVersion":"1.08","userIdentity":{"type":"AssumedRole","principalId":"AROAEXAMPLE:session","arn":"arn:aws:sts::123456789012:assumed-role/Admin/session","accountId":"123456789012"},"eventTime":"2024-12-01T00:01:02Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"us-east-1","sourceIPAddress":"10.0.0.1","userAgent":"aws-cli/2.15.0","requestParameters":{"bucketName":"b","key":"k"},"responseElements":null,"eventID":"e1","readOnly":true,"eventType":"AwsApiCall","recipientAccountId":"123456789012"}]}"#;
        let (e, text) = error(body);
        assert!(matches!(e, NotificationError::UnknownShape(_)), "{e:?}");
        assert!(text.contains("a CloudTrail log file, not an S3 notification"));
        assert!(text.contains("Records[0]"), "{text}");
        assert!(text.contains("1.08"), "{text}");
    }

    // ---- s3:TestEvent ----

    #[test]
    fn test_event_direct() {
        assert_eq!(parse(TEST_EVENT), Ok(Notification::Test));
    }

    #[test]
    fn test_event_in_sns() {
        assert_eq!(parse(&sns(TEST_EVENT)), Ok(Notification::Test));
    }

    #[test]
    fn other_event_is_unknown() {
        let (e, text) = error(&TEST_EVENT.replace("s3:TestEvent", "s3:Other"));
        assert!(matches!(e, NotificationError::UnknownShape(_)));
        assert!(text.contains("s3:Other"), "{text}");
    }

    // ---- SNS ----

    #[test]
    fn sns_wrapped_s3_event() {
        let inner = s3_event(&[s3_record(
            "ObjectCreated:Put",
            "AWSLogs/123456789012/CloudTrail/us-east-1/2024/12/01/file+name%3A1.json.gz",
        )]);
        assert_eq!(
            parse(&sns(&inner)),
            Ok(one(
                "org-trail-logs",
                "AWSLogs/123456789012/CloudTrail/us-east-1/2024/12/01/file name:1.json.gz",
                Some(1024)
            ))
        );
    }

    #[test]
    fn sns_wrapped_cloudtrail_notification_as_sent() {
        let body = r#"{
  "Type" : "Notification",
  "MessageId" : "6ad6c1d5-64d4-5b2b-9e7c-3b5e2f0f4a11",
  "TopicArn" : "arn:aws:sns:us-east-1:123456789012:cloudtrail-delivery",
  "Message" : "{\"s3Bucket\":\"org-trail-logs\",\"s3ObjectKey\":[\"AWSLogs/123456789012/CloudTrail/us-east-1/2024/12/01/123456789012_CloudTrail_us-east-1_20241201T0005Z_EXAMPLE.json.gz\"]}",
  "Timestamp" : "2024-12-01T00:05:13.002Z",
  "SignatureVersion" : "1",
  "Signature" : "EXAMPLEpH+DcEwjAPg8O9mY8dReBSwksfg2S7WKQcikcNKWLQjwu6A4VbeS0QHVCkhRS7fUQvi2egU3N858fiTDN6bkkOxYDVrY0Ad8L10Hs3zH81mtnPk5uvvolIC1CXGu43obcgFxeL3khZl8IKvO61GWB6jI9b5+gLPoBc1Q=",
  "SigningCertURL" : "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem",
  "UnsubscribeURL" : "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-east-1:123456789012:cloudtrail-delivery:c9135db0-26c4-47ec-8998-413945fb5a96"
}"#;
        assert_eq!(parse(body), Ok(one("org-trail-logs", KEY, None)));
    }

    #[test]
    fn sns_wrapped_eventbridge_event() {
        let Ok(Notification::Objects(objects)) = parse(&sns(EVENTBRIDGE_CREATED)) else {
            panic!("expected objects");
        };
        assert_eq!(objects.len(), 1);
    }

    #[test]
    fn sns_subscription_confirmation_is_ignored() {
        let body = r#"{
  "Type" : "SubscriptionConfirmation",
  "MessageId" : "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
  "Token" : "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad02428b09ceece29417f1f02d609c582afbacc99c583a916b9981dd2728f4ae6fdb82efd087cc3b7849e05798d2d2785c03b0879594eeac82c01f235d0e717736",
  "TopicArn" : "arn:aws:sns:us-east-1:123456789012:trail-logs",
  "Message" : "You have chosen to subscribe to the topic arn:aws:sns:us-east-1:123456789012:trail-logs.\nTo confirm the subscription, visit the SubscribeURL included in this message.",
  "SubscribeURL" : "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-east-1:123456789012:trail-logs&Token=2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad02428b09ceece29417f1f02d609c582afbacc99c583a916b9981dd2728f4ae6fdb82efd087cc3b7849e05798d2d2785c03b0879594eeac82c01f235d0e717736",
  "Timestamp" : "2024-12-01T00:00:04.751Z",
  "SignatureVersion" : "1",
  "Signature" : "EXAMPLEpH+DcEwjAPg8O9mY8dReBSwksfg2S7WKQcikcNKWLQjwu6A4VbeS0QHVCkhRS7fUQvi2egU3N858fiTDN6bkkOxYDVrY0Ad8L10Hs3zH81mtnPk5uvvolIC1CXGu43obcgFxeL3khZl8IKvO61GWB6jI9b5+gLPoBc1Q=",
  "SigningCertURL" : "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem"
}"#;
        let reason = ignored(body);
        assert!(reason.contains("SubscriptionConfirmation"), "{reason}");
        assert!(reason.contains("trail-logs"), "{reason}");
        let unsubscribe = body.replace("SubscriptionConfirmation", "UnsubscribeConfirmation");
        assert!(ignored(&unsubscribe).contains("UnsubscribeConfirmation"));
    }

    #[test]
    fn sns_unknown_type_is_an_error() {
        let body = sns(TEST_EVENT).replace("\"Notification\"", "\"Telegram\"");
        let (e, text) = error(&body);
        assert!(matches!(e, NotificationError::UnknownShape(_)));
        assert!(text.contains("Telegram"), "{text}");
    }

    #[test]
    fn sns_without_message() {
        let body = r#"{"Type":"Notification","MessageId":"m","TopicArn":"arn:aws:sns:us-east-1:123456789012:t"}"#;
        let (e, text) = error(body);
        assert_eq!(e, missing("Message"));
        assert_eq!(text, "missing field `Message`");
    }

    #[test]
    fn sns_message_not_a_string() {
        let body = r#"{"Type":"Notification","MessageId":"m","Message":{"s3Bucket":"b","s3ObjectKey":"k"}}"#;
        let (e, text) = error(body);
        assert_eq!(
            e,
            NotificationError::WrongType {
                path: "Message".into(),
                expected: "a string",
                found: "an object"
            }
        );
        assert_eq!(text, "field `Message` should be a string, found an object");
    }

    #[test]
    fn sns_message_not_json() {
        let (e, text) = error(&sns("Hello world!"));
        let NotificationError::InSnsMessage(inner) = &e else {
            panic!("expected InSnsMessage, got {e:?}");
        };
        assert!(
            matches!(**inner, NotificationError::NotJson { line: 1, .. }),
            "{inner:?}"
        );
        assert!(
            text.starts_with("in the SNS `Message` string: not JSON"),
            "{text}"
        );
    }

    #[test]
    fn sns_message_missing_field_names_the_inner_path() {
        let inner = s3_event(&[s3_record("ObjectCreated:Put", KEY)]).replace("\"key\"", "\"kee\"");
        let (e, text) = error(&sns(&inner));
        assert_eq!(
            e,
            NotificationError::InSnsMessage(Box::new(missing("Records[0].s3.object.key")))
        );
        assert_eq!(
            text,
            "in the SNS `Message` string: missing field `Records[0].s3.object.key`"
        );
    }

    #[test]
    fn sns_nesting_is_limited() {
        let mut body = TEST_EVENT.to_owned();
        for _ in 0..MAX_SNS_DEPTH {
            body = sns(&body);
        }
        assert_eq!(parse(&body), Ok(Notification::Test));
        assert_eq!(parse(&sns(&body)), Err(NotificationError::TooDeep));
    }

    // ---- EventBridge ----

    #[test]
    fn eventbridge_object_created_key_is_not_decoded() {
        assert_eq!(
            parse(EVENTBRIDGE_CREATED),
            Ok(one(
                "org-trail-logs",
                "AWSLogs/123456789012/CloudTrail/us-east-1/2024/12/01/a+b%20c.json.gz",
                Some(5321)
            ))
        );
    }

    #[test]
    fn eventbridge_object_deleted_is_ignored() {
        let body = r#"{
  "version": "0",
  "id": "2ee9cc15-d022-99ea-1fb8-1b1bac4850f9",
  "detail-type": "Object Deleted",
  "source": "aws.s3",
  "account": "123456789012",
  "time": "2024-12-01T00:09:00Z",
  "region": "us-east-1",
  "resources": [
    "arn:aws:s3:::org-trail-logs"
  ],
  "detail": {
    "version": "0",
    "bucket": {
      "name": "org-trail-logs"
    },
    "object": {
      "key": "AWSLogs/old.json.gz",
      "sequencer": "617f0837b476e463"
    },
    "request-id": "0BH729840619AG5K",
    "requester": "123456789012",
    "source-ip-address": "1.2.3.4",
    "reason": "DeleteObject",
    "deletion-type": "Delete Marker Created"
  }
}"#;
        assert!(ignored(body).contains("Object Deleted"));
    }

    #[test]
    fn eventbridge_other_source_is_ignored() {
        let body = r#"{"version":"0","id":"1","detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","account":"123456789012","time":"2024-12-01T00:00:00Z","region":"us-east-1","resources":[],"detail":{"instance-id":"i-0123","state":"running"}}"#;
        assert!(ignored(body).contains("aws.ec2"));
    }

    #[test]
    fn eventbridge_missing_key() {
        let body = EVENTBRIDGE_CREATED.replace("\"key\"", "\"name\"");
        let (e, text) = error(&body);
        assert_eq!(e, missing("detail.object.key"));
        assert_eq!(text, "missing field `detail.object.key`");
    }

    #[test]
    fn eventbridge_missing_detail() {
        let body = r#"{"version":"0","detail-type":"Object Created","source":"aws.s3"}"#;
        assert_eq!(parse(body), Err(missing("detail")));
    }

    #[test]
    fn eventbridge_empty_bucket_name() {
        let body = EVENTBRIDGE_CREATED.replace("\"name\": \"org-trail-logs\"", "\"name\": \"\"");
        let (e, text) = error(&body);
        assert_eq!(e, NotificationError::Empty("detail.bucket.name".into()));
        assert_eq!(text, "field `detail.bucket.name` is an empty string");
    }

    // ---- CloudTrail's own notification ----

    #[test]
    fn cloudtrail_notification_direct() {
        assert_eq!(
            parse(CLOUDTRAIL_MESSAGE),
            Ok(one("org-trail-logs", KEY, None))
        );
    }

    #[test]
    fn cloudtrail_notification_keys_are_not_decoded() {
        let body =
            r#"{"s3Bucket":"b","s3ObjectKey":["AWSLogs/a+b%3A.json.gz","AWSLogs/2.json.gz"]}"#;
        assert_eq!(
            parse(body),
            Ok(Notification::Objects(vec![
                ObjectRef {
                    bucket: "b".into(),
                    key: "AWSLogs/a+b%3A.json.gz".into(),
                    size: None
                },
                ObjectRef {
                    bucket: "b".into(),
                    key: "AWSLogs/2.json.gz".into(),
                    size: None
                },
            ]))
        );
    }

    #[test]
    fn cloudtrail_notification_single_string_key() {
        let body = r#"{"s3Bucket":"b","s3ObjectKey":"AWSLogs/1.json.gz"}"#;
        assert_eq!(parse(body), Ok(one("b", "AWSLogs/1.json.gz", None)));
    }

    #[test]
    fn cloudtrail_notification_empty_list_is_ignored() {
        assert!(ignored(r#"{"s3Bucket":"b","s3ObjectKey":[]}"#).contains("no s3ObjectKey"));
    }

    #[test]
    fn cloudtrail_notification_errors() {
        assert_eq!(parse(r#"{"s3ObjectKey":["k"]}"#), Err(missing("s3Bucket")));
        assert_eq!(parse(r#"{"s3Bucket":"b"}"#), Err(missing("s3ObjectKey")));
        assert_eq!(
            parse(r#"{"s3Bucket":"","s3ObjectKey":["k"]}"#),
            Err(NotificationError::Empty("s3Bucket".into()))
        );
        assert_eq!(
            parse(r#"{"s3Bucket":"b","s3ObjectKey":["k",""]}"#),
            Err(NotificationError::Empty("s3ObjectKey[1]".into()))
        );
        assert_eq!(
            parse(r#"{"s3Bucket":"b","s3ObjectKey":""}"#),
            Err(NotificationError::Empty("s3ObjectKey".into()))
        );
        let (_, text) = error(r#"{"s3Bucket":"b","s3ObjectKey":["k",7]}"#);
        assert_eq!(
            text,
            "field `s3ObjectKey[1]` should be a string, found a number"
        );
        let (_, text) = error(r#"{"s3Bucket":"b","s3ObjectKey":{"k":1}}"#);
        assert_eq!(
            text,
            "field `s3ObjectKey` should be a string or an array of strings, found an object"
        );
        let (_, text) = error(r#"{"s3Bucket":["b"],"s3ObjectKey":["k"]}"#);
        assert_eq!(text, "field `s3Bucket` should be a string, found an array");
    }

    // ---- errors ----

    #[test]
    fn not_json_gives_line_and_column() {
        let (e, text) = error("{\n  \"Records\": [\n    {\"eventSource\" \"aws:s3\"}\n]}");
        let NotificationError::NotJson { line, column, .. } = e else {
            panic!("expected NotJson, got {e:?}");
        };
        assert_eq!((line, column), (3, 20));
        assert!(
            text.starts_with("not JSON: expected `:` at line 3, column 20"),
            "{text}"
        );
    }

    #[test]
    fn empty_and_truncated_bodies_are_not_json() {
        for body in ["", "   ", "{\"Records\":[", "not json", "{} trailing"] {
            let (e, _) = error(body);
            assert!(
                matches!(e, NotificationError::NotJson { .. }),
                "{body:?}: {e:?}"
            );
        }
    }

    #[test]
    fn json_that_is_not_an_object() {
        for (body, found) in [
            ("[]", "an array"),
            ("\"text\"", "a string"),
            ("42", "a number"),
            ("null", "null"),
            ("true", "a boolean"),
        ] {
            assert_eq!(
                parse(body),
                Err(NotificationError::NotAnObject { found }),
                "{body}"
            );
        }
        let (_, text) = error("[1]");
        assert_eq!(text, "expected a JSON object, found an array");
    }

    #[test]
    fn unknown_shape_names_the_keys() {
        let (e, text) = error(r#"{"hello":"world","answer":42}"#);
        assert_eq!(
            e,
            NotificationError::UnknownShape(r#"an object with keys "answer", "hello""#.into())
        );
        assert!(text.starts_with("unknown notification shape:"), "{text}");
        assert_eq!(
            parse("{}"),
            Err(NotificationError::UnknownShape("an empty object".into()))
        );
        let many: Vec<String> = (0..10).map(|i| format!("\"k{i}\":{i}")).collect();
        let (_, text) = error(&format!("{{{}}}", many.join(",")));
        assert!(text.contains("(10 keys in all)"), "{text}");
    }

    #[test]
    fn missing_bucket_name() {
        let body = s3_event(&[s3_record("ObjectCreated:Put", KEY)])
            .replace("\"name\":\"org-trail-logs\"", "\"nom\":\"org-trail-logs\"");
        let (e, text) = error(&body);
        assert_eq!(e, missing("Records[0].s3.bucket.name"));
        assert_eq!(text, "missing field `Records[0].s3.bucket.name`");
    }

    #[test]
    fn missing_key_in_a_later_record() {
        let body = s3_event(&[
            s3_record("ObjectCreated:Put", "AWSLogs/1.json.gz"),
            s3_record("ObjectCreated:Put", "AWSLogs/2.json.gz").replace("\"key\"", "\"Key\""),
        ]);
        assert_eq!(parse(&body), Err(missing("Records[1].s3.object.key")));
    }

    #[test]
    fn missing_s3_object_and_event_fields() {
        let base = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","eventName":"ObjectCreated:Put"}]}"#;
        assert_eq!(parse(base), Err(missing("Records[0].s3")));
        let no_name = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","s3":{}}]}"#;
        assert_eq!(parse(no_name), Err(missing("Records[0].eventName")));
        let no_source =
            r#"{"Records":[{"eventVersion":"2.1","eventName":"ObjectCreated:Put","s3":{}}]}"#;
        assert_eq!(parse(no_source), Err(missing("Records[0].eventSource")));
        let no_object = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"}}}]}"#;
        assert_eq!(parse(no_object), Err(missing("Records[0].s3.object")));
    }

    #[test]
    fn empty_key_is_an_error() {
        let body = s3_event(&[s3_record("ObjectCreated:Put", "")]);
        let (e, text) = error(&body);
        assert_eq!(
            e,
            NotificationError::Empty("Records[0].s3.object.key".into())
        );
        assert_eq!(text, "field `Records[0].s3.object.key` is an empty string");
    }

    #[test]
    fn key_that_decodes_to_invalid_utf8() {
        let body = s3_event(&[s3_record("ObjectCreated:Put", "AWSLogs/%FF%FE.json.gz")]);
        let (e, text) = error(&body);
        assert_eq!(
            e,
            NotificationError::BadKeyEncoding {
                path: "Records[0].s3.object.key".into(),
                key: "AWSLogs/%FF%FE.json.gz".into()
            }
        );
        assert!(text.contains("Records[0].s3.object.key"), "{text}");
        assert!(text.contains("UTF-8"), "{text}");
    }

    #[test]
    fn wrong_types_name_the_field() {
        let record = s3_record("ObjectCreated:Put", KEY);
        let cases = [
            (
                record.replace("\"size\":1024", "\"size\":\"1024\""),
                "field `Records[0].s3.object.size` should be a non-negative integer, found a string",
            ),
            (
                record.replace("\"size\":1024", "\"size\":-1"),
                "field `Records[0].s3.object.size` should be a non-negative integer, found a negative number",
            ),
            (
                record.replace("\"size\":1024", "\"size\":10.5"),
                "field `Records[0].s3.object.size` should be a non-negative integer, found a fractional number",
            ),
            (
                record
                    .replace("\"key\":\"AWSLogs", "\"key\":[\"AWSLogs")
                    .replace(".json.gz\",", ".json.gz\"],"),
                "field `Records[0].s3.object.key` should be a string, found an array",
            ),
            (
                record.replace("\"eventName\":\"ObjectCreated:Put\"", "\"eventName\":1"),
                "field `Records[0].eventName` should be a string, found a number",
            ),
        ];
        for (record, expected) in cases {
            let (_, text) = error(&s3_event(&[record]));
            assert_eq!(text, expected);
        }
        let (_, text) = error(r#"{"Records":{"eventSource":"aws:s3"}}"#);
        assert_eq!(text, "field `Records` should be an array, found an object");
        let (_, text) = error(r#"{"Records":["x"]}"#);
        assert_eq!(
            text,
            "field `Records[0]` should be an object, found a string"
        );
        let (_, text) = error(
            r#"{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":"b"}}]}"#,
        );
        assert_eq!(
            text,
            "field `Records[0].s3.bucket` should be an object, found a string"
        );
    }

    #[test]
    fn null_size_is_none() {
        let body = s3_event(&[s3_record("ObjectCreated:Put", KEY).replace("1024", "null")]);
        assert_eq!(parse(&body), Ok(one("org-trail-logs", KEY, None)));
    }

    #[test]
    fn no_prefix_of_a_valid_body_panics() {
        let bodies = [
            s3_event(&[
                s3_record("ObjectCreated:Put", "a%2"),
                s3_record("ObjectRemoved:Delete", KEY),
            ]),
            sns(TEST_EVENT),
            sns(CLOUDTRAIL_MESSAGE),
            EVENTBRIDGE_CREATED.to_owned(),
        ];
        for body in &bodies {
            for (end, _) in body.char_indices() {
                let _ = parse(body.get(..end).unwrap_or_default());
            }
            assert!(parse(body).is_ok(), "{body}");
        }
    }
}
