//! What every capability's HTTP handlers share: the application state, the error answer,
//! request bodies, pagination, and the operators' endpoints. Start-up, which wires the
//! capabilities together, is [`crate::startup`]; nothing here imports a capability.

pub mod answers;
pub mod body;
pub mod error;
pub mod ops;
pub mod pagination;

use std::sync::Arc;

use deadpool_postgres::Pool;

use crate::config::Config;
use crate::telemetry::Metrics;

/// Everything a request handler may need, shared by all workers.
pub struct AppState {
    pub pool: Pool,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub openapi_json: String,
    /// The banks' live signing keys (`banks::keys`).
    pub bank_keys: Arc<crate::banks::keys::BankKeys>,
    /// Checklist steps this process just recorded (`checklist::Recent`).
    pub checklist: Arc<crate::checklist::Recent>,
}

/// The state as a handler receives it.
pub type State = actix_web::web::Data<AppState>;

/// A handler's query string, read parameter by parameter so that every invalid one is named.
pub type QueryMap = actix_web::web::Query<std::collections::HashMap<String, String>>;

/// What a handler answers: a response, or an error that becomes a problem answer.
pub type Answer = Result<actix_web::HttpResponse, error::ApiError>;
