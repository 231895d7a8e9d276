//! Payment orders (see "Payment orders" in `docs/api-guide.md`): create with idempotency, read,
//! list, cancel, expire.

pub mod domain;
pub mod idempotency;
pub mod model;
pub mod store;

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;
use time::OffsetDateTime;

use crate::auth::{Principal, Role};
use crate::codes::AgencyCode;
use crate::http::body::{JsonBody, Validator};
use crate::http::error::ApiError;
use crate::http::pagination::{Page, PageRequest};
use crate::http::AppState;
use idempotency::IdempotencyKey;
use model::{NewPayment, Payment, PaymentStatus};
use store::Created;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/payments", web::post().to(create_payment))
        .route("/v1/payments", web::get().to(list_payments))
        .route("/v1/payments/{id}", web::get().to(get_payment))
        .route("/v1/payments/{id}/cancel", web::post().to(cancel_payment));
}

/// The agency whose orders a caller may see: its own for an agency key, any for the others.
fn agency_scope(principal: &Principal) -> Option<&AgencyCode> {
    match principal.role {
        Role::Agency => principal.agency.as_ref(),
        Role::Admin | Role::Auditor => None,
    }
}

/// Ids that paygate could not have made cannot name an order.
fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Create a payment order.
#[utoipa::path(post, path = "/v1/payments", tag = "payments",
    params(("Idempotency-Key" = String, Header, description = "1-255 printable ASCII characters; required. The same key with the same body replays the first answer.")),
    request_body(content = crate::openapi::examples::CreatePaymentRequest, examples(
        ("fee" = (value = json!(crate::openapi::examples::create_body("fee")))),
        ("tax" = (value = json!(crate::openapi::examples::create_body("tax")))),
        ("social_insurance" = (value = json!(crate::openapi::examples::create_body("social_insurance")))),
        ("fine" = (value = json!(crate::openapi::examples::create_body("fine")))),
        ("electricity" = (value = json!(crate::openapi::examples::create_body("electricity")))),
        ("court_advance" = (value = json!(crate::openapi::examples::create_body("court_advance")))),
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
    state: web::Data<AppState>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    principal.require(&[Role::Agency])?;
    let agency = principal
        .agency
        .clone()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("an agency key without an agency")))?;
    let key = IdempotencyKey::from_request(&req)?;
    let body = Value::Object(body);
    let fingerprint = idempotency::request_fingerprint(&body);
    let created = match store::stored_answer(&state.pool, &agency, &key, &fingerprint).await? {
        Some(replayed) => replayed,
        None => {
            let Value::Object(body) = &body else {
                unreachable!("the body was read as an object");
            };
            let order = NewPayment::parse(agency, body, OffsetDateTime::now_utc())?;
            store::create(&state.pool, &key, &fingerprint, order).await?
        }
    };
    match created {
        Created::New { body, .. } => Ok(HttpResponse::Created()
            .content_type("application/json")
            .body(body)),
        Created::Replayed { status, body } => {
            let status = StatusCode::from_u16(status).map_err(ApiError::internal)?;
            Ok(HttpResponse::build(status)
                .content_type("application/json")
                .insert_header(("Idempotent-Replayed", "true"))
                .body(body))
        }
    }
}

/// Read a payment order.
#[utoipa::path(get, path = "/v1/payments/{id}", tag = "payments",
    params(("id" = String, Path, description = "Payment id")),
    responses(
        (status = 200, description = "The order", body = Payment),
        (status = 404, description = "`payment_not_found` (also for another agency's order)", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_payment(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    if !valid_id(&id) {
        return Err(store::payment_not_found(&id));
    }
    let payment = store::get(&state.pool, &id, agency_scope(&principal)).await?;
    Ok(HttpResponse::Ok().json(payment))
}

/// List payment orders, newest first.
#[utoipa::path(get, path = "/v1/payments", tag = "payments",
    params(
        ("status" = Option<String>, Query, description = "pending, paid, expired or cancelled"),
        ("obligation" = Option<String>, Query, description = "one of the six obligations"),
        ("reference" = Option<String>, Query, description = "the agency's reference"),
        ("created_from" = Option<String>, Query, description = "RFC 3339; orders created at or after"),
        ("created_to" = Option<String>, Query, description = "RFC 3339; orders created before"),
        ("agency" = Option<String>, Query, description = "admins and auditors: one agency's orders"),
        ("limit" = Option<i64>, Query, description = "1-500, default 100"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "One page", body = crate::openapi::examples::PaymentPage),
        (status = 422, description = "`validation_failed`: an invalid filter", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_payments(
    principal: Principal,
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
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
        filter.obligation = v.check("obligation", domain::Obligation::parse(obligation));
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
        (status = 404, description = "`payment_not_found`", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`not_cancellable`: the order is paid or expired", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn cancel_payment(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&[Role::Agency, Role::Admin])?;
    let id = path.into_inner();
    if !valid_id(&id) {
        return Err(store::payment_not_found(&id));
    }
    let payment = store::cancel(&state.pool, &id, agency_scope(&principal)).await?;
    Ok(HttpResponse::Ok().json(payment))
}
