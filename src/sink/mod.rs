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

pub mod dead_letter;
pub mod rendered;

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use rendered::Rendered;

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
}

/// Findings to stdout (or any writer), dead letters to an optional file.
pub struct Output {
    findings: Box<dyn Write + Send>,
    dead: Option<(PathBuf, BufWriter<File>)>,
}

impl Output {
    /// Findings to `findings`; dead letters to `dead_letter` when given (created or
    /// truncated).
    pub fn new(
        findings: Box<dyn Write + Send>,
        dead_letter: Option<&Path>,
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
        Ok(Output { findings, dead })
    }

    /// Whether dead letters are written anywhere (workers skip rendering them if not).
    pub fn keeps_dead_letters(&self) -> bool {
        self.dead.is_some()
    }

    /// Writes a batch of findings.
    pub fn write_findings(&mut self, r: &Rendered, base: u64) -> Result<(), SinkError> {
        r.write_to(&mut self.findings, base).map_err(stdout_err)
    }

    /// Writes finished finding lines.
    pub fn write_raw(&mut self, lines: &[u8]) -> Result<(), SinkError> {
        self.findings.write_all(lines).map_err(stdout_err)
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

    /// Flushes both outputs.
    pub fn flush(&mut self) -> Result<(), SinkError> {
        self.findings.flush().map_err(stdout_err)?;
        if let Some((path, w)) = &mut self.dead {
            w.flush().map_err(|source| SinkError::DeadLetter {
                path: path.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

fn stdout_err(e: io::Error) -> SinkError {
    if e.kind() == io::ErrorKind::BrokenPipe {
        SinkError::Closed
    } else {
        SinkError::Stdout(e)
    }
}
