//! `POST /v1/sandbox/payments/{id}/pay` and `POST /v1/sandbox/refunds/{id}/result`: the
//! built-in sandbox bank, acting through the code that answers a real bank.

use actix_web::web;
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::scenario::Scenario;
use crate::auth::{Principal, Role};
use crate::banks::group_commit::GroupCommit;
use crate::banks::keys::SANDBOX_BANK;
use crate::banks::verify;
use crate::domain::{AgencyCode, BankCode, PaymentId};
use crate::http::answers::{PaymentNotFound, ValidationFailed};
use crate::http::body::{parsed, text, JsonBody, Validator};
use crate::http::error::{ApiError, ErrorCode};
use crate::http::{Answer, AppState, State};
use crate::payments::http::{parse_payment_id, payment_not_found};
use crate::payments::model::{Payment, PAYMENT_COLUMNS};
use crate::refunds::http::parse_refund_id;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/sandbox/payments/{id}/pay", web::post().to(pay))
        .route(
            "/v1/sandbox/refunds/{id}/result",
            web::post().to(refund_result),
        );
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)] // Documents the body; the handler validates the JSON field by field.
pub struct PayRequest {
    /// succeeded, failed, redelivered, double_payment, amount_mismatch, late or paid_in_time.
    #[schema(example = "succeeded")]
    scenario: String,
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)] // Documents the body; the handler validates the JSON field by field.
pub struct SandboxRefundResultRequest {
    /// completed or failed.
    #[schema(example = "completed")]
    status: String,
    /// For a failed refund, 1-255 characters; a sandbox text by default.
    failure_reason: Option<String>,
}

/// The agency whose sandbox orders the caller may act on: its own for an agency key, any for
/// an admin.
fn scope(principal: &Principal) -> Result<Option<&AgencyCode>, ApiError> {
    principal.require(&[Role::Agency, Role::Admin])?;
    Ok(principal.agency.as_ref())
}

/// Let the sandbox bank `SANDBOX` act on a sandbox order: it sends the scenario's signed
/// callbacks through the same code as a bank's, and this answers what the last of them got
/// (status and body), exactly as a bank would see it.
///
/// - `succeeded`: accepted; the order is paid and `payment.paid` is sent.
/// - `failed`: accepted; the order is unchanged.
/// - `redelivered`: the same callback twice; the second is a `duplicate`.
/// - `double_payment`: a second `bank_txn_id` after a first one (which pays a pending order
///   first): an `exception` `double_payment`; the money goes to suspense and a case opens.
/// - `amount_mismatch`: 422 `amount_mismatch`; the callback is kept and a case opens.
/// - `late`: on an order whose `expires_at` has passed, paid now: an `exception`
///   `order_closed`.
/// - `paid_in_time`: on an order whose `expires_at` has passed, with a `paid_at` one second
///   before it: accepted and paid.
///
/// The order's sandbox agency or an admin. A live order answers 404 `payment_not_found`, as
/// does another agency's.
#[utoipa::path(post, path = "/v1/sandbox/payments/{id}/pay", tag = "integration",
    params(("id" = String, Path, description = "A sandbox order's id")),
    request_body = PayRequest,
    responses(
        (status = 200, description = "What the (last) callback got: `accepted`, `duplicate` or `exception`", body = crate::banks::http::CallbackAnswer),
        (status = 409, description = "`order_not_expired`: the scenario late or paid_in_time on an order whose expiry time has not passed", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` (the scenario), or the callback's own 422 `amount_mismatch`", body = crate::http::error::Problem, content_type = "application/problem+json"),
        PaymentNotFound,
    ))]
pub async fn pay(
    principal: Principal,
    state: State,
    lanes: web::Data<GroupCommit>,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Answer {
    let scope = scope(&principal)?;
    let id = parse_payment_id(&path)?;
    let order = sandbox_order(&state, &id, scope).await?;
    let mut v = Validator::new();
    let scenario = v.required(&body, "scenario", parsed(Scenario::parse));
    let scenario = v.finish_with(|| scenario)?;
    let now = OffsetDateTime::now_utc();
    if scenario.needs_expiry() && now < order.expires_at {
        return Err(ApiError::conflict(
            ErrorCode::OrderNotExpired,
            format!(
                "the order expires at {}; this scenario needs an order past its expires_at",
                crate::timefmt::format_utc(order.expires_at)
            ),
        ));
    }
    let callbacks = scenario.callbacks(&order, now);
    let last = callbacks.len() - 1;
    for (n, callback) in callbacks.into_iter().enumerate() {
        let body = serde_json::to_vec(&callback).expect("a callback serialises");
        let bank = signed_as_sandbox_bank(&state, &body).await?;
        // An error answer (a 422 `amount_mismatch`) is the answer itself.
        let answer = crate::banks::http::apply_callback(&state, &lanes, &bank, &body).await?;
        if n == last {
            return Ok(answer);
        }
    }
    unreachable!("every scenario sends at least one callback")
}

/// Report, as the sandbox bank, the end of an approved refund of a payment it made:
/// `completed` (with a `bank_refund_id` of its own, the same on every call, so that a repeat
/// is a `duplicate`) or `failed`. Answers exactly as a bank's signed result is answered:
/// `accepted`, `duplicate`, 409 `refund_result_conflict`, or 404 `refund_not_found` for a
/// refund that is not approved or not the sandbox bank's. The refund's agency or an admin.
#[utoipa::path(post, path = "/v1/sandbox/refunds/{id}/result", tag = "integration",
    params(("id" = String, Path, description = "Refund id")),
    request_body = SandboxRefundResultRequest,
    responses(
        (status = 200, description = "`accepted`, or `duplicate` for the same result again", body = crate::refunds::http::ResultAnswer),
        (status = 404, description = "`refund_not_found`: no such refund, not the caller's, not the sandbox bank's, or not approved", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`refund_result_conflict`: the refund already has a different result", body = crate::http::error::Problem, content_type = "application/problem+json"),
        ValidationFailed,
    ))]
pub async fn refund_result(
    principal: Principal,
    state: State,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Answer {
    let scope = scope(&principal)?;
    let id = parse_refund_id(&path)?;
    let client = state.pool.get().await?;
    let known = client
        .query_opt(
            "SELECT 1 FROM refunds r
             WHERE r.id = $1 AND r.bank_code = $2 AND ($3::text IS NULL OR r.agency_code = $3)",
            &[&id, &SANDBOX_BANK, &scope.map(AgencyCode::as_str)],
        )
        .await?;
    drop(client);
    if known.is_none() {
        return Err(ApiError::not_found(
            ErrorCode::RefundNotFound,
            format!("no refund {id} of the sandbox bank"),
        ));
    }
    let mut v = Validator::new();
    let completed = v.required(
        &body,
        "status",
        parsed(|s| match s {
            "completed" => Ok(true),
            "failed" => Ok(false),
            _ => Err("must be completed or failed".to_owned()),
        }),
    );
    let failure_reason = v.optional(&body, "failure_reason", text(1, 255));
    let (completed, failure_reason) = v.finish_with(|| Some((completed?, failure_reason?)))?;
    let now = crate::timefmt::format_utc(OffsetDateTime::now_utc());
    let result = if completed {
        json!({"status": "completed", "bank_refund_id": format!("SBX-{id}"), "completed_at": now})
    } else {
        let reason =
            failure_reason.unwrap_or_else(|| "Sandbox: the payer's account is closed".to_owned());
        json!({"status": "failed", "failure_reason": reason})
    };
    let body = serde_json::to_vec(&result).expect("a result serialises");
    let bank = signed_as_sandbox_bank(&state, &body).await?;
    crate::refunds::http::apply_bank_result(&state, &bank, id, &body).await
}

/// A sandbox order the caller may act on; 404 `payment_not_found` for anything else (a live
/// order, another agency's, none).
async fn sandbox_order(
    state: &AppState,
    id: &PaymentId,
    scope: Option<&AgencyCode>,
) -> Result<Payment, ApiError> {
    let client = state.pool.get().await?;
    let row = client
        .query_opt(
            &format!(
                "SELECT {PAYMENT_COLUMNS} FROM payments p
                 WHERE p.id = $1 AND p.sandbox AND ($2::text IS NULL OR p.agency_code = $2)"
            ),
            &[&id.as_str(), &scope.map(AgencyCode::as_str)],
        )
        .await?;
    row.map(|row| Payment::from_row(&row))
        .ok_or_else(|| payment_not_found(id.as_str()))
}

/// Signs `body` as the sandbox bank and verifies that signature as every bank request's is
/// verified: the bank the body is then handed to, with the bank endpoint's own code.
async fn signed_as_sandbox_bank(state: &AppState, body: &[u8]) -> Result<BankCode, ApiError> {
    let signature = state.bank_keys.sign_as_sandbox(body);
    Ok(verify::verify_header(state, SANDBOX_BANK, Some(&signature), body).await?)
}
