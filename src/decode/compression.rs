//! Compression: gzip is recognised by its magic bytes, never by the file name.
//!
//! CloudTrail objects are gzip files; `cat a.gz b.gz` and some writers produce several
//! gzip members in one stream, so decoding always continues across member boundaries
//! ([`flate2::bufread::MultiGzDecoder`]). A stream that is cut or corrupt keeps what was
//! decoded before the damage: the complete records in it are processed, the incomplete
//! tail is dead-lettered by framing, and the error is reported for the input.

use std::io::Read;

/// The two bytes every gzip member starts with.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Whether `head` starts like a gzip member.
pub fn is_gzip(head: &[u8]) -> bool {
    head.starts_with(&GZIP_MAGIC)
}

/// A gzip stream that could not be decoded to its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GzipError {
    /// The stream ends before its last member does, or a member is corrupt.
    #[error("gzip stream is truncated or corrupt after {decoded} decompressed bytes: {message}")]
    Damaged {
        /// Bytes decoded before the damage.
        decoded: u64,
        /// The decoder's message.
        message: String,
    },
    /// The stream inflates beyond the configured limit (a gzip bomb, or a file that
    /// should be streamed).
    #[error("gzip stream inflates beyond {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
}

/// Inflates every member of `src` into `out` (appending), up to `limit` bytes.
///
/// On error `out` holds everything decoded before the damage.
pub fn gunzip_into(src: &[u8], out: &mut Vec<u8>, limit: u64) -> Result<(), GzipError> {
    let start = out.len();
    // The slice is its own buffered reader: no intermediate buffer is allocated or
    // filled per object.
    let mut dec = flate2::bufread::MultiGzDecoder::new(src).take(limit + 1);
    match dec.read_to_end(out) {
        Ok(_) if (out.len() - start) as u64 > limit => {
            out.truncate(start + limit as usize);
            Err(GzipError::TooLarge { limit })
        }
        Ok(_) => Ok(()),
        Err(e) => Err(GzipError::Damaged {
            decoded: (out.len() - start) as u64,
            message: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).expect("write");
        e.finish().expect("finish")
    }

    #[test]
    fn concatenated_members() {
        let mut two = gz(b"{\"a\":1}\n");
        two.extend(gz(b"{\"b\":2}\n"));
        assert!(is_gzip(&two));
        let mut out = Vec::new();
        gunzip_into(&two, &mut out, 1 << 20).expect("ok");
        assert_eq!(out, b"{\"a\":1}\n{\"b\":2}\n");
    }

    #[test]
    fn truncated_keeps_prefix() {
        let data: Vec<u8> = (0..20000)
            .flat_map(|i| format!("{{\"n\":{i}}}\n").into_bytes())
            .collect();
        let z = gz(&data);
        let cut = &z[..z.len() / 2];
        let mut out = Vec::new();
        let err = gunzip_into(cut, &mut out, 1 << 30).expect_err("truncated");
        assert!(matches!(err, GzipError::Damaged { .. }), "{err}");
        assert!(!out.is_empty());
        assert!(data.starts_with(&out));
    }

    #[test]
    fn limit_is_enforced() {
        let z = gz(&vec![b' '; 100_000]);
        let mut out = Vec::new();
        assert_eq!(
            gunzip_into(&z, &mut out, 1000),
            Err(GzipError::TooLarge { limit: 1000 })
        );
        assert_eq!(out.len(), 1000);
    }
}
