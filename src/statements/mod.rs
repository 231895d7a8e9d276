//! Agency statements: for one agency and one business day (Vietnam time, UTC+07:00), every
//! order paid and every refund of an order completed that day, with their totals (see
//! `docs/api-guide.md`, "Agency statements").
//!
//! An agency compares its statement with its own records; its figures are exactly the movements
//! of the agency's ledger accounts (`agency:<AGENCY>:<obligation>`, or the sandbox's
//! `sandbox:agency:<AGENCY>:<obligation>` for a sandbox agency) that day: an order paid
//! credits them, a completed refund of an order debits them. Refunds of money in suspense were
//! never the agency's money and are not listed.
//!
//! `model` holds the statement and its items, `store` reads them (the whole day at once, or in
//! batches from one cursor for the CSV file), and `http` answers the endpoints.

pub mod error;
pub mod http;
pub mod model;
pub mod store;

pub use error::StatementError;
pub use http::configure;
