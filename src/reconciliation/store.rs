//! The SQL of recorded runs, their items and the daily report. (A run itself is recorded by
//! [`super::engine`], in the one transaction that decides it.)

use deadpool_postgres::Pool;
use rust_decimal::Decimal;
use time::Date;
use tokio_postgres::types::ToSql;

use super::engine::business_day;
use super::error::ReconcileError;
use super::model::{
    AgencyTotal, BankTotal, CaseTotals, DailyReport, Item, Outcome, Run, TotalsBy, RUN_COLUMNS,
};
use crate::db::DbError;
use crate::domain::{BankCode, ObligationCode, RunId, Totals};

/// The run `id`, or [`ReconcileError::RunNotFound`].
pub async fn get_run(pool: &Pool, id: &RunId) -> Result<Run, ReconcileError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            &format!("SELECT {RUN_COLUMNS} FROM reconciliation_runs WHERE id = $1"),
            &[&id.as_str()],
        )
        .await?
        .ok_or_else(|| ReconcileError::RunNotFound(id.clone()))?;
    Ok(Run::from_row(&row))
}

/// Which runs to list: newest first, up to `limit`, below the cursor `before`.
#[derive(Debug)]
pub struct RunFilter {
    pub bank: Option<BankCode>,
    pub date: Option<Date>,
    pub before: Option<i64>,
    pub limit: i64,
}

/// Runs newest first, each with its position, up to `limit + 1` (the extra one tells that a
/// page follows).
pub async fn list_runs(pool: &Pool, filter: &RunFilter) -> Result<Vec<(Run, i64)>, DbError> {
    let bank = filter.bank.as_ref().map(BankCode::as_str);
    let fetch = filter.limit + 1;
    let params: [&(dyn ToSql + Sync); 4] = [&bank, &filter.date, &filter.before, &fetch];
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {RUN_COLUMNS}, seq FROM reconciliation_runs
                 WHERE ($1::text IS NULL OR bank_code = $1) AND ($2::date IS NULL OR date = $2)
                   AND ($3::bigint IS NULL OR seq < $3)
                 ORDER BY seq DESC LIMIT $4"
            ),
            &params,
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| (Run::from_row(row), row.get(7)))
        .collect())
}

/// Ok if the run exists, else [`ReconcileError::RunNotFound`].
pub async fn require_run(pool: &Pool, id: &RunId) -> Result<(), ReconcileError> {
    let client = pool.get().await?;
    let found = client
        .query_opt(
            "SELECT 1 FROM reconciliation_runs WHERE id = $1",
            &[&id.as_str()],
        )
        .await?;
    found
        .map(|_| ())
        .ok_or_else(|| ReconcileError::RunNotFound(id.clone()))
}

fn amount_text(value: Option<Decimal>) -> Option<String> {
    value.map(|v| v.normalize().to_string())
}

/// Up to `limit` items of a run in statement order, after position `after`, optionally of one
/// outcome.
pub async fn fetch_items(
    pool: &Pool,
    run_id: &RunId,
    outcome: Option<Outcome>,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<Item>, DbError> {
    let client = pool.get().await?;
    // The outcome filter is written out for the differences, so that the planner can use
    // their small partial index; `matched` (nearly every item) pages through the primary key.
    let filter = match outcome {
        None => "",
        Some(Outcome::Matched) => "AND outcome = 'matched'",
        Some(_) => "AND outcome <> 'matched' AND outcome = $4",
    };
    let statement = client
        .prepare_cached(&format!(
            "SELECT outcome, line, bank_txn_id, payment_id, statement_amount, gateway_amount, detail, id
             FROM reconciliation_items
             WHERE run_seq = (SELECT seq FROM reconciliation_runs WHERE id = $1)
               AND id > $2 {filter}
             ORDER BY run_seq, id LIMIT $3"
        ))
        .await?;
    let run_id = run_id.as_str();
    let after = after.unwrap_or(0);
    let rows = match outcome {
        Some(outcome) if outcome != Outcome::Matched => {
            client
                .query(&statement, &[&run_id, &after, &limit, &outcome.as_str()])
                .await?
        }
        _ => client.query(&statement, &[&run_id, &after, &limit]).await?,
    };
    Ok(rows
        .iter()
        .map(|row| Item {
            outcome: row.get(0),
            line: row.get(1),
            bank_txn_id: row.get(2),
            payment_id: row.get(3),
            statement_amount: amount_text(row.get(4)),
            gateway_amount: amount_text(row.get(5)),
            detail: row.get(6),
            seq: row.get(7),
        })
        .collect())
}

/// The orders paid on the business day `date` (Vietnam time), in total and by obligation,
/// agency and bank; the refunds completed that day; and the cases opened, resolved and still
/// open. Live money only: sandbox orders, their refunds and the cases of sandbox parties are
/// not counted.
pub async fn daily_report(pool: &Pool, date: Date) -> Result<DailyReport, ReconcileError> {
    let (start, end) = business_day(date);
    let mut client = pool.get().await?;
    // One snapshot for every total, so that they agree with each other.
    let transaction = crate::db::snapshot(&mut client).await?;
    let rows = transaction
        .query(
            "SELECT GROUPING(obligation, agency_code, bank_code) AS level, obligation, agency_code,
                    bank_code, count(*), coalesce(sum(amount), 0)
             FROM payments
             WHERE status = 'paid' AND paid_at >= $1 AND paid_at < $2 AND NOT sandbox
             GROUP BY GROUPING SETS ((), (obligation), (agency_code), (bank_code))
             ORDER BY 1, 2, 3, 4",
            &[&start, &end],
        )
        .await?;
    // A case counts as open at the end of the day unless it was resolved by then; a case whose
    // refund is under way is not resolved yet.
    let others = transaction
        .query_one(
            "WITH live_refunds AS (
                 SELECT r.amount FROM refunds r
                 WHERE r.status = 'completed' AND r.completed_at >= $1 AND r.completed_at < $2
                   AND NOT EXISTS (SELECT 1 FROM banks b WHERE b.code = r.bank_code AND b.sandbox)
             ), live_cases AS (
                 SELECT c.* FROM cases c
                 WHERE NOT EXISTS (SELECT 1 FROM banks b WHERE b.code = c.bank_code AND b.sandbox)
                   AND NOT EXISTS (SELECT 1 FROM agencies a
                                   WHERE a.code = c.agency_code AND a.sandbox)
             )
             SELECT
                 (SELECT count(*) FROM live_refunds),
                 (SELECT coalesce(sum(amount), 0) FROM live_refunds),
                 (SELECT count(*) FROM live_cases WHERE opened_at >= $1 AND opened_at < $2),
                 (SELECT count(*) FROM live_cases
                  WHERE status = 'resolved' AND resolved_at >= $1 AND resolved_at < $2),
                 (SELECT count(*) FROM live_cases
                  WHERE opened_at < $2 AND NOT (status = 'resolved' AND resolved_at < $2))",
            &[&start, &end],
        )
        .await?;
    // The catalog decides which obligations the report lists: every active one, plus any
    // (active or not) that has money that day.
    let active = transaction
        .query("SELECT code FROM obligations WHERE active", &[])
        .await?;
    transaction.commit().await?;
    let mut paid_by_obligation = Vec::new();
    let mut report = DailyReport {
        date: date.to_string(),
        totals: Totals::ZERO,
        by_obligation: TotalsBy::zeros([]),
        by_agency: Vec::new(),
        by_bank: Vec::new(),
        refunds: Totals::new(others.get(0), others.get(1)),
        cases: CaseTotals {
            opened: others.get(2),
            resolved: others.get(3),
            open_at_end: others.get(4),
        },
    };
    for row in &rows {
        let totals = Totals::new(row.get(4), row.get(5));
        let obligation: Option<&str> = row.get(1);
        let agency: Option<String> = row.get(2);
        let bank: Option<String> = row.get(3);
        match (obligation, agency, bank) {
            (Some(obligation), None, None) => {
                paid_by_obligation.push((ObligationCode::from_trusted(obligation), totals));
            }
            (None, Some(agency), None) => report.by_agency.push(AgencyTotal { agency, totals }),
            (None, None, Some(bank)) => report.by_bank.push(BankTotal { bank, totals }),
            _ => report.totals = totals,
        }
    }
    report.by_obligation = TotalsBy::of_obligations(
        active
            .iter()
            .map(|row| ObligationCode::from_trusted(row.get::<_, String>(0))),
        paid_by_obligation,
    );
    Ok(report)
}
