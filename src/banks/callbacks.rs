//! Payment callbacks (see "Banks: inquiry and callbacks" in `docs/api-guide.md`): each is
//! posted exactly once, by construction.
//!
//! One database transaction records the callback, changes the order, writes the ledger
//! transaction and the `payment.paid` event, or does none of it. The order row is locked
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
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;

use crate::codes::BankCode;
use crate::http::body::{parsed, text, Validator};
use crate::http::error::{violated_constraint, ApiError};
use crate::ledger::exceptions::{self, NewException, Reason};
use crate::ledger::{self, Kind, Posting};
use crate::notifications::outbox::{self, EventType};
use crate::payments::domain::{amount_field, Amount};
use crate::payments::model::{Payment, PaymentStatus, PAYMENT_COLUMNS};
use crate::payments::store::{expire_overdue_holder, payment_not_found};

/// A bank's `paid_at` may run ahead of our clock by this much, no more.
pub const MAX_PAID_AT_AHEAD: Duration = Duration::minutes(5);
/// A bank's `paid_at` may lie before the order's creation by this much (clocks differ), no
/// more: nobody can pay an order long before it existed.
pub const MAX_PAID_AT_BEFORE_CREATION: Duration = Duration::minutes(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackStatus {
    Succeeded,
    Failed,
}

impl CallbackStatus {
    fn as_str(self) -> &'static str {
        match self {
            CallbackStatus::Succeeded => "succeeded",
            CallbackStatus::Failed => "failed",
        }
    }
}

/// Where a callback came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Sent by the bank.
    Callback,
    /// Applied from a statement line by reconciliation (a lost callback).
    Reconciliation,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Callback => "callback",
            Source::Reconciliation => "reconciliation",
        }
    }
}

/// A callback body that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Callback {
    pub bank_txn_id: String,
    pub payment_id: String,
    pub amount: Amount,
    /// `VND` when not given.
    pub currency: String,
    pub status: CallbackStatus,
    pub paid_at: Option<OffsetDateTime>,
    pub failure_reason: Option<String>,
}

impl Callback {
    /// Validates a callback body; a 422 names every invalid field.
    pub fn parse(body: &Map<String, Value>, now: OffsetDateTime) -> Result<Callback, ApiError> {
        let mut v = Validator::new();
        let bank_txn_id = v.required(body, "bank_txn_id", text(1, 64));
        let payment_id = v.required(body, "payment_id", text(1, 64));
        let amount = v.required(body, "amount", amount_field);
        let currency = v.optional(body, "currency", text(1, 16));
        let status = v.required(
            body,
            "status",
            parsed(|s| match s {
                "succeeded" => Ok(CallbackStatus::Succeeded),
                "failed" => Ok(CallbackStatus::Failed),
                _ => Err("must be succeeded or failed".to_owned()),
            }),
        );
        let paid_at = v.optional(
            body,
            "paid_at",
            parsed(|t| {
                let at = crate::timefmt::parse_rfc3339(t)?;
                if at > now + MAX_PAID_AT_AHEAD {
                    Err("must not be more than 5 minutes in the future".to_owned())
                } else {
                    Ok(at)
                }
            }),
        );
        if status == Some(CallbackStatus::Succeeded) && paid_at == Some(None) {
            v.error("paid_at", "is required when status is succeeded");
        }
        let failure_reason = v.optional(body, "failure_reason", text(1, 255));
        v.finish()?;
        let missing = || ApiError::internal(anyhow::anyhow!("validated fields are present"));
        Ok(Callback {
            bank_txn_id: bank_txn_id.ok_or_else(missing)?,
            payment_id: payment_id.ok_or_else(missing)?,
            amount: amount.ok_or_else(missing)?,
            currency: currency
                .ok_or_else(missing)?
                .unwrap_or_else(|| "VND".to_owned()),
            status: status.ok_or_else(missing)?,
            paid_at: paid_at.ok_or_else(missing)?,
            failure_reason: failure_reason.ok_or_else(missing)?,
        })
    }
}

/// The answer to a callback (200).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(example = json!({"result": "accepted", "payment_id": "pay_3b1f0c9a7d2e4f6a8b0c1d2e", "payment_status": "paid"}))]
pub struct CallbackAnswer {
    /// accepted, duplicate or exception.
    pub result: &'static str,
    /// For `exception`: double_payment or order_closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exception: Option<&'static str>,
    pub payment_id: String,
    pub payment_status: PaymentStatus,
}

impl CallbackAnswer {
    /// The metrics label of this answer.
    pub fn metric(&self, status: CallbackStatus) -> &'static str {
        match (self.result, status) {
            ("accepted", CallbackStatus::Failed) => "failed",
            (result, _) => result,
        }
    }
}

enum Attempt {
    Done(Result<CallbackAnswer, ApiError>),
    /// A concurrent transaction took the same `bank_txn_id` (or paid the order) first.
    Raced,
}

/// Decides and applies a callback, exactly once, in a transaction of its own.
pub async fn process(
    pool: &Pool,
    bank: &BankCode,
    callback: &Callback,
    source: Source,
) -> Result<CallbackAnswer, ApiError> {
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
) -> Result<CallbackAnswer, ApiError> {
    // A lost race leaves the winner's rows committed, so the second decision sees them and
    // answers duplicate, conflict or exception: two attempts always suffice.
    for _ in 0..2 {
        let transaction = client.transaction().await?;
        match attempt(&transaction, bank, callback, source).await? {
            Attempt::Done(answer) => {
                transaction.commit().await.map_err(ApiError::from)?;
                return answer;
            }
            Attempt::Raced => continue,
        }
    }
    Err(ApiError::conflict(
        "callback_in_flight",
        "a concurrent callback with this bank_txn_id is being applied; retry",
    ))
}

async fn attempt(
    client: &impl GenericClient,
    bank: &BankCode,
    callback: &Callback,
    source: Source,
) -> Result<Attempt, ApiError> {
    // Both reads go out together (tokio-postgres pipelines them on the connection): one
    // round trip. A redelivery is answered first whatever the lock found.
    let lock_order = async {
        let statement = client
            .prepare_cached(&format!(
                "SELECT {PAYMENT_COLUMNS} FROM payments p WHERE p.id = $1 FOR UPDATE"
            ))
            .await?;
        client
            .query_opt(&statement, &[&callback.payment_id])
            .await
            .map_err(ApiError::from)
    };
    let (redelivered, row) =
        futures_util::future::try_join(redelivery(client, bank, callback, source), lock_order)
            .await?;
    if let Some(answer) = redelivered {
        return Ok(Attempt::Done(answer));
    }
    let Some(row) = row else {
        keep_rejected(client, bank, callback, Reason::PaymentNotFound, None).await?;
        return Ok(Attempt::Done(Err(payment_not_found(&callback.payment_id))));
    };
    let order = Payment::from_row(&row);
    // Checked once the order is known, right after the unknown-order row and before every
    // other: a `paid_at` long before the order existed is a bad body, so the callback is
    // answered 422 and reserves nothing (a redelivery gets the same answer; a corrected
    // callback with the same `bank_txn_id` is decided afresh). Statement lines are the bank's
    // own record of money it holds; reconciliation decides about them.
    if source == Source::Callback {
        if let Some(paid_at) = callback.paid_at {
            if paid_at < order.created_at - MAX_PAID_AT_BEFORE_CREATION {
                return Ok(Attempt::Done(Err(ApiError::invalid(
                    "paid_at",
                    format!(
                        "must not be more than 5 minutes before the order was created ({})",
                        crate::timefmt::format_utc(order.created_at)
                    ),
                ))));
            }
        }
    }
    if callback.status == CallbackStatus::Failed {
        return match insert_callback(client, bank, callback, "failed", None, source).await? {
            None => Ok(Attempt::Raced),
            Some(_) => Ok(Attempt::Done(Ok(answer("accepted", None, &order)))),
        };
    }
    if callback.amount != order.amount || callback.currency != order.currency {
        let detail = format!(
            "the order is {} {}; the callback says {} {}",
            order.amount, order.currency, callback.amount, callback.currency
        );
        keep_rejected(client, bank, callback, Reason::AmountMismatch, Some(detail)).await?;
        return Ok(Attempt::Done(Err(ApiError::Unprocessable {
            code: "amount_mismatch",
            detail: "the amount or currency differs from the order's".to_owned(),
        })));
    }
    let paid_at = callback
        .paid_at
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a succeeded callback has paid_at")))?;
    // An order that expired but was paid in time is paid only if its reference is still free;
    // `pay` finds that out by claiming it (see `claim_reference`).
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

/// The answer to a `bank_txn_id` seen before: a duplicate when the content is the same, a
/// conflict otherwise. A line applied by reconciliation has no body of its own: only its
/// payment and amount are compared.
async fn redelivery(
    client: &impl GenericClient,
    bank: &BankCode,
    callback: &Callback,
    source: Source,
) -> Result<Option<Result<CallbackAnswer, ApiError>>, ApiError> {
    let statement = client
        .prepare_cached(
            "SELECT c.payment_id, c.amount, c.currency, c.status, c.paid_at, c.failure_reason,
                    c.source,
                    CASE WHEN p.status = 'pending' AND p.expires_at <= now() THEN 'expired'
                         ELSE p.status END
             FROM bank_callbacks c JOIN payments p ON p.id = c.payment_id
             WHERE c.bank_code = $1 AND c.bank_txn_id = $2",
        )
        .await?;
    let Some(row) = client
        .query_opt(&statement, &[&bank.as_str(), &callback.bank_txn_id])
        .await?
    else {
        return Ok(None);
    };
    let payment_id: String = row.get(0);
    let amount: Decimal = row.get(1);
    let stored_source: &str = row.get(6);
    let same_money =
        payment_id == callback.payment_id && Amount::from_decimal(amount) == Some(callback.amount);
    let same =
        if stored_source == Source::Reconciliation.as_str() || source == Source::Reconciliation {
            same_money
        } else {
            same_money
                && row.get::<_, &str>(2) == callback.currency
                && row.get::<_, &str>(3) == callback.status.as_str()
                && row.get::<_, Option<OffsetDateTime>>(4) == callback.paid_at
                && row.get::<_, Option<String>>(5) == callback.failure_reason
        };
    if !same {
        return Ok(Some(Err(ApiError::conflict(
            "bank_txn_conflict",
            format!(
                "bank_txn_id {} was already received with different content",
                callback.bank_txn_id
            ),
        ))));
    }
    let status: &str = row.get(7);
    Ok(Some(Ok(CallbackAnswer {
        result: "duplicate",
        exception: None,
        payment_id,
        payment_status: PaymentStatus::parse(status)
            .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?,
    })))
}

/// Marks the order paid. For an order that expired, this is what claims its reference back:
/// the unique index on active references refuses it when another order holds the reference.
async fn mark_paid(
    client: &impl GenericClient,
    bank: &BankCode,
    callback: &Callback,
    order: &Payment,
    paid_at: OffsetDateTime,
) -> Result<u64, tokio_postgres::Error> {
    let statement = client
        .prepare_cached(
            "UPDATE payments SET status = 'paid', paid_at = $2, bank_code = $3,
                 bank_txn_id = $4, closed_at = now()
             WHERE id = $1",
        )
        .await?;
    client
        .execute(
            &statement,
            &[&order.id, &paid_at, &bank.as_str(), &callback.bank_txn_id],
        )
        .await
}

/// Pays an order that expired but whose money the bank took in time, if its reference is still
/// free; `false` (and nothing changed) when another pending or paid order holds it.
///
/// A read of the other orders could not decide this: an order created concurrently with the
/// same reference is invisible until it commits, and the update below would then fail on the
/// unique index. So the update itself asks, in a savepoint: the index makes it wait for such a
/// concurrent create and fail if that commits, and the failure, recognised by the index's name,
/// means the reference is taken. A pending order past its expiry gives the reference up first.
async fn claim_reference(
    client: &impl GenericClient,
    bank: &BankCode,
    callback: &Callback,
    order: &Payment,
    paid_at: OffsetDateTime,
) -> Result<bool, ApiError> {
    let agency = crate::codes::AgencyCode::parse(&order.agency)
        .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
    expire_overdue_holder(client, &agency, &order.reference, Some(&order.id)).await?;
    client.batch_execute("SAVEPOINT claim_reference").await?;
    match mark_paid(client, bank, callback, order, paid_at).await {
        Ok(_) => {
            client
                .batch_execute("RELEASE SAVEPOINT claim_reference")
                .await?;
            Ok(true)
        }
        Err(err) if violated_constraint(&err) == Some("payments_active_reference") => {
            client
                .batch_execute("ROLLBACK TO SAVEPOINT claim_reference")
                .await?;
            Ok(false)
        }
        Err(err) => Err(err.into()),
    }
}

fn answer(result: &'static str, exception: Option<Reason>, order: &Payment) -> CallbackAnswer {
    CallbackAnswer {
        result,
        exception: exception.map(Reason::as_str),
        payment_id: order.id.clone(),
        payment_status: order.status.clone(),
    }
}

/// Records the callback; `None` when a concurrent transaction recorded the same `bank_txn_id`
/// (or paid the order) first.
async fn insert_callback(
    client: &impl GenericClient,
    bank: &BankCode,
    callback: &Callback,
    outcome: &str,
    exception: Option<Reason>,
    source: Source,
) -> Result<Option<i64>, ApiError> {
    let statement = client
        .prepare_cached(
            "INSERT INTO bank_callbacks (bank_code, bank_txn_id, payment_id, amount, currency,
                 status, paid_at, failure_reason, outcome, exception, source)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             RETURNING id",
        )
        .await?;
    let inserted = client
        .query_one(
            &statement,
            &[
                &bank.as_str(),
                &callback.bank_txn_id,
                &callback.payment_id,
                &callback.amount.decimal(),
                &callback.currency,
                &callback.status.as_str(),
                &callback.paid_at,
                &callback.failure_reason,
                &outcome,
                &exception.map(Reason::as_str),
                &source.as_str(),
            ],
        )
        .await;
    match inserted {
        Ok(row) => Ok(Some(row.get(0))),
        Err(err)
            if matches!(
                violated_constraint(&err),
                Some("bank_callbacks_bank_txn" | "bank_callbacks_one_paid_per_payment")
            ) =>
        {
            Ok(None)
        }
        Err(err) => Err(err.into()),
    }
}

async fn pay(
    client: &impl GenericClient,
    bank: &BankCode,
    callback: &Callback,
    source: Source,
    order: &Payment,
    paid_at: OffsetDateTime,
) -> Result<Attempt, ApiError> {
    // A pending order holds its reference alone, so only an expired one needs to claim it back
    // before the callback is recorded; if it cannot, the money goes to suspense. (Should the
    // callback then lose a race for its `bank_txn_id`, the whole attempt rolls back, the
    // claim included.)
    let expired = order.status == PaymentStatus::Expired;
    if expired && !claim_reference(client, bank, callback, order, paid_at).await? {
        return suspend(client, bank, callback, source, order, Reason::OrderClosed).await;
    }
    let Some(callback_id) = insert_callback(client, bank, callback, "paid", None, source).await?
    else {
        return Ok(Attempt::Raced);
    };
    let paid = Payment {
        status: PaymentStatus::Paid,
        paid_at: Some(paid_at),
        bank: Some(bank.to_string()),
        bank_txn_id: Some(callback.bank_txn_id.clone()),
        ..order.clone()
    };
    let posting = Posting::transfer(
        Kind::Payment,
        callback_id,
        &order.id,
        bank,
        ledger::agency_account(&order.agency, order.obligation),
        order.amount,
    );
    let mark_pending_paid = async {
        if expired {
            Ok(0)
        } else {
            mark_paid(client, bank, callback, order, paid_at).await
        }
    };
    // The order, the ledger and the event are independent writes: they go out together, in
    // one round trip, and stand or fall with the transaction.
    futures_util::future::try_join3(
        mark_pending_paid,
        ledger::post(client, &posting),
        outbox::record(client, &paid, EventType::Paid),
    )
    .await?;
    tracing::info!(payment_id = %order.id, bank = %bank, source = source.as_str(), "payment accepted");
    Ok(Attempt::Done(Ok(answer("accepted", None, &paid))))
}

async fn suspend(
    client: &impl GenericClient,
    bank: &BankCode,
    callback: &Callback,
    source: Source,
    order: &Payment,
    reason: Reason,
) -> Result<Attempt, ApiError> {
    let Some(callback_id) =
        insert_callback(client, bank, callback, "exception", Some(reason), source).await?
    else {
        return Ok(Attempt::Raced);
    };
    let posting = Posting::transfer(
        Kind::Suspense,
        callback_id,
        &order.id,
        bank,
        ledger::suspense_account(bank),
        callback.amount,
    );
    ledger::post(client, &posting).await?;
    exceptions::record(
        client,
        &NewException {
            bank,
            bank_txn_id: &callback.bank_txn_id,
            payment_id: &callback.payment_id,
            amount: callback.amount.decimal(),
            currency: &callback.currency,
            paid_at: callback.paid_at,
            reason,
            callback_id: Some(callback_id),
            detail: Some(format!(
                "the order is {}; refund due",
                order.status.as_str()
            )),
        },
    )
    .await?;
    tracing::warn!(payment_id = %order.id, bank = %bank, reason = reason.as_str(), "payment taken into suspense");
    Ok(Attempt::Done(Ok(answer("exception", Some(reason), order))))
}

async fn keep_rejected(
    client: &impl GenericClient,
    bank: &BankCode,
    callback: &Callback,
    reason: Reason,
    detail: Option<String>,
) -> Result<(), ApiError> {
    exceptions::record(
        client,
        &NewException {
            bank,
            bank_txn_id: &callback.bank_txn_id,
            payment_id: &callback.payment_id,
            amount: callback.amount.decimal(),
            currency: &callback.currency,
            paid_at: callback.paid_at,
            reason,
            callback_id: None,
            detail,
        },
    )
    .await?;
    Ok(())
}
