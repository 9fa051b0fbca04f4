//! A borrowed view of a native finding line, what the other formats are made from.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::Context;

/// `trailhound.finding/1`, borrowed from its line.
#[derive(Debug, Deserialize)]
pub struct NativeFinding<'a> {
    /// `id`.
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    /// `detected_at`.
    #[serde(borrow)]
    pub detected_at: Cow<'a, str>,
    /// `rule`.
    #[serde(borrow)]
    pub rule: RuleView<'a>,
    /// `event`.
    pub event: EventView,
    /// `input`.
    #[serde(borrow)]
    pub input: InputView<'a>,
    /// `record`, as written.
    #[serde(borrow, default)]
    pub record: Option<&'a RawValue>,
    /// `fields`.
    #[serde(borrow, default)]
    pub fields: Option<&'a RawValue>,
    /// `correlation`.
    #[serde(borrow, default)]
    pub correlation: Option<&'a RawValue>,
    /// `suppressed`.
    #[serde(default)]
    pub suppressed: u64,
    /// `suppression`.
    #[serde(borrow, default)]
    pub suppression: Option<&'a RawValue>,
}

/// `rule`.
#[derive(Debug, Deserialize)]
pub struct RuleView<'a> {
    /// `id`.
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    /// `title`.
    #[serde(borrow)]
    pub title: Cow<'a, str>,
    /// `level`.
    #[serde(borrow)]
    pub level: Cow<'a, str>,
    /// `tags`.
    #[serde(borrow, default)]
    pub tags: Vec<Cow<'a, str>>,
    /// `kind`.
    #[serde(borrow)]
    pub kind: Cow<'a, str>,
    /// `origin`.
    #[serde(borrow)]
    pub origin: Cow<'a, str>,
}

/// `event`: values as found in the record (any JSON, `null` when missing).
#[derive(Debug, Deserialize)]
#[allow(non_snake_case)]
pub struct EventView {
    /// `eventID`.
    #[serde(default)]
    pub eventID: Value,
    /// `eventTime`.
    #[serde(default)]
    pub eventTime: Value,
    /// `eventName`.
    #[serde(default)]
    pub eventName: Value,
    /// `eventSource`.
    #[serde(default)]
    pub eventSource: Value,
    /// `awsRegion`.
    #[serde(default)]
    pub awsRegion: Value,
    /// `recipientAccountId`.
    #[serde(default)]
    pub recipientAccountId: Value,
    /// `sourceIPAddress`.
    #[serde(default)]
    pub sourceIPAddress: Value,
    /// `principal`.
    #[serde(default)]
    pub principal: PrincipalView,
}

/// `event.principal`.
#[derive(Debug, Default, Deserialize)]
pub struct PrincipalView {
    /// `arn`.
    #[serde(default, deserialize_with = "text")]
    pub arn: Option<String>,
    /// `type`.
    #[serde(default, rename = "type", deserialize_with = "text")]
    pub kind: Option<String>,
    /// `account_id`.
    #[serde(default, deserialize_with = "text")]
    pub account_id: Option<String>,
}

fn text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(as_text(&Value::deserialize(d)?))
}

/// A scalar as text (`None` for null, objects and arrays).
pub fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl EventView {
    /// The account the event happened in: `recipientAccountId`, else the principal's.
    pub fn account(&self) -> Option<&str> {
        self.recipientAccountId
            .as_str()
            .or(self.principal.account_id.as_deref())
    }

    /// `eventTime` as text.
    pub fn time(&self) -> Option<&str> {
        self.eventTime.as_str()
    }
}

/// `input`.
#[derive(Debug, Deserialize)]
pub struct InputView<'a> {
    /// `name`.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// `record_index`.
    #[serde(default)]
    pub record_index: u64,
    /// `line`.
    #[serde(default)]
    pub line: u64,
    /// `byte_offset`.
    #[serde(default)]
    pub byte_offset: u64,
}

impl InputView<'_> {
    /// Writes the native `input` object's fields into `o`.
    pub fn write(&self, mut o: super::Obj<'_>) {
        o.str("name", &self.name)
            .num("record_index", self.record_index as i64)
            .num("line", self.line as i64)
            .num("byte_offset", self.byte_offset as i64);
    }
}

/// The parts of `correlation` the formats use.
#[derive(Debug, Default, Deserialize)]
pub struct CorrelationView {
    /// `type`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// `group`.
    #[serde(default)]
    pub group: serde_json::Map<String, Value>,
    /// `window`.
    #[serde(default)]
    pub window: Option<WindowView>,
    /// `event_ids`.
    #[serde(default)]
    pub event_ids: Vec<String>,
    /// `event_count`.
    #[serde(default)]
    pub event_count: u64,
}

/// `correlation.window`.
#[derive(Debug, Default, Deserialize)]
pub struct WindowView {
    /// `start`.
    pub start: String,
    /// `end`.
    pub end: String,
}

impl NativeFinding<'_> {
    /// The correlation object, read.
    pub fn correlation(&self) -> Option<CorrelationView> {
        self.correlation
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
    }
}

/// The `enrichment` object of a native finding.
pub fn enrichment_json(cx: &Context<'_>) -> Option<Value> {
    let mut m = serde_json::Map::new();
    if !cx.enrich.tags.is_empty() {
        let tags = cx
            .enrich
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        m.insert("tags".into(), Value::Object(tags));
    }
    if let Some(a) = cx.account_alias() {
        m.insert("account_alias".into(), Value::String(a.into()));
    }
    if cx.finding.event.principal.account_id.as_deref() != cx.finding.event.account()
        && let Some(a) = cx.principal_alias()
    {
        m.insert("principal_account_alias".into(), Value::String(a.into()));
    }
    (!m.is_empty()).then_some(Value::Object(m))
}

/// The native line with an `enrichment` object appended (the rest byte for byte).
pub fn enrich_native(cx: &Context<'_>, line: &[u8], out: &mut Vec<u8>) {
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    match (enrichment_json(cx), body.strip_suffix(b"}")) {
        (Some(e), Some(head)) => {
            out.extend_from_slice(head);
            out.extend_from_slice(b",\"enrichment\":");
            let _ = serde_json::to_writer(&mut *out, &e);
            out.extend_from_slice(b"}\n");
        }
        _ => {
            out.extend_from_slice(body);
            out.push(b'\n');
        }
    }
}
