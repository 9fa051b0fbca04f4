//! A worker: one [`Work`] unit → decompress → frame → parse → match → rendered output.
//!
//! Everything a record needs happens here, in place, on buffers the worker owns and
//! reuses (the way one ripgrep worker searches and prints a file): no record crosses a
//! channel, only the unit's bytes in and its rendered findings out.

use std::sync::Arc;
use std::time::SystemTime;

use simd_json::tape::Value;

use super::{Done, InputFailure, Note, PipelineConfig, Work};
use crate::archive::{self, RowMeta};
use crate::decode::{
    Candidate, FrameHandler, GzipError, Mode, Position, detect_mode, frame, frame_message,
    gunzip_into, is_gzip,
};
use crate::event::path::{self, object_get};
use crate::event::{KnownPaths, RecordParser, looks_like_record};
use crate::finding::{self, FindingContext};
use crate::rules::RulePack;
use crate::sink::dead_letter;
use crate::source::{Input, InputKind, Message};
use crate::state::{self, FindingMeta, KeyHasher, RecordKey};

/// Notes kept per unit for the stderr warnings (the sink shows 10 per input).
const NOTES_PER_UNIT: usize = 10;

/// Reusable state of one worker thread.
pub(super) struct Worker {
    pack: Arc<RulePack>,
    known: Arc<KnownPaths>,
    cfg: PipelineConfig,
    keep_dead: bool,
    parser: RecordParser,
    nested: RecordParser,
    hits: Vec<u32>,
    scratch: Vec<u8>,
    file_buf: Vec<u8>,
    inflated: Vec<u8>,
}

impl Worker {
    pub fn new(
        pack: Arc<RulePack>,
        known: Arc<KnownPaths>,
        cfg: PipelineConfig,
        keep_dead: bool,
    ) -> Self {
        Worker {
            pack,
            known,
            cfg,
            keep_dead,
            parser: RecordParser::new(),
            nested: RecordParser::new(),
            hits: Vec::with_capacity(16),
            scratch: Vec::with_capacity(128),
            file_buf: Vec::new(),
            inflated: Vec::new(),
        }
    }

    /// One unit's output: one [`Done`] per input it holds (several for a group).
    pub fn process(&mut self, unit: super::Unit) -> Vec<Done> {
        if !Arc::ptr_eq(&self.pack, &unit.pack) {
            // A reload: this and later units are matched against the new rules.
            self.pack = unit.pack;
        }
        let mut out = self.process_unit(unit.work);
        let last = out.len().saturating_sub(1);
        for (i, d) in out.iter_mut().enumerate() {
            d.pack = Some(self.pack.clone());
            d.finish_archive();
            // A group's permit goes back with its last file.
            d.returns_permit = i == last;
        }
        out
    }

    fn process_unit(&mut self, work: Work) -> Vec<Done> {
        let done = match work {
            Work::File {
                seq,
                input,
                body,
                ack,
            } => {
                let mut done = self.file(seq, input, body);
                done.ack = ack;
                done
            }
            Work::Messages {
                seq,
                input,
                messages,
                ack,
            } => {
                let mut done = self.messages(seq, input, &messages);
                done.ack = ack;
                done
            }
            Work::Chunk {
                seq,
                input,
                bytes,
                mode,
                base,
            } => {
                let mut done = Done::new(seq, input);
                done.counters.bytes_decoded = bytes.len() as u64;
                self.frame_into(&mut done, &bytes, mode, base);
                done
            }
            Work::Oversized {
                seq,
                input,
                head,
                len,
                pos,
                limit,
            } => {
                let mut done = Done::new(seq, input);
                done.counters.bytes_decoded = len;
                let reason = format!("record of {len} bytes exceeds max_record_bytes ({limit})");
                self.handler(&mut done).eval.dead(&head, pos, reason, len);
                done
            }
            Work::End {
                seq,
                input,
                bytes_in,
                failure,
                ack,
            } => {
                let mut done = Done::new(seq, input);
                done.end = Some((bytes_in, failure));
                done.ack = ack;
                done
            }
            Work::Group(files) => {
                return files
                    .into_iter()
                    .map(|f| {
                        let mut done = self.file(f.seq, f.input, None);
                        done.ack = f.ack;
                        done
                    })
                    .collect();
            }
        };
        vec![done]
    }

    fn file(&mut self, seq: u64, input: Arc<Input>, body: Option<Vec<u8>>) -> Done {
        let mut done = Done::new(seq, input.clone());
        let mut raw = match body {
            Some(b) => b,
            None => {
                let InputKind::File(path) = &input.kind else {
                    return done;
                };
                let mut raw = std::mem::take(&mut self.file_buf);
                if let Err(e) = super::reader::read_file(path, &mut raw) {
                    done.end = Some((0, Some(InputFailure::io(e.to_string()))));
                    self.file_buf = raw;
                    return done;
                }
                raw
            }
        };
        let bytes_in = raw.len() as u64;
        let mut failure = None;
        let base = Position { offset: 0, line: 1 };
        if is_gzip(&raw) {
            let mut inflated = std::mem::take(&mut self.inflated);
            inflated.clear();
            match gunzip_into(&raw, &mut inflated, self.cfg.max_inflated_bytes) {
                Ok(()) => {}
                Err(e @ GzipError::Damaged { .. }) => {
                    failure = Some(InputFailure::content(e.to_string()))
                }
                Err(e @ GzipError::TooLarge { .. }) => {
                    failure = Some(InputFailure::io(e.to_string()))
                }
            }
            done.counters.bytes_decoded = inflated.len() as u64;
            let mode = detect_mode(&inflated);
            self.frame_into(&mut done, &inflated, mode, base);
            shrink(&mut inflated);
            self.inflated = inflated;
        } else {
            done.counters.bytes_decoded = raw.len() as u64;
            let mode = detect_mode(&raw);
            self.frame_into(&mut done, &raw, mode, base);
        }
        shrink(&mut raw);
        self.file_buf = raw;
        done.end = Some((bytes_in, failure));
        done
    }

    /// A batch of queue messages: each is inflated when gzip and framed on its own, its
    /// records positioned by the message's offset (`line`) and the byte offset inside it.
    fn messages(&mut self, seq: u64, input: Arc<Input>, messages: &[Message]) -> Done {
        let mut done = Done::new(seq, input);
        let max = self.cfg.max_record_bytes;
        let mut bytes_in = 0u64;
        let mut inflated = std::mem::take(&mut self.inflated);
        for m in messages {
            bytes_in += m.payload.len() as u64;
            let line = u64::try_from(m.offset).unwrap_or(0);
            let pos = Position { offset: 0, line };
            if m.payload.iter().all(|b| b.is_ascii_whitespace()) {
                // A tombstone or an empty message holds no record.
                done.counters.documents_skipped += 1;
                continue;
            }
            if !is_gzip(&m.payload) {
                done.counters.bytes_decoded += m.payload.len() as u64;
                let mut h = self.handler(&mut done);
                frame_message(&m.payload, line, max, &mut h);
                continue;
            }
            inflated.clear();
            let res = gunzip_into(&m.payload, &mut inflated, self.cfg.max_inflated_bytes);
            done.counters.bytes_decoded += inflated.len() as u64;
            let mut h = self.handler(&mut done);
            if !matches!(res, Err(GzipError::TooLarge { .. })) {
                frame_message(&inflated, line, max, &mut h);
            }
            if let Err(e) = res {
                // The message's bytes are kept whole in the dead letter; the complete
                // records before the damage were processed.
                let len = m.payload.len() as u64;
                h.eval.dead(&m.payload, pos, format!("message: {e}"), len);
            }
        }
        shrink(&mut inflated);
        self.inflated = inflated;
        done.end = Some((bytes_in, None));
        done
    }

    fn handler<'a>(&'a mut self, done: &'a mut Done) -> Handler<'a> {
        Handler {
            parser: &mut self.parser,
            nested: &mut self.nested,
            eval: Eval {
                pack: &self.pack,
                known: &self.known,
                include_record: self.cfg.include_record,
                keep_dead: self.keep_dead,
                archive_partition: self.cfg.archive_partition.as_deref(),
                tp_index: self.cfg.archive_tp_index.as_ref(),
                ingest_micros: 0,
                state: StateHooks {
                    on: self.cfg.stateful || self.pack.is_stateful(),
                    dedup: self.cfg.dedup.then_some(&self.cfg.key_hasher),
                    hasher: &self.cfg.key_hasher,
                },
                filter: self.cfg.filter.as_deref(),
                filter_detection: self.cfg.filter_applies_to_detection,
                time_range: self.cfg.time_range,
                hits: &mut self.hits,
                scratch: &mut self.scratch,
                detected_at: String::new(),
                done,
            },
        }
    }

    fn frame_into(&mut self, done: &mut Done, bytes: &[u8], mode: Mode, base: Position) {
        let max = self.cfg.max_record_bytes;
        let mut h = self.handler(done);
        frame(bytes, mode, base, max, &mut h);
    }
}

/// Keeps big one-off buffers from pinning memory after a large input.
fn shrink(buf: &mut Vec<u8>) {
    if buf.capacity() > 64 << 20 {
        *buf = Vec::new();
    }
}

/// Everything a parsed record needs: the rules, the output of its unit, buffers.
struct Eval<'a> {
    pack: &'a RulePack,
    known: &'a KnownPaths,
    include_record: bool,
    keep_dead: bool,
    archive_partition: Option<&'a str>,
    tp_index: Option<&'a crate::event::FieldPath>,
    ingest_micros: i64,
    state: StateHooks<'a>,
    filter: Option<&'a crate::filter::RecordFilter>,
    filter_detection: bool,
    time_range: Option<(i64, i64)>,
    hits: &'a mut Vec<u32>,
    scratch: &'a mut Vec<u8>,
    detected_at: String,
    done: &'a mut Done,
}

/// What the stateful stage asks of a worker.
#[derive(Clone, Copy)]
struct StateHooks<'a> {
    /// Compute event times and finding metadata.
    on: bool,
    /// Compute dedup keys with this hasher.
    dedup: Option<&'a KeyHasher>,
    /// The hasher for suppression and group keys.
    hasher: &'a KeyHasher,
}

/// The [`FrameHandler`] of a unit: parsers plus the evaluation state.
struct Handler<'a> {
    parser: &'a mut RecordParser,
    nested: &'a mut RecordParser,
    eval: Eval<'a>,
}

impl Eval<'_> {
    fn next_index(&mut self) -> u64 {
        let i = self.done.counters.records_in;
        self.done.counters.records_in += 1;
        i
    }

    /// Counts and (with a dead-letter file) renders a record that cannot be used.
    /// `raw` may be a prefix of the `raw_len` bad bytes.
    fn dead(&mut self, raw: &[u8], pos: Position, reason: String, raw_len: u64) {
        let rel = self.next_index();
        self.done.counters.records_dead_lettered += 1;
        if self.keep_dead {
            let name = &self.done.input.name_json;
            dead_letter::render(&mut self.done.dead, name, pos, rel, &reason, raw, raw_len);
        }
        if self.done.notes.len() < NOTES_PER_UNIT {
            self.done.notes.push(Note { rel, pos, reason });
        } else {
            self.done.notes_dropped += 1;
        }
    }

    /// Evaluates one parsed record and renders its findings.
    fn record(&mut self, root: Value<'_, '_>, raw: &[u8], pos: Position) {
        if root.as_object().is_none() {
            let reason = "record is not a JSON object".to_string();
            return self.dead(raw, pos, reason, raw.len() as u64);
        }
        let rel = self.next_index();
        let known = self.known;
        let st = self.state;
        let c = &mut self.done.counters;
        let time_text = known
            .event_time
            .first(root)
            .or_else(|| known.timestamp.first(root))
            .and_then(path::as_str);
        if time_text.is_none() {
            c.records_without_event_time += 1;
        }
        if let Some((since, until)) = self.time_range {
            // `--since/--until`: a half-open interval of event time (else ingest time).
            let t = time_text
                .and_then(state::parse_event_time)
                .unwrap_or_else(archive::now_micros);
            if t < since || t >= until {
                c.records_filtered += 1;
                return;
            }
        }
        let filtered = match self.filter {
            Some(f) => !f.keep(&crate::event::path::RootCache::new(root)),
            None => false,
        };
        if filtered {
            c.records_filtered += 1;
            if self.filter_detection {
                return;
            }
        } else {
            c.records_kept += 1;
        }
        let mut time = 0;
        if st.on {
            if self.ingest_micros == 0 {
                self.ingest_micros = archive::now_micros();
            }
            // No usable event time: the stage takes the stream's current one
            // (`state::NO_TIME`), so such a record cannot move the watermark.
            time = time_text
                .and_then(state::parse_event_time)
                .unwrap_or(state::NO_TIME);
            let b = &mut self.done.state;
            b.max_time = Some(b.max_time.map_or(time, |m| m.max(time)));
            let mut key = 0;
            if let (Some(h), false) = (st.dedup, filtered)
                && let Some(id) = known.event_id.first(root).and_then(path::as_str)
            {
                let account = known
                    .recipient_account_id
                    .first(root)
                    .and_then(path::as_str);
                key = h.record_key(id, account);
            }
            b.records.push(RecordKey { rel, key, time });
        }
        if !filtered && let Some(partition) = self.archive_partition {
            self.archive(root, raw, partition, rel);
        }
        self.pack.evaluate(root, self.scratch, self.hits);
        if self.hits.is_empty() {
            return;
        }
        if self.detected_at.is_empty() {
            let now = humantime::format_rfc3339_micros(SystemTime::now());
            self.detected_at = format!("\"{now}\"");
        }
        let ctx = FindingContext {
            input_json: &self.done.input.name_json,
            detected_at_json: &self.detected_at,
            include_record: self.include_record,
            known,
        };
        let mut record_range = None;
        for &h in self.hits.iter() {
            let rule = &self.pack.rules()[h as usize];
            if !self.pack.is_silent(h) {
                finding::render(&mut self.done.findings, rule, h, root, raw, pos, rel, &ctx);
                self.done.counters.add_finding(h);
                if st.on {
                    let suppress = rule.suppress.as_ref().map(|s| {
                        // The `by` values as a JSON object (names sorted at load time).
                        let mut by = Vec::with_capacity(64);
                        by.push(b'{');
                        for (i, (name, p)) in s.by.iter().enumerate() {
                            if i > 0 {
                                by.push(b',');
                            }
                            let _ = serde_json::to_writer(&mut by, name);
                            by.push(b':');
                            finding::write_value(&mut by, p.first(root));
                        }
                        by.push(b'}');
                        let by = String::from_utf8_lossy(&by).into_owned();
                        let key = st.hasher.values_key(h, &by);
                        (key, by.into_boxed_str())
                    });
                    self.done.state.findings.push(FindingMeta {
                        rel,
                        rule: h,
                        time,
                        suppress,
                    });
                }
            }
            state::contribute(
                self.pack,
                h,
                root,
                raw,
                known,
                state::At {
                    rel,
                    pos,
                    time,
                    seen: self.done.state.max_time.unwrap_or(time),
                },
                st.hasher,
                &mut record_range,
                &mut self.done.state,
            );
        }
    }

    /// Appends a kept record to its partition's archive rows.
    fn archive(&mut self, root: Value<'_, '_>, raw: &[u8], partition: &str, rel: u64) {
        let k = self.known;
        if self.ingest_micros == 0 {
            self.ingest_micros = archive::now_micros();
        }
        let text = |p: &crate::event::FieldPath| p.first(root).and_then(path::as_str);
        let event_id = text(&k.event_id);
        let account = text(&k.recipient_account_id);
        let timestamp = text(&k.event_time)
            .or_else(|| text(&k.timestamp))
            .and_then(archive::parse_time_micros)
            .unwrap_or(self.ingest_micros);
        let index = match &self.tp_index {
            Some(p) => text(p),
            None => account.or_else(|| text(&k.principal_account)),
        }
        .unwrap_or("unknown");
        let id = archive::tp_id(event_id, account, raw);
        let input = self.done.input.clone();
        let meta = RowMeta {
            tp_id: std::str::from_utf8(&id).unwrap_or_default(),
            source_type: input.source_type(),
            source_name: input.source.as_deref().unwrap_or(partition),
            source_location: &input.name,
            ingest_micros: self.ingest_micros,
            timestamp_micros: timestamp,
        };
        let (rels, builder) = self.done.archive_builder(index, timestamp);
        rels.push(rel);
        builder.append(root, &meta);
    }

    /// The messages of a CloudWatch Logs subscription payload, each a record. All of
    /// them share the payload's position.
    fn cloudwatch(&mut self, nested: &mut RecordParser, root: Value<'_, '_>, pos: Position) {
        let Some(events) = object_get(root, "logEvents").and_then(|v| v.as_array()) else {
            self.done.counters.documents_skipped += 1;
            return;
        };
        for ev in events.iter() {
            let Some(msg) = object_get(ev, "message").and_then(path::as_str) else {
                let reason = "CloudWatch log event has no message string".to_string();
                self.dead(b"", pos, reason, 0);
                continue;
            };
            let raw = msg.as_bytes();
            nested.parse(raw, |res| match res {
                Ok(r) => self.record(r, raw, pos),
                Err(e) => self.dead(raw, pos, e.to_string(), raw.len() as u64),
            });
        }
    }
}

impl Eval<'_> {
    /// An EventBridge event whose `detail` is a CloudTrail record (`"detail-type":
    /// "AWS API Call via CloudTrail"` and its siblings): the record is `detail`, its raw
    /// bytes the member's bytes in the envelope.
    fn eventbridge(&mut self, nested: &mut RecordParser, bytes: &[u8], pos: Position) {
        let open = crate::decode::scan::skip_ws(bytes, 0);
        let range = match crate::decode::scan::find_member(bytes, open, b"detail") {
            Ok((Some(r), _)) => r,
            _ => {
                self.done.counters.documents_skipped += 1;
                return;
            }
        };
        let raw = &bytes[range.clone()];
        let pos = Position {
            offset: pos.offset + range.start as u64,
            line: pos.line,
        };
        nested.parse(raw, |res| match res {
            Ok(r) => self.record(r, raw, pos),
            Err(e) => self.dead(raw, pos, e.to_string(), raw.len() as u64),
        });
    }
}

impl FrameHandler for Handler<'_> {
    fn candidate(&mut self, bytes: &[u8], pos: Position) -> Candidate {
        let eval = &mut self.eval;
        let nested = &mut *self.nested;
        self.parser.parse(bytes, |res| match res {
            Err(e) => Candidate::NotJson(e.to_string()),
            Ok(root) => {
                if looks_like_record(root) {
                    eval.record(root, bytes, pos);
                } else if object_get(root, "Records").is_some_and(|r| r.as_array().is_some()) {
                    return Candidate::Envelope;
                } else if object_get(root, "messageType").and_then(path::as_str)
                    == Some("DATA_MESSAGE")
                {
                    eval.cloudwatch(nested, root, pos);
                } else if object_get(root, "detail-type")
                    .and_then(path::as_str)
                    .is_some()
                    && object_get(root, "detail").is_some_and(looks_like_record)
                {
                    eval.eventbridge(nested, bytes, pos);
                } else {
                    eval.done.counters.documents_skipped += 1;
                }
                Candidate::Handled
            }
        })
    }

    fn element(&mut self, bytes: &[u8], pos: Position) {
        let eval = &mut self.eval;
        self.parser.parse(bytes, |res| match res {
            // An object with none of the record keys (a manifest entry, say) is a document.
            Ok(root) if root.as_object().is_some() && !looks_like_record(root) => {
                eval.done.counters.documents_skipped += 1;
            }
            Ok(root) => eval.record(root, bytes, pos),
            Err(e) => eval.dead(bytes, pos, e.to_string(), bytes.len() as u64),
        });
    }

    fn dead_letter(&mut self, bytes: &[u8], pos: Position, reason: String) {
        self.eval.dead(bytes, pos, reason, bytes.len() as u64);
    }
}
