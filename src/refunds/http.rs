//! The HTTP edge of refunds: agencies request them, a second key approves or rejects them,
//! banks report their result (signed). [`RefundError`] meets HTTP only here.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::error::RefundError;
use super::model::{BankResult, NewRefund, Refund, RefundKind, RefundStatus};
use super::store::{self, ListFilter, Requested, ResultOutcome};
use crate::audit::Actor;
use crate::auth::{Principal, Role};
use crate::banks::callbacks::MAX_PAID_AT_AHEAD;
use crate::banks::http::SignedBody;
use crate::domain::{amount_field, AgencyCode, BankCode};
use crate::http::answers::{InvalidFilter, ValidationFailed};
use crate::http::body::{parse_object, parsed, text, JsonBody, Validator};
use crate::http::error::{ApiError, ErrorCode};
use crate::http::pagination::{Page, PageParams, PageRequest};
use crate::http::{Answer, AppState, QueryMap, State};
use crate::payments::http::{idempotency_key, idempotent_answer, parse_payment_id};
use crate::payments::idempotency;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/payments/{id}/refunds", web::post().to(request_refund))
        .route("/v1/refunds", web::get().to(list_refunds))
        .route("/v1/refunds/{id}", web::get().to(get_refund))
        .route("/v1/refunds/{id}/approve", web::post().to(approve_refund))
        .route("/v1/refunds/{id}/reject", web::post().to(reject_refund))
        .route(
            "/v1/banks/{bank}/refunds/{id}/result",
            web::post().to(bank_result),
        );
}

impl From<RefundError> for ApiError {
    fn from(err: RefundError) -> Self {
        let detail = err.to_string();
        match err {
            RefundError::NotFound(_) => ApiError::not_found(ErrorCode::RefundNotFound, detail),
            RefundError::PaymentNotFound(_) => {
                ApiError::not_found(ErrorCode::PaymentNotFound, detail)
            }
            RefundError::PaymentNotRefundable(_) => {
                ApiError::conflict(ErrorCode::PaymentNotRefundable, detail)
            }
            RefundError::ExceedsPayment => ApiError::Unprocessable {
                code: ErrorCode::RefundExceedsPayment,
                detail,
            },
            RefundError::SameApprover => ApiError::Refused {
                code: ErrorCode::SameApprover,
                detail,
            },
            RefundError::Forbidden => ApiError::Forbidden,
            RefundError::NotPending(_) => ApiError::conflict(ErrorCode::RefundNotPending, detail),
            RefundError::ResultConflict(_) => {
                ApiError::conflict(ErrorCode::RefundResultConflict, detail)
            }
            RefundError::Key(err) => err.into(),
            RefundError::Db(err) => err.into(),
        }
    }
}

/// The refund id in a path. Ids that paygate could not have made name no refund, and are
/// answered 404 without asking the database.
pub fn parse_refund_id(id: &str) -> Result<&str, ApiError> {
    let valid = (5..=64).contains(&id.len())
        && id.starts_with("rfd_")
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(id)
    } else {
        Err(ApiError::not_found(
            ErrorCode::RefundNotFound,
            format!("no refund {id}"),
        ))
    }
}

/// Validates a refund request body; a 422 lists every invalid field at once.
pub fn parse_new_refund(body: &Map<String, Value>) -> Result<NewRefund, ApiError> {
    let mut v = Validator::new();
    let amount = v.required(body, "amount", amount_field);
    let reason = v.required(body, "reason", text(1, 255));
    v.finish_with(|| {
        Some(NewRefund {
            amount: amount?,
            reason: reason?,
        })
    })
}

/// Validates a bank's result body; a 422 lists every invalid field at once.
pub fn parse_result(
    body: &Map<String, Value>,
    now: OffsetDateTime,
) -> Result<BankResult, ApiError> {
    let mut v = Validator::new();
    let status = v.required(
        body,
        "status",
        parsed(|s| match s {
            "completed" => Ok(RefundStatus::Completed),
            "failed" => Ok(RefundStatus::Failed),
            _ => Err("must be completed or failed".to_owned()),
        }),
    );
    let bank_refund_id = v.optional(body, "bank_refund_id", text(1, 64));
    let completed_at = v.optional(
        body,
        "completed_at",
        parsed(|t| {
            let at = crate::timefmt::parse_rfc3339(t)?;
            if at > now + MAX_PAID_AT_AHEAD {
                Err("must not be more than 5 minutes in the future".to_owned())
            } else {
                Ok(at)
            }
        }),
    );
    let failure_reason = v.optional(body, "failure_reason", text(1, 255));
    if status == Some(RefundStatus::Completed) && bank_refund_id == Some(None) {
        v.error("bank_refund_id", "is required when status is completed");
    }
    v.finish_with(|| match status? {
        RefundStatus::Completed => Some(BankResult::Completed {
            bank_refund_id: bank_refund_id??,
            completed_at: completed_at?,
        }),
        _ => Some(BankResult::Failed {
            bank_refund_id: bank_refund_id?,
            failure_reason: failure_reason?,
        }),
    })
}

/// Request a refund of a paid order (the order's agency).
#[utoipa::path(post, path = "/v1/payments/{id}/refunds", tag = "refunds",
    params(
        ("id" = String, Path, description = "Payment id"),
        ("Idempotency-Key" = String, Header, description = "1-255 printable ASCII characters; required. The same key with the same body (for the same order) replays the first answer."),
    ),
    request_body(content = RefundRequest, example = json!({"amount": "50000", "reason": "Hồ sơ bị từ chối, hoàn lệ phí"})),
    responses(
        (status = 201, description = "Requested, `pending_approval`; a replay answers the stored status and body with `Idempotent-Replayed: true`", body = Refund,
            headers(("Idempotent-Replayed" = String, description = "`true` when this is a replay"))),
        (status = 400, description = "`idempotency_key_required` or `malformed_json`", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an agency key", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "`payment_not_found` (also another agency's order)", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`payment_not_refundable` (the order is not paid) or `idempotency_key_in_use`", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`, `refund_exceeds_payment` (the refunds not rejected or failed would exceed the order's amount) or `idempotency_key_reused`", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn request_refund(
    principal: Principal,
    req: HttpRequest,
    state: State,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Answer {
    principal.require(&[Role::Agency])?;
    let agency = principal
        .agency
        .clone()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("an agency key without an agency")))?;
    let payment_id = parse_payment_id(&path)?;
    let key = idempotency_key(&req)?;
    // The key names one request of the agency: the same body for another order is another
    // request, so the order is part of what the key is compared with.
    let mut request = Map::new();
    request.insert(
        "refund_of".to_owned(),
        Value::String(payment_id.to_string()),
    );
    request.insert("body".to_owned(), Value::Object(body.clone()));
    let fingerprint = idempotency::request_fingerprint(&request);
    let refund = parse_new_refund(&body)?;
    let requested = store::request_payment(
        &state.pool,
        &Actor::api(&principal),
        &agency,
        &payment_id,
        &key,
        &fingerprint,
        refund,
    )
    .await?;
    match requested {
        Requested::New { body, .. } => idempotent_answer(None, body),
        Requested::Replayed { status, body } => idempotent_answer(Some(status), body),
    }
}

/// Read a refund; an agency sees its own.
#[utoipa::path(get, path = "/v1/refunds/{id}", tag = "refunds",
    params(("id" = String, Path, description = "Refund id")),
    responses(
        (status = 200, description = "The refund", body = Refund),
        (status = 404, description = "`refund_not_found` (also another agency's refund)", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_refund(principal: Principal, state: State, path: web::Path<String>) -> Answer {
    let id = parse_refund_id(&path)?;
    let refund = store::get(&state.pool, id, store::agency_scope(&principal)).await?;
    Ok(HttpResponse::Ok().json(refund))
}

/// List refunds, newest first; an agency sees its own.
#[utoipa::path(get, path = "/v1/refunds", tag = "refunds",
    params(
        ("status" = Option<String>, Query, description = "pending_approval, rejected, approved, completed or failed"),
        ("kind" = Option<String>, Query, description = "payment or suspense"),
        ("agency" = Option<String>, Query, description = "admins and auditors: one agency's refunds"),
        ("bank" = Option<String>, Query, description = "the bank's code"),
        ("payment_id" = Option<String>, Query, description = "one order's refunds"),
        PageParams,
    ),
    responses(
        (status = 200, description = "One page", body = Page<Refund>),
        InvalidFilter,
    ))]
pub async fn list_refunds(principal: Principal, state: State, query: QueryMap) -> Answer {
    let mut v = Validator::new();
    let page = PageRequest::parse(&query, &mut v);
    let mut filter = ListFilter {
        payment_id: query.get("payment_id").cloned(),
        ..Default::default()
    };
    if let Some(status) = query.get("status") {
        filter.status = v.check("status", RefundStatus::parse(status));
    }
    if let Some(kind) = query.get("kind") {
        filter.kind = v.check("kind", RefundKind::parse(kind));
    }
    if let Some(bank) = query.get("bank") {
        filter.bank = v.check("bank", BankCode::parse(bank));
    }
    filter.agency = match store::agency_scope(&principal) {
        Some(own) => Some(own.to_owned()),
        None => match query.get("agency") {
            Some(code) => v
                .check("agency", AgencyCode::parse(code))
                .map(|code| code.as_str().to_owned()),
            None => None,
        },
    };
    v.finish()?;
    let page = store::list(&state.pool, &filter, page).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Approve a refund (a different key than the requester's): for a `payment` refund another
/// key of the same agency or an admin; for a `suspense` refund another admin.
#[utoipa::path(post, path = "/v1/refunds/{id}/approve", tag = "refunds",
    params(("id" = String, Path, description = "Refund id")),
    responses(
        (status = 200, description = "Approved (also when it already was): the instruction goes to the bank", body = Refund),
        (status = 403, description = "`same_approver` (the requester's own key) or `forbidden` (an auditor; an agency key on a suspense refund)", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "`refund_not_found` (also another agency's refund)", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`refund_not_pending`: the refund was rejected", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn approve_refund(principal: Principal, state: State, path: web::Path<String>) -> Answer {
    principal.require(&[Role::Agency, Role::Admin])?;
    let id = parse_refund_id(&path)?;
    let refund = store::approve(&state.pool, id, &principal, &Actor::api(&principal)).await?;
    Ok(HttpResponse::Ok().json(refund))
}

/// Reject a refund waiting for approval (the same keys as approval); the amount it held is
/// free again, and a case it was to resolve is open again.
#[utoipa::path(post, path = "/v1/refunds/{id}/reject", tag = "refunds",
    params(("id" = String, Path, description = "Refund id")),
    request_body(content = RejectRequest, example = json!({"reason": "Số tiền hoàn không đúng"})),
    responses(
        (status = 200, description = "Rejected", body = Refund),
        (status = 403, description = "`same_approver` or `forbidden`, as for approval", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "`refund_not_found`", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`refund_not_pending`: the refund is no longer waiting", body = crate::http::error::Problem, content_type = "application/problem+json"),
        ValidationFailed,
    ))]
pub async fn reject_refund(
    principal: Principal,
    state: State,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Answer {
    principal.require(&[Role::Agency, Role::Admin])?;
    let id = parse_refund_id(&path)?;
    let mut v = Validator::new();
    let reason = v.required(&body, "reason", text(1, 255));
    let reason = v.finish_with(|| reason)?;
    let refund = store::reject(
        &state.pool,
        id,
        &principal,
        &Actor::api(&principal),
        &reason,
    )
    .await?;
    Ok(HttpResponse::Ok().json(refund))
}

/// The answer to a bank's refund result (200).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"result": "accepted", "refund_status": "completed"}))]
pub struct ResultAnswer {
    /// accepted (the first result) or duplicate (the same result again).
    pub result: &'static str,
    pub refund_status: RefundStatus,
}

/// Report the result of a refund instruction (signed by the bank). A completed refund is
/// posted to the ledger exactly once.
#[utoipa::path(post, path = "/v1/banks/{bank}/refunds/{id}/result", tag = "banks",
    params(
        ("bank" = String, Path, description = "The bank's code"),
        ("id" = String, Path, description = "Refund id (`refund.id` of the instruction)"),
    ),
    request_body(content = RefundResultRequest, example = json!({
        "status": "completed", "bank_refund_id": "RF26327001",
        "completed_at": "2026-11-23T05:00:00Z", "failure_reason": null})),
    security(("bank_signature" = [])),
    responses(
        (status = 200, description = "`accepted`, or `duplicate` for the same result again", body = ResultAnswer),
        (status = 401, description = "`invalid_signature` or `signature_expired`; nothing is written", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "`refund_not_found`: no such refund, another bank's, or not approved", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`refund_result_conflict`: the refund already has a different result", body = crate::http::error::Problem, content_type = "application/problem+json"),
        ValidationFailed,
    ))]
pub async fn bank_result(
    state: State,
    path: web::Path<(String, String)>,
    SignedBody { bank, body }: SignedBody,
) -> Answer {
    apply_bank_result(&state, &bank, &path.1, &body).await
}

/// A verified refund result, recorded and answered: what [`bank_result`] does once the
/// signature holds, and what the sandbox bank's results go through too.
pub async fn apply_bank_result(
    state: &AppState,
    bank: &BankCode,
    refund_id: &str,
    body: &[u8],
) -> Answer {
    let id = parse_refund_id(refund_id)?;
    let body = parse_object(body)?;
    let result = parse_result(&body, OffsetDateTime::now_utc())?;
    let outcome = store::record_result(&state.pool, bank, id, &result).await?;
    let answer = match outcome {
        ResultOutcome::Accepted(status) => ResultAnswer {
            result: "accepted",
            refund_status: status,
        },
        ResultOutcome::Duplicate(status) => ResultAnswer {
            result: "duplicate",
            refund_status: status,
        },
    };
    Ok(HttpResponse::Ok().json(answer))
}

/// The body of `POST /v1/payments/{id}/refunds`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // Documents the body; the handler validates the JSON field by field.
pub struct RefundRequest {
    /// Positive whole VND as a string; with the order's other refunds that are not rejected or
    /// failed, at most the order's amount.
    #[schema(pattern = "^[1-9][0-9]{0,14}$")]
    amount: String,
    /// 1-255 characters.
    reason: String,
}

/// The body of `POST /v1/refunds/{id}/reject`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // Documents the body; the handler validates the JSON field by field.
pub struct RejectRequest {
    /// 1-255 characters.
    reason: String,
}

/// The body of a bank's refund result.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // Documents the body; the handler validates the JSON field by field.
pub struct RefundResultRequest {
    /// `completed` or `failed`.
    status: String,
    /// The bank's own id of the refund, 1-64 characters; required when completed.
    bank_refund_id: Option<String>,
    /// RFC 3339, at most 5 minutes in the future; default: when paygate records the result.
    completed_at: Option<String>,
    /// 1-255 characters, for a failed refund.
    failure_reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().expect("an object").clone()
    }

    fn now() -> OffsetDateTime {
        crate::timefmt::parse_rfc3339("2026-11-23T05:00:00Z").unwrap()
    }

    #[test]
    fn a_completed_result_needs_a_bank_refund_id_and_a_failed_one_does_not() {
        assert_eq!(
            parse_result(
                &object(json!({"status": "completed", "bank_refund_id": "RF1"})),
                now()
            )
            .unwrap(),
            BankResult::Completed {
                bank_refund_id: "RF1".to_owned(),
                completed_at: None
            }
        );
        assert_eq!(
            parse_result(&object(json!({"status": "failed"})), now()).unwrap(),
            BankResult::Failed {
                bank_refund_id: None,
                failure_reason: None
            }
        );
        assert!(parse_result(&object(json!({"status": "completed"})), now()).is_err());
        // Four minutes ahead is within the tolerance; six is not.
        let ahead = |minutes: &str| {
            object(json!({"status": "completed", "bank_refund_id": "R",
                          "completed_at": format!("2026-11-23T05:{minutes}:00Z")}))
        };
        assert!(parse_result(&ahead("04"), now()).is_ok());
        assert!(parse_result(&ahead("06"), now()).is_err());
    }

    #[test]
    fn refund_ids_that_paygate_could_not_have_made_are_not_found_without_a_query() {
        assert!(parse_refund_id("rfd_0a1b").is_ok());
        for bad in [
            "",
            "rfd_",
            "pay_0a1b",
            "rfd_a b",
            &format!("rfd_{}", "a".repeat(61)),
        ] {
            assert!(parse_refund_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_status_and_kind_reads_back_as_itself() {
        for status in [
            RefundStatus::PendingApproval,
            RefundStatus::Rejected,
            RefundStatus::Approved,
            RefundStatus::Completed,
            RefundStatus::Failed,
        ] {
            assert_eq!(RefundStatus::parse(status.as_str()), Ok(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                json!(status.as_str())
            );
        }
        for kind in [RefundKind::Payment, RefundKind::Suspense] {
            assert_eq!(RefundKind::parse(kind.as_str()), Ok(kind));
        }
        assert!(RefundStatus::parse("paid").is_err());
        assert!(RefundKind::parse("").is_err());
    }
}
