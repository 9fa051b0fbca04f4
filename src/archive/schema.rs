//! The `aws_cloudtrail_log` table: the one place that names its columns.
//!
//! Column names and types follow Tailpipe's AWS plugin (`tables/cloudtrail_log`), so the
//! queries Tailpipe users run work unchanged. JSON columns (`request_parameters`, …) are
//! VARCHAR holding compact JSON text (`::JSON` in DuckDB); `user_identity` and
//! `tls_details` are structs; event times are `TIMESTAMP` (UTC values, microseconds). The
//! partition columns `tp_table`, `tp_partition`, `tp_index` and `tp_date` live in the
//! hive path, not in the files (DuckDB adds them with `hive_partitioning=true`).
//!
//! Where a record does not fit a type (a non-ISO `eventTime`, `readOnly: "yes"`), the
//! column is NULL and the raw value is kept in `tp_misfits`, a JSON object
//! `{"<column>": <raw value>}` (NULL when everything fits). The full mapping is in
//! `docs/archive.md`.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};

/// How a CloudTrail value becomes a column value.
#[derive(Debug, Clone)]
pub enum ColKind {
    /// VARCHAR: strings as they are, other scalars as their text, objects/arrays as JSON.
    Str,
    /// VARCHAR holding JSON text.
    Json,
    /// BOOLEAN (`true`/`false`, or the strings `"true"`/`"false"`).
    Bool,
    /// TIMESTAMP from an ISO-8601 string.
    Timestamp,
    /// A struct of further columns, read from a JSON object.
    Struct(Vec<Col>),
}

/// One column: its name, the CloudTrail key it is read from, and its kind.
#[derive(Debug, Clone)]
pub struct Col {
    /// Column name (Tailpipe's).
    pub name: &'static str,
    /// Key in the CloudTrail object (relative to the parent struct).
    pub key: &'static str,
    /// Type.
    pub kind: ColKind,
}

const fn c(name: &'static str, key: &'static str, kind: ColKind) -> Col {
    Col { name, key, kind }
}

fn s(name: &'static str, key: &'static str) -> Col {
    c(name, key, ColKind::Str)
}

fn j(name: &'static str, key: &'static str) -> Col {
    c(name, key, ColKind::Json)
}

/// The CloudTrail columns, in Tailpipe's order.
pub fn record_columns() -> Vec<Col> {
    let session_context = ColKind::Struct(vec![
        c(
            "attributes",
            "attributes",
            ColKind::Struct(vec![
                s("creation_date", "creationDate"),
                s("mfa_authenticated", "mfaAuthenticated"),
            ]),
        ),
        s("ec2_role_delivery", "ec2RoleDelivery"),
        c(
            "session_issuer",
            "sessionIssuer",
            ColKind::Struct(vec![
                s("account_id", "accountId"),
                s("arn", "arn"),
                s("principal_id", "principalId"),
                s("type", "type"),
                s("user_name", "userName"),
            ]),
        ),
        c(
            "web_id_federation_data",
            "webIdFederationData",
            ColKind::Struct(vec![
                j("attributes", "attributes"),
                s("federated_provider", "federatedProvider"),
            ]),
        ),
    ]);
    let user_identity = ColKind::Struct(vec![
        s("access_key_id", "accessKeyId"),
        s("account_id", "accountId"),
        s("arn", "arn"),
        s("identity_provider", "identityProvider"),
        s("invoked_by", "invokedBy"),
        s("principal_id", "principalId"),
        c("session_context", "sessionContext", session_context),
        s("type", "type"),
        s("user_name", "userName"),
    ]);
    vec![
        j("additional_event_data", "additionalEventData"),
        s("api_version", "apiVersion"),
        s("aws_region", "awsRegion"),
        j("edge_device_details", "edgeDeviceDetails"),
        s("error_code", "errorCode"),
        s("error_message", "errorMessage"),
        s("event_category", "eventCategory"),
        s("event_id", "eventID"),
        s("event_name", "eventName"),
        s("event_source", "eventSource"),
        c("event_time", "eventTime", ColKind::Timestamp),
        s("event_type", "eventType"),
        s("event_version", "eventVersion"),
        c("management_event", "managementEvent", ColKind::Bool),
        c("read_only", "readOnly", ColKind::Bool),
        s("recipient_account_id", "recipientAccountId"),
        s("request_id", "requestID"),
        j("request_parameters", "requestParameters"),
        j("resources", "resources"),
        j("response_elements", "responseElements"),
        j("service_event_details", "serviceEventDetails"),
        s(
            "session_credential_from_console",
            "sessionCredentialFromConsole",
        ),
        s("shared_event_id", "sharedEventID"),
        s("source_ip_address", "sourceIPAddress"),
        c(
            "tls_details",
            "tlsDetails",
            ColKind::Struct(vec![
                s("cipher_suite", "cipherSuite"),
                s("client_provided_host_header", "clientProvidedHostHeader"),
                s("tls_version", "tlsVersion"),
            ]),
        ),
        s("user_agent", "userAgent"),
        c("user_identity", "userIdentity", user_identity),
        s("vpc_endpoint_id", "vpcEndpointId"),
    ]
}

/// The CloudTrail path of a column given by its (dotted) name, e.g.
/// `user_identity.account_id` → `userIdentity.accountId`.
pub fn cloudtrail_path(column: &str) -> Option<String> {
    let mut cols = record_columns();
    let mut keys = Vec::new();
    for part in column.split('.') {
        let c = cols.into_iter().find(|c| c.name == part)?;
        keys.push(c.key);
        cols = match c.kind {
            ColKind::Struct(children) => children,
            _ => Vec::new(),
        };
    }
    Some(keys.join("."))
}

/// Tailpipe's standard columns stored in the files (the partition columns are in the path).
pub const TP_STRING_COLUMNS: [&str; 5] = [
    "tp_id",
    "tp_source_type",
    "tp_source_ip",
    "tp_source_name",
    "tp_source_location",
];
/// Tailpipe's list columns.
pub const TP_LIST_COLUMNS: [&str; 6] = [
    "tp_akas",
    "tp_ips",
    "tp_tags",
    "tp_domains",
    "tp_emails",
    "tp_usernames",
];

fn data_type(kind: &ColKind) -> DataType {
    match kind {
        ColKind::Str | ColKind::Json => DataType::Utf8,
        ColKind::Bool => DataType::Boolean,
        ColKind::Timestamp => timestamp_type(),
        ColKind::Struct(cols) => DataType::Struct(struct_fields(cols)),
    }
}

/// `TIMESTAMP` (microseconds; the values are UTC, as in Tailpipe, without a zone).
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, None)
}

/// The Arrow fields of a struct column.
pub fn struct_fields(cols: &[Col]) -> Fields {
    cols.iter()
        .map(|c| Field::new(c.name, data_type(&c.kind), true))
        .collect()
}

/// The item field of the list columns.
pub fn list_item() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Utf8, true))
}

/// The schema of the archive files.
pub fn schema() -> Arc<Schema> {
    let mut fields: Vec<Field> = Vec::new();
    for name in TP_STRING_COLUMNS.iter().take(2) {
        fields.push(Field::new(*name, DataType::Utf8, true));
    }
    fields.push(Field::new("tp_ingest_timestamp", timestamp_type(), true));
    fields.push(Field::new("tp_timestamp", timestamp_type(), true));
    for name in TP_STRING_COLUMNS.iter().skip(2) {
        fields.push(Field::new(*name, DataType::Utf8, true));
    }
    fields.push(Field::new("tp_destination_ip", DataType::Utf8, true));
    for name in TP_LIST_COLUMNS {
        fields.push(Field::new(name, DataType::List(list_item()), true));
    }
    for col in record_columns() {
        fields.push(Field::new(col.name, data_type(&col.kind), true));
    }
    fields.push(Field::new("tp_misfits", DataType::Utf8, true));
    Arc::new(Schema::new(fields))
}
