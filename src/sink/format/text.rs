//! The compact text line: one finding per line for a person at a terminal
//! (`schemas/finding-text.md` is its grammar).
//!
//! ```text
//! 2019-03-31T08:24:27Z HIGH IAM user created | iam.amazonaws.com CreateUser by arn:aws:iam::123456789012:user/alice from 203.0.113.5 in 123456789012 (prod-payments) us-east-1 | trail.json:12 [6f3c…]
//! ```
//!
//! Every value comes from the record, which an attacker may write: control characters
//! (terminal escapes among them) are shown as `\xNN`, never passed to the terminal.

use std::fmt::Write as _;

use super::Context;
use super::view::as_text;

/// The short level code.
pub fn level_code(level: &str) -> &'static str {
    match level {
        "informational" => "INFO",
        "low" => "LOW",
        "medium" => "MED",
        "high" => "HIGH",
        "critical" => "CRIT",
        _ => "????",
    }
}

fn level_colour(level: &str) -> &'static str {
    match level {
        "informational" => "\x1b[2m",
        "low" => "\x1b[36m",
        "medium" => "\x1b[33m",
        "high" => "\x1b[31m",
        "critical" => "\x1b[1;97;41m",
        _ => "",
    }
}

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";

/// Appends `s` with control characters escaped.
pub fn push_clean(out: &mut String, s: &str) {
    for c in s.chars() {
        if c.is_control() {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            out.push(c);
        }
    }
}

/// Writes one text line (with its `\n`).
pub fn write(cx: &Context<'_>, colour: bool, out: &mut Vec<u8>) {
    let f = cx.finding;
    let ev = &f.event;
    let paint = |s: &'static str| if colour { s } else { "" };
    let mut line = String::with_capacity(256);
    let corr = f.correlation();
    let time = match corr.as_ref().and_then(|c| c.window.as_ref()) {
        Some(w) => w.end.clone(),
        None => ev
            .time()
            .map(str::to_string)
            .unwrap_or_else(|| f.detected_at.to_string()),
    };
    push_clean(&mut line, &time);
    line.push(' ');
    line.push_str(paint(level_colour(&f.rule.level)));
    line.push_str(level_code(&f.rule.level));
    line.push_str(paint(RESET));
    line.push(' ');
    line.push_str(paint(BOLD));
    push_clean(&mut line, &f.rule.title);
    line.push_str(paint(RESET));
    line.push_str(" | ");
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    match &corr {
        Some(c) => {
            let _ = write!(line, "{} {} events", c.kind, c.event_count);
            for (k, v) in &c.group {
                line.push(' ');
                push_clean(&mut line, k);
                line.push('=');
                push_clean(&mut line, &as_text(v).unwrap_or_else(|| v.to_string()));
            }
            if let Some(w) = &c.window {
                line.push_str(" window ");
                push_clean(&mut line, &w.start);
                line.push_str("..");
                push_clean(&mut line, &w.end);
            }
        }
        None => {
            push_clean(&mut line, &or_dash(as_text(&ev.eventSource)));
            line.push(' ');
            push_clean(&mut line, &or_dash(as_text(&ev.eventName)));
            line.push_str(" by ");
            push_clean(&mut line, &or_dash(ev.principal.arn.clone()));
            line.push_str(" from ");
            push_clean(&mut line, &or_dash(as_text(&ev.sourceIPAddress)));
        }
    }
    line.push_str(" in ");
    push_clean(&mut line, ev.account().unwrap_or("-"));
    if let Some(alias) = cx.account_alias() {
        line.push_str(" (");
        push_clean(&mut line, alias);
        line.push(')');
    }
    line.push(' ');
    push_clean(&mut line, ev.awsRegion.as_str().unwrap_or("-"));
    if f.suppressed > 0 {
        let _ = write!(line, " (+{} suppressed)", f.suppressed);
    }
    line.push_str(" | ");
    line.push_str(paint(DIM));
    push_clean(&mut line, &f.input.name);
    let _ = write!(line, ":{} [", f.input.line);
    push_clean(&mut line, &f.rule.id);
    line.push(']');
    line.push_str(paint(RESET));
    line.push('\n');
    out.extend_from_slice(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        let mut s = String::new();
        push_clean(&mut s, "a\x1b[31mb\nc\u{9b}d");
        assert_eq!(s, "a\\x1b[31mb\\x0ac\\x9bd");
    }
}
