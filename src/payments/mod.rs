//! Payment orders (see "Payment orders" in `docs/api-guide.md`): create with idempotency, read,
//! list, cancel, expire.

pub mod domain;
pub mod error;
pub mod group_commit;
pub mod http;
pub mod idempotency;
pub mod model;
pub mod store;

pub use error::PaymentError;
pub use http::configure;
