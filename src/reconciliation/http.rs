//! Reconciliation and report endpoints (roles `auditor` and `admin`; see `docs/api-guide.md`).

use std::collections::HashMap;

use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};

use super::engine::{self, RunBy};
use super::error::ReconcileError;
use super::items::{self, REPORT_HEADER, REPORT_PAGE_ROWS};
use super::model::{DailyReport, Item, Outcome, Run};
use super::store::{self, RunFilter};
use crate::audit::Actor;
use crate::auth::{Principal, Role};
use crate::domain::{BankCode, RunId};
use crate::http::answers::{InvalidFilter, ReconciliationNotFound};
use crate::http::body::{LimitedBody, Validator};
use crate::http::error::{ApiError, ErrorCode};
use crate::http::pagination::{Page, PageParams, PageRequest};
use crate::http::{Answer, QueryMap, State};
use crate::timefmt::parse_date;

/// Statements over 1 GiB answer 413 `payload_too_large`.
pub const STATEMENT_LIMIT_BYTES: usize = 1024 * 1024 * 1024;

const READERS: &[Role] = &[Role::Auditor, Role::Admin];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/reconciliations", web::post().to(create_run))
        .route("/v1/reconciliations", web::get().to(list_runs))
        .route("/v1/reconciliations/{id}", web::get().to(get_run))
        .route("/v1/reconciliations/{id}/items", web::get().to(list_items))
        .route(
            "/v1/reconciliations/{id}/report.csv",
            web::get().to(report_csv),
        )
        .route("/v1/reports/daily", web::get().to(daily));
}

impl From<ReconcileError> for ApiError {
    fn from(err: ReconcileError) -> Self {
        match err {
            ReconcileError::UnknownBank(_) => ApiError::invalid("bank", "no such bank"),
            ReconcileError::Statement(err) => ApiError::invalid("statement", err.to_string()),
            ReconcileError::RunNotFound(id) => ApiError::not_found(
                ErrorCode::ReconciliationNotFound,
                format!("no reconciliation run {id}"),
            ),
            ReconcileError::Callback(err) => err.into(),
            ReconcileError::Db(err) => err.into(),
            ReconcileError::Internal(err) => ApiError::Internal(err),
        }
    }
}

/// A required query parameter, parsed by `parse`.
fn required<T>(
    v: &mut Validator,
    query: &HashMap<String, String>,
    name: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Option<T> {
    match query.get(name) {
        Some(value) => v.check(name, parse(value)),
        None => {
            v.error(name, "is required");
            None
        }
    }
}

/// Reconcile a bank's daily statement (CSV body).
///
/// The statement is CSV (RFC 4180, UTF-8, an optional BOM) with a header row; columns are found
/// by name and extra columns are ignored. A line that cannot be read becomes an `invalid_line`
/// item with its line number and the reason, and the other lines still count: among others a
/// line longer than 64 KiB (65536 bytes, counting the line breaks inside quoted fields), a line
/// with a NUL character, and a `paid_at` outside the years 2000 to 9998 (UTC).
///
/// Only a run made with an admin key moves money: it applies each line whose callback was lost
/// (`recovered`). A run made with an auditor key applies nothing and reports such a line as
/// `missing_in_gateway` with the detail `recoverable`; a later admin (or `paygate reconcile`)
/// run recovers it. The outcomes are described in `docs/api-guide.md`.
#[utoipa::path(post, path = "/v1/reconciliations", tag = "reconciliation",
    params(
        ("bank" = String, Query, description = "The bank whose statement this is"),
        ("date" = String, Query, description = "The business day (Vietnam time), YYYY-MM-DD"),
    ),
    request_body(content = String, content_type = "text/csv", description = "The statement: a header row with bank_txn_id, payment_id, amount, paid_at (and optionally currency), one line per credit. At most 1 GiB in all and 64 KiB (65536 bytes) per line; a longer line is an `invalid_line`.",
        example = "bank_txn_id,payment_id,amount,paid_at,currency\nFT26327001,pay_3b1f0c9a7d2e4f6a8b0c1d2e,150000,2026-11-22T03:15:00Z,VND\n"),
    responses(
        (status = 201, description = "The run, complete. With an auditor key nothing is applied: a line that an admin's run would recover is `missing_in_gateway` with the detail `recoverable`.", body = Run),
        (status = 413, description = "`payload_too_large`: the statement is over 1 GiB", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: bad bank or date, or a statement that is not UTF-8, has no header row, a header row over 64 KiB, or lacks a required column (no run is recorded)", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`: the database is unavailable, or the run kept losing a conflict with concurrent work; nothing was recorded, and the same request may be retried", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_run(
    principal: Principal,
    req: HttpRequest,
    state: State,
    query: QueryMap,
    payload: web::Payload,
) -> Answer {
    principal.require(READERS)?;
    let mut v = Validator::new();
    let bank = required(&mut v, &query, "bank", BankCode::parse);
    let date = required(&mut v, &query, "date", parse_date);
    let (bank, date) = v.finish_with(|| Some((bank?, date?)))?;
    let mut payload = payload.into_inner();
    let file = LimitedBody::new(&req, &mut payload, STATEMENT_LIMIT_BYTES)?
        .spool()
        .await?;
    // Only an admin's run moves money; an auditor's reports what it would recover.
    let by = match principal.role {
        Role::Admin => RunBy::Admin,
        _ => RunBy::Auditor,
    };
    let actor = Actor::api(&principal);
    let run = engine::run(&state.pool, &bank, date, file, None, by, &actor).await?;
    Ok(HttpResponse::Created().json(run))
}

/// Read a run.
#[utoipa::path(get, path = "/v1/reconciliations/{id}", tag = "reconciliation",
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 200, description = "The run", body = Run),
        ReconciliationNotFound,
    ))]
pub async fn get_run(principal: Principal, state: State, path: web::Path<String>) -> Answer {
    principal.require(READERS)?;
    let id = RunId::from_trusted(path.into_inner());
    let run = store::get_run(&state.pool, &id).await?;
    Ok(HttpResponse::Ok().json(run))
}

/// List runs, newest first.
#[utoipa::path(get, path = "/v1/reconciliations", tag = "reconciliation",
    params(
        ("bank" = Option<String>, Query, description = "Bank code"),
        ("date" = Option<String>, Query, description = "YYYY-MM-DD"),
        PageParams,
    ),
    responses(
        (status = 200, description = "One page", body = Page<Run>),
        InvalidFilter,
    ))]
pub async fn list_runs(principal: Principal, state: State, query: QueryMap) -> Answer {
    principal.require(READERS)?;
    let mut v = Validator::new();
    let page = PageRequest::parse(&query, &mut v);
    let bank = query
        .get("bank")
        .and_then(|b| v.check("bank", BankCode::parse(b)));
    let date = query
        .get("date")
        .and_then(|d| v.check("date", parse_date(d)));
    v.finish()?;
    let filter = RunFilter {
        bank,
        date,
        before: page.cursor,
        limit: page.limit,
    };
    let runs = store::list_runs(&state.pool, &filter).await?;
    let page = Page::from_rows(runs, page.limit, |(_, seq)| *seq);
    Ok(HttpResponse::Ok().json(Page {
        items: page.items.into_iter().map(|(run, _)| run).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// A run's items in statement order (then paygate's records no statement carried).
#[utoipa::path(get, path = "/v1/reconciliations/{id}/items", tag = "reconciliation",
    params(
        ("id" = String, Path, description = "Run id"),
        ("outcome" = Option<String>, Query, description = "One outcome"),
        PageParams,
    ),
    responses(
        (status = 200, description = "One page", body = Page<Item>),
        ReconciliationNotFound,
        InvalidFilter,
    ))]
pub async fn list_items(
    principal: Principal,
    state: State,
    path: web::Path<String>,
    query: QueryMap,
) -> Answer {
    principal.require(READERS)?;
    let run_id = RunId::from_trusted(path.into_inner());
    let mut v = Validator::new();
    let page = PageRequest::parse(&query, &mut v);
    let outcome = query
        .get("outcome")
        .and_then(|o| v.check("outcome", Outcome::parse(o)));
    v.finish()?;
    store::require_run(&state.pool, &run_id).await?;
    let rows =
        store::fetch_items(&state.pool, &run_id, outcome, page.cursor, page.limit + 1).await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, page.limit, |i: &Item| i.seq)))
}

/// A run's items as CSV, streamed page by page however many there are.
#[utoipa::path(get, path = "/v1/reconciliations/{id}/report.csv", tag = "reconciliation",
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 200, description = "RFC 4180 CSV with a header row, no BOM; null is an empty field", body = String, content_type = "text/csv"),
        ReconciliationNotFound,
    ))]
pub async fn report_csv(principal: Principal, state: State, path: web::Path<String>) -> Answer {
    principal.require(READERS)?;
    let run_id = RunId::from_trusted(path.into_inner());
    store::require_run(&state.pool, &run_id).await?;
    Ok(report_response(state.pool.clone(), run_id))
}

/// The items of the run `run_id` (which exists) as a CSV answer, streamed page by page: what
/// `GET .../report.csv` answers, and what the console's download serves.
pub fn report_response(pool: deadpool_postgres::Pool, run_id: RunId) -> HttpResponse {
    let header = futures_util::stream::once(async {
        Ok::<_, ApiError>(Bytes::from_static(REPORT_HEADER.as_bytes()))
    });
    let pages = futures_util::stream::unfold(Some(None::<i64>), move |after| {
        let pool = pool.clone();
        let run_id = run_id.clone();
        async move {
            let after = after?;
            match store::fetch_items(&pool, &run_id, None, after, REPORT_PAGE_ROWS).await {
                Ok(items) if items.is_empty() => None,
                Ok(items) => {
                    let mut out = Vec::with_capacity(items.len() * 96);
                    for item in &items {
                        items::write_record(item, &mut out);
                    }
                    let next = (items.len() as i64 == REPORT_PAGE_ROWS)
                        .then(|| items.last().map(|i| i.seq));
                    Some((Ok(Bytes::from(out)), next.flatten().map(Some)))
                }
                Err(err) => Some((Err(ApiError::from(err)), None)),
            }
        }
    });
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .streaming(futures_util::StreamExt::chain(header, pages))
}

/// Orders paid on a business day, in total and by obligation, agency and bank; the refunds
/// completed that day (`refunds`); and the cases opened and resolved that day and open at its
/// end (`cases`).
#[utoipa::path(get, path = "/v1/reports/daily", tag = "reconciliation",
    params(("date" = String, Query, description = "The business day (Vietnam time), YYYY-MM-DD")),
    responses(
        (status = 200, description = "The report", body = DailyReport),
        (status = 422, description = "`validation_failed`: a missing or invalid date", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn daily(principal: Principal, state: State, query: QueryMap) -> Answer {
    principal.require(READERS)?;
    let mut v = Validator::new();
    let date = required(&mut v, &query, "date", parse_date);
    let date = v.finish_with(|| date)?;
    let report = store::daily_report(&state.pool, date).await?;
    Ok(HttpResponse::Ok().json(report))
}
