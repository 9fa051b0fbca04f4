//! Connections to AWS: one [`Connection`] (a `connections:` entry, or the flags of
//! `detect s3://…`) becomes one `aws_config::SdkConfig` shared by the S3, SQS and
//! CloudWatch Logs clients of the sources that name it.
//!
//! Credentials come from the SDK's default chain (environment, shared config and
//! credentials files with `profile`, SSO, `credential_process`, web identity, ECS
//! container credentials, EC2 instance metadata) unless `access_key`/`secret_key` are
//! given; `role_arn` then assumes a role on top of them (`external_id`,
//! `session_duration`, `session_name`). `endpoint_url` and `s3_force_path_style` point
//! the clients at MinIO, LocalStack, moto or a VPC endpoint.
//!
//! Secrets never reach a log line or an error: [`Connection`]'s `Debug` prints
//! `<redacted>` for them, and SDK errors are rendered by [`describe`], which shows the
//! service's error code and message only.

use std::fmt;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use serde::Deserialize;

/// How to reach AWS (a `connections:` entry, or inline in a source).
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    /// A profile of the shared config/credentials files.
    pub profile: Option<String>,
    /// The region (else the default chain's: `AWS_REGION`, the profile, IMDS).
    pub region: Option<String>,
    /// Static credentials (prefer `${ENV}` interpolation to writing them in the file).
    pub access_key: Option<String>,
    /// Static credentials.
    pub secret_key: Option<String>,
    /// Static credentials.
    pub session_token: Option<String>,
    /// Assume this role with the credentials above.
    pub role_arn: Option<String>,
    /// External id for `role_arn`.
    pub external_id: Option<String>,
    /// Session name for `role_arn` (default `trailhound`).
    pub session_name: Option<String>,
    /// Session duration for `role_arn` (`1h`; default the SDK's, 1h).
    pub session_duration: Option<String>,
    /// Another endpoint (MinIO, LocalStack, moto, a VPC endpoint).
    pub endpoint_url: Option<String>,
    /// Path-style S3 addressing (`http://host/bucket/key`), which most emulators need.
    #[serde(default)]
    pub s3_force_path_style: bool,
    /// Attempts per request, first included (default 3).
    pub max_error_retry_attempts: Option<u32>,
    /// Initial retry backoff (default 1s).
    pub min_error_retry_delay: Option<String>,
    /// Timeout of one API operation, retries included (default 120s).
    pub api_timeout: Option<String>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("Connection")
            .field("profile", &self.profile)
            .field("region", &self.region)
            .field("access_key", &secret(&self.access_key))
            .field("secret_key", &secret(&self.secret_key))
            .field("session_token", &secret(&self.session_token))
            .field("role_arn", &self.role_arn)
            .field("external_id", &secret(&self.external_id))
            .field("endpoint_url", &self.endpoint_url)
            .field("s3_force_path_style", &self.s3_force_path_style)
            .finish_non_exhaustive()
    }
}

/// A source's `connection:`: the name of a `connections:` entry, or one inline.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ConnectionRef {
    /// A `connections:` entry.
    Name(String),
    /// Inline.
    Inline(Box<Connection>),
}

/// A connection that cannot be set up.
#[derive(Debug, thiserror::Error)]
#[error("connection: {0}")]
pub struct ConnectionError(pub String);

fn duration(key: &str, v: &Option<String>) -> Result<Option<Duration>, ConnectionError> {
    crate::config::duration_field(key, v.as_deref()).map_err(ConnectionError)
}

impl Connection {
    /// Checks what can be checked without calling AWS.
    pub fn validate(&self) -> Result<(), ConnectionError> {
        if self.access_key.is_some() != self.secret_key.is_some() {
            return Err(ConnectionError(
                "access_key and secret_key go together".into(),
            ));
        }
        if self.session_token.is_some() && self.access_key.is_none() {
            return Err(ConnectionError(
                "session_token needs access_key and secret_key".into(),
            ));
        }
        if self.external_id.is_some() && self.role_arn.is_none() {
            return Err(ConnectionError("external_id needs role_arn".into()));
        }
        duration("session_duration", &self.session_duration)?;
        duration("min_error_retry_delay", &self.min_error_retry_delay)?;
        duration("api_timeout", &self.api_timeout)?;
        Ok(())
    }

    /// Loads the SDK configuration (credentials are resolved lazily, at the first call).
    pub async fn load(&self) -> Result<SdkConfig, ConnectionError> {
        self.validate()?;
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(p) = &self.profile {
            loader = loader.profile_name(p);
        }
        if let Some(r) = &self.region {
            loader = loader.region(Region::new(r.clone()));
        }
        if let Some(u) = &self.endpoint_url {
            loader = loader.endpoint_url(u);
        }
        if let (Some(ak), Some(sk)) = (&self.access_key, &self.secret_key) {
            loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                ak.clone(),
                sk.clone(),
                self.session_token.clone(),
                None,
                "trailhound-config",
            ));
        }
        let mut retry = aws_config::retry::RetryConfig::standard();
        if let Some(n) = self.max_error_retry_attempts {
            retry = retry.with_max_attempts(n.max(1));
        }
        if let Some(d) = duration("min_error_retry_delay", &self.min_error_retry_delay)? {
            retry = retry.with_initial_backoff(d);
        }
        loader = loader.retry_config(retry);
        let api_timeout =
            duration("api_timeout", &self.api_timeout)?.unwrap_or(Duration::from_secs(120));
        loader = loader.timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(api_timeout)
                .connect_timeout(Duration::from_secs(10))
                .build(),
        );
        let base = loader.load().await;
        let Some(role) = &self.role_arn else {
            return Ok(base);
        };
        let mut b = aws_config::sts::AssumeRoleProvider::builder(role.clone())
            .session_name(self.session_name.as_deref().unwrap_or("trailhound"))
            .configure(&base);
        if let Some(id) = &self.external_id {
            b = b.external_id(id.clone());
        }
        if let Some(d) = duration("session_duration", &self.session_duration)? {
            b = b.session_length(d);
        }
        let provider = b.build().await;
        Ok(base
            .into_builder()
            .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(provider))
            .build())
    }

    /// An S3 client for this connection.
    pub fn s3(&self, conf: &SdkConfig) -> aws_sdk_s3::Client {
        let b = aws_sdk_s3::config::Builder::from(conf).force_path_style(self.s3_force_path_style);
        aws_sdk_s3::Client::from_conf(b.build())
    }
}

/// An SDK error as one line: the service's code and message (or the transport
/// failure), never request details that could carry credentials.
pub fn describe<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug + 'static,
{
    use aws_sdk_s3::error::SdkError;
    match e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            match (err.code(), err.message()) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.to_string(),
                _ => err.to_string(),
            }
        }
        SdkError::TimeoutError(_) => "request timed out".into(),
        SdkError::DispatchFailure(d) => {
            if d.is_io() {
                // The OS's or the HTTP client's words (`Connection reset by peer`,
                // `Connection refused`) tell a reset from a refused connection.
                match io_cause(e) {
                    Some(cause) => format!("connection failed (I/O error): {cause}"),
                    None => "connection failed (I/O error)".into(),
                }
            } else if d.is_timeout() {
                "connection timed out".into()
            } else {
                format!("request could not be sent: {}", chain(e))
            }
        }
        SdkError::ResponseError(_) => "unreadable response".into(),
        SdkError::ConstructionFailure(_) => format!("request could not be built: {}", chain(e)),
        _ => "request failed".into(),
    }
}

/// Whether the service refused this request for lack of permission (`AccessDenied`):
/// a bucket policy or role may deny one prefix and allow the others, so the reader
/// goes on with the other prefixes. Every other error (throttling, 5xx, connection
/// failures, a missing bucket, bad credentials) concerns the whole service or bucket.
pub fn access_denied<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    matches!(e, aws_sdk_s3::error::SdkError::ServiceError(se) if se.err().code() == Some("AccessDenied"))
}

/// The innermost I/O error among an error's sources, as text (an OS error or the HTTP
/// client's own words; never request details).
fn io_cause(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut found = None;
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            found = Some(io.to_string());
        }
        cur = err.source();
    }
    found
}

/// An error and its sources, each once, `: `-separated (no Debug output, which can
/// carry request details).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = err.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        let c = Connection {
            access_key: Some("AKIAEXAMPLEKEY".into()),
            secret_key: Some("wJalrXUtnFEMI/K7MDENG".into()),
            session_token: Some("tok".into()),
            external_id: Some("ext".into()),
            role_arn: Some("arn:aws:iam::1:role/r".into()),
            ..Connection::default()
        };
        let d = format!("{c:?}");
        assert!(!d.contains("AKIAEXAMPLEKEY") && !d.contains("wJalr") && !d.contains("tok\""));
        assert!(d.contains("<redacted>") && d.contains("role/r"));
    }

    #[test]
    fn a_connection_failure_names_its_cause() {
        use aws_sdk_s3::config::http::HttpResponse;
        use aws_sdk_s3::error::{ConnectorError, SdkError};
        use aws_sdk_s3::operation::get_object::GetObjectError;
        let io = |kind, text: &str| {
            SdkError::<GetObjectError, HttpResponse>::dispatch_failure(ConnectorError::io(
                Box::new(std::io::Error::new(kind, text.to_string())),
            ))
        };
        assert_eq!(
            describe(&io(
                std::io::ErrorKind::ConnectionReset,
                "Connection reset by peer"
            )),
            "connection failed (I/O error): Connection reset by peer"
        );
        assert_eq!(
            describe(&io(
                std::io::ErrorKind::ConnectionRefused,
                "Connection refused"
            )),
            "connection failed (I/O error): Connection refused"
        );
        let opaque = SdkError::<GetObjectError, HttpResponse>::dispatch_failure(
            ConnectorError::io("no I/O error inside".into()),
        );
        assert_eq!(describe(&opaque), "connection failed (I/O error)");
    }

    #[test]
    fn only_access_denied_is_a_refusal_of_one_prefix() {
        use aws_sdk_s3::config::http::HttpResponse;
        use aws_sdk_s3::error::{ConnectorError, ErrorMetadata, SdkError};
        use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Error;
        use aws_sdk_s3::primitives::SdkBody;
        let service = |status: u16, code: &str| {
            let raw = HttpResponse::new(status.try_into().expect("status"), SdkBody::empty());
            let err = ListObjectsV2Error::generic(
                ErrorMetadata::builder()
                    .code(code)
                    .message("from the service")
                    .build(),
            );
            SdkError::service_error(err, raw)
        };
        let denied = service(403, "AccessDenied");
        assert!(access_denied(&denied));
        assert_eq!(describe(&denied), "AccessDenied: from the service");
        for (status, code) in [
            (503, "SlowDown"),
            (500, "InternalError"),
            (404, "NoSuchBucket"),
            (403, "InvalidAccessKeyId"),
            (400, "ExpiredToken"),
        ] {
            assert!(!access_denied(&service(status, code)), "{code}");
        }
        let io = SdkError::<ListObjectsV2Error, HttpResponse>::dispatch_failure(
            ConnectorError::io("reset".into()),
        );
        assert!(!access_denied(&io));
    }

    #[test]
    fn validation() {
        let half = Connection {
            access_key: Some("a".into()),
            ..Connection::default()
        };
        assert!(half.validate().is_err());
        let bad = Connection {
            api_timeout: Some("soon".into()),
            ..Connection::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("api_timeout")
        );
        assert!(Connection::default().validate().is_ok());
    }
}
