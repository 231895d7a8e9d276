//! The sandbox: where agencies and banks rehearse their integration without live money.
//!
//! A sandbox agency's orders are paid only by sandbox banks, and its money is kept in the
//! ledger's `sandbox:` accounts (see [`crate::ledger::Book`]); everything else (validation,
//! idempotency, signatures, notifications, cases, refunds) is the live code itself.
//!
//! The built-in sandbox bank `SANDBOX` lets an agency see every answer a bank's callback can
//! cause without a bank: `POST /v1/sandbox/payments/{id}/pay` plays a scenario, and
//! `POST /v1/sandbox/refunds/{id}/result` reports a refund's end. Each builds the request a
//! bank would send, signs it with the sandbox bank's key (held only in the process's memory,
//! see [`crate::banks::keys`]), verifies that signature and hands the body to the very code
//! that answers a bank's signed request.

pub mod http;
pub mod scenario;

pub use http::configure;
