//! Value matching: Sigma values and modifiers → [`ValueSet`], what a field test runs.
//!
//! A rule value goes through three steps, in the modifier order of the rule:
//!
//! 1. **Parse** into a [`Pattern`]: literal runs, `*` and `?` (Sigma's escapes: `\*` and
//!    `\?` are literal, `\\` is one backslash, a backslash before anything else is a
//!    literal backslash). `re` values, numbers, `cidr` networks, `fieldref` names and
//!    `lt`/`gt` bounds are not patterns and take their own route ([`Member`]).
//! 2. **Transform**: `expand` (placeholders), `wide`/`utf16le`/`utf16be`/`utf16`,
//!    `base64`, `base64offset` and `windash` rewrite the literal runs; some produce
//!    several variants, which are OR-ed (as pySigma expands them).
//! 3. **Anchor and compile**: `contains` wraps the pattern in `*…*`, `startswith`
//!    appends `*`, `endswith` prepends `*`. The pattern then picks the cheapest
//!    exactly-equivalent matcher: a literal is an equality test, `lit*` a prefix, `*lit`
//!    a suffix, `*lit*` a substring (all substrings of a set share one Aho-Corasick
//!    automaton), anything else a compiled regex.
//!
//! Matching is case-insensitive unless `cased` (Sigma's default): ASCII folding for
//! ASCII literals, Unicode folding through the regex when a literal is not ASCII. `re` is
//! case-sensitive unless its `i` flag is given, and searches (unanchored).
//!
//! To add a modifier, extend [`Modifier`] and the place in `compile.rs` that applies it;
//! matching of a new kind of member goes into [`ValueSet::matches`].

use std::net::IpAddr;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use base64::Engine;
use regex::Regex;

use crate::event::FieldPath;

/// The value modifiers of the Sigma specification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modifier {
    /// `contains`
    Contains,
    /// `startswith`
    StartsWith,
    /// `endswith`
    EndsWith,
    /// `all`: every value must match (instead of any).
    All,
    /// `exists`
    Exists,
    /// `cased`
    Cased,
    /// `neq`
    Neq,
    /// `re`
    Re,
    /// `i` (after `re`)
    ReI,
    /// `m` (after `re`)
    ReM,
    /// `s` (after `re`)
    ReS,
    /// `base64`
    Base64,
    /// `base64offset`
    Base64Offset,
    /// `utf16le` and `wide`
    Utf16Le,
    /// `utf16be`
    Utf16Be,
    /// `utf16` (BOM + little endian)
    Utf16,
    /// `windash`
    Windash,
    /// `cidr`
    Cidr,
    /// `lt`
    Lt,
    /// `lte`
    Lte,
    /// `gt`
    Gt,
    /// `gte`
    Gte,
    /// `fieldref`
    FieldRef,
    /// `expand`
    Expand,
}

impl Modifier {
    /// Parses one modifier name.
    pub fn parse(name: &str) -> Option<Modifier> {
        use Modifier::*;
        Some(match name {
            "contains" => Contains,
            "startswith" => StartsWith,
            "endswith" => EndsWith,
            "all" => All,
            "exists" => Exists,
            "cased" => Cased,
            "neq" => Neq,
            "re" => Re,
            "i" => ReI,
            "m" => ReM,
            "s" => ReS,
            "base64" => Base64,
            "base64offset" => Base64Offset,
            "utf16le" | "wide" => Utf16Le,
            "utf16be" => Utf16Be,
            "utf16" => Utf16,
            "windash" => Windash,
            "cidr" => Cidr,
            "lt" => Lt,
            "lte" => Lte,
            "gt" => Gt,
            "gte" => Gte,
            "fieldref" => FieldRef,
            "expand" => Expand,
            _ => return None,
        })
    }
}

/// Which of contains/startswith/endswith applies to a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Anchor {
    /// Whole value.
    #[default]
    Exact,
    /// `contains`
    Contains,
    /// `startswith`
    StartsWith,
    /// `endswith`
    EndsWith,
}

/// One piece of a Sigma string value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Literal text.
    Lit(String),
    /// `*`
    Star,
    /// `?`
    One,
}

/// A Sigma string value: literal runs and wildcards.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pattern(pub Vec<Piece>);

impl Pattern {
    /// Splits a Sigma value into literal runs and wildcards, applying the escapes.
    pub fn parse(value: &str) -> Pattern {
        let mut out = Vec::new();
        let mut lit = String::new();
        let mut chars = value.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.peek() {
                    Some(&n @ ('*' | '?' | '\\')) => {
                        lit.push(n);
                        chars.next();
                    }
                    _ => lit.push('\\'),
                },
                '*' | '?' => {
                    if !lit.is_empty() {
                        out.push(Piece::Lit(std::mem::take(&mut lit)));
                    }
                    out.push(if c == '*' { Piece::Star } else { Piece::One });
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            out.push(Piece::Lit(lit));
        }
        Pattern(out).normalized()
    }

    /// A pattern that is one literal.
    pub fn literal(s: &str) -> Pattern {
        Pattern(vec![Piece::Lit(s.to_string())])
    }

    fn normalized(self) -> Pattern {
        let mut out: Vec<Piece> = Vec::with_capacity(self.0.len());
        for p in self.0 {
            match (out.last_mut(), p) {
                (Some(Piece::Star), Piece::Star) => {}
                (Some(Piece::Lit(a)), Piece::Lit(b)) => a.push_str(&b),
                (_, Piece::Lit(b)) if b.is_empty() => {}
                (_, p) => out.push(p),
            }
        }
        Pattern(out)
    }

    /// Whether the value has wildcards.
    pub fn has_wildcards(&self) -> bool {
        self.0.iter().any(|p| !matches!(p, Piece::Lit(_)))
    }

    /// The whole value when it has no wildcards.
    pub fn as_literal(&self) -> Option<String> {
        match self.0.as_slice() {
            [] => Some(String::new()),
            [Piece::Lit(l)] => Some(l.clone()),
            _ => None,
        }
    }

    /// Puts a literal in front (merged with a leading literal run).
    pub fn prepend_literal(self, lit: &str) -> Pattern {
        let mut v = vec![Piece::Lit(lit.to_string())];
        v.extend(self.0);
        Pattern(v).normalized()
    }

    /// Rewrites every literal run.
    pub fn map_literals(&self, f: impl Fn(&str) -> String) -> Pattern {
        Pattern(
            self.0
                .iter()
                .map(|p| match p {
                    Piece::Lit(l) => Piece::Lit(f(l)),
                    other => other.clone(),
                })
                .collect(),
        )
        .normalized()
    }

    fn anchored(mut self, anchor: Anchor) -> Pattern {
        let front = matches!(anchor, Anchor::Contains | Anchor::EndsWith);
        let back = matches!(anchor, Anchor::Contains | Anchor::StartsWith);
        if front && self.0.first() != Some(&Piece::Star) {
            self.0.insert(0, Piece::Star);
        }
        if back && self.0.last() != Some(&Piece::Star) {
            self.0.push(Piece::Star);
        }
        self
    }
}

/// `wide` / `utf16le`: every character followed by NUL (ASCII only, as pySigma).
pub fn utf16le(s: &str) -> Option<String> {
    s.is_ascii()
        .then(|| s.chars().flat_map(|c| [c, '\0']).collect())
}

/// `utf16be`: NUL before every character (ASCII only).
pub fn utf16be(s: &str) -> Option<String> {
    s.is_ascii()
        .then(|| s.chars().flat_map(|c| ['\0', c]).collect())
}

/// The bytes a value stands for when it is encoded: its UTF-8, except that a leading
/// byte order mark from `utf16` is the UTF-16 little-endian mark `FF FE` (the spec's
/// `cmd` > `FF FE 63 00 6d 00 64 00`), not the three UTF-8 bytes of U+FEFF.
fn value_bytes(s: &str) -> Vec<u8> {
    match s.strip_prefix('\u{feff}') {
        Some(rest) => [&[0xFF, 0xFE][..], rest.as_bytes()].concat(),
        None => s.as_bytes().to_vec(),
    }
}

/// `base64` of the value's bytes.
pub fn base64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(value_bytes(s))
}

/// `base64offset`: the three encodings of the value at byte offsets 0, 1 and 2 of a
/// longer base64 text, cut to the characters that do not depend on the neighbours
/// (pySigma's algorithm).
pub fn base64offset(s: &str) -> [String; 3] {
    const START: [usize; 3] = [0, 2, 3];
    const END: [usize; 3] = [0, 3, 2]; // characters cut from the end, by (len + i) % 3
    let bytes = value_bytes(s);
    let bytes = bytes.as_slice();
    std::array::from_fn(|i| {
        let mut padded = vec![b' '; i];
        padded.extend_from_slice(bytes);
        let enc = base64::engine::general_purpose::STANDARD.encode(&padded);
        let cut = END[(bytes.len() + i) % 3];
        let end = enc.len().saturating_sub(cut);
        enc.get(START[i]..end).unwrap_or_default().to_string()
    })
}

/// `windash`: every `-` or `/` that starts a word (after a non-word character or at the
/// start, before a word character) becomes each of `-`, `/`, en dash, em dash and
/// horizontal bar (pySigma's reading of the spec): all 5^n permutations. `None` when a
/// value has more than [`WINDASH_MAX`] such positions (more variants than a rule should
/// compile to).
pub fn windash(s: &str) -> Option<Vec<String>> {
    const DASHES: [char; 5] = ['-', '/', '\u{2013}', '\u{2014}', '\u{2015}'];
    let chars: Vec<char> = s.chars().collect();
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let spots: Vec<usize> = (0..chars.len())
        .filter(|&i| {
            matches!(chars[i], '-' | '/')
                && (i == 0 || !word(chars[i - 1]))
                && chars.get(i + 1).is_some_and(|&c| word(c))
        })
        .collect();
    if spots.len() > WINDASH_MAX {
        return None;
    }
    let mut out = vec![chars.clone()];
    for &i in &spots {
        out = out
            .into_iter()
            .flat_map(|v| {
                DASHES.iter().map(move |&d| {
                    let mut w = v.clone();
                    w[i] = d;
                    w
                })
            })
            .collect();
    }
    Some(out.into_iter().map(|v| v.into_iter().collect()).collect())
}

/// Most `windash` positions expanded in one value (5^6 = 15,625 variants).
pub const WINDASH_MAX: usize = 6;

/// An IPv4 or IPv6 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Parses `10.0.0.0/8`, `2001:db8::/32` or a single address.
    pub fn parse(s: &str) -> Option<Network> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().ok().filter(|&n| n <= max)?,
            None => max,
        };
        Some(Network { addr, prefix })
    }

    /// Whether `ip` is inside the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                u128::from(n) & mask == u128::from(a) & mask
            }
            (IpAddr::V6(_), IpAddr::V4(a)) => self.contains(IpAddr::V6(a.to_ipv6_mapped())),
            _ => false,
        }
    }
}

/// A numeric comparison (`lt`, `lte`, `gt`, `gte`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Compare {
    /// `<`
    Lt(f64),
    /// `<=`
    Lte(f64),
    /// `>`
    Gt(f64),
    /// `>=`
    Gte(f64),
}

impl Compare {
    fn holds(self, x: f64) -> bool {
        match self {
            Compare::Lt(n) => x < n,
            Compare::Lte(n) => x <= n,
            Compare::Gt(n) => x > n,
            Compare::Gte(n) => x >= n,
        }
    }
}

/// One compiled string test.
#[derive(Debug, Clone)]
enum Test {
    Exact(Box<[u8]>),
    Prefix(Box<[u8]>),
    Suffix(Box<[u8]>),
    Regex(Regex),
    AnyValue,
}

/// A value that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("value {value:?}: {message}")]
pub struct ValueError {
    /// The value as written.
    pub value: String,
    /// What is wrong.
    pub message: String,
}

/// A leaf value of a record field, as matching sees it.
#[derive(Debug, Clone, Copy)]
pub enum Leaf<'a> {
    /// A string.
    Str(&'a str),
    /// A number and its canonical text (integers as digits, floats in shortest form).
    Num(f64, &'a str),
    /// A boolean.
    Bool(bool),
}

impl<'a> Leaf<'a> {
    /// The text Sigma string values compare with.
    pub fn text(&self) -> &'a str {
        match *self {
            Leaf::Str(s) | Leaf::Num(_, s) => s,
            Leaf::Bool(true) => "true",
            Leaf::Bool(false) => "false",
        }
    }

    /// The number, for numeric comparisons: a JSON number, or a string that parses as
    /// one (as a cast would).
    pub fn number(&self) -> Option<f64> {
        match *self {
            Leaf::Num(n, _) => Some(n),
            Leaf::Str(s) => s.trim().parse::<f64>().ok().filter(|n| !n.is_nan()),
            Leaf::Bool(_) => None,
        }
    }
}

/// The members of one field test, OR-ed: a leaf matches the set if it matches any.
#[derive(Debug, Clone, Default)]
pub struct ValueSet {
    cased: bool,
    tests: Vec<Test>,
    needles: Vec<Vec<u8>>,
    contains: Option<AhoCorasick>,
    numbers: Vec<f64>,
    regexes: Vec<Regex>,
    networks: Vec<Network>,
    compares: Vec<Compare>,
    fieldrefs: Vec<(FieldPath, Anchor)>,
    null: bool,
}

impl ValueSet {
    /// An empty set; `cased` makes its string patterns case-sensitive.
    pub fn new(cased: bool) -> Self {
        ValueSet {
            cased,
            ..ValueSet::default()
        }
    }

    /// Adds a string pattern under the given anchor.
    pub fn add_pattern(&mut self, pattern: &Pattern, anchor: Anchor) -> Result<(), ValueError> {
        let p = pattern.clone().anchored(anchor);
        let cased = self.cased;
        let lit = |s: &str| -> Option<Vec<u8>> {
            if cased {
                Some(s.as_bytes().to_vec())
            } else {
                s.is_ascii().then(|| s.to_ascii_lowercase().into_bytes())
            }
        };
        let simple = match p.0.as_slice() {
            [] => Some(Test::Exact(Box::default())),
            [Piece::Star] => Some(Test::AnyValue),
            [Piece::Lit(l)] => lit(l).map(|b| Test::Exact(b.into())),
            [Piece::Lit(l), Piece::Star] => lit(l).map(|b| Test::Prefix(b.into())),
            [Piece::Star, Piece::Lit(l)] => lit(l).map(|b| Test::Suffix(b.into())),
            [Piece::Star, Piece::Lit(l), Piece::Star] => {
                if let Some(b) = lit(l) {
                    self.needles.push(b);
                    return Ok(());
                }
                None
            }
            _ => None,
        };
        if let Some(t) = simple {
            self.tests.push(t);
            return Ok(());
        }
        let mut re = String::from(if self.cased { "(?s)^" } else { "(?si)^" });
        for piece in &p.0 {
            match piece {
                Piece::Lit(l) => re.push_str(&regex::escape(l)),
                Piece::Star => re.push_str(".*"),
                Piece::One => re.push('.'),
            }
        }
        re.push('$');
        let r = super::field::bounded_regex(&re).map_err(|e| ValueError {
            value: re.clone(),
            message: super::field::one_line(&e),
        })?;
        self.tests.push(Test::Regex(r));
        Ok(())
    }

    /// Adds a number: numerically equal leaves match (strings are cast).
    pub fn add_number(&mut self, n: f64) {
        self.numbers.push(n);
    }

    /// Adds a regular expression (searched, not anchored).
    pub fn add_regex(&mut self, r: Regex) {
        self.regexes.push(r);
    }

    /// Adds a network: leaves that are addresses inside it match.
    pub fn add_network(&mut self, n: Network) {
        self.networks.push(n);
    }

    /// Adds a numeric comparison.
    pub fn add_compare(&mut self, c: Compare) {
        self.compares.push(c);
    }

    /// Adds a field reference: leaves equal to (or, with an anchor, starting, ending
    /// with or containing) a leaf of the other field match, case-insensitively.
    pub fn add_fieldref(&mut self, path: FieldPath, anchor: Anchor) {
        self.fieldrefs.push((path, anchor));
    }

    /// Adds `null`: matches a field with no non-null value.
    pub fn add_null(&mut self) {
        self.null = true;
    }

    /// Builds the shared substring automaton; call once after the last member.
    pub fn finish(&mut self) -> Result<(), ValueError> {
        if !self.needles.is_empty() {
            let ac = AhoCorasickBuilder::new()
                .ascii_case_insensitive(!self.cased)
                .match_kind(MatchKind::LeftmostFirst)
                .build(&self.needles)
                .map_err(|e| ValueError {
                    value: String::from_utf8_lossy(&self.needles[0]).into_owned(),
                    message: e.to_string(),
                })?;
            self.contains = Some(ac);
        }
        Ok(())
    }

    /// Whether `null` is a member.
    pub fn matches_null(&self) -> bool {
        self.null
    }

    /// The field references, to give their paths cache slots.
    pub fn fieldrefs_mut(&mut self) -> &mut [(FieldPath, Anchor)] {
        &mut self.fieldrefs
    }

    /// The field references of the set (they need the record to evaluate).
    pub fn fieldrefs(&self) -> &[(FieldPath, Anchor)] {
        &self.fieldrefs
    }

    /// The lowercase literals of a set made only of whole-value ASCII literals (used by
    /// the rule index), or `None`.
    pub fn exact_literals(&self) -> Option<Vec<Box<[u8]>>> {
        let only_patterns = !self.null
            && self.needles.is_empty()
            && self.numbers.is_empty()
            && self.regexes.is_empty()
            && self.networks.is_empty()
            && self.compares.is_empty()
            && self.fieldrefs.is_empty()
            && !self.tests.is_empty();
        if !only_patterns {
            return None;
        }
        self.tests
            .iter()
            .map(|t| match t {
                Test::Exact(b) if b.is_ascii() => Some(b.to_ascii_lowercase().into_boxed_slice()),
                _ => None,
            })
            .collect()
    }

    fn only_string_tests(&self) -> bool {
        !self.null
            && self.numbers.is_empty()
            && self.regexes.is_empty()
            && self.networks.is_empty()
            && self.compares.is_empty()
            && self.fieldrefs.is_empty()
    }

    /// For the index: lowercase literals one of which a matching leaf must contain (every
    /// equality, prefix, suffix and substring literal of a set made only of them), or
    /// `None`.
    pub fn substrings(&self) -> Option<Vec<Vec<u8>>> {
        if !self.only_string_tests() {
            return None;
        }
        let mut out: Vec<Vec<u8>> = self
            .needles
            .iter()
            .map(|n| n.to_ascii_lowercase())
            .collect();
        for t in &self.tests {
            match t {
                Test::Exact(b) | Test::Prefix(b) | Test::Suffix(b) if b.is_ascii() => {
                    out.push(b.to_ascii_lowercase());
                }
                _ => return None,
            }
        }
        (!out.is_empty()).then_some(out)
    }

    /// For the index: the regular expressions of a set made only of them (`re` values and
    /// wildcard patterns), or `None`.
    pub fn regex_list(&self) -> Option<Vec<Regex>> {
        if self.null
            || !self.numbers.is_empty()
            || !self.networks.is_empty()
            || !self.compares.is_empty()
            || !self.fieldrefs.is_empty()
            || !self.needles.is_empty()
        {
            return None;
        }
        let mut out = self.regexes.clone();
        for t in &self.tests {
            match t {
                Test::Regex(r) => out.push(r.clone()),
                _ => return None,
            }
        }
        (!out.is_empty()).then_some(out)
    }

    /// Whether a string matches one of the string patterns.
    #[inline]
    pub fn matches_str(&self, s: &str) -> bool {
        let b = s.as_bytes();
        let eq = |x: &[u8], n: &[u8]| {
            if self.cased {
                x == n
            } else {
                x.eq_ignore_ascii_case(n)
            }
        };
        for t in &self.tests {
            let hit = match t {
                Test::Exact(n) => b.len() == n.len() && eq(b, n),
                Test::Prefix(n) => b.len() >= n.len() && eq(&b[..n.len()], n),
                Test::Suffix(n) => b.len() >= n.len() && eq(&b[b.len() - n.len()..], n),
                Test::Regex(r) => r.is_match(s),
                Test::AnyValue => true,
            };
            if hit {
                return true;
            }
        }
        match &self.contains {
            Some(ac) => ac.is_match(b),
            None => false,
        }
    }

    /// Whether a leaf matches a member other than a field reference.
    #[inline]
    pub fn matches(&self, leaf: Leaf<'_>) -> bool {
        let text = leaf.text();
        if self.matches_str(text) || self.regexes.iter().any(|r| r.is_match(text)) {
            return true;
        }
        if (!self.numbers.is_empty() || !self.compares.is_empty())
            && let Some(x) = leaf.number()
            && (self.numbers.contains(&x) || self.compares.iter().any(|c| c.holds(x)))
        {
            return true;
        }
        if !self.networks.is_empty()
            && let Ok(ip) = text.trim().parse::<IpAddr>()
        {
            return self.networks.iter().any(|n| n.contains(ip));
        }
        false
    }
}

/// Whether `a` relates to `b` as a field reference with `anchor` requires
/// (case-insensitive).
pub fn fieldref_holds(a: &str, b: &str, anchor: Anchor) -> bool {
    if !a.is_ascii() || !b.is_ascii() {
        // Unicode case folding, as for pattern values.
        let (a, b) = (a.to_lowercase(), b.to_lowercase());
        return match anchor {
            Anchor::Exact => a == b,
            Anchor::StartsWith => a.starts_with(&b),
            Anchor::EndsWith => a.ends_with(&b),
            Anchor::Contains => a.contains(&b),
        };
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    match anchor {
        Anchor::Exact => a.eq_ignore_ascii_case(b),
        Anchor::StartsWith => a.len() >= b.len() && a[..b.len()].eq_ignore_ascii_case(b),
        Anchor::EndsWith => a.len() >= b.len() && a[a.len() - b.len()..].eq_ignore_ascii_case(b),
        Anchor::Contains => b.is_empty() || a.windows(b.len()).any(|w| w.eq_ignore_ascii_case(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(values: &[&str], anchor: Anchor) -> ValueSet {
        let mut s = ValueSet::new(false);
        for v in values {
            s.add_pattern(&Pattern::parse(v), anchor).expect("compiles");
        }
        s.finish().expect("finish");
        s
    }

    #[test]
    fn exact_is_case_insensitive() {
        let s = set(&["ConsoleLogin"], Anchor::Exact);
        assert!(s.matches_str("consolelogin"));
        assert!(s.matches_str("CONSOLELOGIN"));
        assert!(!s.matches_str("ConsoleLogin2"));
        assert_eq!(
            s.exact_literals(),
            Some(vec![b"consolelogin".to_vec().into_boxed_slice()])
        );
    }

    #[test]
    fn cased_is_case_sensitive() {
        let mut s = ValueSet::new(true);
        s.add_pattern(&Pattern::parse("Console"), Anchor::StartsWith)
            .expect("ok");
        s.add_pattern(&Pattern::parse("Mid"), Anchor::Contains)
            .expect("ok");
        s.finish().expect("ok");
        assert!(s.matches_str("ConsoleLogin") && !s.matches_str("consoleLogin"));
        assert!(s.matches_str("aMidb") && !s.matches_str("amidb"));
    }

    #[test]
    fn anchors() {
        let s = set(&["Delete"], Anchor::StartsWith);
        assert!(s.matches_str("DeleteTrail") && !s.matches_str("xDelete"));
        let s = set(&["Policy"], Anchor::EndsWith);
        assert!(s.matches_str("PutBucketPolicy") && !s.matches_str("PolicyX"));
        let s = set(&["not authorized", "denied"], Anchor::Contains);
        assert!(s.matches_str("User is NOT AUTHORIZED to") && s.matches_str("AccessDenied"));
        assert!(!s.matches_str("allowed"));
        assert!(s.exact_literals().is_none());
    }

    #[test]
    fn wildcards_and_escapes() {
        let s = set(&["Get*Policy"], Anchor::Exact);
        assert!(s.matches_str("GetBucketPolicy") && s.matches_str("getpolicy"));
        assert!(!s.matches_str("GetBucketPolicyStatus"));
        let s = set(&["a?c"], Anchor::Exact);
        assert!(s.matches_str("abc") && !s.matches_str("ac"));
        let s = set(&[r"a\*b"], Anchor::Exact);
        assert!(s.matches_str("a*b") && !s.matches_str("axxb"));
        let s = set(&[r"a\?"], Anchor::Exact);
        assert!(s.matches_str("a?") && !s.matches_str("ab"));
        let s = set(&[r"C:\\Windows"], Anchor::Exact);
        assert!(s.matches_str(r"C:\Windows"));
        let s = set(&[r"C:\Windows"], Anchor::Exact);
        assert!(s.matches_str(r"C:\Windows"));
        let s = set(&[r"a\\*"], Anchor::Exact);
        assert!(s.matches_str(r"a\bcd") && !s.matches_str("abcd"));
        let s = set(&[r"a\\\*"], Anchor::Exact);
        assert!(s.matches_str(r"a\*") && !s.matches_str(r"a\b"));
        let s = set(&["*"], Anchor::Exact);
        assert!(s.matches_str("") && s.matches_str("anything"));
    }

    #[test]
    fn unicode_folds_through_regex() {
        let s = set(&["ÄRGER"], Anchor::Contains);
        assert!(s.matches_str("großer ärger"));
    }

    #[test]
    fn encodings() {
        assert_eq!(utf16le("cmd").as_deref(), Some("c\0m\0d\0"));
        assert_eq!(utf16be("cmd").as_deref(), Some("\0c\0m\0d"));
        assert_eq!(utf16le("é"), None);
        assert_eq!(base64("ping"), "cGluZw==");
        // pySigma's base64offset: 'ping' -> cGluZ, Bpbm, waW5n; 'cmd' -> Y21k, NtZ, jbW
        assert_eq!(
            base64offset("ping"),
            ["cGluZ", "Bpbm", "waW5n"].map(String::from)
        );
        assert_eq!(
            base64offset("cmd"),
            ["Y21k", "NtZ", "jbW"].map(String::from)
        );
    }

    #[test]
    fn windash_variants() {
        let v = windash("-foo -bar x-y").expect("two flags");
        assert_eq!(v.len(), 25);
        assert!(v.contains(&"/foo \u{2013}bar x-y".to_string()));
        assert!(v.iter().all(|s| s.ends_with(" x-y")));
        assert!(windash("-a -b -c -d -e -f -g").is_none());
        assert_eq!(windash("-a -b -c -d -e").map(|v| v.len()), Some(3125));
    }

    #[test]
    fn networks() {
        let n = Network::parse("10.0.0.0/8").expect("net");
        assert!(n.contains("10.1.2.3".parse().expect("ip")));
        assert!(!n.contains("11.0.0.1".parse().expect("ip")));
        let n6 = Network::parse("2001:db8::/32").expect("net");
        assert!(n6.contains("2001:db8:1::5".parse().expect("ip")));
        assert!(!n6.contains("2001:db9::1".parse().expect("ip")));
        assert!(Network::parse("10.0.0.0/33").is_none());
        let mut s = ValueSet::new(false);
        s.add_network(n);
        assert!(s.matches(Leaf::Str("10.9.9.9")) && !s.matches(Leaf::Str("035.249.253.232")));
    }

    #[test]
    fn numbers_and_compares() {
        let mut s = ValueSet::new(false);
        s.add_number(200.0);
        s.add_compare(Compare::Gt(1000.0));
        assert!(s.matches(Leaf::Num(200.0, "200")));
        assert!(s.matches(Leaf::Str("200.0")));
        assert!(s.matches(Leaf::Str("5000")));
        assert!(!s.matches(Leaf::Str("201")));
        assert!(!s.matches(Leaf::Bool(true)));
    }

    #[test]
    fn fieldref_anchors() {
        assert!(fieldref_holds("Alice", "alice", Anchor::Exact));
        assert!(fieldref_holds("alice-admin", "ALICE", Anchor::StartsWith));
        assert!(fieldref_holds("x-alice-y", "alice", Anchor::Contains));
        assert!(!fieldref_holds("bob", "alice", Anchor::Exact));
    }
}
