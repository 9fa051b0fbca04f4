//! Dead letters: the records that could not be framed or parsed, with the reason.
//!
//! One JSON object per line (`schemas/dead-letter.schema.json`):
//! `{"schema":"trailhound.dead_letter/1","input","record_index","line","byte_offset",
//! "reason","raw"|"raw_base64","raw_len","truncated"}`. `raw` keeps at most 64 KiB of the
//! bytes; it is `raw_base64` when those bytes are not valid UTF-8.

use base64::Engine;

use crate::decode::Position;
use crate::sink::rendered::Rendered;

/// Most bytes of a bad record kept in its dead letter.
pub const MAX_RAW: usize = 64 * 1024;

/// Renders one dead letter. `raw_len` is the full length of the bad bytes, of which
/// `raw` may be a prefix.
pub fn render(
    out: &mut Rendered,
    input_json: &str,
    pos: Position,
    rel_index: u64,
    reason: &str,
    raw: &[u8],
    raw_len: u64,
) {
    let kept = &raw[..raw.len().min(MAX_RAW)];
    let truncated = (kept.len() as u64) < raw_len;
    let b = out.begin();
    b.extend_from_slice(b"{\"schema\":\"trailhound.dead_letter/1\",\"input\":");
    b.extend_from_slice(input_json.as_bytes());
    let b = out.position(pos);
    let mut num = itoa::Buffer::new();
    b.extend_from_slice(b",\"reason\":");
    let _ = serde_json::to_writer(&mut *b, reason);
    match std::str::from_utf8(kept) {
        Ok(s) => {
            b.extend_from_slice(b",\"raw\":");
            let _ = serde_json::to_writer(&mut *b, s);
        }
        Err(e) if truncated && e.error_len().is_none() => {
            // Cut inside a UTF-8 sequence by the 64 KiB limit: keep the valid prefix.
            let s = std::str::from_utf8(&kept[..e.valid_up_to()]).unwrap_or_default();
            b.extend_from_slice(b",\"raw\":");
            let _ = serde_json::to_writer(&mut *b, s);
        }
        Err(_) => {
            b.extend_from_slice(b",\"raw_base64\":\"");
            let enc = base64::engine::general_purpose::STANDARD.encode(kept);
            b.extend_from_slice(enc.as_bytes());
            b.push(b'"');
        }
    }
    b.extend_from_slice(b",\"raw_len\":");
    b.extend_from_slice(num.format(raw_len).as_bytes());
    b.extend_from_slice(if truncated {
        b",\"truncated\":true}\n"
    } else {
        b",\"truncated\":false}\n"
    });
    out.end(rel_index);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(raw: &[u8], len: u64) -> serde_json::Value {
        let mut r = Rendered::default();
        render(
            &mut r,
            "\"f.json\"",
            Position { offset: 7, line: 2 },
            0,
            "bad",
            raw,
            len,
        );
        let mut out = Vec::new();
        r.write_to(&mut out, 3).expect("write");
        serde_json::from_slice(&out).expect("valid json line")
    }

    #[test]
    fn text_binary_and_truncated() {
        let v = one(b"{\"a\":", 5);
        assert_eq!(v["raw"], "{\"a\":");
        assert_eq!(v["record_index"], 3);
        assert_eq!(v["truncated"], false);
        let v = one(&[0xff, 0xfe, 0x00], 3);
        assert_eq!(v["raw_base64"], "//4A");
        let big = vec![b'x'; MAX_RAW + 10];
        let v = one(&big, big.len() as u64);
        assert_eq!(v["truncated"], true);
        assert_eq!(v["raw_len"], MAX_RAW as u64 + 10);
        assert_eq!(v["raw"].as_str().map(str::len), Some(MAX_RAW));
    }
}
