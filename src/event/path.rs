//! Field paths, compiled once when a rule is loaded and walked per record.
//!
//! A path such as `userIdentity.sessionContext.sessionIssuer.userName` is split into
//! [`Segment`]s at load time, so the hot path never parses text. The lookup rule is
//! documented in `docs/records.md`:
//!
//! 1. at each object level the **exact** key is looked up first; among exactly repeated
//!    keys the first in document order wins;
//! 2. only when no key matches exactly, the first key that matches **ASCII
//!    case-insensitively** is taken (so `principalid` is found by `principalId`, while a
//!    record holding both `Tagging` and `tagging` gives each path its own key);
//! 3. an array met on the way fans out: the rest of the path is applied to every element,
//!    and the field has one value per element reached (a rule matches if any does);
//! 4. a numeric segment (`resources.0.ARN` or `resources[0].ARN`) selects one element;
//! 5. when a segment is not a key at all, a key that itself contains dots and spells
//!    this and the following segments is used (`resource.resourceType` in GuardDuty
//!    requests).

use std::cell::Cell;
use std::fmt;
use std::ops::ControlFlow;

use simd_json::tape::Value;

/// One step of a [`FieldPath`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// An object key.
    Key(Box<str>),
    /// An array index; on an object it is tried as a key with the same digits.
    Index(usize, Box<str>),
    /// A JSONPath selector evaluated by `jsonpath-rust` ([`super::jsonpath`]).
    Query(std::sync::Arc<super::jsonpath::Query>),
}

/// A parsed dotted path into a record. Two paths are equal when they are spelled the
/// same (their cache slots do not count).
#[derive(Debug, Clone)]
pub struct FieldPath {
    text: Box<str>,
    segments: Box<[Segment]>,
    /// The [`RootCache`] slot of the first segment ([`NO_SLOT`] if none).
    slot: u8,
}

/// Number of top-level keys a [`RootCache`] memoises.
pub const ROOT_SLOTS: usize = 32;
/// A path whose first segment has no cache slot.
pub const NO_SLOT: u8 = u8::MAX;

#[derive(Debug, Clone, Copy)]
enum Slot<'t, 'i> {
    Unknown,
    /// No such key; `true` if some key starts with the segment and a dot.
    Missing(bool),
    Found(Value<'t, 'i>),
}

/// Top-level key lookups of one record, done once and shared by every rule (and by
/// the index) that tests the record. A rule pack gives each distinct first path
/// segment a slot ([`FieldPath::set_slot`]); the first lookup of a slot scans the
/// record's keys, later ones read the slot.
pub struct RootCache<'t, 'i> {
    root: Value<'t, 'i>,
    slots: [Cell<Slot<'t, 'i>>; ROOT_SLOTS],
}

impl<'t, 'i> RootCache<'t, 'i> {
    /// An empty cache for `root`.
    #[inline]
    pub fn new(root: Value<'t, 'i>) -> Self {
        RootCache {
            root,
            slots: [const { Cell::new(Slot::Unknown) }; ROOT_SLOTS],
        }
    }

    /// The record.
    #[inline]
    pub fn root(&self) -> Value<'t, 'i> {
        self.root
    }
}

/// Why a path could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path is empty or has an empty segment (`a..b`).
    #[error("field path {path:?} has an empty segment")]
    EmptySegment {
        /// The path as written.
        path: String,
    },
    /// A `[` without a matching `]`, or a non-numeric index.
    #[error("field path {path:?} has a malformed [index]")]
    BadIndex {
        /// The path as written.
        path: String,
    },
    /// A `$` selector that is not valid JSONPath.
    #[error("JSONPath {path:?}: {message}")]
    JsonPath {
        /// The selector as written.
        path: String,
        /// The parser's message.
        message: String,
    },
}

impl FieldPath {
    /// Parses `a.b.c`, `a.0.b` and `a[0].b`; a name starting with `$` is a JSONPath
    /// selector ([`super::jsonpath`]).
    pub fn parse(text: &str) -> Result<Self, PathError> {
        if text.starts_with('$') {
            return super::jsonpath::compile(text);
        }
        let mut segments = Vec::new();
        for part in text.split('.') {
            if part.is_empty() {
                return Err(PathError::EmptySegment { path: text.into() });
            }
            let (key, mut rest) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if !key.is_empty() {
                segments.push(segment_of(key));
            }
            while !rest.is_empty() {
                let close = rest
                    .find(']')
                    .ok_or_else(|| PathError::BadIndex { path: text.into() })?;
                let digits = &rest[1..close];
                let idx: usize = digits
                    .parse()
                    .map_err(|_| PathError::BadIndex { path: text.into() })?;
                segments.push(Segment::Index(idx, digits.into()));
                rest = &rest[close + 1..];
                if !rest.is_empty() && !rest.starts_with('[') {
                    return Err(PathError::BadIndex { path: text.into() });
                }
            }
            if key.is_empty() && !part.starts_with('[') {
                return Err(PathError::EmptySegment { path: text.into() });
            }
        }
        if segments.is_empty() {
            return Err(PathError::EmptySegment { path: text.into() });
        }
        Ok(FieldPath {
            text: text.into(),
            segments: segments.into(),
            slot: NO_SLOT,
        })
    }

    /// A path from compiled segments.
    pub fn from_segments(text: &str, segments: Vec<Segment>) -> Self {
        FieldPath {
            text: text.into(),
            segments: segments.into(),
            slot: NO_SLOT,
        }
    }

    /// The first segment, when it is a key (what a [`RootCache`] slot stands for).
    pub fn first_key(&self) -> Option<&str> {
        match self.segments.first() {
            Some(Segment::Key(k)) => Some(k),
            _ => None,
        }
    }

    /// Gives the path its [`RootCache`] slot.
    pub fn set_slot(&mut self, slot: u8) {
        self.slot = slot;
    }

    /// [`FieldPath::for_each`] from a record's [`RootCache`].
    #[inline]
    pub fn for_each_cached<'t, 'i, F>(
        &self,
        cache: &RootCache<'t, 'i>,
        f: &mut F,
    ) -> ControlFlow<()>
    where
        F: FnMut(Value<'t, 'i>) -> ControlFlow<()>,
    {
        self.cached_walk(cache, true, f)
    }

    /// Whether the key the path names is present, even as `null` or `[]` (`exists`).
    pub fn present_cached(&self, cache: &RootCache<'_, '_>) -> bool {
        self.cached_walk(cache, false, &mut |_| ControlFlow::Break(()))
            .is_break()
    }

    #[inline]
    fn cached_walk<'t, 'i, F>(
        &self,
        cache: &RootCache<'t, 'i>,
        fan_end: bool,
        f: &mut F,
    ) -> ControlFlow<()>
    where
        F: FnMut(Value<'t, 'i>) -> ControlFlow<()>,
    {
        let (Some(key), Some(cell)) = (self.first_key(), cache.slots.get(self.slot as usize))
        else {
            return walk(cache.root, &self.segments, fan_end, f);
        };
        let slot = match cell.get() {
            Slot::Unknown => {
                let Some(obj) = cache.root.as_object() else {
                    return walk(cache.root, &self.segments, fan_end, f);
                };
                // The lookup rule of `object_get`, noting dotted keys on the way.
                let (mut folded, mut dotted) = (None, false);
                let mut s = None;
                for (k, v) in obj.iter() {
                    if k == key {
                        s = Some(Slot::Found(v));
                        break;
                    }
                    if folded.is_none() && k.len() == key.len() && k.eq_ignore_ascii_case(key) {
                        folded = Some(v);
                    }
                    dotted |= k.len() > key.len()
                        && k.as_bytes()[key.len()] == b'.'
                        && k.starts_with(key);
                }
                let s = s.unwrap_or(match folded {
                    Some(v) => Slot::Found(v),
                    None => Slot::Missing(dotted),
                });
                cell.set(s);
                s
            }
            s => s,
        };
        match slot {
            Slot::Found(v) => walk(v, &self.segments[1..], fan_end, f),
            Slot::Missing(true) if self.segments.len() > 1 => {
                walk(cache.root, &self.segments, fan_end, f)
            }
            _ => ControlFlow::Continue(()),
        }
    }

    /// The first value the path reaches, from a record's [`RootCache`].
    pub fn first_cached<'t, 'i>(&self, cache: &RootCache<'t, 'i>) -> Option<Value<'t, 'i>> {
        let mut found = None;
        let _ = self.for_each_cached(cache, &mut |v| {
            found = Some(v);
            ControlFlow::Break(())
        });
        found
    }

    /// The path as written in the rule.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The compiled segments.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Calls `f` with every value the path reaches in `root`, in document order, until
    /// `f` breaks. Returns `Break` if `f` did.
    #[inline]
    pub fn for_each<'t, 'i, F>(&self, root: Value<'t, 'i>, f: &mut F) -> ControlFlow<()>
    where
        F: FnMut(Value<'t, 'i>) -> ControlFlow<()>,
    {
        walk(root, &self.segments, true, f)
    }

    /// The first value the path reaches, if any.
    pub fn first<'t, 'i>(&self, root: Value<'t, 'i>) -> Option<Value<'t, 'i>> {
        let mut found = None;
        let _ = self.for_each(root, &mut |v| {
            found = Some(v);
            ControlFlow::Break(())
        });
        found
    }
}

impl PartialEq for FieldPath {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for FieldPath {}

impl std::hash::Hash for FieldPath {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn segment_of(key: &str) -> Segment {
    match key.parse::<usize>() {
        Ok(i) if key.bytes().all(|b| b.is_ascii_digit()) => Segment::Index(i, key.into()),
        _ => Segment::Key(key.into()),
    }
}

fn walk<'t, 'i, F>(
    value: Value<'t, 'i>,
    segments: &[Segment],
    fan_end: bool,
    f: &mut F,
) -> ControlFlow<()>
where
    F: FnMut(Value<'t, 'i>) -> ControlFlow<()>,
{
    let Some((seg, rest)) = segments.split_first() else {
        // The end of the path: an array fans out into its elements (unless the caller
        // wants the node itself).
        return match value.as_array().filter(|_| fan_end) {
            Some(arr) => {
                for v in arr.iter() {
                    f(v)?;
                }
                ControlFlow::Continue(())
            }
            None => f(value),
        };
    };
    if let Segment::Query(q) = seg {
        return q.for_each(value, &mut |v| walk(v, rest, fan_end, f));
    }
    if let Some(arr) = value.as_array() {
        if let Segment::Index(i, _) = seg {
            return match arr.get(*i) {
                Some(v) => walk(v, rest, fan_end, f),
                None => ControlFlow::Continue(()),
            };
        }
        for v in arr.iter() {
            walk(v, segments, fan_end, f)?;
        }
        return ControlFlow::Continue(());
    }
    let Some(obj) = value.as_object() else {
        return ControlFlow::Continue(());
    };
    let key = seg_text(seg);
    // One pass over the keys: the exact key wins at once; else the first ASCII
    // case-insensitive match; else a key that itself holds dots (`resource.type`) and
    // spells this segment and the next ones.
    let mut folded = None;
    let mut dotted: Option<(Value<'t, 'i>, usize)> = None;
    for (k, v) in obj.iter() {
        if k == key {
            return walk(v, rest, fan_end, f);
        }
        if folded.is_none() && k.len() == key.len() && k.eq_ignore_ascii_case(key) {
            folded = Some(v);
        }
        if dotted.is_none()
            && !rest.is_empty()
            && k.len() > key.len()
            && k.as_bytes()[key.len()] == b'.'
        {
            dotted = dotted_match(k, segments).map(|n| (v, n));
        }
    }
    match (folded, dotted) {
        (Some(v), _) => walk(v, rest, fan_end, f),
        (None, Some((v, n))) => walk(v, &segments[n..], fan_end, f),
        (None, None) => ControlFlow::Continue(()),
    }
}

fn seg_text(seg: &Segment) -> &str {
    match seg {
        Segment::Key(k) => k,
        Segment::Index(_, digits) => digits,
        Segment::Query(q) => q.as_str(),
    }
}

/// How many segments the dotted key `k` spells (at least 2), if it spells whole ones.
fn dotted_match(k: &str, segments: &[Segment]) -> Option<usize> {
    let mut pos = 0;
    for (n, seg) in segments.iter().enumerate() {
        let t = seg_text(seg);
        if !k[pos..].starts_with(t) {
            return None;
        }
        pos += t.len();
        if pos == k.len() {
            return (n >= 1).then_some(n + 1);
        }
        if k.as_bytes()[pos] != b'.' {
            return None;
        }
        pos += 1;
    }
    None
}

/// Looks `key` up in an object value: exact key first, then the first ASCII
/// case-insensitive match. `None` if `value` is not an object or has no such key.
#[inline]
pub fn object_get<'t, 'i>(value: Value<'t, 'i>, key: &str) -> Option<Value<'t, 'i>> {
    let obj = value.as_object()?;
    let mut folded = None;
    for (k, v) in obj.iter() {
        if k == key {
            return Some(v);
        }
        if folded.is_none() && k.len() == key.len() && k.eq_ignore_ascii_case(key) {
            folded = Some(v);
        }
    }
    folded
}

/// The string behind a tape value, if it is one.
#[inline]
pub fn as_str<'i>(value: Value<'_, 'i>) -> Option<&'i str> {
    use simd_json::prelude::ValueIntoString;
    value.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup_all(json: &str, path: &str) -> Vec<String> {
        let mut bytes = json.as_bytes().to_vec();
        let tape = simd_json::to_tape(&mut bytes).expect("valid json");
        let p = FieldPath::parse(path).expect("valid path");
        let mut out = Vec::new();
        let _ = p.for_each(tape.as_value(), &mut |v| {
            out.push(match as_str(v) {
                Some(s) => s.to_string(),
                None => format!("{v:?}"),
            });
            ControlFlow::Continue(())
        });
        out
    }

    #[test]
    fn dotted_paths_and_indices() {
        let j = r#"{"a":{"b":{"c":"x"}},"r":[{"ARN":"1"},{"ARN":"2"}]}"#;
        assert_eq!(lookup_all(j, "a.b.c"), ["x"]);
        assert_eq!(lookup_all(j, "r.ARN"), ["1", "2"]);
        assert_eq!(lookup_all(j, "r.1.ARN"), ["2"]);
        assert_eq!(lookup_all(j, "r[0].ARN"), ["1"]);
        assert!(lookup_all(j, "a.b.d").is_empty());
        assert!(lookup_all(j, "r.5.ARN").is_empty());
    }

    #[test]
    fn exact_key_wins_over_case_folded_key() {
        let j = r#"{"principalid":"lower","principalId":"exact","Tagging":"T","tagging":"t"}"#;
        assert_eq!(lookup_all(j, "principalId"), ["exact"]);
        assert_eq!(lookup_all(j, "principalid"), ["lower"]);
        assert_eq!(lookup_all(j, "PRINCIPALID"), ["lower"]);
        assert_eq!(lookup_all(j, "Tagging"), ["T"]);
        assert_eq!(lookup_all(j, "tagging"), ["t"]);
    }

    #[test]
    fn first_of_exactly_repeated_keys_wins() {
        let j = r#"{"k":"first","k":"second"}"#;
        assert_eq!(lookup_all(j, "k"), ["first"]);
    }

    #[test]
    fn array_at_end_fans_out() {
        let j = r#"{"ips":["1.1.1.1","2.2.2.2"]}"#;
        assert_eq!(lookup_all(j, "ips"), ["1.1.1.1", "2.2.2.2"]);
    }

    #[test]
    fn cached_lookups_agree_with_walks() {
        let j = r#"{"a":{"b":1},"A":{"b":2},"x.y":3,"arr":[{"k":"v"}]}"#;
        let mut bytes = j.as_bytes().to_vec();
        let tape = simd_json::to_tape(&mut bytes).expect("json");
        let cache = RootCache::new(tape.as_value());
        for (i, text) in ["a.b", "A.b", "a", "x.y", "arr.k", "missing.z", "x"]
            .iter()
            .enumerate()
        {
            let mut p = FieldPath::parse(text).expect("path");
            p.set_slot(i as u8);
            let mut direct = Vec::new();
            let _ = p.for_each(tape.as_value(), &mut |v| {
                direct.push(format!("{v:?}"));
                ControlFlow::Continue(())
            });
            for _ in 0..2 {
                let mut cached = Vec::new();
                let _ = p.for_each_cached(&cache, &mut |v| {
                    cached.push(format!("{v:?}"));
                    ControlFlow::Continue(())
                });
                assert_eq!(cached, direct, "{text}");
            }
        }
    }

    #[test]
    fn keys_with_dots() {
        let j = r#"{"requestParameters":{"resource.resourceType":"EC2","x":{"a.b":{"c":"deep"}}}}"#;
        assert_eq!(
            lookup_all(j, "requestParameters.resource.resourceType"),
            ["EC2"]
        );
        assert_eq!(lookup_all(j, "requestParameters.x.a.b.c"), ["deep"]);
        assert!(lookup_all(j, "requestParameters.resource").is_empty());
    }

    #[test]
    fn bad_paths_are_rejected() {
        assert!(FieldPath::parse("").is_err());
        assert!(FieldPath::parse("a..b").is_err());
        assert!(FieldPath::parse("a[x]").is_err());
        assert!(FieldPath::parse("a[1").is_err());
    }
}
