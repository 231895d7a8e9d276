//! The case endpoints: each handler checks the caller's role, parses its input into typed
//! values, calls one function of the store and answers; [`CaseError`] meets HTTP only here.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::model::{
    Case, CaseError, CaseKind, CaseStatus, Resolution, MESSAGE_MAX_CHARS, REASON_MAX_CHARS,
};
use super::store::{self, ListFilter, NewInquiry, ResolveRequest};
use crate::audit::Actor;
use crate::auth::{Principal, Role};
use crate::domain::{AgencyCode, BankCode, BankTxnId, PaymentId};
use crate::http::answers::InvalidFilter;
use crate::http::body::{parsed, text, JsonBody, Validator};
use crate::http::error::{ApiError, ErrorCode};
use crate::http::pagination::{Page, PageParams, PageRequest};
use crate::http::{Answer, QueryMap, State};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/cases", web::post().to(open_case))
        .route("/v1/cases", web::get().to(list_cases))
        .route("/v1/cases/{id}", web::get().to(get_case))
        .route("/v1/cases/{id}/notes", web::post().to(add_note))
        .route("/v1/cases/{id}/resolve", web::post().to(resolve_case))
        .route("/v1/cases/{id}/approve", web::post().to(approve_case))
        .route("/v1/cases/{id}/reject", web::post().to(reject_case));
}

impl From<CaseError> for ApiError {
    fn from(err: CaseError) -> Self {
        let detail = err.to_string();
        match err {
            CaseError::NotFound(_) => ApiError::not_found(ErrorCode::CaseNotFound, detail),
            CaseError::PaymentNotFound(_) => {
                ApiError::not_found(ErrorCode::PaymentNotFound, detail)
            }
            CaseError::BankNotFound(_) => ApiError::not_found(ErrorCode::BankNotFound, detail),
            CaseError::Resolved | CaseError::InProgress(_) => {
                ApiError::conflict(ErrorCode::CaseResolved, detail)
            }
            CaseError::MoneyInSuspense(_) => ApiError::Unprocessable {
                code: ErrorCode::MoneyInSuspense,
                detail,
            },
            CaseError::NotPending(_) => ApiError::conflict(ErrorCode::RefundNotPending, detail),
            CaseError::SameApprover => ApiError::Refused {
                code: ErrorCode::SameApprover,
                detail,
            },
            CaseError::Invalid { field, message } => ApiError::invalid(field, message),
            CaseError::Db(err) => err.into(),
        }
    }
}

/// The case id in a path. Ids that paygate could not have made name no case, and are answered
/// 404 without asking the database.
pub fn parse_case_id(id: &str) -> Result<&str, ApiError> {
    let valid = id.strip_prefix("cas_").is_some_and(|rest| {
        (1..=60).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    if valid {
        Ok(id)
    } else {
        Err(ApiError::not_found(
            ErrorCode::CaseNotFound,
            format!("no case {id}"),
        ))
    }
}

/// An order id as a body or a query names it.
fn payment_id(value: &str) -> Result<PaymentId, String> {
    let valid = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(PaymentId::from_trusted(value.to_owned()))
    } else {
        Err("must be 1 to 64 letters, digits, '-' or '_'".to_owned())
    }
}

/// A bank's transaction id: 1-64 characters.
fn bank_txn_id(value: &Value) -> Result<BankTxnId, String> {
    text(1, 64)(value).map(BankTxnId::from_trusted)
}

/// The agency whose cases a caller may see: its own for an agency key, any for the others.
fn agency_scope(principal: &Principal) -> Option<&AgencyCode> {
    match principal.role {
        Role::Agency => principal.agency.as_ref(),
        Role::Admin | Role::Auditor => None,
    }
}

/// Validates an inquiry: an agency names its order; an admin or auditor names at least one of
/// an order, a bank and a bank transaction.
fn parse_inquiry(role: Role, body: &Map<String, Value>) -> Result<NewInquiry, ApiError> {
    let mut v = Validator::new();
    let message = v.required(body, "message", text(1, MESSAGE_MAX_CHARS));
    let inquiry = if role == Role::Agency {
        let payment_id = v.required(body, "payment_id", parsed(payment_id));
        payment_id.map(|payment_id| (Some(payment_id), None, None))
    } else {
        let payment_id = v.optional(body, "payment_id", parsed(payment_id));
        let bank = v.optional(body, "bank", parsed(BankCode::parse));
        let bank_txn_id = v.optional(body, "bank_txn_id", bank_txn_id);
        if let (Some(None), Some(None), Some(None)) = (&payment_id, &bank, &bank_txn_id) {
            v.error(
                "payment_id",
                "is required unless bank or bank_txn_id is given",
            );
        }
        match (payment_id, bank, bank_txn_id) {
            (Some(payment_id), Some(bank), Some(bank_txn_id)) => {
                Some((payment_id, bank, bank_txn_id))
            }
            _ => None,
        }
    };
    v.finish_with(|| {
        let (payment_id, bank, bank_txn_id) = inquiry?;
        Some(NewInquiry {
            payment_id,
            bank,
            bank_txn_id,
            message: message?,
        })
    })
}

/// Open an inquiry.
///
/// An agency asks about one of its own orders (a payer says they paid but the order is not
/// paid): `payment_id` and `message`. An admin or auditor names at least one of `payment_id`,
/// `bank` and `bank_txn_id`. The inquiry resolves itself (`paid`) when its order is paid.
#[utoipa::path(post, path = "/v1/cases", tag = "cases",
    request_body(content = OpenCaseRequest, examples(
        ("agency" = (value = json!({"payment_id": "pay_3b1f0c9a7d2e4f6a8b0c1d2e", "message": "Người nộp báo đã chuyển khoản lúc 09:12 nhưng hồ sơ chưa ghi nhận."}))),
        ("admin" = (value = json!({"bank": "VCB", "bank_txn_id": "FT26327002", "message": "Ngân hàng báo giao dịch đã ghi có; đề nghị kiểm tra."}))),
    )),
    responses(
        (status = 201, description = "The inquiry, `open`", body = Case),
        (status = 404, description = "`payment_not_found` (also another agency's order) or `bank_not_found`", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn open_case(principal: Principal, state: State, JsonBody(body): JsonBody) -> Answer {
    let inquiry = parse_inquiry(principal.role, &body)?;
    let case = store::open_inquiry(
        &state.pool,
        &inquiry,
        agency_scope(&principal),
        &Actor::api(&principal),
    )
    .await?;
    Ok(HttpResponse::Created().json(case))
}

/// List cases, newest first.
#[utoipa::path(get, path = "/v1/cases", tag = "cases",
    params(
        ("status" = Option<String>, Query, description = "open, pending_approval, resolving or resolved"),
        ("kind" = Option<String>, Query, description = "double_payment, order_closed, payment_not_found, amount_mismatch, missing_in_gateway, missing_in_bank, mismatch or inquiry"),
        ("bank" = Option<String>, Query, description = "One bank's cases"),
        ("agency" = Option<String>, Query, description = "Admins and auditors: one agency's cases (an agency key sees only its own)"),
        ("payment_id" = Option<String>, Query, description = "The cases about one order"),
        PageParams,
    ),
    responses(
        (status = 200, description = "One page", body = Page<Case>),
        InvalidFilter,
    ))]
pub async fn list_cases(principal: Principal, state: State, query: QueryMap) -> Answer {
    let mut v = Validator::new();
    let page = PageRequest::parse(&query, &mut v);
    let mut filter = ListFilter {
        limit: page.limit,
        before: page.cursor,
        ..Default::default()
    };
    if let Some(status) = query.get("status") {
        filter.status = v.check("status", CaseStatus::parse(status));
    }
    if let Some(kind) = query.get("kind") {
        filter.kind = v.check("kind", CaseKind::parse(kind));
    }
    if let Some(bank) = query.get("bank") {
        filter.bank = v.check("bank", BankCode::parse(bank));
    }
    if let Some(id) = query.get("payment_id") {
        filter.payment_id = v
            .check("payment_id", payment_id(id))
            .map(PaymentId::into_string);
    }
    filter.agency = match agency_scope(&principal) {
        Some(own) => Some(own.clone()),
        None => match query.get("agency") {
            Some(code) => v.check("agency", AgencyCode::parse(code)),
            None => None,
        },
    };
    v.finish()?;
    let rows = store::list(&state.pool, &filter).await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, filter.limit, |case: &Case| case.seq)))
}

/// Read a case.
#[utoipa::path(get, path = "/v1/cases/{id}", tag = "cases",
    params(("id" = String, Path, description = "Case id")),
    responses(
        (status = 200, description = "The case", body = Case),
        (status = 404, description = "`case_not_found` (also another agency's case)", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_case(principal: Principal, state: State, path: web::Path<String>) -> Answer {
    let id = parse_case_id(&path)?;
    let case = store::get(&state.pool, id, agency_scope(&principal)).await?;
    Ok(HttpResponse::Ok().json(case))
}

/// Add a note to a case (its agency, auditors, admins).
#[utoipa::path(post, path = "/v1/cases/{id}/notes", tag = "cases",
    params(("id" = String, Path, description = "Case id")),
    request_body(content = NoteRequest, example = json!({"message": "Đã liên hệ người nộp; chờ chứng từ."})),
    responses(
        (status = 201, description = "The case with the note added", body = Case),
        (status = 404, description = "`case_not_found` (also another agency's case)", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `message` is not 1-2000 characters", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn add_note(
    principal: Principal,
    state: State,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Answer {
    let id = parse_case_id(&path)?;
    let mut v = Validator::new();
    let message = v.required(&body, "message", text(1, MESSAGE_MAX_CHARS));
    let message = v.finish_with(|| message)?;
    let case = store::add_note(
        &state.pool,
        id,
        agency_scope(&principal),
        &message,
        &Actor::api(&principal),
    )
    .await?;
    Ok(HttpResponse::Created().json(case))
}

/// Validates a resolution: `apply` names its order and nothing else does; a `refund`'s note is
/// the refund's reason, which the bank receives, so it is at most 255 characters.
pub fn parse_resolution(body: &Map<String, Value>) -> Result<ResolveRequest, ApiError> {
    let mut v = Validator::new();
    let resolution = v.required(body, "resolution", parsed(Resolution::parse));
    let note = v.required(body, "note", text(1, MESSAGE_MAX_CHARS));
    let payment_id = v.optional(body, "payment_id", parsed(payment_id));
    match (resolution, &payment_id) {
        (Some(Resolution::Apply), Some(None)) => v.error("payment_id", "is required for apply"),
        (Some(Resolution::Refund | Resolution::NoAction), Some(Some(_))) => {
            v.error("payment_id", "is given only with apply")
        }
        _ => {}
    }
    if let (Some(Resolution::Refund), Some(note)) = (resolution, &note) {
        if note.chars().count() > REASON_MAX_CHARS {
            v.error(
                "note",
                format!(
                    "must be 1 to {REASON_MAX_CHARS} characters long for a refund (it is the refund's reason)"
                ),
            );
        }
    }
    v.finish_with(|| {
        Some(ResolveRequest {
            resolution: resolution?,
            note: note?,
            payment_id: payment_id?,
        })
    })
}

/// Resolve a case (admin).
///
/// - `refund` (only `double_payment` and `order_closed`, whose money is in suspense): requests a
///   `suspense` refund of the case's amount, which another admin approves through
///   `/v1/refunds/{id}/approve`; the case is `resolving` until the bank completes it
///   (`resolved`) or it fails or is rejected (`open` again).
/// - `apply` (only `order_closed`): `payment_id` names a `pending` order of the same agency,
///   obligation and amount; the case is `pending_approval` until another admin approves
///   (`/v1/cases/{id}/approve`) or rejects it.
/// - `no_action` (every case without money in suspense): resolved with the note.
#[utoipa::path(post, path = "/v1/cases/{id}/resolve", tag = "cases",
    params(("id" = String, Path, description = "Case id")),
    request_body(content = ResolveRequestBody, examples(
        ("refund" = (value = json!({"resolution": "refund", "note": "Người nộp thanh toán hai lần; hoàn lại lần thứ hai."}))),
        ("apply" = (value = json!({"resolution": "apply", "note": "Hồ sơ đã được tạo lại; dùng khoản tiền cho lệnh mới.", "payment_id": "pay_9c8b7a6f5e4d3c2b1a0f9e8d"}))),
        ("no_action" = (value = json!({"resolution": "no_action", "note": "Ngân hàng xác nhận giao dịch bị hủy."}))),
    )),
    responses(
        (status = 200, description = "The case: `resolved`, `resolving` (refund) or `pending_approval` (apply)", body = Case),
        (status = 403, description = "`forbidden`: only admins resolve", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "`case_not_found`", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`case_resolved`: the case is resolved, or its resolution is under way", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`money_in_suspense`: no_action on a case whose money is in suspense; `validation_failed`: an invalid field, a resolution the case's kind does not allow, or an apply to an order that is not a pending order of the same agency, obligation and amount", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn resolve_case(
    principal: Principal,
    state: State,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Answer {
    principal.require(&[Role::Admin])?;
    let id = parse_case_id(&path)?;
    let request = parse_resolution(&body)?;
    let case = store::resolve(&state.pool, id, &request, &Actor::api(&principal)).await?;
    Ok(HttpResponse::Ok().json(case))
}

/// Approve a case's `apply` (an admin key other than the one that chose it).
///
/// In one transaction the money moves from `suspense:<BANK>` to `agency:<AGENCY>:<obligation>`,
/// the order becomes `paid` with the case's bank, `bank_txn_id` and original `paid_at`,
/// `payment.paid` is sent to the agency, and the case is `resolved`. Approving an approved
/// apply answers the case again.
#[utoipa::path(post, path = "/v1/cases/{id}/approve", tag = "cases",
    params(("id" = String, Path, description = "Case id")),
    responses(
        (status = 200, description = "The case, `resolved`", body = Case),
        (status = 403, description = "`same_approver`: the key that chose the apply; `forbidden`: only admins approve", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "`case_not_found`", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`refund_not_pending`: no apply waits for approval; `case_resolved`: resolved otherwise", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` on payment_id: the order is no longer a pending order of the same agency, obligation and amount", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn approve_case(principal: Principal, state: State, path: web::Path<String>) -> Answer {
    principal.require(&[Role::Admin])?;
    let id = parse_case_id(&path)?;
    let case = store::approve(&state.pool, id, &Actor::api(&principal)).await?;
    Ok(HttpResponse::Ok().json(case))
}

/// Reject a case's `apply` (an admin key other than the one that chose it): the case is `open`
/// again and the reason becomes a note.
#[utoipa::path(post, path = "/v1/cases/{id}/reject", tag = "cases",
    params(("id" = String, Path, description = "Case id")),
    request_body(content = RejectRequest, example = json!({"reason": "Lệnh được chọn thuộc hồ sơ khác."})),
    responses(
        (status = 200, description = "The case, `open`", body = Case),
        (status = 403, description = "`same_approver`: the key that chose the apply; `forbidden`: only admins reject", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "`case_not_found`", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`refund_not_pending`: no apply waits for approval; `case_resolved`: the case is resolved", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `reason` is not 1-255 characters", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn reject_case(
    principal: Principal,
    state: State,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Answer {
    principal.require(&[Role::Admin])?;
    let id = parse_case_id(&path)?;
    let mut v = Validator::new();
    let reason = v.required(&body, "reason", text(1, REASON_MAX_CHARS));
    let reason = v.finish_with(|| reason)?;
    let case = store::reject(&state.pool, id, &reason, &Actor::api(&principal)).await?;
    Ok(HttpResponse::Ok().json(case))
}

/// The body of `POST /v1/cases`. Unknown fields are ignored.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // Documents the body; the handler validates the JSON field by field.
pub struct OpenCaseRequest {
    /// The order asked about: required for an agency (its own order).
    payment_id: Option<String>,
    /// Admins and auditors: a bank code.
    bank: Option<String>,
    /// Admins and auditors: the bank's transaction id, 1-64 characters.
    bank_txn_id: Option<String>,
    /// 1-2000 characters; the case's first note.
    message: String,
}

/// The body of `POST /v1/cases/{id}/notes`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // Documents the body; the handler validates the JSON field by field.
pub struct NoteRequest {
    /// 1-2000 characters.
    message: String,
}

/// The body of `POST /v1/cases/{id}/resolve`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // Documents the body; the handler validates the JSON field by field.
pub struct ResolveRequestBody {
    /// refund, apply or no_action.
    resolution: String,
    /// 1-2000 characters; for a refund at most 255, as it becomes the refund's reason.
    note: String,
    /// Required for `apply` (the pending order that receives the money), absent otherwise.
    payment_id: Option<String>,
}

/// The body of `POST /v1/cases/{id}/reject`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // Documents the body; the handler validates the JSON field by field.
pub struct RejectRequest {
    /// 1-255 characters; kept as a note of the case.
    reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().expect("an object").clone()
    }

    #[test]
    fn case_ids_paygate_could_not_have_made_are_not_found_without_a_query() {
        assert!(parse_case_id("cas_5b0e6f1c2d3a4b5c6d7e8f90").is_ok());
        for id in [
            "",
            "cas_",
            "case_1",
            "pay_1",
            "cas_a/b",
            &format!("cas_{}", "a".repeat(61)),
        ] {
            assert_eq!(
                parse_case_id(id).unwrap_err().code(),
                ErrorCode::CaseNotFound,
                "{id}"
            );
        }
    }

    #[test]
    fn an_apply_names_its_order_and_nothing_else_does() {
        let missing = parse_resolution(&object(json!({"resolution": "apply", "note": "x"})));
        assert_eq!(missing.unwrap_err().code(), ErrorCode::ValidationFailed);
        let extra = parse_resolution(&object(
            json!({"resolution": "no_action", "note": "x", "payment_id": "pay_1"}),
        ));
        assert_eq!(extra.unwrap_err().code(), ErrorCode::ValidationFailed);
        let apply = parse_resolution(&object(
            json!({"resolution": "apply", "note": "x", "payment_id": "pay_1"}),
        ))
        .unwrap();
        assert_eq!(apply.payment_id.unwrap().as_str(), "pay_1");
    }

    #[test]
    fn a_refund_note_is_at_most_the_length_of_a_refund_reason() {
        let long = "a".repeat(REASON_MAX_CHARS + 1);
        assert!(parse_resolution(&object(json!({"resolution": "refund", "note": long}))).is_err());
        assert!(
            parse_resolution(&object(json!({"resolution": "no_action", "note": long}))).is_ok()
        );
    }

    #[test]
    fn an_operator_inquiry_names_an_order_a_bank_or_a_transaction() {
        let none = parse_inquiry(Role::Admin, &object(json!({"message": "?"})));
        assert_eq!(none.unwrap_err().code(), ErrorCode::ValidationFailed);
        let bank_only = parse_inquiry(
            Role::Auditor,
            &object(json!({"bank": "VCB", "message": "?"})),
        );
        assert!(bank_only.is_ok());
        let agency = parse_inquiry(
            Role::Agency,
            &object(json!({"bank": "VCB", "message": "?"})),
        );
        assert_eq!(agency.unwrap_err().code(), ErrorCode::ValidationFailed);
    }
}
