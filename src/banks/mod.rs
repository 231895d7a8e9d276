//! Banks' signed requests: inquiry and payment callbacks (see `docs/api-guide.md`).
//!
//! `verify` checks a request's signature with the live keys `keys` keeps in memory, `http` answers it, `model` holds the callback as the
//! domain sees it, `callbacks` decides what it does and `store` holds the SQL that records it;
//! `group_commit` runs callbacks that arrive together in one transaction.

pub mod callbacks;
pub mod group_commit;
pub mod http;
pub mod keys;
pub mod model;
pub mod store;
pub mod verify;

pub use http::configure;
