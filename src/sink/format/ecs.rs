//! Elastic Common Schema 8.x: a finding as an ECS alert document (`event.kind: alert`),
//! the way Elastic Security's own rules write their alerts.
//!
//! Mapping (docs/output.md has the table): `@timestamp` is the event time (the
//! detection time when the record has none), `event.*` classifies the CloudTrail call
//! (`category`/`type` from the service and the verb of the API name, `action` the
//! call, `provider` the service, `original` the record), `rule.*` the rule, `threat.*`
//! its ATT&CK tags, `cloud.*`/`user.*`/`source.*` the account, principal and caller,
//! `labels` the `enrich:` tags; trailhound's own details sit under `trailhound.*`
//! (a custom field set, which ECS allows).

use serde_json::{Map, Value, json};

use super::view::{EventView, NativeFinding, as_text};
use super::{Context, attack, ocsf};

/// The ECS version written.
pub const VERSION: &str = "8.11.0";

/// Writes one ECS line (with its `\n`).
pub fn write(cx: &Context<'_>, out: &mut Vec<u8>) {
    let v = build(cx);
    let _ = serde_json::to_writer(&mut *out, &v);
    out.push(b'\n');
}

/// `event.category` and `event.type` of a CloudTrail call: ECS allows only some types
/// per category, so both come from one decision.
pub fn classify(source: Option<&str>, name: Option<&str>) -> (&'static str, &'static str) {
    let service = source.unwrap_or("").split('.').next().unwrap_or("");
    let name = name.unwrap_or("");
    let verb = |prefixes: &[&str]| prefixes.iter().any(|p| name.starts_with(p));
    let creation = verb(&["Create", "Run", "Add", "Register", "Import", "Allocate"]);
    let deletion = verb(&[
        "Delete",
        "Remove",
        "Terminate",
        "Deregister",
        "Disable",
        "Stop",
        "Detach",
        "Revoke",
        "Release",
    ]);
    let change = verb(&[
        "Update",
        "Put",
        "Modify",
        "Attach",
        "Set",
        "Enable",
        "Change",
        "Authorize",
        "Associate",
        "Start",
        "Reset",
        "Replace",
        "Restore",
        "Tag",
        "Untag",
    ]);
    match service {
        "signin" | "sso" => ("authentication", "start"),
        "sts" => (
            "authentication",
            if name.starts_with("Get") || name.starts_with("Assume") {
                "start"
            } else {
                "info"
            },
        ),
        "iam" | "identitystore" | "organizations" => (
            "iam",
            if creation {
                "creation"
            } else if deletion {
                "deletion"
            } else if change {
                "change"
            } else {
                "info"
            },
        ),
        _ => (
            "configuration",
            if creation {
                "creation"
            } else if deletion {
                "deletion"
            } else if change {
                "change"
            } else {
                "access"
            },
        ),
    }
}

fn risk_score(level: &str) -> u8 {
    match level {
        "informational" => 1,
        "low" => 21,
        "medium" => 47,
        "high" => 73,
        "critical" => 99,
        _ => 0,
    }
}

/// The ECS document of a finding.
pub fn build(cx: &Context<'_>) -> Value {
    let f: &NativeFinding<'_> = cx.finding;
    let ev: &EventView = &f.event;
    let corr = f.correlation();
    let source = as_text(&ev.eventSource);
    let name = as_text(&ev.eventName);
    let (category, kind) = classify(source.as_deref(), name.as_deref());
    let timestamp = ev
        .time()
        .map(str::to_string)
        .unwrap_or_else(|| f.detected_at.to_string());

    let mut event = Map::new();
    event.insert("kind".into(), json!("alert"));
    event.insert("category".into(), json!([category]));
    event.insert("type".into(), json!([kind]));
    event.insert("id".into(), json!(f.id));
    event.insert("created".into(), json!(f.detected_at));
    event.insert("severity".into(), json!(ocsf::severity_id(&f.rule.level)));
    event.insert("risk_score".into(), json!(risk_score(&f.rule.level)));
    event.insert("module".into(), json!("aws"));
    event.insert("dataset".into(), json!("aws.cloudtrail"));
    if let Some(s) = &source {
        event.insert("provider".into(), json!(s));
    }
    if let Some(n) = &name {
        event.insert("action".into(), json!(n));
    }
    if let Some(w) = corr.as_ref().and_then(|c| c.window.as_ref()) {
        event.insert("start".into(), json!(w.start));
        event.insert("end".into(), json!(w.end));
    }
    if let Some(raw) = f.record {
        event.insert("original".into(), json!(raw.get()));
    }
    if let Some(c) = &corr
        && c.event_count > 0
    {
        event.insert("sequence".into(), json!(c.event_count));
    }

    let mut rule = Map::new();
    rule.insert("id".into(), json!(f.rule.id));
    rule.insert("uuid".into(), json!(f.rule.id));
    rule.insert("name".into(), json!(f.rule.title));
    rule.insert("category".into(), json!(f.rule.kind));
    rule.insert(
        "ruleset".into(),
        json!(if f.rule.origin == "builtin" {
            "trailhound builtin"
        } else {
            "local"
        }),
    );
    if let Some(d) = cx.doc {
        if let Some(desc) = &d.description {
            rule.insert("description".into(), json!(desc));
        }
        if let Some(r) = d.references.first() {
            rule.insert("reference".into(), json!(r));
        }
        if let Some(a) = &d.author {
            rule.insert("author".into(), json!([a]));
        }
    }

    let a = attack(&f.rule.tags);
    let mut threat = Map::new();
    if !a.tactics.is_empty() || !a.techniques.is_empty() {
        threat.insert("framework".into(), json!("MITRE ATT&CK"));
    }
    if !a.tactics.is_empty() {
        let ids: Vec<&str> = a.tactics.iter().map(|t| t.0).collect();
        let names: Vec<&str> = a.tactics.iter().map(|t| t.1).collect();
        let refs: Vec<String> = ids
            .iter()
            .map(|id| format!("https://attack.mitre.org/tactics/{id}/"))
            .collect();
        threat.insert(
            "tactic".into(),
            json!({"id": ids, "name": names, "reference": refs}),
        );
    }
    if !a.techniques.is_empty() {
        let refs: Vec<String> = a
            .techniques
            .iter()
            .map(|id| format!("https://attack.mitre.org/techniques/{id}/"))
            .collect();
        let mut tech = Map::new();
        tech.insert("id".into(), json!(a.techniques));
        tech.insert("reference".into(), json!(refs));
        if !a.sub_techniques.is_empty() {
            let refs: Vec<String> = a
                .sub_techniques
                .iter()
                .map(|id| {
                    format!(
                        "https://attack.mitre.org/techniques/{}/",
                        id.replace('.', "/")
                    )
                })
                .collect();
            tech.insert(
                "subtechnique".into(),
                json!({"id": a.sub_techniques, "reference": refs}),
            );
        }
        threat.insert("technique".into(), Value::Object(tech));
    }

    let mut cloud = Map::new();
    cloud.insert("provider".into(), json!("aws"));
    if let Some(r) = ev.awsRegion.as_str() {
        cloud.insert("region".into(), json!(r));
    }
    let mut account = Map::new();
    if let Some(acct) = ev.account() {
        account.insert("id".into(), json!(acct));
    }
    if let Some(alias) = cx.account_alias() {
        account.insert("name".into(), json!(alias));
    }
    if !account.is_empty() {
        cloud.insert("account".into(), Value::Object(account));
    }

    let p = &ev.principal;
    let mut user = Map::new();
    if let Some(arn) = &p.arn {
        user.insert("id".into(), json!(arn));
        user.insert("name".into(), json!(arn.rsplit('/').next().unwrap_or(arn)));
    }
    if let Some(acct) = &p.account_id {
        user.insert("domain".into(), json!(acct));
    }

    let mut o = Map::new();
    o.insert("@timestamp".into(), json!(timestamp));
    o.insert("ecs".into(), json!({"version": VERSION}));
    o.insert("message".into(), json!(f.rule.title));
    o.insert("event".into(), Value::Object(event));
    o.insert("rule".into(), Value::Object(rule));
    if !threat.is_empty() {
        o.insert("threat".into(), Value::Object(threat));
    }
    o.insert("cloud".into(), Value::Object(cloud));
    if !user.is_empty() {
        o.insert("user".into(), Value::Object(user));
    }
    if let Some(src) = as_text(&ev.sourceIPAddress) {
        let s = if src.parse::<std::net::IpAddr>().is_ok() {
            json!({"ip": src, "address": src})
        } else {
            json!({"domain": src, "address": src})
        };
        o.insert("source".into(), s);
    }
    let mut tags: Vec<String> = f.rule.tags.iter().map(|t| t.to_string()).collect();
    tags.extend(cx.enrich.tags.iter().map(|(k, v)| format!("{k}:{v}")));
    if !tags.is_empty() {
        o.insert("tags".into(), json!(tags));
    }
    if !cx.enrich.tags.is_empty() {
        o.insert("labels".into(), json!(cx.enrich.tags));
    }
    o.insert(
        "observer".into(),
        json!({"vendor": "trailhound", "product": "trailhound", "type": "detection", "version": env!("CARGO_PKG_VERSION")}),
    );
    o.insert("log".into(), json!({"file": {"path": f.input.name}}));
    let mut th = Map::new();
    th.insert(
        "input".into(),
        json!({"name": f.input.name, "record_index": f.input.record_index, "line": f.input.line, "byte_offset": f.input.byte_offset}),
    );
    th.insert("rule_origin".into(), json!(f.rule.origin));
    th.insert("level".into(), json!(f.rule.level));
    let fields = NativeFinding::value_of(f.fields);
    if fields.as_object().is_some_and(|m| !m.is_empty()) {
        th.insert("fields".into(), fields);
    }
    if f.correlation.is_some() {
        th.insert("correlation".into(), NativeFinding::value_of(f.correlation));
    }
    th.insert("suppressed".into(), json!(f.suppressed));
    if f.suppression.is_some() {
        th.insert("suppression".into(), NativeFinding::value_of(f.suppression));
    }
    o.insert("trailhound".into(), Value::Object(th));
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::classify;

    #[test]
    fn calls_are_classified_with_types_their_category_allows() {
        assert_eq!(
            classify(Some("iam.amazonaws.com"), Some("CreateUser")),
            ("iam", "creation")
        );
        assert_eq!(
            classify(Some("iam.amazonaws.com"), Some("AttachUserPolicy")),
            ("iam", "change")
        );
        assert_eq!(
            classify(Some("signin.amazonaws.com"), Some("ConsoleLogin")),
            ("authentication", "start")
        );
        assert_eq!(
            classify(Some("cloudtrail.amazonaws.com"), Some("StopLogging")),
            ("configuration", "deletion")
        );
        assert_eq!(
            classify(Some("s3.amazonaws.com"), Some("GetObject")),
            ("configuration", "access")
        );
        assert_eq!(classify(None, None), ("configuration", "access"));
    }
}
