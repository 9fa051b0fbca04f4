//! # trailhound
//!
//! A streaming detection engine for AWS CloudTrail: every record is matched against
//! Sigma rules as it is read, and findings leave as JSON lines.
//!
//! ```text
//! source ─▶ decode ─────────────▶ event ─────────▶ filter ─▶ rules ─────────▶ finding ─▶ state ──────▶ sink
//! stdin,    gzip (magic bytes),   simd-json tape,   SQL over   indexed Sigma,   JSON line   dedup,         stdout,
//! files,    framing: NDJSON,      FieldPath and     Tailpipe   metric-filter    per hit     correlations,  dead letters
//! S3, SQS,  {"Records":[…]},      JSONPath lookup   columns    patterns                     alarms,
//! CW Logs   arrays, CloudWatch                         ╰──────────▶ archive (Parquet)       suppression
//!    ▲                                                                                                   │
//!    └──────────── Ack: SQS delete / checkpoint, once findings are flushed and archive files finished ◀──┘
//! ```
//!
//! [`pipeline`] wires the stages: a reader thread, a pool of workers that each take one
//! unit (a small file or a ~1 MiB chunk of a stream) through decode → parse → filter →
//! match → render, and an in-order sink that runs the stateful stage and writes.
//! Bounded channels and permits give backpressure.
//!
//! ## Reading order
//!
//! 1. `src/main.rs` and [`cli`]: arguments → a run → exit code.
//! 2. [`pipeline`]: the threads and channels; [`pipeline`]'s reader and worker.
//! 3. [`source`]: inputs, and the pump that streams stdin and large files; the live
//!    sources ([`source::live`]: S3, SQS, CloudWatch Logs on tokio) that feed the
//!    pipeline arrivals with acknowledgements, and their checkpoints.
//! 4. [`decode`]: gzip, then framing with the structural [`decode::scan`]ner.
//! 5. [`event`]: parsing into a tape, and [`event::path`] lookups.
//! 6. [`rules`]: the [`rules::RulePack`], its [`rules::index`], and Sigma in
//!    [`rules::sigma`] (parse → condition → modifiers → compile).
//! 7. [`finding`] and [`sink`]: the output shapes; [`stats`]: the counters.
//! 8. [`filter`]: the pre-storage SQL filter; [`state`]: dedup, suppression, and the
//!    correlation engine ([`state::correlate`]) over [`rules::correlation`]'s linked
//!    definitions, in event time, on the sink thread.
//!
//! ## A rule against a record
//!
//! ```
//! use trailhound::rules::{LoadReport, Origin, RulePack};
//! use trailhound::event::RecordParser;
//!
//! let rule = r#"
//! title: Console login without MFA
//! id: 00000000-0000-0000-0000-000000000001
//! logsource: {product: aws, service: cloudtrail}
//! detection:
//!   login:
//!     eventName: ConsoleLogin
//!     additionalEventData.MFAUsed: 'No'
//!   condition: login
//! level: high
//! "#;
//! let mut report = LoadReport::default();
//! let pack = RulePack::from_sources(&[(Origin::Builtin("doc.yml".into()), rule.into())], &mut report);
//! assert!(report.errors.is_empty());
//!
//! let record = br#"{"eventName":"ConsoleLogin","additionalEventData":{"MFAUsed":"No"}}"#;
//! let mut parser = RecordParser::new();
//! let (mut scratch, mut hits) = (Vec::new(), Vec::new());
//! parser.parse(record, |root| pack.evaluate(root.unwrap(), &mut scratch, &mut hits));
//! assert_eq!(hits, [0]);
//! ```

#![warn(missing_docs)]

pub mod app;
pub mod archive;
pub mod cli;
pub mod config;
pub mod decode;
pub mod event;
pub mod filter;
pub mod finding;
pub mod fswalk;
pub mod fuzz;
pub mod kafka;
pub mod logging;
pub mod pipeline;
pub mod rules;
pub mod sink;
pub mod source;
pub mod state;
pub mod stats;
pub mod telemetry;
