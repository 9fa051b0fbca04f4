//! Routes: which findings a sink receives.
//!
//! A sink's `route: {levels, rules, tags}` selects findings by their rule; every list
//! that is given must match (levels ∧ rules ∧ tags), and within a list any entry may
//! match. No route means every finding. A `rules` entry is a rule `id`, `name` or
//! `title`; `rules` and `tags` entries may end with `*` to match a prefix
//! (`attack.t1078*` takes `attack.t1078` and `attack.t1078.004`).
//!
//! Rules are fixed for a run, so a route is resolved once per rule pack into one
//! boolean per rule ([`Route::resolve`]); routing a finding is an index lookup.

use serde::Deserialize;

use crate::rules::{Level, RulePack};

/// `route:` of a sink.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Levels taken (`informational` … `critical`).
    #[serde(default)]
    pub levels: Vec<String>,
    /// Rule ids, names or titles taken (a trailing `*` matches a prefix).
    #[serde(default)]
    pub rules: Vec<String>,
    /// Rule tags taken (a trailing `*` matches a prefix).
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A route entry that is not valid.
#[derive(Debug, thiserror::Error)]
#[error("route.levels: {0:?} is not a level (informational, low, medium, high, critical)")]
pub struct RouteError(pub String);

fn matches(pattern: &str, value: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => value.starts_with(prefix),
        None => pattern == value,
    }
}

impl Route {
    /// Checks the entries (levels must be level names).
    pub fn validate(&self) -> Result<(), RouteError> {
        for l in &self.levels {
            if Level::parse(l).is_none() {
                return Err(RouteError(l.clone()));
            }
        }
        Ok(())
    }

    /// Whether a finding of a rule with these properties is taken.
    pub fn takes(&self, level: Level, names: &[&str], tags: &[String]) -> bool {
        let level_ok =
            self.levels.is_empty() || self.levels.iter().any(|l| Level::parse(l) == Some(level));
        let rule_ok = self.rules.is_empty()
            || self
                .rules
                .iter()
                .any(|p| names.iter().any(|n| matches(p, n)));
        let tag_ok =
            self.tags.is_empty() || self.tags.iter().any(|p| tags.iter().any(|t| matches(p, t)));
        level_ok && rule_ok && tag_ok
    }

    /// One boolean per rule of `pack`: whether its findings are taken.
    pub fn resolve(route: Option<&Route>, pack: &RulePack) -> Vec<bool> {
        pack.rules()
            .iter()
            .map(|r| match route {
                None => true,
                Some(route) => {
                    let m = &r.meta;
                    let mut names = vec![m.id.as_str(), m.title.as_str()];
                    if let Some(n) = &m.name {
                        names.push(n);
                    }
                    route.takes(m.level, &names, &m.tags)
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_given_list_must_match() {
        let r = Route {
            levels: vec!["high".into(), "critical".into()],
            rules: vec![],
            tags: vec!["attack.t1078*".into()],
        };
        let tags = vec!["attack.t1078.004".to_string()];
        assert!(r.takes(Level::High, &["x"], &tags));
        assert!(!r.takes(Level::Medium, &["x"], &tags));
        assert!(!r.takes(Level::High, &["x"], &["attack.t1098".to_string()]));
        let by_rule = Route {
            rules: vec!["root-*".into(), "Exact Title".into()],
            ..Route::default()
        };
        assert!(by_rule.takes(Level::Low, &["root-login"], &[]));
        assert!(by_rule.takes(Level::Low, &["id", "Exact Title"], &[]));
        assert!(!by_rule.takes(Level::Low, &["id", "Exact"], &[]));
        assert!(Route::default().takes(Level::Informational, &[], &[]));
    }

    #[test]
    fn levels_are_checked() {
        let r = Route {
            levels: vec!["severe".into()],
            ..Route::default()
        };
        assert!(r.validate().is_err());
    }
}
