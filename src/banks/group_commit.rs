//! Group commit of bank callbacks: callbacks that arrive together are decided and written in
//! one database transaction, so that a burst of callbacks costs one commit (one WAL flush)
//! instead of one each.
//!
//! Each callback is still atomic on its own and decided exactly as it would be alone:
//!
//! - A batch runs its callbacks one after another, in arrival order, each in a savepoint of the
//!   batch's transaction ([`callbacks::process_on`]). A callback sees every earlier callback of
//!   its batch as if that one had committed before it: a redelivery inside one batch is a
//!   `duplicate`, a second payment of one order an `exception`, a reused `bank_txn_id` a
//!   conflict.
//! - A callback whose savepoint fails is rolled back alone; its neighbours go on. If it failed
//!   for a reason a retry cures (a deadlock with another batch, say), it is decided again alone,
//!   in a transaction of its own, once its batch has committed.
//! - No answer leaves before the batch's commit has succeeded. When the commit fails (the
//!   connection broke, the server restarted), nothing of the batch was kept, or, if the commit
//!   did reach the server, every callback of it was: each callback is then decided again alone,
//!   which either applies it or finds it recorded and answers as a redelivery, never twice.
//!
//! Callbacks are spread over a few lanes ([`crate::db::lanes`]), chosen by the order's id, so
//! that every callback for one order meets the others in one lane, in arrival order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Pool};
use time::OffsetDateTime;
use tokio::sync::oneshot;

use super::callbacks::{
    self, Callback, CallbackError, CallbackOutcome, CallbackStatus, Source,
    MAX_PAID_AT_BEFORE_CREATION,
};
use super::store::{self, Paying};
use crate::cases;
use crate::checklist::{self, BankStep, Recent};
use crate::config::MAX_CALLBACK_LANES;
use crate::db::lanes::Lanes;
use crate::db::DbError;
use crate::domain::BankCode;
use crate::ledger::{self, Book, Kind, Posting};
use crate::notifications::outbox::{self, EventType};
use crate::payments::model::{Payment, PaymentStatus};
use crate::telemetry::Metrics;

/// At most this many callbacks share a transaction. Each one is a subtransaction, and
/// PostgreSQL keeps the first 64 subtransactions of a transaction in shared memory: beyond
/// that every snapshot taken by any session becomes slower. A callback that reclaims an
/// expired order's reference takes a second one, so 32 callbacks stay within 64.
pub const MAX_BATCH: usize = 32;

type Decision = Result<CallbackOutcome, CallbackError>;

/// A callback waiting for its batch, with the way back to its request.
struct Job {
    bank: BankCode,
    callback: Callback,
    reply: oneshot::Sender<Decision>,
}

/// The lanes of this process; every bank callback goes through [`GroupCommit::process`].
pub struct GroupCommit {
    lanes: Lanes<Job>,
}

impl GroupCommit {
    /// Starts the lanes on the current Tokio runtime. They stop when the last handle is
    /// dropped, after answering every callback queued.
    ///
    /// `lanes` is 1 to `MAX_CALLBACK_LANES`; `gather_ms` is how long a lane waits for more
    /// callbacks after the first of a batch: 0 takes only those already waiting, so that a
    /// lone callback is never delayed.
    pub fn start(
        pool: Pool,
        metrics: Arc<Metrics>,
        recent: Arc<Recent>,
        lanes: usize,
        gather_ms: u64,
    ) -> Self {
        assert!(
            (1..=MAX_CALLBACK_LANES).contains(&lanes),
            "1 to {MAX_CALLBACK_LANES} lanes"
        );
        let decide = move |jobs: Vec<Job>| {
            let (pool, metrics, recent) = (pool.clone(), metrics.clone(), recent.clone());
            async move {
                metrics.callback_batch_size.observe(jobs.len() as f64);
                commit_batch(&pool, &recent, jobs).await;
            }
        };
        GroupCommit {
            lanes: Lanes::start(lanes, MAX_BATCH, Duration::from_millis(gather_ms), decide),
        }
    }

    /// Decides and applies a bank's callback in the next batch of its lane; answers once that
    /// batch has committed.
    pub async fn process(&self, bank: &BankCode, callback: &Callback) -> Decision {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            bank: bank.clone(),
            callback: callback.clone(),
            reply,
        };
        // A lane ends only when this process drops its handle, and it answers what it took
        // before it ends; a lane that is gone (it panicked) is reported as unavailable.
        self.lanes
            .send(callback.payment_id.as_str(), job)
            .await
            .map_err(|_| CallbackError::LaneStopped)?;
        answer.await.map_err(|_| CallbackError::LaneStopped)?
    }
}

/// Runs one batch and answers every callback of it.
async fn commit_batch(pool: &Pool, recent: &Recent, jobs: Vec<Job>) {
    let decisions = match decide_together(pool, recent, &jobs).await {
        Ok(decisions) => decisions,
        Err(err) => {
            tracing::warn!(error = %err, callbacks = jobs.len(), "a batch of callbacks failed to commit; deciding each alone");
            jobs.iter().map(|_| None).collect()
        }
    };
    let mut again = Vec::new();
    for (job, decision) in jobs.into_iter().zip(decisions) {
        match decision {
            Some(decision) => {
                // The request may have gone (the client hung up); its callback stands.
                let _ = job.reply.send(decision);
            }
            None => again.push(job),
        }
    }
    // Decided again alone, after every neighbour has its answer.
    for job in again {
        let decision = callbacks::process(pool, &job.bank, &job.callback, Source::Callback).await;
        let _ = job.reply.send(decision);
    }
}

/// Decides the batch's callbacks in one transaction, in order: the decisions once the
/// transaction has committed, `None` for a callback to decide again alone.
async fn decide_together(
    pool: &Pool,
    recent: &Recent,
    jobs: &[Job],
) -> Result<Vec<Option<Decision>>, DbError> {
    let mut client = pool.get().await?;
    let mut transaction = client.transaction().await?;
    let callbacks: Vec<(&BankCode, &Callback)> =
        jobs.iter().map(|job| (&job.bank, &job.callback)).collect();
    let paid = pay_in_bulk(&transaction, &callbacks, Source::Callback).await?;
    // The banks' `callback_accepted`, unless this process recorded it in the last second (the
    // callbacks decided one by one below mark their own steps).
    let accepted: Vec<(&str, BankStep)> = jobs
        .iter()
        .zip(&paid)
        .filter(|(_, paid)| **paid)
        .map(|(job, _)| (job.bank.as_str(), BankStep::CallbackAccepted))
        .collect();
    let steps = recent.unrecorded(&accepted);
    checklist::mark_banks(&transaction, &steps).await?;
    let mut decisions = Vec::with_capacity(jobs.len());
    for (job, paid) in jobs.iter().zip(paid) {
        if paid {
            decisions.push(Some(Ok(CallbackOutcome::Accepted {
                payment_id: job.callback.payment_id.clone(),
                payment_status: PaymentStatus::Paid,
            })));
            continue;
        }
        let decision =
            callbacks::process_on(&mut transaction, &job.bank, &job.callback, Source::Callback)
                .await;
        decisions.push(match decision {
            Err(err) if err.is_transient() => None,
            decision => Some(decision),
        });
    }
    transaction.commit().await?;
    recent.recorded(&steps);
    Ok(decisions)
}

/// Pays, in a handful of statements for the whole batch, the callbacks that can only pay a
/// pending order: a `succeeded` callback whose order and `bank_txn_id` no other callback of
/// the batch names, not recorded before, for an existing pending order, with its amount and
/// currency, and a `paid_at` the order's creation allows. That is the callback table's
/// first-payment row, and what almost every callback is; each gets the answer and the rows
/// ([`callbacks::process_on`]'s `pay`) it would get alone. Sharing nothing with its neighbours,
/// it may be written before those that arrived ahead of it without changing any outcome.
///
/// Returns, per callback, whether it was paid here; the others are decided one by one
/// afterwards. Should the writes fail (a concurrent transaction recorded one of the
/// `bank_txn_id`s first), they are rolled back and every callback is decided one by one.
///
/// Reconciliation applies the recoverable lines of a statement through it too, with
/// `source` [`Source::Reconciliation`].
pub(crate) async fn pay_in_bulk(
    transaction: &deadpool_postgres::Transaction<'_>,
    callbacks: &[(&BankCode, &Callback)],
    source: Source,
) -> Result<Vec<bool>, DbError> {
    let mut paid = vec![false; callbacks.len()];
    // A lone callback costs the same either way.
    if callbacks.len() < 2 {
        return Ok(paid);
    }
    let mut per_order: HashMap<&str, usize> = HashMap::new();
    let mut per_txn: HashMap<(&str, &str), usize> = HashMap::new();
    for (bank, callback) in callbacks {
        *per_order.entry(callback.payment_id.as_str()).or_default() += 1;
        *per_txn
            .entry((bank.as_str(), callback.bank_txn_id.as_str()))
            .or_default() += 1;
    }
    let candidates: Vec<(usize, &BankCode, &Callback, OffsetDateTime)> = callbacks
        .iter()
        .enumerate()
        .filter_map(|(n, (bank, callback))| match callback.status {
            CallbackStatus::Succeeded { paid_at }
                if per_order[callback.payment_id.as_str()] == 1
                    && per_txn[&(bank.as_str(), callback.bank_txn_id.as_str())] == 1 =>
            {
                Some((n, *bank, *callback, paid_at))
            }
            _ => None,
        })
        .collect();
    if candidates.is_empty() {
        return Ok(paid);
    }
    let banks: Vec<&str> = candidates
        .iter()
        .map(|(_, bank, _, _)| bank.as_str())
        .collect();
    let txn_ids: Vec<&str> = candidates
        .iter()
        .map(|(_, _, callback, _)| callback.bank_txn_id.as_str())
        .collect();
    let payment_ids: Vec<&str> = candidates
        .iter()
        .map(|(_, _, callback, _)| callback.payment_id.as_str())
        .collect();
    let (recorded, orders) = futures_util::future::try_join(
        store::recorded_among(transaction, &banks, &txn_ids),
        store::lock_orders(transaction, &payment_ids, &banks),
    )
    .await?;
    let mut paying = Vec::new();
    for (n, bank, callback, paid_at) in candidates {
        let key = (
            bank.as_str().to_owned(),
            callback.bank_txn_id.as_str().to_owned(),
        );
        let Some(order) = orders.get(callback.payment_id.as_str()) else {
            continue;
        };
        let first_payment = !recorded.contains(&key)
            && order.status == PaymentStatus::Pending
            && callback.amount == order.amount
            && callback.currency == order.currency
            // As alone: only a callback's `paid_at` is held against the order's creation; a
            // statement line is the bank's own record (see `callbacks::attempt`).
            && (source != Source::Callback
                || paid_at >= order.created_at - MAX_PAID_AT_BEFORE_CREATION);
        if first_payment {
            paying.push((
                n,
                order,
                Paying {
                    bank,
                    callback,
                    paid_at,
                },
            ));
        }
    }
    if paying.is_empty() {
        return Ok(paid);
    }
    // The savepoint goes out with the first writes (one round trip): should it fail, so do
    // they, and the rollback to it below fails the batch.
    let written = futures_util::future::try_join(
        transaction.batch_execute("SAVEPOINT pay_in_bulk"),
        write_payments(transaction, &paying, source),
    )
    .await;
    match written {
        Ok(_) => {
            for (n, order, _) in &paying {
                paid[*n] = true;
                tracing::info!(payment_id = %order.id, bank = %callbacks[*n].0, source = source.as_str(), "payment accepted");
            }
        }
        Err(err) => {
            tracing::info!(error = %err, "paying a batch at once failed; deciding its callbacks one by one");
            transaction
                .batch_execute("ROLLBACK TO SAVEPOINT pay_in_bulk")
                .await?;
        }
    }
    Ok(paid)
}

/// The rows of [`pay_in_bulk`]'s payments: the callbacks, the orders, the ledger
/// transactions, the `payment.paid` events and the inquiries resolved.
async fn write_payments(
    client: &impl GenericClient,
    paying: &[(usize, &Payment, Paying<'_>)],
    source: Source,
) -> Result<(), tokio_postgres::Error> {
    let records: Vec<Paying<'_>> = paying
        .iter()
        .map(|(_, _, p)| Paying {
            bank: p.bank,
            callback: p.callback,
            paid_at: p.paid_at,
        })
        .collect();
    let callback_ids = store::record_paying(client, &records, source).await?;
    let mut postings = Vec::with_capacity(paying.len());
    let mut events = Vec::with_capacity(paying.len());
    for (_, order, p) in paying {
        let key = (
            p.bank.as_str().to_owned(),
            p.callback.bank_txn_id.as_str().to_owned(),
        );
        let book = Book::of(order.sandbox);
        postings.push(Posting::transfer(
            book,
            Kind::Payment,
            callback_ids[&key],
            &order.id,
            p.bank,
            book.agency(&order.agency, &order.obligation),
            order.amount,
        ));
        let paid = Payment {
            status: PaymentStatus::Paid,
            paid_at: Some(p.paid_at),
            bank: Some(p.bank.clone()),
            bank_txn_id: Some(p.callback.bank_txn_id.clone()),
            ..(*order).clone()
        };
        events.push((&order.agency, &order.id, paid.to_json()));
    }
    let payment_ids: Vec<&str> = paying
        .iter()
        .map(|(_, order, _)| order.id.as_str())
        .collect();
    futures_util::future::try_join3(
        ledger::post_callbacks(client, &postings),
        outbox::record_many(client, EventType::Paid, &events),
        cases::opening::resolve_paid_inquiries_of(client, &payment_ids),
    )
    .await?;
    Ok(())
}
