//! The ledger's SQL: writing postings, and reading balances, the verdict and the exceptions.

use deadpool_postgres::{GenericClient, Pool};
use rust_decimal::Decimal;
use serde::Serialize;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use utoipa::ToSchema;

use super::exceptions::{ExceptionItem, ListFilter};
use super::posting::{Entry, Posting};
use super::seals::{BrokenSeal, Checkpoint, CheckpointVerdict};
use super::signing::Keyring;
use crate::db::DbError;

/// Writes several postings of bank callbacks (each with its own callback) in one statement,
/// as [`post`] writes one: for a batch of callbacks decided together.
pub async fn post_callbacks(
    client: &impl GenericClient,
    postings: &[Posting],
) -> Result<(), tokio_postgres::Error> {
    let mut kinds = Vec::with_capacity(postings.len());
    let mut callback_ids = Vec::with_capacity(postings.len());
    let mut payment_ids = Vec::with_capacity(postings.len());
    let (mut entry_callbacks, mut accounts, mut debits, mut credits) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for posting in postings {
        assert!(posting.balanced(), "unbalanced ledger posting: {posting:?}");
        let callback_id = posting
            .source
            .callback_id()
            .expect("a posting of a bank callback");
        kinds.push(posting.kind.as_str());
        callback_ids.push(callback_id);
        payment_ids.push(posting.payment_id.as_str());
        for entry in &posting.entries {
            entry_callbacks.push(callback_id);
            accounts.push(entry.account.as_str());
            debits.push(entry.debit_column());
            credits.push(entry.credit_column());
        }
    }
    // The transaction takes its xid before the rows take their ids, as in `post` (the
    // sealer's horizon depends on it).
    let statement = client
        .prepare_cached(
            "WITH x AS MATERIALIZED (SELECT pg_current_xact_id() AS xid),
             t AS (
                 INSERT INTO ledger_transactions (kind, callback_id, payment_id)
                 SELECT p.kind, p.callback_id, p.payment_id
                 FROM x, unnest($1::text[], $2::bigint[], $3::text[]) AS p(kind, callback_id, payment_id)
                 WHERE x.xid IS NOT NULL
                 RETURNING id, callback_id)
             INSERT INTO ledger_entries (transaction_id, account, debit, credit)
             SELECT t.id, e.account, e.debit, e.credit
             FROM t JOIN unnest($4::bigint[], $5::text[], $6::numeric[], $7::numeric[])
                 AS e(callback_id, account, debit, credit) ON e.callback_id = t.callback_id",
        )
        .await?;
    let written = client
        .execute(
            &statement,
            &[
                &kinds,
                &callback_ids,
                &payment_ids,
                &entry_callbacks,
                &accounts,
                &debits,
                &credits,
            ],
        )
        .await?;
    assert_eq!(
        written as usize,
        accounts.len(),
        "every entry of the batch is written"
    );
    Ok(())
}

/// Writes `posting` (one statement); call it inside the transaction that decided it. An
/// unbalanced posting is a broken invariant, not an operating error: it stops the operation
/// (and the database's deferred trigger would refuse it at commit anyway).
///
/// The statement makes sure the database transaction has its transaction id (xid) BEFORE it
/// allocates the ledger transaction's id: the materialised `x` is evaluated first and the
/// insert reads from it. The sealer relies on this order (see [`super::seals`]): an id it has
/// seen allocated belongs to a transaction that already had an xid, so that transaction shows
/// in any later snapshot as either finished or in progress, and the sealer can wait for it.
pub async fn post(
    client: &impl GenericClient,
    posting: &Posting,
) -> Result<i64, tokio_postgres::Error> {
    assert!(posting.balanced(), "unbalanced ledger posting: {posting:?}");
    let accounts: Vec<&str> = posting.entries.iter().map(|e| e.account.as_str()).collect();
    let debits: Vec<Decimal> = posting.entries.iter().map(Entry::debit_column).collect();
    let credits: Vec<Decimal> = posting.entries.iter().map(Entry::credit_column).collect();
    let statement = client
        .prepare_cached(
            "WITH x AS MATERIALIZED (SELECT pg_current_xact_id() AS xid),
             t AS (
                 INSERT INTO ledger_transactions (kind, callback_id, payment_id, refund_id, case_id)
                 SELECT $1::text, $2::bigint, $3::text, $7::text, $8::text
                 FROM x WHERE x.xid IS NOT NULL RETURNING id)
             INSERT INTO ledger_entries (transaction_id, account, debit, credit)
             SELECT t.id, e.account, e.debit, e.credit
             FROM t, unnest($4::text[], $5::numeric[], $6::numeric[]) AS e(account, debit, credit)
             RETURNING transaction_id",
        )
        .await?;
    let rows = client
        .query(
            &statement,
            &[
                &posting.kind.as_str(),
                &posting.source.callback_id(),
                &posting.payment_id.as_str(),
                &accounts,
                &debits,
                &credits,
                &posting.source.refund_id(),
                &posting.source.case_id(),
            ],
        )
        .await?;
    let first = rows
        .first()
        .expect("a balanced posting inserts at least two entries");
    Ok(first.get(0))
}

fn amount_text(value: Decimal) -> String {
    value.normalize().to_string()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Balance {
    #[schema(example = "bank:VCB")]
    pub account: String,
    #[schema(example = "150000")]
    pub debits: String,
    #[schema(example = "0")]
    pub credits: String,
    /// debits - credits; may be negative.
    #[schema(example = "150000")]
    pub balance: String,
}

/// Balances of every account whose name starts with `prefix` (every account for `""`).
pub async fn balances(pool: &Pool, prefix: &str) -> Result<Vec<Balance>, DbError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT account, sum(debit), sum(credit) FROM ledger_entries
             WHERE starts_with(account, $1)
               AND (starts_with($1, 'sandbox:') OR NOT starts_with(account, 'sandbox:'))
             GROUP BY account ORDER BY account",
            &[&prefix],
        )
        .await?;
    Ok(rows.iter().map(Balance::from_row).collect())
}

impl Balance {
    /// A row of `account, sum(debit), sum(credit)`.
    fn from_row(row: &Row) -> Balance {
        let debits: Decimal = row.get(1);
        let credits: Decimal = row.get(2);
        Balance {
            account: row.get(0),
            debits: amount_text(debits),
            credits: amount_text(credits),
            balance: amount_text(debits - credits),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Offending {
    pub transaction: i64,
    pub debits: String,
    pub credits: String,
    pub entries: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Verification {
    /// False when any check fails: a transaction that does not balance, a broken seal, or a
    /// checkpoint the ledger no longer leads to.
    pub ok: bool,
    pub transactions: i64,
    pub entries: i64,
    pub debits: String,
    pub credits: String,
    /// Present when `ok` is false: transactions that do not balance or have under two entries.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub offending: Vec<Offending>,
    /// Seals verified (hash recomputed, chained, signature checked), up to the first broken one.
    pub seals: i64,
    /// The last transaction id the newest seal covers; null before the first seal.
    #[schema(required = true)]
    pub sealed_through: Option<i64>,
    /// The first seal that fails, when one does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken_seal: Option<BrokenSeal>,
    /// The verdict on the checkpoint asked for, when one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointVerdict>,
}

/// The offending transactions listed at most, so that a badly broken ledger still answers.
const MAX_OFFENDING: i64 = 100;

/// Checks every invariant of the ledger: each transaction balances with at least two entries,
/// total debits equal total credits, and every seal verifies (its hash, its place in the chain
/// and its signature by a key of `keyring`); with a `checkpoint`, the chain must still hold it.
pub async fn verify(
    pool: &Pool,
    keyring: &Keyring,
    checkpoint: Option<&Checkpoint>,
) -> Result<Verification, DbError> {
    let mut client = pool.get().await?;
    // One snapshot for every query, so that a posting or a seal committed in between cannot
    // make a sound ledger look broken.
    let transaction = crate::db::snapshot(&mut client).await?;
    let totals = transaction
        .query_one(
            "SELECT (SELECT count(*) FROM ledger_transactions), count(*),
                    coalesce(sum(debit), 0), coalesce(sum(credit), 0)
             FROM ledger_entries",
            &[],
        )
        .await?;
    let offending = transaction
        .query(
            "SELECT t.id, coalesce(sum(e.debit), 0), coalesce(sum(e.credit), 0), count(e.id)
             FROM ledger_transactions t LEFT JOIN ledger_entries e ON e.transaction_id = t.id
             GROUP BY t.id
             HAVING coalesce(sum(e.debit), 0) <> coalesce(sum(e.credit), 0) OR count(e.id) < 2
             ORDER BY t.id LIMIT $1",
            &[&MAX_OFFENDING],
        )
        .await?;
    let seals = super::seals::verify(&transaction, keyring, checkpoint).await?;
    transaction.commit().await?;
    let debits: Decimal = totals.get(2);
    let credits: Decimal = totals.get(3);
    let offending: Vec<Offending> = offending
        .iter()
        .map(|row| Offending {
            transaction: row.get(0),
            debits: amount_text(row.get(1)),
            credits: amount_text(row.get(2)),
            entries: row.get(3),
        })
        .collect();
    let checkpoint_ok = seals.checkpoint.as_ref().is_none_or(|c| c.ok);
    Ok(Verification {
        ok: offending.is_empty()
            && debits == credits
            && seals.broken_seal.is_none()
            && checkpoint_ok,
        transactions: totals.get(0),
        entries: totals.get(1),
        debits: amount_text(debits),
        credits: amount_text(credits),
        offending,
        seals: seals.seals,
        sealed_through: seals.sealed_through,
        broken_seal: seals.broken_seal,
        checkpoint: seals.checkpoint,
    })
}

/// Exceptions newest first, up to `limit + 1` rows (the extra one tells that a page follows).
pub async fn list_exceptions(
    pool: &Pool,
    filter: &ListFilter,
) -> Result<Vec<ExceptionItem>, DbError> {
    let bank = filter.bank.as_ref().map(|bank| bank.as_str());
    let fetch = filter.limit + 1;
    let params: [&(dyn ToSql + Sync); 5] =
        [&bank, &filter.from, &filter.to, &filter.before, &fetch];
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT id, reason, bank_code, bank_txn_id, payment_id, amount, currency, paid_at,
                    detail, created_at, callback_id IS NOT NULL
             FROM callback_exceptions
             WHERE ($1::text IS NULL OR bank_code = $1)
               AND ($2::timestamptz IS NULL OR created_at >= $2)
               AND ($3::timestamptz IS NULL OR created_at < $3)
               AND ($4::bigint IS NULL OR id < $4)
             ORDER BY id DESC LIMIT $5",
            &params,
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let id: i64 = row.get(0);
            let amount: Decimal = row.get(5);
            ExceptionItem {
                id: format!("exc_{id:016x}"),
                kind: if row.get(10) { "suspense" } else { "rejected" },
                reason: row.get(1),
                bank: row.get(2),
                bank_txn_id: row.get(3),
                payment_id: row.get(4),
                amount: amount_text(amount),
                currency: row.get(6),
                paid_at: row.get(7),
                detail: row.get(8),
                created_at: row.get(9),
                seq: id,
            }
        })
        .collect())
}
