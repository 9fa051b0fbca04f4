//! The pre-storage filter: SQL boolean expressions over the columns of the archive's
//! `aws_cloudtrail_log` table, in the manner of Tailpipe's filters, evaluated on every
//! record before it is kept.
//!
//! ```text
//! decode ─▶ event (parse) ─▶ filter ─┬─ TRUE ──────▶ kept: rules, archive row
//!                                    └─ not TRUE ──▶ records_filtered (not archived;
//!                                                    skips the rules too with
//!                                                    filter_applies_to: both)
//! ```
//!
//! Previous module: [`crate::event`] hands over a parsed record (a simd-json tape in a
//! [`RootCache`]). Next: the worker in [`crate::pipeline`] keeps or counts the record;
//! kept records go on to the [`crate::rules`] and to [`crate::archive`].
//!
//! Each `filter:` entry of the configuration (and each `--filter`) is one expression;
//! a record is kept only when **every** expression is TRUE for it:
//!
//! ```
//! use trailhound::event::RecordParser;
//! use trailhound::event::path::RootCache;
//! use trailhound::filter::RecordFilter;
//!
//! let filter = RecordFilter::compile(&[
//!     "not (event_source = 'kms.amazonaws.com' and event_name = 'Decrypt')".to_string(),
//! ])
//! .expect("valid filter");
//! let mut parser = RecordParser::new();
//! let mut keep = |raw: &[u8]| parser.parse(raw, |root| filter.keep(&RootCache::new(root.unwrap())));
//! assert!(!keep(br#"{"eventSource":"kms.amazonaws.com","eventName":"Decrypt"}"#));
//! assert!(keep(br#"{"eventSource":"s3.amazonaws.com","eventName":"GetObject"}"#));
//! ```
//!
//! # Columns
//!
//! The names are the table's, as written to Parquet ([`crate::archive::schema`] names
//! them and the key each is read from; `docs/archive.md` has the table), so a filter
//! can be pasted into a DuckDB `WHERE` clause over the archive and answers the same:
//!
//! - VARCHAR: `event_source`, `event_name`, `aws_region`, `source_ip_address`,
//!   `user_agent`, `error_code`, `error_message`, `event_type`, `event_category`,
//!   `event_id`, `event_version`, `recipient_account_id`, `request_id`, `api_version`,
//!   `shared_event_id`, `vpc_endpoint_id`, `session_credential_from_console`. A string
//!   is itself; another scalar is its JSON text (`5`, `true`), as the archive writes it.
//! - BOOLEAN: `read_only`, `management_event`. A JSON boolean, or the strings `"true"` /
//!   `"false"` in any case (CloudTrail writes both); anything else is NULL.
//! - TIMESTAMP: `event_time`, compared with string literals such as `'2024-01-31'` or
//!   `'2024-01-31T12:00:00Z'` (UTC). A record whose `eventTime` is not ISO-8601 has NULL.
//! - JSON (VARCHAR holding compact JSON text): `request_parameters`,
//!   `response_elements`, `additional_event_data`, `resources`, `service_event_details`,
//!   `edge_device_details`, `user_identity.session_context.web_id_federation_data.attributes`.
//!   Read into them with DuckDB's operators: `request_parameters ->> 'bucketName'` is the
//!   value as text (a string unquoted, an object as JSON, JSON `null` as NULL);
//!   `->` is JSON text and chains (`resources -> 0 ->> 'ARN'`). The right side is an
//!   object key (exact and case-sensitive), an integer array index (negative counts from
//!   the end), a JSONPath (`'$.a.b[0]'`, `'$[#-1]'`; no wildcards) or a JSON pointer
//!   (`'/a/0'`). A JSON column compared directly (`request_parameters like '%x%'`) is its
//!   JSON text. `->` and `->>` bind tighter than comparisons and read left to right
//!   (PostgreSQL's precedence, which sqlparser follows); DuckDB binds `->` more loosely,
//!   so a filter meant to be pasted into DuckDB parenthesises each `->` step:
//!   `((resources -> 0) ->> 'ARN') like 'arn:aws:s3:::%'`.
//! - Structs: `user_identity`, `tls_details` and their fields with dots:
//!   `user_identity.arn`, `user_identity.session_context.session_issuer.user_name`,
//!   `tls_details.tls_version`. A struct itself takes only `IS [NOT] NULL` (NULL when
//!   the record's value is missing or not an object).
//!
//! Names are case-insensitive, as in DuckDB (`EVENT_NAME`, `"Event_Name"`), and may
//! be qualified by the table (`aws_cloudtrail_log.event_name`). CloudTrail's own
//! spellings (`eventName`, `userIdentity.arn`) are **not** columns: the filter is SQL
//! over the table, and the error for one names the column it stands for. Tailpipe's
//! `tp_*` columns (`tp_index`, `tp_date`, `tp_timestamp`, …) are written when a record
//! is archived, after the filter has run, and are an error too.
//!
//! # SQL semantics
//!
//! - A missing column, or one holding JSON `null`, is NULL. A comparison with NULL is
//!   NULL, `NOT NULL` is NULL, `NULL AND FALSE` is FALSE, `NULL OR TRUE` is TRUE, and a
//!   record is kept only when the whole expression is TRUE. So on a record without
//!   `errorCode`, `error_code != 'AccessDenied'` and `not (error_code =
//!   'AccessDenied')` both drop it; write `error_code is distinct from 'AccessDenied'`
//!   or `error_code is null or …` to keep it.
//! - `=`, `!=`/`<>`, `<`, `<=`, `>`, `>=`: text byte by byte (case-sensitive, `'B' <
//!   'a'`), numbers numerically, booleans with `false < true`, times in time order. A
//!   string literal compared with a BOOLEAN or TIMESTAMP is converted, as DuckDB casts
//!   it (`read_only = 'true'`; `'yes'`, `'t'`, `'1'` work too); a BOOLEAN compared with
//!   a number is 0 or 1. Text against a number is an error (quote the number).
//! - `AND`, `OR`, `NOT`, parentheses; `[NOT] IN (…)` (TRUE on a match, else NULL if
//!   the value or an item is NULL); `[NOT] BETWEEN a AND b`; `IS [NOT] NULL`;
//!   `IS [NOT] TRUE` / `FALSE` / `UNKNOWN`; `IS [NOT] DISTINCT FROM`.
//! - `[NOT] LIKE` and `[NOT] ILIKE` with `%`, `_` (one character) and `ESCAPE 'c'`; no
//!   escape character unless one is given. The pattern is a string literal.
//! - Functions: `lower`, `upper` (`lcase`, `ucase`), `starts_with` (`prefix`, and the
//!   operator `^@`), `ends_with` (`suffix`), `contains`; NULL in, NULL out.
//!
//! # Unsupported
//!
//! Everything else is an error when the filter is compiled, naming the expression by
//! its 1-based index and the position sqlparser reports: other operators (`~`, `||`,
//! arithmetic, `SIMILAR TO`, `REGEXP`), other functions, casts, `CASE`, subqueries,
//! subscripts (`user_identity['arn']`), numbers compared with text, and text left after
//! the expression (`event_name = 'x' extra`). An expression has at most 1,024 tokens.
//! Where DuckDB would fail a query at run time (casting text that is not a number), the
//! filter refuses at compile time.
//!
//! # Cost
//!
//! Expressions are compiled once: columns to [`FieldPath`]s (the top-level lookup shares
//! the record's [`RootCache`] with the rules when the caller gives them slots through
//! [`RecordFilter::paths_mut`]), `LIKE` patterns to matchers, literals to typed values.
//! Evaluating compares borrowed `&str`s from the tape and allocates nothing, except
//! where text must be made: a JSON column or `->` result used as text, a non-string
//! scalar in a VARCHAR column, `lower`/`upper` of text that changes, and `ILIKE` on
//! non-ASCII text.
//!
//! Numbers inside JSON are rendered as the archive writes them; DuckDB re-renders some
//! spellings (`1e20`), so `->>` of such a number may differ as text.

mod columns;
mod compile;
mod eval;
mod like;
#[cfg(test)]
mod tests;

use crate::event::FieldPath;
use crate::event::path::RootCache;

/// Why a filter expression did not compile.
#[derive(Debug, Clone, thiserror::Error)]
#[error("filter {index} ({text}): {message}")]
pub struct FilterError {
    /// Which expression, from 1.
    pub index: usize,
    /// The expression as written.
    pub text: String,
    /// What is wrong, with the position (`at line 1 column 12`) where one is known.
    pub message: String,
}

/// Compiled filter expressions, AND-ed. An empty filter keeps every record.
#[derive(Debug, Clone, Default)]
pub struct RecordFilter {
    exprs: Vec<eval::Node>,
}

impl RecordFilter {
    /// Compiles the expressions; the first that does not compile is the error.
    pub fn compile(exprs: &[String]) -> Result<RecordFilter, FilterError> {
        let mut out = Vec::with_capacity(exprs.len());
        for (i, text) in exprs.iter().enumerate() {
            let node = compile::compile(text).map_err(|message| FilterError {
                index: i + 1,
                text: text.clone(),
                message,
            })?;
            out.push(node);
        }
        Ok(RecordFilter { exprs: out })
    }

    /// Whether there are no expressions.
    pub fn is_empty(&self) -> bool {
        self.exprs.is_empty()
    }

    /// True when every expression is TRUE for the record.
    pub fn keep(&self, rec: &RootCache<'_, '_>) -> bool {
        self.exprs
            .iter()
            .all(|e| e.eval(rec) == eval::Val::Bool(true))
    }

    /// Every FieldPath read (for RootCache slot assignment by the caller).
    pub fn paths_mut(&mut self, f: &mut dyn FnMut(&mut FieldPath)) {
        for e in &mut self.exprs {
            e.paths_mut(f);
        }
    }
}
