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

use super::view::{EventView, NativeFinding, as_text};
use super::{Context, Obj, attack, ocsf};

/// The ECS version written.
pub const VERSION: &str = "8.11.0";

/// Writes one ECS line (with its `\n`).
pub fn write(cx: &Context<'_>, out: &mut Vec<u8>) {
    write_doc(cx, out);
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

/// Writes one ECS line (with its `\n`), straight into the buffer ([`Obj`]).
fn write_doc(cx: &Context<'_>, out: &mut Vec<u8>) {
    let f: &NativeFinding<'_> = cx.finding;
    let ev: &EventView = &f.event;
    let corr = f.correlation();
    let source = as_text(&ev.eventSource);
    let name = as_text(&ev.eventName);
    let (category, kind) = classify(source.as_deref(), name.as_deref());
    let timestamp = ev.time().unwrap_or(&f.detected_at);

    let mut o = Obj::new(out);
    o.str("@timestamp", timestamp);
    o.obj("ecs").str("version", VERSION);
    o.str("message", &f.rule.title);
    {
        let mut e = o.obj("event");
        e.str("kind", "alert")
            .strs("category", &[category])
            .strs("type", &[kind])
            .str("id", &f.id)
            .str("created", &f.detected_at)
            .num("severity", i64::from(ocsf::severity_id(&f.rule.level)))
            .num("risk_score", i64::from(risk_score(&f.rule.level)))
            .str("module", "aws")
            .str("dataset", "aws.cloudtrail")
            .opt_str("provider", source.as_deref())
            .opt_str("action", name.as_deref());
        if let Some(w) = corr.as_ref().and_then(|c| c.window.as_ref()) {
            e.str("start", &w.start).str("end", &w.end);
        }
        if let Some(raw) = f.record {
            e.str("original", raw.get());
        }
        if let Some(c) = corr.as_ref().filter(|c| c.event_count > 0) {
            e.num("sequence", c.event_count as i64);
        }
    }
    {
        let mut r = o.obj("rule");
        r.str("id", &f.rule.id)
            .str("uuid", &f.rule.id)
            .str("name", &f.rule.title)
            .str("category", &f.rule.kind)
            .str(
                "ruleset",
                if f.rule.origin == "builtin" {
                    "trailhound builtin"
                } else {
                    "local"
                },
            );
        if let Some(d) = cx.doc {
            r.opt_str("description", d.description.as_deref())
                .opt_str("reference", d.references.first().map(String::as_str));
            if let Some(a) = &d.author {
                r.strs("author", &[a]);
            }
        }
    }
    let a = attack(&f.rule.tags);
    if !a.tactics.is_empty() || !a.techniques.is_empty() {
        let mut t = o.obj("threat");
        t.str("framework", "MITRE ATT&CK");
        if !a.tactics.is_empty() {
            let ids: Vec<&str> = a.tactics.iter().map(|t| t.0).collect();
            let names: Vec<&str> = a.tactics.iter().map(|t| t.1).collect();
            let refs: Vec<String> = ids
                .iter()
                .map(|id| format!("https://attack.mitre.org/tactics/{id}/"))
                .collect();
            t.obj("tactic")
                .strs("id", &ids)
                .strs("name", &names)
                .strs("reference", &refs);
        }
        if !a.techniques.is_empty() {
            let refs: Vec<String> = a
                .techniques
                .iter()
                .map(|id| format!("https://attack.mitre.org/techniques/{id}/"))
                .collect();
            let mut tech = t.obj("technique");
            tech.strs("id", &a.techniques).strs("reference", &refs);
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
                tech.obj("subtechnique")
                    .strs("id", &a.sub_techniques)
                    .strs("reference", &refs);
            }
        }
    }
    {
        let mut c = o.obj("cloud");
        c.str("provider", "aws")
            .opt_str("region", ev.awsRegion.as_str());
        let acct = ev.account();
        let alias = cx.account_alias();
        if acct.is_some() || alias.is_some() {
            c.obj("account").opt_str("id", acct).opt_str("name", alias);
        }
    }
    let p = &ev.principal;
    if p.arn.is_some() || p.account_id.is_some() {
        let mut u = o.obj("user");
        if let Some(arn) = &p.arn {
            u.str("id", arn)
                .str("name", arn.rsplit('/').next().unwrap_or(arn));
        }
        u.opt_str("domain", p.account_id.as_deref());
    }
    if let Some(src) = as_text(&ev.sourceIPAddress) {
        let mut s = o.obj("source");
        if src.parse::<std::net::IpAddr>().is_ok() {
            s.str("ip", &src);
        } else {
            s.str("domain", &src);
        }
        s.str("address", &src);
    }
    if !f.rule.tags.is_empty() || !cx.enrich.tags.is_empty() {
        let mut tags = o.arr("tags");
        for t in &f.rule.tags {
            tags.str(t);
        }
        for (k, v) in &cx.enrich.tags {
            tags.str(&format!("{k}:{v}"));
        }
    }
    if !cx.enrich.tags.is_empty() {
        let mut l = o.obj("labels");
        for (k, v) in &cx.enrich.tags {
            l.str(k, v);
        }
    }
    o.obj("observer")
        .str("vendor", "trailhound")
        .str("product", "trailhound")
        .str("type", "detection")
        .str("version", env!("CARGO_PKG_VERSION"));
    o.obj("log").obj("file").str("path", &f.input.name);
    {
        let mut th = o.obj("trailhound");
        f.input.write(th.obj("input"));
        th.str("rule_origin", &f.rule.origin)
            .str("level", &f.rule.level);
        if let Some(fields) = f.fields.filter(|r| r.get() != "{}") {
            th.raw("fields", fields.get());
        }
        if let Some(c) = f.correlation {
            th.raw("correlation", c.get());
        }
        th.num("suppressed", f.suppressed as i64);
        if let Some(s) = f.suppression {
            th.raw("suppression", s.get());
        }
    }
    drop(o);
    out.push(b'\n');
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
