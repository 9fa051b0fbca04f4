//! The rule index: a record's `eventName` and `eventSource` → the rules that could
//! match it.
//!
//! Built once per [`super::RulePack`]. For every rule, the detection is asked for a set
//! of literal values one of which the record *must* carry in a field for the rule to
//! match (a necessary condition derived from the condition tree: `and` takes the
//! smallest requirement of its children, `or` the union when every branch has one,
//! `not` none). A rule is filed under its `eventName` literals when it has them, else
//! under its `eventSource` literals, else it is an *always* candidate. A record is
//! tested against `always` ∪ `by_name[its eventName]` ∪ `by_source[its eventSource]`.
//!
//! Promise: the candidates are a superset of the matching rules, in ascending rule
//! order. `tests/rules_index.rs` holds it against [`super::RulePack::evaluate_unindexed`]
//! on every real sample record and on generated packs.

use std::collections::HashMap;

use simd_json::prelude::{TypedScalarValue, ValueAsScalar};
use simd_json::tape::Value;

use super::CompiledRule;
use crate::event::{FieldPath, path::object_get};

/// One keyed table: lowercase literal → ascending rule indices.
#[derive(Debug)]
struct Table {
    path: FieldPath,
    map: HashMap<Box<[u8]>, Vec<u32>>,
}

/// What a record's field selects from a [`Table`].
enum Pick<'a> {
    /// These rules (possibly none).
    Rules(&'a [u32]),
    /// The field's value is not a plain string: every rule is a candidate.
    Everything,
}

impl Table {
    fn new(field: &str) -> Self {
        Table {
            path: FieldPath::parse(field).unwrap_or_else(|e| unreachable!("{e}")),
            map: HashMap::new(),
        }
    }

    fn file(&mut self, lits: Vec<Box<[u8]>>, rule: u32) {
        for l in lits {
            let list = self.map.entry(l).or_default();
            if list.last() != Some(&rule) {
                list.push(rule);
            }
        }
    }

    #[inline]
    fn pick<'a>(&'a self, record: Value<'_, '_>, scratch: &mut Vec<u8>) -> Pick<'a> {
        if self.map.is_empty() {
            return Pick::Rules(&[]);
        }
        let Some(v) = object_get(record, self.path.as_str()) else {
            return Pick::Rules(&[]);
        };
        if let Some(s) = v.as_str() {
            scratch.clear();
            scratch.extend(s.bytes().map(|b| b.to_ascii_lowercase()));
            return Pick::Rules(self.map.get(scratch.as_slice()).map_or(&[], Vec::as_slice));
        }
        if v.is_null() {
            return Pick::Rules(&[]);
        }
        // Arrays, objects, numbers and booleans match by rules the literal table does
        // not model (fan-out, numeric equality): test every rule.
        Pick::Everything
    }
}

/// `eventName` / `eventSource` → candidate rules.
#[derive(Debug)]
pub struct RuleIndex {
    always: Vec<u32>,
    by_name: Table,
    by_source: Table,
    total: u32,
}

impl RuleIndex {
    /// Indexes `rules` by their required `eventName`, else `eventSource`, literals.
    pub fn build(rules: &[CompiledRule]) -> Self {
        let mut by_name = Table::new("eventName");
        let mut by_source = Table::new("eventSource");
        let mut always = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            let i = i as u32;
            let d = r.detection();
            if let Some(lits) = d.required_literals(&by_name.path) {
                by_name.file(lits, i);
            } else if let Some(lits) = d.required_literals(&by_source.path) {
                by_source.file(lits, i);
            } else {
                always.push(i);
            }
        }
        RuleIndex {
            always,
            by_name,
            by_source,
            total: rules.len() as u32,
        }
    }

    /// Rules tested against every record.
    pub fn always(&self) -> &[u32] {
        &self.always
    }

    /// Number of distinct `eventName` keys.
    pub fn keys(&self) -> usize {
        self.by_name.map.len()
    }

    /// Number of distinct `eventSource` keys.
    pub fn source_keys(&self) -> usize {
        self.by_source.map.len()
    }

    /// Calls `f` with each candidate rule index for `record`, ascending.
    #[inline]
    pub fn for_each_candidate(
        &self,
        record: Value<'_, '_>,
        scratch: &mut Vec<u8>,
        mut f: impl FnMut(u32),
    ) {
        let (Pick::Rules(named), Pick::Rules(sourced)) = (
            self.by_name.pick(record, scratch),
            self.by_source.pick(record, scratch),
        ) else {
            (0..self.total).for_each(f);
            return;
        };
        merge3(&self.always, named, sourced, &mut f);
    }
}

/// Calls `f` with the union of three ascending, disjoint lists, ascending.
fn merge3(a: &[u32], b: &[u32], c: &[u32], f: &mut impl FnMut(u32)) {
    let (mut i, mut j, mut k) = (0, 0, 0);
    loop {
        let x = a.get(i).copied().unwrap_or(u32::MAX);
        let y = b.get(j).copied().unwrap_or(u32::MAX);
        let z = c.get(k).copied().unwrap_or(u32::MAX);
        let m = x.min(y).min(z);
        if m == u32::MAX {
            return;
        }
        f(m);
        if m == x {
            i += 1;
        } else if m == y {
            j += 1;
        } else {
            k += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::merge3;

    #[test]
    fn merges_in_order() {
        let mut out = Vec::new();
        merge3(&[0, 4, 9], &[1, 5], &[2, 3, 10], &mut |x| out.push(x));
        assert_eq!(out, [0, 1, 2, 3, 4, 5, 9, 10]);
        out.clear();
        merge3(&[], &[], &[], &mut |x| out.push(x));
        assert!(out.is_empty());
    }
}
