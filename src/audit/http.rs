//! The audit trail's endpoints (roles `admin` and `auditor`).

use actix_web::{web, HttpResponse};

use super::store::{self, AuditFilter, AuditVerification};
use super::{Action, AuditEntry};
use crate::auth::{keys, Principal, Role};
use crate::http::answers::InvalidFilter;
use crate::http::body::Validator;
use crate::http::pagination::{Page, PageParams, PageRequest};
use crate::http::{Answer, QueryMap, State};
use crate::timefmt::parse_rfc3339;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/audit", web::get().to(list))
        .route("/v1/audit/verify", web::get().to(verify));
}

const READERS: &[Role] = &[Role::Admin, Role::Auditor];

/// The longest `target` filter; no target is longer.
const TARGET_MAX_CHARS: usize = 200;

/// List the audit trail, newest first.
#[utoipa::path(get, path = "/v1/audit", tag = "audit",
    params(
        ("action" = Option<String>, Query, description = "One action, e.g. `agency.update`"),
        ("key_id" = Option<String>, Query, description = "Entries made with one API key (`key_<number>`)"),
        ("target" = Option<String>, Query, description = "Entries about one target, e.g. `agency:000.00.00.H12`"),
        ("from" = Option<String>, Query, description = "RFC 3339; at or after"),
        ("to" = Option<String>, Query, description = "RFC 3339; before"),
        PageParams,
    ),
    responses(
        (status = 200, description = "One page, newest first", body = Page<AuditEntry>),
        InvalidFilter,
    ))]
pub async fn list(principal: Principal, state: State, query: QueryMap) -> Answer {
    principal.require(READERS)?;
    let mut v = Validator::new();
    let page = PageRequest::parse(&query, &mut v);
    let action = query.get("action").and_then(|action| {
        v.check(
            "action",
            Action::parse(action)
                .map(|action| action.as_str().to_owned())
                .ok_or_else(|| "is not an action of the audit trail".to_owned()),
        )
    });
    let key_id = query.get("key_id").and_then(|key_id| {
        v.check(
            "key_id",
            keys::parse_key_id(key_id)
                .map(keys::key_id)
                .ok_or_else(|| "must be an API key id such as key_42".to_owned()),
        )
    });
    let target = query.get("target").and_then(|target| {
        let chars = target.chars().count();
        v.check(
            "target",
            if (1..=TARGET_MAX_CHARS).contains(&chars) {
                Ok(target.clone())
            } else {
                Err(format!("must be 1 to {TARGET_MAX_CHARS} characters long"))
            },
        )
    });
    let mut time = |name: &str| {
        let text = query.get(name)?;
        v.check(name, parse_rfc3339(text))
    };
    let from = time("from");
    let to = time("to");
    v.finish()?;
    let filter = AuditFilter {
        action,
        key_id,
        target,
        from,
        to,
    };
    Ok(HttpResponse::Ok().json(store::list(&state.pool, &filter, page).await?))
}

/// Recompute the audit trail's hash chain from its first entry. `ok` is false, with the first
/// broken `seq`, when an entry was changed, removed or inserted.
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit",
    responses((status = 200, description = "The verdict", body = AuditVerification)))]
pub async fn verify(principal: Principal, state: State) -> Answer {
    principal.require(READERS)?;
    Ok(HttpResponse::Ok().json(store::verify(&state.pool).await?))
}
