//! The rule index: a record's `eventName` → the rules that could match it.
//!
//! Built once per [`super::RulePack`]. For every rule, the detection is asked for a set
//! of literal `eventName` values one of which the record *must* carry for the rule to
//! match (a necessary condition derived from the condition tree: `and` takes the
//! smallest requirement of its children, `or` the union when every branch has one,
//! `not` none). Rules with such a set are filed under each value; the rest are
//! *always* candidates.
//!
//! Promise: the candidates are a superset of the matching rules, in ascending rule
//! order. `tests/rules_index.rs` holds it against [`super::RulePack::evaluate_unindexed`]
//! on every real sample record.

use std::collections::HashMap;

use simd_json::prelude::{TypedScalarValue, ValueAsScalar};
use simd_json::tape::Value;

use super::CompiledRule;
use crate::event::{FieldPath, path::object_get};

/// `eventName` → candidate rules.
#[derive(Debug)]
pub struct RuleIndex {
    path: FieldPath,
    always: Vec<u32>,
    by_name: HashMap<Box<[u8]>, Vec<u32>>,
    total: u32,
}

impl RuleIndex {
    /// Indexes `rules` by their required `eventName` literals.
    pub fn build(rules: &[CompiledRule]) -> Self {
        let path = FieldPath::parse("eventName").unwrap_or_else(|e| unreachable!("{e}"));
        let mut always = Vec::new();
        let mut by_name: HashMap<Box<[u8]>, Vec<u32>> = HashMap::new();
        for (i, r) in rules.iter().enumerate() {
            let i = i as u32;
            match r.detection().required_literals(&path) {
                Some(lits) => {
                    for l in lits {
                        let list = by_name.entry(l).or_default();
                        if list.last() != Some(&i) {
                            list.push(i);
                        }
                    }
                }
                None => always.push(i),
            }
        }
        RuleIndex {
            path,
            always,
            by_name,
            total: rules.len() as u32,
        }
    }

    /// Rules tested against every record.
    pub fn always(&self) -> &[u32] {
        &self.always
    }

    /// Number of distinct `eventName` keys.
    pub fn keys(&self) -> usize {
        self.by_name.len()
    }

    /// Calls `f` with each candidate rule index for `record`, ascending.
    #[inline]
    pub fn for_each_candidate(
        &self,
        record: Value<'_, '_>,
        scratch: &mut Vec<u8>,
        mut f: impl FnMut(u32),
    ) {
        let named: &[u32] = match object_get(record, self.path.as_str()) {
            None => &[],
            Some(v) => {
                scratch.clear();
                if let Some(s) = v.as_str() {
                    scratch.extend(s.bytes().map(|b| b.to_ascii_lowercase()));
                } else if !v.is_null() {
                    // Arrays, objects, numbers and booleans match by rules the literal
                    // table does not model (fan-out, numeric equality): test every rule.
                    (0..self.total).for_each(f);
                    return;
                }
                self.by_name
                    .get(scratch.as_slice())
                    .map_or(&[], Vec::as_slice)
            }
        };
        // Merge two ascending lists.
        let (a, b) = (&self.always, named);
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            if a[i] < b[j] {
                f(a[i]);
                i += 1;
            } else {
                f(b[j]);
                j += 1;
            }
        }
        a[i..].iter().for_each(|&x| f(x));
        b[j..].iter().for_each(|&x| f(x));
    }
}
