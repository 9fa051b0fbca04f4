//! The Sigma rule format: parse ([`parse`]), conditions ([`condition`]), value
//! matching ([`modifiers`]) and compilation ([`compile`]), in reading order
//! `parse` → `condition` → `modifiers` → `compile`.
//!
//! Supported today: field maps (AND), lists (OR), lists of maps, keyword lists, `null`,
//! numbers and booleans compared by their text, the `contains`, `startswith`,
//! `endswith` and `all` modifiers, `*`/`?` wildcards with Sigma's escapes, and the full
//! condition grammar (`and`, `or`, `not`, parentheses, `1 of x*`, `all of x*`,
//! `1 of them`, `all of them`). Anything else is a load error naming file:line:column.

pub mod compile;
pub mod condition;
pub mod field;
pub mod modifiers;
pub mod parse;
