//! What can go wrong with a refund, as the domain sees it; `refunds/http.rs` alone turns it
//! into an HTTP answer.

use crate::db::DbError;
use crate::payments::error::PaymentError;

use super::model::RefundStatus;

#[derive(Debug, thiserror::Error)]
pub enum RefundError {
    /// No such refund, one the caller may not see, or (for a bank) one of another bank or not
    /// yet approved.
    #[error("no refund {0}")]
    NotFound(String),
    /// No such order, or one of another agency.
    #[error("no payment {0}")]
    PaymentNotFound(String),
    /// Only a paid order can be refunded.
    #[error("the order is {0} and cannot be refunded; only a paid order can")]
    PaymentNotRefundable(&'static str),
    /// The refunds that stand would give back more than the order's amount.
    #[error("the refunds of this order would exceed its amount")]
    ExceedsPayment,
    /// The caller's key is the one that asked for the refund.
    #[error("a refund is approved or rejected by a different key than the one that asked for it")]
    SameApprover,
    /// The caller's role may not approve this kind of refund.
    #[error("a suspense refund is approved or rejected by an admin key")]
    Forbidden,
    /// The refund is no longer waiting for approval.
    #[error("the refund is {} and no longer waits for approval", .0.as_str())]
    NotPending(RefundStatus),
    /// The bank already reported another result for this refund.
    #[error("the refund already has the result {}; a different result is refused", .0.as_str())]
    ResultConflict(RefundStatus),
    /// An `Idempotency-Key` problem, answered as for orders.
    #[error(transparent)]
    Key(#[from] PaymentError),
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::from_db_errors!(RefundError);
