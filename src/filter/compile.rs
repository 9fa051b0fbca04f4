//! sqlparser's AST → [`Node`]s, with the column types checked and literals converted
//! to the type they are compared with (as DuckDB casts a string literal).

use sqlparser::ast::{
    BinaryOperator, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, Ident,
    InTarget, ObjectNamePart, Spanned, UnaryOperator, Value as SqlValue,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

use super::columns::{self, Kind, Unresolved};
use super::eval::{CmpOp, Lit, Node, Step, StrFn};
use super::like::Pattern;

/// Most tokens in one expression. It bounds how deep the parsed tree can be, and so
/// the recursion of everything that walks it.
const MAX_TOKENS: usize = 1024;
/// Most nesting levels the compiler follows (AND/OR chains are flattened and do not
/// count).
const MAX_DEPTH: usize = 64;

/// The static type of an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Str,
    Bool,
    Num,
    Ts,
    Struct,
    Null,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Str => "VARCHAR",
            Ty::Bool => "BOOLEAN",
            Ty::Num => "a number",
            Ty::Ts => "TIMESTAMP",
            Ty::Struct => "STRUCT",
            Ty::Null => "NULL",
        }
    }
}

type Typed = (Node, Ty);

/// ` at line L column C`, or nothing for an unknown location.
fn at(l: Location) -> String {
    if l.line == 0 {
        String::new()
    } else {
        format!(" at line {} column {}", l.line, l.column)
    }
}

/// sqlparser's message with its ` at Line: 1, Column: 5` spelled like ours.
fn parse_message(e: ParserError) -> String {
    let s = match e {
        ParserError::TokenizerError(s) | ParserError::ParserError(s) => s,
        ParserError::RecursionLimitExceeded => return "expression nested too deeply".into(),
    };
    let Some(i) = s.rfind(" at Line: ") else {
        return s;
    };
    let rest = &s[i + " at Line: ".len()..];
    match rest.split_once(", Column: ") {
        Some((line, col)) => format!("{} at line {line} column {col}", &s[..i]),
        None => s,
    }
}

/// Some SQL for a message, cut to a readable length.
fn snippet(e: &Expr) -> String {
    let s = e.to_string();
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

/// Parses and compiles one filter expression; the error is the message only.
pub(super) fn compile(text: &str) -> Result<Node, String> {
    let dialect = GenericDialect {};
    // Counted before parsing, so that no tree deeper than the limit is ever built (or
    // dropped: sqlparser's trees drop recursively).
    let tokens = Tokenizer::new(&dialect, text)
        .tokenize_with_location()
        .map_err(|e| parse_message(ParserError::TokenizerError(e.to_string())))?;
    let n = tokens.iter().filter(|t| significant(&t.token)).count();
    if n > MAX_TOKENS {
        return Err(format!(
            "expression has {n} tokens, more than the {MAX_TOKENS} a filter may have"
        ));
    }
    let mut parser = Parser::new(&dialect)
        .try_with_sql(text)
        .map_err(parse_message)?;
    let expr = parser.parse_expr().map_err(parse_message)?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(format!(
            "unexpected '{}' after the expression{}",
            next.token,
            at(next.span.start)
        ));
    }
    let mut c = Compiler {
        tokens: &tokens,
        depth: 0,
    };
    c.condition(&expr)
}

struct Compiler<'s> {
    tokens: &'s [TokenWithSpan],
    depth: usize,
}

fn significant(t: &Token) -> bool {
    !matches!(t, Token::Whitespace(_) | Token::EOF)
}

impl Compiler<'_> {
    /// Where the first token at or after `end` starts, skipping closing parentheses
    /// (the operator after a left operand).
    fn after(&self, end: Location) -> Location {
        self.tokens
            .iter()
            .find(|t| t.span.start >= end && significant(&t.token) && t.token != Token::RParen)
            .map_or(end, |t| t.span.start)
    }

    /// Where the last token ending at or before `start` starts, skipping opening
    /// parentheses (the operator before an operand).
    fn before(&self, start: Location) -> Location {
        self.tokens
            .iter()
            .rev()
            .find(|t| t.span.end <= start && significant(&t.token) && t.token != Token::LParen)
            .map_or(start, |t| t.span.start)
    }

    /// A condition: BOOLEAN (or NULL).
    fn condition(&mut self, e: &Expr) -> Result<Node, String> {
        let (n, ty) = self.expr(e)?;
        match ty {
            Ty::Bool | Ty::Null => Ok(n),
            _ => Err(not_a_condition(e, ty)),
        }
    }

    // The recursion goes expr → expr_inner → one small method per kind of expression
    // → expr: error messages are built in separate cold functions so that these
    // frames stay small in unoptimised builds too.
    fn expr(&mut self, e: &Expr) -> Result<Typed, String> {
        if self.depth >= MAX_DEPTH {
            return Err(too_deep());
        }
        self.depth += 1;
        let out = self.expr_inner(e);
        self.depth -= 1;
        out
    }

    fn expr_inner(&mut self, e: &Expr) -> Result<Typed, String> {
        match e {
            Expr::Identifier(id) => self.column(std::slice::from_ref(id)),
            Expr::CompoundIdentifier(ids) => self.column(ids),
            Expr::Nested(inner) => self.expr(inner),
            Expr::Value(v) => literal(&v.value, v.span.start),
            Expr::UnaryOp { op, expr } => self.unary(*op, expr),
            Expr::BinaryOp { left, op, right } => self.binary(e, left, op, right),
            Expr::IsNull(x) => self.is_null(x, false),
            Expr::IsNotNull(x) => self.is_null(x, true),
            Expr::IsTrue(x) => self.is(x, Some(true), false),
            Expr::IsNotTrue(x) => self.is(x, Some(true), true),
            Expr::IsFalse(x) => self.is(x, Some(false), false),
            Expr::IsNotFalse(x) => self.is(x, Some(false), true),
            Expr::IsUnknown(x) => self.is(x, None, false),
            Expr::IsNotUnknown(x) => self.is(x, None, true),
            Expr::IsDistinctFrom(a, b) => self.distinct(a, b, false),
            Expr::IsNotDistinctFrom(a, b) => self.distinct(a, b, true),
            Expr::In {
                expr,
                target: InTarget::List(list),
                negated,
                global: false,
            } => self.in_list(expr, list, *negated),
            Expr::Between {
                expr,
                negated,
                low,
                high,
            } => self.between(expr, low, high, *negated),
            Expr::Like {
                negated,
                any: false,
                expr,
                pattern,
                escape_char,
            } => self.like(expr, pattern, escape_char.as_deref(), false, *negated),
            Expr::ILike {
                negated,
                any: false,
                expr,
                pattern,
                escape_char,
            } => self.like(expr, pattern, escape_char.as_deref(), true, *negated),
            Expr::Function(f) => self.function(f),
            other => Err(self.unsupported(other)),
        }
    }

    fn is_null(&mut self, x: &Expr, negated: bool) -> Result<Typed, String> {
        let (n, _) = self.expr(x)?;
        Ok((Node::IsNull(Box::new(n), negated), Ty::Bool))
    }

    fn is(&mut self, x: &Expr, what: Option<bool>, negated: bool) -> Result<Typed, String> {
        let e = Box::new(self.condition(x)?);
        Ok((Node::Is { e, what, negated }, Ty::Bool))
    }

    fn distinct(&mut self, a: &Expr, b: &Expr, negated: bool) -> Result<Typed, String> {
        let mut ops = self.operands(&[a, b])?;
        let (b, a) = (pop(&mut ops)?, pop(&mut ops)?);
        Ok((Node::Distinct(Box::new(a), Box::new(b), negated), Ty::Bool))
    }

    fn in_list(&mut self, e: &Expr, list: &[Expr], negated: bool) -> Result<Typed, String> {
        let mut all: Vec<&Expr> = Vec::with_capacity(list.len() + 1);
        all.push(e);
        all.extend(list.iter());
        let mut ops = self.operands(&all)?.into_iter();
        let e = Box::new(ops.next().ok_or_else(missing_operand)?);
        let list = ops.collect();
        Ok((Node::In { e, list, negated }, Ty::Bool))
    }

    fn between(&mut self, e: &Expr, lo: &Expr, hi: &Expr, negated: bool) -> Result<Typed, String> {
        let mut ops = self.operands(&[e, lo, hi])?;
        let (hi, lo, e) = (pop(&mut ops)?, pop(&mut ops)?, pop(&mut ops)?);
        let node = Node::Between {
            e: Box::new(e),
            lo: Box::new(lo),
            hi: Box::new(hi),
            negated,
        };
        Ok((node, Ty::Bool))
    }

    /// The error for an expression the filter does not support.
    #[cold]
    #[inline(never)]
    fn unsupported(&self, e: &Expr) -> String {
        match e {
            Expr::In { expr, global, .. } => {
                if *global {
                    format!("GLOBAL IN is not supported{}", at(e.span().start))
                } else {
                    format!(
                        "IN takes a list of values; subqueries and tables are not supported{}",
                        at(self.after(expr.span().end))
                    )
                }
            }
            Expr::Like { expr, .. } => {
                format!(
                    "LIKE ANY is not supported{}",
                    at(self.after(expr.span().end))
                )
            }
            Expr::ILike { expr, .. } => {
                format!(
                    "ILIKE ANY is not supported{}",
                    at(self.after(expr.span().end))
                )
            }
            Expr::SimilarTo { expr, .. } => format!(
                "unsupported operator 'SIMILAR TO'{}",
                at(self.after(expr.span().end))
            ),
            Expr::RLike { expr, regexp, .. } => format!(
                "unsupported operator '{}'{}",
                if *regexp { "REGEXP" } else { "RLIKE" },
                at(self.after(expr.span().end))
            ),
            Expr::AnyOp { left, .. } | Expr::AllOp { left, .. } => format!(
                "ANY / ALL comparisons are not supported{}",
                at(self.after(left.span().end))
            ),
            Expr::Subquery(_) | Expr::Exists { .. } => {
                format!("subqueries are not supported{}", at(e.span().start))
            }
            Expr::Cast { .. } => format!(
                "casts are not supported ('{}'){}",
                snippet(e),
                at(e.span().start)
            ),
            Expr::Case { .. } => format!("CASE is not supported{}", at(e.span().start)),
            Expr::CompoundFieldAccess { root, .. } => format!(
                "subscripts are not supported ('{}'{}); write struct fields with dots \
                 (user_identity.arn) and JSON access with -> and ->>",
                snippet(e),
                at(self.after(root.span().end))
            ),
            other => format!(
                "unsupported expression '{}'{}",
                snippet(other),
                at(other.span().start)
            ),
        }
    }

    /// The error for an operator the filter does not support, found after `left` (a
    /// binary operator) or before `operand` (a unary one).
    #[cold]
    #[inline(never)]
    fn unsupported_operator(
        &self,
        op: &dyn std::fmt::Display,
        left: Option<&Expr>,
        operand: &Expr,
        note: &str,
    ) -> String {
        let loc = match left {
            Some(l) => self.after(l.span().end),
            None => self.before(operand.span().start),
        };
        format!("unsupported operator '{op}'{}{note}", at(loc))
    }

    fn column(&mut self, ids: &[Ident]) -> Result<Typed, String> {
        let parts: Vec<&str> = ids.iter().map(|i| i.value.as_str()).collect();
        let written = parts.join(".");
        let loc = ids.first().map_or(Location::empty(), |i| i.span.start);
        match columns::resolve(&parts) {
            Ok(col) => {
                let ty = match col.kind {
                    Kind::Str | Kind::Json => Ty::Str,
                    Kind::Bool => Ty::Bool,
                    Kind::Ts => Ty::Ts,
                    Kind::Struct => Ty::Struct,
                };
                Ok((Node::Col(col), ty))
            }
            Err(Unresolved::Tailpipe) => Err(format!(
                "column '{written}'{} is one of Tailpipe's tp_* columns, which are set when \
                 a record is archived; the filter sees the CloudTrail columns only",
                at(loc)
            )),
            Err(Unresolved::NotStruct { column, kind }) => {
                let hint = if kind == Kind::Json {
                    format!(
                        "; read JSON with {column} ->> '{}'",
                        parts.last().copied().unwrap_or_default()
                    )
                } else {
                    String::new()
                };
                Err(format!(
                    "column '{column}' has no field '{}'{}: it is not a struct{hint}",
                    parts.last().copied().unwrap_or_default(),
                    at(loc)
                ))
            }
            Err(Unresolved::Unknown(near)) => Err(format!(
                "unknown column '{written}'{}; nearest: {}",
                at(loc),
                near.join(", ")
            )),
        }
    }

    fn unary(&mut self, op: UnaryOperator, x: &Expr) -> Result<Typed, String> {
        match op {
            UnaryOperator::Not => {
                let n = self.condition(x)?;
                Ok((Node::Not(Box::new(n)), Ty::Bool))
            }
            UnaryOperator::Minus | UnaryOperator::Plus => match self.expr(x)? {
                (Node::Lit(Lit::Num(v)), _) => {
                    let v = if op == UnaryOperator::Minus { -v } else { v };
                    Ok((Node::Lit(Lit::Num(v)), Ty::Num))
                }
                _ => Err(self.unsupported_operator(
                    &op,
                    None,
                    x,
                    ": only number literals take a sign",
                )),
            },
            other => Err(self.unsupported_operator(&other, None, x, "")),
        }
    }

    fn binary(
        &mut self,
        whole: &Expr,
        left: &Expr,
        op: &BinaryOperator,
        right: &Expr,
    ) -> Result<Typed, String> {
        let cmp = match op {
            BinaryOperator::And | BinaryOperator::Or => {
                return self.chain(whole, op == &BinaryOperator::And);
            }
            BinaryOperator::Eq => CmpOp::Eq,
            BinaryOperator::NotEq => CmpOp::Ne,
            BinaryOperator::Lt => CmpOp::Lt,
            BinaryOperator::LtEq => CmpOp::Le,
            BinaryOperator::Gt => CmpOp::Gt,
            BinaryOperator::GtEq => CmpOp::Ge,
            BinaryOperator::Arrow | BinaryOperator::LongArrow => return self.json(whole),
            BinaryOperator::PGStartsWith => {
                return self.str2(StrFn::StartsWith, left, right, "^@");
            }
            other => return Err(self.unsupported_operator(other, Some(left), right, "")),
        };
        let mut ops = self.operands(&[left, right])?;
        let (b, a) = (pop(&mut ops)?, pop(&mut ops)?);
        Ok((Node::Cmp(cmp, Box::new(a), Box::new(b)), Ty::Bool))
    }

    /// `a AND b AND …` (or OR) as one n-ary node, walked without recursion along the
    /// chain so a long list of conditions does not nest.
    fn chain(&mut self, whole: &Expr, and: bool) -> Result<Typed, String> {
        let want = if and {
            BinaryOperator::And
        } else {
            BinaryOperator::Or
        };
        let mut rights: Vec<&Expr> = Vec::new();
        let mut cur = whole;
        loop {
            match cur {
                Expr::BinaryOp { left, op, right } if *op == want => {
                    rights.push(right);
                    cur = left;
                }
                Expr::Nested(inner) if matches!(&**inner, Expr::BinaryOp { op, .. } if *op == want) =>
                {
                    cur = inner;
                }
                _ => break,
            }
        }
        rights.push(cur);
        let mut items = Vec::with_capacity(rights.len());
        for e in rights.into_iter().rev() {
            items.push(self.condition(e)?);
        }
        let node = if and {
            Node::And(items.into())
        } else {
            Node::Or(items.into())
        };
        Ok((node, Ty::Bool))
    }

    /// Compiles operands that are compared with each other, converting string literals
    /// to the type of the others.
    fn operands(&mut self, exprs: &[&Expr]) -> Result<Vec<Node>, String> {
        let mut typed = Vec::with_capacity(exprs.len());
        for e in exprs {
            typed.push(self.expr(e)?);
        }
        let is_str_lit = |n: &Node| matches!(n, Node::Lit(Lit::Str(_)));
        let target = typed
            .iter()
            .find(|(n, t)| *t != Ty::Null && !is_str_lit(n))
            .or_else(|| typed.iter().find(|(_, t)| *t != Ty::Null))
            .map_or(Ty::Null, |(_, t)| *t);
        // A struct compares with nothing but NULL.
        let struct_ok = typed.iter().filter(|(_, t)| *t != Ty::Null).count() <= 1;
        if !struct_ok && let Some(err) = struct_compared(&typed, exprs) {
            return Err(err);
        }
        let mut out = Vec::with_capacity(typed.len());
        for ((n, t), e) in typed.into_iter().zip(exprs) {
            out.push(coerce(n, t, target, struct_ok, e.span().start)?);
        }
        Ok(out)
    }

    /// `col -> k1 -> … ->> kn`: the chain is walked without recursion, then the base
    /// column compiled once.
    fn json(&mut self, whole: &Expr) -> Result<Typed, String> {
        let arrow = |e: &Expr| {
            matches!(
                e,
                Expr::BinaryOp {
                    op: BinaryOperator::Arrow | BinaryOperator::LongArrow,
                    ..
                }
            )
        };
        // (is ->>, left operand, right operand), last step first.
        let mut ops: Vec<(bool, &Expr, &Expr)> = Vec::new();
        let mut cur = whole;
        loop {
            match cur {
                Expr::BinaryOp { left, op, right } if arrow(cur) => {
                    ops.push((*op == BinaryOperator::LongArrow, left, right));
                    cur = left;
                }
                Expr::Nested(inner) if arrow(inner) => cur = inner,
                _ => break,
            }
        }
        ops.reverse();
        let Some(&(first_text, first_left, _)) = ops.first() else {
            return Err(missing_operand());
        };
        let (base, _) = self.expr(cur)?;
        let col = match base {
            Node::Col(c) if c.kind == Kind::Json => c,
            other => return Err(self.not_json(first_text, first_left, &other)),
        };
        let mut steps = Vec::new();
        let mut null = false;
        let last = ops.len() - 1;
        for (i, &(text, left, right)) in ops.iter().enumerate() {
            if text && i != last {
                return Err(self.text_step(left));
            }
            match json_key(right) {
                Some(Ok(Some(more))) => steps.extend(more),
                Some(Ok(None)) => null = true,
                Some(Err(m)) => return Err(format!("{m}{}", at(right.span().start))),
                None => return Err(bad_json_key(text, right)),
            }
        }
        if null {
            return Ok((Node::Lit(Lit::Null), Ty::Null));
        }
        let text = ops[last].0;
        let node = Node::Json {
            col,
            steps: steps.into(),
            text,
        };
        Ok((node, Ty::Str))
    }

    #[cold]
    #[inline(never)]
    fn not_json(&self, text: bool, left: &Expr, base: &Node) -> String {
        let op = if text { "->>" } else { "->" };
        let op_at = at(self.after(left.span().end));
        match base {
            Node::Col(c) => format!(
                "'{op}'{op_at} applies to JSON columns (request_parameters, \
                 response_elements, additional_event_data, resources, \
                 service_event_details, …), not to {}",
                c.name
            ),
            _ => format!(
                "'{op}'{op_at} applies to JSON columns, not to '{}'",
                snippet(left)
            ),
        }
    }

    #[cold]
    #[inline(never)]
    fn text_step(&self, left: &Expr) -> String {
        // The operator after this step's left side is the `->>`; the error is about
        // the operator that follows it.
        let next = self.after(left.span().end);
        format!(
            "'->>'{} returns text, which -> and ->> do not read; use -> for every \
             step but the last",
            at(next)
        )
    }

    fn like(
        &mut self,
        expr: &Expr,
        pattern: &Expr,
        escape: Option<&Expr>,
        fold: bool,
        negated: bool,
    ) -> Result<Typed, String> {
        let word = if fold { "ILIKE" } else { "LIKE" };
        let (n, ty) = self.expr(expr)?;
        if !matches!(ty, Ty::Str | Ty::Null) {
            return Err(format!(
                "{word} applies to text, not to {} '{}'{}",
                ty.name(),
                snippet(expr),
                at(expr.span().start)
            ));
        }
        let loc = pattern.span().start;
        let pat = match literal_of(pattern) {
            Some(SqlValue::SingleQuotedString(s)) => s.as_str(),
            Some(SqlValue::Null) => return Ok((Node::Lit(Lit::Null), Ty::Null)),
            _ => {
                return Err(format!(
                    "the {word} pattern must be a string literal{}",
                    at(loc)
                ));
            }
        };
        let esc = match escape {
            None => None,
            Some(x) => match literal_of(x) {
                Some(SqlValue::SingleQuotedString(s)) => {
                    let mut cs = s.chars();
                    match (cs.next(), cs.next()) {
                        (None, _) => None,
                        (Some(c), None) => Some(c),
                        _ => {
                            return Err(format!(
                                "ESCAPE must be empty or one character{}",
                                at(x.span().start)
                            ));
                        }
                    }
                }
                Some(SqlValue::Null) => return Ok((Node::Lit(Lit::Null), Ty::Null)),
                _ => {
                    return Err(format!(
                        "ESCAPE must be a string literal{}",
                        at(x.span().start)
                    ));
                }
            },
        };
        let pat = Pattern::new(pat, esc, fold).map_err(|m| format!("{m}{}", at(loc)))?;
        let e = Box::new(n);
        Ok((Node::Like { e, pat, negated }, Ty::Bool))
    }

    fn str2(&mut self, f: StrFn, a: &Expr, b: &Expr, name: &str) -> Result<Typed, String> {
        let mut nodes = Vec::with_capacity(2);
        for e in [a, b] {
            let (n, ty) = self.expr(e)?;
            if !matches!(ty, Ty::Str | Ty::Null) {
                return Err(format!(
                    "{name} takes text, not {} '{}'{}",
                    ty.name(),
                    snippet(e),
                    at(e.span().start)
                ));
            }
            nodes.push(n);
        }
        let (nb, na) = (pop(&mut nodes)?, pop(&mut nodes)?);
        Ok((Node::Str2(f, Box::new(na), Box::new(nb)), Ty::Bool))
    }

    fn function(&mut self, f: &Function) -> Result<Typed, String> {
        let (name, loc) = match f.name.0.as_slice() {
            [ObjectNamePart::Identifier(id)] => (id.value.to_ascii_lowercase(), id.span.start),
            _ => {
                return Err(format!(
                    "unsupported function '{}'{}",
                    f.name,
                    at(f.name.span().start)
                ));
            }
        };
        const SUPPORTED: &str = "lower, upper, starts_with, ends_with, contains";
        let known = matches!(
            name.as_str(),
            "lower"
                | "lcase"
                | "upper"
                | "ucase"
                | "starts_with"
                | "prefix"
                | "ends_with"
                | "suffix"
                | "contains"
        );
        if !known {
            return Err(format!(
                "unsupported function '{name}'{}; supported: {SUPPORTED}",
                at(loc)
            ));
        }
        let plain = !f.uses_odbc_syntax
            && matches!(f.parameters, FunctionArguments::None)
            && f.within_group.is_empty()
            && f.filter.is_none()
            && f.null_treatment.is_none()
            && f.over.is_none();
        let args: Option<Vec<&Expr>> = match &f.args {
            FunctionArguments::List(l)
                if plain && l.duplicate_treatment.is_none() && l.clauses.is_empty() =>
            {
                l.args
                    .iter()
                    .map(|a| match a {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                        _ => None,
                    })
                    .collect()
            }
            _ => None,
        };
        let Some(args) = args else {
            return Err(format!(
                "{name}() takes plain arguments only ('{f}'){}",
                at(loc)
            ));
        };
        let unary = matches!(name.as_str(), "lower" | "lcase" | "upper" | "ucase");
        let want = if unary { 1 } else { 2 };
        if args.len() != want {
            return Err(format!(
                "{name}() takes {want} argument{}, not {}{}",
                if want == 1 { "" } else { "s" },
                args.len(),
                at(loc)
            ));
        }
        if unary {
            let (n, ty) = self.expr(args[0])?;
            if !matches!(ty, Ty::Str | Ty::Null) {
                return Err(format!(
                    "{name}() takes text, not {} '{}'{}",
                    ty.name(),
                    snippet(args[0]),
                    at(args[0].span().start)
                ));
            }
            let n = Box::new(n);
            let node = if name.starts_with('l') {
                Node::Lower(n)
            } else {
                Node::Upper(n)
            };
            return Ok((node, Ty::Str));
        }
        let func = match name.as_str() {
            "starts_with" | "prefix" => StrFn::StartsWith,
            "ends_with" | "suffix" => StrFn::EndsWith,
            _ => StrFn::Contains,
        };
        self.str2(func, args[0], args[1], &format!("{name}()"))
    }
}

#[cold]
#[inline(never)]
fn bad_json_key(text: bool, right: &Expr) -> String {
    format!(
        "the right side of '{}'{} must be a string key, a JSON path ('$.a.b'), a JSON \
         pointer ('/a/b') or an integer index",
        if text { "->>" } else { "->" },
        at(right.span().start)
    )
}

fn missing_operand() -> String {
    "internal: missing operand".to_string()
}

fn pop(v: &mut Vec<Node>) -> Result<Node, String> {
    v.pop().ok_or_else(missing_operand)
}

#[cold]
#[inline(never)]
fn not_a_condition(e: &Expr, ty: Ty) -> String {
    format!(
        "expected a condition, found {} '{}'{}",
        ty.name(),
        snippet(e),
        at(e.span().start)
    )
}

#[cold]
#[inline(never)]
fn too_deep() -> String {
    format!("expression nested more than {MAX_DEPTH} levels deep")
}

/// The error for a struct column compared with a value.
#[cold]
#[inline(never)]
fn struct_compared(typed: &[Typed], exprs: &[&Expr]) -> Option<String> {
    typed
        .iter()
        .zip(exprs)
        .find_map(|((n, t), e)| match (n, t) {
            (Node::Col(c), Ty::Struct) => Some(format!(
                "{} is a STRUCT{}; compare one of its fields (user_identity.arn, \
             tls_details.tls_version, …) or test it with IS NULL",
                c.name,
                at(e.span().start)
            )),
            _ => None,
        })
}

/// The literal an expression is, if it is one.
fn literal_of(e: &Expr) -> Option<&SqlValue> {
    match e {
        Expr::Value(v) => Some(&v.value),
        Expr::Nested(inner) => literal_of(inner),
        _ => None,
    }
}

fn literal(v: &SqlValue, loc: Location) -> Result<Typed, String> {
    match v {
        SqlValue::Null => Ok((Node::Lit(Lit::Null), Ty::Null)),
        SqlValue::Boolean(b) => Ok((Node::Lit(Lit::Bool(*b)), Ty::Bool)),
        SqlValue::SingleQuotedString(s) | SqlValue::EscapedStringLiteral(s) => {
            Ok((Node::Lit(Lit::Str(s.as_str().into())), Ty::Str))
        }
        SqlValue::Number(s, _) => match s.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok((Node::Lit(Lit::Num(n)), Ty::Num)),
            _ => Err(format!("number {s} is out of range{}", at(loc))),
        },
        other => Err(format!("unsupported literal {other}{}", at(loc))),
    }
}

/// A string literal as a BOOLEAN, the words DuckDB's cast accepts.
fn bool_literal(s: &str) -> Option<bool> {
    const TRUE: [&str; 4] = ["true", "t", "yes", "y"];
    const FALSE: [&str; 4] = ["false", "f", "no", "n"];
    match s {
        "1" => Some(true),
        "0" => Some(false),
        _ if TRUE.iter().any(|w| w.eq_ignore_ascii_case(s)) => Some(true),
        _ if FALSE.iter().any(|w| w.eq_ignore_ascii_case(s)) => Some(false),
        _ => None,
    }
}

/// Brings an operand to the type it is compared with.
fn coerce(n: Node, ty: Ty, target: Ty, struct_ok: bool, loc: Location) -> Result<Node, String> {
    let has_struct = ty == Ty::Struct || target == Ty::Struct;
    let compatible = ty == Ty::Null
        || target == Ty::Null
        || if has_struct {
            struct_ok && ty == Ty::Struct
        } else {
            ty == target || matches!((ty, target), (Ty::Bool, Ty::Num) | (Ty::Num, Ty::Bool))
        };
    if compatible {
        return Ok(n);
    }
    if let Node::Lit(Lit::Str(s)) = &n {
        let converted = match target {
            Ty::Bool => bool_literal(s).map(Lit::Bool),
            Ty::Ts => timestamp_literal(s).map(Lit::Ts),
            Ty::Num => s
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .map(Lit::Num),
            _ => None,
        };
        return match (converted, target) {
            (Some(l), _) => Ok(Node::Lit(l)),
            (None, Ty::Ts) => Err(format!(
                "'{s}'{} is not a TIMESTAMP: write YYYY-MM-DD, optionally with \
                 [T| ]HH:MM[:SS[.ffffff]] and a Z",
                at(loc)
            )),
            (None, t) => Err(format!("'{s}'{} is not {}", at(loc), t.name())),
        };
    }
    let hint = match (ty, target) {
        (Ty::Struct, _) | (_, Ty::Struct) => {
            "; compare one of the struct's fields, e.g. user_identity.arn".to_string()
        }
        (Ty::Num, Ty::Str) | (Ty::Str, Ty::Num) => "; quote the number to compare text".into(),
        (Ty::Num, Ty::Ts) | (Ty::Ts, Ty::Num) => {
            "; write the time as a string, '2024-01-31T12:00:00Z'".into()
        }
        _ => String::new(),
    };
    Err(format!(
        "cannot compare {} with {}{}{hint}",
        ty.name(),
        target.name(),
        at(loc)
    ))
}

/// The steps a `->` / `->>` right side stands for: `Some(Ok(None))` for NULL (the
/// result is NULL), `None` when it is not a literal key or index.
fn json_key(e: &Expr) -> Option<Result<Option<Vec<Step>>, String>> {
    let (neg, inner) = match e {
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => (true, &**expr),
        other => (false, other),
    };
    match literal_of(inner)? {
        SqlValue::Number(s, _) => {
            let i: i64 = match s.parse() {
                Ok(i) => i,
                Err(_) => return Some(Err(format!("JSON index {s} is not an integer"))),
            };
            Some(Ok(Some(vec![Step::Index(if neg { -i } else { i })])))
        }
        SqlValue::SingleQuotedString(s) if !neg => Some(json_path(s).map(Some)),
        SqlValue::Null if !neg => Some(Ok(None)),
        _ => None,
    }
}

/// DuckDB's reading of a `->` key: `$…` is a JSONPath, `/…` a JSON pointer, `''` the
/// value itself, anything else one object key.
fn json_path(s: &str) -> Result<Vec<Step>, String> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(ptr) = s.strip_prefix('/') {
        return Ok(ptr
            .split('/')
            .map(|seg| Step::Pointer(seg.replace("~1", "/").replace("~0", "~").into()))
            .collect());
    }
    let Some(mut rest) = s.strip_prefix('$') else {
        return Ok(vec![Step::Key(s.into())]);
    };
    let bad = || format!("JSON path '{s}' is not supported (use $.key, $.\"key\", $[n], $[#-n])");
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            if let Some(q) = r.strip_prefix('"') {
                let end = q.find('"').ok_or_else(bad)?;
                steps.push(Step::Key(q[..end].into()));
                rest = &q[end + 1..];
            } else {
                let end = r.find(['.', '[']).unwrap_or(r.len());
                let key = &r[..end];
                if key.is_empty() || key == "*" {
                    return Err(bad());
                }
                steps.push(Step::Key(key.into()));
                rest = &r[end..];
            }
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').ok_or_else(bad)?;
            let idx = &r[..end];
            let i = match idx.strip_prefix("#-") {
                Some(back) => back.parse::<i64>().ok().filter(|v| *v > 0).map(|v| -v),
                None => idx.parse::<i64>().ok().filter(|v| *v >= 0),
            };
            steps.push(Step::Index(i.ok_or_else(bad)?));
            rest = &r[end + 1..];
        } else {
            return Err(bad());
        }
    }
    Ok(steps)
}

/// A TIMESTAMP literal: `YYYY-MM-DD`, optionally `[T| ]HH:MM[:SS[.fraction]]`, and
/// `Z`, `+00`, `+00:00` or ` UTC`; microseconds since the epoch. The fraction is
/// truncated to microseconds, as DuckDB does.
pub(super) fn timestamp_literal(s: &str) -> Option<i64> {
    fn num(s: &str, min: usize, max: usize) -> Option<i64> {
        (s.len() >= min && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    }
    let s = s
        .strip_suffix(" UTC")
        .or_else(|| s.strip_suffix('Z'))
        .or_else(|| s.strip_suffix("+00:00"))
        .or_else(|| s.strip_suffix("+00"))
        .unwrap_or(s);
    let (date, time) = match s.find(['T', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut d = date.splitn(3, '-');
    let y = num(d.next()?, 4, 4)?;
    let m = num(d.next()?, 1, 2)?;
    let day = num(d.next()?, 1, 2)?;
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let dim = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > dim {
        return None;
    }
    let (mut h, mut mi, mut sec, mut micros) = (0, 0, 0, 0);
    if let Some(t) = time {
        let (hms, frac) = match t.split_once('.') {
            Some((a, b)) => (a, Some(b)),
            None => (t, None),
        };
        let mut p = hms.split(':');
        h = num(p.next()?, 1, 2)?;
        mi = num(p.next()?, 2, 2)?;
        sec = match p.next() {
            Some(x) => num(x, 2, 2)?,
            None if frac.is_none() => 0,
            None => return None,
        };
        if p.next().is_some() || h > 23 || mi > 59 || sec > 59 {
            return None;
        }
        if let Some(f) = frac {
            if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let mut digits: String = f.chars().take(6).collect();
            while digits.len() < 6 {
                digits.push('0');
            }
            micros = digits.parse().ok()?;
        }
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (yy, mm) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * mm + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) * 1_000_000) + micros)
}
