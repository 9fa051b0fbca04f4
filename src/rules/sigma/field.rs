//! One `field|modifiers: values` entry of a selection → [`FieldTest`].
//!
//! Evaluation walks the field's path ([`FieldPath::for_each`]) and tests its *leaves*:
//! strings, numbers and booleans; an array contributes its elements and an object every
//! scalar below it (so `requestParameters|contains: x` searches the whole object). A test
//! holds if any leaf matches any value (or, with `all`, if every value is matched by some
//! leaf). `null` matches a field with no non-null leaf (missing, `null`, `[]`); `exists`
//! looks only at whether the key is there; `neq` negates the whole test.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use regex::Regex;
use simd_json::prelude::{TypedScalarValue, ValueAsScalar};
use simd_json::tape::Value;

use super::modifiers::{
    Anchor, Compare, Leaf, Modifier, Network, Pattern, ValueSet, base64, base64offset,
    fieldref_holds, utf16be, utf16le, windash,
};
use crate::event::FieldPath;
use crate::event::path::{self, RootCache};
use crate::rules::fieldmap;
use crate::rules::yaml::{Kind, Mark, Yaml};
use crate::rules::{Located, RuleErrorKind};

/// What rule compilation needs besides the rule: `expand` placeholders.
#[derive(Debug, Clone, Default)]
pub struct CompileContext {
    /// Placeholder name (without `%`) → its values.
    pub placeholders: BTreeMap<String, Vec<String>>,
}

/// How a field test combines its values.
#[derive(Debug, Clone)]
enum TestKind {
    /// Any value matches (Sigma's default for lists).
    Any(ValueSet),
    /// `all`: every value matches some leaf of the field.
    All(Vec<ValueSet>),
    /// `exists: true|false`
    Exists(bool),
}

/// One compiled `field|modifiers: values` entry.
#[derive(Debug, Clone)]
pub struct FieldTest {
    /// `None` for a keyword test with modifiers (`'|all': [a, b]`): the whole record.
    path: Option<FieldPath>,
    kind: TestKind,
    negate: bool,
    /// `key: values` as written, for `rules explain`.
    source: Box<str>,
}

/// `key: value` or `key: [a, b, …]` as a rule author wrote it (long lists shortened).
fn source_text(key: &Yaml, value: &Yaml) -> Box<str> {
    fn scalar(y: &Yaml) -> String {
        match &y.kind {
            Kind::Null => "null".into(),
            Kind::Str(s) if s.is_empty() || s.contains([':', '#', '*', ' ']) || y.quoted => {
                format!("'{}'", s.replace('\'', "''"))
            }
            _ => y.as_scalar_text().unwrap_or("…").to_string(),
        }
    }
    let key = key.as_scalar_text().unwrap_or_default();
    let value = match &value.kind {
        Kind::Seq(items) => {
            let mut parts: Vec<String> = items.iter().take(6).map(scalar).collect();
            if items.len() > 6 {
                parts.push(format!("… {} more", items.len() - 6));
            }
            format!("[{}]", parts.join(", "))
        }
        _ => scalar(value),
    };
    format!("{key}: {value}").into_boxed_str()
}

/// Formats a non-string scalar as Sigma string values compare with it.
pub fn scalar_text<'b>(v: Value<'_, '_>, buf: &'b mut [u8; 40]) -> Option<&'b str> {
    use std::io::Write;
    if let Some(b) = v.as_bool() {
        return Some(if b { "true" } else { "false" });
    }
    let mut cur = std::io::Cursor::new(&mut buf[..]);
    let ok = if let Some(i) = v.as_i64() {
        write!(cur, "{i}").is_ok()
    } else if let Some(u) = v.as_u64() {
        write!(cur, "{u}").is_ok()
    } else if let Some(f) = v.as_f64() {
        write!(cur, "{f}").is_ok()
    } else {
        false
    };
    let n = cur.position() as usize;
    if ok {
        std::str::from_utf8(&buf[..n]).ok()
    } else {
        None
    }
}

/// Calls `f` with every non-null leaf under `v`; stops when `f` breaks.
/// (Also used by the rule index, which must see exactly the leaves matching sees.)
pub fn for_each_leaf(
    v: Value<'_, '_>,
    f: &mut dyn FnMut(Leaf<'_>) -> ControlFlow<()>,
) -> ControlFlow<()> {
    if let Some(s) = path::as_str(v) {
        return f(Leaf::Str(s));
    }
    if let Some(arr) = v.as_array() {
        for e in arr.iter() {
            for_each_leaf(e, f)?;
        }
        return ControlFlow::Continue(());
    }
    if let Some(obj) = v.as_object() {
        for (_, e) in obj.iter() {
            for_each_leaf(e, f)?;
        }
        return ControlFlow::Continue(());
    }
    if v.is_null() {
        return ControlFlow::Continue(());
    }
    if let Some(b) = v.as_bool() {
        return f(Leaf::Bool(b));
    }
    let mut buf = [0u8; 40];
    match (v.cast_f64(), scalar_text(v, &mut buf)) {
        (Some(n), Some(text)) => f(Leaf::Num(n, text)),
        _ => ControlFlow::Continue(()),
    }
}

/// Calls `f` with every non-null leaf of `path` in the record (of the whole record when
/// `path` is `None`).
fn for_each_field_leaf(
    path: Option<&FieldPath>,
    rec: &RootCache<'_, '_>,
    f: &mut dyn FnMut(Leaf<'_>) -> ControlFlow<()>,
) -> ControlFlow<()> {
    match path {
        Some(p) => p.for_each_cached(rec, &mut |v| for_each_leaf(v, f)),
        None => for_each_leaf(rec.root(), f),
    }
}

fn set_matches(path: Option<&FieldPath>, rec: &RootCache<'_, '_>, set: &ValueSet) -> bool {
    let mut non_null = false;
    let refs = set.fieldrefs();
    let flow = for_each_field_leaf(path, rec, &mut |leaf| {
        non_null = true;
        if set.matches(leaf) || (!refs.is_empty() && fieldref_matches(refs, leaf, rec)) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    flow.is_break() || (!non_null && set.matches_null())
}

fn fieldref_matches(refs: &[(FieldPath, Anchor)], leaf: Leaf<'_>, rec: &RootCache<'_, '_>) -> bool {
    let text = leaf.text();
    refs.iter().any(|(other, anchor)| {
        for_each_field_leaf(Some(other), rec, &mut |o| {
            if fieldref_holds(text, o.text(), *anchor) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .is_break()
    })
}

impl FieldTest {
    /// The field's path (`None` for a keyword test over the whole record).
    pub fn path(&self) -> Option<&FieldPath> {
        self.path.as_ref()
    }

    /// The entry as written (`eventName|startswith: [List, Describe]`).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whole-value ASCII literals this test requires, if it is a plain equality test.
    pub fn exact_literals(&self) -> Option<Vec<Box<[u8]>>> {
        match (&self.kind, self.negate) {
            (TestKind::Any(set), false) => set.exact_literals(),
            _ => None,
        }
    }

    /// Literals one of which a matching leaf must contain, for the index.
    pub fn substrings(&self) -> Option<Vec<Vec<u8>>> {
        match (&self.kind, self.negate) {
            (TestKind::Any(set), false) => set.substrings(),
            _ => None,
        }
    }

    /// Regular expressions one of which a matching leaf must match, for the index.
    pub fn regex_list(&self) -> Option<Vec<Regex>> {
        match (&self.kind, self.negate) {
            (TestKind::Any(set), false) => set.regex_list(),
            _ => None,
        }
    }

    /// Whether the record satisfies the test.
    #[inline]
    pub fn matches(&self, rec: &RootCache<'_, '_>) -> bool {
        let path = self.path.as_ref();
        let hit = match &self.kind {
            TestKind::Any(set) => set_matches(path, rec, set),
            TestKind::All(sets) => sets.iter().all(|s| set_matches(path, rec, s)),
            TestKind::Exists(want) => path.is_some_and(|p| p.present_cached(rec)) == *want,
        };
        hit != self.negate
    }

    /// Every path the test reads (its field and its field references), for slot
    /// assignment.
    pub fn paths_mut(&mut self, f: &mut dyn FnMut(&mut FieldPath)) {
        if let Some(p) = &mut self.path {
            f(p);
        }
        let sets: Vec<&mut ValueSet> = match &mut self.kind {
            TestKind::Any(s) => vec![s],
            TestKind::All(v) => v.iter_mut().collect(),
            TestKind::Exists(_) => Vec::new(),
        };
        for s in sets {
            for (p, _) in s.fieldrefs_mut() {
                f(p);
            }
        }
    }
}

/// Compiled size limit of one regular expression of a rule (the regex crate matches in
/// time linear in the input whatever the pattern; this bounds the memory a pattern such
/// as `(a{1000}){1000}` may take at load time).
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Compiles a rule's regular expression within [`REGEX_SIZE_LIMIT`].
pub(crate) fn bounded_regex(pattern: &str) -> Result<Regex, regex::Error> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
}

/// The regex crate's syntax errors draw the pattern and a caret over several lines;
/// a rule error is one line, so keep the last line (what is wrong).
pub fn one_line(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    last.trim().trim_start_matches("error: ").to_string()
}

fn err(mark: Mark, kind: RuleErrorKind) -> Located {
    Located { mark, kind }
}

fn bad(mark: Mark, msg: impl Into<String>) -> Located {
    err(mark, RuleErrorKind::BadValue(msg.into()))
}

/// The modifiers of one key, sorted by role.
#[derive(Debug, Default)]
struct Mods {
    anchor: Anchor,
    anchors: usize,
    all: bool,
    cased: bool,
    neq: bool,
    exists: bool,
    re: bool,
    re_flags: (bool, bool, bool),
    cidr: bool,
    compare: Option<Modifier>,
    fieldref: bool,
    expand: bool,
    transforms: Vec<Modifier>,
}

fn sort_mods(field: &str, mods: &[Modifier], mark: Mark) -> Result<Mods, Located> {
    use Modifier::*;
    let mut m = Mods::default();
    for &x in mods {
        match x {
            Contains | StartsWith | EndsWith => {
                m.anchors += 1;
                m.anchor = match x {
                    Contains => Anchor::Contains,
                    StartsWith => Anchor::StartsWith,
                    _ => Anchor::EndsWith,
                };
            }
            All => m.all = true,
            Cased => m.cased = true,
            Neq => m.neq = true,
            Exists => m.exists = true,
            Re => m.re = true,
            ReI | ReM | ReS if !m.re => {
                return Err(err(
                    mark,
                    RuleErrorKind::UnknownModifier {
                        modifier: format!("{x:?}").trim_start_matches("Re").to_lowercase(),
                        field: field.into(),
                    },
                ));
            }
            ReI => m.re_flags.0 = true,
            ReM => m.re_flags.1 = true,
            ReS => m.re_flags.2 = true,
            Cidr => m.cidr = true,
            Lt | Lte | Gt | Gte => m.compare = Some(x),
            FieldRef => m.fieldref = true,
            Expand => m.expand = true,
            Base64 | Base64Offset | Utf16Le | Utf16Be | Utf16 | Windash => m.transforms.push(x),
        }
    }
    if m.anchors > 1 {
        return Err(err(
            mark,
            RuleErrorKind::ConflictingModifiers {
                field: field.into(),
            },
        ));
    }
    let kinds = [m.re, m.cidr, m.compare.is_some(), m.fieldref, m.exists]
        .iter()
        .filter(|&&b| b)
        .count();
    if kinds > 1 {
        return Err(bad(
            mark,
            format!(
                "field '{field}': re, cidr, lt/lte/gt/gte, fieldref and exists exclude each other"
            ),
        ));
    }
    Ok(m)
}

/// Replaces `%name%` placeholders with each of their values (every combination);
/// `\%` is a plain percent sign (spec: `\%plain%name%` is `%plain` then `%name%`).
fn expand(text: &str, ctx: &CompileContext, mark: Mark) -> Result<Vec<String>, Located> {
    let mut out = vec![String::new()];
    let mut chars = text.chars().peekable();
    let mut lit = String::new();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'%') => {
                lit.push('%');
                chars.next();
            }
            '%' => {
                let name: String = chars.by_ref().take_while(|&c| c != '%').collect();
                let values = ctx.placeholders.get(&name).ok_or_else(|| {
                    bad(mark, format!("placeholder %{name}% has no values (give them with --placeholders FILE)"))
                })?;
                let prefix = std::mem::take(&mut lit);
                let prefix = prefix.as_str();
                out = out
                    .iter()
                    .flat_map(|o| values.iter().map(move |v| format!("{o}{prefix}{v}")))
                    .collect();
            }
            c => lit.push(c),
        }
    }
    for o in &mut out {
        o.push_str(&lit);
    }
    Ok(out)
}

/// Applies the encoding modifiers, in rule order, to one value.
fn transform(
    pattern: Pattern,
    transforms: &[Modifier],
    mark: Mark,
) -> Result<Vec<Pattern>, Located> {
    let mut variants = vec![pattern];
    for t in transforms {
        let mut next = Vec::new();
        for p in variants {
            match t {
                Modifier::Utf16Le | Modifier::Utf16Be | Modifier::Utf16 => {
                    let enc = |s: &str| match t {
                        Modifier::Utf16Be => utf16be(s),
                        _ => utf16le(s),
                    };
                    if p.0
                        .iter()
                        .any(|x| matches!(x, super::modifiers::Piece::Lit(l) if enc(l).is_none()))
                    {
                        return Err(bad(mark, "utf16 modifiers need an ASCII value"));
                    }
                    let q = p.map_literals(|l| enc(l).unwrap_or_default());
                    next.push(if *t == Modifier::Utf16 {
                        q.prepend_literal("\u{feff}")
                    } else {
                        q
                    });
                }
                Modifier::Base64 | Modifier::Base64Offset => {
                    let lit = p.as_literal().ok_or_else(|| {
                        bad(
                            mark,
                            "base64 encoding of a value with wildcards is not allowed",
                        )
                    })?;
                    if *t == Modifier::Base64 {
                        next.push(Pattern::literal(&base64(&lit)));
                    } else {
                        next.extend(base64offset(&lit).iter().map(|s| Pattern::literal(s)));
                    }
                }
                Modifier::Windash => {
                    // Wildcards stay where they are; each literal run is expanded.
                    let mut acc = vec![Pattern::default()];
                    for piece in &p.0 {
                        let alts: Vec<super::modifiers::Piece> = match piece {
                            super::modifiers::Piece::Lit(l) => windash(l)
                                .ok_or_else(|| {
                                    let max = super::modifiers::WINDASH_MAX;
                                    bad(
                                        mark,
                                        format!("windash: more than {max} flags in one value"),
                                    )
                                })?
                                .into_iter()
                                .map(super::modifiers::Piece::Lit)
                                .collect(),
                            other => vec![other.clone()],
                        };
                        acc = acc
                            .into_iter()
                            .flat_map(|a| {
                                alts.iter().map(move |x| {
                                    let mut b = a.clone();
                                    b.0.push(x.clone());
                                    b
                                })
                            })
                            .collect();
                    }
                    next.extend(acc);
                }
                _ => next.push(p),
            }
        }
        variants = next;
    }
    Ok(variants)
}

/// A rule value as a number: decimal, or YAML 1.2 `0x` hex and `0o` octal integers.
fn number_of(item: &Yaml) -> Option<f64> {
    let t = item.as_scalar_text()?.trim();
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let radix = if let Some(h) = body.strip_prefix("0x") {
        Some((h, 16))
    } else {
        body.strip_prefix("0o").map(|o| (o, 8))
    };
    let n = match radix {
        Some((digits, r)) => i64::from_str_radix(digits, r).ok()? as f64,
        None => return t.parse::<f64>().ok().filter(|n| !n.is_nan()),
    };
    Some(if neg { -n } else { n })
}

/// Adds one rule value to `set` under the modifiers `m`.
fn add_value(
    set: &mut ValueSet,
    item: &Yaml,
    m: &Mods,
    field: &str,
    ctx: &CompileContext,
) -> Result<(), Located> {
    let mark = item.mark;
    if item.kind == Kind::Null {
        set.add_null();
        return Ok(());
    }
    let Some(text) = item.as_scalar_text() else {
        return Err(err(
            mark,
            RuleErrorKind::TypeMismatch {
                field: field.into(),
                expected: "a scalar value or a list of scalars",
                found: item.kind_name(),
            },
        ));
    };
    if m.re {
        // Flags inline, so the pattern text alone (used by the index's RegexSet) means
        // the same as the compiled regex.
        let flags: String = [
            (m.re_flags.0, 'i'),
            (m.re_flags.1, 'm'),
            (m.re_flags.2, 's'),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, c)| *c)
        .collect();
        let pattern = if flags.is_empty() {
            text.to_string()
        } else {
            format!("(?{flags}){text}")
        };
        let r = bounded_regex(&pattern).map_err(|e| {
            bad(
                mark,
                format!("bad regular expression {text:?}: {}", one_line(&e)),
            )
        })?;
        set.add_regex(r);
        return Ok(());
    }
    if m.cidr {
        let n = Network::parse(text)
            .ok_or_else(|| bad(mark, format!("{text:?} is not a CIDR network")))?;
        set.add_network(n);
        return Ok(());
    }
    if let Some(op) = m.compare {
        let n = number_of(item).ok_or_else(|| {
            err(
                mark,
                RuleErrorKind::TypeMismatch {
                    field: field.into(),
                    expected: "a number for lt/lte/gt/gte",
                    found: item.kind_name(),
                },
            )
        })?;
        set.add_compare(match op {
            Modifier::Lt => Compare::Lt(n),
            Modifier::Lte => Compare::Lte(n),
            Modifier::Gt => Compare::Gt(n),
            _ => Compare::Gte(n),
        });
        return Ok(());
    }
    if m.fieldref {
        let p =
            fieldmap::path(text).map_err(|e| err(mark, RuleErrorKind::BadPath(e.to_string())))?;
        set.add_fieldref(p, m.anchor);
        return Ok(());
    }
    // A YAML number with no string modifier compares numerically (pySigma's SigmaNumber).
    if matches!(item.kind, Kind::Number(_))
        && m.anchors == 0
        && m.transforms.is_empty()
        && !m.expand
        && let Some(n) = number_of(item)
    {
        set.add_number(n);
        return Ok(());
    }
    let texts = if m.expand {
        expand(text, ctx, mark)?
    } else {
        vec![text.to_string()]
    };
    for t in texts {
        for p in transform(Pattern::parse(&t), &m.transforms, mark)? {
            set.add_pattern(&p, m.anchor)
                .map_err(|e| bad(mark, e.to_string()))?;
        }
    }
    Ok(())
}

/// Splits `field|mod|mod` and parses the modifiers.
pub fn split_key(key: &Yaml) -> Result<(String, Vec<Modifier>), Located> {
    let text = key.as_scalar_text().ok_or_else(|| {
        err(
            key.mark,
            RuleErrorKind::TypeMismatch {
                field: "<selection key>".into(),
                expected: "a field name",
                found: key.kind_name(),
            },
        )
    })?;
    let mut parts = text.split('|');
    let field = parts.next().unwrap_or_default().to_string();
    let mut mods = Vec::new();
    for m in parts {
        match Modifier::parse(m) {
            Some(modifier) => mods.push(modifier),
            None => {
                return Err(err(
                    key.mark,
                    RuleErrorKind::UnknownModifier {
                        modifier: m.into(),
                        field: field.clone(),
                    },
                ));
            }
        }
    }
    Ok((field, mods))
}

/// Compiles one `field|modifiers: values` entry.
pub fn compile_field(key: &Yaml, value: &Yaml, ctx: &CompileContext) -> Result<FieldTest, Located> {
    let (field, mods) = split_key(key)?;
    let mut m = sort_mods(&field, &mods, key.mark)?;
    let path = if field.is_empty() {
        // A keyword test with modifiers: searched over the whole record, so a plain
        // value is a substring, as in a keyword list.
        if m.exists || m.fieldref {
            return Err(err(key.mark, RuleErrorKind::KeywordModifiersInMap));
        }
        if m.anchors == 0 && !m.re && !m.cidr && m.compare.is_none() {
            m.anchor = Anchor::Contains;
            m.anchors = 1;
        }
        None
    } else {
        let p = fieldmap::path(&field)
            .map_err(|e| err(key.mark, RuleErrorKind::BadPath(e.to_string())))?;
        Some(p)
    };
    if m.exists {
        let want = match &value.kind {
            Kind::Bool(b) => *b,
            _ => {
                return Err(err(
                    value.mark,
                    RuleErrorKind::TypeMismatch {
                        field,
                        expected: "true or false for exists",
                        found: value.kind_name(),
                    },
                ));
            }
        };
        return Ok(FieldTest {
            path,
            kind: TestKind::Exists(want),
            negate: m.neq,
            source: source_text(key, value),
        });
    }
    let items: Vec<&Yaml> = match &value.kind {
        Kind::Seq(v) => v.iter().collect(),
        _ => vec![value],
    };
    if items.is_empty() {
        return Err(err(
            value.mark,
            RuleErrorKind::TypeMismatch {
                field,
                expected: "at least one value",
                found: "an empty list",
            },
        ));
    }
    let finish = |s: &mut ValueSet| s.finish().map_err(|e| bad(value.mark, e.to_string()));
    let kind = if m.all {
        let mut sets = Vec::with_capacity(items.len());
        for item in items {
            let mut s = ValueSet::new(m.cased);
            add_value(&mut s, item, &m, &field, ctx)?;
            finish(&mut s)?;
            sets.push(s);
        }
        TestKind::All(sets)
    } else {
        let mut s = ValueSet::new(m.cased);
        for item in items {
            add_value(&mut s, item, &m, &field, ctx)?;
        }
        finish(&mut s)?;
        TestKind::Any(s)
    };
    Ok(FieldTest {
        path,
        kind,
        negate: m.neq,
        source: source_text(key, value),
    })
}

/// Compiles a keyword list: any leaf of the whole record containing a keyword
/// (case-insensitive, wildcards honoured).
pub fn compile_keywords<'a>(items: impl Iterator<Item = &'a Yaml>) -> Result<ValueSet, Located> {
    let mut set = ValueSet::new(false);
    let mut mark = Mark::default();
    for i in items {
        mark = i.mark;
        let text = i.as_scalar_text().unwrap_or_default();
        set.add_pattern(&Pattern::parse(text), Anchor::Contains)
            .map_err(|e| bad(i.mark, e.to_string()))?;
    }
    set.finish().map_err(|e| bad(mark, e.to_string()))?;
    Ok(set)
}

/// Whether any leaf of the whole record matches a keyword set.
pub fn keywords_match(set: &ValueSet, rec: &RootCache<'_, '_>) -> bool {
    for_each_leaf(rec.root(), &mut |leaf| {
        if set.matches(leaf) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .is_break()
}
