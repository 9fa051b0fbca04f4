//! Checkpoints: what each live source has finished, so a restart resumes instead of
//! starting over.
//!
//! One JSON file per source, `<state_dir>/checkpoints/<source name>.json`, replaced
//! atomically (written to a temporary file, fsynced, renamed, directory fsynced), so a
//! crash leaves the old checkpoint or the new one, never half of either. A source only
//! records an input once the pipeline has acknowledged it (findings flushed, archive
//! rows in finished files): after a crash, work since the last checkpoint is redone,
//! never skipped, and the repeats carry the same finding ids and `tp_id`s.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A checkpoint that cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[error("checkpoint {path}: {message}")]
pub struct CheckpointError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

/// Where checkpoints live (`None`: nothing is kept, every run starts afresh).
#[derive(Debug, Clone, Default)]
pub struct Checkpoints {
    dir: Option<PathBuf>,
}

impl Checkpoints {
    /// Checkpoints under `<state_dir>/checkpoints/`.
    pub fn new(state_dir: Option<&Path>) -> Self {
        Checkpoints {
            dir: state_dir.map(|d| d.join("checkpoints")),
        }
    }

    /// True when checkpoints are kept.
    pub fn enabled(&self) -> bool {
        self.dir.is_some()
    }

    fn path(&self, source: &str) -> Option<PathBuf> {
        let name = crate::archive::partition_value(source);
        self.dir.as_ref().map(|d| d.join(format!("{name}.json")))
    }

    /// The source's checkpoint, or the default when there is none yet.
    pub fn load<T: DeserializeOwned + Default>(&self, source: &str) -> Result<T, CheckpointError> {
        let Some(path) = self.path(source) else {
            return Ok(T::default());
        };
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| CheckpointError {
                path,
                message: format!("unreadable ({e}); move it away to start over"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
            Err(e) => Err(CheckpointError {
                path,
                message: e.to_string(),
            }),
        }
    }

    /// Replaces the source's checkpoint atomically.
    pub fn save<T: Serialize>(&self, source: &str, value: &T) -> Result<(), CheckpointError> {
        let Some(path) = self.path(source) else {
            return Ok(());
        };
        let fail = |message: String| CheckpointError {
            path: path.clone(),
            message,
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| fail(e.to_string()))?;
        let mut f = File::create(&tmp).map_err(|e| fail(e.to_string()))?;
        f.write_all(&bytes)
            .and_then(|_| f.sync_all())
            .map_err(|e| fail(e.to_string()))?;
        fs::rename(&tmp, &path).map_err(|e| fail(e.to_string()))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| fail(e.to_string()))?;
        crate::telemetry::record_checkpoint(source);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn round_trip_and_missing() {
        let dir = tempfile::tempdir().expect("tmp");
        let c = Checkpoints::new(Some(dir.path()));
        let empty: BTreeMap<String, String> = c.load("org/trail").expect("none yet");
        assert!(empty.is_empty());
        let mut m = BTreeMap::new();
        m.insert("AWSLogs/1/".to_string(), "AWSLogs/1/x.json.gz".to_string());
        c.save("org/trail", &m).expect("save");
        let back: BTreeMap<String, String> = c.load("org/trail").expect("load");
        assert_eq!(back, m);
        // The name cannot escape the directory.
        assert!(dir.path().join("checkpoints/org_trail.json").exists());
        std::fs::write(dir.path().join("checkpoints/org_trail.json"), "{").expect("w");
        let e = c.load::<BTreeMap<String, String>>("org/trail").unwrap_err();
        assert!(e.to_string().contains("unreadable"), "{e}");
        let off = Checkpoints::new(None);
        off.save("x", &m).expect("no-op");
        assert!(!off.enabled());
    }
}
