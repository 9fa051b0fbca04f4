//! What the Kafka sink ([`crate::sink::kafka`]) and source ([`crate::source::kafka`])
//! share: brokers, librdkafka properties, log forwarding.
//!
//! Both are librdkafka clients (through rdkafka). trailhound sets the properties its
//! delivery guarantees rest on and passes every other `rdkafka_options:` entry through
//! unchanged, so SASL, TLS and any broker-specific tuning are the user's to set, the way
//! librdkafka documents them (`security.protocol`, `sasl.mechanism`,
//! `ssl.ca.location`, …). Nothing here is specific to one broker implementation.
//!
//! Secrets: the values of properties that hold secrets (`sasl.password`,
//! `ssl.key.password`, `*.secret`, …) are never logged or shown in errors.

use std::collections::BTreeMap;

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use serde::Deserialize;

/// `brokers:` as a list or one comma-separated string.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Brokers {
    /// `["a:9092", "b:9092"]`
    List(Vec<String>),
    /// `"a:9092,b:9092"`
    One(String),
}

impl Brokers {
    /// The `bootstrap.servers` value.
    pub fn bootstrap(&self) -> String {
        match self {
            Brokers::List(v) => v.join(","),
            Brokers::One(s) => s.clone(),
        }
    }
}

/// A property value in YAML: a string, number or boolean.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum OptionValue {
    /// `"all"`
    Text(String),
    /// `5`
    Int(i64),
    /// `0.5`
    Float(f64),
    /// `true`
    Bool(bool),
}

impl OptionValue {
    /// The property's text.
    pub fn text(&self) -> String {
        match self {
            OptionValue::Text(s) => s.clone(),
            OptionValue::Int(n) => n.to_string(),
            OptionValue::Float(f) => f.to_string(),
            OptionValue::Bool(b) => b.to_string(),
        }
    }
}

/// Whether a librdkafka property holds a secret.
pub fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password")
        || k.contains("secret")
        || k.ends_with(".key.pem")
        || k.contains("sasl.jaas")
        || k == "sasl.oauthbearer.config"
}

/// The properties of a client: `defaults` (trailhound's), then `options` (the
/// user's, which win), then `forced` (what a guarantee depends on; a conflicting
/// user value is an error).
pub fn client_config(
    bootstrap: &str,
    defaults: &[(&str, String)],
    options: &BTreeMap<String, OptionValue>,
    forced: &[(&str, &str)],
) -> Result<ClientConfig, String> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    for (k, v) in defaults {
        c.set(*k, v.as_str());
    }
    for (k, v) in options {
        if k == "bootstrap.servers" {
            return Err("rdkafka_options: set the brokers with `brokers:`".into());
        }
        c.set(k.as_str(), v.text());
    }
    for (k, v) in forced {
        if let Some(user) = options.get(*k)
            && user.text() != *v
        {
            return Err(format!(
                "rdkafka_options: {k} must be {v} here (trailhound's delivery guarantee depends on it)"
            ));
        }
        c.set(*k, *v);
    }
    c.set_log_level(RDKafkaLogLevel::Warning);
    Ok(c)
}

/// The options for display: secrets replaced.
pub fn redacted(options: &BTreeMap<String, OptionValue>) -> BTreeMap<String, String> {
    options
        .iter()
        .map(|(k, v)| {
            let shown = if is_secret(k) {
                "<redacted>".to_string()
            } else {
                v.text()
            };
            (k.clone(), shown)
        })
        .collect()
}

/// A librdkafka error as trailhound reports it. A property librdkafka refuses is named
/// without the value it was given: that value may be a secret under a misspelt key
/// (`sasl.pasword`), which [`is_secret`] cannot recognise, and rdkafka's own message
/// carries it verbatim.
pub fn describe(e: &rdkafka::error::KafkaError) -> String {
    match e {
        rdkafka::error::KafkaError::ClientConfig(_, desc, key, value) => {
            let desc = if value.is_empty() {
                desc.clone()
            } else {
                desc.replace(value.as_str(), "<redacted>")
            };
            if desc.is_empty() {
                format!("client config error: property {key:?}")
            } else {
                format!("client config error: {desc}")
            }
        }
        other => other.to_string(),
    }
}

/// librdkafka's own log lines and errors, forwarded to `tracing` with the client's
/// role (`kafka sink siem`, `kafka source live`).
#[derive(Debug, Clone)]
pub struct LogContext {
    /// Who the client is, for log lines.
    pub who: String,
}

impl LogContext {
    fn log_line(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(client = %self.who, "librdkafka {fac}: {msg}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(client = %self.who, "librdkafka {fac}: {msg}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(client = %self.who, "librdkafka {fac}: {msg}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(client = %self.who, "librdkafka {fac}: {msg}")
            }
        }
    }
}

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.log_line(level, fac, log_message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        // Transport errors while a broker is down repeat every reconnect attempt.
        tracing::warn!(client = %self.who, "kafka: {error}: {reason}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forced_properties_cannot_be_overridden() {
        let mut opts = BTreeMap::new();
        opts.insert("acks".to_string(), OptionValue::Text("1".into()));
        let err = client_config("127.0.0.1:1", &[], &opts, &[("acks", "all")]).unwrap_err();
        assert!(err.contains("acks must be all"), "{err}");
        opts.insert("acks".to_string(), OptionValue::Text("all".into()));
        opts.insert("linger.ms".to_string(), OptionValue::Int(20));
        let c = client_config(
            "127.0.0.1:1",
            &[("linger.ms", "5".into())],
            &opts,
            &[("acks", "all")],
        )
        .expect("config");
        assert_eq!(c.get("linger.ms"), Some("20"));
        assert_eq!(c.get("bootstrap.servers"), Some("127.0.0.1:1"));
    }

    #[test]
    fn secrets_are_redacted() {
        let mut opts = BTreeMap::new();
        opts.insert(
            "sasl.password".to_string(),
            OptionValue::Text("hunter2".into()),
        );
        opts.insert("sasl.username".to_string(), OptionValue::Text("me".into()));
        let shown = format!("{:?}", redacted(&opts));
        assert!(!shown.contains("hunter2"));
        assert!(shown.contains("me"));
    }

    #[test]
    fn a_refused_property_is_named_without_its_value() {
        let mut opts = BTreeMap::new();
        opts.insert(
            "sasl.pasword".to_string(),
            OptionValue::Text("TypoSecret-4711".into()),
        );
        let c = client_config("127.0.0.1:1", &[], &opts, &[]).expect("config");
        let err = c
            .create::<rdkafka::producer::BaseProducer>()
            .err()
            .expect("librdkafka refuses an unknown property");
        assert!(
            err.to_string().contains("TypoSecret-4711"),
            "rdkafka shows it: {err}"
        );
        let shown = describe(&err);
        assert!(!shown.contains("TypoSecret-4711"), "{shown}");
        assert!(shown.contains("sasl.pasword"), "{shown}");
    }
}
