//! The SQL of a callback: the reads that decide it and the rows that record it. Every function
//! runs on the caller's transaction, so that a callback is recorded whole or not at all.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::GenericClient;
use rust_decimal::Decimal;
use time::OffsetDateTime;

use super::model::{Callback, Source};
use crate::db::error::violated_constraint;
use crate::db::DbError;
use crate::domain::{Amount, BankCode, PaymentId};
use crate::ledger::exceptions::Reason;
use crate::payments::model::{Payment, PaymentStatus, PAYMENT_COLUMNS};
use crate::payments::store::expire_overdue_holder;

/// Locks the order a callback names (`FOR UPDATE`), so that concurrent callbacks for one order
/// are decided one after another; `None` when there is no such order for this bank: a sandbox
/// bank sees only sandbox orders, and a live bank only live ones.
pub async fn lock_order(
    client: &impl GenericClient,
    bank: &BankCode,
    payment_id: &PaymentId,
) -> Result<Option<Payment>, DbError> {
    find_order(client, bank, payment_id, "FOR UPDATE OF p").await
}

/// The order a bank's inquiry names, as [`lock_order`] finds it for that bank, without a lock.
pub async fn order_for_bank(
    client: &impl GenericClient,
    bank: &BankCode,
    payment_id: &PaymentId,
) -> Result<Option<Payment>, DbError> {
    find_order(client, bank, payment_id, "").await
}

async fn find_order(
    client: &impl GenericClient,
    bank: &BankCode,
    payment_id: &PaymentId,
    lock: &str,
) -> Result<Option<Payment>, DbError> {
    let statement = client
        .prepare_cached(&format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments p
             WHERE p.id = $1 AND p.sandbox = (SELECT b.sandbox FROM banks b WHERE b.code = $2)
             {lock}"
        ))
        .await?;
    Ok(client
        .query_opt(&statement, &[&payment_id.as_str(), &bank.as_str()])
        .await?
        .map(|row| Payment::from_row(&row)))
}

/// A callback recorded earlier with the same `(bank, bank_txn_id)`.
pub struct Recorded {
    pub payment_id: PaymentId,
    /// Whether it carries the same content as the callback at hand (see [`recorded`]).
    pub same: bool,
    /// The order's effective status now.
    pub payment_status: PaymentStatus,
}

/// The callback recorded earlier with this callback's `bank_txn_id`, if any. A line applied by
/// reconciliation has no body of its own: against one (or for one) only the payment and the
/// amount are compared.
pub async fn recorded(
    client: &impl GenericClient,
    bank: &BankCode,
    callback: &Callback,
    source: Source,
) -> Result<Option<Recorded>, DbError> {
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
        .query_opt(
            &statement,
            &[&bank.as_str(), &callback.bank_txn_id.as_str()],
        )
        .await?
    else {
        return Ok(None);
    };
    let payment_id: String = row.get(0);
    let amount: Decimal = row.get(1);
    let stored_source: &str = row.get(6);
    let same_money = payment_id == callback.payment_id.as_str()
        && Amount::from_decimal(amount) == Some(callback.amount);
    let same =
        if stored_source == Source::Reconciliation.as_str() || source == Source::Reconciliation {
            same_money
        } else {
            same_money
                && row.get::<_, &str>(2) == callback.currency
                && row.get::<_, &str>(3) == callback.status.as_str()
                && row.get::<_, Option<OffsetDateTime>>(4) == callback.paid_at()
                && row.get::<_, Option<String>>(5) == callback.failure_reason
        };
    let status: &str = row.get(7);
    Ok(Some(Recorded {
        payment_id: PaymentId::from_trusted(payment_id),
        same,
        payment_status: PaymentStatus::parse(status).expect("the status column is constrained"),
    }))
}

/// Marks the order paid. For an order that expired, this is what claims its reference back:
/// the unique index on active references refuses it when another order holds the reference.
pub async fn mark_paid(
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
            &[
                &order.id.as_str(),
                &paid_at,
                &bank.as_str(),
                &callback.bank_txn_id.as_str(),
            ],
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
pub async fn claim_reference(
    client: &impl GenericClient,
    bank: &BankCode,
    callback: &Callback,
    order: &Payment,
    paid_at: OffsetDateTime,
) -> Result<bool, DbError> {
    expire_overdue_holder(client, &order.agency, &order.reference, Some(&order.id)).await?;
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

/// What a recorded callback did to its order: `bank_callbacks.outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recording {
    /// A `failed` callback: nothing moved.
    Failed,
    /// The order was paid.
    Paid,
    /// The money went to suspense for this reason.
    Exception(Reason),
}

impl Recording {
    fn outcome(self) -> &'static str {
        match self {
            Recording::Failed => "failed",
            Recording::Paid => "paid",
            Recording::Exception(_) => "exception",
        }
    }

    fn exception(self) -> Option<&'static str> {
        match self {
            Recording::Exception(reason) => Some(reason.as_str()),
            Recording::Failed | Recording::Paid => None,
        }
    }
}

/// Records the callback and returns its id; `None` when a concurrent transaction recorded the
/// same `bank_txn_id` (or paid the order) first.
pub async fn insert_callback(
    client: &impl GenericClient,
    bank: &BankCode,
    callback: &Callback,
    recording: Recording,
    source: Source,
) -> Result<Option<i64>, DbError> {
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
                &callback.bank_txn_id.as_str(),
                &callback.payment_id.as_str(),
                &callback.amount.decimal(),
                &callback.currency,
                &callback.status.as_str(),
                &callback.paid_at(),
                &callback.failure_reason,
                &recording.outcome(),
                &recording.exception(),
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

/// Of the `(bank, bank_txn_id)` pairs given, those recorded before: for a batch of callbacks,
/// which of them are redeliveries or conflicts (decided one by one, by [`recorded`]).
pub async fn recorded_among(
    client: &impl GenericClient,
    banks: &[&str],
    bank_txn_ids: &[&str],
) -> Result<HashSet<(String, String)>, tokio_postgres::Error> {
    let statement = client
        .prepare_cached(
            // One index lookup per pair, whatever the planner believes of the table's size: a
            // plain join, planned once per connection while the table was small, kept reading
            // the whole table for every batch as it grew (seen: 1.2 ms a batch at 20,000 rows).
            "SELECT k.bank_code, k.bank_txn_id
             FROM unnest($1::text[], $2::text[]) AS k(bank_code, bank_txn_id)
             CROSS JOIN LATERAL (
                 SELECT 1 FROM bank_callbacks c
                 WHERE c.bank_code = k.bank_code AND c.bank_txn_id = k.bank_txn_id
                 LIMIT 1) AS recorded",
        )
        .await?;
    let rows = client.query(&statement, &[&banks, &bank_txn_ids]).await?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

/// Locks the orders of a batch of callbacks (`FOR UPDATE`, in the order of their ids, so that
/// two batches never wait for each other in a circle), as [`lock_order`] locks one, each for
/// the bank of its callback (`banks[n]` for `payment_ids[n]`); by id.
pub async fn lock_orders(
    client: &impl GenericClient,
    payment_ids: &[&str],
    banks: &[&str],
) -> Result<HashMap<String, Payment>, tokio_postgres::Error> {
    let statement = client
        .prepare_cached(&format!(
            "SELECT {PAYMENT_COLUMNS} FROM unnest($1::text[], $2::text[]) AS k (id, bank)
             JOIN payments p ON p.id = k.id
             WHERE p.sandbox = (SELECT b.sandbox FROM banks b WHERE b.code = k.bank)
             ORDER BY p.id
             FOR UPDATE OF p"
        ))
        .await?;
    let rows = client.query(&statement, &[&payment_ids, &banks]).await?;
    Ok(rows
        .iter()
        .map(|row| {
            let payment = Payment::from_row(row);
            (payment.id.as_str().to_owned(), payment)
        })
        .collect())
}

/// A `succeeded` callback that pays its pending order, as a batch records it.
pub struct Paying<'a> {
    pub bank: &'a BankCode,
    pub callback: &'a Callback,
    pub paid_at: OffsetDateTime,
}

/// Records a batch of callbacks that each pay their pending order (none of them recorded
/// before, each for another order) and marks the orders paid, in two statements: the ids of the
/// callbacks by `(bank, bank_txn_id)`. Fails whole, like any statement, when a concurrent
/// transaction recorded one of the `bank_txn_id`s first; the caller then decides them one by
/// one.
pub async fn record_paying(
    client: &impl GenericClient,
    paying: &[Paying<'_>],
    source: Source,
) -> Result<HashMap<(String, String), i64>, tokio_postgres::Error> {
    let banks: Vec<&str> = paying.iter().map(|p| p.bank.as_str()).collect();
    let txn_ids: Vec<&str> = paying
        .iter()
        .map(|p| p.callback.bank_txn_id.as_str())
        .collect();
    let payment_ids: Vec<&str> = paying
        .iter()
        .map(|p| p.callback.payment_id.as_str())
        .collect();
    let amounts: Vec<Decimal> = paying.iter().map(|p| p.callback.amount.decimal()).collect();
    let currencies: Vec<&str> = paying
        .iter()
        .map(|p| p.callback.currency.as_str())
        .collect();
    let paid_at: Vec<OffsetDateTime> = paying.iter().map(|p| p.paid_at).collect();
    let insert = client
        .prepare_cached(
            "INSERT INTO bank_callbacks (bank_code, bank_txn_id, payment_id, amount, currency,
                 status, paid_at, failure_reason, outcome, exception, source)
             SELECT c.bank_code, c.bank_txn_id, c.payment_id, c.amount, c.currency,
                 'succeeded', c.paid_at, NULL, 'paid', NULL, $7
             FROM unnest($1::text[], $2::text[], $3::text[], $4::numeric[], $5::text[],
                         $6::timestamptz[])
                 AS c(bank_code, bank_txn_id, payment_id, amount, currency, paid_at)
             RETURNING bank_code, bank_txn_id, id",
        )
        .await?;
    let mark = client
        .prepare_cached(
            "UPDATE payments p SET status = 'paid', paid_at = c.paid_at, bank_code = c.bank_code,
                 bank_txn_id = c.bank_txn_id, closed_at = now()
             FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
                 AS c(payment_id, bank_code, bank_txn_id, paid_at)
             WHERE p.id = c.payment_id",
        )
        .await?;
    let (inserted, marked) = futures_util::future::try_join(
        client.query(
            &insert,
            &[
                &banks,
                &txn_ids,
                &payment_ids,
                &amounts,
                &currencies,
                &paid_at,
                &source.as_str(),
            ],
        ),
        client.execute(&mark, &[&payment_ids, &banks, &txn_ids, &paid_at]),
    )
    .await?;
    assert_eq!(
        marked as usize,
        paying.len(),
        "every order of the batch is paid"
    );
    Ok(inserted
        .iter()
        .map(|row| ((row.get(0), row.get(1)), row.get(2)))
        .collect())
}
