//! The events API: agencies read and redeliver their own events; auditors read all; admins
//! read and redeliver all.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use serde::Serialize;
use time::OffsetDateTime;
use tokio_postgres::types::ToSql;
use utoipa::ToSchema;

use crate::auth::{Principal, Role};
use crate::http::body::Validator;
use crate::http::error::ApiError;
use crate::http::pagination::{Page, PageRequest};
use crate::http::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/events", web::get().to(list_events))
        .route("/v1/events/{id}/redeliver", web::post().to(redeliver));
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventItem {
    #[schema(example = "evt_5f0c2a9e1b3d4c6e8a7b9d0f")]
    pub id: String,
    /// payment.paid, payment.expired or payment.cancelled.
    #[serde(rename = "type")]
    #[schema(example = "payment.paid")]
    pub event_type: String,
    pub payment_id: String,
    /// pending, delivered or dead.
    #[schema(example = "delivered")]
    pub status: String,
    /// Every attempt made, the successful one included.
    pub attempts: i32,
    pub last_error: Option<String>,
    #[serde(serialize_with = "crate::timefmt::serialize_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<OffsetDateTime>,
    #[serde(serialize_with = "crate::timefmt::serialize_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub delivered_at: Option<OffsetDateTime>,
    #[serde(skip)]
    pub seq: i64,
}

#[derive(Serialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<EventItem>,
    pub next_cursor: Option<String>,
}

fn event_scope(principal: &Principal) -> Option<&str> {
    match principal.role {
        Role::Agency => principal.agency.as_ref().map(|a| a.as_str()),
        Role::Admin | Role::Auditor => None,
    }
}

/// List events, newest first.
#[utoipa::path(get, path = "/v1/events", tag = "events",
    params(
        ("payment_id" = Option<String>, Query, description = "One order's events"),
        ("status" = Option<String>, Query, description = "pending, delivered or dead"),
        ("limit" = Option<i64>, Query, description = "1-500, default 100"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "One page", body = EventPage),
        (status = 422, description = "`validation_failed`: an invalid filter", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_events(
    principal: Principal,
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let mut v = Validator::new();
    let page = PageRequest::parse(&query, &mut v);
    let status = query.get("status").and_then(|s| {
        v.check(
            "status",
            match s.as_str() {
                "pending" | "delivered" | "dead" => Ok(s.clone()),
                _ => Err("must be pending, delivered or dead".to_owned()),
            },
        )
    });
    v.finish()?;
    let agency = event_scope(&principal);
    let payment_id = query.get("payment_id");
    let fetch = page.limit + 1;
    let params: [&(dyn ToSql + Sync); 5] = [&agency, &payment_id, &status, &page.cursor, &fetch];
    let client = state.pool.get().await?;
    let rows = client
        .query(
            "SELECT id, type, payment_id, status, attempts, last_error,
                    CASE WHEN status = 'pending' THEN next_attempt_at END, delivered_at, seq
             FROM events
             WHERE ($1::text IS NULL OR agency_code = $1)
               AND ($2::text IS NULL OR payment_id = $2)
               AND ($3::text IS NULL OR status = $3)
               AND ($4::bigint IS NULL OR seq < $4)
             ORDER BY seq DESC LIMIT $5",
            &params,
        )
        .await?;
    let items = rows
        .iter()
        .map(|row| EventItem {
            id: row.get(0),
            event_type: row.get(1),
            payment_id: row.get(2),
            status: row.get(3),
            attempts: row.get(4),
            last_error: row.get(5),
            next_attempt_at: row.get(6),
            delivered_at: row.get(7),
            seq: row.get(8),
        })
        .collect();
    Ok(HttpResponse::Ok().json(Page::from_rows(items, page.limit, |e: &EventItem| e.seq)))
}

/// Deliver an event again: it is pending with a fresh schedule. An attempt in flight at that
/// moment loses its claim: its outcome is counted but does not end the redelivery.
#[utoipa::path(post, path = "/v1/events/{id}/redeliver", tag = "events",
    params(("id" = String, Path, description = "Event id")),
    responses(
        (status = 202, description = "Scheduled for delivery now"),
        (status = 404, description = "`event_not_found` (also for another agency's event)", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn redeliver(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&[Role::Agency, Role::Admin])?;
    let id = path.into_inner();
    let client = state.pool.get().await?;
    let updated = client
        .execute(
            "UPDATE events SET status = 'pending', schedule_attempts = 0, next_attempt_at = now(),
                 delivered_at = NULL, locked_until = NULL
             WHERE id = $1 AND ($2::text IS NULL OR agency_code = $2)",
            &[&id, &event_scope(&principal)],
        )
        .await?;
    if updated == 0 {
        return Err(ApiError::not_found(
            "event_not_found",
            format!("no event {id}"),
        ));
    }
    tracing::info!(event_id = %id, "event scheduled for redelivery");
    Ok(HttpResponse::Accepted().finish())
}
