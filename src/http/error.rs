//! The one error type of the HTTP boundary: every failure becomes an RFC 9457 problem document
//! with a stable `code` (see `docs/api-guide.md`).
//!
//! What a client sees is chosen here, not by whoever raised the error: an internal error and a
//! database outage carry fixed texts, and their causes (driver messages, SQL, file paths) go to
//! the log only.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::signature::SignatureError;

/// One invalid input field, named by its dotted path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// Dotted path of the field, e.g. `details.tax_code`.
    #[schema(example = "details.tax_code")]
    pub field: String,
    #[schema(example = "must match ^[0-9]{10}(-[0-9]{3})?$")]
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// RFC 9457 problem details, as every error answer carries them.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:paygate:problem:validation_failed",
    "title": "Validation failed",
    "status": 422,
    "detail": "1 field is invalid",
    "code": "validation_failed",
    "errors": [{"field": "details.tax_code", "message": "must match ^[0-9]{10}(-[0-9]{3})?$"}]
}))]
pub struct Problem {
    /// `urn:paygate:problem:<code>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code; clients branch on this, never on `title` or `detail`.
    pub code: String,
    /// Present for `validation_failed`: every invalid field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("a valid API key is required (Authorization: Bearer <key>)")]
    Unauthenticated,
    #[error("this API key's role may not do this")]
    Forbidden,
    /// 403 with a code of its own: the caller is known but refused (e.g. `agency_disabled`).
    #[error("{detail}")]
    Refused { code: &'static str, detail: String },
    #[error("{detail}")]
    NotFound { code: &'static str, detail: String },
    #[error("{} invalid", plural_fields(.0.len()))]
    Validation(Vec<FieldError>),
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("the body is larger than {limit_bytes} bytes")]
    PayloadTooLarge { limit_bytes: usize },
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    #[error("{detail}")]
    Unprocessable { code: &'static str, detail: String },
    #[error("{0}")]
    Signature(SignatureError),
    /// The service cannot answer now but will on a retry: the database is away or overloaded,
    /// or a transaction lost a deadlock or a serialization conflict. The text is the cause, for
    /// the log; clients get [`UNAVAILABLE_DETAIL`] instead, so whatever text is put here
    /// (a driver message, SQL, a file path) never leaves the process.
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// The `detail` of every 503 `unavailable`, whatever its cause.
pub const UNAVAILABLE_DETAIL: &str = "the database is unavailable; retry later";

/// The `detail` of every 500 `internal_error`.
pub const INTERNAL_DETAIL: &str = "internal error";

fn plural_fields(n: usize) -> String {
    if n == 1 {
        "1 field is".to_owned()
    } else {
        format!("{n} fields are")
    }
}

impl ApiError {
    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::NotFound {
            code,
            detail: detail.into(),
        }
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::Conflict {
            code,
            detail: detail.into(),
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError::new(field, message)])
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(err.into())
    }

    /// The stable code for this error, which clients branch on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::Forbidden => "forbidden",
            ApiError::Validation(_) => "validation_failed",
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::NotFound { code, .. }
            | ApiError::BadRequest { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Refused { code, .. }
            | ApiError::Unprocessable { code, .. } => code,
            ApiError::Signature(SignatureError::Expired) => "signature_expired",
            ApiError::Signature(_) => "invalid_signature",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated => "Unauthenticated",
            ApiError::Forbidden | ApiError::Refused { .. } => "Forbidden",
            ApiError::NotFound { .. } => "Not found",
            ApiError::Validation(_) => "Validation failed",
            ApiError::MalformedJson(_) => "Malformed JSON",
            ApiError::PayloadTooLarge { .. } => "Payload too large",
            ApiError::BadRequest { .. } => "Bad request",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::Unprocessable { .. } => "Unprocessable request",
            ApiError::Signature(SignatureError::Expired) => "Signature expired",
            ApiError::Signature(_) => "Invalid signature",
            ApiError::Unavailable(_) => "Service unavailable",
            ApiError::Internal(_) => "Internal error",
        }
    }

    /// The `detail` a client may see. The causes of internal errors and outages are logged by
    /// [`ResponseError::error_response`], never sent.
    fn client_detail(&self) -> String {
        match self {
            ApiError::Unavailable(_) => UNAVAILABLE_DETAIL.to_owned(),
            ApiError::Internal(_) => INTERNAL_DETAIL.to_owned(),
            other => other.to_string(),
        }
    }

    pub fn problem(&self) -> Problem {
        let code = self.code();
        Problem {
            problem_type: format!("urn:paygate:problem:{code}"),
            title: self.title().to_owned(),
            status: self.status_code().as_u16(),
            detail: self.client_detail(),
            code: code.to_owned(),
            errors: match self {
                ApiError::Validation(errors) => Some(errors.clone()),
                _ => None,
            },
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated | ApiError::Signature(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden | ApiError::Refused { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Validation(_) | ApiError::Unprocessable { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::MalformedJson(_) | ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "internal error")
            }
            ApiError::Unavailable(cause) => tracing::warn!(error = %cause, "unavailable"),
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        response.content_type("application/problem+json");
        if matches!(self, ApiError::Unauthenticated) {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        response.json(self.problem())
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        // No connection within the wait timeout, or none could be opened: the database is
        // away or overloaded, which the client may retry.
        ApiError::Unavailable(format!("database unavailable: {}", with_causes(&err)))
    }
}

/// An error's text followed by the texts of its causes: the driver puts the server's message
/// (`FATAL: ...`) in a cause, and the log needs it.
fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(inner) = cause {
        // Wrappers often repeat their cause's text ("...: db error" over "db error").
        let inner_text = inner.to_string();
        if !text.ends_with(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        cause = inner.source();
    }
    text
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(err: tokio_postgres::Error) -> Self {
        let transient = match err.as_db_error() {
            // No answer from the server at all: the connection broke.
            None => true,
            Some(db_error) => is_transient_sqlstate(db_error.code().code()),
        };
        if transient {
            ApiError::Unavailable(format!("database unavailable: {}", with_causes(&err)))
        } else {
            ApiError::Internal(err.into())
        }
    }
}

/// Whether a statement that failed with this SQLSTATE would succeed if the client retried it
/// later, so that the answer is 503 `unavailable` rather than an internal error:
///
/// - class 08: the connection broke or could not be made;
/// - 40001 and 40P01: the transaction lost a serialization conflict or was chosen as a
///   deadlock's victim; nothing of it was kept, and running it again succeeds;
/// - 53300: the server has no connection slot left;
/// - 55P03: a lock wait ran past `lock_timeout`;
/// - 57P01, 57P02, 57P03: the server is shutting down, crashed, or is still starting.
pub fn is_transient_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "40001" | "40P01" | "53300" | "55P03" | "57P01" | "57P02" | "57P03"
        )
}

/// The name of the constraint a statement violated, if it violated one.
pub fn violated_constraint(err: &tokio_postgres::Error) -> Option<&str> {
    let db_error = err.as_db_error()?;
    let integrity = db_error.code().code().starts_with("23");
    integrity.then(|| db_error.constraint()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_validation_error_has_the_documented_wire_format() {
        let err = ApiError::Validation(vec![
            FieldError::new("details.tax_code", "must match ^[0-9]{10}(-[0-9]{3})?$"),
            FieldError::new("amount", "must be a string"),
        ]);
        let body = serde_json::to_value(err.problem()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "type": "urn:paygate:problem:validation_failed",
                "title": "Validation failed",
                "status": 422,
                "detail": "2 fields are invalid",
                "code": "validation_failed",
                "errors": [
                    {"field": "details.tax_code", "message": "must match ^[0-9]{10}(-[0-9]{3})?$"},
                    {"field": "amount", "message": "must be a string"}
                ]
            })
        );
    }

    #[test]
    fn an_internal_error_never_reveals_its_cause() {
        let err = ApiError::internal(anyhow::anyhow!("password=hunter2"));
        let body = serde_json::to_string(&err.problem()).unwrap();
        assert!(!body.contains("hunter2"), "{body}");
        assert!(body.contains("\"code\":\"internal_error\""), "{body}");
    }

    #[test]
    fn an_outage_answers_a_fixed_detail_and_never_its_cause() {
        let cause = "database unavailable: db error: FATAL: password authentication failed \
                     for user \"paygate\" at /var/lib/postgresql/data SELECT * FROM payments";
        let err = ApiError::Unavailable(cause.to_owned());
        assert_eq!(err.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        let problem = err.problem();
        assert_eq!(problem.detail, UNAVAILABLE_DETAIL);
        assert_eq!(problem.code, "unavailable");
        let body = serde_json::to_string(&problem).unwrap();
        for leak in [
            "password",
            "paygate\\\"",
            "/var/lib",
            "SELECT",
            "FATAL",
            "db error",
        ] {
            assert!(!body.contains(leak), "{leak} in {body}");
        }
    }

    #[test]
    fn the_logged_cause_of_an_outage_keeps_the_servers_message() {
        #[derive(Debug, thiserror::Error)]
        #[error("db error")]
        struct Outer(#[source] Inner);
        #[derive(Debug, thiserror::Error)]
        #[error("FATAL: the database system is shutting down")]
        struct Inner;
        assert_eq!(
            with_causes(&Outer(Inner)),
            "db error: FATAL: the database system is shutting down"
        );
    }

    #[test]
    fn deadlocks_serialization_failures_and_broken_connections_are_transient() {
        for code in [
            "40001", "40P01", "08000", "08003", "08006", "08001", "08004", "08P01", "53300",
            "55P03", "57P01", "57P02", "57P03",
        ] {
            assert!(is_transient_sqlstate(code), "{code}");
        }
    }

    #[test]
    fn integrity_syntax_and_permission_errors_are_not_transient() {
        // These would fail again on a retry: they are bugs or broken invariants (500), or are
        // answered by the caller before they reach this mapping (23505 by constraint name).
        for code in [
            "23505", "23514", "23503", "42601", "42P01", "42501", "22001", "22P02", "40002",
            "40003", "53100", "XX000", "P0001",
        ] {
            assert!(!is_transient_sqlstate(code), "{code}");
        }
    }

    #[test]
    fn signature_errors_map_to_the_two_signature_codes() {
        assert_eq!(
            ApiError::Signature(SignatureError::Expired).code(),
            "signature_expired"
        );
        for err in [
            SignatureError::Malformed,
            SignatureError::UnknownKey,
            SignatureError::BadMac,
        ] {
            assert_eq!(ApiError::Signature(err).code(), "invalid_signature");
            assert_eq!(
                ApiError::Signature(err).status_code(),
                StatusCode::UNAUTHORIZED
            );
        }
    }
}
