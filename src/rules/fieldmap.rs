//! Field names written against Tailpipe's `aws_cloudtrail_log` columns → CloudTrail
//! paths, so rules written for either spelling run unchanged.
//!
//! A field whose first segment is one of Tailpipe's snake_case column names is
//! rewritten: the column becomes its CloudTrail key (`event_name` → `eventName`,
//! `source_ip_address` → `sourceIPAddress`); inside the struct columns
//! (`user_identity`, `tls_details`) snake_case segments become camelCase
//! (`user_identity.session_context.session_issuer.user_name` →
//! `userIdentity.sessionContext.sessionIssuer.userName`); inside the JSON columns
//! (`request_parameters`, `response_elements`, …) the rest of the path is CloudTrail's
//! own and stays as written. Any other field is CloudTrail's spelling already.
//! The full table is in `docs/rules.md`.

use std::borrow::Cow;

/// Tailpipe column → (CloudTrail key, whether the rest of the path is snake_case).
const COLUMNS: &[(&str, &str, bool)] = &[
    ("additional_event_data", "additionalEventData", false),
    ("api_version", "apiVersion", false),
    ("aws_region", "awsRegion", false),
    ("edge_device_details", "edgeDeviceDetails", false),
    ("error_code", "errorCode", false),
    ("error_message", "errorMessage", false),
    ("event_category", "eventCategory", false),
    ("event_id", "eventID", false),
    ("event_name", "eventName", false),
    ("event_source", "eventSource", false),
    ("event_time", "eventTime", false),
    ("event_type", "eventType", false),
    ("event_version", "eventVersion", false),
    ("management_event", "managementEvent", false),
    ("read_only", "readOnly", false),
    ("recipient_account_id", "recipientAccountId", false),
    ("request_id", "requestID", false),
    ("request_parameters", "requestParameters", false),
    ("resources", "resources", false),
    ("response_elements", "responseElements", false),
    ("service_event_details", "serviceEventDetails", false),
    (
        "session_credential_from_console",
        "sessionCredentialFromConsole",
        false,
    ),
    ("shared_event_id", "sharedEventID", false),
    ("source_ip_address", "sourceIPAddress", false),
    ("tls_details", "tlsDetails", true),
    ("user_agent", "userAgent", false),
    ("user_identity", "userIdentity", true),
    ("vpc_endpoint_id", "vpcEndpointId", false),
];

/// snake_case → camelCase (`session_issuer` → `sessionIssuer`, `ec2_role_delivery` →
/// `ec2RoleDelivery`).
fn camel(seg: &str) -> String {
    let mut out = String::with_capacity(seg.len());
    let mut up = false;
    for c in seg.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// A rule's field name (CloudTrail, Tailpipe or JSONPath spelling) compiled to a path.
pub fn path(field: &str) -> Result<crate::event::FieldPath, crate::event::PathError> {
    crate::event::FieldPath::parse(&map(field))
}

/// The CloudTrail path for a rule's field name.
pub fn map(field: &str) -> Cow<'_, str> {
    let (head, rest) = match field.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (field, None),
    };
    let Some(&(_, key, snake_rest)) = COLUMNS.iter().find(|(col, _, _)| *col == head) else {
        return Cow::Borrowed(field);
    };
    if head == key && !snake_rest {
        return Cow::Borrowed(field);
    }
    let mut out = key.to_string();
    if let Some(rest) = rest {
        for seg in rest.split('.') {
            out.push('.');
            if snake_rest {
                out.push_str(&camel(seg));
            } else {
                out.push_str(seg);
            }
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::map;

    #[test]
    fn tailpipe_names_map_to_cloudtrail_paths() {
        assert_eq!(map("event_name"), "eventName");
        assert_eq!(map("source_ip_address"), "sourceIPAddress");
        assert_eq!(map("user_identity.arn"), "userIdentity.arn");
        assert_eq!(
            map("user_identity.session_context.session_issuer.user_name"),
            "userIdentity.sessionContext.sessionIssuer.userName"
        );
        assert_eq!(
            map("request_parameters.bucketName"),
            "requestParameters.bucketName"
        );
        assert_eq!(map("tls_details.tls_version"), "tlsDetails.tlsVersion");
        assert_eq!(map("eventName"), "eventName");
        assert_eq!(map("userIdentity.type"), "userIdentity.type");
        assert_eq!(map("resources.ARN"), "resources.ARN");
    }
}
