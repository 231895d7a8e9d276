//! Investigation cases ("tra soát"): something a person must look at. paygate opens one by
//! itself for every exception and reconciliation difference, agencies and operators open
//! inquiries, and an admin resolves each one by a refund, an apply or no action (see "Cases" in
//! `docs/api-guide.md`).
//!
//! `opening` holds what paygate does by itself, inside the transactions of callbacks and
//! reconciliation runs; `store` the SQL of the endpoints, which `http` answers; `model` the case
//! object and why a request fails. Every manual money movement needs a second admin: an `apply`
//! waits in `pending_approval` here, a `refund` is a suspense refund of [`crate::refunds`] whose
//! end comes back through [`refund_finished`].

pub mod http;
pub mod model;
pub mod opening;
pub mod store;

pub use http::configure;
pub use model::{Case, CaseError, CaseKind, CaseStatus};

use deadpool_postgres::Transaction;

use crate::db::DbError;

/// How a case's suspense refund ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundEnd {
    /// The bank returned the money: the case is resolved.
    Completed,
    /// The bank could not return the money: the case is open again.
    Failed,
    /// The second admin refused the refund: the case is open again.
    Rejected,
}

/// Moves a case whose suspense refund has ended out of `resolving`, in the caller's transaction
/// (the one that records the refund's end), so that the case and the refund never disagree.
pub async fn refund_finished(
    tx: &Transaction<'_>,
    case_id: &str,
    outcome: RefundEnd,
) -> Result<(), DbError> {
    match outcome {
        RefundEnd::Completed => {
            // The resolution's time becomes the time the money went back (what the daily
            // report counts), and its approver the refund's second admin.
            tx.execute(
                "UPDATE cases c SET status = 'resolved', resolved_at = now(), \
                 approved_by = r.approved_by \
                 FROM refunds r WHERE c.id = $1 AND c.status = 'resolving' AND r.id = c.refund_id",
                &[&case_id],
            )
            .await?;
        }
        RefundEnd::Failed | RefundEnd::Rejected => {
            let Some(row) = tx
                .query_opt(
                    "SELECT refund_id FROM cases WHERE id = $1 AND status = 'resolving' \
                     FOR UPDATE",
                    &[&case_id],
                )
                .await?
            else {
                return Ok(());
            };
            let refund_id: String = row.get(0);
            // The case goes back to the state it had before the resolution was chosen, so that
            // an admin may choose again (another refund, or an apply); a note by paygate keeps
            // what happened on the case itself.
            tx.execute(
                "UPDATE cases SET status = 'open', resolution = NULL, refund_id = NULL, \
                 resolved_at = NULL, resolved_by = NULL, resolution_note = NULL \
                 WHERE id = $1",
                &[&case_id],
            )
            .await?;
            let ended = match outcome {
                RefundEnd::Failed => "failed at the bank",
                _ => "was rejected",
            };
            let message = format!("refund {refund_id} {ended}; the case is open again");
            tx.execute(
                "INSERT INTO case_notes (case_id, by, message) VALUES ($1, $2, $3)",
                &[
                    &case_id,
                    &model::actor_json(&crate::audit::Actor::system()),
                    &message,
                ],
            )
            .await?;
        }
    }
    Ok(())
}
