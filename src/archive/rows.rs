//! Records → Arrow columns of the `aws_cloudtrail_log` table, one batch per unit of
//! work and partition. Builders append bytes into their buffers: no allocation per
//! record beyond the builders' growth.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arrow_array::builder::{
    BooleanBuilder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch, StructArray};
use arrow_buffer::NullBuffer;
use simd_json::prelude::{TypedScalarValue, ValueAsScalar, Writable};
use simd_json::tape::Value;

use super::schema::{Col, ColKind, TP_LIST_COLUMNS, schema, struct_fields};
use crate::event::path::{as_str, object_get};

/// Microseconds since the Unix epoch of an RFC 3339 / ISO-8601 UTC time
/// (`2023-07-10T11:42:18Z`, fractions allowed).
pub fn parse_time_micros(s: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339_weak(s.trim()).ok()?;
    let d = t.duration_since(UNIX_EPOCH).ok()?;
    i64::try_from(d.as_micros()).ok()
}

/// Now, in microseconds since the epoch.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// `YYYY-MM-DD` (UTC) of a time in microseconds since the epoch.
pub fn date_of(micros: i64) -> String {
    let days = micros.div_euclid(86_400_000_000);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

enum Builder {
    Str(StringBuilder),
    Json(StringBuilder),
    Bool(BooleanBuilder),
    Ts(TimestampMicrosecondBuilder),
    Struct(Vec<(Col, Builder)>, Vec<bool>),
}

impl Builder {
    fn new(kind: &ColKind) -> Self {
        match kind {
            ColKind::Str => Builder::Str(StringBuilder::new()),
            ColKind::Json => Builder::Json(StringBuilder::new()),
            ColKind::Bool => Builder::Bool(BooleanBuilder::new()),
            ColKind::Timestamp => Builder::Ts(TimestampMicrosecondBuilder::new()),
            ColKind::Struct(cols) => Builder::Struct(
                cols.iter()
                    .map(|c| (c.clone(), Builder::new(&c.kind)))
                    .collect(),
                Vec::new(),
            ),
        }
    }

    fn null(&mut self) {
        match self {
            Builder::Str(b) | Builder::Json(b) => b.append_null(),
            Builder::Bool(b) => b.append_null(),
            Builder::Ts(b) => b.append_null(),
            Builder::Struct(children, valid) => {
                valid.push(false);
                for (_, c) in children {
                    c.null();
                }
            }
        }
    }

    fn finish(&mut self, kind: &ColKind) -> ArrayRef {
        match self {
            Builder::Str(b) | Builder::Json(b) => Arc::new(b.finish()),
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Ts(b) => Arc::new(b.finish()),
            Builder::Struct(children, valid) => {
                let ColKind::Struct(cols) = kind else {
                    unreachable!("struct builder of a struct column")
                };
                let arrays = children
                    .iter_mut()
                    .map(|(c, b)| b.finish(&c.kind))
                    .collect();
                let nulls = NullBuffer::from(std::mem::take(valid));
                Arc::new(StructArray::new(struct_fields(cols), arrays, Some(nulls)))
            }
        }
    }
}

/// Per-row values of Tailpipe's standard columns that do not come from the record.
#[derive(Debug, Clone, Copy)]
pub struct RowMeta<'a> {
    /// `tp_id`
    pub tp_id: &'a str,
    /// `tp_source_type`
    pub source_type: &'a str,
    /// `tp_source_name`
    pub source_name: &'a str,
    /// `tp_source_location`
    pub source_location: &'a str,
    /// `tp_ingest_timestamp`
    pub ingest_micros: i64,
    /// `tp_timestamp` (event time)
    pub timestamp_micros: i64,
}

/// Rows of one partition, built column by column.
pub struct BatchBuilder {
    tp_id: StringBuilder,
    source_type: StringBuilder,
    ingest: TimestampMicrosecondBuilder,
    timestamp: TimestampMicrosecondBuilder,
    source_ip: StringBuilder,
    source_name: StringBuilder,
    source_location: StringBuilder,
    destination_ip: StringBuilder,
    lists: Vec<ListBuilder<StringBuilder>>,
    cols: Vec<(Col, Builder)>,
    misfits: StringBuilder,
    rows: usize,
    json: Vec<u8>,
    row_misfits: Vec<(String, String)>,
}

impl std::fmt::Debug for BatchBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchBuilder")
            .field("rows", &self.rows)
            .finish()
    }
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

fn json_text(v: Value<'_, '_>, buf: &mut Vec<u8>) -> Option<String> {
    buf.clear();
    v.write(buf).ok()?;
    String::from_utf8(std::mem::take(buf)).ok()
}

impl BatchBuilder {
    /// An empty batch.
    pub fn new() -> Self {
        BatchBuilder {
            tp_id: StringBuilder::new(),
            source_type: StringBuilder::new(),
            ingest: TimestampMicrosecondBuilder::new(),
            timestamp: TimestampMicrosecondBuilder::new(),
            source_ip: StringBuilder::new(),
            source_name: StringBuilder::new(),
            source_location: StringBuilder::new(),
            destination_ip: StringBuilder::new(),
            lists: TP_LIST_COLUMNS
                .iter()
                .map(|_| ListBuilder::new(StringBuilder::new()))
                .collect(),
            cols: super::schema::record_columns()
                .into_iter()
                .map(|c| {
                    let b = Builder::new(&c.kind);
                    (c, b)
                })
                .collect(),
            misfits: StringBuilder::new(),
            rows: 0,
            json: Vec::new(),
            row_misfits: Vec::new(),
        }
    }

    /// Rows so far.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one record.
    pub fn append(&mut self, root: Value<'_, '_>, meta: &RowMeta<'_>) {
        self.rows += 1;
        self.tp_id.append_value(meta.tp_id);
        self.source_type.append_value(meta.source_type);
        self.ingest.append_value(meta.ingest_micros);
        self.timestamp.append_value(meta.timestamp_micros);
        let ip = object_get(root, "sourceIPAddress")
            .and_then(as_str)
            .filter(|s| s.trim().parse::<std::net::IpAddr>().is_ok());
        self.source_ip.append_option(ip);
        self.source_name.append_value(meta.source_name);
        self.source_location.append_value(meta.source_location);
        self.destination_ip.append_null();
        self.append_lists(root, ip);
        self.row_misfits.clear();
        let (json, misfits) = (&mut self.json, &mut self.row_misfits);
        for (col, b) in &mut self.cols {
            append_col(b, col, Some(root), json, misfits, col.name);
        }
        if self.row_misfits.is_empty() {
            self.misfits.append_null();
        } else {
            let mut obj = String::from("{");
            for (i, (k, v)) in self.row_misfits.iter().enumerate() {
                if i > 0 {
                    obj.push(',');
                }
                obj.push_str(&serde_json::to_string(k).unwrap_or_default());
                obj.push(':');
                obj.push_str(v);
            }
            obj.push('}');
            self.misfits.append_value(obj);
        }
    }

    fn append_lists(&mut self, root: Value<'_, '_>, ip: Option<&str>) {
        // tp_akas: resource ARNs.
        let akas = &mut self.lists[0];
        if let Some(res) = object_get(root, "resources").and_then(|r| r.as_array()) {
            for r in res.iter() {
                if let Some(arn) = object_get(r, "ARN").and_then(as_str) {
                    akas.values().append_value(arn);
                }
            }
        }
        akas.append(true);
        // tp_ips: the source address when it is one.
        let ips = &mut self.lists[1];
        if let Some(ip) = ip {
            ips.values().append_value(ip);
        }
        ips.append(true);
        // tp_tags, tp_domains, tp_emails: nothing to derive from CloudTrail.
        for i in 2..5 {
            self.lists[i].append(true);
        }
        // tp_usernames: the user and the session issuer's user.
        let users = &mut self.lists[5];
        let ui = object_get(root, "userIdentity");
        let mut seen: Option<&str> = None;
        if let Some(u) = ui.and_then(|u| object_get(u, "userName")).and_then(as_str) {
            users.values().append_value(u);
            seen = Some(u);
        }
        let issuer = ui
            .and_then(|u| object_get(u, "sessionContext"))
            .and_then(|s| object_get(s, "sessionIssuer"))
            .and_then(|s| object_get(s, "userName"))
            .and_then(as_str);
        if let Some(u) = issuer.filter(|u| Some(*u) != seen) {
            users.values().append_value(u);
        }
        users.append(true);
    }

    /// The rows as an Arrow batch (the builder is left empty).
    pub fn finish(&mut self) -> RecordBatch {
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(self.tp_id.finish()),
            Arc::new(self.source_type.finish()),
            Arc::new(self.ingest.finish()),
            Arc::new(self.timestamp.finish()),
            Arc::new(self.source_ip.finish()),
            Arc::new(self.source_name.finish()),
            Arc::new(self.source_location.finish()),
            Arc::new(self.destination_ip.finish()),
        ];
        for l in &mut self.lists {
            cols.push(Arc::new(l.finish()));
        }
        for (c, b) in &mut self.cols {
            cols.push(b.finish(&c.kind));
        }
        cols.push(Arc::new(self.misfits.finish()));
        self.rows = 0;
        RecordBatch::try_new(schema(), cols)
            .unwrap_or_else(|e| unreachable!("archive batch matches its schema: {e}"))
    }
}

fn append_col(
    b: &mut Builder,
    col: &Col,
    parent: Option<Value<'_, '_>>,
    json: &mut Vec<u8>,
    misfits: &mut Vec<(String, String)>,
    name: &str,
) {
    let v = parent.and_then(|p| object_get(p, col.key));
    let Some(v) = v.filter(|v| !v.is_null()) else {
        b.null();
        return;
    };
    let mut misfit = |raw: Value<'_, '_>, json: &mut Vec<u8>| {
        if let Some(t) = json_text(raw, json) {
            misfits.push((name.to_string(), t));
        }
    };
    match b {
        Builder::Str(sb) => match as_str(v) {
            Some(s) => sb.append_value(s),
            None => match json_text(v, json) {
                Some(t) => sb.append_value(t),
                None => sb.append_null(),
            },
        },
        Builder::Json(sb) => match json_text(v, json) {
            Some(t) => sb.append_value(t),
            None => sb.append_null(),
        },
        Builder::Bool(bb) => {
            let parsed =
                v.as_bool()
                    .or_else(|| match as_str(v).map(str::to_ascii_lowercase).as_deref() {
                        Some("true") => Some(true),
                        Some("false") => Some(false),
                        _ => None,
                    });
            match parsed {
                Some(x) => bb.append_value(x),
                None => {
                    bb.append_null();
                    misfit(v, json);
                }
            }
        }
        Builder::Ts(tb) => match as_str(v).and_then(parse_time_micros) {
            Some(t) => tb.append_value(t),
            None => {
                tb.append_null();
                misfit(v, json);
            }
        },
        Builder::Struct(children, valid) => {
            if v.as_object().is_some() {
                valid.push(true);
                for (c, cb) in children.iter_mut() {
                    let child_name = format!("{name}.{}", c.name);
                    append_col(cb, c, Some(v), json, misfits, &child_name);
                }
            } else {
                misfit(v, json);
                valid.push(false);
                for (_, cb) in children.iter_mut() {
                    cb.null();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times() {
        assert_eq!(
            parse_time_micros("2023-07-10T11:42:18Z"),
            Some(1_688_989_338_000_000)
        );
        assert_eq!(
            parse_time_micros("2020-09-14T00:44:20.000Z"),
            Some(1_600_044_260_000_000)
        );
        assert_eq!(parse_time_micros("Jul 3, 2023 11:47:39 AM"), None);
        assert_eq!(date_of(1_688_989_338_000_000), "2023-07-10");
        assert_eq!(date_of(0), "1970-01-01");
        assert_eq!(date_of(951_782_400_000_000), "2000-02-29");
    }

    #[test]
    fn a_record_becomes_a_row_with_misfits_kept() {
        let rec = br#"{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::1:user/a","userName":"a","sessionContext":{"sessionIssuer":{"userName":"r"}}},"eventTime":"Jul 3, 2023 11:47:39 AM","eventName":"ConsoleLogin","readOnly":"yes","managementEvent":true,"sourceIPAddress":"1.2.3.4","resources":[{"ARN":"arn:x"}],"additionalEventData":{"MFAUsed":"No"}}"#;
        let mut bytes = rec.to_vec();
        let tape = simd_json::to_tape(&mut bytes).expect("json");
        let mut b = BatchBuilder::new();
        let meta = RowMeta {
            tp_id: "id1",
            source_type: "file",
            source_name: "files",
            source_location: "x.json",
            ingest_micros: 1,
            timestamp_micros: 1,
        };
        b.append(tape.as_value(), &meta);
        let batch = b.finish();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.schema(), schema());
        let misfits = batch
            .column_by_name("tp_misfits")
            .and_then(|c| c.as_any().downcast_ref::<arrow_array::StringArray>())
            .map(|a| a.value(0).to_string());
        assert_eq!(
            misfits.as_deref(),
            Some(r#"{"event_time":"Jul 3, 2023 11:47:39 AM","read_only":"yes"}"#)
        );
        let aed = batch
            .column_by_name("additional_event_data")
            .and_then(|c| c.as_any().downcast_ref::<arrow_array::StringArray>())
            .map(|a| a.value(0).to_string());
        assert_eq!(aed.as_deref(), Some(r#"{"MFAUsed":"No"}"#));
    }
}
