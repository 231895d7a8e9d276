//! Notifications to agencies (see `docs/api-guide.md`). Events are written to an outbox in the same
//! transaction as the change they report; a worker in `serve` delivers them, signed, at least
//! once, with retries on the configured schedule.

pub mod delivery;
pub mod http;
pub mod outbox;
pub mod outgoing;
mod resolver;
pub mod store;

pub use http::configure;
