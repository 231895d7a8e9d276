//! Refunds: money going back to a payer, in full or in part, through the bank that collected it.
//!
//! Two kinds: `payment` (an agency returns money for a paid order) and `suspense` (a case's
//! money in suspense goes back, requested by resolving the case). Every refund waits in
//! `pending_approval` until a different key approves it (maker-checker); an approved refund is an
//! instruction to the bank, delivered to its `refund_url`; the bank's signed result completes or
//! fails it, and only a completed refund is posted to the ledger.

pub mod delivery;
pub mod error;
pub mod http;
pub mod model;
pub mod store;

pub use http::configure;

use deadpool_postgres::Transaction;
use rust_decimal::Decimal;

use crate::audit::Actor;
use crate::db::DbError;
use crate::domain::ids::random_id;

/// Random bytes in a refund id, as in every id paygate makes.
const ID_BYTES: usize = 12;

/// A new refund id, `rfd_<hex>`.
pub fn new_refund_id() -> String {
    random_id("rfd", ID_BYTES)
}

/// Requests a `suspense` refund of a case's money, in the caller's transaction (the resolution
/// of the case as `refund`). The refund waits in `pending_approval` for another admin key.
///
/// It records nothing in the audit log: the caller's own entry (`case.resolve`) is the last
/// statement of its transaction. The database refuses a second live refund of the same case
/// (`refunds_one_live_per_case`).
#[allow(clippy::too_many_arguments)]
pub async fn request_suspense(
    tx: &Transaction<'_>,
    case_id: &str,
    payment_id: &str,
    agency: &str,
    bank: &str,
    bank_txn_id: &str,
    amount: Decimal,
    reason: &str,
    actor: &Actor,
) -> Result<String, DbError> {
    let id = new_refund_id();
    let requested_by = serde_json::to_value(actor).expect("an actor serialises");
    tx.execute(
        "INSERT INTO refunds (id, kind, payment_id, case_id, agency_code, bank_code, bank_txn_id,
                              amount, reason, requested_by)
         VALUES ($1, 'suspense', $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &id,
            &payment_id,
            &case_id,
            &agency,
            &bank,
            &bank_txn_id,
            &amount,
            &reason,
            &requested_by,
        ],
    )
    .await?;
    Ok(id)
}
