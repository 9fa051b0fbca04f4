//! Locks that let several trailhound instances (and `archive compact`) share one
//! archive root.
//!
//! ```text
//! ROOT/.trailhound/instances/<id>.lock      held (exclusive) by a running writer
//! ROOT/.trailhound/partitions/<p>/<i>/<d>.lock
//!                                           shared by writers with a file open in
//!                                           the partition, exclusive by compaction
//! ```
//!
//! - **Instance id.** Every writer has an id (16 hex digits), kept in
//!   `<state_dir>/instance_id` so it survives restarts, or made up per process when
//!   there is no state directory. Its temporary files are named
//!   `.<id>-<stamp>-<n>.parquet.tmp`, and it holds `instances/<id>.lock` for as long as
//!   it runs.
//! - **Start-up cleanup.** A temporary file belongs to a crashed writer when its owner's
//!   lock can be taken (the kernel releases `flock` locks when a process dies, even by
//!   SIGKILL): only such files are removed, never those of a live instance.
//! - **Compaction.** A writer holds its partition's lock shared while it has a file open
//!   there; `archive compact` takes it exclusively (without waiting) and skips a
//!   partition that is being written, so the directory exchange never hides a file
//!   that is about to appear.
//!
//! The locks are advisory `flock(2)` locks (std's `File::lock`); they live outside the
//! `tp_table=` directory, so no query glob sees them.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The directory of trailhound's own files under an archive root.
pub const META_DIR: &str = ".trailhound";

/// A new random instance id.
pub fn new_instance_id() -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.update(now.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    let local = 0u8;
    h.update((std::ptr::addr_of!(local) as usize).to_le_bytes());
    if let Ok(host) = fs::read("/proc/sys/kernel/hostname") {
        h.update(host);
    }
    let d = h.finalize();
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Whether `id` has the shape of an instance id.
pub fn is_instance_id(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The instance id kept in `state_dir` (created on first use).
pub fn instance_id(state_dir: &Path) -> io::Result<String> {
    let path = state_dir.join("instance_id");
    if let Ok(text) = fs::read_to_string(&path) {
        let id = text.trim();
        if is_instance_id(id) {
            return Ok(id.to_string());
        }
    }
    fs::create_dir_all(state_dir)?;
    let id = new_instance_id();
    let tmp = state_dir.join(".instance_id.tmp");
    {
        let mut f = File::create(&tmp)?;
        writeln!(f, "{id}")?;
        f.sync_all()?;
    }
    fs::rename(&tmp, &path)?;
    Ok(id)
}

fn instance_lock_path(root: &Path, id: &str) -> PathBuf {
    root.join(META_DIR)
        .join("instances")
        .join(format!("{id}.lock"))
}

/// The lock a running writer holds.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    /// The instance id.
    pub id: String,
}

/// Why an instance lock cannot be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another live process has the same instance id.
    #[error(
        "instance {id} is already writing to this archive (another process uses the same state_dir)"
    )]
    InUse {
        /// The id.
        id: String,
    },
    /// The lock file cannot be created.
    #[error("{path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl InstanceLock {
    /// Takes `id`'s lock under `root`.
    pub fn acquire(root: &Path, id: &str) -> Result<Self, LockError> {
        let path = instance_lock_path(root, id);
        let fail = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(fail)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(fail)?;
        match file.try_lock() {
            Ok(()) => Ok(InstanceLock {
                _file: file,
                id: id.to_string(),
            }),
            Err(fs::TryLockError::WouldBlock) => Err(LockError::InUse { id: id.to_string() }),
            Err(fs::TryLockError::Error(e)) => Err(fail(e)),
        }
    }
}

/// Whether the writer `owner` is alive (holds its lock). An owner without a lock file
/// (a file of an older version, a foreign name) counts as gone.
pub fn owner_alive(root: &Path, owner: &str) -> bool {
    if !is_instance_id(owner) {
        return false;
    }
    let Ok(file) = OpenOptions::new()
        .write(true)
        .open(instance_lock_path(root, owner))
    else {
        return false;
    };
    match file.try_lock() {
        Ok(()) => {
            let _ = file.unlock();
            false
        }
        Err(_) => true,
    }
}

/// The owner of a temporary archive file named `.<id>-….parquet.tmp`.
pub fn temp_owner(file_name: &str) -> Option<&str> {
    let rest = file_name.strip_prefix('.')?.strip_suffix(".parquet.tmp")?;
    rest.split('-').next()
}

/// The lock file of the partition directory `dir` (under `root`'s table directory).
pub fn partition_lock_path(root: &Path, dir: &Path) -> PathBuf {
    let rel = dir.strip_prefix(root).unwrap_or(dir);
    let mut p = root.join(META_DIR).join("partitions");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_else(|| "root".into());
    for c in parts {
        p.push(c);
    }
    p.push(format!("{last}.lock"));
    p
}

/// A held partition lock (released on drop).
#[derive(Debug)]
pub struct PartitionLock {
    _file: File,
}

fn open_partition_lock(root: &Path, dir: &Path) -> io::Result<File> {
    let path = partition_lock_path(root, dir);
    if let Some(d) = path.parent() {
        fs::create_dir_all(d)?;
    }
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
}

impl PartitionLock {
    /// A writer's shared lock (waits while the partition is being compacted).
    pub fn shared(root: &Path, dir: &Path) -> io::Result<Self> {
        let file = open_partition_lock(root, dir)?;
        file.lock_shared()?;
        Ok(PartitionLock { _file: file })
    }

    /// Compaction's exclusive lock; `None` when a writer holds the partition.
    pub fn try_exclusive(root: &Path, dir: &Path) -> io::Result<Option<Self>> {
        let file = open_partition_lock(root, dir)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(PartitionLock { _file: file })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_persist_and_locks_exclude() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        let id = instance_id(&state).expect("id");
        assert!(is_instance_id(&id));
        assert_eq!(instance_id(&state).expect("id"), id);
        let root = dir.path().join("archive");
        assert!(!owner_alive(&root, &id));
        let lock = InstanceLock::acquire(&root, &id).expect("lock");
        assert!(owner_alive(&root, &id));
        assert!(matches!(
            InstanceLock::acquire(&root, &id),
            Err(LockError::InUse { .. })
        ));
        drop(lock);
        assert!(!owner_alive(&root, &id));
        assert_eq!(
            temp_owner(".0123456789abcdef-1700000000000-1-000001.parquet.tmp"),
            Some("0123456789abcdef")
        );
        assert_eq!(temp_owner("x.parquet"), None);
    }

    #[test]
    fn compaction_skips_a_partition_being_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let part = root.join("tp_table=t/tp_partition=p/tp_index=i/tp_date=2024-01-01");
        let w = PartitionLock::shared(root, &part).expect("shared");
        assert!(
            PartitionLock::try_exclusive(root, &part)
                .expect("try")
                .is_none()
        );
        drop(w);
        let c = PartitionLock::try_exclusive(root, &part).expect("try");
        assert!(c.is_some());
        assert!(partition_lock_path(root, &part).ends_with("tp_date=2024-01-01.lock"));
    }
}
