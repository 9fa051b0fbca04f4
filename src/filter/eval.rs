//! The compiled expression tree and its evaluation over one record, with SQL's
//! three-valued logic: every node yields a [`Val`], conditions `Bool` or `Null`.

use std::borrow::Cow;
use std::cmp::Ordering;

use simd_json::prelude::{TypedScalarValue, ValueAsScalar, Writable};
use simd_json::tape::Value;

use super::columns::{Column, Kind};
use super::like::Pattern;
use crate::event::FieldPath;
use crate::event::path::{RootCache, as_str};

/// A value during evaluation. Strings borrow from the record or the filter whenever
/// they can.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Val<'a> {
    Null,
    Bool(bool),
    Num(f64),
    /// TIMESTAMP, microseconds since the epoch (UTC).
    Ts(i64),
    Str(Cow<'a, str>),
    /// A non-NULL struct (only `IS NULL` looks at it).
    Struct,
}

impl Val<'_> {
    fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }

    fn truth(&self) -> Option<bool> {
        match self {
            Val::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

fn tri(b: Option<bool>) -> Val<'static> {
    b.map_or(Val::Null, Val::Bool)
}

/// A literal.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Lit {
    Null,
    Bool(bool),
    Num(f64),
    Ts(i64),
    Str(Box<str>),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    fn test(self, o: Ordering) -> bool {
        match self {
            CmpOp::Eq => o == Ordering::Equal,
            CmpOp::Ne => o != Ordering::Equal,
            CmpOp::Lt => o == Ordering::Less,
            CmpOp::Le => o != Ordering::Greater,
            CmpOp::Gt => o == Ordering::Greater,
            CmpOp::Ge => o != Ordering::Less,
        }
    }
}

/// Two-argument string predicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StrFn {
    StartsWith,
    EndsWith,
    Contains,
}

/// One step of `->` / `->>`.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Step {
    /// An object key (exact, case-sensitive; the first of repeated keys).
    Key(Box<str>),
    /// An array element; negative counts from the end.
    Index(i64),
    /// A JSON-pointer segment: an element of an array when it is a number, else a key.
    Pointer(Box<str>),
}

/// A compiled expression.
#[derive(Debug, Clone)]
pub(super) enum Node {
    Lit(Lit),
    Col(Column),
    /// `col -> step …` (JSON text) or `col -> … ->> step` (`text`: the value as text).
    Json {
        col: Column,
        steps: Box<[Step]>,
        text: bool,
    },
    Lower(Box<Node>),
    Upper(Box<Node>),
    Cmp(CmpOp, Box<Node>, Box<Node>),
    Between {
        e: Box<Node>,
        lo: Box<Node>,
        hi: Box<Node>,
        negated: bool,
    },
    In {
        e: Box<Node>,
        list: Box<[Node]>,
        negated: bool,
    },
    Like {
        e: Box<Node>,
        pat: Pattern,
        negated: bool,
    },
    /// `IS NULL` (`IS NOT NULL` when negated).
    IsNull(Box<Node>, bool),
    /// `IS TRUE` (`Some(true)`), `IS FALSE`, `IS UNKNOWN` (`None`); negated: `IS NOT …`.
    Is {
        e: Box<Node>,
        what: Option<bool>,
        negated: bool,
    },
    /// `IS DISTINCT FROM` (`IS NOT DISTINCT FROM` when negated).
    Distinct(Box<Node>, Box<Node>, bool),
    Str2(StrFn, Box<Node>, Box<Node>),
    Not(Box<Node>),
    And(Box<[Node]>),
    Or(Box<[Node]>),
}

/// Compact JSON text of a value, as the archive writes JSON columns.
fn json_text(v: Value<'_, '_>) -> Option<String> {
    let mut buf = Vec::new();
    v.write(&mut buf).ok()?;
    String::from_utf8(buf).ok()
}

/// A VARCHAR column's value: a string as it is, other scalars as JSON text.
fn text_of<'i>(v: Value<'_, 'i>) -> Option<Cow<'i, str>> {
    if let Some(s) = as_str(v) {
        return Some(Cow::Borrowed(s));
    }
    match v.as_bool() {
        Some(true) => Some(Cow::Borrowed("true")),
        Some(false) => Some(Cow::Borrowed("false")),
        None => json_text(v).map(Cow::Owned),
    }
}

fn step<'t, 'i>(v: Value<'t, 'i>, s: &Step) -> Option<Value<'t, 'i>> {
    match s {
        Step::Key(k) => v.as_object()?.get(&**k),
        Step::Index(i) => {
            let a = v.as_array()?;
            let idx = if *i < 0 {
                a.len()
                    .checked_sub(usize::try_from(i.unsigned_abs()).ok()?)?
            } else {
                usize::try_from(*i).ok()?
            };
            a.get(idx)
        }
        Step::Pointer(seg) => match v.as_array() {
            Some(a) => {
                let idx: usize = seg.parse().ok()?;
                a.get(idx)
            }
            None => v.as_object()?.get(&**seg),
        },
    }
}

/// Lowercases (or uppercases) character by character, borrowing when nothing changes.
fn recase(s: Cow<'_, str>, upper: bool) -> Cow<'_, str> {
    let unchanged = if upper {
        s.bytes().all(|b| b.is_ascii() && !b.is_ascii_lowercase())
    } else {
        s.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase())
    };
    if unchanged {
        return s;
    }
    Cow::Owned(if upper {
        s.chars().flat_map(char::to_uppercase).collect()
    } else {
        s.chars().flat_map(char::to_lowercase).collect()
    })
}

/// SQL ordering of two non-NULL values of compatible types (`None` otherwise).
fn compare(a: &Val<'_>, b: &Val<'_>) -> Option<Ordering> {
    let num = |b: bool| f64::from(u8::from(b));
    match (a, b) {
        (Val::Str(x), Val::Str(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(y)),
        (Val::Num(x), Val::Num(y)) => x.partial_cmp(y),
        (Val::Bool(x), Val::Num(y)) => num(*x).partial_cmp(y),
        (Val::Num(x), Val::Bool(y)) => x.partial_cmp(&num(*y)),
        (Val::Ts(x), Val::Ts(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn not(v: Option<bool>) -> Option<bool> {
    v.map(|b| !b)
}

impl Node {
    /// Every [`FieldPath`] the node reads.
    pub fn paths_mut(&mut self, f: &mut dyn FnMut(&mut FieldPath)) {
        match self {
            Node::Lit(_) => {}
            Node::Col(c) | Node::Json { col: c, .. } => c.paths_mut(f),
            Node::Lower(e)
            | Node::Upper(e)
            | Node::Not(e)
            | Node::IsNull(e, _)
            | Node::Is { e, .. }
            | Node::Like { e, .. } => e.paths_mut(f),
            Node::Cmp(_, a, b) | Node::Distinct(a, b, _) | Node::Str2(_, a, b) => {
                a.paths_mut(f);
                b.paths_mut(f);
            }
            Node::Between { e, lo, hi, .. } => {
                e.paths_mut(f);
                lo.paths_mut(f);
                hi.paths_mut(f);
            }
            Node::In { e, list, .. } => {
                e.paths_mut(f);
                list.iter_mut().for_each(|n| n.paths_mut(f));
            }
            Node::And(items) | Node::Or(items) => items.iter_mut().for_each(|n| n.paths_mut(f)),
        }
    }

    /// The node's value for one record.
    pub fn eval<'a, 'i: 'a>(&'a self, rec: &RootCache<'_, 'i>) -> Val<'a> {
        match self {
            Node::Lit(l) => match l {
                Lit::Null => Val::Null,
                Lit::Bool(b) => Val::Bool(*b),
                Lit::Num(n) => Val::Num(*n),
                Lit::Ts(t) => Val::Ts(*t),
                Lit::Str(s) => Val::Str(Cow::Borrowed(s)),
            },
            Node::Col(c) => column_value(c, rec),
            Node::Json { col, steps, text } => {
                let Some(mut v) = col.node(rec) else {
                    return Val::Null;
                };
                for s in steps.iter() {
                    match step(v, s) {
                        Some(n) => v = n,
                        None => return Val::Null,
                    }
                }
                let out = if *text {
                    if v.is_null() { None } else { text_of(v) }
                } else {
                    json_text(v).map(Cow::Owned)
                };
                out.map_or(Val::Null, Val::Str)
            }
            Node::Lower(e) | Node::Upper(e) => match e.eval(rec) {
                Val::Str(s) => Val::Str(recase(s, matches!(self, Node::Upper(_)))),
                _ => Val::Null,
            },
            Node::Cmp(op, l, r) => {
                let a = l.eval(rec);
                if a.is_null() {
                    return Val::Null;
                }
                let b = r.eval(rec);
                tri(compare(&a, &b).map(|o| op.test(o)))
            }
            Node::Between { e, lo, hi, negated } => {
                let v = e.eval(rec);
                if v.is_null() {
                    return Val::Null;
                }
                let ge = compare(&v, &lo.eval(rec)).map(|o| o != Ordering::Less);
                let le = compare(&v, &hi.eval(rec)).map(|o| o != Ordering::Greater);
                let both = match (ge, le) {
                    (Some(false), _) | (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                };
                tri(if *negated { not(both) } else { both })
            }
            Node::In { e, list, negated } => {
                if list.is_empty() {
                    return Val::Bool(*negated);
                }
                let v = e.eval(rec);
                let found = if v.is_null() {
                    None
                } else {
                    let mut unknown = false;
                    let mut hit = false;
                    for item in list.iter() {
                        match compare(&v, &item.eval(rec)) {
                            Some(Ordering::Equal) => {
                                hit = true;
                                break;
                            }
                            Some(_) => {}
                            None => unknown = true,
                        }
                    }
                    if hit {
                        Some(true)
                    } else if unknown {
                        None
                    } else {
                        Some(false)
                    }
                };
                tri(if *negated { not(found) } else { found })
            }
            Node::Like { e, pat, negated } => match e.eval(rec) {
                Val::Str(s) => Val::Bool(pat.matches(&s) != *negated),
                _ => Val::Null,
            },
            Node::IsNull(e, negated) => {
                let null = match &**e {
                    Node::Col(c) if matches!(c.kind, Kind::Str | Kind::Json) => {
                        c.node(rec).is_none()
                    }
                    e => e.eval(rec).is_null(),
                };
                Val::Bool(null != *negated)
            }
            Node::Is { e, what, negated } => {
                let t = e.eval(rec).truth();
                Val::Bool((t == *what) != *negated)
            }
            Node::Distinct(l, r, negated) => {
                let (a, b) = (l.eval(rec), r.eval(rec));
                let distinct = match (a.is_null(), b.is_null()) {
                    (true, true) => false,
                    (true, false) | (false, true) => true,
                    (false, false) => compare(&a, &b) != Some(Ordering::Equal),
                };
                Val::Bool(distinct != *negated)
            }
            Node::Str2(f, l, r) => match (l.eval(rec), r.eval(rec)) {
                (Val::Str(a), Val::Str(b)) => Val::Bool(match f {
                    StrFn::StartsWith => a.starts_with(&*b),
                    StrFn::EndsWith => a.ends_with(&*b),
                    StrFn::Contains => a.contains(&*b),
                }),
                _ => Val::Null,
            },
            Node::Not(e) => tri(not(e.eval(rec).truth())),
            Node::And(items) => {
                let mut unknown = false;
                for n in items.iter() {
                    match n.eval(rec).truth() {
                        Some(false) => return Val::Bool(false),
                        Some(true) => {}
                        None => unknown = true,
                    }
                }
                if unknown { Val::Null } else { Val::Bool(true) }
            }
            Node::Or(items) => {
                let mut unknown = false;
                for n in items.iter() {
                    match n.eval(rec).truth() {
                        Some(true) => return Val::Bool(true),
                        Some(false) => {}
                        None => unknown = true,
                    }
                }
                if unknown { Val::Null } else { Val::Bool(false) }
            }
        }
    }
}

/// A column's value as the archive writes it.
fn column_value<'a, 'i: 'a>(c: &Column, rec: &RootCache<'_, 'i>) -> Val<'a> {
    let Some(v) = c.node(rec) else {
        return Val::Null;
    };
    match c.kind {
        Kind::Str => text_of(v).map_or(Val::Null, Val::Str),
        Kind::Json => json_text(v).map_or(Val::Null, |s| Val::Str(Cow::Owned(s))),
        Kind::Bool => Column::bool_of(v).map_or(Val::Null, Val::Bool),
        Kind::Ts => as_str(v)
            .and_then(crate::archive::parse_time_micros)
            .map_or(Val::Null, Val::Ts),
        Kind::Struct => {
            if v.as_object().is_some() {
                Val::Struct
            } else {
                Val::Null
            }
        }
    }
}
