//! File inputs. Small files are read whole by a worker (many small CloudTrail objects
//! decompress and parse in parallel); large ones are streamed by the reader.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Files up to this size are read whole by a worker; larger ones are streamed.
pub const WHOLE_FILE_MAX: u64 = 8 * 1024 * 1024;

/// Reads a whole file into `buf` (cleared first).
pub fn read_whole(path: &Path, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    let mut f = File::open(path)?;
    f.read_to_end(buf)?;
    Ok(())
}
