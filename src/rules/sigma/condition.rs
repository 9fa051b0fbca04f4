//! Sigma condition text → [`CondAst`].
//!
//! Grammar, lowest precedence first (Sigma: `not` binds tighter than `and`, which binds
//! tighter than `or`):
//!
//! ```text
//! expr    := and ( "or" and )*
//! and     := unary ( "and" unary )*
//! unary   := "not" unary | primary
//! primary := "(" expr ")" | quant "of" ( pattern | "them" ) | identifier
//! quant   := "all" | "any" | NUMBER
//! ```
//!
//! Keywords are case-insensitive; identifiers are case-sensitive and may hold `*`
//! wildcards in `of` patterns. Errors carry the column (1-based) in the condition text.

/// How many selections of an `of` expression must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Quantifier {
    /// `all of`
    All,
    /// `1 of`, `any of`, or `N of`: at least this many.
    AtLeast(usize),
}

/// A parsed condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CondAst {
    /// A selection by name.
    Ident(String, usize),
    /// `quant of pattern` (`pattern` `None` means `them`).
    Of(Quantifier, Option<String>, usize),
    /// `not x`
    Not(Box<CondAst>),
    /// `a and b and …`
    And(Vec<CondAst>),
    /// `a or b or …`
    Or(Vec<CondAst>),
}

/// A condition that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {col}: {message}")]
pub struct ConditionError {
    /// 1-based column in the condition text.
    pub col: usize,
    /// What is wrong.
    pub message: String,
}

const AGGREGATION: &str =
    "aggregation expressions ('| count() …') are not supported here; write a correlation rule";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    LParen,
    RParen,
    Pipe,
    Word(String),
}

fn tokenize(text: &str) -> Result<Vec<(Tok, usize)>, ConditionError> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (pos, c) = chars[i];
        let col = text[..pos].chars().count() + 1;
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push((Tok::LParen, col));
                i += 1;
            }
            ')' => {
                out.push((Tok::RParen, col));
                i += 1;
            }
            '|' => {
                // Everything after a pipe is a legacy aggregation; the parser rejects it.
                out.push((Tok::Pipe, col));
                break;
            }
            c if c.is_alphanumeric() || matches!(c, '_' | '*' | '-' | '.' | '?') => {
                let start = pos;
                while i < chars.len()
                    && (chars[i].1.is_alphanumeric()
                        || matches!(chars[i].1, '_' | '*' | '-' | '.' | '?'))
                {
                    i += 1;
                }
                let end = chars.get(i).map_or(text.len(), |&(p, _)| p);
                out.push((Tok::Word(text[start..end].to_string()), col));
            }
            other => {
                return Err(ConditionError {
                    col,
                    message: format!("unexpected character {other:?}"),
                });
            }
        }
    }
    Ok(out)
}

struct P {
    toks: Vec<(Tok, usize)>,
    i: usize,
    end_col: usize,
}

impl P {
    fn peek_word(&self) -> Option<String> {
        match self.toks.get(self.i) {
            Some((Tok::Word(w), _)) => Some(w.to_ascii_lowercase()),
            _ => None,
        }
    }

    fn col(&self) -> usize {
        self.toks.get(self.i).map_or(self.end_col, |t| t.1)
    }

    fn err<T>(&self, message: impl Into<String>) -> Result<T, ConditionError> {
        Err(ConditionError {
            col: self.col(),
            message: message.into(),
        })
    }

    fn expr(&mut self) -> Result<CondAst, ConditionError> {
        let mut items = vec![self.and()?];
        while self.peek_word().as_deref() == Some("or") {
            self.i += 1;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            CondAst::Or(items)
        })
    }

    fn and(&mut self) -> Result<CondAst, ConditionError> {
        let mut items = vec![self.unary()?];
        while self.peek_word().as_deref() == Some("and") {
            self.i += 1;
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            CondAst::And(items)
        })
    }

    fn unary(&mut self) -> Result<CondAst, ConditionError> {
        if self.peek_word().as_deref() == Some("not") {
            self.i += 1;
            return Ok(CondAst::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<CondAst, ConditionError> {
        let col = self.col();
        match self.toks.get(self.i).cloned() {
            None => self.err("condition ends where a selection was expected"),
            Some((Tok::LParen, _)) => {
                self.i += 1;
                let inner = self.expr()?;
                match self.toks.get(self.i) {
                    Some((Tok::RParen, _)) => {
                        self.i += 1;
                        Ok(inner)
                    }
                    _ => self.err("expected ')'"),
                }
            }
            Some((Tok::RParen, _)) => self.err("unexpected ')'"),
            Some((Tok::Pipe, _)) => self.err(AGGREGATION),
            Some((Tok::Word(w), _)) => {
                let lower = w.to_ascii_lowercase();
                if matches!(lower.as_str(), "and" | "or" | "of" | "them") {
                    return self.err(format!("unexpected keyword '{w}'"));
                }
                let quant = match lower.as_str() {
                    "all" => Some(Quantifier::All),
                    "any" => Some(Quantifier::AtLeast(1)),
                    _ => match lower.parse::<usize>() {
                        Ok(0) => return self.err("'0 of' never matches; use 'not 1 of'"),
                        Ok(n) => Some(Quantifier::AtLeast(n)),
                        Err(_) => None,
                    },
                };
                let next_is_of = matches!(
                    self.toks.get(self.i + 1),
                    Some((Tok::Word(x), _)) if x.eq_ignore_ascii_case("of")
                );
                match quant {
                    Some(q) if next_is_of => {
                        self.i += 2;
                        let target = match self.toks.get(self.i).cloned() {
                            Some((Tok::Word(t), _)) => t,
                            _ => {
                                return self
                                    .err("expected a selection pattern or 'them' after 'of'");
                            }
                        };
                        self.i += 1;
                        let pattern = (!target.eq_ignore_ascii_case("them")).then_some(target);
                        Ok(CondAst::Of(q, pattern, col))
                    }
                    _ => {
                        self.i += 1;
                        Ok(CondAst::Ident(w, col))
                    }
                }
            }
        }
    }
}

/// Parses one condition string.
pub fn parse(text: &str) -> Result<CondAst, ConditionError> {
    let toks = tokenize(text)?;
    let mut p = P {
        toks,
        i: 0,
        end_col: text.chars().count() + 1,
    };
    let ast = p.expr()?;
    if let Some((Tok::Pipe, _)) = p.toks.get(p.i) {
        return p.err(AGGREGATION);
    }
    if p.i < p.toks.len() {
        return p.err("unexpected text after the end of the condition");
    }
    Ok(ast)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> CondAst {
        CondAst::Ident(s.into(), 0)
    }

    fn strip(a: CondAst) -> CondAst {
        match a {
            CondAst::Ident(s, _) => CondAst::Ident(s, 0),
            CondAst::Of(q, p, _) => CondAst::Of(q, p, 0),
            CondAst::Not(x) => CondAst::Not(Box::new(strip(*x))),
            CondAst::And(v) => CondAst::And(v.into_iter().map(strip).collect()),
            CondAst::Or(v) => CondAst::Or(v.into_iter().map(strip).collect()),
        }
    }

    #[test]
    fn precedence_not_and_or() {
        let got = strip(parse("a or not b and c").expect("ok"));
        assert_eq!(
            got,
            CondAst::Or(vec![
                id("a"),
                CondAst::And(vec![CondAst::Not(Box::new(id("b"))), id("c")])
            ])
        );
        let got = strip(parse("(a or b) and c").expect("ok"));
        assert_eq!(
            got,
            CondAst::And(vec![CondAst::Or(vec![id("a"), id("b")]), id("c")])
        );
    }

    #[test]
    fn quantifiers() {
        assert_eq!(
            strip(parse("1 of sel* and not all of them").expect("ok")),
            CondAst::And(vec![
                CondAst::Of(Quantifier::AtLeast(1), Some("sel*".into()), 0),
                CondAst::Not(Box::new(CondAst::Of(Quantifier::All, None, 0))),
            ])
        );
        assert_eq!(
            strip(parse("ANY OF filter_*").expect("ok")),
            CondAst::Of(Quantifier::AtLeast(1), Some("filter_*".into()), 0)
        );
    }

    #[test]
    fn errors_name_columns() {
        let e = parse("sel and").expect_err("bad");
        assert_eq!(e.col, 8);
        let e = parse("sel | count() > 5").expect_err("bad");
        assert_eq!(e.col, 5);
        assert!(e.message.contains("correlation"));
        assert!(parse("(a or b").is_err());
        assert!(parse("a b").is_err());
        assert!(parse("a $ b").is_err());
    }
}
