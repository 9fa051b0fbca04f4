//! A YAML tree that remembers where each node came from.
//!
//! Rule errors must name `file:line:column`, so rule documents are read into this small
//! tree instead of a serde value, which forgets positions. Scalars are resolved with the
//! YAML 1.2 core schema (plain `null`/`~`/empty → null, `true`/`false` → bool, numbers
//! keep their text so `1.10` stays `1.10`); quoted scalars are always strings.
//! Anchors and aliases are expanded, within bounds: a text expands to at most
//! [`MAX_NODES`] nodes (a "billion laughs" of nested aliases is an error, not a
//! gigabyte) and nests at most [`MAX_DEPTH`] levels deep (so nothing that walks the tree,
//! dropping it included, can run out of stack).

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mark {
    /// Line, 1-based.
    pub line: usize,
    /// Column, 1-based.
    pub col: usize,
}

impl std::fmt::Display for Mark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A node and its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Yaml {
    /// Where the node starts.
    pub mark: Mark,
    /// What it is.
    pub kind: Kind,
    /// A quoted scalar: its text starts one column after `mark`.
    pub quoted: bool,
}

/// The kinds of node.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// `null`, `~` or an empty value.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer or float, as written.
    Number(String),
    /// A string.
    Str(String),
    /// A sequence.
    Seq(Vec<Yaml>),
    /// A mapping, in document order.
    Map(Vec<(Yaml, Yaml)>),
}

/// A document that is not well-formed YAML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{mark}: {message}")]
pub struct YamlError {
    /// Where the parser stopped.
    pub mark: Mark,
    /// The parser's message.
    pub message: String,
}

impl Yaml {
    /// The string value of a string, number or bool scalar.
    pub fn as_scalar_text(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) | Kind::Number(s) => Some(s),
            Kind::Bool(true) => Some("true"),
            Kind::Bool(false) => Some("false"),
            _ => None,
        }
    }

    /// The string of a string scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The entries of a mapping.
    pub fn as_map(&self) -> Option<&[(Yaml, Yaml)]> {
        match &self.kind {
            Kind::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The value under a string key of a mapping.
    pub fn get(&self, key: &str) -> Option<&Yaml> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_scalar_text() == Some(key))
            .map(|(_, v)| v)
    }

    /// A short name for the kind, for error messages.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Number(_) => "a number",
            Kind::Str(_) => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }
}

fn mark_of(span: &Span) -> Mark {
    Mark {
        line: span.start.line(),
        col: span.start.col() + 1,
    }
}

fn resolve_plain(s: &str) -> Kind {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => Kind::Null,
        "true" | "True" | "TRUE" => Kind::Bool(true),
        "false" | "False" | "FALSE" => Kind::Bool(false),
        _ if is_number(s) => Kind::Number(s.to_string()),
        _ => Kind::Str(s.to_string()),
    }
}

fn is_number(s: &str) -> bool {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    if body.is_empty() {
        return false;
    }
    if let Some(hex) = body.strip_prefix("0x") {
        return !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit());
    }
    if let Some(oct) = body.strip_prefix("0o") {
        return !oct.is_empty() && oct.bytes().all(|b| (b'0'..=b'7').contains(&b));
    }
    let mut digits = 0;
    let mut dot = false;
    let mut exp = false;
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'0'..=b'9' => digits += 1,
            b'.' if !dot && !exp => dot = true,
            b'e' | b'E' if !exp && digits > 0 => {
                exp = true;
                if matches!(bytes.get(i + 1), Some(b'-' | b'+')) {
                    i += 1;
                }
                if i + 1 >= bytes.len() {
                    return false;
                }
            }
            _ => return false,
        }
        i += 1;
    }
    digits > 0
}

/// Most nodes one text may expand to, aliases included.
pub const MAX_NODES: usize = 200_000;

/// Deepest nesting of sequences and mappings.
pub const MAX_DEPTH: usize = 128;

/// An open sequence or mapping: where it starts, its anchor, its items so far, and the
/// node count when it opened (its size, once closed, is the count's growth + 1).
enum Frame {
    Seq(Mark, usize, Vec<Yaml>, usize),
    Map(Mark, usize, Vec<(Yaml, Yaml)>, Option<Yaml>, usize),
}

/// Parses every document of a multi-document YAML text.
pub fn load_documents(text: &str) -> Result<Vec<Yaml>, YamlError> {
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    // Anchored nodes with their sizes in nodes.
    let mut anchors: HashMap<usize, (Yaml, usize)> = HashMap::new();
    let mut nodes = 0usize;
    for ev in Parser::new_from_str(text) {
        let (ev, span) = ev.map_err(|e| YamlError {
            mark: Mark {
                line: e.marker().line(),
                col: e.marker().col() + 1,
            },
            message: e.info().to_string(),
        })?;
        let mark = mark_of(&span);
        let too_many = |mark| YamlError {
            mark,
            message: format!(
                "the document expands to more than {MAX_NODES} nodes (aliases included)"
            ),
        };
        if matches!(ev, Event::SequenceStart(..) | Event::MappingStart(..))
            && stack.len() >= MAX_DEPTH
        {
            return Err(YamlError {
                mark,
                message: format!("nested deeper than {MAX_DEPTH} levels"),
            });
        }
        let done: Option<(Yaml, usize, usize)> = match ev {
            Event::Scalar(v, style, anchor, _tag) => {
                let quoted = matches!(style, ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted);
                let kind = match style {
                    ScalarStyle::Plain => resolve_plain(&v),
                    _ => Kind::Str(v.into_owned()),
                };
                nodes += 1;
                Some((Yaml { mark, kind, quoted }, anchor, 1))
            }
            Event::Alias(id) => {
                let (node, size) = anchors.get(&id).ok_or_else(|| YamlError {
                    mark,
                    message: "alias refers to an unknown anchor".into(),
                })?;
                nodes = nodes.saturating_add(*size);
                if nodes > MAX_NODES {
                    return Err(too_many(mark));
                }
                Some((node.clone(), 0, *size))
            }
            Event::SequenceStart(anchor, _) => {
                stack.push(Frame::Seq(mark, anchor, Vec::new(), nodes));
                None
            }
            Event::MappingStart(anchor, _) => {
                stack.push(Frame::Map(mark, anchor, Vec::new(), None, nodes));
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(m, anchor, items, at)) => {
                    nodes += 1;
                    Some((
                        Yaml {
                            mark: m,
                            kind: Kind::Seq(items),
                            quoted: false,
                        },
                        anchor,
                        nodes - at,
                    ))
                }
                _ => None,
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(m, anchor, entries, _, at)) => {
                    nodes += 1;
                    Some((
                        Yaml {
                            mark: m,
                            kind: Kind::Map(entries),
                            quoted: false,
                        },
                        anchor,
                        nodes - at,
                    ))
                }
                _ => None,
            },
            _ => None,
        };
        let Some((node, anchor, size)) = done else {
            continue;
        };
        if nodes > MAX_NODES {
            return Err(too_many(node.mark));
        }
        if anchor != 0 {
            anchors.insert(anchor, (node.clone(), size));
        }
        match stack.last_mut() {
            None => docs.push(node),
            Some(Frame::Seq(_, _, items, _)) => items.push(node),
            Some(Frame::Map(_, _, entries, pending, _)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => entries.push((key, node)),
            },
        }
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_and_marks() {
        let docs =
            load_documents("a: 1.10\nb: 'x'\nc: ~\nd: [true, foo]\n---\ne: f\n").expect("ok");
        assert_eq!(docs.len(), 2);
        let a = docs[0].get("a").expect("a");
        assert_eq!(a.kind, Kind::Number("1.10".into()));
        assert_eq!(a.mark, Mark { line: 1, col: 4 });
        assert_eq!(docs[0].get("b").expect("b").kind, Kind::Str("x".into()));
        assert_eq!(docs[0].get("c").expect("c").kind, Kind::Null);
        let d = docs[0].get("d").expect("d");
        assert!(matches!(&d.kind, Kind::Seq(v) if v[0].kind == Kind::Bool(true)));
        assert_eq!(docs[1].get("e").and_then(Yaml::as_str), Some("f"));
    }

    #[test]
    fn numbers() {
        for n in ["1", "-2", "1.5", "1e3", "0x1F", "+3"] {
            assert!(is_number(n), "{n}");
        }
        for s in ["1.2.3", "abc", "1e", "-", "12a", "."] {
            assert!(!is_number(s), "{s}");
        }
    }

    #[test]
    fn anchors_expand() {
        let docs = load_documents("a: &x [1, 2]\nb: *x\n").expect("ok");
        assert_eq!(
            docs[0].get("a").map(|v| &v.kind),
            docs[0].get("b").map(|v| &v.kind)
        );
    }

    #[test]
    fn alias_bombs_and_deep_nesting_are_errors() {
        // Nine levels of ten aliases each: 10^9 nodes if expanded.
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = load_documents(&text).expect_err("a bomb");
        assert!(err.message.contains("more than 200000 nodes"), "{err:?}");
        assert!(err.mark.line >= 5, "names where it blew up: {err:?}");
        // Five levels are 111,111 nodes: fine.
        let five: String = text.lines().take(5).map(|l| format!("{l}\n")).collect();
        assert!(load_documents(&five).is_ok());
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let err = load_documents(&deep).expect_err("too deep");
        assert!(err.message.contains("deeper than 128"), "{err:?}");
        // Deeper still, the parser's own limit stops it first.
        let deeper = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(load_documents(&deeper).is_err());
        let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(load_documents(&ok).is_ok());
    }

    #[test]
    fn errors_have_positions() {
        let err = load_documents("a: [1, 2\nb: c\n").expect_err("bad");
        assert!(err.mark.line >= 1, "{err}");
    }
}
