//! Endpoints for operators: liveness, readiness, metrics, the API document and its page.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use deadpool_postgres::Timeouts;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ApiError;
use super::AppState;

/// Readiness must answer fast even when the database hangs: a probe that times out is as bad
/// as a failed one, and Kubernetes probes time out after a second by default.
const READINESS_TIMEOUT_MS: u64 = 800;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics))
        .route("/openapi.json", web::get().to(openapi_json))
        .route("/docs", web::get().to(docs));
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness: the process is up and serving HTTP.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, description = "The process is alive", body = Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// Readiness: the database answers a query within a second.
///
/// A failing check answers 503 `unavailable` with a fixed `detail`; why the database could not
/// be reached (the driver's message) is logged as a warning, never sent.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses(
        (status = 200, description = "The database is reachable", body = Health),
        (status = 503, description = "`unavailable`: the database is unreachable or did not answer in time. The `detail` is always the same text; the cause is only in the service's log.", body = super::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let limit = Duration::from_millis(READINESS_TIMEOUT_MS);
    let timeouts = Timeouts {
        wait: Some(limit),
        create: Some(limit),
        recycle: Some(limit),
    };
    let check = async {
        let client = state.pool.timeout_get(&timeouts).await?;
        client.simple_query("SELECT 1").await?;
        Ok::<_, ApiError>(())
    };
    match tokio::time::timeout(limit * 2, check).await {
        Ok(Ok(())) => Ok(HttpResponse::Ok().json(Health { status: "ready" })),
        // Whatever stopped the check, the service is not ready; the cause is logged with the
        // 503 (`ApiError::Unavailable` never sends its text).
        Ok(Err(ApiError::Internal(err))) => Err(ApiError::Unavailable(format!("{err:#}"))),
        Ok(Err(err)) => Err(err),
        Err(_) => Err(ApiError::Unavailable(
            "the database did not answer in time".to_owned(),
        )),
    }
}

/// Prometheus metrics in the text exposition format.
///
/// Requests and their latency by method, route and status, bank callbacks by bank and result,
/// rejected signatures by reason, notification deliveries by outcome, and the database pool.
/// Every label takes its values from a fixed set: a method other than GET, HEAD, POST, PUT,
/// PATCH, DELETE and OPTIONS is `other`, and a request that no route answered has the route
/// `unmatched`, so no request can add a series.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, description = "Prometheus text format. Label values come from fixed sets: an unknown HTTP method is `other`, an unknown route is `unmatched`.", body = String, content_type = "text/plain")))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render(&state.pool))
}

/// This OpenAPI 3.1 document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", security(()),
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
pub async fn openapi_json(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.openapi_json.clone())
}

/// A human-readable API reference, rendered from the OpenAPI document; works offline.
#[utoipa::path(get, path = "/docs", tag = "operations", security(()),
    responses((status = 200, description = "HTML page", body = String, content_type = "text/html")))]
pub async fn docs(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(state.docs_html.clone())
}
