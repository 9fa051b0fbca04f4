//! OCSF 1.3.0 Detection Finding (class_uid 2004, category Findings), with the `cloud`
//! profile: the shape Amazon Security Lake and most SIEMs ingest.
//!
//! Mapping (docs/output.md has the table): the finding is `finding_info` (uid = the
//! finding id, title, description, the rule as `analytic`, ATT&CK tags as `attacks`,
//! first/last seen from the event time or the correlation window); the CloudTrail call
//! is the evidence (`evidences[0]`: actor, api, src_endpoint), the record `raw_data`;
//! `cloud` names the account (with its alias from `enrich:`) and region; what OCSF
//! has no attribute for (input position, `fields`, correlation details, suppression)
//! goes into `unmapped`.

use serde_json::{Map, Value, json};

use super::view::{NativeFinding, as_text};
use super::{Context, attack, epoch_ms};

/// Longest string OCSF allows.
const RAW_DATA_MAX: usize = 65_535;

/// The OCSF version written.
pub const VERSION: &str = "1.3.0";

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
    let v = build(cx);
    let _ = serde_json::to_writer(&mut *out, &v);
    out.push(b'\n');
}

/// The OCSF event of a finding.
pub fn build(cx: &Context<'_>) -> Value {
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

    let mut analytic = Map::new();
    analytic.insert("uid".into(), json!(f.rule.id));
    analytic.insert("name".into(), json!(f.rule.title));
    analytic.insert("type_id".into(), json!(1));
    analytic.insert("type".into(), json!("Rule"));
    analytic.insert("category".into(), json!(f.rule.kind));
    if let Some(d) = cx.doc.and_then(|d| d.description.as_deref()) {
        analytic.insert("desc".into(), json!(d));
    }

    let mut info = Map::new();
    info.insert("uid".into(), json!(f.id));
    info.insert("title".into(), json!(f.rule.title));
    if let Some(d) = cx.doc.and_then(|d| d.description.as_deref()) {
        info.insert("desc".into(), json!(d));
    }
    info.insert("analytic".into(), Value::Object(analytic));
    info.insert("created_time".into(), json!(detected));
    if let Some(t) = first_seen {
        info.insert("first_seen_time".into(), json!(t));
    }
    if let Some(t) = last_seen {
        info.insert("last_seen_time".into(), json!(t));
    }
    info.insert("types".into(), json!([f.rule.kind]));
    info.insert("data_sources".into(), json!(["AWS CloudTrail"]));
    if let Some(refs) = cx.doc.map(|d| &d.references).filter(|r| !r.is_empty()) {
        info.insert("src_url".into(), json!(refs[0]));
    }
    let attacks = attacks(&a);
    if !attacks.is_empty() {
        info.insert("attacks".into(), Value::Array(attacks));
    }
    if let Some(c) = &corr {
        let related: Vec<Value> = c
            .event_ids
            .iter()
            .map(|id| json!({"uid": id, "product_uid": "aws-cloudtrail"}))
            .collect();
        if !related.is_empty() {
            info.insert("related_events".into(), Value::Array(related));
        }
    }

    let mut account = Map::new();
    if let Some(acct) = ev.account() {
        account.insert("uid".into(), json!(acct));
        account.insert("type_id".into(), json!(10));
        account.insert("type".into(), json!("AWS Account"));
    }
    if let Some(alias) = cx.account_alias() {
        account.insert("name".into(), json!(alias));
    }
    let mut cloud = Map::new();
    cloud.insert("provider".into(), json!("AWS"));
    if let Some(r) = ev.awsRegion.as_str() {
        cloud.insert("region".into(), json!(r));
    }
    if !account.is_empty() {
        cloud.insert("account".into(), Value::Object(account));
    }

    let mut evidence = Map::new();
    if let Some(actor) = actor(cx) {
        evidence.insert("actor".into(), actor);
    }
    if let Some(api) = api(ev) {
        evidence.insert("api".into(), api.clone());
    }
    if let Some(ep) = endpoint(ev) {
        evidence.insert("src_endpoint".into(), ep);
    }

    let mut unmapped = Map::new();
    unmapped.insert(
        "input".into(),
        json!({
            "name": f.input.name,
            "record_index": f.input.record_index,
            "line": f.input.line,
            "byte_offset": f.input.byte_offset,
        }),
    );
    unmapped.insert("rule_origin".into(), json!(f.rule.origin));
    if !a.other.is_empty() {
        unmapped.insert("rule_tags".into(), json!(a.other));
    }
    let fields = NativeFinding::value_of(f.fields);
    if fields.as_object().is_some_and(|m| !m.is_empty()) {
        unmapped.insert("fields".into(), fields);
    }
    if f.correlation.is_some() {
        unmapped.insert("correlation".into(), NativeFinding::value_of(f.correlation));
    }
    if f.suppression.is_some() {
        unmapped.insert("suppression".into(), NativeFinding::value_of(f.suppression));
    }

    let mut o = Map::new();
    o.insert("activity_id".into(), json!(1));
    o.insert("activity_name".into(), json!("Create"));
    o.insert("category_uid".into(), json!(2));
    o.insert("category_name".into(), json!("Findings"));
    o.insert("class_uid".into(), json!(2004));
    o.insert("class_name".into(), json!("Detection Finding"));
    o.insert("type_uid".into(), json!(200401));
    o.insert("type_name".into(), json!("Detection Finding: Create"));
    o.insert("severity_id".into(), json!(sev));
    o.insert("severity".into(), json!(severity_name(sev)));
    o.insert("status_id".into(), json!(1));
    o.insert("status".into(), json!("New"));
    o.insert("time".into(), json!(detected));
    o.insert("message".into(), json!(f.rule.title));
    o.insert(
        "metadata".into(),
        json!({
            "version": VERSION,
            "uid": f.id,
            "product": {
                "name": "trailhound",
                "vendor_name": "trailhound",
                "version": env!("CARGO_PKG_VERSION"),
            },
            "profiles": ["cloud"],
            "log_name": f.input.name,
            "log_provider": "AWS CloudTrail",
        }),
    );
    o.insert("finding_info".into(), Value::Object(info));
    o.insert("cloud".into(), Value::Object(cloud));
    if let Some(api) = api(ev) {
        o.insert("api".into(), api);
    }
    if !evidence.is_empty() {
        o.insert("evidences".into(), json!([Value::Object(evidence)]));
    }
    if let Some(first) = first_seen {
        o.insert("start_time".into(), json!(first));
    }
    if let Some(last) = last_seen {
        o.insert("end_time".into(), json!(last));
    }
    let count = match (&corr, f.suppressed) {
        (_, n) if n > 0 => Some(n),
        (Some(c), _) if c.event_count > 0 => Some(c.event_count),
        _ => None,
    };
    if let Some(n) = count {
        o.insert("count".into(), json!(n));
    }
    let enrichments: Vec<Value> = cx
        .enrich
        .tags
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v, "type": "tag", "data": {k: v}}))
        .collect();
    if !enrichments.is_empty() {
        o.insert("enrichments".into(), Value::Array(enrichments));
    }
    o.insert("unmapped".into(), Value::Object(unmapped));
    if let Some(raw) = f.record {
        // OCSF caps strings at 65,535 characters; the whole record stays in the
        // native finding (and the archive).
        let text = raw.get();
        if text.chars().count() <= RAW_DATA_MAX {
            o.insert("raw_data".into(), json!(text));
        } else {
            let cut: String = text.chars().take(RAW_DATA_MAX).collect();
            o.insert("raw_data".into(), json!(cut));
            if let Some(Value::Object(u)) = o.get_mut("unmapped") {
                u.insert("raw_data_truncated_from".into(), json!(text.len()));
            }
        }
    }
    Value::Object(o)
}

fn attacks(a: &super::Attack<'_>) -> Vec<Value> {
    let tactic = |(id, name): (&str, &str)| json!({"uid": id, "name": name});
    let mut out = Vec::new();
    for t in &a.techniques {
        let mut m = Map::new();
        m.insert("technique".into(), json!({"uid": t}));
        if let Some(sub) = a.sub_techniques.iter().find(|s| s.starts_with(t.as_str())) {
            m.insert("sub_technique".into(), json!({"uid": sub}));
        }
        if let Some(&first) = a.tactics.first() {
            m.insert("tactic".into(), tactic(first));
        }
        m.insert("version".into(), json!("v14"));
        out.push(Value::Object(m));
    }
    let skip = usize::from(!a.techniques.is_empty());
    for &t in a.tactics.iter().skip(skip) {
        out.push(json!({"tactic": tactic(t), "version": "v14"}));
    }
    out
}

fn actor(cx: &Context<'_>) -> Option<Value> {
    let p = &cx.finding.event.principal;
    if p.arn.is_none() && p.kind.is_none() && p.account_id.is_none() {
        return None;
    }
    let mut user = Map::new();
    if let Some(arn) = &p.arn {
        user.insert("uid".into(), json!(arn));
        let name = arn.rsplit('/').next().unwrap_or(arn);
        user.insert("name".into(), json!(name));
    }
    if let Some(t) = &p.kind {
        user.insert("type".into(), json!(t));
        let type_id = match t.as_str() {
            "IAMUser" | "AssumedRole" | "FederatedUser" | "IdentityCenterUser" => 1,
            "Root" => 2,
            "AWSService" | "AWSAccount" => 3,
            _ => 99,
        };
        user.insert("type_id".into(), json!(type_id));
    }
    if let Some(acct) = &p.account_id {
        let mut account = Map::new();
        account.insert("uid".into(), json!(acct));
        account.insert("type_id".into(), json!(10));
        account.insert("type".into(), json!("AWS Account"));
        if let Some(alias) = cx.principal_alias() {
            account.insert("name".into(), json!(alias));
        }
        user.insert("account".into(), Value::Object(account));
    }
    Some(json!({"user": Value::Object(user)}))
}

fn api(ev: &super::view::EventView) -> Option<Value> {
    let op = as_text(&ev.eventName)?;
    let mut api = Map::new();
    api.insert("operation".into(), json!(op));
    if let Some(s) = as_text(&ev.eventSource) {
        api.insert("service".into(), json!({"name": s}));
    }
    if let Some(id) = as_text(&ev.eventID) {
        api.insert("request".into(), json!({"uid": id}));
    }
    Some(Value::Object(api))
}

fn endpoint(ev: &super::view::EventView) -> Option<Value> {
    let src = as_text(&ev.sourceIPAddress)?;
    Some(if src.parse::<std::net::IpAddr>().is_ok() {
        json!({"ip": src})
    } else {
        // A service principal (`ec2.amazonaws.com`), `AWS Internal`, or a value that
        // is not a valid address.
        json!({"name": src})
    })
}
