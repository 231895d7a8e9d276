//! Ledger endpoints for auditors and admins.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::exceptions::{ExceptionItem, ListFilter};
use super::store::{self, Verification};
use crate::auth::{Principal, Role};
use crate::domain::BankCode;
use crate::http::answers::InvalidFilter;
use crate::http::body::Validator;
use crate::http::pagination::{Page, PageParams, PageRequest};
use crate::http::{Answer, QueryMap, State};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/ledger/balances", web::get().to(balances))
        .route("/v1/ledger/verify", web::get().to(verify))
        .route("/v1/exceptions", web::get().to(list_exceptions));
}

const READERS: &[Role] = &[Role::Auditor, Role::Admin];

#[derive(Debug, Serialize, ToSchema)]
pub struct Balances {
    pub items: Vec<store::Balance>,
}

/// Balances of every account (optionally those starting with `account_prefix`).
#[utoipa::path(get, path = "/v1/ledger/balances", tag = "ledger",
    params(("account_prefix" = Option<String>, Query, description = "e.g. `bank:` or `agency:000.00.00.H12:`")),
    responses((status = 200, description = "Balances by account", body = Balances)))]
pub async fn balances(principal: Principal, state: State, query: QueryMap) -> Answer {
    principal.require(READERS)?;
    let prefix = query.get("account_prefix").map_or("", String::as_str);
    let items = store::balances(&state.pool, prefix).await?;
    Ok(HttpResponse::Ok().json(Balances { items }))
}

/// Checks every invariant of the ledger: each transaction balances with at least two entries,
/// and total debits equal total credits.
#[utoipa::path(get, path = "/v1/ledger/verify", tag = "ledger",
    responses((status = 200, description = "The verdict", body = Verification)))]
pub async fn verify(principal: Principal, state: State) -> Answer {
    principal.require(READERS)?;
    Ok(HttpResponse::Ok().json(store::verify(&state.pool).await?))
}

/// Callbacks whose money went to suspense, and rejected callbacks kept for investigation.
#[utoipa::path(get, path = "/v1/exceptions", tag = "ledger",
    params(
        ("bank" = Option<String>, Query, description = "Bank code"),
        ("from" = Option<String>, Query, description = "RFC 3339; recorded at or after"),
        ("to" = Option<String>, Query, description = "RFC 3339; recorded before"),
        PageParams,
    ),
    responses(
        (status = 200, description = "One page, newest first", body = Page<ExceptionItem>),
        InvalidFilter,
    ))]
pub async fn list_exceptions(principal: Principal, state: State, query: QueryMap) -> Answer {
    principal.require(READERS)?;
    let mut v = Validator::new();
    let page = PageRequest::parse(&query, &mut v);
    let time = |v: &mut Validator, name: &str| {
        let text = query.get(name)?;
        v.check(name, crate::timefmt::parse_rfc3339(text))
    };
    let filter = ListFilter {
        bank: query
            .get("bank")
            .and_then(|bank| v.check("bank", BankCode::parse(bank))),
        from: time(&mut v, "from"),
        to: time(&mut v, "to"),
        before: page.cursor,
        limit: page.limit,
    };
    v.finish()?;
    let rows = store::list_exceptions(&state.pool, &filter).await?;
    Ok(
        HttpResponse::Ok().json(Page::from_rows(rows, filter.limit, |e: &ExceptionItem| {
            e.seq
        })),
    )
}
