//! The SQL of statements: one query over the orders paid and the refunds of orders completed in
//! a business day, read whole (the JSON answer) or in batches from a cursor (the CSV file).

use std::time::Duration;

use deadpool_postgres::{GenericClient, Pool};
use time::Date;
use tokio::sync::mpsc;

use super::error::StatementError;
use super::model::{DailyStatement, StatementItem, StatementTotals};
use crate::db::snapshot;
use crate::domain::AgencyCode;
use crate::reconciliation::engine::business_day;

/// A statement's items from `$2` (included) to `$3` (excluded) for agency `$1`, in their order:
/// by time, payments before refunds at the same instant, then by id (byte order, whatever the
/// database's collation), so that the same day always lists the same way.
///
/// Each half walks an index of its own (`migrations/0017_statement_indexes.sql`): the agency's
/// paid orders by `paid_at`, and its completed refunds by `completed_at`. Refunds of money in
/// suspense (`kind = 'suspense'`) are not the agency's money and are left out.
pub const ITEMS_SQL: &str = "
    SELECT item_type, payment_id, reference, obligation, amount, bank, bank_txn_id, at, refund_id
    FROM (
        SELECT 'payment' AS item_type, p.id AS payment_id, p.reference, p.obligation, p.amount,
               p.bank_code AS bank, p.bank_txn_id, p.paid_at AS at, NULL::text AS refund_id,
               p.id AS id
        FROM payments p
        WHERE p.agency_code = $1 AND p.status = 'paid' AND p.paid_at >= $2 AND p.paid_at < $3
        UNION ALL
        SELECT 'refund', r.payment_id, p.reference, p.obligation, r.amount, r.bank_code,
               r.bank_txn_id, r.completed_at, r.id, r.id
        FROM refunds r JOIN payments p ON p.id = r.payment_id
        WHERE r.agency_code = $1 AND r.status = 'completed' AND r.kind = 'payment'
          AND r.completed_at >= $2 AND r.completed_at < $3
    ) AS items
    ORDER BY at, item_type, id COLLATE \"C\"";

/// Items per fetch from the cursor of a streamed statement: about 300 KiB of rows, so that a
/// statement of any size is read with a bounded amount of memory and few round trips.
pub const BATCH_ROWS: i32 = 1_000;

/// How long a streamed statement waits for its answer to take the next batch. A client that
/// stops reading for longer loses its download, so that no stalled client holds a connection
/// and an open transaction for ever.
pub const READER_WAIT_MS: u64 = 120_000;

/// What a streamed statement hands its answer: a batch of items in order, or why it stopped.
pub type Batch = Result<Vec<StatementItem>, StatementError>;

/// [`StatementError::AgencyNotFound`] unless `agency` exists.
async fn require_agency(
    client: &impl GenericClient,
    agency: &AgencyCode,
) -> Result<(), StatementError> {
    client
        .query_opt(
            "SELECT 1 FROM agencies WHERE code = $1",
            &[&agency.as_str()],
        )
        .await?
        .map(|_| ())
        .ok_or_else(|| StatementError::AgencyNotFound(agency.clone()))
}

/// The statement of `agency` for the business day `date` (Vietnam time), read whole in one
/// snapshot.
pub async fn daily(
    pool: &Pool,
    agency: &AgencyCode,
    date: Date,
) -> Result<DailyStatement, StatementError> {
    let (start, end) = business_day(date);
    let mut client = pool.get().await?;
    let transaction = snapshot(&mut client).await?;
    require_agency(&transaction, agency).await?;
    let statement = transaction.prepare_cached(ITEMS_SQL).await?;
    let rows = transaction
        .query(&statement, &[&agency.as_str(), &start, &end])
        .await?;
    transaction.commit().await?;
    let items: Vec<StatementItem> = rows.iter().map(StatementItem::from_row).collect();
    let totals = StatementTotals::of(&items)?;
    Ok(DailyStatement {
        agency: agency.to_string(),
        date: date.to_string(),
        items,
        totals,
    })
}

/// The statement of `agency` for the business day `date`, read on a task of its own from one
/// cursor in one snapshot, [`BATCH_ROWS`] items at a time, whatever the day holds.
///
/// The first message on the returned receiver tells whether the statement can be given at all
/// (`Err` for an unknown agency or an unavailable database) and otherwise carries the first
/// batch, perhaps empty; the items then follow in order, batch by batch, and the channel closes
/// after the last. An `Err` after the first message means the statement was cut short. At most
/// one batch waits in the channel, so memory stays bounded by a few batches: the reader fetches
/// the next batch only once the answer has taken the one before. The reader gives up (and its
/// transaction is rolled back, releasing the connection) as soon as the receiver is dropped, or
/// has not taken a batch for [`READER_WAIT_MS`].
pub fn stream(pool: Pool, agency: AgencyCode, date: Date) -> mpsc::Receiver<Batch> {
    let (sender, receiver) = mpsc::channel(1);
    tokio::spawn(async move {
        if let Err(err) = send_batches(&pool, &agency, date, &sender).await {
            // When the answer is gone already, nobody is left to tell.
            let _ = sender.send_timeout(Err(err), reader_wait()).await;
        }
    });
    receiver
}

fn reader_wait() -> Duration {
    Duration::from_millis(READER_WAIT_MS)
}

async fn send_batches(
    pool: &Pool,
    agency: &AgencyCode,
    date: Date,
    sender: &mpsc::Sender<Batch>,
) -> Result<(), StatementError> {
    let (start, end) = business_day(date);
    let mut client = pool.get().await?;
    let transaction = snapshot(&mut client).await?;
    require_agency(&transaction, agency).await?;
    let statement = transaction.prepare_cached(ITEMS_SQL).await?;
    let portal = transaction
        .bind(&statement, &[&agency.as_str(), &start, &end])
        .await?;
    let mut first = true;
    loop {
        let rows = transaction.query_portal(&portal, BATCH_ROWS).await?;
        let last = rows.len() < BATCH_ROWS as usize;
        if first || !rows.is_empty() {
            let batch = rows.iter().map(StatementItem::from_row).collect();
            drop(rows);
            if sender.send_timeout(Ok(batch), reader_wait()).await.is_err() {
                // The answer is gone or stalled: dropping the transaction rolls it back.
                return Ok(());
            }
        }
        first = false;
        if last {
            break;
        }
    }
    transaction.commit().await?;
    Ok(())
}
