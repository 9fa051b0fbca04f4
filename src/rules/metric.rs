//! CloudWatch Logs metric-filter JSON patterns, as pasted from CloudWatch alarms:
//! `{ ($.eventName = "ConsoleLogin") && ($.errorMessage = "Failed authentication") }`.
//!
//! [`MetricPattern::parse`] compiles the text once; [`MetricPattern::matches`] tests one
//! record through its [`RootCache`]. The syntax and its meaning follow the CloudWatch Logs
//! User Guide ("Filter pattern syntax", "Matching terms in JSON log events"); where the
//! guide is silent, the decision taken is written down here.
//!
//! # Syntax
//!
//! ```text
//! pattern    = "{" or "}"
//! or         = and { "||" and }
//! and        = primary { "&&" primary }
//! primary    = "(" or ")" | test
//! test       = selector ( ("=" | "!=") value
//!                       | ("<" | "<=" | ">" | ">=") number
//!                       | "IS" ("TRUE" | "FALSE" | "NULL")
//!                       | "NOT" "EXISTS" )
//! selector   = "$" { "." name | "[" digits "]" }     (the first step is a name)
//! value      = quoted | "%" regex "%" | number | bare
//! ```
//!
//! - **Precedence** is the guide's "`()` > `&&` > `||`": `a || b && c` is `a || (b && c)`.
//!   Parentheses nest up to 64 deep.
//! - **Selectors**: names are ASCII letters, digits, `-` and `_` (the guide's set); an
//!   index `[N]` must follow a name (`$.resources[0].ARN`, `$.coordinates[0][1]`). The
//!   guide defines no `[*]`, so it is an error.
//! - **Values**: a double-quoted string (`\"`, `\\` and `\*` are escapes; any other
//!   backslash is kept as written), a number (`-5`, `+1000`, `55.5`, `10e-3`), a regular
//!   expression between `%` signs, or a bare word: a run of characters other than
//!   white space and `( ) { } " & | = ! < > % \ $`. The guide asks for quotes around
//!   anything but letters and digits, yet its own examples write `123.123.*` and
//!   `s3.amazonaws.com` bare, so bare words are accepted as written.
//! - **Keywords** (`IS`, `NOT`, `TRUE`, `FALSE`, `NULL`, `EXISTS`) are read without
//!   regard to case. Operators the guide does not define (`==`, `<>`, `=~`, `EXISTS`
//!   alone, `IS NOT NULL`, `AND`, single `&` or `|`) are errors, not guesses.
//! - **Regular expressions** are the `regex` crate's syntax, unanchored (`^`/`$` anchor),
//!   case-sensitive. The guide's subset (no parentheses, two regexes per pattern) is not
//!   enforced: every pattern CloudWatch accepts is accepted, and a few more.
//!
//! Errors name the 1-based character column (counted from the start of the text) and
//! what was expected: `column 48: unbalanced ')'`, `column 3: '(' opened here is never
//! closed`, `column 9: unterminated string: the '"' opened here is never closed`.
//!
//! # Matching
//!
//! - **A selector is walked exactly**: each name is looked up in an object, each index in
//!   an array. A name on an array, or an index on anything but an array, reaches nothing
//!   (the guide: "If arrayKey is not an array this will be false"). There is no fan-out
//!   over arrays, unlike Sigma field paths.
//! - **Key lookup** is the engine's rule (`docs/records.md`, [`path::object_get`]): the
//!   exact key first, else the first ASCII case-insensitive match. CloudWatch matches
//!   keys exactly; the difference shows only on a record that lacks the exact key but has
//!   one differing in case, which CloudTrail never writes. Keys containing dots are not
//!   reachable (a selector cannot spell them).
//! - **A missing field makes every comparison false**, `!=` included; only `NOT EXISTS`
//!   holds for it. `!=` on a present value that differs is true.
//! - **A selector reaching an array or an object** matches nothing, neither `=` nor `!=`
//!   (the guide: "both `{$.users = 1}` and `{$.users != 1}` will fail to match" an
//!   array); `NOT EXISTS` is false for it since it is there.
//! - **String values** (`=`/`!=` with a quoted or bare string) compare whole values,
//!   case-sensitively; `*` matches any run of characters (also none) wherever it stands
//!   (`*Event`, `Event*`, `Ev*nt`, `*Unauthorized*`). The older guide said a `*` in the
//!   middle is literal; current CloudWatch and this engine treat it as a wildcard, and
//!   `\*` in quotes is a literal star. `$.x = *` therefore means "present and a string,
//!   number or boolean".
//! - **A JSON number against a string value** compares its text (`404` as `"404"`, so
//!   `"4*"` matches it); a JSON boolean compares as `true`/`false`. `null` is matched only
//!   by `IS NULL`.
//! - **Number values**: `<`, `<=`, `>`, `>=` hold when the field is a JSON number, or a
//!   string that is wholly a number (CloudTrail writes account ids and many sizes as
//!   strings), and compares so; anything else is false. `=` holds when the values are
//!   numerically equal or the field's text is the number as written; `!=` is its negation
//!   on a present string, number or boolean. Numbers compare as `f64`.
//! - **`IS TRUE` / `IS FALSE`** hold only for JSON booleans (not the strings `"true"`),
//!   **`IS NULL`** only for a present JSON `null`, **`NOT EXISTS`** when the selector
//!   reaches nothing.
//! - **Regex values** (`= %re%`, `!= %re%`) search the same text as string values.
//!
//! # Index
//!
//! [`MetricPattern::required_event_names`] gives the rule index the `eventName` literals
//! a match needs: a plain `$.eventName = Literal` test gives its literal; `&&` takes the
//! smallest set of its children, `||` the union only when every branch has one; a
//! wildcard, `!=`, regex, number or keyword test gives none.

use regex::{Regex, RegexBuilder};
use simd_json::prelude::ValueAsScalar;
use simd_json::tape::Value;

use crate::event::FieldPath;
use crate::event::path::{self, RootCache};
use crate::rules::sigma::field::scalar_text;

/// How deep parentheses may nest.
const MAX_DEPTH: usize = 64;
/// What may follow a selector, for error messages.
const OPERATORS: &str =
    "an operator (=, !=, <, <=, >, >=, IS TRUE, IS FALSE, IS NULL or NOT EXISTS)";
/// Compiled size limit of one regular expression.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Why a pattern does not parse: the 1-based character column and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {col}: {message}")]
pub struct PatternError {
    /// 1-based character column, counted from the start of the pattern.
    pub col: usize,
    /// What is wrong or was expected there.
    pub message: String,
}

/// A compiled CloudWatch Logs JSON filter pattern.
#[derive(Debug, Clone)]
pub struct MetricPattern {
    text: Box<str>,
    root: Node,
}

#[derive(Debug, Clone)]
enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Test(Test),
}

#[derive(Debug, Clone)]
struct Test {
    sel: Selector,
    op: Op,
    /// The test as written (`$.eventName = ConsoleLogin`), for `rules explain`.
    source: Box<str>,
}

/// `$.a.b[0]`: the steps walked exactly, and the same path as a [`FieldPath`] (whose
/// cached lookup reaches a superset of what the steps reach, so it tells cheaply when
/// the field is absent).
#[derive(Debug, Clone)]
struct Selector {
    path: FieldPath,
    steps: Box<[Step]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(Box<str>),
    Index(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone)]
enum Op {
    /// `=` / `!=` a string (quoted or bare), with `*` wildcards.
    Text {
        negate: bool,
        glob: Glob,
    },
    /// A comparison with a number; `text` is the number as written.
    Number {
        cmp: Cmp,
        value: f64,
        text: Box<str>,
    },
    /// `=` / `!=` a `%regex%`.
    Regex {
        negate: bool,
        re: Regex,
    },
    IsTrue,
    IsFalse,
    IsNull,
    NotExists,
}

/// A string value split at its wildcards: one part is an exact literal.
#[derive(Debug, Clone)]
struct Glob {
    parts: Box<[Box<str>]>,
}

impl Glob {
    fn new(parts: Vec<String>) -> Self {
        Glob {
            parts: parts.into_iter().map(String::into_boxed_str).collect(),
        }
    }

    fn from_bare(word: &str) -> Self {
        Glob::new(word.split('*').map(str::to_string).collect())
    }

    /// The value, when it has no wildcard.
    fn literal(&self) -> Option<&str> {
        match &*self.parts {
            [only] => Some(only),
            _ => None,
        }
    }

    fn matches(&self, s: &str) -> bool {
        let (first, last, middle) = match &*self.parts {
            [] => return s.is_empty(),
            [only] => return s == &**only,
            [first, middle @ .., last] => (first, last, middle),
        };
        if s.len() < first.len() + last.len() || !s.starts_with(&**first) || !s.ends_with(&**last) {
            return false;
        }
        let mut rest = &s[first.len()..s.len() - last.len()];
        for part in middle {
            match rest.find(&**part) {
                Some(i) => rest = &rest[i + part.len()..],
                None => return false,
            }
        }
        true
    }
}

impl MetricPattern {
    /// Parses a JSON filter pattern (`{ … }`).
    pub fn parse(text: &str) -> Result<MetricPattern, PatternError> {
        let mut p = Parser {
            chars: text.chars().collect(),
            pos: 0,
        };
        p.skip_ws();
        match p.peek() {
            Some('{') => p.pos += 1,
            None => return Err(p.err_here("empty pattern: expected '{'")),
            Some(c) => {
                return Err(p.err_here(format!(
                    "expected '{{' to open a JSON pattern, found {c:?} (only JSON patterns are supported)"
                )));
            }
        }
        let root = p.or(0)?;
        p.skip_ws();
        match p.peek() {
            Some('}') => p.pos += 1,
            Some(')') => return Err(p.err_here("unbalanced ')'")),
            None => return Err(p.err_here("expected '}' to close the pattern")),
            Some(c) => return Err(p.err_here(format!("expected '&&', '||' or '}}', found {c:?}"))),
        }
        p.skip_ws();
        if let Some(c) = p.peek() {
            return Err(p.err_here(format!("unexpected {c:?} after the closing '}}'")));
        }
        Ok(MetricPattern {
            text: text.into(),
            root,
        })
    }

    /// Whether the record matches.
    pub fn matches(&self, rec: &RootCache<'_, '_>) -> bool {
        self.root.matches(rec)
    }

    /// For the rule index: exact literal values one of which `$.eventName` must equal for
    /// the pattern to match (a necessary condition: && takes the smallest child set, || the
    /// union only when every branch has one; wildcard/negated/regex tests give none), or None.
    pub fn required_event_names(&self) -> Option<Vec<String>> {
        self.root.event_names()
    }

    /// Every FieldPath the pattern reads (the pack assigns RootCache slots through it).
    pub fn paths_mut(&mut self, f: &mut dyn FnMut(&mut FieldPath)) {
        self.root.paths_mut(f);
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Each test of the pattern with whether it held on `rec` (`rules explain`).
    pub fn explain(&self, rec: &RootCache<'_, '_>) -> Vec<(String, bool)> {
        fn walk(n: &Node, rec: &RootCache<'_, '_>, out: &mut Vec<(String, bool)>) {
            match n {
                Node::And(items) | Node::Or(items) => items.iter().for_each(|i| walk(i, rec, out)),
                Node::Test(t) => out.push((t.source.to_string(), t.matches(rec))),
            }
        }
        let mut out = Vec::new();
        walk(&self.root, rec, &mut out);
        out
    }
}

impl Node {
    fn matches(&self, rec: &RootCache<'_, '_>) -> bool {
        match self {
            Node::And(items) => items.iter().all(|n| n.matches(rec)),
            Node::Or(items) => items.iter().any(|n| n.matches(rec)),
            Node::Test(t) => t.matches(rec),
        }
    }

    fn event_names(&self) -> Option<Vec<String>> {
        match self {
            Node::Test(t) => t.event_name().map(|s| vec![s.to_string()]),
            Node::And(items) => items
                .iter()
                .filter_map(Node::event_names)
                .min_by_key(Vec::len),
            Node::Or(items) => {
                let mut out: Vec<String> = Vec::new();
                for item in items {
                    for name in item.event_names()? {
                        if !out.contains(&name) {
                            out.push(name);
                        }
                    }
                }
                Some(out)
            }
        }
    }

    fn paths_mut(&mut self, f: &mut dyn FnMut(&mut FieldPath)) {
        match self {
            Node::And(items) | Node::Or(items) => {
                for n in items {
                    n.paths_mut(f);
                }
            }
            Node::Test(t) => f(&mut t.sel.path),
        }
    }
}

impl Test {
    fn matches(&self, rec: &RootCache<'_, '_>) -> bool {
        match (self.sel.resolve(rec), &self.op) {
            (found, Op::NotExists) => found.is_none(),
            (Some(v), op) => op.holds(v),
            (None, _) => false,
        }
    }

    /// The literal of a plain `$.eventName = Literal` test.
    fn event_name(&self) -> Option<&str> {
        match (&*self.sel.steps, &self.op) {
            (
                [Step::Key(k)],
                Op::Text {
                    negate: false,
                    glob,
                },
            ) if &**k == "eventName" => glob.literal(),
            _ => None,
        }
    }
}

impl Selector {
    fn resolve<'t, 'i>(&self, rec: &RootCache<'t, 'i>) -> Option<Value<'t, 'i>> {
        if !self.path.present_cached(rec) {
            return None;
        }
        let mut v = rec.root();
        for step in self.steps.iter() {
            v = match step {
                Step::Key(k) => path::object_get(v, k)?,
                Step::Index(i) => v.as_array()?.get(*i)?,
            };
        }
        Some(v)
    }
}

/// The text string and number comparisons see: a string, a number's text, or
/// `true`/`false`; `None` for `null`, arrays and objects.
fn value_text<'a, 'i: 'a>(v: Value<'_, 'i>, buf: &'a mut [u8; 40]) -> Option<&'a str> {
    match path::as_str(v) {
        Some(s) => Some(s),
        None => scalar_text(v, buf),
    }
}

impl Op {
    fn holds(&self, v: Value<'_, '_>) -> bool {
        let mut buf = [0u8; 40];
        match self {
            Op::IsTrue => v.as_bool() == Some(true),
            Op::IsFalse => v.as_bool() == Some(false),
            Op::IsNull => v.as_null().is_some(),
            Op::NotExists => false,
            Op::Text { negate, glob } => {
                value_text(v, &mut buf).is_some_and(|t| glob.matches(t) != *negate)
            }
            Op::Regex { negate, re } => {
                value_text(v, &mut buf).is_some_and(|t| re.is_match(t) != *negate)
            }
            Op::Number { cmp, value, text } => {
                let is_string = path::as_str(v).is_some();
                let Some(t) = value_text(v, &mut buf) else {
                    return false;
                };
                let n = if is_string {
                    parse_number(t)
                } else if v.as_bool().is_some() {
                    None
                } else {
                    v.cast_f64()
                };
                let equal = || n == Some(*value) || t == &**text;
                match cmp {
                    Cmp::Eq => equal(),
                    Cmp::Ne => !equal(),
                    Cmp::Lt => n.is_some_and(|n| n < *value),
                    Cmp::Le => n.is_some_and(|n| n <= *value),
                    Cmp::Gt => n.is_some_and(|n| n > *value),
                    Cmp::Ge => n.is_some_and(|n| n >= *value),
                }
            }
        }
    }
}

/// A number as the guide writes them: an optional sign, digits with an optional
/// fraction (or a fraction alone), an optional exponent. Nothing else (`inf`, `0x1`).
fn parse_number(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let int_start = i;
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    let mut digits = i - int_start;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let frac_start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        digits += i - frac_start;
    }
    if digits == 0 {
        return None;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == exp_start {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    s.parse::<f64>().ok().filter(|n| n.is_finite())
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn is_bare_char(c: char) -> bool {
    !c.is_whitespace() && !"(){}\"&|=!<>%\\$".contains(c)
}

/// One node, or the `And`/`Or` of several.
fn join(mut items: Vec<Node>, make: fn(Vec<Node>) -> Node) -> Node {
    if items.len() == 1
        && let Some(only) = items.pop()
    {
        return only;
    }
    make(items)
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn err_at(&self, pos: usize, message: impl Into<String>) -> PatternError {
        PatternError {
            col: pos + 1,
            message: message.into(),
        }
    }

    fn err_here(&self, message: impl Into<String>) -> PatternError {
        self.err_at(self.pos, message)
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> String {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    fn or(&mut self, depth: usize) -> Result<Node, PatternError> {
        let mut items = vec![self.and(depth)?];
        loop {
            self.skip_ws();
            if self.peek() != Some('|') {
                break;
            }
            if self.peek_at(1) != Some('|') {
                return Err(self.err_here("expected '||' (a single '|' is not an operator)"));
            }
            self.pos += 2;
            items.push(self.and(depth)?);
        }
        Ok(join(items, Node::Or))
    }

    fn and(&mut self, depth: usize) -> Result<Node, PatternError> {
        let mut items = vec![self.primary(depth)?];
        loop {
            self.skip_ws();
            if self.peek() != Some('&') {
                break;
            }
            if self.peek_at(1) != Some('&') {
                return Err(self.err_here("expected '&&' (a single '&' is not an operator)"));
            }
            self.pos += 2;
            items.push(self.primary(depth)?);
        }
        Ok(join(items, Node::And))
    }

    fn primary(&mut self, depth: usize) -> Result<Node, PatternError> {
        self.skip_ws();
        match self.peek() {
            Some('(') => {
                let open = self.pos;
                if depth >= MAX_DEPTH {
                    return Err(
                        self.err_here(format!("parentheses nested more than {MAX_DEPTH} deep"))
                    );
                }
                self.pos += 1;
                let inner = self.or(depth + 1)?;
                self.skip_ws();
                match self.peek() {
                    Some(')') => {
                        self.pos += 1;
                        Ok(inner)
                    }
                    None | Some('}') => Err(self.err_at(open, "'(' opened here is never closed")),
                    Some(c) => {
                        Err(self.err_here(format!("expected '&&', '||' or ')', found {c:?}")))
                    }
                }
            }
            Some('$') => Ok(Node::Test(self.test()?)),
            None => Err(self.err_here(
                "expected a condition such as $.eventName = Name; the pattern ends here",
            )),
            Some(c) => Err(self.err_here(format!(
                "expected a condition starting with a selector such as $.eventName, found {c:?}"
            ))),
        }
    }

    fn selector(&mut self) -> Result<Selector, PatternError> {
        let dollar = self.pos;
        self.pos += 1;
        let mut steps = Vec::new();
        let mut text = String::new();
        loop {
            match self.peek() {
                Some('.') => {
                    self.pos += 1;
                    let at = self.pos;
                    let name = self.take_while(is_name_char);
                    if name.is_empty() {
                        return Err(self.err_at(
                            at,
                            "expected a property name (letters, digits, '-', '_') after '.'",
                        ));
                    }
                    if !text.is_empty() {
                        text.push('.');
                    }
                    text.push_str(&name);
                    steps.push(Step::Key(name.into()));
                }
                Some('[') => {
                    if steps.is_empty() {
                        return Err(self.err_here(
                            "an array index must follow a property name, as in $.resources[0]",
                        ));
                    }
                    self.pos += 1;
                    let at = self.pos;
                    if self.peek() == Some('*') {
                        return Err(self.err_at(
                            at,
                            "'[*]' is not CloudWatch syntax: an array index is a number",
                        ));
                    }
                    let digits = self.take_while(|c| c.is_ascii_digit());
                    if digits.is_empty() {
                        return Err(self.err_at(at, "expected an array index (digits) after '['"));
                    }
                    if self.peek() != Some(']') {
                        return Err(self.err_here("expected ']' to close the array index"));
                    }
                    self.pos += 1;
                    let idx: usize = digits
                        .parse()
                        .map_err(|_| self.err_at(at, "array index too large"))?;
                    text.push_str(&format!("[{idx}]"));
                    steps.push(Step::Index(idx));
                }
                _ => break,
            }
        }
        if steps.is_empty() {
            return Err(self.err_at(dollar + 1, "expected '.' and a property name after '$'"));
        }
        let path = FieldPath::parse(&text).map_err(|e| self.err_at(dollar, e.to_string()))?;
        Ok(Selector {
            path,
            steps: steps.into(),
        })
    }

    fn test(&mut self) -> Result<Test, PatternError> {
        let start = self.pos;
        let sel = self.selector()?;
        self.skip_ws();
        let at = self.pos;
        let op = match (self.peek(), self.peek_at(1)) {
            (Some('='), Some('=')) => return Err(self.err_here("unknown operator '==': use '='")),
            (Some('='), Some('~')) => {
                return Err(self
                    .err_here("unknown operator '=~': a regular expression is written = %regex%"));
            }
            (Some('='), _) => {
                self.pos += 1;
                self.eq_value(false, "=")?
            }
            (Some('!'), Some('=')) => {
                self.pos += 2;
                self.eq_value(true, "!=")?
            }
            (Some('<'), Some('>')) => return Err(self.err_here("unknown operator '<>': use '!='")),
            (Some('<'), Some('=')) => {
                self.pos += 2;
                self.num_value(Cmp::Le, "<=")?
            }
            (Some('<'), _) => {
                self.pos += 1;
                self.num_value(Cmp::Lt, "<")?
            }
            (Some('>'), Some('=')) => {
                self.pos += 2;
                self.num_value(Cmp::Ge, ">=")?
            }
            (Some('>'), _) => {
                self.pos += 1;
                self.num_value(Cmp::Gt, ">")?
            }
            (Some(c), _) if c.is_ascii_alphabetic() => self.keyword(at)?,
            (None, _) => {
                return Err(self.err_here(format!("expected {OPERATORS}; the pattern ends here")));
            }
            (Some(c), _) => {
                return Err(self.err_here(format!("expected {OPERATORS}, found {c:?}")));
            }
        };
        let source: String = self.chars[start..self.pos].iter().collect();
        Ok(Test {
            sel,
            op,
            source: source.trim().into(),
        })
    }

    fn keyword(&mut self, at: usize) -> Result<Op, PatternError> {
        let word = self.take_while(|c| c.is_ascii_alphabetic());
        let want = match word.to_ascii_uppercase().as_str() {
            "IS" => "TRUE, FALSE or NULL after IS",
            "NOT" => "EXISTS after NOT",
            "EXISTS" => {
                return Err(self.err_at(
                    at,
                    "unknown operator 'EXISTS': write '= *' for a field that is present or 'NOT EXISTS' for one that is not",
                ));
            }
            _ => {
                return Err(self.err_at(
                    at,
                    format!("unknown operator {word:?}: expected {OPERATORS}"),
                ));
            }
        };
        if !self.peek().is_some_and(char::is_whitespace) {
            return Err(self.err_here(format!("expected {want}")));
        }
        self.skip_ws();
        let second_at = self.pos;
        let second = self.take_while(|c| c.is_ascii_alphabetic());
        let op = match (want, second.to_ascii_uppercase().as_str()) {
            (_, "TRUE") if word.eq_ignore_ascii_case("IS") => Op::IsTrue,
            (_, "FALSE") if word.eq_ignore_ascii_case("IS") => Op::IsFalse,
            (_, "NULL") if word.eq_ignore_ascii_case("IS") => Op::IsNull,
            (_, "EXISTS") if word.eq_ignore_ascii_case("NOT") => Op::NotExists,
            _ => return Err(self.err_at(second_at, format!("expected {want}"))),
        };
        Ok(op)
    }

    fn eq_value(&mut self, negate: bool, op: &str) -> Result<Op, PatternError> {
        self.skip_ws();
        match self.peek() {
            Some('"') => Ok(Op::Text {
                negate,
                glob: Glob::new(self.quoted()?),
            }),
            Some('%') => Ok(Op::Regex {
                negate,
                re: self.regex()?,
            }),
            _ => {
                let at = self.pos;
                let word = self.take_while(is_bare_char);
                if word.is_empty() {
                    return Err(match self.peek() {
                        None => self.err_here(format!(
                            "expected a value after '{op}'; the pattern ends here"
                        )),
                        Some(c) => {
                            self.err_at(at, format!("expected a value after '{op}', found {c:?}"))
                        }
                    });
                }
                Ok(match parse_number(&word) {
                    Some(value) => Op::Number {
                        cmp: if negate { Cmp::Ne } else { Cmp::Eq },
                        value,
                        text: word.into(),
                    },
                    None => Op::Text {
                        negate,
                        glob: Glob::from_bare(&word),
                    },
                })
            }
        }
    }

    fn num_value(&mut self, cmp: Cmp, op: &str) -> Result<Op, PatternError> {
        self.skip_ws();
        let at = self.pos;
        match self.peek() {
            Some('"') => {
                return Err(
                    self.err_here(format!("'{op}' compares numbers; found a quoted string"))
                );
            }
            Some('%') => {
                return Err(self.err_here(format!(
                    "'{op}' compares numbers; found a regular expression"
                )));
            }
            _ => {}
        }
        let word = self.take_while(is_bare_char);
        if word.is_empty() {
            return Err(match self.peek() {
                None => self.err_here(format!(
                    "expected a number after '{op}'; the pattern ends here"
                )),
                Some(c) => self.err_here(format!("expected a number after '{op}', found {c:?}")),
            });
        }
        match parse_number(&word) {
            Some(value) => Ok(Op::Number {
                cmp,
                value,
                text: word.into(),
            }),
            None => Err(self.err_at(
                at,
                format!("expected a number after '{op}', found {word:?}"),
            )),
        }
    }

    /// A double-quoted string, split at its unescaped `*`s.
    fn quoted(&mut self) -> Result<Vec<String>, PatternError> {
        let open = self.pos;
        self.pos += 1;
        let mut parts = vec![String::new()];
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err_at(
                    open,
                    "unterminated string: the '\"' opened here is never closed",
                ));
            };
            self.pos += 1;
            match c {
                '"' => return Ok(parts),
                '*' => parts.push(String::new()),
                '\\' => match self.peek() {
                    Some(e @ ('"' | '\\' | '*')) => {
                        self.pos += 1;
                        push_char(&mut parts, e);
                    }
                    _ => push_char(&mut parts, '\\'),
                },
                c => push_char(&mut parts, c),
            }
        }
    }

    fn regex(&mut self) -> Result<Regex, PatternError> {
        let open = self.pos;
        self.pos += 1;
        let body = self.take_while(|c| c != '%');
        if self.peek().is_none() {
            return Err(self.err_at(
                open,
                "unterminated regular expression: the '%' opened here is never closed",
            ));
        }
        self.pos += 1;
        if body.is_empty() {
            return Err(self.err_at(open, "empty regular expression '%%'"));
        }
        RegexBuilder::new(&body)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| {
                let detail = e.to_string();
                let last = detail
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                self.err_at(open, format!("invalid regular expression %{body}%: {last}"))
            })
    }
}

fn push_char(parts: &mut [String], c: char) {
    if let Some(last) = parts.last_mut() {
        last.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::RecordParser;

    fn pat(text: &str) -> MetricPattern {
        MetricPattern::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// Whether `pattern` matches the JSON `record`.
    fn m(pattern: &str, record: &str) -> bool {
        let p = pat(pattern);
        let mut parser = RecordParser::new();
        parser.parse(record.as_bytes(), |r| {
            let root = r.expect("valid record JSON");
            p.matches(&RootCache::new(root))
        })
    }

    fn err(pattern: &str) -> PatternError {
        match MetricPattern::parse(pattern) {
            Ok(_) => panic!("{pattern} should not parse"),
            Err(e) => e,
        }
    }

    const RECORD: &str = r#"{
        "eventVersion": "1.08",
        "eventName": "ConsoleLogin",
        "eventSource": "signin.amazonaws.com",
        "eventType": "AwsConsoleSignIn",
        "sourceIPAddress": "198.51.100.7",
        "errorMessage": "Failed authentication",
        "recipientAccountId": "123456789012",
        "userIdentity": {"type": "IAMUser", "userName": "alice", "accountId": "123456789012"},
        "additionalEventData": {"MFAUsed": "No", "LoginTo": "https://console.aws.amazon.com/"},
        "responseElements": {"ConsoleLogin": "Failure"},
        "requestParameters": null,
        "readOnly": false,
        "managementEvent": true,
        "bytes": 2048,
        "latency": -12.5,
        "ratio": 0.25,
        "big": 1.5e3,
        "sizeText": "4096",
        "resources": [
            {"ARN": "arn:aws:iam::123456789012:user/alice", "type": "AWS::IAM::User"},
            {"ARN": "arn:aws:s3:::bucket", "type": "AWS::S3::Bucket"}
        ],
        "tags": ["prod", "pci"],
        "matrix": [[0, 1, 2], [4, 5, 6]]
    }"#;

    #[test]
    fn equals_quoted_and_bare_strings() {
        assert!(m(r#"{ $.eventName = "ConsoleLogin" }"#, RECORD));
        assert!(m("{ $.eventName = ConsoleLogin }", RECORD));
        assert!(m("{$.eventName=ConsoleLogin}", RECORD));
        assert!(m("{ $.eventSource = signin.amazonaws.com }", RECORD));
        assert!(m(r#"{ $.userIdentity.type = "IAMUser" }"#, RECORD));
        assert!(!m(r#"{ $.eventName = "GetObject" }"#, RECORD));
        assert!(!m("{ $.eventName = ConsoleLogi }", RECORD));
        assert!(!m(r#"{ $.userIdentity.type = "Root" }"#, RECORD));
    }

    #[test]
    fn string_matching_is_case_sensitive() {
        assert!(!m("{ $.eventName = consolelogin }", RECORD));
        assert!(!m(
            r#"{ $.errorMessage = "failed authentication" }"#,
            RECORD
        ));
        assert!(m("{ $.eventName != consolelogin }", RECORD));
        assert!(!m("{ $.eventName = %consolelogin% }", RECORD));
    }

    #[test]
    fn not_equals_on_present_fields() {
        assert!(m(r#"{ $.additionalEventData.MFAUsed != "Yes" }"#, RECORD));
        assert!(!m(r#"{ $.additionalEventData.MFAUsed != "No" }"#, RECORD));
        assert!(m("{ $.sourceIPAddress != 123.123.* }", RECORD));
        assert!(!m("{ $.sourceIPAddress != 198.51.* }", RECORD));
    }

    #[test]
    fn missing_field_makes_every_comparison_false() {
        for op in [
            r#"= "x""#,
            r#"!= "x""#,
            "= *",
            "!= *",
            "= 5",
            "!= 5",
            "< 5",
            "> 5",
            "<= 5",
            ">= 5",
            "= %x%",
            "!= %x%",
            "IS TRUE",
            "IS FALSE",
            "IS NULL",
        ] {
            let p = format!("{{ $.errorCode {op} }}");
            assert!(!m(&p, RECORD), "{p}");
            let nested = format!("{{ $.userIdentity.invokedBy {op} }}");
            assert!(!m(&nested, RECORD), "{nested}");
        }
        assert!(m("{ $.errorCode NOT EXISTS }", RECORD));
        assert!(m("{ $.userIdentity.invokedBy NOT EXISTS }", RECORD));
        assert!(!m("{ $.userIdentity.type NOT EXISTS }", RECORD));
    }

    #[test]
    fn numeric_operators() {
        // JSON number 2048
        assert!(m("{ $.bytes = 2048 }", RECORD));
        assert!(!m("{ $.bytes = 2049 }", RECORD));
        assert!(m("{ $.bytes != 2049 }", RECORD));
        assert!(!m("{ $.bytes != 2048 }", RECORD));
        assert!(m("{ $.bytes > 2000 }", RECORD));
        assert!(!m("{ $.bytes > 2048 }", RECORD));
        assert!(m("{ $.bytes >= 2048 }", RECORD));
        assert!(!m("{ $.bytes >= 2049 }", RECORD));
        assert!(m("{ $.bytes < 1e4 }", RECORD));
        assert!(!m("{ $.bytes < 10e-3 }", RECORD));
        assert!(m("{ $.bytes <= 2048.0 }", RECORD));
        assert!(!m("{ $.bytes <= 2047.9 }", RECORD));
        assert!(m("{ $.bytes > +1000 }", RECORD));
        // negatives and decimals
        assert!(m("{ $.latency = -12.5 }", RECORD));
        assert!(m("{ $.latency < -12 }", RECORD));
        assert!(!m("{ $.latency > -12 }", RECORD));
        assert!(m("{ $.latency >= -1.25e1 }", RECORD));
        assert!(m("{ $.ratio < .3 }", RECORD));
        assert!(m("{ $.big = 1500 }", RECORD));
        assert!(m("{ $.big = 15E2 }", RECORD));
        // a string holding a number compares numerically
        assert!(m("{ $.sizeText > 4000 }", RECORD));
        assert!(!m("{ $.sizeText < 4000 }", RECORD));
        assert!(m("{ $.sizeText = 4096.0 }", RECORD));
        assert!(m("{ $.recipientAccountId = 123456789012 }", RECORD));
        // a string that is not a number is never < or >, but is != a number
        assert!(!m("{ $.eventName > 0 }", RECORD));
        assert!(!m("{ $.eventName < 0 }", RECORD));
        assert!(m("{ $.eventName != 0 }", RECORD));
        // booleans and null are not numbers
        assert!(!m("{ $.readOnly < 1 }", RECORD));
        assert!(!m("{ $.requestParameters >= 0 }", RECORD));
        assert!(!m("{ $.requestParameters != 0 }", RECORD));
    }

    #[test]
    fn numbers_and_booleans_against_string_values() {
        assert!(m(r#"{ $.bytes = "2048" }"#, RECORD));
        assert!(m(r#"{ $.bytes = "20*" }"#, RECORD));
        assert!(m("{ $.bytes = 2*8 }", RECORD));
        assert!(!m(r#"{ $.bytes = "3*" }"#, RECORD));
        assert!(m(r#"{ $.bytes != "3*" }"#, RECORD));
        assert!(m("{ $.bytes = %^20[0-9]+$% }", RECORD));
        assert!(m("{ $.managementEvent = true }", RECORD));
        assert!(!m("{ $.managementEvent = false }", RECORD));
        assert!(m("{ $.readOnly != true }", RECORD));
        // null is matched by IS NULL only
        assert!(!m("{ $.requestParameters = * }", RECORD));
        assert!(!m(r#"{ $.requestParameters = "null" }"#, RECORD));
        assert!(!m(r#"{ $.requestParameters != "x" }"#, RECORD));
    }

    #[test]
    fn wildcards_at_start_middle_and_end() {
        assert!(m(r#"{ $.eventName = "*Login" }"#, RECORD));
        assert!(m(r#"{ $.eventName = "Console*" }"#, RECORD));
        assert!(m(r#"{ $.eventName = "Con*Login" }"#, RECORD));
        assert!(m(r#"{ $.eventName = "*sole*" }"#, RECORD));
        assert!(m(r#"{ $.eventName = "C*n*L*n" }"#, RECORD));
        assert!(m(r#"{ $.eventName = "*" }"#, RECORD));
        assert!(m(r#"{ $.eventName = "ConsoleLogin*" }"#, RECORD));
        assert!(m(r#"{ $.eventName = "**Console**Login**" }"#, RECORD));
        assert!(m("{ $.sourceIPAddress = 198.51.*.7 }", RECORD));
        assert!(!m(r#"{ $.eventName = "*Logout" }"#, RECORD));
        assert!(!m(r#"{ $.eventName = "Logout*" }"#, RECORD));
        assert!(!m(r#"{ $.eventName = "Con*Logout" }"#, RECORD));
        // prefix and suffix must not overlap
        assert!(!m(r#"{ $.eventName = "ConsoleLogin*Login" }"#, RECORD));
        // an escaped star is a literal star
        assert!(m(r#"{ $.v = "a\*b" }"#, r#"{"v":"a*b"}"#));
        assert!(!m(r#"{ $.v = "a\*b" }"#, r#"{"v":"axxb"}"#));
        assert!(m(r#"{ $.v = "say \"hi\"" }"#, r#"{"v":"say \"hi\""}"#));
        assert!(m(r#"{ $.v = "" }"#, r#"{"v":""}"#));
        assert!(!m(r#"{ $.v = "" }"#, r#"{"v":"x"}"#));
    }

    #[test]
    fn is_true_is_false_is_null_not_exists() {
        assert!(m("{ $.managementEvent IS TRUE }", RECORD));
        assert!(!m("{ $.managementEvent IS FALSE }", RECORD));
        assert!(m("{ $.readOnly IS FALSE }", RECORD));
        assert!(!m("{ $.readOnly IS TRUE }", RECORD));
        assert!(m("{ $.readOnly is false }", RECORD));
        // only JSON booleans, not strings spelling them
        assert!(!m("{ $.flag IS TRUE }", r#"{"flag":"true"}"#));
        assert!(m("{ $.requestParameters IS NULL }", RECORD));
        assert!(!m("{ $.eventName IS NULL }", RECORD));
        assert!(!m("{ $.requestParameters NOT EXISTS }", RECORD));
        assert!(m("{ $.nothing NOT EXISTS }", RECORD));
        assert!(!m("{ $.eventName NOT EXISTS }", RECORD));
        assert!(!m("{ $.resources NOT EXISTS }", RECORD));
        assert!(m("{ $.resources[5] NOT EXISTS }", RECORD));
    }

    #[test]
    fn array_index_and_nested_index() {
        assert!(m(
            r#"{ $.resources[0].ARN = "arn:aws:iam::123456789012:user/alice" }"#,
            RECORD
        ));
        assert!(m(r#"{ $.resources[1].type = "AWS::S3::Bucket" }"#, RECORD));
        assert!(!m(r#"{ $.resources[0].type = "AWS::S3::Bucket" }"#, RECORD));
        assert!(!m(r#"{ $.resources[2].type = "*" }"#, RECORD));
        assert!(m("{ $.tags[1] = pci }", RECORD));
        assert!(!m("{ $.tags[0] = pci }", RECORD));
        assert!(m("{ $.matrix[1][2] = 6 }", RECORD));
        assert!(m("{ $.matrix[0][1] < 2 }", RECORD));
        assert!(!m("{ $.matrix[0][1] = 6 }", RECORD));
        // an index on an object, or a name on an array, reaches nothing
        assert!(!m("{ $.userIdentity[0] = * }", RECORD));
        assert!(m("{ $.userIdentity[0] NOT EXISTS }", RECORD));
        assert!(!m(r#"{ $.resources.ARN = "*" }"#, RECORD));
    }

    #[test]
    fn selector_reaching_an_array_or_object_never_matches() {
        let j = r#"{"users":[1,2,3],"obj":{"a":1}}"#;
        assert!(!m("{ $.users = 1 }", j));
        assert!(!m("{ $.users != 1 }", j));
        assert!(!m("{ $.users = * }", j));
        assert!(!m("{ $.users > 0 }", j));
        assert!(!m("{ $.obj = * }", j));
        assert!(!m("{ $.obj != x }", j));
        assert!(!m("{ $.obj IS NULL }", j));
        assert!(m("{ $.users[0] = 1 }", j));
    }

    #[test]
    fn regex_values() {
        assert!(m("{ $.eventName = %Login% }", RECORD));
        assert!(m("{ $.eventName = %^Console% }", RECORD));
        assert!(!m("{ $.eventName = %^Login% }", RECORD));
        assert!(m("{ $.eventName != %^Login% }", RECORD));
        assert!(!m("{ $.eventName != %Login$% }", RECORD));
        assert!(m(r"{ $.sourceIPAddress = %198\.51\.100\.[0-9]+% }", RECORD));
        assert!(m(
            r"{ ($.eventName = %Delete.*Acl%) && ($.errorCode NOT EXISTS) }",
            r#"{"eventName":"DeleteNetworkAcl"}"#
        ));
    }

    /// The compound examples of the CloudWatch Logs guide, against its JSON.
    #[test]
    fn nested_parentheses_and_precedence() {
        let j = r#"{
            "user": {"id": 1, "email": "John.Stiles@example.com"},
            "users": [
                {"id": 2, "email": "John.Doe@example.com"},
                {"id": 3, "email": "Jane.Doe@example.com"}
            ],
            "actions": ["GET", "PUT", "DELETE"],
            "coordinates": [[0, 1, 2], [4, 5, 6], [7, 8, 9]]
        }"#;
        assert!(m(
            r#"{ ($.user.id = 1) && ($.users[0].email = "John.Doe@example.com") }"#,
            j
        ));
        assert!(!m(
            r#"{ ($.user.id = 2 && $.users[0].email = "nonmatch") || $.actions[2] = "GET" }"#,
            j
        ));
        // && binds tighter than ||
        assert!(m(
            r#"{ $.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = nonmatch && $.actions[2] = nomatch }"#,
            j
        ));
        assert!(!m(
            r#"{ ($.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = nonmatch) && $.actions[2] = nomatch }"#,
            j
        ));
        // a || b && c is a || (b && c), also with the true branch last
        assert!(m("{ $.user.id = 9 && $.user.id = 9 || $.user.id = 1 }", j));
        assert!(!m(
            "{ $.user.id = 9 && ($.user.id = 9 || $.user.id = 1) }",
            j
        ));
        assert!(m(
            "{ ((($.user.id = 1)) && (($.actions[0] = GET) || ($.actions[0] = PUT))) }",
            j
        ));
        assert!(!m(
            "{ ((($.user.id = 1)) && (($.actions[0] = PUT) || (($.actions[1] = GET)))) }",
            j
        ));
    }

    /// The other examples of the CloudWatch Logs guide, against its JSON.
    #[test]
    fn cloudwatch_guide_examples() {
        let j = r#"{
            "eventType": "UpdateTrail",
            "sourceIPAddress": "111.111.111.111",
            "arrayKey": ["value", "another value"],
            "objectList": [{"name": "a", "id": 1}, {"name": "b", "id": 2}],
            "SomeObject": null,
            "ThisFlag": true
        }"#;
        for p in [
            r#"{ $.eventType = "UpdateTrail" }"#,
            "{ $.sourceIPAddress != 123.123.* }",
            r#"{ $.arrayKey[0] = "value" }"#,
            "{ $.objectList[1].id = 2 }",
            "{ $.SomeObject IS NULL }",
            "{ $.SomeOtherObject NOT EXISTS }",
            "{ $.ThisFlag IS TRUE }",
            "{$.eventType = UpdateTrail || $.eventType = CreateTrail }",
        ] {
            assert!(m(p, j), "{p}");
        }
        for p in [
            r#"{ $.arrayKey[1] = "value" }"#,
            "{ $.objectList[0].id = 2 }",
            "{ $.SomeObject NOT EXISTS }",
            "{ $.ThisFlag IS FALSE }",
        ] {
            assert!(!m(p, j), "{p}");
        }
    }

    const SIGNIN_FAILURES: &str =
        r#"{ ($.eventName = "ConsoleLogin") && ($.errorMessage = "Failed authentication") }"#;
    const NETWORK_ACL: &str = "{ ($.eventName = CreateNetworkAcl) || ($.eventName = CreateNetworkAclEntry) || ($.eventName = DeleteNetworkAcl) || ($.eventName = DeleteNetworkAclEntry) || ($.eventName = ReplaceNetworkAclEntry) || ($.eventName = ReplaceNetworkAclAssociation) }";
    const SECURITY_GROUP: &str = "{ ($.eventName = AuthorizeSecurityGroupIngress) || ($.eventName = AuthorizeSecurityGroupEgress) || ($.eventName = RevokeSecurityGroupIngress) || ($.eventName = RevokeSecurityGroupEgress) || ($.eventName = CreateSecurityGroup) || ($.eventName = DeleteSecurityGroup) }";
    const ACCESS_DENIED: &str =
        r#"{ ($.errorCode = "*UnauthorizedOperation") || ($.errorCode = "AccessDenied*") }"#;
    const ROOT_USAGE: &str = r#"{ $.userIdentity.type = "Root" && $.userIdentity.invokedBy NOT EXISTS && $.eventType != "AwsServiceEvent" }"#;
    const NO_MFA: &str =
        r#"{ ($.eventName = "ConsoleLogin") && ($.additionalEventData.MFAUsed != "Yes") }"#;

    #[test]
    fn guide_console_signin_failures() {
        assert!(m(SIGNIN_FAILURES, RECORD));
        let ok = r#"{"eventName":"ConsoleLogin","responseElements":{"ConsoleLogin":"Success"}}"#;
        assert!(!m(SIGNIN_FAILURES, ok));
        let other = r#"{"eventName":"AssumeRole","errorMessage":"Failed authentication"}"#;
        assert!(!m(SIGNIN_FAILURES, other));
    }

    #[test]
    fn guide_network_acl_changes() {
        for name in [
            "CreateNetworkAcl",
            "CreateNetworkAclEntry",
            "DeleteNetworkAcl",
            "DeleteNetworkAclEntry",
            "ReplaceNetworkAclEntry",
            "ReplaceNetworkAclAssociation",
        ] {
            let rec = format!(r#"{{"eventName":"{name}","eventSource":"ec2.amazonaws.com"}}"#);
            assert!(m(NETWORK_ACL, &rec), "{name}");
        }
        for name in ["DescribeNetworkAcls", "CreateNetworkAc", "createNetworkAcl"] {
            let rec = format!(r#"{{"eventName":"{name}"}}"#);
            assert!(!m(NETWORK_ACL, &rec), "{name}");
        }
        assert!(!m(NETWORK_ACL, RECORD));
    }

    #[test]
    fn guide_security_group_changes() {
        for name in [
            "AuthorizeSecurityGroupIngress",
            "AuthorizeSecurityGroupEgress",
            "RevokeSecurityGroupIngress",
            "RevokeSecurityGroupEgress",
            "CreateSecurityGroup",
            "DeleteSecurityGroup",
        ] {
            let rec = format!(r#"{{"eventName":"{name}"}}"#);
            assert!(m(SECURITY_GROUP, &rec), "{name}");
        }
        for name in ["DescribeSecurityGroups", "ModifySecurityGroupRules"] {
            let rec = format!(r#"{{"eventName":"{name}"}}"#);
            assert!(!m(SECURITY_GROUP, &rec), "{name}");
        }
    }

    #[test]
    fn guide_security_group_with_extra_parenthesis_reports_its_column() {
        let broken = SECURITY_GROUP.replacen("Ingress)", "Ingress))", 1);
        let e = err(&broken);
        // `{ (` then `$.eventName = AuthorizeSecurityGroupIngress` (cols 4..46), `)` at 47
        assert_eq!(e.col, 48, "{e}");
        assert_eq!(e.message, "unbalanced ')'");
        assert_eq!(e.to_string(), "column 48: unbalanced ')'");
        let missing = SECURITY_GROUP.replacen(
            "($.eventName = CreateSecurityGroup)",
            "($.eventName = CreateSecurityGroup",
            1,
        );
        let e = err(&missing);
        let open = missing
            .find("($.eventName = CreateSecurityGroup")
            .map(|i| i + 1);
        assert_eq!(Some(e.col), open, "{e}");
        // the group swallows the rest of the pattern, up to the closing brace
        assert_eq!(e.message, "'(' opened here is never closed");
    }

    #[test]
    fn unauthorized_calls_root_usage_and_console_login_without_mfa() {
        assert!(m(
            ACCESS_DENIED,
            r#"{"errorCode":"Client.UnauthorizedOperation"}"#
        ));
        assert!(m(ACCESS_DENIED, r#"{"errorCode":"AccessDeniedException"}"#));
        assert!(m(ACCESS_DENIED, r#"{"errorCode":"AccessDenied"}"#));
        assert!(!m(ACCESS_DENIED, r#"{"errorCode":"ThrottlingException"}"#));
        assert!(!m(ACCESS_DENIED, r#"{"errorCode":"accessdenied"}"#));
        assert!(!m(ACCESS_DENIED, RECORD));

        let root = r#"{"eventName":"ListBuckets","eventType":"AwsApiCall","userIdentity":{"type":"Root","arn":"arn:aws:iam::123456789012:root"}}"#;
        assert!(m(ROOT_USAGE, root));
        let by_service = r#"{"eventType":"AwsApiCall","userIdentity":{"type":"Root","invokedBy":"support.amazonaws.com"}}"#;
        assert!(!m(ROOT_USAGE, by_service));
        let service_event = r#"{"eventType":"AwsServiceEvent","userIdentity":{"type":"Root"}}"#;
        assert!(!m(ROOT_USAGE, service_event));
        // eventType missing: `!=` on a missing field is false
        assert!(!m(ROOT_USAGE, r#"{"userIdentity":{"type":"Root"}}"#));
        assert!(!m(ROOT_USAGE, RECORD));

        assert!(m(NO_MFA, RECORD));
        let with_mfa = r#"{"eventName":"ConsoleLogin","additionalEventData":{"MFAUsed":"Yes"}}"#;
        assert!(!m(NO_MFA, with_mfa));
        // federated sign-ins carry no MFAUsed: missing makes `!=` false
        assert!(!m(NO_MFA, r#"{"eventName":"ConsoleLogin"}"#));
    }

    #[test]
    fn required_event_names_of_the_guide_patterns() {
        assert_eq!(
            pat(SIGNIN_FAILURES).required_event_names(),
            Some(vec!["ConsoleLogin".to_string()])
        );
        assert_eq!(
            pat(NETWORK_ACL).required_event_names(),
            Some(
                [
                    "CreateNetworkAcl",
                    "CreateNetworkAclEntry",
                    "DeleteNetworkAcl",
                    "DeleteNetworkAclEntry",
                    "ReplaceNetworkAclEntry",
                    "ReplaceNetworkAclAssociation",
                ]
                .map(String::from)
                .to_vec()
            )
        );
        assert_eq!(
            pat(SECURITY_GROUP).required_event_names(),
            Some(
                [
                    "AuthorizeSecurityGroupIngress",
                    "AuthorizeSecurityGroupEgress",
                    "RevokeSecurityGroupIngress",
                    "RevokeSecurityGroupEgress",
                    "CreateSecurityGroup",
                    "DeleteSecurityGroup",
                ]
                .map(String::from)
                .to_vec()
            )
        );
        assert_eq!(
            pat(NO_MFA).required_event_names(),
            Some(vec!["ConsoleLogin".to_string()])
        );
    }

    #[test]
    fn required_event_names_none_and_and_takes_the_smallest() {
        for p in [
            "{ ($.eventName = CreateTrail) || ($.errorCode = AccessDenied) }",
            ACCESS_DENIED,
            ROOT_USAGE,
            "{ $.eventName = Create* }",
            "{ $.eventName != CreateTrail }",
            "{ $.eventName = %CreateTrail% }",
            "{ $.eventName NOT EXISTS }",
            "{ $.eventName = 12 }",
            "{ $.requestParameters.eventName = CreateTrail }",
            "{ $.EventName = CreateTrail }",
        ] {
            assert_eq!(pat(p).required_event_names(), None, "{p}");
        }
        let and = pat(
            "{ ($.eventName = A || $.eventName = B || $.eventName = C) && ($.eventName = B || $.eventName = C) && $.x = 1 }",
        );
        assert_eq!(
            and.required_event_names(),
            Some(vec!["B".to_string(), "C".to_string()])
        );
        let dup = pat("{ $.eventName = A || ($.eventName = B || $.eventName = A) }");
        assert_eq!(
            dup.required_event_names(),
            Some(vec!["A".to_string(), "B".to_string()])
        );
        let quoted = pat(r#"{ $.eventName = "Console\*Login" }"#);
        assert_eq!(
            quoted.required_event_names(),
            Some(vec!["Console*Login".to_string()])
        );
    }

    #[test]
    fn parse_errors_name_the_column() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 1, "empty pattern: expected '{'"),
            ("$.a = b", 1, "expected '{' to open a JSON pattern"),
            ("{ $.a = b", 10, "expected '}' to close the pattern"),
            ("{ $.a = b }}", 12, "unexpected '}' after the closing '}'"),
            ("{ $.a = b } x", 13, "unexpected 'x' after the closing '}'"),
            ("{ ($.a = b }", 3, "'(' opened here is never closed"),
            ("{ (($.a = b) }", 3, "'(' opened here is never closed"),
            ("{ ($.a = b", 3, "'(' opened here is never closed"),
            ("{ $.a = b) }", 10, "unbalanced ')'"),
            ("{ ($.a = b)) }", 12, "unbalanced ')'"),
            ("{ $.a = b c }", 11, "expected '&&', '||' or '}', found 'c'"),
            (
                "{ ($.a = b c) }",
                12,
                "expected '&&', '||' or ')', found 'c'",
            ),
            ("{ $.a = \"abc }", 9, "unterminated string"),
            ("{ $.a = %abc }", 9, "unterminated regular expression"),
            ("{ $.a = %% }", 9, "empty regular expression"),
            ("{ $.a = %[% }", 9, "invalid regular expression %[%"),
            ("{ $.a == b }", 7, "unknown operator '=='"),
            ("{ $.a <> 1 }", 7, "unknown operator '<>'"),
            ("{ $.a =~ b }", 7, "unknown operator '=~'"),
            (
                "{ $.a ~ b }",
                7,
                "expected an operator (=, !=, <, <=, >, >=, IS TRUE, IS FALSE, IS NULL or NOT EXISTS), found '~'",
            ),
            ("{ $.a ! b }", 7, "expected an operator (=, !="),
            ("{ $.a LIKE b }", 7, "unknown operator \"LIKE\""),
            ("{ $.a EXISTS }", 7, "unknown operator 'EXISTS'"),
            (
                "{ $.a IS MAYBE }",
                10,
                "expected TRUE, FALSE or NULL after IS",
            ),
            (
                "{ $.a IS NOT NULL }",
                10,
                "expected TRUE, FALSE or NULL after IS",
            ),
            ("{ $.a NOT THERE }", 11, "expected EXISTS after NOT"),
            ("{ $.a ISTRUE }", 7, "unknown operator \"ISTRUE\""),
            ("{ $.a }", 7, "expected an operator (=, !="),
            ("{ $.a", 6, "the pattern ends here"),
            ("{ $.a = }", 9, "expected a value after '=', found '}'"),
            (
                "{ $.a != ",
                10,
                "expected a value after '!='; the pattern ends here",
            ),
            (
                "{ $.a > abc }",
                9,
                "expected a number after '>', found \"abc\"",
            ),
            (
                "{ $.a < \"5\" }",
                9,
                "'<' compares numbers; found a quoted string",
            ),
            (
                "{ $.a >= %5% }",
                10,
                "'>=' compares numbers; found a regular expression",
            ),
            ("{ $.a < }", 9, "expected a number after '<', found '}'"),
            ("{ $ = b }", 4, "expected '.' and a property name after '$'"),
            ("{ $. = b }", 5, "expected a property name"),
            ("{ $.a. = b }", 7, "expected a property name"),
            (
                "{ $[0] = b }",
                4,
                "an array index must follow a property name",
            ),
            ("{ $.a[*] = b }", 7, "'[*]' is not CloudWatch syntax"),
            (
                "{ $.a[] = b }",
                7,
                "expected an array index (digits) after '['",
            ),
            ("{ $.a[1 = b }", 8, "expected ']' to close the array index"),
            (
                "{ $.a[99999999999999999999999] = b }",
                7,
                "array index too large",
            ),
            (
                "{ a = b }",
                3,
                "expected a condition starting with a selector",
            ),
            (
                "{ }",
                3,
                "expected a condition starting with a selector such as $.eventName, found '}'",
            ),
            ("{ () }", 4, "found ')'"),
            (
                "{ $.a = b & $.c = d }",
                11,
                "expected '&&' (a single '&' is not an operator)",
            ),
            (
                "{ $.a = b | $.c = d }",
                11,
                "expected '||' (a single '|' is not an operator)",
            ),
            ("{ $.a = b && }", 14, "found '}'"),
            ("{ $.a = b || }", 14, "found '}'"),
            ("{ $.a = b AND $.c = d }", 11, "found 'A'"),
            ("{ $.a = x\\y }", 10, "found '\\\\'"),
            ("{ $.é = b }", 5, "expected a property name"),
            ("{ $.naïve = b }", 7, "found 'ï'"),
            ("{ \"é\" = $.a }", 3, "found '\"'"),
        ];
        for (text, col, want) in cases {
            let e = err(text);
            assert_eq!(e.col, *col, "{text:?}: {e}");
            assert!(e.message.contains(want), "{text:?}: {e} (wanted {want:?})");
        }
        // columns count characters, not bytes
        let e = err("{ $.a = \"ééé\" x }");
        assert_eq!(e.col, 15, "{e}");
    }

    #[test]
    fn nesting_is_limited() {
        let ok = format!("{{ {}$.a = 1{} }}", "(".repeat(64), ")".repeat(64));
        assert!(m(&ok, r#"{"a":1}"#));
        let deep = format!(
            "{{ {}$.a = 1{} }}",
            "(".repeat(100_000),
            ")".repeat(100_000)
        );
        let e = err(&deep);
        assert_eq!(e.col, 67, "{e}");
        assert!(e.message.contains("nested more than 64 deep"), "{e}");
    }

    #[test]
    fn random_and_truncated_input_never_panics() {
        // xorshift64*, fixed seed: the same inputs every run
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_F491_4F6C_DD1D)
        };
        let alphabet: Vec<char> = "{}()[]$.=!<>&|%\"\\* \t\naZ09_-+eE:/éISNOTRUEFALSXe"
            .chars()
            .collect();
        let tokens = [
            "{",
            "}",
            "(",
            ")",
            "$.",
            "$.eventName",
            "[0]",
            "[",
            "]",
            " = ",
            " != ",
            " < ",
            " >= ",
            " && ",
            " || ",
            "\"",
            "\"x*y\"",
            "%a.*%",
            "%",
            "*",
            "-1.5e3",
            " IS TRUE",
            " IS ",
            " NOT EXISTS",
            "NOT",
            "ConsoleLogin",
            "\\",
            "é",
            " ",
        ];
        let mut inputs: Vec<String> = Vec::new();
        for seed in [
            SIGNIN_FAILURES,
            NETWORK_ACL,
            SECURITY_GROUP,
            ACCESS_DENIED,
            ROOT_USAGE,
            NO_MFA,
            r#"{ $.a[0][1] >= -1e-3 || $.b = %x|y% && ($.c IS NULL) }"#,
            r#"{ $.v = "a\*b\"c\\" }"#,
        ] {
            let chars: Vec<char> = seed.chars().collect();
            for n in 0..=chars.len() {
                inputs.push(chars[..n].iter().collect());
                inputs.push(chars[n..].iter().collect());
                let mut dropped = chars.clone();
                if n < dropped.len() {
                    dropped.remove(n);
                }
                inputs.push(dropped.into_iter().collect());
            }
        }
        for _ in 0..3000 {
            let len = (next() % 40) as usize;
            let s: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            inputs.push(s);
            let k = (next() % 12) as usize;
            let mut t = String::from("{ ");
            for _ in 0..k {
                t.push_str(tokens[(next() % tokens.len() as u64) as usize]);
            }
            t.push_str(" }");
            inputs.push(t);
        }
        let records = [
            RECORD,
            r#"{"a":[[1,2],{"b":null}],"eventName":"x","v":"a*b\"c\\","c":null}"#,
            "[1,2,3]",
            "\"just a string\"",
            "null",
        ];
        let mut parser = RecordParser::new();
        let mut parsed = 0;
        for input in &inputs {
            let Ok(mut p) = MetricPattern::parse(input) else {
                continue;
            };
            parsed += 1;
            assert_eq!(p.as_str(), input);
            let _ = p.required_event_names();
            let mut slot = 0u8;
            p.paths_mut(&mut |fp| {
                fp.set_slot(slot % 32);
                slot = slot.wrapping_add(1);
            });
            for rec in records {
                parser.parse(rec.as_bytes(), |r| {
                    let root = r.expect("valid record JSON");
                    let _ = p.matches(&RootCache::new(root));
                });
            }
        }
        assert!(parsed > 100, "only {parsed} inputs parsed");
    }

    #[test]
    fn cached_slots_agree_with_uncached_lookups() {
        let patterns = [
            SIGNIN_FAILURES,
            NO_MFA,
            ROOT_USAGE,
            "{ $.resources[1].type = \"AWS::S3::Bucket\" && $.userIdentity.userName = alice }",
            "{ $.errorCode NOT EXISTS && $.tags[0] = prod }",
        ];
        let mut parser = RecordParser::new();
        for text in patterns {
            let plain = pat(text);
            let mut slotted = plain.clone();
            let mut keys: Vec<String> = Vec::new();
            slotted.paths_mut(&mut |fp| {
                let Some(k) = fp.first_key() else { return };
                let i = match keys.iter().position(|x| x == k) {
                    Some(i) => i,
                    None => {
                        keys.push(k.to_string());
                        keys.len() - 1
                    }
                };
                fp.set_slot(i as u8);
            });
            assert!(!keys.is_empty());
            parser.parse(RECORD.as_bytes(), |r| {
                let root = r.expect("valid record JSON");
                let cache = RootCache::new(root);
                let want = plain.matches(&RootCache::new(root));
                for _ in 0..2 {
                    assert_eq!(slotted.matches(&cache), want, "{text}");
                }
            });
        }
    }

    #[test]
    fn as_str_is_the_pattern_as_written() {
        let text = "  {  $.eventName=ConsoleLogin  }\n";
        assert_eq!(pat(text).as_str(), text);
        assert!(m(text, RECORD));
    }

    #[test]
    fn key_lookup_falls_back_to_a_case_insensitive_key() {
        // documented difference from CloudWatch: exact key first, then ASCII case-folded
        assert!(m("{ $.EventName = ConsoleLogin }", RECORD));
        let both = r#"{"eventName":"exact","EventName":"folded"}"#;
        assert!(m("{ $.eventName = exact }", both));
        assert!(m("{ $.EventName = folded }", both));
    }
}
