//! SQL `LIKE` / `ILIKE` patterns, compiled once: `%` is any run of characters, `_` one
//! character (a Unicode scalar value, as in DuckDB), and an optional one-character
//! `ESCAPE` makes the next character literal. There is no default escape character.

/// A compiled pattern.
#[derive(Debug, Clone)]
pub(super) struct Pattern {
    shape: Shape,
    /// `ILIKE`: literals are lowercased here, text at match time.
    fold: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Lit(Box<str>),
    One,
    Any,
}

/// Common shapes get a direct test; the rest the general matcher.
#[derive(Debug, Clone)]
enum Shape {
    Exact(Box<str>),
    Prefix(Box<str>),
    Suffix(Box<str>),
    Contains(Box<str>),
    Everything,
    General(Box<[Tok]>),
}

impl Pattern {
    /// Compiles `pat`; `escape` is the `ESCAPE` character, if any.
    pub fn new(pat: &str, escape: Option<char>, fold: bool) -> Result<Pattern, String> {
        let mut toks: Vec<Tok> = Vec::new();
        let mut lit = String::new();
        let flush = |lit: &mut String, toks: &mut Vec<Tok>| {
            if !lit.is_empty() {
                let text = if fold {
                    lit.chars().flat_map(char::to_lowercase).collect()
                } else {
                    std::mem::take(lit)
                };
                lit.clear();
                toks.push(Tok::Lit(text.into()));
            }
        };
        let mut chars = pat.chars();
        while let Some(c) = chars.next() {
            if Some(c) == escape {
                match chars.next() {
                    Some(n) => lit.push(n),
                    None => return Err("LIKE pattern ends with its escape character".into()),
                }
            } else if c == '%' {
                flush(&mut lit, &mut toks);
                if toks.last() != Some(&Tok::Any) {
                    toks.push(Tok::Any);
                }
            } else if c == '_' {
                flush(&mut lit, &mut toks);
                toks.push(Tok::One);
            } else {
                lit.push(c);
            }
        }
        flush(&mut lit, &mut toks);
        let shape = match toks.as_slice() {
            [] => Shape::Exact("".into()),
            [Tok::Lit(s)] => Shape::Exact(s.clone()),
            [Tok::Any] => Shape::Everything,
            [Tok::Lit(s), Tok::Any] => Shape::Prefix(s.clone()),
            [Tok::Any, Tok::Lit(s)] => Shape::Suffix(s.clone()),
            [Tok::Any, Tok::Lit(s), Tok::Any] => Shape::Contains(s.clone()),
            _ => Shape::General(toks.into()),
        };
        Ok(Pattern { shape, fold })
    }

    /// Whether `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        if !self.fold {
            return self.shape.test(text, false);
        }
        if text.is_ascii() {
            // Lowercased literals against ASCII text: ASCII case folding is exact here.
            return self.shape.test(text, true);
        }
        let lower: String = text.chars().flat_map(char::to_lowercase).collect();
        self.shape.test(&lower, false)
    }
}

/// Byte equality, ASCII case-insensitive when `fold` (the pattern side is lowercase).
#[inline]
fn same(a: &[u8], b: &[u8], fold: bool) -> bool {
    if fold {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

impl Shape {
    fn test(&self, text: &str, fold: bool) -> bool {
        let t = text.as_bytes();
        match self {
            Shape::Exact(s) => same(t, s.as_bytes(), fold),
            Shape::Prefix(s) => t.len() >= s.len() && same(&t[..s.len()], s.as_bytes(), fold),
            Shape::Suffix(s) => {
                t.len() >= s.len() && same(&t[t.len() - s.len()..], s.as_bytes(), fold)
            }
            Shape::Contains(s) if !fold => text.contains(&**s),
            Shape::Contains(s) => {
                s.is_empty()
                    || t.windows(s.len())
                        .any(|w| w.eq_ignore_ascii_case(s.as_bytes()))
            }
            Shape::Everything => true,
            Shape::General(toks) => general(toks, text, fold),
        }
    }
}

/// Wildcard matching with one backtracking point (the last `%` seen): linear in the
/// common case, O(text × pattern) at worst, no allocation. `fold` only with ASCII text.
fn general(toks: &[Tok], text: &str, fold: bool) -> bool {
    let bytes = text.as_bytes();
    let next_char = |t: usize| -> Option<usize> {
        text.get(t..)
            .and_then(|r| r.chars().next())
            .map(|c| t + c.len_utf8())
    };
    let (mut t, mut p) = (0usize, 0usize);
    // (token after the `%`, text position it is being tried at)
    let mut star: Option<(usize, usize)> = None;
    loop {
        let step = match toks.get(p) {
            Some(Tok::Any) => {
                star = Some((p + 1, t));
                p += 1;
                continue;
            }
            Some(Tok::One) => next_char(t),
            Some(Tok::Lit(s)) => {
                let end = t + s.len();
                (end <= bytes.len() && same(&bytes[t..end], s.as_bytes(), fold)).then_some(end)
            }
            None if t == bytes.len() => return true,
            None => None,
        };
        if let Some(nt) = step {
            t = nt;
            p += 1;
            continue;
        }
        // Mismatch: let the last `%` swallow one more character.
        match star.and_then(|(sp, st)| Some((sp, next_char(st)?))) {
            Some((sp, nt)) => {
                star = Some((sp, nt));
                p = sp;
                t = nt;
            }
            None => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Pattern;

    fn like(text: &str, pat: &str) -> bool {
        Pattern::new(pat, None, false)
            .expect("pattern")
            .matches(text)
    }

    fn ilike(text: &str, pat: &str) -> bool {
        Pattern::new(pat, None, true)
            .expect("pattern")
            .matches(text)
    }

    #[test]
    fn filter_like_shapes_and_general_patterns() {
        assert!(like("abc", "abc"));
        assert!(!like("abc", "ab"));
        assert!(like("abc", "a%"));
        assert!(like("abc", "%c"));
        assert!(like("abc", "%b%"));
        assert!(like("", "%"));
        assert!(like("a", "%%"));
        assert!(!like("", "_"));
        assert!(like("é", "_"));
        assert!(like("éa", "_a"));
        assert!(like("abc", "a%c%"));
        assert!(like("abcbc", "%bc"));
        assert!(like("aXbYc", "a_b_c"));
        assert!(!like("aXbYcZ", "a_b_c"));
        assert!(like("xaaab", "%a%b"));
        assert!(!like("xaaac", "%a%b"));
        assert!(like("mississippi", "m%iss%pi"));
        assert!(!like("ABC", "abc"));
    }

    #[test]
    fn filter_like_escapes() {
        let p = Pattern::new("a!%b", Some('!'), false).expect("pattern");
        assert!(p.matches("a%b"));
        assert!(!p.matches("axb"));
        let p = Pattern::new("a!!_", Some('!'), false).expect("pattern");
        assert!(p.matches("a!x"));
        // An escaped ordinary character is itself.
        assert!(
            Pattern::new("a!b", Some('!'), false)
                .expect("p")
                .matches("ab")
        );
        // No default escape: a backslash is literal.
        assert!(like("a\\%", "a\\%"));
        assert!(!like("a%", "a\\%"));
        assert!(Pattern::new("a!", Some('!'), false).is_err());
    }

    #[test]
    fn filter_ilike_folds_case() {
        assert!(ilike("DeCrYpT", "decrypt"));
        assert!(ilike("Decrypt", "DEC%"));
        assert!(ilike("xDECRYPTx", "%crypt%"));
        assert!(ilike("É", "é"));
        assert!(ilike("ÉtÉ", "_t%"));
        assert!(!ilike("ß", "SS"));
        // The escape character is matched before lowercasing.
        let p = Pattern::new("A\\_B", Some('\\'), true).expect("pattern");
        assert!(p.matches("a_b"));
        assert!(!p.matches("axb"));
    }
}
