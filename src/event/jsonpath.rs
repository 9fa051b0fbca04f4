//! JSONPath field selectors (`$.resources[*].ARN`), a trailhound extension usable in
//! detection keys, `fields:`, `group-by`, `suppress.by` — anywhere a field name goes.
//!
//! Every selector is parsed and validated with `jsonpath-rust` (RFC 9535 syntax), so a
//! malformed one is a rule error. Selectors made only of member names, indices and
//! `[*]` — the common case, e.g. `$.requestParameters.ipPermissions.items[*].ipRanges.items[*].cidrIp`
//! — compile to an ordinary [`FieldPath`] and cost what a dotted field costs: `[*]` is
//! the fan-out over arrays a dotted path already does. Anything else (`..` descent,
//! `.*` / `[*]` over objects, filters `[?@.x == 'y']`, slices, unions) is evaluated by
//! `jsonpath-rust` on a `serde_json` copy of the value, and the nodes it selects are
//! then read from the record itself, so every Sigma modifier applies unchanged. That
//! copy costs a few microseconds per record tested; keep such selectors behind an
//! `eventName` selection, which the rule index uses to skip most records.
//!
//! Member names in a selector are matched like dotted fields: exact key first, then
//! ASCII case-insensitive (docs/records.md); the evaluated forms match exactly, as
//! RFC 9535 says.

use std::ops::ControlFlow;
use std::sync::Arc;

use simd_json::tape::Value;

use super::path::{FieldPath, PathError, Segment};

/// A selector evaluated by `jsonpath-rust`.
#[derive(Debug)]
pub struct Query {
    text: Box<str>,
    query: jsonpath_rust::parser::model::JpQuery,
}

impl PartialEq for Query {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Query {}

impl std::hash::Hash for Query {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

impl Query {
    /// The selector as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Calls `f` with every node the query selects below `value`.
    pub fn for_each<'t, 'i, F>(&self, value: Value<'t, 'i>, f: &mut F) -> ControlFlow<()>
    where
        F: FnMut(Value<'t, 'i>) -> ControlFlow<()>,
    {
        let json = to_serde(value, 1);
        let Ok(found) = jsonpath_rust::query::js_path_process(&self.query, &json) else {
            return ControlFlow::Continue(());
        };
        for r in found {
            if let Some(steps) = parse_normalized(&r.path)
                && let Some(v) = exact(value, &steps)
            {
                f(v)?;
            }
        }
        ControlFlow::Continue(())
    }
}

/// How deep the `serde_json` copy a query runs on goes; containers below are copied
/// empty. `jsonpath-rust` walks `..` recursively (about 15 stack frames a level), so an
/// unbounded copy of a record as deep as simd-json accepts (1024 levels) overflows a
/// worker's stack. 128 is where `serde_json`'s own parser stops.
const MAX_COPY_DEPTH: usize = 128;

/// The `serde_json` copy of a value, built from the tape to [`MAX_COPY_DEPTH`] levels.
/// (Not by writing JSON text and parsing it back: that parse fails as a whole on a
/// record nested deeper than 128 levels anywhere, and every query of such a record then
/// selected nothing, whatever it asked for.) Of repeated keys the last is kept, as
/// `serde_json` keeps it.
fn to_serde(v: Value<'_, '_>, depth: usize) -> serde_json::Value {
    use simd_json::prelude::ValueAsScalar;
    if let Some(s) = v.as_str() {
        return serde_json::Value::String(s.to_string());
    }
    if let Some(a) = v.as_array() {
        if depth >= MAX_COPY_DEPTH {
            return serde_json::Value::Array(Vec::new());
        }
        return serde_json::Value::Array(a.iter().map(|x| to_serde(x, depth + 1)).collect());
    }
    if let Some(o) = v.as_object() {
        let mut m = serde_json::Map::new();
        if depth < MAX_COPY_DEPTH {
            for (k, x) in o.iter() {
                m.insert(k.to_string(), to_serde(x, depth + 1));
            }
        }
        return serde_json::Value::Object(m);
    }
    if let Some(b) = v.as_bool() {
        serde_json::Value::Bool(b)
    } else if let Some(i) = v.as_i64() {
        i.into()
    } else if let Some(u) = v.as_u64() {
        u.into()
    } else if let Some(f) = v.as_f64() {
        serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, serde_json::Value::Number)
    } else {
        serde_json::Value::Null
    }
}

/// One step of a normalized path (`$['a'][0]`).
enum Step {
    Key(String),
    Index(usize),
}

/// Parses the normalized paths `jsonpath-rust` reports: `$` then `['name']` or `[N]`.
fn parse_normalized(p: &str) -> Option<Vec<Step>> {
    let mut chars = p.strip_prefix('$')?.chars().peekable();
    let mut out = Vec::new();
    while let Some(c) = chars.next() {
        if c != '[' {
            return None;
        }
        if chars.peek() == Some(&'\'') {
            chars.next();
            let mut key = String::new();
            loop {
                match chars.next()? {
                    '\'' => break,
                    '\\' => match chars.next()? {
                        'b' => key.push('\u{8}'),
                        'f' => key.push('\u{c}'),
                        'n' => key.push('\n'),
                        'r' => key.push('\r'),
                        't' => key.push('\t'),
                        'u' => {
                            let hex: String = (0..4).filter_map(|_| chars.next()).collect();
                            key.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                        }
                        other => key.push(other),
                    },
                    other => key.push(other),
                }
            }
            if chars.next()? != ']' {
                return None;
            }
            out.push(Step::Key(key));
        } else {
            let mut digits = String::new();
            loop {
                match chars.next()? {
                    ']' => break,
                    d if d.is_ascii_digit() => digits.push(d),
                    _ => return None,
                }
            }
            out.push(Step::Index(digits.parse().ok()?));
        }
    }
    Some(out)
}

/// Follows exact steps (first key of that name, as serde_json keeps it).
fn exact<'t, 'i>(mut v: Value<'t, 'i>, steps: &[Step]) -> Option<Value<'t, 'i>> {
    for s in steps {
        v = match s {
            Step::Index(i) => v.as_array()?.get(*i)?,
            Step::Key(k) => {
                let obj = v.as_object()?;
                // serde_json keeps the last of repeated keys.
                let mut found = None;
                for (key, val) in obj.iter() {
                    if key == k.as_str() {
                        found = Some(val);
                    }
                }
                found?
            }
        };
    }
    Some(v)
}

/// The longest selector accepted, in bytes.
pub const MAX_LEN: usize = 1024;

/// The deepest nesting of brackets and parentheses accepted. `jsonpath-rust`'s parser
/// backtracks: its time doubles with each level beyond about 20 (a fuzzed selector
/// nesting 48 filters took 13 s), while real selectors nest two or three.
pub const MAX_NESTING: usize = 16;

/// How deep `[` and `(` nest outside quoted names and strings.
fn nesting(text: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut quote: Option<u8> = None;
    let mut escaped = false;
    for &b in text.as_bytes() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == q {
                    quote = None;
                }
            }
            None => match b {
                b'\'' | b'"' => quote = Some(b),
                b'[' | b'(' => {
                    depth += 1;
                    max = max.max(depth);
                }
                b']' | b')' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
    }
    max
}

/// Compiles a `$`-selector: a plain [`FieldPath`] when it can be one.
pub fn compile(text: &str) -> Result<FieldPath, PathError> {
    let bounded = if text.len() > MAX_LEN {
        Err(format!("is {} bytes long; at most {MAX_LEN}", text.len()))
    } else {
        match nesting(text) {
            n if n > MAX_NESTING => Err(format!(
                "nests brackets and parentheses {n} deep; at most {MAX_NESTING}"
            )),
            _ => Ok(()),
        }
    };
    bounded.map_err(|message| PathError::JsonPath {
        path: text.chars().take(80).collect(),
        message,
    })?;
    let query = jsonpath_rust::parser::parse_json_path(text).map_err(|e| PathError::JsonPath {
        path: text.into(),
        message: e.to_string(),
    })?;
    if let Some(segments) = simple_segments(text) {
        if segments.is_empty() {
            return Err(PathError::JsonPath {
                path: text.into(),
                message: "selects the whole record; name a field".into(),
            });
        }
        return Ok(FieldPath::from_segments(text, segments));
    }
    let q = Arc::new(Query {
        text: text.into(),
        query,
    });
    Ok(FieldPath::from_segments(text, vec![Segment::Query(q)]))
}

/// `$.a.b[0]['c d'][*]` → segments, or `None` when the selector needs the evaluator.
/// `[*]` is dropped: a path fans out over arrays by itself. (On an object `[*]` would
/// mean every member, so a `[*]` that is not followed by more steps, or any `.*`,
/// goes to the evaluator.)
fn simple_segments(text: &str) -> Option<Vec<Segment>> {
    let b = text.as_bytes();
    let mut i = 1; // after '$'
    let mut out = Vec::new();
    let mut trailing_star = false;
    while i < b.len() {
        trailing_star = false;
        match b[i] {
            b'.' => {
                i += 1;
                let start = i;
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric()
                        || b[i] == b'_'
                        || b[i] == b'-'
                        || b[i] >= 0x80)
                {
                    i += 1;
                }
                if i == start {
                    return None; // `..` or `.*`
                }
                out.push(Segment::Key(text[start..i].into()));
            }
            b'[' => {
                let close = i + text[i..].find(']')?;
                let inner = text[i + 1..close].trim();
                if inner == "*" {
                    trailing_star = true;
                } else if inner.bytes().all(|c| c.is_ascii_digit()) && !inner.is_empty() {
                    let n: usize = inner.parse().ok()?;
                    out.push(Segment::Index(n, inner.into()));
                } else if let Some(name) = quoted(inner) {
                    out.push(Segment::Key(name.into()));
                } else {
                    return None;
                }
                i = close + 1;
            }
            _ => return None,
        }
    }
    if trailing_star {
        return None;
    }
    Some(out)
}

/// The name inside `'…'` or `"…"` without escapes.
fn quoted(s: &str) -> Option<&str> {
    let inner = s
        .strip_prefix('\'')
        .and_then(|r| r.strip_suffix('\''))
        .or_else(|| s.strip_prefix('"').and_then(|r| r.strip_suffix('"')))?;
    (!inner.contains(['\\', '\'', '"', ']'])).then_some(inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::RecordParser;
    use simd_json::prelude::Writable;

    fn values(sel: &str, rec: &str) -> Vec<String> {
        let p = compile(sel).expect("compiles");
        let mut parser = RecordParser::new();
        let mut out = Vec::new();
        parser.parse(rec.as_bytes(), |r| {
            let root = r.expect("json");
            let _ = p.for_each(root, &mut |v| {
                let mut b = Vec::new();
                let _ = v.write(&mut b);
                out.push(String::from_utf8_lossy(&b).into_owned());
                ControlFlow::Continue(())
            });
        });
        out
    }

    const SG: &str = r#"{"eventName":"AuthorizeSecurityGroupIngress","requestParameters":{"groupId":"sg-1","ipPermissions":{"items":[{"ipProtocol":"tcp","ipRanges":{"items":[{"cidrIp":"0.0.0.0/0"},{"cidrIp":"10.0.0.0/8"}]}},{"ipProtocol":"udp","ipRanges":{"items":[{"cidrIp":"192.168.0.0/16"}]}}]}},"resources":[{"ARN":"arn:a"},{"ARN":"arn:b"}]}"#;

    #[test]
    fn deep_nesting_elsewhere_in_the_record_does_not_hide_a_match() {
        // serde_json's parser stops at 128 levels; the copy is built from the tape (to
        // 128 levels), so a record as deep as simd-json accepts is still searched.
        let depth = 1020;
        let rec = format!(
            "{},\"deep\":{}{}}}",
            &SG[..SG.len() - 1],
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let want = ["\"0.0.0.0/0\"", "\"10.0.0.0/8\"", "\"192.168.0.0/16\""];
        assert_eq!(values("$.requestParameters..cidrIp", SG), want);
        assert_eq!(values("$.requestParameters..cidrIp", &rec), want);
        assert_eq!(values("$..cidrIp", &rec), want);
        // Below 128 levels containers are copied empty: a value there is not selected.
        let buried = format!(
            "{{\"eventName\":\"x\",\"a\":{}{{\"cidrIp\":\"0.0.0.0/0\"}}{}}}",
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(values("$..cidrIp", &buried).is_empty());
        // Numbers, booleans and null survive the copy.
        let odd = r#"{"a":[1,-2,3.5,18446744073709551615,true,null,"x"]}"#;
        assert_eq!(
            values("$.a[?@ != 'x']", odd),
            ["1", "-2", "3.5", "18446744073709551615", "true", "null"]
        );
    }

    #[test]
    fn selectors_nesting_too_deep_or_too_long_are_errors() {
        // Found by the `record` fuzz target: 48 nested filters took 13 s to parse.
        let deep = format!("$.a{}", "[?nin($.b".repeat(30));
        let e = compile(&deep).expect_err("too deep").to_string();
        assert!(
            e.contains("nests brackets and parentheses 60 deep; at most 16"),
            "{e}"
        );
        let long = format!("$.{}", "a".repeat(MAX_LEN));
        let e = compile(&long).expect_err("too long").to_string();
        assert!(e.contains("1026 bytes long; at most 1024"), "{e}");
        // Brackets inside quoted names do not count; real selectors stay well inside.
        assert_eq!(nesting("$['a[[[[(((']"), 1);
        assert_eq!(nesting(r#"$[?@.x == "]]]\"[[[["]"#), 1);
        assert!(compile("$.resources[?@.type == 'AWS::S3::Object' && length(@.ARN) > 3]").is_ok());
        let sixteen = format!("$.a{}{}", "[?(".repeat(8), ")]".repeat(8));
        assert_eq!(nesting(&sixteen), 16);
        // (Not valid JSONPath either way; only the depth check must let it through.)
        let e = compile(&sixteen)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!e.contains("nests"), "{e}");
    }

    #[test]
    fn simple_selectors_become_plain_paths() {
        for (sel, plain) in [
            ("$.resources[*].ARN", true),
            (
                "$.requestParameters.ipPermissions.items[*].ipRanges.items[*].cidrIp",
                true,
            ),
            ("$.resources[0].ARN", true),
            ("$['requestParameters']['groupId']", true),
            ("$..cidrIp", false),
            (
                "$.requestParameters.ipPermissions.items[?@.ipProtocol == 'udp'].ipRanges.items[*].cidrIp",
                false,
            ),
            ("$.resources[*]", false),
        ] {
            let p = compile(sel).expect(sel);
            let is_plain = !p.segments().iter().any(|s| matches!(s, Segment::Query(_)));
            assert_eq!(is_plain, plain, "{sel}");
        }
    }

    #[test]
    fn selectors_select_the_values_jsonpath_defines() {
        assert_eq!(values("$.resources[*].ARN", SG), ["\"arn:a\"", "\"arn:b\""]);
        assert_eq!(values("$.resources[1].ARN", SG), ["\"arn:b\""]);
        assert_eq!(
            values(
                "$.requestParameters.ipPermissions.items[*].ipRanges.items[*].cidrIp",
                SG
            ),
            ["\"0.0.0.0/0\"", "\"10.0.0.0/8\"", "\"192.168.0.0/16\""]
        );
        assert_eq!(
            values("$..cidrIp", SG),
            ["\"0.0.0.0/0\"", "\"10.0.0.0/8\"", "\"192.168.0.0/16\""]
        );
        assert_eq!(
            values(
                "$.requestParameters.ipPermissions.items[?@.ipProtocol == 'udp'].ipRanges.items[*].cidrIp",
                SG
            ),
            ["\"192.168.0.0/16\""]
        );
        assert_eq!(values("$.nothing[*].here", SG), Vec::<String>::new());
    }

    #[test]
    fn malformed_selectors_are_errors() {
        for bad in ["$.a[", "$.a[?@.x ==]", "$$", "$"] {
            assert!(compile(bad).is_err(), "{bad}");
        }
    }
}
