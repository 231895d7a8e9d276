//! The checklists' rows: marking a step, and reading a party's checklist.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use deadpool_postgres::{GenericClient, Pool};
use time::OffsetDateTime;

use super::{AgencyStep, BankStep, Step};
use crate::db::DbError;

/// How stale `last_at` may be: a step recorded more recently than this is not written again
/// (the statement in [`mark`] says the same in SQL).
const LAST_AT_WITHIN: Duration = Duration::from_secs(1);

/// Marks the agencies' steps, in the caller's transaction. An unknown agency marks nothing.
pub async fn mark_agencies(
    client: &impl GenericClient,
    marks: &[(&str, AgencyStep)],
) -> Result<(), tokio_postgres::Error> {
    let mut marks: Vec<(&str, &str)> = marks
        .iter()
        .map(|(code, step)| (*code, step.as_str()))
        .collect();
    mark(
        client,
        "agency_checklist",
        "agency_code",
        "agencies",
        &mut marks,
    )
    .await
}

/// Marks one agency's step, in the caller's transaction.
pub async fn mark_agency(
    client: &impl GenericClient,
    agency: &str,
    step: AgencyStep,
) -> Result<(), tokio_postgres::Error> {
    mark_agencies(client, &[(agency, step)]).await
}

/// Marks the banks' steps, in the caller's transaction. An unknown bank marks nothing.
pub async fn mark_banks(
    client: &impl GenericClient,
    marks: &[(&str, BankStep)],
) -> Result<(), tokio_postgres::Error> {
    let mut marks: Vec<(&str, &str)> = marks
        .iter()
        .map(|(code, step)| (*code, step.as_str()))
        .collect();
    mark(client, "bank_checklist", "bank_code", "banks", &mut marks).await
}

/// One statement for every mark: a step is inserted, or its `last_at` moved on, unless it was
/// recorded less than [`LAST_AT_WITHIN`] ago, in which case its row is not even locked.
async fn mark(
    client: &impl GenericClient,
    table: &str,
    column: &str,
    parties: &str,
    marks: &mut Vec<(&str, &str)>,
) -> Result<(), tokio_postgres::Error> {
    // A statement may not update one row twice.
    marks.sort_unstable();
    marks.dedup();
    if marks.is_empty() {
        return Ok(());
    }
    let (codes, steps): (Vec<&str>, Vec<&str>) = marks.iter().copied().unzip();
    let statement = client
        .prepare_cached(&format!(
            "INSERT INTO {table} AS s ({column}, step, first_at, last_at)
             SELECT k.code, k.step, now(), now()
             FROM unnest($1::text[], $2::text[]) AS k (code, step)
             WHERE EXISTS (SELECT 1 FROM {parties} p WHERE p.code = k.code)
               AND NOT EXISTS (SELECT 1 FROM {table} c
                               WHERE c.{column} = k.code AND c.step = k.step
                                 AND c.last_at > now() - interval '1 second')
             ORDER BY 1, 2
             ON CONFLICT ({column}, step)
             DO UPDATE SET last_at = greatest(s.last_at, excluded.last_at)"
        ))
        .await?;
    client.execute(&statement, &[&codes, &steps]).await?;
    Ok(())
}

/// The steps this process has recorded (committed) in the last second, so that a busy path
/// skips a mark whose row it has just written: a callback batch or an order batch then costs no
/// checklist statement at all, and a request that changes nothing else (an inquiry, a refused
/// signature) no write. A step enters it only once its row is committed, so that a rolled-back
/// mark is never taken for a recorded one. Bounded by the number of parties times their steps.
#[derive(Default)]
pub struct Recent {
    seen: Mutex<HashMap<(bool, String, &'static str), Instant>>,
}

impl Recent {
    /// The marks not recorded by this process in the last second.
    pub fn unrecorded<'a, S: Step>(&self, marks: &[(&'a str, S)]) -> Vec<(&'a str, S)> {
        let now = Instant::now();
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        marks
            .iter()
            .filter(|(code, step)| {
                seen.get(&(S::BANK, (*code).to_owned(), step.name()))
                    .is_none_or(|at| now.duration_since(*at) >= LAST_AT_WITHIN)
            })
            .copied()
            .collect()
    }

    /// Remembers marks whose transaction has committed.
    pub fn recorded<S: Step>(&self, marks: &[(&str, S)]) {
        if marks.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        for (code, step) in marks {
            seen.insert((S::BANK, (*code).to_owned(), step.name()), now);
        }
    }

    /// Marks a bank's step by a statement of its own. A failure is logged and otherwise
    /// ignored: the request it belongs to has its answer already.
    pub async fn note_bank(&self, pool: &Pool, bank: &str, step: BankStep) {
        let marks = self.unrecorded(&[(bank, step)]);
        if marks.is_empty() {
            return;
        }
        let marked = async {
            let client = pool.get().await?;
            mark_banks(&client, &marks).await?;
            Ok::<(), DbError>(())
        };
        match marked.await {
            Ok(()) => self.recorded(&marks),
            Err(err) => {
                tracing::warn!(error = %err, bank, step = step.as_str(), "checklist step not recorded")
            }
        }
    }

    /// Marks an agency's step by a statement of its own (see [`Recent::note_bank`]).
    pub async fn note_agency(&self, pool: &Pool, agency: &str, step: AgencyStep) {
        let marks = self.unrecorded(&[(agency, step)]);
        if marks.is_empty() {
            return;
        }
        let marked = async {
            let client = pool.get().await?;
            mark_agencies(&client, &marks).await?;
            Ok::<(), DbError>(())
        };
        match marked.await {
            Ok(()) => self.recorded(&marks),
            Err(err) => {
                tracing::warn!(error = %err, agency, step = step.as_str(), "checklist step not recorded")
            }
        }
    }
}

/// A step as a checklist shows it.
pub struct StepRow {
    pub step: &'static str,
    pub first_at: Option<OffsetDateTime>,
    pub last_at: Option<OffsetDateTime>,
}

/// A party's checklist: whether it is a sandbox party, and every step in order, done or not;
/// `None` when there is no such party.
pub async fn read(
    pool: &Pool,
    bank: bool,
    code: &str,
) -> Result<Option<(bool, Vec<StepRow>)>, DbError> {
    let client = pool.get().await?;
    let (parties, table, column) = if bank {
        ("banks", "bank_checklist", "bank_code")
    } else {
        ("agencies", "agency_checklist", "agency_code")
    };
    let Some(party) = client
        .query_opt(
            &format!("SELECT sandbox FROM {parties} WHERE code = $1"),
            &[&code],
        )
        .await?
    else {
        return Ok(None);
    };
    let rows = client
        .query(
            &format!("SELECT step, first_at, last_at FROM {table} WHERE {column} = $1"),
            &[&code],
        )
        .await?;
    let done: HashMap<String, (OffsetDateTime, OffsetDateTime)> = rows
        .iter()
        .map(|row| (row.get(0), (row.get(1), row.get(2))))
        .collect();
    let names: Vec<&'static str> = if bank {
        BankStep::ALL.iter().map(|s| s.as_str()).collect()
    } else {
        AgencyStep::ALL.iter().map(|s| s.as_str()).collect()
    };
    let steps = names
        .into_iter()
        .map(|step| {
            let times = done.get(step);
            StepRow {
                step,
                first_at: times.map(|t| t.0),
                last_at: times.map(|t| t.1),
            }
        })
        .collect();
    Ok(Some((party.get(0), steps)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_is_skipped_only_after_its_commit_and_only_for_its_party() {
        let recent = Recent::default();
        let marks = [
            ("VCB", BankStep::CallbackAccepted),
            ("BIDV", BankStep::CallbackAccepted),
        ];
        // Nothing committed yet: every mark is written.
        assert_eq!(recent.unrecorded(&marks).len(), 2);
        recent.recorded(&marks[..1]);
        assert_eq!(
            recent.unrecorded(&marks),
            [("BIDV", BankStep::CallbackAccepted)]
        );
        // Another step of the same bank, and an agency of the same code, are their own.
        assert_eq!(recent.unrecorded(&[("VCB", BankStep::Inquiry)]).len(), 1);
        assert_eq!(
            recent
                .unrecorded(&[("VCB", AgencyStep::OrderCreated)])
                .len(),
            1
        );
    }
}
