//! Stage 1 of the pipeline: which inputs there are, and their bytes.
//!
//! Next module: [`crate::decode`] decompresses and frames what is read here.
//!
//! **Boundary.** [`Input`] names one input (stdin or a file) with its display name
//! already escaped as a JSON string, so findings can cite it without re-escaping.
//! [`discover`] expands directories recursively, in sorted order, so a run over a
//! directory is deterministic.
//!
//! **Invariant.** An input that cannot be found or opened is reported by name and
//! counted in `inputs_failed` (exit code 3); the other inputs still run.
//!
//! **Live sources** ([`live`]): S3 ([`s3`]), SQS notifications ([`sqs`], parsed by
//! [`notification`]) and CloudWatch Logs ([`cloudwatch`]) run on a tokio runtime and
//! hand [`Arrival`]s to the pipeline through a bounded channel ([`Feed::Live`]). Each
//! carries an [`Ack`] that the pipeline fires once the input is fully delivered; only
//! then does a source delete a message or advance its [`checkpoint`]. Connections and
//! credentials are in [`aws`].

pub mod aws;
pub mod checkpoint;
pub mod cloudwatch;
pub mod file;
pub mod kafka;
pub mod live;
pub mod notification;
pub mod s3;
pub mod sqs;
pub mod stdin;

use std::fmt;

use std::path::PathBuf;

/// What an input is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputKind {
    /// Standard input.
    Stdin,
    /// A file.
    File(PathBuf),
    /// An object fetched by a source (S3 object, a page of CloudWatch Logs events); its
    /// bytes come with its [`Arrival`].
    Remote,
}

/// One input of a run.
#[derive(Debug, Clone)]
pub struct Input {
    /// Position in the run's input list.
    pub id: u32,
    /// `<stdin>` or the path as given.
    pub name: String,
    /// `name` as a JSON string literal.
    pub name_json: String,
    /// Stdin or file.
    pub kind: InputKind,
    /// The live source it came from (its name is the archive's `tp_partition`).
    pub source: Option<std::sync::Arc<str>>,
}

impl Input {
    fn new(id: u32, name: String, kind: InputKind) -> Self {
        let name_json = serde_json::to_string(&name).unwrap_or_else(|_| "\"?\"".into());
        Input {
            id,
            name,
            name_json,
            kind,
            source: None,
        }
    }

    /// `tp_source_type` of the archive: `stdin`, `file`, `aws_s3_bucket`,
    /// `aws_cloudwatch_logs`.
    pub fn source_type(&self) -> &'static str {
        match &self.kind {
            InputKind::Stdin => "stdin",
            InputKind::File(_) => "file",
            InputKind::Remote if self.name.starts_with("s3://") => "aws_s3_bucket",
            InputKind::Remote if self.name.starts_with("cloudwatch:") => "aws_cloudwatch_logs",
            InputKind::Remote if self.name.starts_with("kafka:") => "kafka",
            InputKind::Remote => "remote",
        }
    }

    /// The stdin input.
    pub fn stdin(id: u32) -> Self {
        Input::new(id, "<stdin>".into(), InputKind::Stdin)
    }

    /// A file input.
    pub fn file(id: u32, path: PathBuf) -> Self {
        Input::new(id, path.display().to_string(), InputKind::File(path))
    }

    /// An input fetched by a source, named by its URI (`s3://bucket/key`, …).
    pub fn remote(name: String) -> Self {
        Input::new(0, name, InputKind::Remote)
    }
}

/// Called once every record of an input has been processed, its findings written and
/// flushed and its archive rows in finished (renamed, fsynced) Parquet files: the
/// moment a source may delete an SQS message or advance a checkpoint.
pub struct Ack(Box<dyn FnOnce() + Send>);

impl Ack {
    /// Wraps the callback.
    pub fn new(f: impl FnOnce() + Send + 'static) -> Self {
        Ack(Box::new(f))
    }

    /// Runs the callback.
    pub fn fire(self) {
        (self.0)()
    }

    /// Splits the acknowledgement into `n` parts (at least one): the callback runs once
    /// the last part has fired. Each party that must confirm delivery (a Kafka sink,
    /// the archive) holds one part.
    pub fn join(self, n: usize) -> Vec<Ack> {
        let n = n.max(1);
        if n == 1 {
            return vec![self];
        }
        let left = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(n));
        let cb = std::sync::Arc::new(std::sync::Mutex::new(Some(self)));
        (0..n)
            .map(|_| {
                let left = left.clone();
                let cb = cb.clone();
                Ack::new(move || {
                    if left.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1 {
                        let ack = cb.lock().ok().and_then(|mut g| g.take());
                        if let Some(ack) = ack {
                            ack.fire();
                        }
                    }
                })
            })
            .collect()
    }
}

impl fmt::Debug for Ack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ack")
    }
}

/// One message of a queue: its offset in its partition and its payload (compressed or
/// not, in any of the framings files may have).
#[derive(Debug, Clone)]
pub struct Message {
    /// The message's offset; findings name it as the record's `line`.
    pub offset: i64,
    /// The payload.
    pub payload: Vec<u8>,
}

/// An input handed to the pipeline by a live source: its bytes when the source fetched
/// them (an S3 object), and what to call once it is fully processed.
#[derive(Debug)]
pub struct Arrival {
    /// The input (its `id` is assigned by the pipeline).
    pub input: Input,
    /// The input's bytes (compressed or not); `None` for stdin and files, which the
    /// pipeline reads itself.
    pub body: Option<Vec<u8>>,
    /// Messages of a queue, each framed on its own (the input is a batch of them).
    pub messages: Vec<Message>,
    /// Fired once the input is done.
    pub ack: Option<Ack>,
    /// Why the source could not fetch the input (counted as a failed input, exit 3).
    pub error: Option<String>,
}

impl Arrival {
    /// A stdin or file input without acknowledgement.
    pub fn local(input: Input) -> Self {
        Arrival {
            input,
            body: None,
            messages: Vec::new(),
            ack: None,
            error: None,
        }
    }

    /// A batch of messages from one partition of a message queue (Kafka).
    pub fn messages(input: Input, messages: Vec<Message>, ack: Ack) -> Self {
        Arrival {
            input,
            body: None,
            messages,
            ack: Some(ack),
            error: None,
        }
    }

    /// Fetched bytes.
    pub fn fetched(name: String, body: Vec<u8>, ack: Ack) -> Self {
        Arrival {
            input: Input::remote(name),
            body: Some(body),
            messages: Vec::new(),
            ack: Some(ack),
            error: None,
        }
    }

    /// An input that could not be fetched: reported and counted, never acknowledged.
    pub fn failed(name: String, error: String) -> Self {
        Arrival {
            input: Input::remote(name),
            body: None,
            messages: Vec::new(),
            ack: None,
            error: Some(error),
        }
    }
}

/// What the pipeline reads: a fixed list of inputs (`detect`), or arrivals from live
/// sources that ends when every sender is gone (`run`, `detect s3://…`).
#[derive(Debug)]
pub enum Feed {
    /// Inputs known up front.
    Inputs(Vec<Input>),
    /// Inputs as sources produce them.
    Live(tokio::sync::mpsc::Receiver<Arrival>),
}

impl From<Vec<Input>> for Feed {
    fn from(v: Vec<Input>) -> Self {
        Feed::Inputs(v)
    }
}

/// An input path that cannot be listed.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct SourceError {
    /// The path as given.
    pub path: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

/// Expands the command-line inputs: no path (or `-`) is stdin, a directory is every file
/// under it (recursively, sorted), a file is itself.
pub fn discover(paths: &[PathBuf]) -> (Vec<Input>, Vec<SourceError>) {
    let mut inputs = Vec::new();
    let mut errors = Vec::new();
    if paths.is_empty() {
        inputs.push(Input::stdin(0));
        return (inputs, errors);
    }
    for p in paths {
        if p.as_os_str() == "-" {
            inputs.push(Input::stdin(inputs.len() as u32));
            continue;
        }
        match crate::fswalk::files_under(p, &|_| true) {
            Ok(files) => {
                for f in files {
                    inputs.push(Input::file(inputs.len() as u32, f));
                }
            }
            Err(source) => errors.push(SourceError {
                path: p.clone(),
                source,
            }),
        }
    }
    (inputs, errors)
}
