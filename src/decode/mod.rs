//! Stage 2 of the pipeline: bytes as read → decompressed → framed into records.
//!
//! Previous module: [`crate::source`] names the inputs and reads their bytes. Next
//! module: [`crate::event`] parses each record's bytes.
//!
//! **Boundary.** [`framing::frame`] walks a decompressed buffer and calls a
//! [`framing::FrameHandler`] once per record, document or undecodable value; it
//! allocates nothing and copies nothing.
//!
//! **Invariant.** Every byte of the input is accounted for: it belongs to a record, to a
//! skipped document, to whitespace, or to a dead letter. `framing::tests` and
//! `tests/bad_input.rs` hold it.
//!
//! **Decision.** Framing is auto-detected per input from content, not from file names:
//! gzip by magic bytes ([`compression`]), framing by the first value ([`framing::detect_mode`]).

pub mod compression;
pub mod framing;
pub mod scan;

pub use compression::{GzipError, gunzip_into, is_gzip};
pub use framing::{
    Candidate, FrameHandler, Mode, Position, detect_mode, detect_mode_partial, frame, frame_message,
};
