//! Ledger endpoints for auditors and admins.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::exceptions::{ExceptionItem, ListFilter};
use super::seals::{self, Checkpoint, Seal, SealContent};
use super::signing::Keyring;
use super::store::{self, Verification};
use crate::auth::{Principal, Role};
use crate::domain::BankCode;
use crate::http::answers::{InvalidFilter, InvalidPage, ValidationFailed};
use crate::http::body::Validator;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::pagination::{Page, PageParams, PageRequest};
use crate::http::{Answer, QueryMap, State};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/ledger/balances", web::get().to(balances))
        .route("/v1/ledger/verify", web::get().to(verify))
        .route("/v1/ledger/seals", web::get().to(list_seals))
        // Before `{seq}`, which would otherwise take "key" as a sequence number.
        .route("/v1/ledger/seals/key", web::get().to(seal_keys))
        .route("/v1/ledger/seals/{seq}", web::get().to(get_seal))
        .route("/v1/exceptions", web::get().to(list_exceptions));
}

const READERS: &[Role] = &[Role::Auditor, Role::Admin];

#[derive(Debug, Serialize, ToSchema)]
pub struct Balances {
    pub items: Vec<store::Balance>,
}

/// Balances of every live account (optionally those starting with `account_prefix`). The
/// sandbox's accounts (`sandbox:...`) are listed only when `account_prefix` starts with
/// `sandbox:`.
#[utoipa::path(get, path = "/v1/ledger/balances", tag = "ledger",
    params(("account_prefix" = Option<String>, Query, description = "e.g. `bank:`, `agency:000.00.00.H12:`, or `sandbox:` for the sandbox's accounts")),
    responses((status = 200, description = "Balances by account", body = Balances)))]
pub async fn balances(principal: Principal, state: State, query: QueryMap) -> Answer {
    principal.require(READERS)?;
    let prefix = query.get("account_prefix").map_or("", String::as_str);
    let items = store::balances(&state.pool, prefix).await?;
    Ok(HttpResponse::Ok().json(Balances { items }))
}

/// The keys the ledger's seals are signed with, as the service holds them.
pub type Keys = web::Data<Keyring>;

/// Checks every invariant of the ledger: each transaction balances with at least two entries,
/// total debits equal total credits, and every seal verifies (recomputed hash, chain, signature
/// by a trusted key). With `checkpoint_seq` and `checkpoint_hash` (a seal an auditor kept), the
/// verified chain must also still hold that seal with that hash.
#[utoipa::path(get, path = "/v1/ledger/verify", tag = "ledger",
    params(
        ("checkpoint_seq" = Option<i64>, Query, description = "`seq` of a kept seal; with `checkpoint_hash`"),
        ("checkpoint_hash" = Option<String>, Query, description = "`hash` of that seal (64 lowercase hex digits); with `checkpoint_seq`"),
    ),
    responses(
        (status = 200, description = "The verdict", body = Verification),
        ValidationFailed,
    ))]
pub async fn verify(principal: Principal, state: State, keys: Keys, query: QueryMap) -> Answer {
    principal.require(READERS)?;
    let mut v = Validator::new();
    let seq = query
        .get("checkpoint_seq")
        .and_then(|text| v.check("checkpoint_seq", parse_seq(text)));
    let hash = query.get("checkpoint_hash").and_then(|text| {
        v.check(
            "checkpoint_hash",
            seals::parse_hash(text).ok_or_else(|| "must be 64 lowercase hex digits".to_owned()),
        )
    });
    match (
        query.contains_key("checkpoint_seq"),
        query.contains_key("checkpoint_hash"),
    ) {
        (true, false) => v.error("checkpoint_hash", "is required with checkpoint_seq"),
        (false, true) => v.error("checkpoint_seq", "is required with checkpoint_hash"),
        _ => {}
    }
    v.finish()?;
    let checkpoint = seq.zip(hash).map(|(seq, hash)| Checkpoint { seq, hash });
    let verdict = store::verify(&state.pool, &keys, checkpoint.as_ref()).await?;
    Ok(HttpResponse::Ok().json(verdict))
}

/// A seal's `seq`: a whole number from 1.
fn parse_seq(text: &str) -> Result<i64, String> {
    text.parse::<i64>()
        .ok()
        .filter(|seq| *seq >= 1)
        .ok_or_else(|| "must be a whole number from 1".to_owned())
}

/// The ledger's seals, newest first (without their content; `GET /v1/ledger/seals/{seq}` has
/// it).
#[utoipa::path(get, path = "/v1/ledger/seals", tag = "ledger",
    params(PageParams),
    responses(
        (status = 200, description = "One page, newest first", body = Page<Seal>),
        InvalidPage,
    ))]
pub async fn list_seals(principal: Principal, state: State, query: QueryMap) -> Answer {
    principal.require(READERS)?;
    let mut v = Validator::new();
    let page = PageRequest::parse(&query, &mut v);
    v.finish()?;
    let rows = seals::list(&state.pool, page.cursor, page.limit).await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, page.limit, |seal: &Seal| seal.seq)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SealKeys {
    /// The hex Ed25519 public key that signs new seals.
    pub public_key: Option<String>,
    /// Public keys used before a rotation; seals they signed still verify.
    pub previous_keys: Vec<String>,
}

/// The public keys that verify the seals' signatures.
#[utoipa::path(get, path = "/v1/ledger/seals/key", tag = "ledger",
    responses((status = 200, description = "The current and previous public keys", body = SealKeys)))]
pub async fn seal_keys(principal: Principal, keys: Keys) -> Answer {
    principal.require(READERS)?;
    Ok(HttpResponse::Ok().json(SealKeys {
        public_key: keys.public_key(),
        previous_keys: keys.previous_keys().to_vec(),
    }))
}

/// 404 for a seal `seq` that does not exist (yet).
pub struct SealNotFound;

impl utoipa::IntoResponses for SealNotFound {
    fn responses() -> std::collections::BTreeMap<
        String,
        utoipa::openapi::RefOr<utoipa::openapi::response::Response>,
    > {
        std::collections::BTreeMap::from([(
            "404".to_owned(),
            crate::http::answers::problem("`not_found`: no seal with that `seq`"),
        )])
    }
}

/// One seal with the exact content its hash covers, so that anyone can recompute the hash.
#[utoipa::path(get, path = "/v1/ledger/seals/{seq}", tag = "ledger",
    params(("seq" = i64, Path, description = "The seal's `seq`")),
    responses(
        (status = 200, description = "The seal and its transactions", body = SealContent),
        SealNotFound,
        ValidationFailed,
    ))]
pub async fn get_seal(principal: Principal, state: State, path: web::Path<String>) -> Answer {
    principal.require(READERS)?;
    let mut v = Validator::new();
    let seq = v.check("seq", parse_seq(&path.into_inner()));
    let seq = v.finish_with(|| seq)?;
    match seals::get(&state.pool, seq).await? {
        Some(content) => Ok(HttpResponse::Ok().json(content)),
        None => Err(ApiError::not_found(ErrorCode::NotFound, "no such seal")),
    }
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
