//! The HTTP edge of payment orders: each handler parses its input into typed values, checks
//! the caller's role, calls one function of the store and answers; [`PaymentError`] meets HTTP
//! only here.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::domain::Details;
use super::error::PaymentError;
use super::group_commit::OrderLanes;
use super::idempotency::{self, IdempotencyKey};
use super::model::{NewPayment, Payer, Payment, PaymentStatus, MAX_EXPIRY};
use super::store::{self, Created};
use crate::auth::{Principal, Role};
use crate::checklist::AgencyStep;
use crate::domain::{amount_field, AgencyCode, ObligationCode, PaymentId};
use crate::http::answers::{InvalidFilter, PaymentNotFound};
use crate::http::body::{parsed, text, JsonBody, Validator};
use crate::http::error::{ApiError, ErrorCode};
use crate::http::pagination::{Page, PageParams, PageRequest};
use crate::http::{Answer, QueryMap, State};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/payments", web::post().to(create_payment))
        .route("/v1/payments", web::get().to(list_payments))
        .route("/v1/payments/{id}", web::get().to(get_payment))
        .route("/v1/payments/{id}/cancel", web::post().to(cancel_payment));
}

impl From<PaymentError> for ApiError {
    fn from(err: PaymentError) -> Self {
        let detail = err.to_string();
        match err {
            PaymentError::NotFound(_) => ApiError::not_found(ErrorCode::PaymentNotFound, detail),
            PaymentError::DuplicateReference(_) => {
                ApiError::conflict(ErrorCode::DuplicateReference, detail)
            }
            PaymentError::NotCancellable(_) => {
                ApiError::conflict(ErrorCode::NotCancellable, detail)
            }
            PaymentError::KeyInFlight | PaymentError::KeyJustReleased => {
                ApiError::conflict(ErrorCode::IdempotencyKeyInUse, detail)
            }
            PaymentError::KeyReused => ApiError::Unprocessable {
                code: ErrorCode::IdempotencyKeyReused,
                detail,
            },
            PaymentError::ExpiryNotAhead => ApiError::invalid("expires_at", detail),
            PaymentError::UnknownObligation(_) => ApiError::invalid("obligation", detail),
            PaymentError::ObligationInactive(_) => ApiError::Unprocessable {
                code: ErrorCode::ObligationInactive,
                detail,
            },
            PaymentError::ObligationNotAllowed(_) => ApiError::Unprocessable {
                code: ErrorCode::ObligationNotAllowed,
                detail,
            },
            PaymentError::InvalidDetails(errors) => ApiError::Validation(errors),
            PaymentError::LaneStopped => ApiError::Unavailable(detail),
            PaymentError::Db(err) => err.into(),
        }
    }
}

/// The 404 of a path id that names no order, whether or not paygate could have made it.
pub fn payment_not_found(id: &str) -> ApiError {
    ApiError::not_found(ErrorCode::PaymentNotFound, format!("no payment {id}"))
}

/// The order id in a path. Ids that paygate could not have made cannot name an order, and
/// are answered 404 without asking the database.
pub fn parse_payment_id(id: &str) -> Result<PaymentId, ApiError> {
    let valid = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(PaymentId::from_trusted(id.to_owned()))
    } else {
        Err(payment_not_found(id))
    }
}

/// The `Idempotency-Key` header, or 400 `idempotency_key_required`.
pub fn idempotency_key(req: &HttpRequest) -> Result<IdempotencyKey, ApiError> {
    let required = |detail: &str| ApiError::BadRequest {
        code: ErrorCode::IdempotencyKeyRequired,
        detail: detail.to_owned(),
    };
    let value = req
        .headers()
        .get(idempotency::HEADER)
        .ok_or_else(|| required("the Idempotency-Key header is required"))?;
    IdempotencyKey::parse(value.as_bytes()).ok_or_else(|| {
        required("the Idempotency-Key header must be 1 to 255 printable ASCII characters")
    })
}

/// Validates a create body; a 422 lists every invalid field at once.
pub fn parse_new_payment(
    agency: AgencyCode,
    body: &Map<String, Value>,
    now: OffsetDateTime,
) -> Result<NewPayment, ApiError> {
    let mut v = Validator::new();
    let obligation = v.required(body, "obligation", parsed(ObligationCode::parse));
    let reference = v.required(body, "reference", text(1, 64));
    let amount = v.required(body, "amount", amount_field);
    v.optional(
        body,
        "currency",
        parsed(|c| match c {
            "VND" => Ok(()),
            _ => Err("must be VND".to_owned()),
        }),
    );
    let description = v.required(body, "description", text(1, 255));
    let payer = match body.get("payer") {
        None | Some(Value::Null) => {
            v.error("payer", "is required");
            None
        }
        Some(Value::Object(payer)) => {
            let name = v.required(payer, "payer.name", text(1, 128));
            let id_number = v.optional(payer, "payer.id_number", text(1, 64));
            name.zip(id_number)
                .map(|(name, id_number)| Payer { name, id_number })
        }
        Some(_) => {
            v.error("payer", "must be an object");
            None
        }
    };
    let details = match (&obligation, body.get("details")) {
        (_, None | Some(Value::Null)) => {
            v.error("details", "is required");
            None
        }
        (Some(obligation), Some(details)) => match Details::parse(obligation.as_str(), details) {
            Ok(details) => Some(details),
            Err(errors) => {
                for error in errors {
                    v.error(&error.field, error.message);
                }
                None
            }
        },
        // Details can only be checked against a known obligation.
        (None, Some(_)) => None,
    };
    let expires_at = v.optional(
        body,
        "expires_at",
        parsed(|text| {
            let at = crate::timefmt::parse_rfc3339(text)?;
            if at <= now {
                Err("must lie in the future".to_owned())
            } else if at > now + MAX_EXPIRY {
                Err("must lie at most 30 days ahead".to_owned())
            } else {
                Ok(at)
            }
        }),
    );
    v.finish_with(|| {
        Some(NewPayment {
            agency,
            reference: reference?,
            amount: amount?,
            description: description?,
            payer: payer?,
            obligation: obligation?,
            details: details?,
            expires_at: expires_at?,
        })
    })
}

/// The agency whose orders a caller may see: its own for an agency key, any for the others.
fn agency_scope(principal: &Principal) -> Option<&AgencyCode> {
    match principal.role {
        Role::Agency => principal.agency.as_ref(),
        Role::Admin | Role::Auditor => None,
    }
}

/// Create a payment order.
#[utoipa::path(post, path = "/v1/payments", tag = "payments",
    params(("Idempotency-Key" = String, Header, description = "1-255 printable ASCII characters; required. The same key with the same body replays the first answer.")),
    request_body(content = CreatePaymentRequest, examples(
        ("fee" = (value = json!(create_body("fee")))),
        ("tax" = (value = json!(create_body("tax")))),
        ("social_insurance" = (value = json!(create_body("social_insurance")))),
        ("fine" = (value = json!(create_body("fine")))),
        ("electricity" = (value = json!(create_body("electricity")))),
        ("court_advance" = (value = json!(create_body("court_advance")))),
    )),
    responses(
        (status = 201, description = "Created; a replay answers the stored status and body with `Idempotent-Replayed: true`", body = Payment,
            headers(("Idempotent-Replayed" = String, description = "`true` when this is a replay"))),
        (status = 400, description = "`idempotency_key_required` or `malformed_json`", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`duplicate_reference` or `idempotency_key_in_use`", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` (every invalid field named) or `idempotency_key_reused`", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_payment(
    principal: Principal,
    req: HttpRequest,
    state: State,
    lanes: web::Data<OrderLanes>,
    JsonBody(body): JsonBody,
) -> Answer {
    principal.require(&[Role::Agency])?;
    let agency = principal
        .agency
        .clone()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("an agency key without an agency")))?;
    let key = idempotency_key(&req)?;
    let fingerprint = idempotency::request_fingerprint(&body);
    // A valid body goes straight to the transaction that claims its key, which answers a retry
    // with the first request's answer; only an invalid one looks for a stored answer first, so
    // that a retry is answered as the first request was even when a rule that depends on the
    // time (`expires_at` in the future) would now refuse its body. (A new order thus costs no
    // lookup of its key outside its transaction.)
    let created = match parse_new_payment(agency.clone(), &body, OffsetDateTime::now_utc()) {
        Ok(order) => lanes.create(key, fingerprint, order).await?,
        Err(invalid) => {
            match store::stored_answer(&state.pool, &agency, &key, &fingerprint).await? {
                Some(replayed) => replayed,
                None => {
                    let step = AgencyStep::ValidationErrorSeen;
                    state
                        .checklist
                        .note_agency(&state.pool, agency.as_str(), step)
                        .await;
                    return Err(invalid);
                }
            }
        }
    };
    match created {
        Created::New { body, .. } => idempotent_answer(None, body),
        Created::Replayed { status, body } => {
            let step = AgencyStep::IdempotentReplay;
            state
                .checklist
                .note_agency(&state.pool, agency.as_str(), step)
                .await;
            idempotent_answer(Some(status), body)
        }
    }
}

/// The answer to a create made with an `Idempotency-Key`: 201 with the body the create stored,
/// or, for a retry, the first answer's status (`replayed`) and bytes, marked
/// `Idempotent-Replayed: true`.
pub fn idempotent_answer(replayed: Option<u16>, body: String) -> Answer {
    let Some(status) = replayed else {
        return Ok(HttpResponse::Created()
            .content_type("application/json")
            .body(body));
    };
    let status = StatusCode::from_u16(status).map_err(ApiError::internal)?;
    Ok(HttpResponse::build(status)
        .content_type("application/json")
        .insert_header(("Idempotent-Replayed", "true"))
        .body(body))
}

/// Read a payment order.
#[utoipa::path(get, path = "/v1/payments/{id}", tag = "payments",
    params(("id" = String, Path, description = "Payment id")),
    responses(
        (status = 200, description = "The order", body = Payment),
        (status = 404, description = "`payment_not_found` (also for another agency's order)", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_payment(principal: Principal, state: State, path: web::Path<String>) -> Answer {
    let id = parse_payment_id(&path)?;
    let payment = store::get(&state.pool, &id, agency_scope(&principal)).await?;
    Ok(HttpResponse::Ok().json(payment))
}

/// List payment orders, newest first.
#[utoipa::path(get, path = "/v1/payments", tag = "payments",
    params(
        ("status" = Option<String>, Query, description = "pending, paid, expired or cancelled"),
        ("obligation" = Option<String>, Query, description = "the code of an obligation of the catalog (e.g. fee); a code of none is 422"),
        ("reference" = Option<String>, Query, description = "the agency's reference"),
        ("created_from" = Option<String>, Query, description = "RFC 3339; orders created at or after"),
        ("created_to" = Option<String>, Query, description = "RFC 3339; orders created before"),
        ("agency" = Option<String>, Query, description = "admins and auditors: one agency's orders"),
        PageParams,
    ),
    responses(
        (status = 200, description = "One page", body = Page<Payment>),
        InvalidFilter,
    ))]
pub async fn list_payments(principal: Principal, state: State, query: QueryMap) -> Answer {
    let mut v = Validator::new();
    let page = PageRequest::parse(&query, &mut v);
    let mut filter = store::ListFilter {
        limit: page.limit,
        before_seq: page.cursor,
        reference: query.get("reference").cloned(),
        ..Default::default()
    };
    if let Some(status) = query.get("status") {
        filter.status = v.check("status", PaymentStatus::parse(status));
    }
    if let Some(obligation) = query.get("obligation") {
        filter.obligation = v.check("obligation", ObligationCode::parse(obligation));
    }
    for (name, slot) in [
        ("created_from", &mut filter.created_from),
        ("created_to", &mut filter.created_to),
    ] {
        if let Some(text) = query.get(name) {
            *slot = v.check(name, crate::timefmt::parse_rfc3339(text));
        }
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
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, filter.limit, |p: &Payment| p.seq)))
}

/// Cancel a pending order.
#[utoipa::path(post, path = "/v1/payments/{id}/cancel", tag = "payments",
    params(("id" = String, Path, description = "Payment id")),
    responses(
        (status = 200, description = "Cancelled (also when it already was)", body = Payment),
        PaymentNotFound,
        (status = 409, description = "`not_cancellable`: the order is paid or expired", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn cancel_payment(principal: Principal, state: State, path: web::Path<String>) -> Answer {
    principal.require(&[Role::Agency, Role::Admin])?;
    let id = parse_payment_id(&path)?;
    let payment = store::cancel(&state.pool, &id, agency_scope(&principal)).await?;
    Ok(HttpResponse::Ok().json(payment))
}

/// The body of `POST /v1/payments`. Unknown top-level fields are ignored; unknown `details`
/// fields are rejected.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // Documents the body; the handler validates the JSON field by field.
pub struct CreatePaymentRequest {
    /// The code of an active obligation of the catalog (`GET /v1/obligations`) that the agency
    /// may use: a built-in one (fee, tax, social_insurance, fine, electricity, court_advance) or
    /// one an admin added (e.g. hospital_fee). Unknown: 422 `validation_failed` on `obligation`;
    /// inactive: 422 `obligation_inactive`; not allowed for the agency: 422
    /// `obligation_not_allowed`.
    #[schema(pattern = "^[a-z][a-z0-9_]{1,31}$", example = "fee")]
    obligation: String,
    /// The agency's own reference, 1-64 characters; unique among its pending and paid orders.
    reference: String,
    /// Positive whole VND as a string, `^[1-9][0-9]{0,14}$`.
    #[schema(pattern = "^[1-9][0-9]{0,14}$")]
    amount: String,
    /// Optional; only `VND`.
    currency: Option<String>,
    /// 1-255 characters.
    description: String,
    /// `name` 1-128 characters; `id_number` optional (1-64), never logged.
    payer: Payer,
    /// An object validated against the obligation's `details_schema` in the catalog (JSON Schema
    /// 2020-12); each failure is a `validation_failed` error on `details.<path>`. The built-ins':
    /// fee `procedure_code` (1-32), `dossier_code` (1-64); tax `tax_code`
    /// (`^[0-9]{10}(-[0-9]{3})?$`), optional `tax_period` (1-32); social_insurance
    /// `insurance_code` (`^[0-9]{10}$`), `period` (`YYYY-MM`); fine `decision_number` (1-64),
    /// optional `violation_date` (`YYYY-MM-DD`); electricity `customer_code`
    /// (`^[A-Z]{2}[A-Z0-9]{11}$`), `billing_period` (`YYYY-MM`); court_advance `case_number`
    /// (1-64), `court_code` (1-32).
    #[schema(value_type = Object)]
    details: Value,
    /// Optional RFC 3339; in the future and at most 30 days ahead. Default: 24 hours after
    /// creation.
    expires_at: Option<String>,
}

/// A realistic create body for `obligation`.
pub fn create_body(obligation: &str) -> Value {
    let (reference, amount, description) = match obligation {
        "fee" => (
            "H12.99-261122-0001",
            "150000",
            "Lệ phí cấp đổi giấy phép lái xe",
        ),
        "tax" => (
            "TCT-2026-000123",
            "2350000",
            "Thuế thu nhập cá nhân quý 3/2026",
        ),
        "social_insurance" => (
            "BHXH-0123456789-202611",
            "1875000",
            "Đóng bảo hiểm xã hội tự nguyện tháng 11/2026",
        ),
        "fine" => (
            "CSGT-123-QD-XPVPHC",
            "4000000",
            "Nộp phạt vi phạm hành chính giao thông",
        ),
        "electricity" => (
            "EVN-PE01000123456-202611",
            "856400",
            "Tiền điện kỳ tháng 11/2026",
        ),
        _ => (
            "TAND-HN-2026-0456",
            "300000",
            "Tạm ứng án phí dân sự sơ thẩm",
        ),
    };
    let details = match obligation {
        "fee" => json!({"procedure_code": "1.002804", "dossier_code": "H12.99-261122-0001"}),
        "tax" => json!({"tax_code": "0101234567-001", "tax_period": "2026-Q3"}),
        "social_insurance" => json!({"insurance_code": "0123456789", "period": "2026-11"}),
        "fine" => json!({"decision_number": "123/QĐ-XPVPHC", "violation_date": "2026-11-20"}),
        "electricity" => json!({"customer_code": "PE01000123456", "billing_period": "2026-11"}),
        _ => json!({"case_number": "456/2026/TLST-DS", "court_code": "TAND-HN"}),
    };
    json!({
        "obligation": obligation,
        "reference": reference,
        "amount": amount,
        "currency": "VND",
        "description": description,
        "payer": {"name": "Nguyễn Văn A", "id_number": "001099012345"},
        "details": details,
        "expires_at": "2026-11-25T10:00:00Z"
    })
}
