//! Logs (tracing, to stderr) and metrics (Prometheus text format).
//!
//! Every metric label takes its values from a set fixed by the code or by an administrator
//! (the registered banks), never from what a client sends: a label value a client could choose
//! would let anyone grow `/metrics`, and the memory behind it, without bound.

use std::io::IsTerminal;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber: JSON lines when stderr is not a terminal (log collectors),
/// readable text when a person watches. `RUST_LOG` was validated by the configuration.
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,tokio_postgres=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (tests build several apps) keeps the first subscriber.
    if std::io::stderr().is_terminal() {
        let _ = builder.try_init();
    } else {
        let _ = builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init();
    }
}

/// The `route` label of a request that no route answered (an unknown path, or a known path
/// with a method it does not serve).
pub const UNMATCHED_ROUTE: &str = "unmatched";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS or `other` (see
    /// [`crate::startup::method_label`]).
    pub method: &'static str,
    /// The matched route pattern (`/v1/agencies/{code}`), never the raw path, or
    /// [`UNMATCHED_ROUTE`], so that label values stay few.
    pub route: String,
    /// The answer's status code, which paygate chooses (a handler answers from a known set of
    /// statuses), so its values stay few as well.
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// As [`HttpLabels::method`].
    pub method: &'static str,
    /// As [`HttpLabels::route`].
    pub route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallbackLabels {
    /// The bank whose signature was verified, so one an administrator registered; a callback
    /// with an unknown bank in its path is rejected before it is counted here.
    pub bank: String,
    /// accepted, failed, duplicate, exception, conflict, not_found, amount_mismatch, invalid.
    pub result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// malformed, unknown_key, bad_mac, expired.
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// delivered, failed or dead.
    pub outcome: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.000_5, 2.0, 16))
}

/// Every metric the service exports.
pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_latency: HistogramFamily<RouteLabels>,
    pub callbacks: Family<CallbackLabels, Counter>,
    pub signature_failures: Family<ReasonLabels, Counter>,
    pub notify_deliveries: Family<OutcomeLabels, Counter>,
    pub notify_latency: Histogram,
    pub notify_queue_depth: Gauge,
    pub refund_instructions: Family<OutcomeLabels, Counter>,
    pub callback_batch_size: Histogram,
    pub order_batch_size: Histogram,
    pool_size: Gauge,
    pool_available: Gauge,
    pool_waiting: Gauge,
    pool_max_size: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("paygate");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            http_requests.clone(),
        );
        let http_latency: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by method and route",
            http_latency.clone(),
        );
        let callbacks = Family::<CallbackLabels, Counter>::default();
        registry.register(
            "bank_callbacks",
            "Bank callbacks by bank and result",
            callbacks.clone(),
        );
        let signature_failures = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "signature_failures",
            "Rejected bank signatures by reason",
            signature_failures.clone(),
        );
        let notify_deliveries = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "notify_deliveries",
            "Notification delivery attempts by outcome (dead counts events given up)",
            notify_deliveries.clone(),
        );
        let notify_latency = latency_histogram();
        registry.register(
            "notify_delivery_duration_seconds",
            "Duration of notification delivery attempts",
            notify_latency.clone(),
        );
        let notify_queue_depth = Gauge::default();
        registry.register(
            "notify_queue_depth",
            "Events due for delivery now",
            notify_queue_depth.clone(),
        );
        let refund_instructions = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "refund_instructions",
            "Refund instruction deliveries to banks by outcome (dead counts instructions given up)",
            refund_instructions.clone(),
        );
        // 1, 2, 4, ... 32: a batch holds at most 32 callbacks.
        let callback_batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 6));
        registry.register(
            "callback_batch_size",
            "Bank callbacks decided together in one database transaction (group commit)",
            callback_batch_size.clone(),
        );
        // 1, 2, 4, ... 32: a batch holds at most 32 orders.
        let order_batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 6));
        registry.register(
            "order_batch_size",
            "New orders created together in one database transaction (group commit)",
            order_batch_size.clone(),
        );
        let pool_size = Gauge::default();
        let pool_available = Gauge::default();
        let pool_waiting = Gauge::default();
        let pool_max_size = Gauge::default();
        registry.register(
            "db_pool_connections",
            "Open database connections",
            pool_size.clone(),
        );
        registry.register(
            "db_pool_idle_connections",
            "Idle database connections",
            pool_available.clone(),
        );
        registry.register(
            "db_pool_waiting_requests",
            "Requests waiting for a database connection",
            pool_waiting.clone(),
        );
        registry.register(
            "db_pool_max_connections",
            "Configured maximum database connections",
            pool_max_size.clone(),
        );
        Metrics {
            registry,
            http_requests,
            http_latency,
            callbacks,
            signature_failures,
            notify_deliveries,
            notify_latency,
            notify_queue_depth,
            refund_instructions,
            callback_batch_size,
            order_batch_size,
            pool_size,
            pool_available,
            pool_waiting,
            pool_max_size,
        }
    }

    /// Renders the Prometheus text format, reading the pool's state at this moment.
    pub fn render(&self, pool: &deadpool_postgres::Pool) -> String {
        let status = pool.status();
        self.pool_size.set(status.size as i64);
        self.pool_available.set(status.available as i64);
        self.pool_waiting.set(status.waiting as i64);
        self.pool_max_size.set(status.max_size as i64);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}
