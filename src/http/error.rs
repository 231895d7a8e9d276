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

use crate::db::error::is_transient_sqlstate;
pub use crate::db::error::DbError;
pub use crate::domain::FieldError;
use crate::signature::SignatureError;

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
    pub code: ErrorCode,
    /// Present for `validation_failed`: every invalid field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

// `docs/api-guide.md` lists these codes with their statuses; a test holds the list against the
// OpenAPI document, so a code cannot be added or documented on one side only.
/// Every stable, machine-readable `code` an error answer can carry; clients branch on these,
/// never on `title` or `detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// the body is not JSON at all.
    MalformedJson,
    /// the body could not be read.
    MalformedBody,
    /// a create without a usable `Idempotency-Key`.
    IdempotencyKeyRequired,
    /// no API key, or an unknown or revoked one.
    Unauthenticated,
    /// a bank request whose signature does not verify.
    InvalidSignature,
    /// a correctly signed bank request that is too old or too new.
    SignatureExpired,
    /// the key's role may not make this request.
    Forbidden,
    /// a request with the key of a disabled agency.
    AgencyDisabled,
    /// an inquiry from a disabled bank.
    BankDisabled,
    /// no such endpoint or resource.
    NotFound,
    /// no such order.
    PaymentNotFound,
    /// no agency with that code.
    AgencyNotFound,
    /// no bank with that code.
    BankNotFound,
    /// no such API key or signing key.
    KeyNotFound,
    /// no such event.
    EventNotFound,
    /// no such reconciliation run.
    ReconciliationNotFound,
    /// an agency or bank with that code exists.
    DuplicateCode,
    /// an active order with that reference exists.
    DuplicateReference,
    /// a create with the same key is in flight.
    IdempotencyKeyInUse,
    /// the order is paid or expired.
    NotCancellable,
    /// a `bank_txn_id` reused with different content.
    BankTxnConflict,
    /// the same callback is being applied at this moment.
    CallbackInFlight,
    /// revoking the last live admin key.
    LastAdminKey,
    /// the body is over its limit.
    PayloadTooLarge,
    /// one or more fields are invalid.
    ValidationFailed,
    /// an obligation's `details_schema` breaks the catalog's rules.
    InvalidSchema,
    /// the obligation is inactive and refuses new orders.
    ObligationInactive,
    /// the agency may not use this obligation.
    ObligationNotAllowed,
    /// a key reused with a different body.
    IdempotencyKeyReused,
    /// a callback's amount or currency differs from the order's.
    AmountMismatch,
    /// no such case (or not the agency's own).
    CaseNotFound,
    /// no such refund (or not the caller's own; for a bank's result, not its refund or not yet approved).
    RefundNotFound,
    /// the case is resolved, or a resolution of it is under way.
    CaseResolved,
    /// `no_action` on a case whose money is in suspense: refund or apply it.
    MoneyInSuspense,
    /// the key that requested a money movement may not approve or reject it.
    SameApprover,
    /// only a paid order can be refunded.
    PaymentNotRefundable,
    /// the order's refunds would exceed its amount.
    RefundExceedsPayment,
    /// the refund (or the case's `apply`) is no longer waiting for approval.
    RefundNotPending,
    /// a different result for a refund that already has one.
    RefundResultConflict,
    /// a sandbox scenario that needs an order past its `expires_at`, on one that is not yet.
    OrderNotExpired,
    /// a key for the built-in sandbox bank, which has none: nobody signs as it.
    BuiltinBank,
    /// a fault in paygate.
    InternalError,
    /// the database is unavailable: retry later.
    Unavailable,
}

impl ErrorCode {
    /// Every code, so that lists and tests never miss one.
    pub const ALL: [ErrorCode; 43] = [
        ErrorCode::MalformedJson,
        ErrorCode::MalformedBody,
        ErrorCode::IdempotencyKeyRequired,
        ErrorCode::Unauthenticated,
        ErrorCode::InvalidSignature,
        ErrorCode::SignatureExpired,
        ErrorCode::Forbidden,
        ErrorCode::AgencyDisabled,
        ErrorCode::BankDisabled,
        ErrorCode::NotFound,
        ErrorCode::PaymentNotFound,
        ErrorCode::AgencyNotFound,
        ErrorCode::BankNotFound,
        ErrorCode::KeyNotFound,
        ErrorCode::EventNotFound,
        ErrorCode::ReconciliationNotFound,
        ErrorCode::DuplicateCode,
        ErrorCode::DuplicateReference,
        ErrorCode::IdempotencyKeyInUse,
        ErrorCode::NotCancellable,
        ErrorCode::BankTxnConflict,
        ErrorCode::CallbackInFlight,
        ErrorCode::LastAdminKey,
        ErrorCode::PayloadTooLarge,
        ErrorCode::ValidationFailed,
        ErrorCode::InvalidSchema,
        ErrorCode::ObligationInactive,
        ErrorCode::ObligationNotAllowed,
        ErrorCode::IdempotencyKeyReused,
        ErrorCode::AmountMismatch,
        ErrorCode::CaseNotFound,
        ErrorCode::RefundNotFound,
        ErrorCode::CaseResolved,
        ErrorCode::MoneyInSuspense,
        ErrorCode::SameApprover,
        ErrorCode::PaymentNotRefundable,
        ErrorCode::RefundExceedsPayment,
        ErrorCode::RefundNotPending,
        ErrorCode::RefundResultConflict,
        ErrorCode::OrderNotExpired,
        ErrorCode::BuiltinBank,
        ErrorCode::InternalError,
        ErrorCode::Unavailable,
    ];

    /// The code as the wire carries it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedJson => "malformed_json",
            ErrorCode::MalformedBody => "malformed_body",
            ErrorCode::IdempotencyKeyRequired => "idempotency_key_required",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::InvalidSignature => "invalid_signature",
            ErrorCode::SignatureExpired => "signature_expired",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::AgencyDisabled => "agency_disabled",
            ErrorCode::BankDisabled => "bank_disabled",
            ErrorCode::NotFound => "not_found",
            ErrorCode::PaymentNotFound => "payment_not_found",
            ErrorCode::AgencyNotFound => "agency_not_found",
            ErrorCode::BankNotFound => "bank_not_found",
            ErrorCode::KeyNotFound => "key_not_found",
            ErrorCode::EventNotFound => "event_not_found",
            ErrorCode::ReconciliationNotFound => "reconciliation_not_found",
            ErrorCode::DuplicateCode => "duplicate_code",
            ErrorCode::DuplicateReference => "duplicate_reference",
            ErrorCode::IdempotencyKeyInUse => "idempotency_key_in_use",
            ErrorCode::NotCancellable => "not_cancellable",
            ErrorCode::BankTxnConflict => "bank_txn_conflict",
            ErrorCode::CallbackInFlight => "callback_in_flight",
            ErrorCode::LastAdminKey => "last_admin_key",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::InvalidSchema => "invalid_schema",
            ErrorCode::ObligationInactive => "obligation_inactive",
            ErrorCode::ObligationNotAllowed => "obligation_not_allowed",
            ErrorCode::IdempotencyKeyReused => "idempotency_key_reused",
            ErrorCode::AmountMismatch => "amount_mismatch",
            ErrorCode::CaseNotFound => "case_not_found",
            ErrorCode::RefundNotFound => "refund_not_found",
            ErrorCode::CaseResolved => "case_resolved",
            ErrorCode::MoneyInSuspense => "money_in_suspense",
            ErrorCode::SameApprover => "same_approver",
            ErrorCode::PaymentNotRefundable => "payment_not_refundable",
            ErrorCode::RefundExceedsPayment => "refund_exceeds_payment",
            ErrorCode::RefundNotPending => "refund_not_pending",
            ErrorCode::RefundResultConflict => "refund_result_conflict",
            ErrorCode::OrderNotExpired => "order_not_expired",
            ErrorCode::BuiltinBank => "builtin_bank",
            ErrorCode::InternalError => "internal_error",
            ErrorCode::Unavailable => "unavailable",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("a valid API key is required (Authorization: Bearer <key>)")]
    Unauthenticated,
    #[error("this API key's role may not do this")]
    Forbidden,
    /// 403 with a code of its own: the caller is known but refused (e.g. `agency_disabled`).
    #[error("{detail}")]
    Refused { code: ErrorCode, detail: String },
    #[error("{detail}")]
    NotFound { code: ErrorCode, detail: String },
    #[error("{} invalid", plural_fields(.0.len()))]
    Validation(Vec<FieldError>),
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("the body is larger than {limit_bytes} bytes")]
    PayloadTooLarge { limit_bytes: usize },
    #[error("{detail}")]
    BadRequest { code: ErrorCode, detail: String },
    #[error("{detail}")]
    Conflict { code: ErrorCode, detail: String },
    #[error("{detail}")]
    Unprocessable { code: ErrorCode, detail: String },
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
    pub fn not_found(code: ErrorCode, detail: impl Into<String>) -> Self {
        ApiError::NotFound {
            code,
            detail: detail.into(),
        }
    }

    pub fn conflict(code: ErrorCode, detail: impl Into<String>) -> Self {
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
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::Unauthenticated => ErrorCode::Unauthenticated,
            ApiError::Forbidden => ErrorCode::Forbidden,
            ApiError::Validation(_) => ErrorCode::ValidationFailed,
            ApiError::MalformedJson(_) => ErrorCode::MalformedJson,
            ApiError::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            ApiError::NotFound { code, .. }
            | ApiError::BadRequest { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Refused { code, .. }
            | ApiError::Unprocessable { code, .. } => *code,
            ApiError::Signature(SignatureError::Expired) => ErrorCode::SignatureExpired,
            ApiError::Signature(_) => ErrorCode::InvalidSignature,
            ApiError::Unavailable(_) => ErrorCode::Unavailable,
            ApiError::Internal(_) => ErrorCode::InternalError,
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
            code,
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

impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::Pool(err) => err.into(),
            DbError::Query(err) => err.into(),
        }
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
        assert_eq!(problem.code, ErrorCode::Unavailable);
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
            ErrorCode::SignatureExpired
        );
        for err in [
            SignatureError::Malformed,
            SignatureError::UnknownKey,
            SignatureError::BadMac,
        ] {
            assert_eq!(ApiError::Signature(err).code(), ErrorCode::InvalidSignature);
            assert_eq!(
                ApiError::Signature(err).status_code(),
                StatusCode::UNAUTHORIZED
            );
        }
    }
}
