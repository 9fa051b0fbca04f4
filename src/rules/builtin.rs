//! The built-in rule pack: every file under `rules/` at build time, embedded by
//! `build.rs`, so the binary runs with no files beside it.

include!(concat!(env!("OUT_DIR"), "/builtin_rules.rs"));
