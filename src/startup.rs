//! Start-up: the HTTP server built from a bound listener (so tests can bind port 0), with its
//! middleware and every capability's routes, and the background workers beside it.
//!
//! This is the one module that knows every capability; `http` holds only what the
//! capabilities share (the application state, errors, bodies, pages), so that none of them
//! has to import start-up to reach it.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

pub use actix_web::dev::ServerHandle;
use actix_web::dev::{Server, Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{web, App, HttpMessage, HttpServer};
use deadpool_postgres::Pool;
use tracing::Instrument;

use crate::banks::keys::BankKeys;
use crate::config::Config;
use crate::db::settings::Settings;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::{body, ops, AppState};
use crate::telemetry::{self, HttpLabels, Metrics, RouteLabels};
use crate::workers::Workers;

/// In-flight requests get this long to finish after SIGTERM (Kubernetes waits 30 s by default
/// before it kills the pod).
pub const SHUTDOWN_TIMEOUT_S: u64 = 25;
/// A client must send its request headers within this time.
pub const CLIENT_REQUEST_TIMEOUT_MS: u64 = 5_000;
/// Connections beyond this per worker wait in the kernel's backlog.
pub const MAX_CONNECTIONS_PER_WORKER: usize = 10_000;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A running HTTP server built from an already bound listener, so tests can bind port 0.
pub struct Application {
    port: u16,
    server: Server,
    workers: Workers,
    bank_key_listener: tokio::task::JoinHandle<()>,
}

impl Application {
    /// `database` is where the pool connects, for the connection that listens for changes to
    /// the banks' keys.
    pub fn build(
        config: Config,
        pool: Pool,
        database: Settings,
        listener: TcpListener,
    ) -> std::io::Result<Self> {
        let port = listener.local_addr()?.port();
        let metrics = Arc::new(Metrics::new());
        // The key that signs ledger seals; a key that cannot be read or made stops start-up.
        let seal_keys = web::Data::new(crate::ledger::signing::Keyring::load(
            config.seal_key_source(),
        )?);
        let workers = Workers::spawn(
            &pool,
            &config,
            metrics.clone(),
            seal_keys.clone().into_inner(),
        );
        let bank_keys = Arc::new(BankKeys::default());
        let bank_key_listener = bank_keys.clone().listen(database);
        let state = web::Data::new(AppState {
            pool,
            bank_keys,
            checklist: Arc::default(),
            metrics,
            openapi_json: crate::openapi::to_json(&crate::openapi::document()),
            config: Arc::new(config.clone()),
        });
        // One set of callback lanes for all of this app's workers, so that callbacks arriving
        // on different workers share batches.
        let callback_lanes = web::Data::new(crate::banks::group_commit::GroupCommit::start(
            state.pool.clone(),
            state.metrics.clone(),
            state.checklist.clone(),
            state.config.callback_lanes,
            state.config.callback_gather_ms,
        ));
        // And one set of order lanes.
        let order_lanes = web::Data::new(crate::payments::group_commit::OrderLanes::start(
            state.pool.clone(),
            state.metrics.clone(),
            state.checklist.clone(),
            state.config.order_lanes,
            state.config.order_gather_ms,
        ));
        // One copy of the console's overview figures for all of this app's workers.
        let console_figures = web::Data::new(crate::console::overview::SharedFigures::default());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(console_figures.clone())
                .app_data(callback_lanes.clone())
                .app_data(order_lanes.clone())
                .app_data(seal_keys.clone())
                .wrap_fn(crate::console::session::error_pages)
                .wrap(crate::auth::extract::AuthenticateFirst)
                .wrap_fn(body::refuse_nul_in_url)
                .wrap_fn(telemetry_middleware)
                .configure(ops::configure)
                .configure(crate::admin::configure)
                .configure(crate::catalog::http::configure)
                .configure(crate::payments::configure)
                .configure(crate::banks::configure)
                .configure(crate::refunds::configure)
                .configure(crate::sandbox::configure)
                .configure(crate::checklist::configure)
                .configure(crate::ledger::configure)
                .configure(crate::notifications::configure)
                .configure(crate::reconciliation::configure)
                .configure(crate::cases::configure)
                .configure(crate::statements::configure)
                .configure(crate::audit::http::configure)
                .configure(crate::console::configure)
                .default_service(web::to(not_found))
        })
        .workers(config.http_workers)
        .max_connections(MAX_CONNECTIONS_PER_WORKER)
        .client_request_timeout(std::time::Duration::from_millis(CLIENT_REQUEST_TIMEOUT_MS))
        .shutdown_timeout(SHUTDOWN_TIMEOUT_S)
        // Signals are handled by the caller (`serve`), so that Ctrl-C stops as gracefully
        // as SIGTERM does (actix alone would drop in-flight requests on SIGINT).
        .disable_signals()
        .listen(listener)?
        .run();
        Ok(Application {
            port,
            server,
            workers,
            bank_key_listener,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle to stop the server from elsewhere (tests, signal handlers).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped through [`Application::handle`]: a graceful stop stops accepting,
    /// then lets in-flight requests finish within [`SHUTDOWN_TIMEOUT_S`].
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        self.workers.stop().await;
        self.bank_key_listener.abort();
        served
    }
}

async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::not_found(ErrorCode::NotFound, "no such resource"))
}

fn request_id(req: &ServiceRequest) -> String {
    let given = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| {
            (1..=64).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        });
    match given {
        Some(id) => id.to_owned(),
        None => crate::domain::ids::random_id("req", 8),
    }
}

/// The `method` label of the request metrics: one of the standard methods paygate's routes
/// use, or `other`. Clients may send any token as a method, so the raw method would let anyone
/// add a series to `/metrics` with every request.
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The `route` label of the request metrics: the pattern of the route that answered
/// (`/v1/agencies/{code}`), a fixed set written in the code, or `unmatched` when no route did,
/// never the path the client sent.
fn route_label(req: &actix_web::HttpRequest) -> String {
    req.match_pattern()
        .unwrap_or_else(|| telemetry::UNMATCHED_ROUTE.to_owned())
}

/// Gives each request a span carrying its request id (so every log line of the request names
/// it), echoes the id in `X-Request-Id`, and records the request's metrics and one access line.
fn telemetry_middleware<S, B>(
    req: ServiceRequest,
    service: &S,
) -> impl std::future::Future<Output = Result<ServiceResponse<B>, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    let id = request_id(&req);
    req.extensions_mut()
        .insert(crate::auth::extract::RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.path());
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let started = Instant::now();
    let response = {
        let _entered = span.enter();
        service.call(req)
    };
    async move {
        let mut response = response.await?;
        let elapsed = started.elapsed();
        let status = response.status().as_u16();
        let route = route_label(response.request());
        let method = method_label(response.request().method());
        if let Some(state) = state {
            state
                .metrics
                .http_requests
                .get_or_create(&HttpLabels {
                    method,
                    route: route.clone(),
                    status,
                })
                .inc();
            state
                .metrics
                .http_latency
                .get_or_create(&RouteLabels { method, route })
                .observe(elapsed.as_secs_f64());
        }
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert(REQUEST_ID, value);
        }
        tracing::info!(
            status,
            latency_ms = elapsed.as_secs_f64() * 1e3,
            "request completed"
        );
        Ok(response)
    }
    .instrument(span)
}

#[cfg(test)]
mod tests {
    use actix_web::http::Method;

    use super::method_label;

    #[test]
    fn standard_methods_keep_their_name_and_every_other_token_is_other() {
        for name in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
            let method = Method::from_bytes(name.as_bytes()).unwrap();
            assert_eq!(method_label(&method), name);
        }
        for name in ["TRACE", "CONNECT", "FOO12345", "get", "PROPFIND", "X"] {
            let method = Method::from_bytes(name.as_bytes()).unwrap();
            assert_eq!(method_label(&method), "other", "{name}");
        }
    }
}
