//! OCSF 1.3.0 Detection Finding (class_uid 2004, category Findings), with the `cloud`
//! profile: the shape Amazon Security Lake and most SIEMs ingest.
//!
//! Mapping (docs/output.md has the table): the finding is `finding_info` (uid = the
//! finding id, title, description, the rule as `analytic`, ATT&CK tags as `attacks`,
//! first/last seen from the event time or the correlation window); the CloudTrail call
//! is the evidence (`evidences[0]`: actor, api, src_endpoint), the record `raw_data`;
//! `cloud` names the account (with its alias from `enrich:`) and region; what OCSF
//! has no attribute for (input position, `fields`, correlation details, suppression)
//! goes into `unmapped`. Written straight into the output buffer ([`super::Obj`]).

use super::view::{NativeFinding, as_text};
use super::{Attack, Context, Obj, attack, epoch_ms};

/// Longest string OCSF allows.
const RAW_DATA_MAX: usize = 65_535;

/// The OCSF version written.
pub const VERSION: &str = "1.3.0";

/// The ATT&CK version the tags refer to.
const ATTACK_VERSION: &str = "v14";

/// OCSF `severity_id` of a trailhound level.
pub fn severity_id(level: &str) -> u8 {
    match level {
        "informational" => 1,
        "low" => 2,
        "medium" => 3,
        "high" => 4,
        "critical" => 5,
        _ => 0,
    }
}

fn severity_name(id: u8) -> &'static str {
    match id {
        1 => "Informational",
        2 => "Low",
        3 => "Medium",
        4 => "High",
        5 => "Critical",
        _ => "Unknown",
    }
}

/// Writes one OCSF line (with its `\n`).
pub fn write(cx: &Context<'_>, out: &mut Vec<u8>) {
    let f: &NativeFinding<'_> = cx.finding;
    let ev = &f.event;
    let detected = epoch_ms(&f.detected_at).unwrap_or(0);
    let corr = f.correlation();
    let (first_seen, last_seen) = match corr.as_ref().and_then(|c| c.window.as_ref()) {
        Some(w) => (epoch_ms(&w.start), epoch_ms(&w.end)),
        None => {
            let t = ev.time().and_then(epoch_ms);
            (t, t)
        }
    };
    let sev = severity_id(&f.rule.level);
    let a = attack(&f.rule.tags);
    let desc = cx.doc.and_then(|d| d.description.as_deref());
    let name = as_text(&ev.eventName);
    let service = as_text(&ev.eventSource);
    let event_id = as_text(&ev.eventID);

    let mut o = Obj::new(out);
    o.num("activity_id", 1)
        .str("activity_name", "Create")
        .num("category_uid", 2)
        .str("category_name", "Findings")
        .num("class_uid", 2004)
        .str("class_name", "Detection Finding")
        .num("type_uid", 200401)
        .str("type_name", "Detection Finding: Create")
        .num("severity_id", i64::from(sev))
        .str("severity", severity_name(sev))
        .num("status_id", 1)
        .str("status", "New")
        .num("time", detected)
        .str("message", &f.rule.title);
    {
        let mut m = o.obj("metadata");
        m.str("version", VERSION).str("uid", &f.id);
        m.obj("product")
            .str("name", "trailhound")
            .str("vendor_name", "trailhound")
            .str("version", env!("CARGO_PKG_VERSION"));
        m.strs("profiles", &["cloud"])
            .str("log_name", &f.input.name)
            .str("log_provider", "AWS CloudTrail");
    }
    {
        let mut info = o.obj("finding_info");
        info.str("uid", &f.id)
            .str("title", &f.rule.title)
            .opt_str("desc", desc);
        {
            let mut an = info.obj("analytic");
            an.str("uid", &f.rule.id)
                .str("name", &f.rule.title)
                .num("type_id", 1)
                .str("type", "Rule")
                .str("category", &f.rule.kind)
                .opt_str("desc", desc);
        }
        info.num("created_time", detected);
        if let Some(t) = first_seen {
            info.num("first_seen_time", t);
        }
        if let Some(t) = last_seen {
            info.num("last_seen_time", t);
        }
        info.strs("types", &[&*f.rule.kind])
            .strs("data_sources", &["AWS CloudTrail"]);
        if let Some(r) = cx.doc.and_then(|d| d.references.first()) {
            info.str("src_url", r);
        }
        if !a.techniques.is_empty() || !a.tactics.is_empty() {
            write_attacks(&mut info, &a);
        }
        if let Some(c) = corr.as_ref().filter(|c| !c.event_ids.is_empty()) {
            let mut rel = info.arr("related_events");
            for id in &c.event_ids {
                rel.obj()
                    .str("uid", id)
                    .str("product_uid", "aws-cloudtrail");
            }
        }
    }
    {
        let mut cloud = o.obj("cloud");
        cloud.str("provider", "AWS");
        cloud.opt_str("region", ev.awsRegion.as_str());
        let acct = ev.account();
        let alias = cx.account_alias();
        if acct.is_some() || alias.is_some() {
            let mut ac = cloud.obj("account");
            if let Some(id) = acct {
                ac.str("uid", id)
                    .num("type_id", 10)
                    .str("type", "AWS Account");
            }
            ac.opt_str("name", alias);
        }
    }
    if let Some(op) = &name {
        write_api(o.obj("api"), op, service.as_deref(), event_id.as_deref());
    }
    {
        let p = &ev.principal;
        let has_actor = p.arn.is_some() || p.kind.is_some() || p.account_id.is_some();
        let src = as_text(&ev.sourceIPAddress);
        if has_actor || name.is_some() || src.is_some() {
            let mut evs = o.arr("evidences");
            let mut e = evs.obj();
            if has_actor {
                write_actor(&mut e, cx);
            }
            if let Some(op) = &name {
                write_api(e.obj("api"), op, service.as_deref(), event_id.as_deref());
            }
            if let Some(src) = &src {
                let mut ep = e.obj("src_endpoint");
                if src.parse::<std::net::IpAddr>().is_ok() {
                    ep.str("ip", src);
                } else {
                    // A service principal (`ec2.amazonaws.com`), `AWS Internal`, or a
                    // value that is not a valid address.
                    ep.str("name", src);
                }
            }
        }
    }
    if let Some(t) = first_seen {
        o.num("start_time", t);
    }
    if let Some(t) = last_seen {
        o.num("end_time", t);
    }
    let count = match (&corr, f.suppressed) {
        (_, n) if n > 0 => Some(n),
        (Some(c), _) if c.event_count > 0 => Some(c.event_count),
        _ => None,
    };
    if let Some(n) = count {
        o.num("count", n as i64);
    }
    if !cx.enrich.tags.is_empty() {
        let mut en = o.arr("enrichments");
        for (k, v) in &cx.enrich.tags {
            let mut x = en.obj();
            x.str("name", k).str("value", v).str("type", "tag");
            x.obj("data").str(k, v);
        }
    }
    let mut truncated_from = None;
    if let Some(raw) = f.record {
        // OCSF caps strings at 65,535 characters; the whole record stays in the
        // native finding (and the archive).
        let text = raw.get();
        match text.char_indices().nth(RAW_DATA_MAX) {
            None => {
                o.str("raw_data", text);
            }
            Some((cut, _)) => {
                o.str("raw_data", &text[..cut]);
                truncated_from = Some(text.len());
            }
        }
    }
    {
        let mut u = o.obj("unmapped");
        f.input.write(u.obj("input"));
        u.str("rule_origin", &f.rule.origin);
        if !a.other.is_empty() {
            u.strs("rule_tags", &a.other);
        }
        if let Some(fields) = f.fields.filter(|r| r.get() != "{}") {
            u.raw("fields", fields.get());
        }
        if let Some(c) = f.correlation {
            u.raw("correlation", c.get());
        }
        if let Some(s) = f.suppression {
            u.raw("suppression", s.get());
        }
        if let Some(n) = truncated_from {
            u.num("raw_data_truncated_from", n as i64);
        }
    }
    drop(o);
    out.push(b'\n');
}

fn write_attacks(info: &mut Obj<'_>, a: &Attack<'_>) {
    let mut arr = info.arr("attacks");
    let tactic = |o: &mut Obj<'_>, (id, name): (&str, &str)| {
        o.obj("tactic").str("uid", id).str("name", name);
    };
    for t in &a.techniques {
        let mut m = arr.obj();
        m.obj("technique").str("uid", t);
        if let Some(sub) = a.sub_techniques.iter().find(|s| s.starts_with(t.as_str())) {
            m.obj("sub_technique").str("uid", sub);
        }
        if let Some(&first) = a.tactics.first() {
            tactic(&mut m, first);
        }
        m.str("version", ATTACK_VERSION);
    }
    let skip = usize::from(!a.techniques.is_empty());
    for &t in a.tactics.iter().skip(skip) {
        let mut m = arr.obj();
        tactic(&mut m, t);
        m.str("version", ATTACK_VERSION);
    }
}

fn write_actor(e: &mut Obj<'_>, cx: &Context<'_>) {
    let p = &cx.finding.event.principal;
    let mut actor = e.obj("actor");
    let mut user = actor.obj("user");
    if let Some(arn) = &p.arn {
        user.str("uid", arn)
            .str("name", arn.rsplit('/').next().unwrap_or(arn));
    }
    if let Some(t) = &p.kind {
        let type_id = match t.as_str() {
            "IAMUser" | "AssumedRole" | "FederatedUser" | "IdentityCenterUser" => 1,
            "Root" => 2,
            "AWSService" | "AWSAccount" => 3,
            _ => 99,
        };
        user.str("type", t).num("type_id", type_id);
    }
    if let Some(acct) = &p.account_id {
        let mut ac = user.obj("account");
        ac.str("uid", acct)
            .num("type_id", 10)
            .str("type", "AWS Account");
        ac.opt_str("name", cx.principal_alias());
    }
}

fn write_api(mut api: Obj<'_>, op: &str, service: Option<&str>, request: Option<&str>) {
    api.str("operation", op);
    if let Some(s) = service {
        api.obj("service").str("name", s);
    }
    if let Some(id) = request {
        api.obj("request").str("uid", id);
    }
}
