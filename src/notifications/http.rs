//! The events API: agencies read and redeliver their own events; auditors read all; admins
//! read and redeliver all.

use actix_web::{web, HttpResponse};

use super::store::{self, EventError, EventFilter, EventItem, EventStatus};
use crate::audit::Actor;
use crate::auth::{Principal, Role};
use crate::domain::{AgencyCode, EventId};
use crate::http::answers::InvalidFilter;
use crate::http::body::Validator;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::pagination::{Page, PageParams, PageRequest};
use crate::http::{Answer, QueryMap, State};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/events", web::get().to(list_events))
        .route("/v1/events/{id}/redeliver", web::post().to(redeliver));
}

impl From<EventError> for ApiError {
    fn from(err: EventError) -> Self {
        match err {
            EventError::NotFound(_) => {
                ApiError::not_found(ErrorCode::EventNotFound, err.to_string())
            }
            EventError::Db(err) => err.into(),
        }
    }
}

/// The agency whose events the caller may see: its own for an agency's key, all otherwise.
fn event_scope(principal: &Principal) -> Option<&AgencyCode> {
    match principal.role {
        Role::Agency => principal.agency.as_ref(),
        Role::Admin | Role::Auditor => None,
    }
}

/// List events, newest first.
#[utoipa::path(get, path = "/v1/events", tag = "events",
    params(
        ("payment_id" = Option<String>, Query, description = "One order's events"),
        ("status" = Option<String>, Query, description = "pending, delivered or dead"),
        PageParams,
    ),
    responses(
        (status = 200, description = "One page", body = Page<EventItem>),
        InvalidFilter,
    ))]
pub async fn list_events(principal: Principal, state: State, query: QueryMap) -> Answer {
    let mut v = Validator::new();
    let page = PageRequest::parse(&query, &mut v);
    let status = query.get("status").and_then(|status| {
        v.check(
            "status",
            EventStatus::parse(status)
                .ok_or_else(|| "must be pending, delivered or dead".to_owned()),
        )
    });
    v.finish()?;
    let filter = EventFilter {
        agency: event_scope(&principal),
        payment_id: query.get("payment_id").map(String::as_str),
        status,
    };
    Ok(HttpResponse::Ok().json(store::list(&state.pool, &filter, page).await?))
}

/// Deliver an event again: it is pending with a fresh schedule. An attempt in flight at that
/// moment loses its claim: its outcome is counted but does not end the redelivery.
#[utoipa::path(post, path = "/v1/events/{id}/redeliver", tag = "events",
    params(("id" = String, Path, description = "Event id")),
    responses(
        (status = 202, description = "Scheduled for delivery now"),
        (status = 404, description = "`event_not_found` (also for another agency's event)", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn redeliver(principal: Principal, state: State, path: web::Path<String>) -> Answer {
    principal.require(&[Role::Agency, Role::Admin])?;
    // Any text is looked up as it is: one that is no event's id finds no row and is answered
    // like an unknown id.
    let id = EventId::from_trusted(path.into_inner());
    // The audit trail records operators' actions: an admin's redelivery. An agency redelivering
    // its own event is its own business, like creating an order.
    let actor = (principal.role != Role::Agency).then(|| Actor::api(&principal));
    store::redeliver(&state.pool, &id, event_scope(&principal), actor.as_ref()).await?;
    Ok(HttpResponse::Accepted().finish())
}
