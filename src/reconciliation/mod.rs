//! Reconciliation and reports (roles `auditor` and `admin`; see `docs/api-guide.md`).
//!
//! `statement` reads a bank's statement file, `engine` runs it against paygate's records and
//! records the run, `store` reads recorded runs, items and the daily report, `items` writes a
//! run's items as files, and `http` answers the endpoints. `model` holds what they share and
//! `error` why they fail.

pub mod engine;
pub mod error;
pub mod http;
pub mod items;
pub mod model;
pub mod statement;
pub mod store;

pub use error::ReconcileError;
pub use http::configure;
pub use model::Outcome;
