//! The rule index: a record's field values → the rules that could match it.
//!
//! Built once per [`super::RulePack`]. For every rule, the detection is asked what a
//! record *must* carry for the rule to match (a necessary condition derived from the
//! condition tree: `and` takes the smallest requirement of its children, `or` the union
//! when every branch has one, `not` none), field by field, in three strengths:
//!
//! 1. **equality**: one of these literals is the whole value of the field → a hash table
//!    per field (`eventName`, then `eventSource`, then any other field);
//! 2. **substring**: one of these literals occurs in the value (equality, prefix, suffix
//!    and `contains` literals) → one Aho-Corasick automaton per field;
//! 3. **regex**: one of these regexes matches the value → one `RegexSet` per field.
//!
//! A rule is filed under the strongest requirement it has (equality on `eventName` first),
//! or else it is an *always* candidate. For a record, each table looks at the leaves of
//! its field (the same leaves matching sees) and names its rules; the union, plus the
//! *always* rules, in ascending order, are the candidates.
//!
//! Promise: the candidates are a superset of the matching rules. `tests/rules_index.rs`
//! and `tests/sigmahq.rs` hold it against [`super::RulePack::evaluate_unindexed`] on
//! every real sample record and on generated packs.

use std::ops::ControlFlow;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::{Regex, RegexSet};
use rustc_hash::FxHashMap as HashMap;

use super::sigma::field::{FieldTest, for_each_leaf};
use super::{CompiledRule, Matcher};
use crate::event::FieldPath;
use crate::event::path::RootCache;

/// Fields tried for equality first, in this order; any other field comes after.
const PREFERRED: [&str; 2] = ["eventName", "eventSource"];

/// The tables of one field.
#[derive(Debug)]
struct FieldTables {
    path: FieldPath,
    exact: HashMap<Box<[u8]>, Vec<u32>>,
    needles: Vec<(Vec<u8>, u32)>,
    substr: Option<(AhoCorasick, Vec<u32>)>,
    regexes: Vec<(Regex, u32)>,
    regex_set: Option<(RegexSet, Vec<u32>)>,
}

impl FieldTables {
    fn new(path: FieldPath) -> Self {
        FieldTables {
            path,
            exact: HashMap::default(),
            needles: Vec::new(),
            substr: None,
            regexes: Vec::new(),
            regex_set: None,
        }
    }

    /// Builds the automata. Rules whose automaton cannot be built (size limits) are
    /// returned, to be tested always.
    fn finish(&mut self) -> Vec<u32> {
        let mut unfiled = Vec::new();
        if !self.needles.is_empty() {
            let pats: Vec<&[u8]> = self.needles.iter().map(|(n, _)| n.as_slice()).collect();
            let rules = self.needles.iter().map(|(_, r)| *r).collect();
            match AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                .build(&pats)
            {
                Ok(ac) => self.substr = Some((ac, rules)),
                Err(_) => unfiled.extend(rules),
            }
        }
        if !self.regexes.is_empty() {
            let rules = self.regexes.iter().map(|(_, r)| *r).collect();
            match RegexSet::new(self.regexes.iter().map(|(r, _)| r.as_str())) {
                Ok(set) => self.regex_set = Some((set, rules)),
                Err(_) => unfiled.extend(rules),
            }
        }
        unfiled
    }

    /// Adds the rules this field's tables name for `record` to `out`.
    #[inline]
    fn collect(&self, rec: &RootCache<'_, '_>, scratch: &mut Vec<u8>, out: &mut Vec<u32>) {
        let _ = self.path.for_each_cached(rec, &mut |v| {
            for_each_leaf(v, &mut |leaf| {
                let text = leaf.text();
                if !self.exact.is_empty() {
                    scratch.clear();
                    scratch.extend_from_slice(text.as_bytes());
                    scratch.make_ascii_lowercase();
                    if let Some(rules) = self.exact.get(scratch.as_slice()) {
                        out.extend_from_slice(rules);
                    }
                }
                if let Some((ac, rules)) = &self.substr {
                    for m in ac.find_overlapping_iter(text.as_bytes()) {
                        out.push(rules[m.pattern().as_usize()]);
                    }
                }
                // `matches` allocates its result; most values match none of the set.
                if let Some((set, rules)) = &self.regex_set
                    && set.is_match(text)
                {
                    out.extend(set.matches(text).iter().map(|i| rules[i]));
                }
                ControlFlow::Continue(())
            })
        });
    }
}

/// Field values → candidate rules.
#[derive(Debug)]
pub struct RuleIndex {
    always: Vec<u32>,
    fields: Vec<FieldTables>,
    total: u32,
}

/// The strongest requirement of one rule: which field, and what.
enum Key {
    /// The rule never matches a record by itself (a correlation).
    Never,
    Exact(usize, Vec<Box<[u8]>>),
    Substr(usize, Vec<Vec<u8>>),
    Regex(usize, Vec<Regex>),
}

fn choose(rule: &CompiledRule, fields: &mut Vec<FieldTables>) -> Option<Key> {
    let d = match rule.matcher() {
        Matcher::Detection(d) => d,
        Matcher::Never => return Some(Key::Never),
        Matcher::Pattern(p) => {
            // Metric filters compare case-sensitively; the lowercased table is a superset.
            let names = p.required_event_names()?;
            let path = FieldPath::parse("eventName").ok()?;
            let f = match fields.iter().position(|f| f.path == path) {
                Some(i) => i,
                None => {
                    fields.push(FieldTables::new(path));
                    fields.len() - 1
                }
            };
            let lits = names
                .into_iter()
                .map(|n| n.to_ascii_lowercase().into_bytes().into_boxed_slice())
                .collect();
            return Some(Key::Exact(f, lits));
        }
    };
    let mut paths: Vec<&FieldPath> = d.paths();
    paths.sort_by_key(|p| {
        PREFERRED
            .iter()
            .position(|x| *x == p.as_str())
            .unwrap_or(PREFERRED.len())
    });
    let slot = |p: &FieldPath, fields: &mut Vec<FieldTables>| match fields
        .iter()
        .position(|f| &f.path == p)
    {
        Some(i) => i,
        None => {
            fields.push(FieldTables::new(p.clone()));
            fields.len() - 1
        }
    };
    let best_exact = paths
        .iter()
        .filter_map(|p| d.required(p, &FieldTest::exact_literals).map(|l| (*p, l)))
        .min_by_key(|(p, l)| {
            let rank = PREFERRED
                .iter()
                .position(|x| *x == p.as_str())
                .unwrap_or(PREFERRED.len());
            (rank, l.len())
        });
    if let Some((p, lits)) = best_exact {
        return Some(Key::Exact(slot(p, fields), lits));
    }
    let best_sub = paths
        .iter()
        .filter_map(|p| d.required(p, &FieldTest::substrings).map(|l| (*p, l)))
        .filter(|(_, l)| l.iter().all(|n| !n.is_empty()))
        .min_by_key(|(_, l)| l.len());
    if let Some((p, needles)) = best_sub {
        return Some(Key::Substr(slot(p, fields), needles));
    }
    let best_re = paths
        .iter()
        .filter_map(|p| d.required(p, &FieldTest::regex_list).map(|l| (*p, l)))
        .min_by_key(|(_, l)| l.len());
    best_re.map(|(p, res)| Key::Regex(slot(p, fields), res))
}

impl RuleIndex {
    /// Indexes `rules` by their strongest requirements.
    pub fn build(rules: &[CompiledRule]) -> Self {
        let mut fields: Vec<FieldTables> = Vec::new();
        let mut always = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            let i = i as u32;
            match choose(r, &mut fields) {
                Some(Key::Never) => {}
                Some(Key::Exact(f, lits)) => {
                    for l in lits {
                        let list = fields[f].exact.entry(l).or_default();
                        if list.last() != Some(&i) {
                            list.push(i);
                        }
                    }
                }
                Some(Key::Substr(f, needles)) => {
                    fields[f]
                        .needles
                        .extend(needles.into_iter().map(|n| (n, i)));
                }
                Some(Key::Regex(f, res)) => {
                    fields[f].regexes.extend(res.into_iter().map(|r| (r, i)))
                }
                None => always.push(i),
            }
        }
        fields.retain(|f| !f.exact.is_empty() || !f.needles.is_empty() || !f.regexes.is_empty());
        for f in &mut fields {
            always.extend(f.finish());
        }
        always.sort_unstable();
        always.dedup();
        RuleIndex {
            always,
            fields,
            total: rules.len() as u32,
        }
    }

    /// Rules tested against every record.
    pub fn always(&self) -> &[u32] {
        &self.always
    }

    /// Number of distinct `eventName` literals filed.
    pub fn keys(&self) -> usize {
        self.fields
            .iter()
            .find(|f| f.path.as_str() == "eventName")
            .map_or(0, |f| f.exact.len())
    }

    /// The indexed fields and how many rules each files (for diagnostics).
    pub fn fields(&self) -> Vec<(String, usize)> {
        self.fields
            .iter()
            .map(|f| {
                let n = f.exact.values().map(Vec::len).sum::<usize>()
                    + f.needles.len()
                    + f.regexes.len();
                (f.path.as_str().to_string(), n)
            })
            .collect()
    }

    /// Fills `out` with the candidate rules for `record`, ascending and without
    /// duplicates. `scratch` is a reusable buffer.
    #[inline]
    pub fn candidates(&self, rec: &RootCache<'_, '_>, scratch: &mut Vec<u8>, out: &mut Vec<u32>) {
        out.clear();
        if rec.root().as_object().is_none() {
            out.extend(0..self.total);
            return;
        }
        out.extend_from_slice(&self.always);
        for f in &self.fields {
            f.collect(rec, scratch, out);
        }
        if out.len() > 1 {
            out.sort_unstable();
            out.dedup();
        }
    }
}
