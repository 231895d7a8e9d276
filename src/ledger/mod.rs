//! The double-entry ledger: append-only, every transaction balanced.
//!
//! Accounts: `bank:<BANK>` (money the bank holds for us), `agency:<AGENCY>:<obligation>` (money
//! owed to the agency's beneficiary), `suspense:<BANK>` (money to refund or investigate).
//!
//! `posting` builds ledger transactions and checks their balance, `store` writes and reads them,
//! `exceptions` records the callbacks kept for investigation, `seals` seals committed
//! transactions into a signed hash chain (with the key of `signing`) and verifies it, and `http`
//! answers auditors.

pub mod exceptions;
pub mod http;
pub mod posting;
pub mod seals;
pub mod signing;
pub mod store;

pub use http::configure;
pub use posting::{Book, Entry, Kind, Posting, Side, Source};
pub use store::{post, post_callbacks};
