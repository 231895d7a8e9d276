//! `GET /v1/agencies/{code}/checklist` and `GET /v1/banks/{code}/checklist`.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::store;
use crate::auth::{Principal, Role};
use crate::http::answers::{AgencyNotFound, BankNotFound};
use crate::http::error::{ApiError, ErrorCode};
use crate::http::{Answer, State};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/v1/agencies/{code}/checklist",
        web::get().to(agency_checklist),
    )
    .route("/v1/banks/{code}/checklist", web::get().to(bank_checklist));
}

/// One step of a checklist.
#[derive(Debug, Serialize, ToSchema)]
pub struct Step {
    #[schema(example = "order_created")]
    pub step: &'static str,
    pub done: bool,
    /// When paygate first saw the step; `null` until then.
    #[serde(serialize_with = "crate::timefmt::serialize_option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub first_at: Option<OffsetDateTime>,
    /// When paygate last saw it (kept to within a second); `null` until then.
    #[serde(serialize_with = "crate::timefmt::serialize_option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub last_at: Option<OffsetDateTime>,
}

/// An agency's checklist.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgencyChecklist {
    #[schema(example = "000.00.00.H12")]
    pub agency: String,
    pub sandbox: bool,
    /// Whether every step is done.
    pub ready: bool,
    /// Every step, in this order: order_created, idempotent_replay, validation_error_seen,
    /// order_cancelled, notification_acknowledged, redelivery_requested, refund_requested,
    /// inquiry_case_opened.
    pub steps: Vec<Step>,
}

/// A bank's checklist.
#[derive(Debug, Serialize, ToSchema)]
pub struct BankChecklist {
    #[schema(example = "VCB")]
    pub bank: String,
    pub sandbox: bool,
    /// Whether every step is done.
    pub ready: bool,
    /// Every step, in this order: inquiry, callback_accepted, callback_failed_status,
    /// redelivery_duplicate, bad_signature_rejected, expired_signature_rejected, key_rotated,
    /// refund_result.
    pub steps: Vec<Step>,
}

fn steps(rows: Vec<store::StepRow>) -> (bool, Vec<Step>) {
    let steps: Vec<Step> = rows
        .into_iter()
        .map(|row| Step {
            step: row.step,
            done: row.first_at.is_some(),
            first_at: row.first_at,
            last_at: row.last_at,
        })
        .collect();
    (steps.iter().all(|step| step.done), steps)
}

/// The integration steps paygate has seen this agency take, in sandbox and live alike. Admins
/// and auditors; an agency reads its own (another agency's answers 404).
#[utoipa::path(get, path = "/v1/agencies/{code}/checklist", tag = "integration",
    params(("code" = String, Path, description = "Agency code")),
    responses(
        (status = 200, description = "The checklist", body = AgencyChecklist),
        AgencyNotFound,
    ))]
pub async fn agency_checklist(
    principal: Principal,
    state: State,
    path: web::Path<String>,
) -> Answer {
    let code = path.into_inner();
    let own = principal
        .agency
        .as_ref()
        .is_some_and(|a| a.as_str() == code);
    let not_found = || {
        ApiError::not_found(
            ErrorCode::AgencyNotFound,
            format!("no agency with code {code}"),
        )
    };
    if principal.role == Role::Agency && !own {
        return Err(not_found());
    }
    let (sandbox, rows) = store::read(&state.pool, false, &code)
        .await?
        .ok_or_else(not_found)?;
    let (ready, steps) = steps(rows);
    Ok(HttpResponse::Ok().json(AgencyChecklist {
        agency: code.clone(),
        sandbox,
        ready,
        steps,
    }))
}

/// The integration steps paygate has seen this bank take, in sandbox and live alike. Admins and
/// auditors.
#[utoipa::path(get, path = "/v1/banks/{code}/checklist", tag = "integration",
    params(("code" = String, Path, description = "Bank code")),
    responses(
        (status = 200, description = "The checklist", body = BankChecklist),
        BankNotFound,
    ))]
pub async fn bank_checklist(principal: Principal, state: State, path: web::Path<String>) -> Answer {
    principal.require(&[Role::Admin, Role::Auditor])?;
    let code = path.into_inner();
    let (sandbox, rows) = store::read(&state.pool, true, &code)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(ErrorCode::BankNotFound, format!("no bank with code {code}"))
        })?;
    let (ready, steps) = steps(rows);
    Ok(HttpResponse::Ok().json(BankChecklist {
        bank: code,
        sandbox,
        ready,
        steps,
    }))
}
