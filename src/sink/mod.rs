//! Stage 5 of the pipeline: sinks, where findings and dead letters leave trailhound.
//!
//! Previous module: [`crate::pipeline`]'s workers hand over [`rendered::Rendered`]
//! batches (findings and dead letters, already JSON). The sink writes them in input
//! order, splicing in the absolute `record_index`.
//!
//! **Invariant.** stdout carries findings only; everything else goes to stderr or to
//! the dead-letter file. A closed stdout (`| head`) is not an error: the run stops
//! quietly ([`SinkError::Closed`]).
//!
//! **Decision.** Workers render JSON, the single sink thread only copies bytes: output
//! formatting is the most expensive per-finding step and runs in parallel that way.
//! A sink with another [`format`] (OCSF, ECS, text) or an `enrich:` section re-encodes
//! each native line on the sink thread, about 3–10 µs a finding (docs/output.md).
//!
//! **Several sinks.** `sinks:` lists any number of stdout, [`file`] and [`kafka`] sinks,
//! each with an optional [`route`]; every finding goes to each sink whose route takes
//! its rule. With one unrouted stdout sink (the default) batches are copied whole.
//!
//! **Delivery.** An input's acknowledgement passes through [`Output::hold`]: writers
//! (stdout, files) are flushed to the operating system first; each Kafka sink holds a
//! part of it until the findings produced before it are confirmed by the broker. Only
//! when every part has fired does the source let go of the input.

pub mod dead_letter;
pub mod file;
pub mod format;
pub mod kafka;
pub mod rendered;
pub mod route;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde::Deserialize;

use crate::rules::RulePack;
use crate::source::Ack;
use crate::state::Emit;
use format::{ColorChoice, Encoder, FindingFormat, FormatOptions};
use rendered::Rendered;
use route::Route;

/// Why a sink stopped.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The reader of stdout went away.
    #[error("stdout was closed")]
    Closed,
    /// Writing findings failed.
    #[error("writing findings to stdout: {0}")]
    Stdout(io::Error),
    /// The dead-letter file cannot be written.
    #[error("dead-letter file {path}: {source}")]
    DeadLetter {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A findings file cannot be written.
    #[error("sink {name}: findings file {path}: {source}")]
    File {
        /// The sink.
        name: String,
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A Kafka sink failed.
    #[error("sink {name}: {message}")]
    Kafka {
        /// The sink.
        name: String,
        /// What happened.
        message: String,
    },
    /// A sink's configuration is not usable.
    #[error("sinks[{index}] ({kind}): {message}")]
    Config {
        /// Position in `sinks:`.
        index: usize,
        /// The sink's kind.
        kind: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// `sinks: - stdout: {...}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {
    /// The sink's name (default `stdout`).
    pub name: Option<String>,
    /// Which findings it takes.
    pub route: Option<Route>,
    /// Finding format: native (default), ocsf, ecs, text.
    pub format: Option<String>,
}

/// One entry of `sinks:`, a mapping with one key, its kind.
#[derive(Debug, Clone)]
pub enum SinkConfig {
    /// Findings to stdout.
    Stdout(StdoutConfig),
    /// Findings to a rotating file.
    File(file::FileConfig),
    /// Findings to a Kafka topic.
    Kafka(Box<kafka::KafkaSinkConfig>),
}

impl<'de> Deserialize<'de> for SinkConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let map = BTreeMap::<String, serde_yaml_ng::Value>::deserialize(d)?;
        let (kind, body) = crate::config::one_kind::<D::Error>(map, "sink", "stdout, file, kafka")?;
        let e = |err: serde_yaml_ng::Error| D::Error::custom(format!("{kind}: {err}"));
        Ok(match kind.as_str() {
            "stdout" => SinkConfig::Stdout(serde_yaml_ng::from_value(body).map_err(e)?),
            "file" => SinkConfig::File(serde_yaml_ng::from_value(body).map_err(e)?),
            "kafka" => SinkConfig::Kafka(Box::new(serde_yaml_ng::from_value(body).map_err(e)?)),
            other => {
                return Err(D::Error::custom(format!(
                    "unknown sink kind {other:?} (stdout, file, kafka)"
                )));
            }
        })
    }
}

impl SinkConfig {
    /// `stdout`, `file`, `kafka`.
    pub fn kind(&self) -> &'static str {
        match self {
            SinkConfig::Stdout(_) => "stdout",
            SinkConfig::File(_) => "file",
            SinkConfig::Kafka(_) => "kafka",
        }
    }

    /// The sink's name (its kind unless `name:` is given).
    pub fn name(&self) -> String {
        match self {
            SinkConfig::Stdout(c) => c.name.clone(),
            SinkConfig::File(c) => c.name.clone(),
            SinkConfig::Kafka(c) => c.name.clone(),
        }
        .unwrap_or_else(|| self.kind().to_string())
    }

    fn common(&self) -> (Option<&Route>, Option<&str>) {
        match self {
            SinkConfig::Stdout(c) => (c.route.as_ref(), c.format.as_deref()),
            SinkConfig::File(c) => (c.route.as_ref(), c.format.as_deref()),
            SinkConfig::Kafka(c) => (c.route.as_ref(), c.format.as_deref()),
        }
    }

    /// Checks what can be checked without opening anything.
    pub fn validate(&self, index: usize) -> Result<(), SinkError> {
        let fail = |message: String| SinkError::Config {
            index,
            kind: self.kind(),
            message,
        };
        let (route, format) = self.common();
        if let Some(r) = route {
            r.validate().map_err(|e| fail(e.to_string()))?;
        }
        if let Some(f) = format
            && FindingFormat::parse(f).is_none()
        {
            return Err(fail(format!(
                "format {f:?}: unknown (native, ocsf, ecs, text)"
            )));
        }
        match self {
            SinkConfig::Stdout(_) => {}
            SinkConfig::File(c) => {
                if let Some(s) = &c.max_bytes {
                    crate::config::parse_size(s)
                        .ok_or_else(|| fail(format!("max_bytes: {s:?} is not a size")))?;
                }
                if let Some(s) = &c.max_age {
                    crate::config::parse_duration(s)
                        .ok_or_else(|| fail(format!("max_age: {s:?} is not a duration")))?;
                }
            }
            SinkConfig::Kafka(c) => {
                kafka::KeyTemplate::parse(c.key.as_deref().unwrap_or("{id}")).map_err(fail)?;
                kafka::producer_config(c, "check").map_err(fail)?;
                if c.topic.is_empty() {
                    return Err(fail("topic is empty".into()));
                }
                if c.brokers.bootstrap().is_empty() {
                    return Err(fail("brokers is empty".into()));
                }
            }
        }
        Ok(())
    }
}

enum Kind {
    Stream(Box<dyn Write + Send>),
    File(file::RotatingFile),
    Kafka(Box<kafka::KafkaSink>),
}

/// One sink of a run.
struct Target {
    name: String,
    route: Option<Route>,
    /// Per rule index: whether this sink takes the rule's findings.
    takes: Vec<bool>,
    kind: Kind,
    format: FindingFormat,
    colour: bool,
}

impl Target {
    fn takes(&self, rule: u32) -> bool {
        self.takes.get(rule as usize).copied().unwrap_or(true)
    }

    /// Writes `line` (the finding in this sink's format); `native` is the native line
    /// a Kafka key is taken from.
    fn write_line(&mut self, native: &[u8], line: &[u8]) -> Result<(), SinkError> {
        match &mut self.kind {
            Kind::Stream(w) => w.write_all(line).map_err(stdout_err),
            Kind::File(f) => f.write_line(line).map_err(|source| SinkError::File {
                name: self.name.clone(),
                path: f.path().to_path_buf(),
                source,
            }),
            Kind::Kafka(k) => {
                let body = line.strip_suffix(b"\n").unwrap_or(line);
                let native = native.strip_suffix(b"\n").unwrap_or(native);
                k.send(native, body).map_err(|message| SinkError::Kafka {
                    name: self.name.clone(),
                    message,
                })
            }
        }
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        match &mut self.kind {
            Kind::Stream(w) => w.flush().map_err(stdout_err),
            Kind::File(f) => f.flush().map_err(|source| SinkError::File {
                name: self.name.clone(),
                path: f.path().to_path_buf(),
                source,
            }),
            Kind::Kafka(k) => match k.failure() {
                Some(message) => Err(SinkError::Kafka {
                    name: self.name.clone(),
                    message,
                }),
                None => Ok(()),
            },
        }
    }
}

/// Delivery counters of the sinks, for the run summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkReport {
    /// The sink's name.
    pub name: String,
    /// `stdout`, `file`, `kafka`.
    pub kind: &'static str,
    /// Findings written or handed to the producer.
    pub findings: u64,
    /// Kafka: findings the broker confirmed.
    pub delivered: Option<u64>,
    /// What failed, if anything.
    pub error: Option<String>,
}

/// The findings sinks and the dead-letter file of a run.
pub struct Output {
    targets: Vec<Target>,
    counts: Vec<u64>,
    dead: Option<(PathBuf, BufWriter<File>)>,
    /// One unrouted stream: batches are copied whole.
    simple: bool,
    line: Vec<u8>,
    encoder: Encoder,
}

impl Output {
    /// Findings to `findings` (stdout, usually); dead letters to `dead_letter` when
    /// given (created or truncated).
    pub fn new(
        findings: Box<dyn Write + Send>,
        dead_letter: Option<&Path>,
    ) -> Result<Self, SinkError> {
        let t = Target {
            name: "stdout".into(),
            route: None,
            takes: Vec::new(),
            kind: Kind::Stream(findings),
            format: FindingFormat::Native,
            colour: false,
        };
        Self::with_targets(vec![t], dead_letter, Encoder::default())
    }

    /// Opens the sinks of `sinks:` (stdout is the process's stdout). `stop` is the
    /// run's shutdown flag: a Kafka sink waiting on a full queue gives up only once it
    /// is set. `formats` gives the format of sinks that name none, colour and `enrich:`.
    pub fn open(
        sinks: &[SinkConfig],
        dead_letter: Option<&Path>,
        stop: Arc<AtomicBool>,
        formats: &FormatOptions,
    ) -> Result<Self, SinkError> {
        let mut targets = Vec::with_capacity(sinks.len());
        for (index, s) in sinks.iter().enumerate() {
            s.validate(index)?;
            let fail = |message: String| SinkError::Config {
                index,
                kind: s.kind(),
                message,
            };
            let kind = match s {
                SinkConfig::Stdout(_) => {
                    Kind::Stream(Box::new(BufWriter::with_capacity(256 * 1024, io::stdout())))
                }
                SinkConfig::File(c) => {
                    let max_bytes = c
                        .max_bytes
                        .as_deref()
                        .and_then(crate::config::parse_size)
                        .map(|n| n as u64);
                    let max_age = c.max_age.as_deref().and_then(crate::config::parse_duration);
                    let f = file::RotatingFile::open(c.path.clone(), max_bytes, max_age, c.keep)
                        .map_err(|e| fail(format!("{}: {e}", c.path.display())))?;
                    Kind::File(f)
                }
                SinkConfig::Kafka(c) => Kind::Kafka(Box::new(
                    kafka::KafkaSink::open(c, stop.clone()).map_err(fail)?,
                )),
            };
            let format = s
                .common()
                .1
                .and_then(FindingFormat::parse)
                .unwrap_or(formats.default);
            let terminal = matches!(s, SinkConfig::Stdout(_))
                && io::IsTerminal::is_terminal(&io::stdout())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            let colour = match formats.color {
                ColorChoice::Always => true,
                ColorChoice::Never => false,
                ColorChoice::Auto => terminal,
            };
            targets.push(Target {
                name: s.name(),
                route: s.common().0.cloned(),
                takes: Vec::new(),
                kind,
                format,
                colour,
            });
        }
        Self::with_targets(targets, dead_letter, Encoder::new(formats.enrich.clone()))
    }

    fn with_targets(
        targets: Vec<Target>,
        dead_letter: Option<&Path>,
        encoder: Encoder,
    ) -> Result<Self, SinkError> {
        let dead = match dead_letter {
            Some(p) => {
                let f = File::create(p).map_err(|source| SinkError::DeadLetter {
                    path: p.to_path_buf(),
                    source,
                })?;
                Some((p.to_path_buf(), BufWriter::with_capacity(256 * 1024, f)))
            }
            None => None,
        };
        let simple = targets.len() == 1
            && targets[0].route.is_none()
            && encoder.passthrough(targets[0].format)
            && matches!(targets[0].kind, Kind::Stream(_));
        Ok(Output {
            counts: vec![0; targets.len()],
            targets,
            dead,
            simple,
            line: Vec::with_capacity(4096),
            encoder,
        })
    }

    /// Resolves the routes against the run's rules.
    pub fn bind(&mut self, pack: &RulePack) {
        for t in &mut self.targets {
            t.takes = Route::resolve(t.route.as_ref(), pack);
        }
        if self
            .targets
            .iter()
            .any(|t| !self.encoder.passthrough(t.format))
        {
            self.encoder.bind(format::rule_docs(pack));
        }
    }

    /// Whether dead letters are written anywhere (workers skip rendering them if not).
    pub fn keeps_dead_letters(&self) -> bool {
        self.dead.is_some()
    }

    fn dispatch(&mut self, rule: u32, line: &[u8]) -> Result<(), SinkError> {
        self.encoder.next_line();
        for (i, t) in self.targets.iter_mut().enumerate() {
            if t.takes(rule) {
                self.counts[i] += 1;
                let encoded = self.encoder.encode(rule, line, t.format, t.colour);
                t.write_line(line, encoded)?;
            }
        }
        Ok(())
    }

    /// Writes a batch of findings.
    pub fn write_findings(&mut self, r: &Rendered, base: u64) -> Result<(), SinkError> {
        if self.simple
            && let Some(t) = self.targets.first_mut()
            && let Kind::Stream(w) = &mut t.kind
        {
            self.counts[0] += r.len() as u64;
            return r.write_to(w, base).map_err(stdout_err);
        }
        let mut line = std::mem::take(&mut self.line);
        let mut res = Ok(());
        for i in 0..r.len() {
            line.clear();
            r.line_into(i, base, &mut line);
            res = self.dispatch(r.rule(i), &line);
            if res.is_err() {
                break;
            }
        }
        self.line = line;
        res
    }

    /// Writes the lines the stateful stage emitted for a unit.
    pub fn write_emit(&mut self, e: &Emit) -> Result<(), SinkError> {
        if self.simple
            && let Some(t) = self.targets.first_mut()
            && let Kind::Stream(w) = &mut t.kind
        {
            self.counts[0] += e.lines().count() as u64;
            return w.write_all(&e.buf).map_err(stdout_err);
        }
        for (rule, line) in e.lines() {
            self.dispatch(rule, line)?;
        }
        Ok(())
    }

    /// Writes a batch of dead letters.
    pub fn write_dead_letters(&mut self, r: &Rendered, base: u64) -> Result<(), SinkError> {
        if let Some((path, w)) = &mut self.dead {
            r.write_to(w, base)
                .map_err(|source| SinkError::DeadLetter {
                    path: path.clone(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Flushes the writers (and reports a Kafka sink's permanent failure).
    pub fn flush(&mut self) -> Result<(), SinkError> {
        for t in &mut self.targets {
            t.flush()?;
        }
        if let Some((path, w)) = &mut self.dead {
            w.flush().map_err(|source| SinkError::DeadLetter {
                path: path.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Takes an input's acknowledgement once its findings are flushed: every Kafka
    /// sink holds a part until its deliveries catch up; the returned part is the
    /// caller's (the archive's, or fired at once).
    pub fn hold(&mut self, ack: Ack) -> Ack {
        let kafka: Vec<&kafka::KafkaSink> = self
            .targets
            .iter()
            .filter_map(|t| match &t.kind {
                Kind::Kafka(k) => Some(&**k),
                _ => None,
            })
            .collect();
        if kafka.is_empty() {
            return ack;
        }
        let mut parts = ack.join(kafka.len() + 1);
        let mine = parts.pop().unwrap_or_else(|| Ack::new(|| {}));
        for (k, part) in kafka.into_iter().zip(parts) {
            k.hold(part);
        }
        mine
    }

    /// Ends the run: flushes and fsyncs files, waits for Kafka deliveries. The first
    /// failure is returned; every sink is finished regardless.
    pub fn finish(&mut self) -> Result<Vec<SinkReport>, SinkError> {
        let mut first = self.flush().err();
        let mut reports = Vec::with_capacity(self.targets.len());
        for (i, t) in self.targets.iter_mut().enumerate() {
            let mut r = SinkReport {
                name: t.name.clone(),
                kind: "stdout",
                findings: self.counts[i],
                delivered: None,
                error: None,
            };
            let res = match &mut t.kind {
                Kind::Stream(_) => Ok(()),
                Kind::File(f) => {
                    r.kind = "file";
                    f.close().map_err(|source| SinkError::File {
                        name: t.name.clone(),
                        path: f.path().to_path_buf(),
                        source,
                    })
                }
                Kind::Kafka(k) => {
                    r.kind = "kafka";
                    let res = k.finish();
                    r.delivered = Some(k.stats().delivered);
                    res.map(|_| ()).map_err(|message| SinkError::Kafka {
                        name: t.name.clone(),
                        message,
                    })
                }
            };
            if let Err(e) = res {
                r.error = Some(e.to_string());
                first.get_or_insert(e);
            }
            reports.push(r);
        }
        match first {
            Some(e) => Err(e),
            None => Ok(reports),
        }
    }
}

fn stdout_err(e: io::Error) -> SinkError {
    if e.kind() == io::ErrorKind::BrokenPipe {
        SinkError::Closed
    } else {
        SinkError::Stdout(e)
    }
}
