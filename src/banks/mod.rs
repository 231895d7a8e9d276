//! Banks' signed requests: inquiry and payment callbacks (see `docs/api-guide.md`).

pub mod callbacks;
pub mod verify;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::http::body::{parse_object, text, RawBody, Validator};
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::payments::model::{Payment, PaymentStatus};
use crate::payments::store;
use crate::telemetry::CallbackLabels;
use callbacks::{Callback, CallbackAnswer, Source};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/banks/{bank}/inquiry", web::post().to(inquiry))
        .route("/v1/banks/{bank}/callbacks", web::post().to(callback));
}

#[derive(serde::Deserialize, ToSchema)]
#[allow(dead_code)] // Documents the body; the handler validates the JSON field by field.
pub struct InquiryRequest {
    #[schema(example = "pay_3b1f0c9a7d2e4f6a8b0c1d2e")]
    payment_id: String,
}

/// What a bank shows the payer.
#[derive(Debug, Serialize, ToSchema)]
pub struct InquiryAnswer {
    pub payment_id: String,
    pub agency: String,
    #[schema(value_type = String, example = "fee")]
    pub obligation: crate::payments::domain::Obligation,
    #[schema(value_type = String, example = "150000")]
    pub amount: crate::payments::domain::Amount,
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

/// Look an order up to show the payer what is due (signed). A disabled bank is refused.
#[utoipa::path(post, path = "/v1/banks/{bank}/inquiry", tag = "banks",
    params(("bank" = String, Path, description = "The bank's code")),
    request_body = InquiryRequest,
    security(("bank_signature" = [])),
    responses(
        (status = 200, description = "What is due", body = InquiryAnswer),
        (status = 401, description = "`invalid_signature` or `signature_expired`", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "`bank_disabled`: the bank is disabled (answered only to a valid signature)", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "`payment_not_found`", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn inquiry(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    RawBody(body): RawBody,
) -> Result<HttpResponse, ApiError> {
    let bank = verify::verify(&state, &path, &req, &body).await?;
    // Checked after the signature, so that only the bank itself learns that it is disabled,
    // and before the body, which a disabled bank has no business sending.
    if crate::admin::banks::is_disabled(&state.pool, &bank).await? {
        return Err(ApiError::Refused {
            code: "bank_disabled",
            detail: format!("bank {bank} is disabled; its inquiries are refused"),
        });
    }
    let body = parse_object(&body)?;
    let mut v = Validator::new();
    let payment_id = v.required(&body, "payment_id", text(1, 64));
    v.finish()?;
    let payment_id = payment_id.unwrap_or_default();
    let payment = store::get(&state.pool, &payment_id, None).await?;
    Ok(HttpResponse::Ok().json(InquiryAnswer::from(payment)))
}

/// Report a payment (signed); posted exactly once. Accepted from a disabled bank too: money it
/// already collected must land.
#[utoipa::path(post, path = "/v1/banks/{bank}/callbacks", tag = "banks",
    params(("bank" = String, Path, description = "The bank's code")),
    request_body(content = crate::openapi::examples::CallbackRequest, example = json!({
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
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    RawBody(body): RawBody,
) -> Result<HttpResponse, ApiError> {
    let bank = verify::verify(&state, &path, &req, &body).await?;
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
        parse_object(&body).and_then(|body| Callback::parse(&body, OffsetDateTime::now_utc()));
    let callback = match parsed {
        Ok(callback) => callback,
        Err(err) => {
            count("invalid");
            return Err(err);
        }
    };
    match callbacks::process(&state.pool, &bank, &callback, Source::Callback).await {
        Ok(answer) => {
            count(answer.metric(callback.status));
            Ok(HttpResponse::Ok().json(answer))
        }
        Err(err) => {
            count(match err.code() {
                "bank_txn_conflict" => "conflict",
                "payment_not_found" => "not_found",
                "amount_mismatch" => "amount_mismatch",
                _ => "error",
            });
            Err(err)
        }
    }
}
