//! Endpoints for operators: liveness, readiness, metrics, the API document and its page.
//!
//! The page is Swagger UI. Its files are built into the binary (the `vendored` feature of
//! `utoipa-swagger-ui`), so `/docs` works on a network without internet access, and it reads the
//! same `/openapi.json` that this module serves.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use actix_web::web::Bytes;
use actix_web::{web, HttpResponse};
use deadpool_postgres::Timeouts;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_swagger_ui::Config as SwaggerUiConfig;

use super::error::{ApiError, ErrorCode};
use super::AppState;

/// Readiness must answer fast even when the database hangs: a probe that times out is as bad
/// as a failed one, and Kubernetes probes time out after a second by default.
const READINESS_TIMEOUT_MS: u64 = 800;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics))
        .route("/openapi.json", web::get().to(openapi_json))
        .route("/docs", web::get().to(docs))
        .route("/docs/{file:.*}", web::get().to(docs_file));
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
pub async fn docs() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(DOCS_PAGE.as_str())
}

/// Where Swagger UI's own files are served; `/docs/` itself is the page.
const DOCS_FILES_PATH: &str = "/docs/";

/// Swagger UI's settings: it reads paygate's one document, and the online validator (which
/// would send the document to swagger.io and show a badge fetched from there) is off.
static SWAGGER_UI: LazyLock<Arc<SwaggerUiConfig<'static>>> =
    LazyLock::new(|| Arc::new(SwaggerUiConfig::new(["/openapi.json"]).validator_url("none")));

/// Swagger UI's page. Its files are named relative to it (`./swagger-ui.css`), so a `<base>`
/// makes the same page work at `/docs` as at `/docs/`.
static DOCS_PAGE: LazyLock<String> = LazyLock::new(|| {
    let page = swagger_ui_file("index.html").expect("Swagger UI has an index.html");
    let page = String::from_utf8(page.bytes.into_owned()).expect("Swagger UI's page is UTF-8");
    assert!(page.contains("<head>"), "Swagger UI's page has a head");
    page.replacen(
        "<head>",
        &format!("<head>\n    <base href=\"{DOCS_FILES_PATH}\">"),
        1,
    )
});

fn swagger_ui_file(name: &str) -> Option<utoipa_swagger_ui::SwaggerFile<'static>> {
    utoipa_swagger_ui::serve(name, SWAGGER_UI.clone())
        // Only the initializer is formatted (with the settings above, which always serialise).
        .expect("Swagger UI's settings serialise")
}

/// Swagger UI's files (scripts, style sheets, icons), and its page at `/docs/`.
async fn docs_file(file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let file = file.into_inner();
    if file.is_empty() || file == "index.html" {
        return Ok(docs().await);
    }
    let found = swagger_ui_file(&file)
        .ok_or_else(|| ApiError::not_found(ErrorCode::NotFound, "no such resource"))?;
    // The files are built into the binary: serve them without copying (a copy of the script
    // bundle would be over a megabyte per request).
    let bytes = match found.bytes {
        Cow::Borrowed(bytes) => Bytes::from_static(bytes),
        Cow::Owned(bytes) => Bytes::from(bytes),
    };
    Ok(HttpResponse::Ok()
        .content_type(found.content_type)
        .body(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_docs_page_names_its_files_under_docs_and_the_ui_reads_openapi_json() {
        assert!(
            DOCS_PAGE.contains("<base href=\"/docs/\">"),
            "{}",
            *DOCS_PAGE
        );
        assert!(DOCS_PAGE.contains("./swagger-ui-bundle.js"));
        let initializer = swagger_ui_file("swagger-initializer.js").unwrap();
        let initializer = String::from_utf8(initializer.bytes.into_owned()).unwrap();
        assert!(initializer.contains("\"/openapi.json\""), "{initializer}");
        assert!(!initializer.contains("{{config}}"), "{initializer}");
    }
}
