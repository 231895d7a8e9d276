//! Reconciliation and reports (roles `auditor` and `admin`; see `docs/api-guide.md`).

pub mod engine;
pub mod items;
pub mod report;
pub mod statement;

use std::collections::HashMap;
use std::io::{Seek, Write};

use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use time::Date;
use tokio_postgres::types::ToSql;

use crate::auth::{Principal, Role};
use crate::codes::BankCode;
use crate::http::body::Validator;
use crate::http::error::ApiError;
use crate::http::pagination::{Page, PageRequest};
use crate::http::AppState;
use engine::{Run, RUN_COLUMNS};

/// Statements over 1 GiB answer 413 `payload_too_large`.
pub const STATEMENT_LIMIT_BYTES: u64 = 1024 * 1024 * 1024;

const READERS: &[Role] = &[Role::Auditor, Role::Admin];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/reconciliations", web::post().to(create_run))
        .route("/v1/reconciliations", web::get().to(list_runs))
        .route("/v1/reconciliations/{id}", web::get().to(get_run))
        .route(
            "/v1/reconciliations/{id}/items",
            web::get().to(items::list_items),
        )
        .route(
            "/v1/reconciliations/{id}/report.csv",
            web::get().to(items::report_csv),
        )
        .route("/v1/reports/daily", web::get().to(report::daily));
}

/// Parses `YYYY-MM-DD` in the years every accepted time falls in (see [`crate::timefmt`]).
pub fn parse_date(text: &str) -> Result<Date, String> {
    crate::timefmt::parse_date(text)
}

pub fn run_not_found(id: &str) -> ApiError {
    ApiError::not_found(
        "reconciliation_not_found",
        format!("no reconciliation run {id}"),
    )
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
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    principal.require(READERS)?;
    let mut v = Validator::new();
    let bank = match query.get("bank") {
        Some(bank) => v.check("bank", BankCode::parse(bank)),
        None => {
            v.error("bank", "is required");
            None
        }
    };
    let date = match query.get("date") {
        Some(date) => v.check("date", parse_date(date)),
        None => {
            v.error("date", "is required");
            None
        }
    };
    v.finish()?;
    let (Some(bank), Some(date)) = (bank, date) else {
        unreachable!("validated");
    };
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let too_large = ApiError::PayloadTooLarge {
        limit_bytes: STATEMENT_LIMIT_BYTES as usize,
    };
    if declared.is_some_and(|length| length > STATEMENT_LIMIT_BYTES) {
        return Err(too_large);
    }
    // Spooled to an anonymous temporary file (deleted when closed), so memory stays flat
    // however large the statement is.
    let mut file = tempfile::tempfile().map_err(ApiError::internal)?;
    let mut written: u64 = 0;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|err| ApiError::BadRequest {
            code: "malformed_body",
            detail: format!("the body could not be read: {err}"),
        })?;
        written += chunk.len() as u64;
        if written > STATEMENT_LIMIT_BYTES {
            return Err(too_large);
        }
        file.write_all(&chunk).map_err(ApiError::internal)?;
    }
    file.rewind().map_err(ApiError::internal)?;
    // Only an admin's run moves money; an auditor's reports what it would recover.
    let by = match principal.role {
        Role::Admin => engine::RunBy::Admin,
        _ => engine::RunBy::Auditor,
    };
    let run = engine::run(&state.pool, &bank, date, file, None, by).await?;
    Ok(HttpResponse::Created().json(run))
}

/// Read a run.
#[utoipa::path(get, path = "/v1/reconciliations/{id}", tag = "reconciliation",
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 200, description = "The run", body = Run),
        (status = 404, description = "`reconciliation_not_found`", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_run(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(READERS)?;
    let id = path.into_inner();
    let client = state.pool.get().await?;
    let row = client
        .query_opt(
            &format!("SELECT {RUN_COLUMNS} FROM reconciliation_runs WHERE id = $1"),
            &[&id],
        )
        .await?
        .ok_or_else(|| run_not_found(&id))?;
    Ok(HttpResponse::Ok().json(Run::from_row(&row)))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct RunPage {
    pub items: Vec<Run>,
    pub next_cursor: Option<String>,
}

/// List runs, newest first.
#[utoipa::path(get, path = "/v1/reconciliations", tag = "reconciliation",
    params(
        ("bank" = Option<String>, Query, description = "Bank code"),
        ("date" = Option<String>, Query, description = "YYYY-MM-DD"),
        ("limit" = Option<i64>, Query, description = "1-500, default 100"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "One page", body = RunPage),
        (status = 422, description = "`validation_failed`: an invalid filter", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_runs(
    principal: Principal,
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
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
    let bank = bank.as_ref().map(BankCode::as_str);
    let fetch = page.limit + 1;
    let params: [&(dyn ToSql + Sync); 4] = [&bank, &date, &page.cursor, &fetch];
    let client = state.pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {RUN_COLUMNS}, seq FROM reconciliation_runs
                 WHERE ($1::text IS NULL OR bank_code = $1) AND ($2::date IS NULL OR date = $2)
                   AND ($3::bigint IS NULL OR seq < $3)
                 ORDER BY seq DESC LIMIT $4"
            ),
            &params,
        )
        .await?;
    let runs: Vec<(Run, i64)> = rows
        .iter()
        .map(|row| (Run::from_row(row), row.get(7)))
        .collect();
    let page = Page::from_rows(runs, page.limit, |(_, seq)| *seq);
    Ok(HttpResponse::Ok().json(Page {
        items: page
            .items
            .into_iter()
            .map(|(run, _)| run)
            .collect::<Vec<_>>(),
        next_cursor: page.next_cursor,
    }))
}
