//! The one error type of the HTTP boundary: every failure becomes an RFC 9457 problem document
//! with the contract's stable `code` (contract section 2).

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
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

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

    /// The contract's stable code for this error.
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
            ApiError::Forbidden => "Forbidden",
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

    pub fn problem(&self) -> Problem {
        let code = self.code();
        Problem {
            problem_type: format!("urn:paygate:problem:{code}"),
            title: self.title().to_owned(),
            status: self.status_code().as_u16(),
            // An internal error's cause is logged, never sent.
            detail: self.to_string(),
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
            ApiError::Forbidden => StatusCode::FORBIDDEN,
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
        ApiError::Unavailable(format!("database unavailable: {err}"))
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(err: tokio_postgres::Error) -> Self {
        let transient = match err.as_db_error() {
            // No answer from the server at all: the connection broke.
            None => true,
            // The server is shutting down, restarting, or out of connections: retrying later
            // will succeed, so the client is told so instead of seeing an internal error.
            Some(db_error) => {
                let code = db_error.code().code();
                // 55P03: a lock wait ran past `lock_timeout`.
                code.starts_with("08")
                    || matches!(code, "57P01" | "57P02" | "57P03" | "53300" | "55P03")
            }
        };
        if transient {
            ApiError::Unavailable(format!("database unavailable: {err}"))
        } else {
            ApiError::Internal(err.into())
        }
    }
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
    fn a_validation_error_has_the_wire_format_of_the_contract() {
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
    fn signature_errors_map_to_the_two_contract_codes() {
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
