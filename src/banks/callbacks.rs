//! Payment callbacks (see "Banks: inquiry and callbacks" in `docs/api-guide.md`): each is
//! posted exactly once, by construction.
//!
//! One database transaction records the callback, changes the order, writes the ledger
//! transaction and the `payment.paid` event, opens the case of an exception and resolves the
//! inquiries about an order it pays (`crate::cases::opening`), or does none of it. The order row is locked
//! (`FOR UPDATE`) while its payment is decided, so concurrent callbacks for one order are decided
//! one after another; `(bank, bank_txn_id)` is unique and an order has at most one paying
//! callback (both constraints), so a race that slips past the checks fails at commit and is
//! decided again. An order that expired but was paid in time takes its reference back through
//! the unique index on active references, never through a read that a concurrent create could
//! slip past: if another order holds the reference, the money goes to suspense (`order_closed`).
//!
//! The decision follows the callback table's rows in order: a redelivery or conflict, an unknown
//! order, then (for a bank's own callback) a `paid_at` more than 5 minutes before the order's
//! creation, which is a 422 that reserves nothing, then `failed`, the amount, the order's state.

use deadpool_postgres::{GenericClient, Pool};
use time::{Duration, OffsetDateTime};

// Whoever applies a callback (reconciliation too) finds its input types here, beside `process`.
pub use super::model::{Callback, CallbackStatus, Source};
use super::store::{self, Recording};
use crate::cases::{self, opening::ExceptionCase};
use crate::checklist::{self, BankStep};
use crate::db::DbError;
use crate::domain::{AgencyCode, BankCode, BankTxnId, PaymentId};
use crate::ledger::exceptions::{self, NewException, Reason};
use crate::ledger::{self, Book, Kind, Posting};
use crate::notifications::outbox::EventType;
use crate::payments::model::{Payment, PaymentStatus};
use crate::payments::store::record_event;

/// A bank's `paid_at` may run ahead of our clock by this much, no more.
pub const MAX_PAID_AT_AHEAD: Duration = Duration::minutes(5);
/// A bank's `paid_at` may lie before the order's creation by this much (clocks differ), no
/// more: nobody can pay an order long before it existed.
pub const MAX_PAID_AT_BEFORE_CREATION: Duration = Duration::minutes(5);

/// What a callback did (the 200 answers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackOutcome {
    /// Recorded: the order is paid, or (for a `failed` callback) unchanged.
    Accepted {
        payment_id: PaymentId,
        payment_status: PaymentStatus,
    },
    /// A redelivery of a callback recorded before: nothing changed.
    Duplicate {
        payment_id: PaymentId,
        payment_status: PaymentStatus,
    },
    /// The money went to suspense, to be refunded.
    Exception {
        reason: Reason,
        payment_id: PaymentId,
        payment_status: PaymentStatus,
    },
}

impl CallbackOutcome {
    /// The `result` label of the callbacks metric; an accepted `failed` callback counts as
    /// `failed`.
    pub fn metric_label(&self, status: CallbackStatus) -> &'static str {
        match (self, status) {
            (CallbackOutcome::Accepted { .. }, CallbackStatus::Failed { .. }) => "failed",
            (CallbackOutcome::Accepted { .. }, CallbackStatus::Succeeded { .. }) => "accepted",
            (CallbackOutcome::Duplicate { .. }, _) => "duplicate",
            (CallbackOutcome::Exception { .. }, _) => "exception",
        }
    }

    /// The step of the bank's checklist that this outcome shows.
    pub fn checklist_step(&self, status: CallbackStatus) -> BankStep {
        match (self, status) {
            (CallbackOutcome::Accepted { .. }, CallbackStatus::Failed { .. }) => {
                BankStep::CallbackFailedStatus
            }
            (CallbackOutcome::Duplicate { .. }, _) => BankStep::RedeliveryDuplicate,
            (CallbackOutcome::Accepted { .. } | CallbackOutcome::Exception { .. }, _) => {
                BankStep::CallbackAccepted
            }
        }
    }
}

/// A callback that was refused; nothing of it was posted (an unknown order and a wrong amount
/// are kept for investigation all the same).
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("no payment {0}")]
    PaymentNotFound(PaymentId),
    #[error("the amount or currency differs from the order's")]
    AmountMismatch,
    /// The `bank_txn_id` was recorded before with other content.
    #[error("bank_txn_id {0} was already received with different content")]
    Conflict(BankTxnId),
    /// A concurrent callback with the same `bank_txn_id` kept winning the race.
    #[error("a concurrent callback with this bank_txn_id is being applied; retry")]
    InFlight,
    /// A bank's `paid_at` long before the order existed: a bad body.
    #[error(
        "must not be more than 5 minutes before the order was created ({})",
        crate::timefmt::format_utc(*.created_at)
    )]
    PaidAtTooEarly { created_at: OffsetDateTime },
    /// The callback's group-commit lane is gone (see `super::group_commit`): nothing of the
    /// callback was decided.
    #[error("the callback could not be queued for its transaction")]
    LaneStopped,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl CallbackError {
    /// The metrics label of a refused callback.
    pub fn metric_label(&self) -> &'static str {
        match self {
            CallbackError::Conflict(_) => "conflict",
            CallbackError::PaymentNotFound(_) => "not_found",
            CallbackError::AmountMismatch => "amount_mismatch",
            CallbackError::InFlight
            | CallbackError::PaidAtTooEarly { .. }
            | CallbackError::LaneStopped
            | CallbackError::Db(_) => "error",
        }
    }

    /// Whether the same callback, applied again later, would likely succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            CallbackError::Db(err) => err.is_transient(),
            CallbackError::LaneStopped => true,
            _ => false,
        }
    }
}

crate::from_db_errors!(CallbackError);

type Decision = Result<CallbackOutcome, CallbackError>;

enum Attempt {
    Done(Decision),
    /// A concurrent transaction took the same `bank_txn_id` (or paid the order) first.
    Raced,
}

/// Decides and applies a callback, exactly once, in a transaction of its own.
pub async fn process(
    pool: &Pool,
    bank: &BankCode,
    callback: &Callback,
    source: Source,
) -> Decision {
    let mut client = pool.get().await?;
    process_on(&mut client, bank, callback, source).await
}

/// Decides and applies a callback on `client`: in a transaction when it is a plain connection,
/// in a savepoint when it is already in a transaction (reconciliation applies lost callbacks
/// inside its run, so that a run that fails leaves nothing behind).
pub async fn process_on(
    client: &mut impl GenericClient,
    bank: &BankCode,
    callback: &Callback,
    source: Source,
) -> Decision {
    // A lost race leaves the winner's rows committed, so the second decision sees them and
    // answers duplicate, conflict or exception: two attempts always suffice.
    for _ in 0..2 {
        let transaction = client.transaction().await?;
        match attempt(&transaction, bank, callback, source).await? {
            Attempt::Done(decision) => {
                // A bank's own callback (not a statement line) is a step of its checklist.
                if let (Source::Callback, Ok(outcome)) = (source, &decision) {
                    let step = outcome.checklist_step(callback.status);
                    checklist::mark_banks(&transaction, &[(bank.as_str(), step)]).await?;
                }
                transaction.commit().await?;
                return decision;
            }
            Attempt::Raced => continue,
        }
    }
    Err(CallbackError::InFlight)
}

async fn attempt(
    client: &impl GenericClient,
    bank: &BankCode,
    callback: &Callback,
    source: Source,
) -> Result<Attempt, DbError> {
    // Both reads go out together (tokio-postgres pipelines them on the connection): one
    // round trip. A redelivery is answered first whatever the lock found.
    let (recorded, order) = futures_util::future::try_join(
        store::recorded(client, bank, callback, source),
        store::lock_order(client, bank, &callback.payment_id),
    )
    .await?;
    if let Some(recorded) = recorded {
        return Ok(Attempt::Done(if recorded.same {
            Ok(CallbackOutcome::Duplicate {
                payment_id: recorded.payment_id,
                payment_status: recorded.payment_status,
            })
        } else {
            Err(CallbackError::Conflict(callback.bank_txn_id.clone()))
        }));
    }
    let Some(order) = order else {
        keep(
            client,
            exception(bank, callback, Reason::PaymentNotFound, None, None),
            None,
        )
        .await?;
        return Ok(Attempt::Done(Err(CallbackError::PaymentNotFound(
            callback.payment_id.clone(),
        ))));
    };
    // Checked once the order is known, right after the unknown-order row and before every
    // other: a `paid_at` long before the order existed is a bad body, so the callback is
    // answered 422 and reserves nothing (a redelivery gets the same answer; a corrected
    // callback with the same `bank_txn_id` is decided afresh). Statement lines are the bank's
    // own record of money it holds; reconciliation decides about them.
    if source == Source::Callback {
        if let Some(paid_at) = callback.paid_at() {
            if paid_at < order.created_at - MAX_PAID_AT_BEFORE_CREATION {
                return Ok(Attempt::Done(Err(CallbackError::PaidAtTooEarly {
                    created_at: order.created_at,
                })));
            }
        }
    }
    let paid_at = match callback.status {
        CallbackStatus::Failed { .. } => {
            return match store::insert_callback(client, bank, callback, Recording::Failed, source)
                .await?
            {
                None => Ok(Attempt::Raced),
                Some(_) => Ok(Attempt::Done(Ok(CallbackOutcome::Accepted {
                    payment_id: order.id,
                    payment_status: order.status,
                }))),
            };
        }
        CallbackStatus::Succeeded { paid_at } => paid_at,
    };
    if callback.amount != order.amount || callback.currency != order.currency {
        let detail = format!(
            "the order is {} {}; the callback says {} {}",
            order.amount, order.currency, callback.amount, callback.currency
        );
        keep(
            client,
            exception(bank, callback, Reason::AmountMismatch, None, Some(detail)),
            Some(&order.agency),
        )
        .await?;
        return Ok(Attempt::Done(Err(CallbackError::AmountMismatch)));
    }
    // An order that expired but was paid in time is paid only if its reference is still free;
    // `pay` finds that out by claiming it (see `store::claim_reference`).
    let decision = match order.status {
        PaymentStatus::Pending => None,
        PaymentStatus::Expired if paid_at <= order.expires_at => None,
        PaymentStatus::Expired | PaymentStatus::Cancelled => Some(Reason::OrderClosed),
        PaymentStatus::Paid => Some(Reason::DoublePayment),
    };
    match decision {
        None => pay(client, bank, callback, source, &order, paid_at).await,
        Some(reason) => suspend(client, bank, callback, source, &order, reason).await,
    }
}

async fn pay(
    client: &impl GenericClient,
    bank: &BankCode,
    callback: &Callback,
    source: Source,
    order: &Payment,
    paid_at: OffsetDateTime,
) -> Result<Attempt, DbError> {
    // A pending order holds its reference alone, so only an expired one needs to claim it back
    // before the callback is recorded; if it cannot, the money goes to suspense. (Should the
    // callback then lose a race for its `bank_txn_id`, the whole attempt rolls back, the
    // claim included.)
    let expired = order.status == PaymentStatus::Expired;
    if expired && !store::claim_reference(client, bank, callback, order, paid_at).await? {
        return suspend(client, bank, callback, source, order, Reason::OrderClosed).await;
    }
    let Some(callback_id) =
        store::insert_callback(client, bank, callback, Recording::Paid, source).await?
    else {
        return Ok(Attempt::Raced);
    };
    let paid = Payment {
        status: PaymentStatus::Paid,
        paid_at: Some(paid_at),
        bank: Some(bank.clone()),
        bank_txn_id: Some(callback.bank_txn_id.clone()),
        ..order.clone()
    };
    let book = Book::of(order.sandbox);
    let posting = Posting::transfer(
        book,
        Kind::Payment,
        callback_id,
        &order.id,
        bank,
        book.agency(&order.agency, &order.obligation),
        order.amount,
    );
    let mark_pending_paid = async {
        if expired {
            Ok(0)
        } else {
            store::mark_paid(client, bank, callback, order, paid_at).await
        }
    };
    // The order, the ledger, the event and the inquiries about the order (which resolve
    // themselves now that it is paid) are independent writes: they go out together, in one
    // round trip, and stand or fall with the transaction.
    futures_util::future::try_join4(
        mark_pending_paid,
        ledger::post(client, &posting),
        record_event(client, &paid, EventType::Paid),
        cases::opening::resolve_paid_inquiries(client, &order.id),
    )
    .await?;
    tracing::info!(payment_id = %order.id, bank = %bank, source = source.as_str(), "payment accepted");
    Ok(Attempt::Done(Ok(CallbackOutcome::Accepted {
        payment_id: paid.id,
        payment_status: paid.status,
    })))
}

async fn suspend(
    client: &impl GenericClient,
    bank: &BankCode,
    callback: &Callback,
    source: Source,
    order: &Payment,
    reason: Reason,
) -> Result<Attempt, DbError> {
    let Some(callback_id) =
        store::insert_callback(client, bank, callback, Recording::Exception(reason), source)
            .await?
    else {
        return Ok(Attempt::Raced);
    };
    let book = Book::of(order.sandbox);
    let posting = Posting::transfer(
        book,
        Kind::Suspense,
        callback_id,
        &order.id,
        bank,
        book.suspense(bank),
        callback.amount,
    );
    ledger::post(client, &posting).await?;
    let detail = format!("the order is {}; refund due", order.status.as_str());
    keep(
        client,
        exception(bank, callback, reason, Some(callback_id), Some(detail)),
        Some(&order.agency),
    )
    .await?;
    tracing::warn!(payment_id = %order.id, bank = %bank, reason = reason.as_str(), "payment taken into suspense");
    Ok(Attempt::Done(Ok(CallbackOutcome::Exception {
        reason,
        payment_id: order.id.clone(),
        payment_status: order.status.clone(),
    })))
}

/// The record for investigation of a callback: money taken into suspense (with the callback
/// that holds it) or a rejected callback (without).
fn exception<'a>(
    bank: &'a BankCode,
    callback: &'a Callback,
    reason: Reason,
    callback_id: Option<i64>,
    detail: Option<String>,
) -> NewException<'a> {
    NewException {
        bank,
        bank_txn_id: &callback.bank_txn_id,
        payment_id: &callback.payment_id,
        amount: callback.amount,
        currency: &callback.currency,
        paid_at: callback.paid_at(),
        reason,
        callback_id,
        detail,
    }
}

/// Records the exception and opens its case (one per bank transaction and reason: a
/// redelivery opens nothing new), both in the callback's transaction. `agency` is the order's,
/// when the order exists.
async fn keep(
    client: &impl GenericClient,
    exception: NewException<'_>,
    agency: Option<&AgencyCode>,
) -> Result<(), DbError> {
    exceptions::record(client, &exception).await?;
    let case = ExceptionCase {
        reason: exception.reason,
        bank: exception.bank,
        bank_txn_id: exception.bank_txn_id,
        payment_id: exception.payment_id,
        agency,
        amount: exception.amount,
    };
    cases::opening::open_for_exception(client, &case).await?;
    Ok(())
}
