//! The HTTP edge of banks' signed requests: verify the signature, parse the body into typed
//! values, call the domain, answer. [`CallbackError`] and [`Rejected`] meet HTTP only here.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::web::Bytes;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::callbacks::{CallbackError, CallbackOutcome, MAX_PAID_AT_AHEAD};
use super::group_commit::GroupCommit;
use super::model::{Callback, CallbackStatus};
use super::verify::{self, Rejected};
use crate::checklist::BankStep;
use crate::domain::{amount_field, AgencyCode, BankCode, BankTxnId, PaymentId};
use crate::http::answers::{PaymentNotFound, ValidationFailed};
use crate::http::body::{parse_object, parsed, text, RawBody, Validator};
use crate::http::error::{ApiError, ErrorCode};
use crate::http::{Answer, AppState, State};
use crate::payments::http::payment_not_found;
use crate::payments::model::{Payment, PaymentStatus};
use crate::telemetry::CallbackLabels;

impl From<Rejected> for ApiError {
    fn from(err: Rejected) -> Self {
        match err {
            Rejected::Signature(err) => ApiError::Signature(err),
            Rejected::Db(err) => err.into(),
        }
    }
}

impl From<CallbackError> for ApiError {
    fn from(err: CallbackError) -> Self {
        let detail = err.to_string();
        match err {
            CallbackError::PaymentNotFound(_) => {
                ApiError::not_found(ErrorCode::PaymentNotFound, detail)
            }
            CallbackError::AmountMismatch => ApiError::Unprocessable {
                code: ErrorCode::AmountMismatch,
                detail,
            },
            CallbackError::Conflict(_) => ApiError::conflict(ErrorCode::BankTxnConflict, detail),
            CallbackError::InFlight => ApiError::conflict(ErrorCode::CallbackInFlight, detail),
            CallbackError::PaidAtTooEarly { .. } => ApiError::invalid("paid_at", detail),
            CallbackError::LaneStopped => ApiError::Unavailable(detail),
            CallbackError::Db(err) => err.into(),
        }
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/banks/{bank}/inquiry", web::post().to(inquiry))
        .route("/v1/banks/{bank}/callbacks", web::post().to(callback));
}

/// Validates a callback body; a 422 names every invalid field.
pub fn parse_callback(
    body: &Map<String, Value>,
    now: OffsetDateTime,
) -> Result<Callback, ApiError> {
    let mut v = Validator::new();
    let bank_txn_id = v.required(body, "bank_txn_id", text(1, 64));
    let payment_id = v.required(body, "payment_id", text(1, 64));
    let amount = v.required(body, "amount", amount_field);
    let currency = v.optional(body, "currency", text(1, 16));
    let succeeded = v.required(
        body,
        "status",
        parsed(|s| match s {
            "succeeded" => Ok(true),
            "failed" => Ok(false),
            _ => Err("must be succeeded or failed".to_owned()),
        }),
    );
    let paid_at = v.optional(
        body,
        "paid_at",
        parsed(|t| {
            let at = crate::timefmt::parse_rfc3339(t)?;
            if at > now + MAX_PAID_AT_AHEAD {
                Err("must not be more than 5 minutes in the future".to_owned())
            } else {
                Ok(at)
            }
        }),
    );
    // `Some(None)`: the field is valid but absent.
    let status = match (succeeded, paid_at) {
        (Some(true), Some(Some(paid_at))) => Some(CallbackStatus::Succeeded { paid_at }),
        (Some(true), Some(None)) => {
            v.error("paid_at", "is required when status is succeeded");
            None
        }
        (Some(false), Some(paid_at)) => Some(CallbackStatus::Failed { paid_at }),
        // Another field's error is already recorded.
        (None, _) | (_, None) => None,
    };
    let failure_reason = v.optional(body, "failure_reason", text(1, 255));
    v.finish_with(|| {
        Some(Callback {
            bank_txn_id: BankTxnId::from_trusted(bank_txn_id?),
            payment_id: PaymentId::from_trusted(payment_id?),
            amount: amount?,
            currency: currency?.unwrap_or_else(|| "VND".to_owned()),
            status: status?,
            failure_reason: failure_reason?,
        })
    })
}

/// The answer to a callback (200).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(example = json!({"result": "accepted", "payment_id": "pay_3b1f0c9a7d2e4f6a8b0c1d2e", "payment_status": "paid"}))]
pub struct CallbackAnswer {
    /// accepted, duplicate or exception.
    pub result: &'static str,
    /// For `exception`: double_payment or order_closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exception: Option<&'static str>,
    #[schema(value_type = String)]
    pub payment_id: PaymentId,
    pub payment_status: PaymentStatus,
}

impl From<CallbackOutcome> for CallbackAnswer {
    fn from(outcome: CallbackOutcome) -> Self {
        let (result, exception, payment_id, payment_status) = match outcome {
            CallbackOutcome::Accepted {
                payment_id,
                payment_status,
            } => ("accepted", None, payment_id, payment_status),
            CallbackOutcome::Duplicate {
                payment_id,
                payment_status,
            } => ("duplicate", None, payment_id, payment_status),
            CallbackOutcome::Exception {
                reason,
                payment_id,
                payment_status,
            } => (
                "exception",
                Some(reason.as_str()),
                payment_id,
                payment_status,
            ),
        };
        CallbackAnswer {
            result,
            exception,
            payment_id,
            payment_status,
        }
    }
}

#[derive(serde::Deserialize, ToSchema)]
#[allow(dead_code)] // Documents the body; the handler validates the JSON field by field.
pub struct InquiryRequest {
    #[schema(example = "pay_3b1f0c9a7d2e4f6a8b0c1d2e")]
    payment_id: String,
}

/// The body of a bank's payment callback.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // Documents the body; the handler validates the JSON field by field.
pub struct CallbackRequest {
    /// The bank's own transaction id, 1-64 characters, unique per bank.
    bank_txn_id: String,
    payment_id: String,
    /// Positive whole VND as a string.
    #[schema(pattern = "^[1-9][0-9]{0,14}$")]
    amount: String,
    /// Optional, default `VND`.
    currency: Option<String>,
    /// `succeeded` or `failed`.
    status: String,
    /// RFC 3339, required when succeeded; at most 5 minutes in the future.
    paid_at: Option<String>,
    failure_reason: Option<String>,
}

/// What a bank shows the payer.
#[derive(Debug, Serialize, ToSchema)]
pub struct InquiryAnswer {
    #[schema(value_type = String)]
    pub payment_id: PaymentId,
    #[schema(value_type = String)]
    pub agency: AgencyCode,
    /// The code of the order's obligation in the catalog: a built-in one (fee, tax,
    /// social_insurance, fine, electricity, court_advance) or one an admin added.
    #[schema(value_type = String, example = "fee")]
    pub obligation: crate::domain::ObligationCode,
    #[schema(value_type = String, example = "150000")]
    pub amount: crate::domain::Amount,
    pub currency: String,
    pub description: String,
    pub status: PaymentStatus,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
}

impl From<Payment> for InquiryAnswer {
    fn from(p: Payment) -> Self {
        InquiryAnswer {
            payment_id: p.id,
            agency: p.agency,
            obligation: p.obligation,
            amount: p.amount,
            currency: p.currency,
            description: p.description,
            status: p.status,
            expires_at: p.expires_at,
        }
    }
}

/// A bank's request with a verified signature: the bank named in the path, and the raw body it
/// signed. The body is read first (at most 1 MiB), then the signature is checked against it.
pub struct SignedBody {
    pub bank: BankCode,
    pub body: Bytes,
}

impl FromRequest for SignedBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let raw = RawBody::from_request(&req, payload);
        Box::pin(async move {
            let RawBody(body) = raw.await?;
            let state = req
                .app_data::<State>()
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no application state")))?;
            let bank_in_path = req.match_info().get("bank").unwrap_or_default();
            let bank = verify::verify(state, bank_in_path, &req, &body).await?;
            Ok(SignedBody { bank, body })
        })
    }
}

/// Look an order up to show the payer what is due (signed). A disabled bank is refused.
#[utoipa::path(post, path = "/v1/banks/{bank}/inquiry", tag = "banks",
    params(("bank" = String, Path, description = "The bank's code")),
    request_body = InquiryRequest,
    security(("bank_signature" = [])),
    responses(
        (status = 200, description = "What is due", body = InquiryAnswer),
        (status = 401, description = "`invalid_signature` or `signature_expired`", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "`bank_disabled`: the bank is disabled (answered only to a valid signature)", body = crate::http::error::Problem, content_type = "application/problem+json"),
        PaymentNotFound,
        ValidationFailed,
    ))]
pub async fn inquiry(state: State, SignedBody { bank, body }: SignedBody) -> Answer {
    // Checked after the signature, so that only the bank itself learns that it is disabled,
    // and before the body, which a disabled bank has no business sending.
    if crate::admin::banks::is_disabled(&state.pool, &bank).await? {
        return Err(ApiError::Refused {
            code: ErrorCode::BankDisabled,
            detail: format!("bank {bank} is disabled; its inquiries are refused"),
        });
    }
    let body = parse_object(&body)?;
    let mut v = Validator::new();
    let payment_id = v.required(&body, "payment_id", text(1, 64));
    let payment_id = v.finish_with(|| payment_id.map(PaymentId::from_trusted))?;
    let client = state.pool.get().await?;
    let payment = super::store::order_for_bank(&client, &bank, &payment_id)
        .await?
        .ok_or_else(|| payment_not_found(payment_id.as_str()))?;
    drop(client);
    state
        .checklist
        .note_bank(&state.pool, bank.as_str(), BankStep::Inquiry)
        .await;
    Ok(HttpResponse::Ok().json(InquiryAnswer::from(payment)))
}

/// Report a payment (signed); posted exactly once. Accepted from a disabled bank too: money it
/// already collected must land.
#[utoipa::path(post, path = "/v1/banks/{bank}/callbacks", tag = "banks",
    params(("bank" = String, Path, description = "The bank's code")),
    request_body(content = CallbackRequest, example = json!({
        "bank_txn_id": "FT26327001", "payment_id": "pay_3b1f0c9a7d2e4f6a8b0c1d2e", "amount": "150000",
        "currency": "VND", "status": "succeeded", "paid_at": "2026-11-23T03:15:00Z", "failure_reason": null})),
    security(("bank_signature" = [])),
    responses(
        (status = 200, description = "`accepted`, `duplicate` (a redelivery) or `exception` (the money went to suspense)", body = CallbackAnswer),
        (status = 401, description = "`invalid_signature` or `signature_expired`; nothing is written", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "`payment_not_found`; kept for investigation", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`bank_txn_conflict`: the same bank_txn_id with different content", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`, or `amount_mismatch` (kept for investigation)", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn callback(
    state: State,
    lanes: web::Data<GroupCommit>,
    SignedBody { bank, body }: SignedBody,
) -> Answer {
    apply_callback(&state, &lanes, &bank, &body).await
}

/// A verified callback's body, decided and answered: what [`callback`] does once the signature
/// holds, and what the sandbox bank's callbacks go through too.
pub async fn apply_callback(
    state: &AppState,
    lanes: &GroupCommit,
    bank: &BankCode,
    body: &[u8],
) -> Answer {
    let count = |result: &'static str| {
        state
            .metrics
            .callbacks
            .get_or_create(&CallbackLabels {
                bank: bank.to_string(),
                result,
            })
            .inc();
    };
    let parsed =
        parse_object(body).and_then(|body| parse_callback(&body, OffsetDateTime::now_utc()));
    let callback = match parsed {
        Ok(callback) => callback,
        Err(err) => {
            count("invalid");
            return Err(err);
        }
    };
    match lanes.process(bank, &callback).await {
        Ok(outcome) => {
            count(outcome.metric_label(callback.status));
            Ok(HttpResponse::Ok().json(CallbackAnswer::from(outcome)))
        }
        Err(err) => {
            count(err.metric_label());
            Err(err.into())
        }
    }
}
