//! Value matching: Sigma values and modifiers → [`ValueSet`], the thing a field test runs.
//!
//! Every string value is first turned into a *pattern* (literal runs, `*`, `?`):
//! `contains` wraps it in `*…*`, `startswith` appends `*`, `endswith` prepends `*`, and
//! the value's own wildcards stay. The pattern then picks the cheapest matcher that is
//! exactly equivalent: a literal is an equality test, `lit*` a prefix, `*lit` a suffix,
//! `*lit*` a substring (all values of one test share one Aho-Corasick automaton), and
//! anything else a compiled regex. Matching is case-insensitive, as Sigma specifies:
//! ASCII case folding for ASCII literals, Unicode case folding (through the regex) when a
//! literal holds non-ASCII letters.
//!
//! Escapes (Sigma spec): `\*` and `\?` are literal wildcard characters, `\\` is one
//! backslash, and a backslash before any other character is a literal backslash.
//! To add a modifier family, extend [`Modifier`] and [`ValueSet::add`]; nothing else
//! needs to know.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::Regex;

/// The value modifiers this engine knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modifier {
    /// `|contains`
    Contains,
    /// `|startswith`
    StartsWith,
    /// `|endswith`
    EndsWith,
    /// `|all`: every value must match (instead of any).
    All,
}

impl Modifier {
    /// Parses one modifier name.
    pub fn parse(name: &str) -> Option<Modifier> {
        Some(match name {
            "contains" => Modifier::Contains,
            "startswith" => Modifier::StartsWith,
            "endswith" => Modifier::EndsWith,
            "all" => Modifier::All,
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

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Lit(String),
    Star,
    One,
}

/// Splits a Sigma value into literal runs and wildcards, applying the escapes.
fn pieces(value: &str) -> Vec<Piece> {
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
                let p = if c == '*' { Piece::Star } else { Piece::One };
                if !(p == Piece::Star && out.last() == Some(&Piece::Star)) {
                    out.push(p);
                }
            }
            c => lit.push(c),
        }
    }
    if !lit.is_empty() {
        out.push(Piece::Lit(lit));
    }
    out
}

fn anchored(mut p: Vec<Piece>, anchor: Anchor) -> Vec<Piece> {
    let star_front = matches!(anchor, Anchor::Contains | Anchor::EndsWith);
    let star_back = matches!(anchor, Anchor::Contains | Anchor::StartsWith);
    if star_front && p.first() != Some(&Piece::Star) {
        p.insert(0, Piece::Star);
    }
    if star_back && p.last() != Some(&Piece::Star) {
        p.push(Piece::Star);
    }
    p
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

/// A regex pattern could not be built (should not happen for wildcard patterns).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("value {value:?} does not compile: {message}")]
pub struct ValueError {
    /// The value as written.
    pub value: String,
    /// The regex compiler's message.
    pub message: String,
}

fn compile(value: &str, anchor: Anchor) -> Result<Result<Test, Vec<u8>>, ValueError> {
    let p = anchored(pieces(value), anchor);
    let lit_ascii = |s: &str| s.is_ascii().then(|| s.to_ascii_lowercase().into_bytes());
    // Ok(Err(bytes)) is a substring test, gathered into the shared automaton.
    let simple = match p.as_slice() {
        [] => Some(Ok(Test::Exact(Box::default()))),
        [Piece::Star] => Some(Ok(Test::AnyValue)),
        [Piece::Lit(l)] => lit_ascii(l).map(|b| Ok(Test::Exact(b.into()))),
        [Piece::Lit(l), Piece::Star] => lit_ascii(l).map(|b| Ok(Test::Prefix(b.into()))),
        [Piece::Star, Piece::Lit(l)] => lit_ascii(l).map(|b| Ok(Test::Suffix(b.into()))),
        [Piece::Star, Piece::Lit(l), Piece::Star] => lit_ascii(l).map(Err),
        _ => None,
    };
    if let Some(t) = simple {
        return Ok(t);
    }
    let mut re = String::from("(?si)^");
    for piece in &p {
        match piece {
            Piece::Lit(l) => re.push_str(&regex::escape(l)),
            Piece::Star => re.push_str(".*"),
            Piece::One => re.push('.'),
        }
    }
    re.push('$');
    Regex::new(&re)
        .map(|r| Ok(Test::Regex(r)))
        .map_err(|e| ValueError {
            value: value.into(),
            message: e.to_string(),
        })
}

/// The values of one field test, OR-ed: a field value matches the set if it matches
/// any member.
#[derive(Debug, Clone, Default)]
pub struct ValueSet {
    tests: Vec<Test>,
    numbers: Vec<f64>,
    needles: Vec<Vec<u8>>,
    contains: Option<AhoCorasick>,
    null: bool,
}

impl ValueSet {
    /// Adds a string (or number, as text) value under the given anchor.
    pub fn add(&mut self, value: &str, anchor: Anchor) -> Result<(), ValueError> {
        if anchor == Anchor::Exact
            && let Ok(n) = value.trim().parse::<f64>()
            && n.is_finite()
        {
            self.numbers.push(n);
        }
        match compile(value, anchor)? {
            Ok(t) => self.tests.push(t),
            Err(needle) => self.needles.push(needle),
        }
        Ok(())
    }

    /// Adds `null`: matches a missing field or a JSON null.
    pub fn add_null(&mut self) {
        self.null = true;
    }

    /// Builds the shared substring automaton; call once after the last `add`.
    pub fn finish(&mut self) -> Result<(), ValueError> {
        if !self.needles.is_empty() {
            let ac = AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
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

    /// Whether the set has any non-null member.
    pub fn has_values(&self) -> bool {
        !self.tests.is_empty() || !self.needles.is_empty()
    }

    /// The lowercase literals of a set made only of whole-value ASCII literals (used by
    /// the rule index), or `None`.
    pub fn exact_literals(&self) -> Option<Vec<Box<[u8]>>> {
        if self.null || !self.needles.is_empty() || self.tests.is_empty() {
            return None;
        }
        self.tests
            .iter()
            .map(|t| match t {
                Test::Exact(b) => Some(b.clone()),
                _ => None,
            })
            .collect()
    }

    /// Whether a JSON number matches: numerically equal to a member that is a plain
    /// number (`200`, `200.0` and `2e2` are all 200), or its canonical text (integers as
    /// digits, floats in shortest round-trip form) matching a member's pattern.
    pub fn matches_number(&self, n: f64, text: &str) -> bool {
        self.numbers.contains(&n) || self.matches_str(text)
    }

    /// Whether a string value matches any member.
    #[inline]
    pub fn matches_str(&self, s: &str) -> bool {
        let b = s.as_bytes();
        for t in &self.tests {
            let hit = match t {
                Test::Exact(n) => b.len() == n.len() && b.eq_ignore_ascii_case(n),
                Test::Prefix(n) => b.len() >= n.len() && b[..n.len()].eq_ignore_ascii_case(n),
                Test::Suffix(n) => {
                    b.len() >= n.len() && b[b.len() - n.len()..].eq_ignore_ascii_case(n)
                }
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(values: &[&str], anchor: Anchor) -> ValueSet {
        let mut s = ValueSet::default();
        for v in values {
            s.add(v, anchor).expect("compiles");
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
        let s = set(&["*"], Anchor::Exact);
        assert!(s.matches_str("") && s.matches_str("anything"));
    }

    #[test]
    fn unicode_folds_through_regex() {
        let s = set(&["ÄRGER"], Anchor::Contains);
        assert!(s.matches_str("großer ärger"));
    }

    #[test]
    fn null_member() {
        let mut s = ValueSet::default();
        s.add_null();
        s.finish().expect("ok");
        assert!(s.matches_null() && !s.has_values() && !s.matches_str(""));
    }
}
