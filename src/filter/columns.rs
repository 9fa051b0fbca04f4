//! Column names of the `aws_cloudtrail_log` table → how the archive reads them from a
//! record, taken from [`crate::archive::schema`] so the filter and the archive cannot
//! disagree about a column.

use simd_json::prelude::{TypedScalarValue, ValueAsScalar};
use simd_json::tape::Value;

use crate::archive::schema::{Col, ColKind, record_columns};
use crate::event::FieldPath;
use crate::event::path::{RootCache, object_get};

/// What an archived column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// VARCHAR: a string as it is, another scalar as its JSON text.
    Str,
    /// VARCHAR holding compact JSON text; `->` and `->>` apply.
    Json,
    /// BOOLEAN (`true`/`false`, or those words as strings in any case).
    Bool,
    /// TIMESTAMP (microseconds, UTC) from an ISO-8601 string.
    Ts,
    /// A struct (`user_identity`, `tls_details`, …): only `IS [NOT] NULL` applies.
    Struct,
}

/// One column as the filter reads it from a record.
///
/// The top-level key goes through the record's [`RootCache`] (two [`FieldPath`]s, see
/// [`Column::node`]); struct fields below it are looked up the way the archive does,
/// exact key first, then ASCII case-insensitively.
#[derive(Debug, Clone)]
pub(super) struct Column {
    /// Dotted column name (`user_identity.session_context.session_issuer.user_name`).
    pub name: String,
    pub kind: Kind,
    /// The CloudTrail key of the top-level column (`userIdentity`).
    top: FieldPath,
    /// `<key>.0`: present only when the top-level value is an array (or an object with
    /// a key `0`), where the cached lookup would fan out.
    top_elem: FieldPath,
    key: &'static str,
    /// CloudTrail keys of the struct fields below the top-level column.
    rest: Box<[&'static str]>,
}

/// Why a column name did not resolve.
pub(super) enum Unresolved {
    /// No such column; the nearest names.
    Unknown(Vec<String>),
    /// A Tailpipe column that exists only once a record is archived.
    Tailpipe,
    /// A field asked of a column that is not a struct.
    NotStruct { column: String, kind: Kind },
}

/// Every column name, dotted for struct fields, with its CloudTrail path.
fn all_names() -> Vec<(String, String)> {
    fn walk(cols: &[Col], prefix: &str, path: &str, out: &mut Vec<(String, String)>) {
        for c in cols {
            let name = format!("{prefix}{}", c.name);
            let p = format!("{path}{}", c.key);
            if let ColKind::Struct(children) = &c.kind {
                walk(children, &format!("{name}."), &format!("{p}."), out);
            }
            out.push((name, p));
        }
    }
    let mut out = Vec::new();
    walk(&record_columns(), "", "", &mut out);
    out
}

fn kind_of(k: &ColKind) -> Kind {
    match k {
        ColKind::Str => Kind::Str,
        ColKind::Json => Kind::Json,
        ColKind::Bool => Kind::Bool,
        ColKind::Timestamp => Kind::Ts,
        ColKind::Struct(_) => Kind::Struct,
    }
}

/// Table name DuckDB would accept as a qualifier (`aws_cloudtrail_log.event_name`).
const TABLE: &str = "aws_cloudtrail_log";

/// Resolves identifier parts (case-insensitively, as DuckDB does) to a column.
pub(super) fn resolve(parts: &[&str]) -> Result<Column, Unresolved> {
    let parts = match parts {
        [t, rest @ ..] if !rest.is_empty() && t.eq_ignore_ascii_case(TABLE) => rest,
        _ => parts,
    };
    let Some(first) = parts.first() else {
        return Err(Unresolved::Unknown(Vec::new()));
    };
    // `get`: the name may start with a multi-byte character.
    if first.len() > 3
        && first
            .get(..3)
            .is_some_and(|p| p.eq_ignore_ascii_case("tp_"))
    {
        return Err(Unresolved::Tailpipe);
    }
    let mut cols = record_columns();
    let mut names = Vec::new();
    let mut keys: Vec<&'static str> = Vec::new();
    let mut kind = Kind::Struct;
    for part in parts {
        if kind != Kind::Struct {
            return Err(Unresolved::NotStruct {
                column: names.join("."),
                kind,
            });
        }
        let Some(c) = cols.into_iter().find(|c| c.name.eq_ignore_ascii_case(part)) else {
            return Err(Unresolved::Unknown(nearest(&parts.join("."))));
        };
        names.push(c.name);
        keys.push(c.key);
        kind = kind_of(&c.kind);
        cols = match c.kind {
            ColKind::Struct(children) => children,
            _ => Vec::new(),
        };
    }
    let key = keys[0];
    let paths = FieldPath::parse(key).and_then(|t| Ok((t, FieldPath::parse(&format!("{key}.0"))?)));
    let Ok((top, top_elem)) = paths else {
        return Err(Unresolved::Unknown(Vec::new()));
    };
    Ok(Column {
        name: names.join("."),
        kind,
        top,
        top_elem,
        key,
        rest: keys[1..].into(),
    })
}

/// Up to three column names nearest to `wanted`: a CloudTrail spelling of a column
/// (`eventName`, `userIdentity.arn`) names that column first, then edit distance.
pub(super) fn nearest(wanted: &str) -> Vec<String> {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != '_')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let w = wanted.to_ascii_lowercase();
    let wn = norm(wanted);
    let mut scored: Vec<(usize, String)> = all_names()
        .into_iter()
        .map(|(name, path)| {
            let d = if norm(&name) == wn || path.eq_ignore_ascii_case(wanted) {
                0
            } else {
                1 + levenshtein(&w, &name)
            };
            (d, name)
        })
        .collect();
    scored.sort();
    scored.into_iter().take(3).map(|(_, n)| n).collect()
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

impl Column {
    /// Every [`FieldPath`] the column reads.
    pub fn paths_mut(&mut self, f: &mut dyn FnMut(&mut FieldPath)) {
        f(&mut self.top);
        f(&mut self.top_elem);
    }

    /// The record's value for the column, as the archive finds it: `None` when the
    /// column is NULL there (missing, JSON `null`, or a struct on the way that is not
    /// an object).
    #[inline]
    pub fn node<'t, 'i>(&self, rec: &RootCache<'t, 'i>) -> Option<Value<'t, 'i>> {
        // The cached lookup fans an array out into its elements; the archive takes the
        // value itself. `top_elem` is present exactly when the value is an array with
        // an element (or an object with a key "0"), and an empty array yields nothing
        // while being present: then the key is looked up uncached.
        let mut v = match self.top.first_cached(rec) {
            Some(v) if !self.top_elem.present_cached(rec) => v,
            Some(_) => object_get(rec.root(), self.key)?,
            None if self.top.present_cached(rec) => object_get(rec.root(), self.key)?,
            None => return None,
        };
        for key in &self.rest {
            v = object_get(v, key)?;
        }
        (!v.is_null()).then_some(v)
    }

    /// The BOOLEAN value the archive writes for `v`.
    pub fn bool_of(v: Value<'_, '_>) -> Option<bool> {
        v.as_bool().or_else(|| match crate::event::path::as_str(v) {
            Some(s) if s.eq_ignore_ascii_case("true") => Some(true),
            Some(s) if s.eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        })
    }
}
