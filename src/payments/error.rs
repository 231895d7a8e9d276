//! What can go wrong with a payment order, as the domain sees it; `payments/http.rs` alone turns
//! it into an HTTP answer.

use crate::db::DbError;
use crate::domain::{FieldError, ObligationCode, PaymentId};

use super::model::PaymentStatus;

#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// No such order, or one of another agency (which is exactly as absent).
    #[error("no payment {0}")]
    NotFound(PaymentId),
    /// Another pending or paid order of the agency holds the reference.
    #[error("another pending or paid order of this agency has reference {0}")]
    DuplicateReference(String),
    /// Only a pending (or already cancelled) order can be cancelled.
    #[error("the order is {} and can no longer be cancelled", .0.as_str())]
    NotCancellable(PaymentStatus),
    /// A request with the same `Idempotency-Key` holds the key's row past the lock timeout.
    #[error("a request with this Idempotency-Key is still in flight; retry")]
    KeyInFlight,
    /// The key's row vanished between the claim and the read (the purge took it).
    #[error("the key was just released; retry")]
    KeyJustReleased,
    /// The key was used before with another body.
    #[error("this Idempotency-Key was used with a different body")]
    KeyReused,
    /// `expires_at` is not ahead of the database's clock, which decides the creation time.
    #[error("must lie in the future")]
    ExpiryNotAhead,
    /// No entry of the obligation catalog has the order's code.
    #[error("{0} is not an obligation of the catalog")]
    UnknownObligation(ObligationCode),
    /// The order's obligation is inactive and refuses new orders.
    #[error("obligation {0} is inactive and takes no new orders")]
    ObligationInactive(ObligationCode),
    /// The agency's allowed obligations do not include the order's.
    #[error("this agency may not take orders of obligation {0}")]
    ObligationNotAllowed(ObligationCode),
    /// The details break the obligation's schema; each failure on `details.<path>`.
    #[error("the details are invalid")]
    InvalidDetails(Vec<FieldError>),
    /// The order lanes of this process are gone (it is stopping).
    #[error("this replica is stopping; retry")]
    LaneStopped,
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::from_db_errors!(PaymentError);
