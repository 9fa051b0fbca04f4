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

pub mod file;
pub mod stdin;

use std::path::PathBuf;

/// What an input is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputKind {
    /// Standard input.
    Stdin,
    /// A file.
    File(PathBuf),
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
}

impl Input {
    fn new(id: u32, name: String, kind: InputKind) -> Self {
        let name_json = serde_json::to_string(&name).unwrap_or_else(|_| "\"?\"".into());
        Input {
            id,
            name,
            name_json,
            kind,
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
