//! Recursive, sorted directory listing shared by input discovery and rule loading.

use std::io;
use std::path::{Path, PathBuf};

/// Every file under `root` (or `root` itself if it is a file) for which `keep` holds,
/// in lexicographic path order so runs are deterministic. A file given directly is
/// returned whatever `keep` says.
pub fn files_under(root: &Path, keep: &dyn Fn(&Path) -> bool) -> io::Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(root)?;
    if !meta.is_dir() {
        return Ok(vec![root.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            let ft = entry.file_type()?;
            let is_dir = if ft.is_symlink() {
                std::fs::metadata(&path)
                    .map(|m| m.is_dir())
                    .unwrap_or(false)
            } else {
                ft.is_dir()
            };
            if is_dir {
                stack.push(path);
            } else if keep(&path) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}
