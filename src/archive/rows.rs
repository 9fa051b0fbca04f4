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
    Struct(Children, Vec<bool>),
}

/// The columns of an object (the record, or a struct column) and a table from their
/// CloudTrail keys to their positions, so one pass over the object's keys finds them all.
struct Children {
    cols: Vec<(Col, Builder)>,
    exact: rustc_hash::FxHashMap<&'static str, usize>,
    folded: rustc_hash::FxHashMap<String, usize>,
}

/// Most columns of one object.
const MAX_CHILDREN: usize = 32;

impl Children {
    fn new(cols: &[Col]) -> Self {
        let mut exact = rustc_hash::FxHashMap::default();
        let mut folded = rustc_hash::FxHashMap::default();
        for (i, c) in cols.iter().enumerate().take(MAX_CHILDREN) {
            exact.insert(c.key, i);
            folded.entry(c.key.to_ascii_lowercase()).or_insert(i);
        }
        Children {
            cols: cols
                .iter()
                .map(|c| (c.clone(), Builder::new(&c.kind)))
                .collect(),
            exact,
            folded,
        }
    }

    /// Appends the object's values (all NULL when `obj` is `None`).
    fn append(&mut self, obj: Option<Value<'_, '_>>, ctx: &mut RowCtx<'_>, path: Path) {
        let mut vals: [Option<Value<'_, '_>>; MAX_CHILDREN] = [None; MAX_CHILDREN];
        let mut fold: [Option<Value<'_, '_>>; MAX_CHILDREN] = [None; MAX_CHILDREN];
        if let Some(o) = obj.and_then(|o| o.as_object()) {
            let mut lower = [0u8; 64];
            for (k, v) in o.iter() {
                if let Some(&i) = self.exact.get(k) {
                    if vals[i].is_none() {
                        vals[i] = Some(v);
                    }
                } else if k.len() <= lower.len() {
                    let l = &mut lower[..k.len()];
                    l.copy_from_slice(k.as_bytes());
                    l.make_ascii_lowercase();
                    if let Some(&i) = std::str::from_utf8(l).ok().and_then(|l| self.folded.get(l))
                        && fold[i].is_none()
                    {
                        fold[i] = Some(v);
                    }
                }
            }
        }
        for (i, (col, b)) in self.cols.iter_mut().enumerate() {
            let v = if i < MAX_CHILDREN {
                vals[i].or(fold[i])
            } else {
                obj.and_then(|o| object_get(o, col.key))
            };
            append_value(b, v, ctx, path.push(col.name));
        }
    }
}

/// The column path of a value, for `tp_misfits` (`user_identity.session_context`).
#[derive(Clone, Copy)]
struct Path {
    names: [&'static str; 4],
    depth: usize,
}

impl Path {
    const ROOT: Path = Path {
        names: [""; 4],
        depth: 0,
    };

    fn push(self, name: &'static str) -> Path {
        let mut p = self;
        if p.depth < p.names.len() {
            p.names[p.depth] = name;
            p.depth += 1;
        }
        p
    }

    fn text(&self) -> String {
        self.names[..self.depth].join(".")
    }
}

/// Reusable buffers of one row.
struct RowCtx<'a> {
    json: &'a mut Vec<u8>,
    misfits: &'a mut Vec<(String, String)>,
}

impl Builder {
    fn new(kind: &ColKind) -> Self {
        match kind {
            ColKind::Str => Builder::Str(StringBuilder::new()),
            ColKind::Json => Builder::Json(StringBuilder::new()),
            ColKind::Bool => Builder::Bool(BooleanBuilder::new()),
            ColKind::Timestamp => Builder::Ts(TimestampMicrosecondBuilder::new()),
            ColKind::Struct(cols) => Builder::Struct(Children::new(cols), Vec::new()),
        }
    }

    fn null(&mut self) {
        match self {
            Builder::Str(b) | Builder::Json(b) => b.append_null(),
            Builder::Bool(b) => b.append_null(),
            Builder::Ts(b) => b.append_null(),
            Builder::Struct(children, valid) => {
                valid.push(false);
                for (_, c) in &mut children.cols {
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
                    .cols
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
    cols: Children,
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

/// Writes `v` as compact JSON into `buf` (cleared first); its text, if valid UTF-8.
fn json_text<'b>(v: Value<'_, '_>, buf: &'b mut Vec<u8>) -> Option<&'b str> {
    buf.clear();
    v.write(buf).ok()?;
    std::str::from_utf8(buf).ok()
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
            cols: Children::new(&super::schema::record_columns()),
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
        let mut ctx = RowCtx {
            json: &mut self.json,
            misfits: &mut self.row_misfits,
        };
        self.cols.append(Some(root), &mut ctx, Path::ROOT);
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
        for (c, b) in &mut self.cols.cols {
            cols.push(b.finish(&c.kind));
        }
        cols.push(Arc::new(self.misfits.finish()));
        self.rows = 0;
        RecordBatch::try_new(schema(), cols)
            .unwrap_or_else(|e| unreachable!("archive batch matches its schema: {e}"))
    }
}

fn append_value(b: &mut Builder, v: Option<Value<'_, '_>>, ctx: &mut RowCtx<'_>, path: Path) {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        b.null();
        return;
    };
    let misfit = |raw: Value<'_, '_>, ctx: &mut RowCtx<'_>| {
        if let Some(t) = json_text(raw, ctx.json) {
            let t = t.to_string();
            ctx.misfits.push((path.text(), t));
        }
    };
    match b {
        Builder::Str(sb) => match as_str(v) {
            Some(s) => sb.append_value(s),
            None => match json_text(v, ctx.json) {
                Some(t) => sb.append_value(t),
                None => sb.append_null(),
            },
        },
        Builder::Json(sb) => match json_text(v, ctx.json) {
            Some(t) => sb.append_value(t),
            None => sb.append_null(),
        },
        Builder::Bool(bb) => {
            let parsed = v.as_bool().or_else(|| match as_str(v) {
                Some(s) if s.eq_ignore_ascii_case("true") => Some(true),
                Some(s) if s.eq_ignore_ascii_case("false") => Some(false),
                _ => None,
            });
            match parsed {
                Some(x) => bb.append_value(x),
                None => {
                    bb.append_null();
                    misfit(v, ctx);
                }
            }
        }
        Builder::Ts(tb) => match as_str(v).and_then(parse_time_micros) {
            Some(t) => tb.append_value(t),
            None => {
                tb.append_null();
                misfit(v, ctx);
            }
        },
        Builder::Struct(children, valid) => {
            if v.as_object().is_some() {
                valid.push(true);
                children.append(Some(v), ctx, path);
            } else {
                misfit(v, ctx);
                valid.push(false);
                for (_, cb) in &mut children.cols {
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
