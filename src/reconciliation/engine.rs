//! The reconciliation engine, shared by `POST /v1/reconciliations` and `paygate reconcile` (the
//! outcomes are described in `docs/api-guide.md`).
//!
//! The statement is parsed on a blocking thread and streamed with `COPY ... BINARY` into a
//! temporary table (a bounded channel between them keeps memory flat whatever the file's size);
//! matching is then a handful of set-based statements. Lines that heal a lost callback are
//! applied one by one through the same code path as a bank's callback (in savepoints of the
//! run's one transaction), so they are posted exactly once whoever applies them first, and a
//! run that fails leaves nothing behind.
//!
//! A run moves money (applies a recovery) only when an admin key or the command line runs it; a
//! run made with an auditor key reports each line it could recover as `missing_in_gateway` with
//! the detail `recoverable`, and a later admin or command-line run recovers it.
//!
//! A run sets its own database limits inside its transaction, so that the pool's short
//! per-statement timeout, meant for requests, cannot cut a large statement's run short; and a run
//! that loses a deadlock or a serialization conflict is run again from the start, a bounded
//! number of times.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use rust_decimal::Decimal;
use time::{Date, OffsetDateTime};
use tokio::sync::mpsc;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

use super::error::ReconcileError;
use super::model::{NewRun, Outcome, Run, TotalsBy, RUN_COLUMNS};
use super::statement::{Line, StatementError, StatementReader};
use crate::audit::{self, Action, Actor};
use crate::banks::callbacks::{
    self, Callback, CallbackError, CallbackOutcome, CallbackStatus, Source,
};
use crate::domain::{Amount, BankCode, BankTxnId, ObligationCode, PaymentId, RunId, Totals};

/// Lines per message from the parsing thread; with [`CHANNEL_BATCHES`] this bounds memory.
const BATCH_LINES: usize = 2_000;
const CHANNEL_BATCHES: usize = 4;
/// `work_mem` of a run's transaction.
const RUN_WORK_MEM_MB: u32 = 256;
/// Lines fetched per round when recovering.
const RECOVERY_BATCH_ROWS: i64 = 1_000;
/// The longest any one statement of a run may take. A run of the largest statement accepted
/// (1 GiB, some ten million lines) spends a few minutes in its longest statement; the bound is
/// far above that and only stops a query that is stuck.
pub const RUN_STATEMENT_TIMEOUT_MS: u64 = 60 * 60 * 1_000;
/// The longest a run waits for a row lock. Another run of an overlapping statement holds its
/// orders' locks until it commits, which for the largest statement is minutes; a callback holds
/// one for milliseconds. Past this, the run fails as retriable (503) and leaves nothing.
pub const RUN_LOCK_TIMEOUT_MS: u64 = 10 * 60 * 1_000;
/// Attempts of a run that loses a deadlock or a serialization conflict (or whose recovery finds
/// the database briefly unavailable) before the caller is answered 503 `unavailable`.
pub const RUN_ATTEMPTS: u32 = 3;
/// The wait before the second attempt; each further attempt waits this much longer again.
const RUN_RETRY_BACKOFF_MS: u64 = 250;

/// Reports progress (bytes of the statement read) to whoever watches, e.g. a progress bar.
pub type Progress = Box<dyn Fn(u64) + Send + Sync>;

/// Who runs a reconciliation, which decides whether it may move money.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunBy {
    /// An admin key, through the HTTP API.
    Admin,
    /// An auditor key, through the HTTP API: the run reads and reports, and moves no money.
    Auditor,
    /// `paygate reconcile`, which an operator runs with access to the database.
    CommandLine,
}

impl RunBy {
    /// Admin keys and the command line apply recoveries; an auditor's run only reports them.
    pub fn applies_recoveries(self) -> bool {
        match self {
            RunBy::Admin | RunBy::CommandLine => true,
            RunBy::Auditor => false,
        }
    }
}

/// Reconciles `statement` against paygate's records of `bank` for the business day `date`; the
/// run is recorded in the audit trail as done by `actor`, in its own transaction.
///
/// The statement is read from its start on each attempt: a run that loses a deadlock or a
/// serialization conflict is run again, at most [`RUN_ATTEMPTS`] times in all.
pub async fn run(
    pool: &Pool,
    bank: &BankCode,
    date: Date,
    statement: std::fs::File,
    progress: Option<Progress>,
    by: RunBy,
    actor: &Actor,
) -> Result<Run, ReconcileError> {
    let known: i64 = pool
        .get()
        .await?
        .query_one(
            "SELECT count(*) FROM banks WHERE code = $1",
            &[&bank.as_str()],
        )
        .await?
        .get(0);
    if known == 0 {
        return Err(ReconcileError::UnknownBank(bank.clone()));
    }
    let progress: Option<Arc<dyn Fn(u64) + Send + Sync>> = progress.map(Arc::from);
    // Each attempt reads the file from its start at offsets of its own, so that a failed
    // attempt's parser, still winding down on its thread, cannot move the next one's position.
    let statement = Arc::new(statement);
    let mut attempt = 1;
    loop {
        let attempt_result = run_once(
            pool,
            bank,
            date,
            statement.clone(),
            progress.clone(),
            by,
            actor,
        )
        .await;
        match attempt_result {
            Err(err) if attempt < RUN_ATTEMPTS && err.is_retriable() => {
                tracing::warn!(
                    bank = %bank,
                    attempt,
                    error = %err,
                    "reconciliation run lost a conflict; running it again"
                );
                let backoff_ms = RUN_RETRY_BACKOFF_MS * u64::from(attempt);
                tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// One attempt of a run, in one transaction: it records the whole run or, failing, nothing.
async fn run_once(
    pool: &Pool,
    bank: &BankCode,
    date: Date,
    statement: Arc<std::fs::File>,
    progress: Option<Arc<dyn Fn(u64) + Send + Sync>>,
    by: RunBy,
    actor: &Actor,
) -> Result<Run, ReconcileError> {
    let reader = tokio::task::spawn_blocking(move || {
        StatementReader::new(CountingReader {
            inner: statement,
            read: 0,
            progress,
        })
    })
    .await
    .map_err(|err| ReconcileError::Internal(err.into()))??;

    let mut client = pool.get().await?;
    let mut transaction = client.transaction().await?;
    // Sorting and hashing a million lines in memory instead of on disk halves the run; the
    // memory is the server's, for this one transaction. The pool's timeouts are meant for
    // requests; the run replaces them with its own for this transaction only. Compiling its
    // few large statements to machine code (JIT) would cost more than it saves: about 0.4 s
    // each, measured on a million lines.
    transaction
        .batch_execute(&format!(
            "SET LOCAL work_mem = '{RUN_WORK_MEM_MB}MB';
             SET LOCAL jit = off;
             SET LOCAL statement_timeout = {RUN_STATEMENT_TIMEOUT_MS};
             SET LOCAL lock_timeout = {RUN_LOCK_TIMEOUT_MS};
             SET LOCAL idle_in_transaction_session_timeout = {RUN_STATEMENT_TIMEOUT_MS};"
        ))
        .await?;
    // The only copies of the statement a run makes besides its items: temporary tables, which
    // write no WAL and vanish with the transaction, whether it commits or fails.
    transaction
        .batch_execute(
            "CREATE TEMPORARY TABLE statement_lines (
                 line integer NOT NULL, bank_txn_id text, payment_id text, amount numeric(15, 0),
                 currency text, paid_at timestamptz, error text) ON COMMIT DROP;
             CREATE TEMPORARY TABLE unstated (
                 bank_txn_id text NOT NULL, payment_id text NOT NULL,
                 amount numeric(15, 0) NOT NULL, paid_at timestamptz NOT NULL) ON COMMIT DROP;
             CREATE TEMPORARY TABLE recoverable_lines (
                 line integer NOT NULL, bank_txn_id text NOT NULL, payment_id text NOT NULL,
                 amount numeric(15, 0) NOT NULL, currency text NOT NULL,
                 paid_at timestamptz NOT NULL) ON COMMIT DROP;",
        )
        .await?;
    let started = std::time::Instant::now();
    let phase = |name: &str| {
        tracing::info!(
            phase = name,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "reconciliation phase done"
        )
    };
    let copied = copy_statement(&transaction, reader).await?;
    let statement_lines = copied.lines;
    phase("copy");
    transaction.batch_execute("ANALYZE statement_lines").await?;

    let run_id = RunId::generate();
    let run_seq: i64 = transaction
        .query_one(
            "INSERT INTO reconciliation_runs (id, bank_code, date, statement_lines, summary, by_obligation)
             VALUES ($1, $2, $3, $4, '{}', '{}') RETURNING seq",
            &[&run_id.as_str(), &bank.as_str(), &date, &statement_lines],
        )
        .await?
        .get(0);
    let new_run = NewRun {
        id: &run_id,
        seq: run_seq,
    };
    let mut tally = classify(&transaction, new_run, bank, date).await?;
    phase("classify");
    if by.applies_recoveries() {
        recover(&mut transaction, new_run, bank, date, &mut tally).await?;
    }
    phase("recover");
    missing_in_bank(
        &transaction,
        new_run,
        bank,
        date,
        copied.last_line,
        &mut tally,
    )
    .await?;
    phase("missing_in_bank");
    // The run's differences open cases, and what it matched closes the cases of earlier gaps,
    // in the run's transaction: a run that fails leaves no case behind, and a rerun opens
    // nothing new.
    crate::cases::opening::reconcile_run(&transaction, new_run, bank).await?;
    phase("cases");
    let (summary, by_obligation) = tally.totals(&transaction).await?;
    // Written as JSON in their documented order (the columns are `json`, which keeps it).
    let summary =
        serde_json::to_value(&summary).map_err(|err| ReconcileError::Internal(err.into()))?;
    let by_obligation =
        serde_json::to_value(&by_obligation).map_err(|err| ReconcileError::Internal(err.into()))?;
    let row = transaction
        .query_one(
            &format!(
                "UPDATE reconciliation_runs SET summary = $2, by_obligation = $3 WHERE id = $1
                 RETURNING {RUN_COLUMNS}"
            ),
            &[&run_id.as_str(), &summary, &by_obligation],
        )
        .await?;
    // Last, right before the commit (see `crate::audit`): the run and its entry land together.
    let detail = serde_json::json!({
        "bank": bank.as_str(),
        "date": date.to_string(),
        "statement_lines": statement_lines,
        "applies_recoveries": by.applies_recoveries(),
        "summary": summary,
    });
    let target = format!("reconciliation:{run_id}");
    audit::record(
        &transaction,
        actor,
        Action::ReconciliationRun,
        &target,
        detail,
    )
    .await?;
    transaction.commit().await?;
    phase("commit");
    let run = Run::from_row(&row);
    tracing::info!(run_id = %run.id, bank = %bank, date = %run.date, lines = statement_lines, "reconciliation run recorded");
    Ok(run)
}

/// The business day in Vietnam time (UTC+07:00) as a half-open UTC interval.
pub fn business_day(date: Date) -> (OffsetDateTime, OffsetDateTime) {
    let offset = time::UtcOffset::from_hms(7, 0, 0).expect("UTC+07:00 is a valid offset");
    let start = date.midnight().assume_offset(offset);
    (start, start + time::Duration::days(1))
}

/// Reads the statement from its start by position (never moving the file's own offset), and
/// reports the bytes read so far.
struct CountingReader {
    inner: Arc<std::fs::File>,
    read: u64,
    progress: Option<Arc<dyn Fn(u64) + Send + Sync>>,
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read_at(buf, self.read)?;
        self.read += n as u64;
        if let Some(progress) = &self.progress {
            progress(self.read);
        }
        Ok(n)
    }
}

/// What [`copy_statement`] read.
struct Copied {
    /// Data lines (the header not counted).
    lines: i32,
    /// The file's number of the last data line (1, the header's, when there is none).
    last_line: i32,
}

/// Parses on a blocking thread and COPYs into `statement_lines`. A file-level problem (not
/// UTF-8) aborts the whole run.
async fn copy_statement(
    client: &deadpool_postgres::Transaction<'_>,
    mut reader: StatementReader<CountingReader>,
) -> Result<Copied, ReconcileError> {
    let (sender, mut receiver) =
        mpsc::channel::<Result<Vec<Line>, StatementError>>(CHANNEL_BATCHES);
    let parser = tokio::task::spawn_blocking(move || {
        let mut batch = Vec::with_capacity(BATCH_LINES);
        loop {
            match reader.next_line() {
                Ok(Some(line)) => {
                    batch.push(line);
                    if batch.len() == BATCH_LINES {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_LINES));
                        if sender.blocking_send(Ok(full)).is_err() {
                            return;
                        }
                    }
                }
                Ok(None) => {
                    let _ = sender.blocking_send(Ok(batch));
                    return;
                }
                Err(err) => {
                    let _ = sender.blocking_send(Err(err));
                    return;
                }
            }
        }
    });
    let sink = client
        .copy_in(
            "COPY statement_lines (line, bank_txn_id, payment_id, amount, currency, paid_at, error)
             FROM STDIN (FORMAT binary)",
        )
        .await?;
    let types = [
        Type::INT4,
        Type::TEXT,
        Type::TEXT,
        Type::NUMERIC,
        Type::TEXT,
        Type::TIMESTAMPTZ,
        Type::TEXT,
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    futures_util::pin_mut!(writer);
    let mut lines: i32 = 0;
    let mut last_line: i32 = 1;
    while let Some(batch) = receiver.recv().await {
        for line in batch? {
            lines += 1;
            match line {
                Line::Valid(l) => {
                    last_line = last_line.max(l.line);
                    let amount = l.amount.decimal();
                    writer
                        .as_mut()
                        .write(&[
                            &l.line,
                            &l.bank_txn_id,
                            &l.payment_id,
                            &amount,
                            &l.currency,
                            &l.paid_at,
                            &None::<String>,
                        ])
                        .await?;
                }
                Line::Invalid { line, reason } => {
                    last_line = last_line.max(line);
                    writer
                        .as_mut()
                        .write(&[
                            &line,
                            &None::<String>,
                            &None::<String>,
                            &None::<Decimal>,
                            &None::<String>,
                            &None::<OffsetDateTime>,
                            &Some(reason),
                        ])
                        .await?;
                }
            }
        }
    }
    writer.finish().await?;
    parser
        .await
        .map_err(|err| ReconcileError::Internal(err.into()))?;
    Ok(Copied { lines, last_line })
}

/// Classifies every line of the statement against paygate's records, by `bank_txn_id` whatever
/// day paygate recorded it, and writes each as the run's item in one set-based statement: the
/// lines are read once from the temporary table and written once, into `reconciliation_items`.
///
/// An item's `id` is its line number, so the items need no sort and no sequence to come out in
/// file order, and a line's item is found again by its number (the primary key). A line not yet
/// known to paygate that it could apply is written as `missing_in_gateway` with the detail
/// `recoverable`, which is what a run that may not move money reports; [`recover`] rewrites the
/// few of them it applies. Returns the totals of what was written.
async fn classify(
    client: &deadpool_postgres::Transaction<'_>,
    run: NewRun<'_>,
    bank: &BankCode,
    date: Date,
) -> Result<Tally, ReconcileError> {
    let (day_start, day_end) = business_day(date);
    let rows = client
        .query(
            "WITH repeated AS (
                 SELECT bank_txn_id, min(line) AS first_line FROM statement_lines
                 WHERE error IS NULL GROUP BY bank_txn_id HAVING count(*) > 1
             ),
             lines AS MATERIALIZED (
                 SELECT s.line, s.bank_txn_id, s.payment_id, s.amount AS statement_amount,
                     s.currency, s.paid_at,
                     CASE WHEN s.error IS NOT NULL THEN 'invalid_line'
                          WHEN d.first_line < s.line THEN 'duplicate_in_statement'
                          WHEN c.id IS NULL THEN 'missing_in_gateway'
                          WHEN c.outcome = 'failed' THEN 'mismatch'
                          WHEN c.payment_id = s.payment_id AND c.amount = s.amount THEN 'matched'
                          ELSE 'mismatch' END AS outcome,
                     CASE WHEN d.first_line < s.line THEN NULL ELSE c.amount END AS gateway_amount,
                     CASE WHEN d.first_line < s.line THEN NULL ELSE c.paid_at END AS gateway_paid_at,
                     CASE WHEN d.first_line < s.line THEN NULL
                          WHEN c.outcome = 'paid' AND c.payment_id = s.payment_id
                               AND c.amount = s.amount THEN p.obligation END AS obligation,
                     CASE WHEN s.error IS NOT NULL THEN s.error
                          WHEN d.first_line < s.line THEN 'bank_txn_id already on line ' || d.first_line
                          WHEN c.id IS NULL AND p.id IS NULL THEN 'no such payment'
                          WHEN c.id IS NULL AND p.amount <> s.amount THEN 'amount differs: the order is ' || p.amount
                          WHEN c.id IS NULL AND p.currency <> s.currency THEN 'currency differs: the order is in ' || p.currency
                          WHEN c.id IS NULL THEN 'recoverable'
                          WHEN c.outcome = 'failed' THEN 'paygate recorded this transaction as failed'
                          WHEN c.payment_id <> s.payment_id AND c.amount <> s.amount
                              THEN 'payment_id and amount differ: paygate has ' || c.payment_id || ' ' || c.amount
                          WHEN c.payment_id <> s.payment_id THEN 'payment_id differs: paygate has ' || c.payment_id
                          WHEN c.amount <> s.amount THEN 'amount differs: paygate has ' || c.amount
                          WHEN c.outcome = 'exception' THEN 'in suspense (' || c.exception || ')'
                     END AS detail
                 FROM statement_lines s
                 LEFT JOIN repeated d ON d.bank_txn_id = s.bank_txn_id
                 LEFT JOIN bank_callbacks c ON c.bank_code = $2 AND c.bank_txn_id = s.bank_txn_id
                 -- One join with the orders serves both kinds of line: the order paygate
                 -- credited (whose obligation a match counts) and, for a line paygate does not
                 -- know, the order it names (it can be applied only if the money is the order's).
                 -- A bank knows only orders of its kind: live, or sandbox for a sandbox bank.
                 LEFT JOIN payments p ON p.id = coalesce(c.payment_id, s.payment_id)
                     AND p.sandbox = (SELECT b.sandbox FROM banks b WHERE b.code = $2)
             ),
             written AS (
                 INSERT INTO reconciliation_items (id, run_seq, outcome, line, bank_txn_id,
                     payment_id, statement_amount, gateway_amount, obligation, detail)
                 OVERRIDING SYSTEM VALUE
                 SELECT line, $5, outcome, line, bank_txn_id, payment_id, statement_amount,
                        gateway_amount, obligation, detail
                 FROM lines
             ),
             -- Only matches of another day's records need remembering: a record of this day
             -- that this run matched is found among this run's items by a later run of the same
             -- day. (Recording every match would write a million index entries per run.)
             elsewhere AS (
                 INSERT INTO reconciled_transactions (bank_code, bank_txn_id, run_id)
                 SELECT $2, bank_txn_id, $1 FROM lines
                 WHERE outcome = 'matched' AND NOT (gateway_paid_at >= $3 AND gateway_paid_at < $4)
                 ON CONFLICT DO NOTHING
             ),
             recoverable AS (
                 INSERT INTO recoverable_lines (line, bank_txn_id, payment_id, amount, currency, paid_at)
                 SELECT line, bank_txn_id, payment_id, statement_amount, currency, paid_at
                 FROM lines WHERE outcome = 'missing_in_gateway' AND detail = 'recoverable'
             )
             SELECT outcome, obligation, count(*), coalesce(sum(statement_amount), 0)
             FROM lines GROUP BY outcome, obligation",
            &[&run.id.as_str(), &bank.as_str(), &day_start, &day_end, &run.seq],
        )
        .await?;
    let mut tally = Tally::default();
    for row in &rows {
        tally.add(row.get(0), row.get(1), Totals::new(row.get(2), row.get(3)))?;
    }
    Ok(tally)
}

/// Applies each line that [`classify`] found recoverable exactly as a `succeeded` callback with
/// its `bank_txn_id` would be (an accepted payment, or an exception into suspense), in the
/// run's transaction: the run records them all or, if it fails, none. Plain first payments of
/// pending orders are written together, as a batch of callbacks is; each other line runs in a
/// savepoint of its own. The
/// constraints that make a callback exactly-once hold here too, so a bank's callback racing the
/// run is posted once. Each applied line's item is rewritten with what happened to it.
async fn recover(
    client: &mut deadpool_postgres::Transaction<'_>,
    run: NewRun<'_>,
    bank: &BankCode,
    date: Date,
    tally: &mut Tally,
) -> Result<(), ReconcileError> {
    let (day_start, day_end) = business_day(date);
    let mut after: i32 = 0;
    loop {
        let rows = client
            .query(
                "SELECT line, bank_txn_id, payment_id, amount, currency, paid_at
                 FROM recoverable_lines WHERE line > $1 ORDER BY line LIMIT $2",
                &[&after, &RECOVERY_BATCH_ROWS],
            )
            .await?;
        let Some(last) = rows.last() else {
            return Ok(());
        };
        after = last.get(0);
        let mut lines = Vec::with_capacity(rows.len());
        let mut outcomes = Vec::with_capacity(rows.len());
        let mut details: Vec<Option<String>> = Vec::with_capacity(rows.len());
        let mut credited = Vec::with_capacity(rows.len());
        let mut elsewhere = Vec::with_capacity(rows.len());
        let mut recoverable = Vec::with_capacity(rows.len());
        for row in &rows {
            let amount: Decimal = row.get(3);
            let paid_at: OffsetDateTime = row.get(5);
            recoverable.push(Callback {
                bank_txn_id: BankTxnId::from_trusted(row.get(1)),
                payment_id: PaymentId::from_trusted(row.get(2)),
                amount: Amount::from_decimal(amount).ok_or_else(|| {
                    ReconcileError::Internal(anyhow::anyhow!(
                        "the statement amount {amount} was read as an Amount yet is not one"
                    ))
                })?,
                currency: row.get(4),
                status: CallbackStatus::Succeeded { paid_at },
                failure_reason: None,
            });
        }
        // The plain first payments of pending orders at once, as a batch of callbacks is
        // (one statement per table); each of the others alone, in its own savepoint.
        let together: Vec<(&BankCode, &Callback)> = recoverable
            .iter()
            .map(|callback| (bank, callback))
            .collect();
        let paid_together =
            crate::banks::group_commit::pay_in_bulk(client, &together, Source::Reconciliation)
                .await?;
        for ((row, callback), paid) in rows.iter().zip(&recoverable).zip(paid_together) {
            let paid_at: OffsetDateTime = row.get(5);
            let applied = if paid {
                Ok(CallbackOutcome::Accepted {
                    payment_id: callback.payment_id.clone(),
                    payment_status: crate::payments::model::PaymentStatus::Paid,
                })
            } else {
                callbacks::process_on(client, bank, callback, Source::Reconciliation).await
            };
            let (outcome, detail, paid) = match applied {
                Ok(CallbackOutcome::Accepted { .. }) => (Outcome::Recovered, None, true),
                Ok(CallbackOutcome::Exception { reason, .. }) => (
                    Outcome::Recovered,
                    Some(format!(
                        "applied as an exception ({}): the money is in suspense",
                        reason.as_str()
                    )),
                    false,
                ),
                Ok(CallbackOutcome::Duplicate { .. }) => (
                    Outcome::Matched,
                    Some("a callback arrived during the run".to_owned()),
                    false,
                ),
                // The order or its amount changed since the lines were classified.
                Err(err @ (CallbackError::PaymentNotFound(_) | CallbackError::AmountMismatch)) => {
                    (Outcome::MissingInGateway, Some(err.to_string()), false)
                }
                // Anything else (the database, a lock wait) fails the whole run: nothing is
                // recorded, and running it again is safe.
                Err(err) => return Err(err.into()),
            };
            lines.push(row.get::<_, i32>(0));
            outcomes.push(outcome.as_str());
            details.push(detail);
            credited.push(paid);
            // The line's own time is the record's now: a record of another day is remembered
            // as matched, as [`classify`] does for the lines it matched.
            elsewhere.push(paid_at < day_start || paid_at >= day_end);
        }
        let changed = client
            .query(
                "WITH changed AS (
                     UPDATE reconciliation_items i SET outcome = r.outcome, detail = r.detail,
                         gateway_amount = CASE WHEN r.outcome IN ('recovered', 'matched')
                                               THEN i.statement_amount END,
                         obligation = CASE WHEN r.credited THEN
                             (SELECT p.obligation FROM payments p WHERE p.id = i.payment_id) END
                     FROM unnest($2::int[], $3::text[], $4::text[], $5::bool[], $6::bool[])
                          AS r(line, outcome, detail, credited, elsewhere)
                     WHERE i.run_seq = $8 AND i.id = r.line
                     RETURNING i.outcome, i.obligation, i.statement_amount, i.bank_txn_id, r.elsewhere
                 ),
                 remembered AS (
                     INSERT INTO reconciled_transactions (bank_code, bank_txn_id, run_id)
                     SELECT $7, bank_txn_id, $1 FROM changed
                     WHERE outcome IN ('matched', 'recovered') AND elsewhere
                     ON CONFLICT DO NOTHING
                 )
                 SELECT outcome, obligation, statement_amount FROM changed",
                &[
                    &run.id.as_str(),
                    &lines,
                    &outcomes,
                    &details,
                    &credited,
                    &elsewhere,
                    &bank.as_str(),
                    &run.seq,
                ],
            )
            .await?;
        if changed.len() != rows.len() {
            return Err(ReconcileError::Internal(anyhow::anyhow!(
                "{} recoverable lines were applied but {} of their items rewritten",
                rows.len(),
                changed.len()
            )));
        }
        for row in &changed {
            let amount = Totals::new(1, row.get(2));
            tally.remove(Outcome::MissingInGateway, None, amount)?;
            tally.add(row.get(0), row.get(1), amount)?;
        }
    }
}

/// Writes paygate's records of the day that no statement carried, after every line (their
/// `id`s follow the last line's number), oldest first.
async fn missing_in_bank(
    client: &deadpool_postgres::Transaction<'_>,
    run: NewRun<'_>,
    bank: &BankCode,
    date: Date,
    last_line: i32,
    tally: &mut Tally,
) -> Result<(), ReconcileError> {
    let (day_start, day_end) = business_day(date);
    let after = i64::from(last_line);
    // First the day's records that no line of this statement carried and no other day's
    // statement matched: the gaps, few, found against the statement's own lines.
    client
        .execute(
            "INSERT INTO unstated (bank_txn_id, payment_id, amount, paid_at)
             SELECT c.bank_txn_id, c.payment_id, c.amount, c.paid_at
             FROM bank_callbacks c
             WHERE c.bank_code = $1 AND c.outcome IN ('paid', 'exception')
               AND c.paid_at >= $2 AND c.paid_at < $3
               AND NOT EXISTS (SELECT 1 FROM statement_lines s WHERE s.bank_txn_id = c.bank_txn_id)
               -- Carried by another day's statement (a timing difference, not a gap).
               AND NOT EXISTS (SELECT 1 FROM reconciled_transactions r
                               WHERE r.bank_code = c.bank_code AND r.bank_txn_id = c.bank_txn_id)",
            &[&bank.as_str(), &day_start, &day_end],
        )
        .await?;
    // Then those an earlier run of this day matched. The earlier runs' items are read in one
    // pass filtered by the gaps' ids, never joined with them: those items were committed
    // moments ago, perhaps before the planner's statistics counted them, and a plan built on
    // "a handful of items" would read a million of them once per gap (seen: minutes).
    let gaps: Vec<String> = client
        .query("SELECT bank_txn_id FROM unstated", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let earlier: Vec<i64> = client
        .query(
            "SELECT seq FROM reconciliation_runs WHERE bank_code = $1 AND date = $2 AND seq <> $3",
            &[&bank.as_str(), &date, &run.seq],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let matched_earlier: Vec<String> = if gaps.is_empty() || earlier.is_empty() {
        Vec::new()
    } else {
        client
            .query(
                "SELECT DISTINCT bank_txn_id FROM reconciliation_items
                 WHERE run_seq = ANY($1) AND outcome IN ('matched', 'recovered')
                   AND bank_txn_id = ANY($2)",
                &[&earlier, &gaps],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect()
    };
    let row = client
        .query_one(
            "WITH written AS (
                 INSERT INTO reconciliation_items (id, run_seq, outcome, line, bank_txn_id,
                     payment_id, statement_amount, gateway_amount, obligation, detail)
                 OVERRIDING SYSTEM VALUE
                 SELECT $2 + row_number() OVER (ORDER BY u.paid_at, u.bank_txn_id), $1,
                        'missing_in_bank', NULL, u.bank_txn_id, u.payment_id, NULL, u.amount, NULL,
                        'paygate recorded this payment at ' || to_char(u.paid_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                        || '; no statement carried it'
                 FROM unstated u
                 WHERE NOT (u.bank_txn_id = ANY($3))
                 RETURNING gateway_amount
             )
             SELECT count(*), coalesce(sum(gateway_amount), 0) FROM written",
            &[&run.seq, &after, &matched_earlier],
        )
        .await?;
    tally.add(
        Outcome::MissingInBank,
        None,
        Totals::new(row.get(0), row.get(1)),
    )
}

/// A run's totals, kept as its items are written (so that a million items are not read back
/// to sum them): count and amount by outcome and, for the matched and recovered items credited
/// to an agency, by obligation. The amount is the statement's, or paygate's for an item no
/// statement line carried.
#[derive(Debug, Default)]
struct Tally(HashMap<(Outcome, Option<String>), Totals>);

impl Tally {
    fn add(
        &mut self,
        outcome: Outcome,
        obligation: Option<String>,
        totals: Totals,
    ) -> Result<(), ReconcileError> {
        let entry = self.0.entry((outcome, obligation)).or_insert(Totals::ZERO);
        *entry = combine(*entry, totals, i64::checked_add, Decimal::checked_add)?;
        Ok(())
    }

    fn remove(
        &mut self,
        outcome: Outcome,
        obligation: Option<String>,
        totals: Totals,
    ) -> Result<(), ReconcileError> {
        let entry = self.0.entry((outcome, obligation)).or_insert(Totals::ZERO);
        let left = combine(*entry, totals, i64::checked_sub, Decimal::checked_sub)?;
        // An item taken out of its first outcome was counted there: the tally never goes
        // below zero.
        if left.count < 0 || left.amount.is_sign_negative() {
            return Err(ReconcileError::Internal(anyhow::anyhow!(
                "the tally of {outcome} went below zero"
            )));
        }
        *entry = left;
        Ok(())
    }

    /// The run's summary (every outcome, zeros included) and its by-obligation totals (every
    /// obligation the catalog lists as active, read in the run's transaction, plus any other
    /// with money in the run).
    async fn totals(
        &self,
        client: &deadpool_postgres::Transaction<'_>,
    ) -> Result<(TotalsBy<Outcome>, TotalsBy<ObligationCode>), ReconcileError> {
        let mut summary = TotalsBy::zeros(Outcome::ALL);
        for outcome in Outcome::ALL {
            let mut sum = Totals::ZERO;
            for ((of, _), totals) in &self.0 {
                if *of == outcome {
                    sum = combine(sum, *totals, i64::checked_add, Decimal::checked_add)?;
                }
            }
            summary.set(outcome, sum);
        }
        let mut credited: HashMap<&str, Totals> = HashMap::new();
        for ((outcome, obligation), totals) in &self.0 {
            if let (Outcome::Matched | Outcome::Recovered, Some(obligation)) = (outcome, obligation)
            {
                let entry = credited.entry(obligation.as_str()).or_insert(Totals::ZERO);
                *entry = combine(*entry, *totals, i64::checked_add, Decimal::checked_add)?;
            }
        }
        let active = client
            .query("SELECT code FROM obligations WHERE active", &[])
            .await?;
        let by_obligation = TotalsBy::of_obligations(
            active
                .iter()
                .map(|row| ObligationCode::from_trusted(row.get::<_, String>(0))),
            credited
                .into_iter()
                .map(|(code, totals)| (ObligationCode::from_trusted(code.to_owned()), totals)),
        );
        Ok((summary, by_obligation))
    }
}

/// `a` and `b` combined by `count` and `amount`, or an internal error on overflow (a run's
/// totals never come near the limits; reaching one means something is broken).
fn combine(
    a: Totals,
    b: Totals,
    count: fn(i64, i64) -> Option<i64>,
    amount: fn(Decimal, Decimal) -> Option<Decimal>,
) -> Result<Totals, ReconcileError> {
    match (count(a.count, b.count), amount(a.amount, b.amount)) {
        (Some(count), Some(amount)) => Ok(Totals::new(count, amount)),
        _ => Err(ReconcileError::Internal(anyhow::anyhow!(
            "a run's totals overflowed"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn admin_keys_and_the_command_line_apply_recoveries_and_auditor_keys_do_not() {
        assert!(RunBy::Admin.applies_recoveries());
        assert!(RunBy::CommandLine.applies_recoveries());
        assert!(!RunBy::Auditor.applies_recoveries());
    }

    #[test]
    fn the_business_day_is_the_calendar_day_in_vietnam_time() {
        let (start, end) = business_day(date!(2026 - 11 - 22));
        assert_eq!(start, datetime!(2026-11-21 17:00 UTC));
        assert_eq!(end, datetime!(2026-11-22 17:00 UTC));
        // 23:30 in Hà Nội on the 22nd is 16:30 UTC: inside.
        let late = datetime!(2026-11-22 16:30 UTC);
        assert!(start <= late && late < end);
    }
}
