//! The finding: what a user sees when a rule matches, one JSON object per line.
//!
//! Shape (`schemas/finding.schema.json`, `docs/output.md`):
//! `{"schema":"trailhound.finding/1","id","detected_at","rule":{…},"event":{…},
//! "input":{"name","record_index","line","byte_offset"},"record":{…},"fields":{…},
//! "suppressed":0}`.
//!
//! `id` is the first 32 hex digits of SHA-256 over the rule id, a NUL byte and the
//! record's `eventID` (or, when there is none, the record's raw bytes), so a replay of
//! the same input yields the same ids. `record` is the record's original bytes, copied
//! verbatim (key order, duplicate keys and escapes as the source wrote them); only a
//! record that spans lines (from a pretty-printed document) is re-serialised compactly,
//! to keep one finding per line.

use sha2::{Digest, Sha256};
use simd_json::prelude::Writable;
use simd_json::tape::Value;

use crate::decode::Position;
use crate::event::{FieldPath, KnownPaths};
use crate::rules::CompiledRule;
use crate::sink::rendered::Rendered;

/// Per-batch values every finding of the batch shares.
#[derive(Debug, Clone, Copy)]
pub struct FindingContext<'a> {
    /// The input's name, already a JSON string literal.
    pub input_json: &'a str,
    /// The detection time (RFC 3339), already a JSON string literal.
    pub detected_at_json: &'a str,
    /// Whether to embed the record.
    pub include_record: bool,
    /// The paths of the `event` object.
    pub known: &'a KnownPaths,
}

/// Writes `v` as compact JSON (`null` when missing).
pub fn write_value(out: &mut Vec<u8>, v: Option<Value<'_, '_>>) {
    match v {
        Some(v) => {
            if v.write(out).is_err() {
                out.extend_from_slice(b"null");
            }
        }
        None => out.extend_from_slice(b"null"),
    }
}

fn write_path(out: &mut Vec<u8>, root: Value<'_, '_>, key: &str, path: &FieldPath) {
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    write_value(out, path.first(root));
}

/// Writes what a `fields:` entry selects: the value, an array when the path reaches
/// several (a fan-out over arrays, a JSONPath wildcard), `null` when none.
fn write_selected(out: &mut Vec<u8>, root: Value<'_, '_>, path: &FieldPath) {
    let mut found: [Option<Value<'_, '_>>; 2] = [None, None];
    let mut n = 0usize;
    let _ = path.for_each(root, &mut |v| {
        if n < 2 {
            found[n] = Some(v);
        }
        n += 1;
        if n > 2 {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    });
    match n {
        0 => out.extend_from_slice(b"null"),
        1 => write_value(out, found[0]),
        _ => {
            out.push(b'[');
            let mut first = true;
            let _ = path.for_each(root, &mut |v| {
                if !first {
                    out.push(b',');
                }
                first = false;
                write_value(out, Some(v));
                std::ops::ControlFlow::Continue(())
            });
            out.push(b']');
        }
    }
}

/// The finding id for `rule_id` and a record.
pub fn finding_id(rule_id: &str, event_id: Option<&str>, raw: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(rule_id.as_bytes());
    h.update([0]);
    match event_id {
        Some(id) => h.update(id.as_bytes()),
        None => h.update(raw),
    }
    let d = h.finalize();
    let mut hex = [0u8; 32];
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in d.iter().take(16).enumerate() {
        hex[2 * i] = HEX[(b >> 4) as usize];
        hex[2 * i + 1] = HEX[(b & 15) as usize];
    }
    hex
}

/// The `event` object of a finding with every value missing.
pub const EMPTY_EVENT: &str = r#"{"eventID":null,"eventTime":null,"eventName":null,"eventSource":null,"awsRegion":null,"recipientAccountId":null,"sourceIPAddress":null,"principal":{"arn":null,"type":null,"account_id":null}}"#;

/// Writes a finding's `event` object for `root`.
pub fn render_event(b: &mut Vec<u8>, root: Value<'_, '_>, k: &KnownPaths) {
    b.push(b'{');
    write_path(b, root, "eventID", &k.event_id);
    b.push(b',');
    let time = k.event_time.first(root).or_else(|| k.timestamp.first(root));
    b.extend_from_slice(b"\"eventTime\":");
    write_value(b, time);
    for (key, path) in [
        ("eventName", &k.event_name),
        ("eventSource", &k.event_source),
        ("awsRegion", &k.aws_region),
        ("recipientAccountId", &k.recipient_account_id),
        ("sourceIPAddress", &k.source_ip),
    ] {
        b.push(b',');
        write_path(b, root, key, path);
    }
    b.extend_from_slice(b",\"principal\":{");
    write_path(b, root, "arn", &k.principal_arn);
    b.push(b',');
    write_path(b, root, "type", &k.principal_type);
    b.push(b',');
    write_path(b, root, "account_id", &k.principal_account);
    b.extend_from_slice(b"}}");
}

/// Renders one finding line into `out`.
#[allow(clippy::too_many_arguments)]
pub fn render(
    out: &mut Rendered,
    rule: &CompiledRule,
    rule_index: u32,
    root: Value<'_, '_>,
    raw: &[u8],
    pos: Position,
    rel_index: u64,
    ctx: &FindingContext<'_>,
) {
    let k = ctx.known;
    let event_id = k.event_id.first(root).and_then(crate::event::path::as_str);
    let id = finding_id(&rule.meta.id, event_id, raw);
    let b = out.begin();
    b.extend_from_slice(b"{\"schema\":\"trailhound.finding/1\",\"id\":\"");
    b.extend_from_slice(&id);
    b.extend_from_slice(b"\",\"detected_at\":");
    b.extend_from_slice(ctx.detected_at_json.as_bytes());
    b.extend_from_slice(b",\"rule\":");
    b.extend_from_slice(rule.rule_json().as_bytes());
    b.extend_from_slice(b",\"event\":");
    render_event(b, root, k);
    b.extend_from_slice(b",\"input\":{\"name\":");
    b.extend_from_slice(ctx.input_json.as_bytes());
    let b = out.position(pos);
    b.push(b'}');
    if ctx.include_record {
        b.extend_from_slice(b",\"record\":");
        if memchr::memchr2(b'\n', b'\r', raw).is_some() {
            write_value(b, Some(root));
        } else {
            b.extend_from_slice(raw);
        }
    }
    b.extend_from_slice(b",\"fields\":{");
    for (i, (name, path)) in rule.field_paths().iter().enumerate() {
        if i > 0 {
            b.push(b',');
        }
        let _ = serde_json::to_writer(&mut *b, name);
        b.push(b':');
        write_selected(b, root, path);
    }
    b.extend_from_slice(b"},\"suppressed\":0}\n");
    out.end_rule(rel_index, rule_index);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_distinct() {
        let a = finding_id("r1", Some("e1"), b"{}");
        assert_eq!(a, finding_id("r1", Some("e1"), b"{\"other\":1}"));
        assert_ne!(a, finding_id("r2", Some("e1"), b"{}"));
        assert_ne!(
            finding_id("r1", None, b"{\"a\":1}"),
            finding_id("r1", None, b"{\"a\":2}")
        );
        assert!(a.iter().all(|c| c.is_ascii_hexdigit()));
    }
}
