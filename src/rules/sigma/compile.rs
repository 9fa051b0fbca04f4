//! A Sigma `detection:` block → [`Detection`], the runnable matcher of one rule.
//!
//! Selections become [`Selection`]s (OR of AND groups of [`FieldTest`]s, or keyword
//! sets), the condition becomes a [`Cond`] tree over selection indices. Everything that
//! can be decided at load time is: paths are parsed, values are compiled into
//! [`ValueSet`]s, wildcard patterns in `1 of sel*` are resolved to indices.

use super::condition::{self, CondAst, Quantifier};
use super::field::{CompileContext, FieldTest, compile_field, compile_keywords, keywords_match};
use super::modifiers::ValueSet;
use crate::event::FieldPath;
use crate::event::path::RootCache;
use crate::rules::yaml::{Kind, Mark, Yaml};
use crate::rules::{Located, RuleErrorKind};

/// One named selection of a detection.
#[derive(Debug, Clone)]
pub enum Selection {
    /// OR of groups, each an AND of field tests (a map is one group, a list of maps
    /// several).
    Fields(Vec<Vec<FieldTest>>),
    /// Keywords: any leaf anywhere in the record contains one of the keywords.
    Keywords(ValueSet),
}

/// A compiled condition.
#[derive(Debug, Clone)]
pub enum Cond {
    /// A selection by index.
    Sel(usize),
    /// Negation.
    Not(Box<Cond>),
    /// Conjunction.
    And(Vec<Cond>),
    /// Disjunction.
    Or(Vec<Cond>),
    /// At least `n` of the selections.
    AtLeast(usize, Vec<usize>),
}

/// A compiled detection: selections and the condition over them.
#[derive(Debug, Clone)]
pub struct Detection {
    selections: Vec<Selection>,
    cond: Cond,
    /// Selection names, by index (for `rules explain`).
    names: Vec<String>,
    /// The condition(s) as written.
    conditions: Vec<String>,
}

/// What one field test made of a record (`rules explain`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TestTrace {
    /// The entry as written.
    pub test: String,
    /// Whether it held.
    pub held: bool,
    /// The record's value at the field (compact JSON), `None` when absent or for a
    /// test over the whole record.
    pub value: Option<String>,
}

/// What one selection made of a record.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SelectionTrace {
    /// The selection's name.
    pub name: String,
    /// Whether it matched.
    pub matched: bool,
    /// A field selection: its groups (any may match), each a list of tests (all must).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Vec<TestTrace>>,
    /// A keyword selection.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub keywords: bool,
}

/// A whole detection on one record: the condition with each selection's result in
/// place, and every selection.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DetectionTrace {
    /// Whether the detection matched.
    pub matched: bool,
    /// The condition as written.
    pub condition: Vec<String>,
    /// The compiled condition with results: `selection=true and not filter=false`.
    pub evaluated: String,
    /// Every selection, in rule order.
    pub selections: Vec<SelectionTrace>,
}

impl Cond {
    fn render(&self, names: &[String], results: &[bool], out: &mut String, top: bool) {
        let word = |b: bool| if b { "true" } else { "false" };
        match self {
            Cond::Sel(i) => {
                out.push_str(&names[*i]);
                out.push('=');
                out.push_str(word(results[*i]));
            }
            Cond::Not(c) => {
                out.push_str("not ");
                c.render(names, results, out, false);
            }
            Cond::And(v) | Cond::Or(v) => {
                let op = if matches!(self, Cond::And(_)) {
                    " and "
                } else {
                    " or "
                };
                if !top {
                    out.push('(');
                }
                for (k, c) in v.iter().enumerate() {
                    if k > 0 {
                        out.push_str(op);
                    }
                    c.render(names, results, out, false);
                }
                if !top {
                    out.push(')');
                }
            }
            Cond::AtLeast(n, sels) => {
                out.push_str(&format!("{n} of ("));
                for (k, i) in sels.iter().enumerate() {
                    if k > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&names[*i]);
                    out.push('=');
                    out.push_str(word(results[*i]));
                }
                out.push(')');
            }
        }
    }

    /// Sets `used[i]` for every selection the condition can evaluate.
    fn mark_used(&self, used: &mut [bool]) {
        match self {
            Cond::Sel(i) => used[*i] = true,
            Cond::Not(c) => c.mark_used(used),
            Cond::And(v) | Cond::Or(v) => v.iter().for_each(|c| c.mark_used(used)),
            Cond::AtLeast(_, sels) => sels.iter().for_each(|i| used[*i] = true),
        }
    }
}

impl Selection {
    #[inline]
    fn matches(&self, rec: &RootCache<'_, '_>) -> bool {
        match self {
            Selection::Fields(groups) => groups.iter().any(|g| g.iter().all(|t| t.matches(rec))),
            Selection::Keywords(set) => keywords_match(set, rec),
        }
    }

    /// For the index: the union of what `key` extracts from some test on `path` in
    /// every group, or `None` if some group has no such test.
    fn required<T>(
        &self,
        path: &FieldPath,
        key: &dyn Fn(&FieldTest) -> Option<Vec<T>>,
    ) -> Option<Vec<T>> {
        let Selection::Fields(groups) = self else {
            return None;
        };
        let mut all = Vec::new();
        for g in groups {
            let found = g.iter().filter(|t| t.path() == Some(path)).find_map(key)?;
            all.extend(found);
        }
        Some(all)
    }

    fn paths<'a>(&'a self, out: &mut Vec<&'a FieldPath>) {
        if let Selection::Fields(groups) = self {
            for p in groups.iter().flatten().filter_map(FieldTest::path) {
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
    }
}

impl Detection {
    /// Whether the record matches.
    #[inline]
    pub fn matches(&self, rec: &RootCache<'_, '_>) -> bool {
        self.eval(&self.cond, rec)
    }

    /// Selection names, in rule order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Every selection and test on `rec`, and the condition over them: what `rules
    /// explain` prints. Not for the hot path (it allocates).
    pub fn explain(&self, rec: &RootCache<'_, '_>) -> DetectionTrace {
        let mut selections = Vec::with_capacity(self.selections.len());
        for (name, sel) in self.names.iter().zip(&self.selections) {
            let trace = match sel {
                Selection::Fields(groups) => SelectionTrace {
                    name: name.clone(),
                    matched: sel.matches(rec),
                    groups: groups
                        .iter()
                        .map(|g| {
                            g.iter()
                                .map(|t| TestTrace {
                                    test: t.source().to_string(),
                                    held: t.matches(rec),
                                    value: t.path().and_then(|p| {
                                        let v = p.first_cached(rec)?;
                                        let mut out = Vec::new();
                                        crate::finding::write_value(&mut out, Some(v));
                                        let mut text = String::from_utf8_lossy(&out).into_owned();
                                        if text.len() > 200 {
                                            let mut cut = 200;
                                            while !text.is_char_boundary(cut) {
                                                cut -= 1;
                                            }
                                            text.truncate(cut);
                                            text.push('…');
                                        }
                                        Some(text)
                                    }),
                                })
                                .collect()
                        })
                        .collect(),
                    keywords: false,
                },
                Selection::Keywords(_) => SelectionTrace {
                    name: name.clone(),
                    matched: sel.matches(rec),
                    groups: Vec::new(),
                    keywords: true,
                },
            };
            selections.push(trace);
        }
        let results: Vec<bool> = selections.iter().map(|s| s.matched).collect();
        let mut evaluated = String::new();
        self.cond
            .render(&self.names, &results, &mut evaluated, true);
        DetectionTrace {
            matched: self.matches(rec),
            condition: self.conditions.clone(),
            evaluated,
            selections,
        }
    }

    /// Every path the detection reads, for slot assignment.
    pub fn paths_mut(&mut self, f: &mut dyn FnMut(&mut FieldPath)) {
        for s in &mut self.selections {
            if let Selection::Fields(groups) = s {
                for t in groups.iter_mut().flatten() {
                    t.paths_mut(f);
                }
            }
        }
    }

    fn eval(&self, c: &Cond, rec: &RootCache<'_, '_>) -> bool {
        match c {
            Cond::Sel(i) => self.selections[*i].matches(rec),
            Cond::Not(x) => !self.eval(x, rec),
            Cond::And(v) => v.iter().all(|x| self.eval(x, rec)),
            Cond::Or(v) => v.iter().any(|x| self.eval(x, rec)),
            Cond::AtLeast(n, sels) => {
                let mut hits = 0;
                for i in sels {
                    if self.selections[*i].matches(rec) {
                        hits += 1;
                        if hits >= *n {
                            return true;
                        }
                    }
                }
                false
            }
        }
    }

    /// A set of lowercase literals one of which `path` must equal for the rule to match
    /// (a necessary condition, used by the rule index), or `None`.
    pub fn required_literals(&self, path: &FieldPath) -> Option<Vec<Box<[u8]>>> {
        self.required(path, &FieldTest::exact_literals)
    }

    /// What `key` extracts from the tests on `path`, combined over the condition so that
    /// a record the rule matches must satisfy one of the results: `and` takes the
    /// smallest child requirement, `or` the union when every branch has one, `not` none.
    pub fn required<T>(
        &self,
        path: &FieldPath,
        key: &dyn Fn(&FieldTest) -> Option<Vec<T>>,
    ) -> Option<Vec<T>> {
        self.req(&self.cond, path, key)
    }

    /// Every field path the rule's selections test.
    pub fn paths(&self) -> Vec<&FieldPath> {
        let mut out = Vec::new();
        for s in &self.selections {
            s.paths(&mut out);
        }
        out
    }

    fn req<T>(
        &self,
        c: &Cond,
        path: &FieldPath,
        key: &dyn Fn(&FieldTest) -> Option<Vec<T>>,
    ) -> Option<Vec<T>> {
        match c {
            Cond::Sel(i) => self.selections[*i].required(path, key),
            Cond::Not(_) => None,
            Cond::And(v) => v
                .iter()
                .filter_map(|x| self.req(x, path, key))
                .min_by_key(Vec::len),
            Cond::Or(v) => {
                let mut all = Vec::new();
                for x in v {
                    all.extend(self.req(x, path, key)?);
                }
                Some(all)
            }
            Cond::AtLeast(n, sels) if *n >= sels.len() => sels
                .iter()
                .filter_map(|i| self.selections[*i].required(path, key))
                .min_by_key(Vec::len),
            Cond::AtLeast(_, sels) => {
                let mut all = Vec::new();
                for i in sels {
                    all.extend(self.selections[*i].required(path, key)?);
                }
                Some(all)
            }
        }
    }
}

fn err(mark: Mark, kind: RuleErrorKind) -> Located {
    Located { mark, kind }
}

fn compile_group(map: &[(Yaml, Yaml)], ctx: &CompileContext) -> Result<Vec<FieldTest>, Located> {
    let mut group = Vec::with_capacity(map.len());
    for (k, v) in map {
        group.push(compile_field(k, v, ctx)?);
    }
    Ok(group)
}

fn compile_selection(name: &str, y: &Yaml, ctx: &CompileContext) -> Result<Selection, Located> {
    match &y.kind {
        Kind::Map(m) => Ok(Selection::Fields(vec![compile_group(m, ctx)?])),
        Kind::Seq(items)
            if !items.is_empty() && items.iter().all(|i| matches!(i.kind, Kind::Map(_))) =>
        {
            let groups = items
                .iter()
                .map(|i| compile_group(i.as_map().unwrap_or_default(), ctx))
                .collect::<Result<_, _>>()?;
            Ok(Selection::Fields(groups))
        }
        Kind::Seq(items)
            if items.iter().all(|i| i.as_scalar_text().is_some()) && !items.is_empty() =>
        {
            Ok(Selection::Keywords(compile_keywords(items.iter())?))
        }
        Kind::Str(_) | Kind::Number(_) => {
            Ok(Selection::Keywords(compile_keywords(std::iter::once(y))?))
        }
        _ => Err(err(
            y.mark,
            RuleErrorKind::TypeMismatch {
                field: name.into(),
                expected: "a mapping, a list of mappings or a list of keywords",
                found: y.kind_name(),
            },
        )),
    }
}

fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

fn compile_cond(ast: &CondAst, names: &[String], mark: Mark) -> Result<Cond, Located> {
    let at = |col: usize| Mark {
        line: mark.line,
        col: mark.col + col.saturating_sub(1),
    };
    Ok(match ast {
        CondAst::Ident(name, col) => match names.iter().position(|n| n == name) {
            Some(i) => Cond::Sel(i),
            None => {
                return Err(err(
                    at(*col),
                    RuleErrorKind::UndefinedIdentifier(name.clone()),
                ));
            }
        },
        CondAst::Of(q, pattern, col) => {
            let sels: Vec<usize> = names
                .iter()
                .enumerate()
                // `them` and patterns leave out `_`-prefixed selections (pySigma), unless
                // the pattern itself starts with `_`.
                .filter(|(_, n)| match pattern {
                    Some(p) => glob_match(p, n) && (!n.starts_with('_') || p.starts_with('_')),
                    None => !n.starts_with('_'),
                })
                .map(|(i, _)| i)
                .collect();
            if sels.is_empty() {
                return Err(err(
                    at(*col),
                    RuleErrorKind::UndefinedIdentifier(
                        pattern.clone().unwrap_or_else(|| "them".into()),
                    ),
                ));
            }
            match q {
                Quantifier::All => Cond::And(sels.into_iter().map(Cond::Sel).collect()),
                Quantifier::AtLeast(n) => Cond::AtLeast(*n, sels),
            }
        }
        CondAst::Not(x) => Cond::Not(Box::new(compile_cond(x, names, mark)?)),
        CondAst::And(v) => Cond::And(
            v.iter()
                .map(|x| compile_cond(x, names, mark))
                .collect::<Result<_, _>>()?,
        ),
        CondAst::Or(v) => Cond::Or(
            v.iter()
                .map(|x| compile_cond(x, names, mark))
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// Compiles the `detection:` mapping of a rule.
pub fn compile_detection(
    det: &Yaml,
    ctx: &CompileContext,
    warn: &mut Vec<Located>,
) -> Result<Detection, Located> {
    let map = det.as_map().ok_or_else(|| {
        err(
            det.mark,
            RuleErrorKind::TypeMismatch {
                field: "detection".into(),
                expected: "a mapping",
                found: det.kind_name(),
            },
        )
    })?;
    let mut names = Vec::new();
    let mut name_marks = Vec::new();
    let mut selections = Vec::new();
    let mut conditions: Vec<&Yaml> = Vec::new();
    for (k, v) in map {
        let Some(name) = k.as_scalar_text() else {
            continue;
        };
        match name {
            "condition" => match &v.kind {
                Kind::Seq(items) => conditions.extend(items.iter()),
                _ => conditions.push(v),
            },
            "timeframe" => warn.push(err(k.mark, RuleErrorKind::IgnoredTimeframe)),
            _ => {
                selections.push(compile_selection(name, v, ctx)?);
                names.push(name.to_string());
                name_marks.push(k.mark);
            }
        }
    }
    if conditions.is_empty() {
        return Err(err(
            det.mark,
            RuleErrorKind::MissingKey("detection.condition"),
        ));
    }
    let mut conds = Vec::new();
    let mut texts = Vec::new();
    for c in conditions {
        let text = c.as_str().ok_or_else(|| {
            err(
                c.mark,
                RuleErrorKind::TypeMismatch {
                    field: "condition".into(),
                    expected: "a string",
                    found: c.kind_name(),
                },
            )
        })?;
        let ast = condition::parse(text).map_err(|e| {
            err(
                Mark {
                    line: c.mark.line,
                    col: c.mark.col + e.col.saturating_sub(1),
                },
                RuleErrorKind::Condition(e.message),
            )
        })?;
        conds.push(compile_cond(&ast, &names, c.mark)?);
        texts.push(text.to_string());
    }
    let cond = if conds.len() == 1 {
        conds.remove(0)
    } else {
        Cond::Or(conds)
    };
    let mut used = vec![false; selections.len()];
    cond.mark_used(&mut used);
    for (i, u) in used.iter().enumerate() {
        if !u {
            warn.push(err(
                name_marks[i],
                RuleErrorKind::UnusedSelection(names[i].clone()),
            ));
        }
    }
    Ok(Detection {
        selections,
        cond,
        names,
        conditions: texts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::yaml::load_documents;

    fn det(yaml: &str) -> Result<Detection, Located> {
        let docs = load_documents(yaml).expect("yaml");
        compile_detection(&docs[0], &CompileContext::default(), &mut Vec::new())
    }

    fn check(yaml: &str, record: &str) -> bool {
        let d = det(yaml).expect("compiles");
        let mut bytes = record.as_bytes().to_vec();
        let tape = simd_json::to_tape(&mut bytes).expect("json");
        d.matches(&RootCache::new(tape.as_value()))
    }

    #[test]
    fn maps_lists_and_conditions() {
        let y = "sel:\n  eventSource: iam.amazonaws.com\n  eventName: [CreateUser, CreateAccessKey]\nfilter:\n  errorCode: null\ncondition: sel and filter\n";
        assert!(check(
            y,
            r#"{"eventSource":"iam.amazonaws.com","eventName":"createaccesskey"}"#
        ));
        assert!(!check(
            y,
            r#"{"eventSource":"iam.amazonaws.com","eventName":"CreateAccessKey","errorCode":"AccessDenied"}"#
        ));
        assert!(check(
            y,
            r#"{"eventSource":"iam.amazonaws.com","eventName":"CreateUser","errorCode":null}"#
        ));
        assert!(!check(
            y,
            r#"{"eventSource":"s3.amazonaws.com","eventName":"CreateUser"}"#
        ));
    }

    #[test]
    fn list_of_maps_is_or_and_all_modifier() {
        let y = "sel:\n  - a: 1\n  - b|contains|all: [x, y]\ncondition: sel\n";
        assert!(check(y, r#"{"a":1}"#));
        assert!(check(y, r#"{"a":"1"}"#));
        assert!(check(y, r#"{"b":"..Y..x"}"#));
        assert!(!check(y, r#"{"b":"x alone"}"#));
        assert!(check(y, r#"{"b":["has x","has y"]}"#));
    }

    #[test]
    fn quantified_conditions_and_keywords() {
        let y = "sel_a:\n  a: 1\nsel_b:\n  b: 2\n_c:\n  c: 3\ncondition: 1 of sel_* and not all of them\n";
        assert!(check(y, r#"{"a":1}"#));
        assert!(!check(y, r#"{"a":1,"b":2}"#));
        let k = "keywords:\n  - evil\ncondition: keywords\n";
        assert!(check(k, r#"{"x":{"y":["an EVIL thing"]}}"#));
        assert!(!check(k, r#"{"evil":"good"}"#));
        let none = "sel:\n  missing: null\ncondition: sel\n";
        assert!(check(none, r#"{"a":1}"#));
        assert!(!check(none, r#"{"missing":"x"}"#));
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = det("sel:\n  a|base65: x\ncondition: sel\n").expect_err("bad");
        assert_eq!((e.mark.line, e.mark.col), (2, 3));
        assert!(matches!(e.kind, RuleErrorKind::UnknownModifier { .. }));
        let e = det("sel:\n  a: x\ncondition: sel and nope\n").expect_err("bad");
        assert_eq!((e.mark.line, e.mark.col), (3, 20));
        assert!(matches!(e.kind, RuleErrorKind::UndefinedIdentifier(_)));
        let e = det("sel:\n  a: {b: c}\ncondition: sel\n").expect_err("bad");
        assert!(matches!(e.kind, RuleErrorKind::TypeMismatch { .. }));
        let e = det("sel:\n  a: x\n").expect_err("bad");
        assert!(matches!(e.kind, RuleErrorKind::MissingKey(_)));
    }

    #[test]
    fn index_requirements() {
        let p = FieldPath::parse("eventName").expect("path");
        let d =
            det("sel:\n  eventName: [A, B]\nx:\n  c: 1\ncondition: sel and not x\n").expect("ok");
        assert_eq!(d.required_literals(&p).map(|v| v.len()), Some(2));
        let d = det("sel:\n  eventName: A\nx:\n  c: 1\ncondition: sel or x\n").expect("ok");
        assert!(d.required_literals(&p).is_none());
        let d = det("sel:\n  eventName|startswith: A\ncondition: sel\n").expect("ok");
        assert!(d.required_literals(&p).is_none());
        let d = det("a:\n  eventName: A\nb:\n  eventName: B\ncondition: 1 of them\n").expect("ok");
        assert_eq!(d.required_literals(&p).map(|v| v.len()), Some(2));
    }

    #[test]
    fn glob() {
        assert!(glob_match("sel*", "selection"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("sel*", "filter"));
    }
}
