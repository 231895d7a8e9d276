//! Ledger endpoints for auditors and admins.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;

use super::exceptions::{self, ExceptionItem};
use crate::auth::{Principal, Role};
use crate::codes::BankCode;
use crate::http::body::Validator;
use crate::http::error::ApiError;
use crate::http::pagination::{Page, PageRequest};
use crate::http::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/ledger/balances", web::get().to(balances))
        .route("/v1/ledger/verify", web::get().to(verify))
        .route("/v1/exceptions", web::get().to(list_exceptions));
}

const READERS: &[Role] = &[Role::Auditor, Role::Admin];

#[derive(Debug, Serialize, ToSchema)]
pub struct Balance {
    #[schema(example = "bank:VCB")]
    pub account: String,
    #[schema(example = "150000")]
    pub debits: String,
    #[schema(example = "0")]
    pub credits: String,
    /// debits - credits; may be negative.
    #[schema(example = "150000")]
    pub balance: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Balances {
    pub items: Vec<Balance>,
}

fn amount_text(value: Decimal) -> String {
    value.normalize().to_string()
}

/// Balances of every account (optionally those starting with `account_prefix`).
#[utoipa::path(get, path = "/v1/ledger/balances", tag = "ledger",
    params(("account_prefix" = Option<String>, Query, description = "e.g. `bank:` or `agency:000.00.00.H12:`")),
    responses((status = 200, description = "Balances by account", body = Balances)))]
pub async fn balances(
    principal: Principal,
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    principal.require(READERS)?;
    let prefix = query.get("account_prefix").cloned().unwrap_or_default();
    let client = state.pool.get().await?;
    let rows = client
        .query(
            "SELECT account, sum(debit), sum(credit) FROM ledger_entries
             WHERE starts_with(account, $1) GROUP BY account ORDER BY account",
            &[&prefix],
        )
        .await?;
    let items = rows
        .iter()
        .map(|row| {
            let debits: Decimal = row.get(1);
            let credits: Decimal = row.get(2);
            Balance {
                account: row.get(0),
                debits: amount_text(debits),
                credits: amount_text(credits),
                balance: amount_text(debits - credits),
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(Balances { items }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Offending {
    pub transaction: i64,
    pub debits: String,
    pub credits: String,
    pub entries: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Verification {
    pub ok: bool,
    pub transactions: i64,
    pub entries: i64,
    pub debits: String,
    pub credits: String,
    /// Present when `ok` is false: transactions that do not balance or have under two entries.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub offending: Vec<Offending>,
}

/// The offending transactions listed at most, so that a badly broken ledger still answers.
const MAX_OFFENDING: i64 = 100;

/// Checks every invariant of the ledger: each transaction balances with at least two entries,
/// and total debits equal total credits.
#[utoipa::path(get, path = "/v1/ledger/verify", tag = "ledger",
    responses((status = 200, description = "The verdict", body = Verification)))]
pub async fn verify(
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    principal.require(READERS)?;
    let mut client = state.pool.get().await?;
    // One snapshot for both queries, so that a posting committed in between cannot make a
    // sound ledger look unbalanced.
    let transaction = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let totals = transaction
        .query_one(
            "SELECT (SELECT count(*) FROM ledger_transactions), count(*),
                    coalesce(sum(debit), 0), coalesce(sum(credit), 0)
             FROM ledger_entries",
            &[],
        )
        .await?;
    let offending = transaction
        .query(
            "SELECT t.id, coalesce(sum(e.debit), 0), coalesce(sum(e.credit), 0), count(e.id)
             FROM ledger_transactions t LEFT JOIN ledger_entries e ON e.transaction_id = t.id
             GROUP BY t.id
             HAVING coalesce(sum(e.debit), 0) <> coalesce(sum(e.credit), 0) OR count(e.id) < 2
             ORDER BY t.id LIMIT $1",
            &[&MAX_OFFENDING],
        )
        .await?;
    transaction.commit().await?;
    let debits: Decimal = totals.get(2);
    let credits: Decimal = totals.get(3);
    let offending: Vec<Offending> = offending
        .iter()
        .map(|row| Offending {
            transaction: row.get(0),
            debits: amount_text(row.get(1)),
            credits: amount_text(row.get(2)),
            entries: row.get(3),
        })
        .collect();
    Ok(HttpResponse::Ok().json(Verification {
        ok: offending.is_empty() && debits == credits,
        transactions: totals.get(0),
        entries: totals.get(1),
        debits: amount_text(debits),
        credits: amount_text(credits),
        offending,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct ExceptionPage {
    pub items: Vec<ExceptionItem>,
    pub next_cursor: Option<String>,
}

/// Callbacks whose money went to suspense, and rejected callbacks kept for investigation.
#[utoipa::path(get, path = "/v1/exceptions", tag = "ledger",
    params(
        ("bank" = Option<String>, Query, description = "Bank code"),
        ("from" = Option<String>, Query, description = "RFC 3339; recorded at or after"),
        ("to" = Option<String>, Query, description = "RFC 3339; recorded before"),
        ("limit" = Option<i64>, Query, description = "1-500, default 100"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "One page, newest first", body = ExceptionPage),
        (status = 422, description = "`validation_failed`: an invalid filter", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_exceptions(
    principal: Principal,
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    principal.require(READERS)?;
    let mut v = Validator::new();
    let page = PageRequest::parse(&query, &mut v);
    let mut filter = exceptions::ListFilter {
        limit: page.limit,
        before: page.cursor,
        ..Default::default()
    };
    if let Some(bank) = query.get("bank") {
        filter.bank = v.check("bank", BankCode::parse(bank));
    }
    if let Some(from) = query.get("from") {
        filter.from = v.check("from", crate::timefmt::parse_rfc3339(from));
    }
    if let Some(to) = query.get("to") {
        filter.to = v.check("to", crate::timefmt::parse_rfc3339(to));
    }
    v.finish()?;
    let rows = exceptions::list(&state.pool, &filter).await?;
    Ok(
        HttpResponse::Ok().json(Page::from_rows(rows, filter.limit, |e: &ExceptionItem| {
            e.seq
        })),
    )
}
