//! Cases that paygate opens and resolves by itself, each in the transaction of what caused it:
//! a callback kept for investigation or taken into suspense, a reconciliation run's
//! differences, a later run that matches what an earlier one missed, an order paid while an
//! inquiry about it was open.
//!
//! At most one case exists per (`kind`, bank, `bank_txn_id`) (the unique index
//! `cases_one_per_bank_txn`): every insert here is `ON CONFLICT DO NOTHING`, so a redelivered
//! callback or a rerun opens nothing new. None of these is an audit entry: no operator acted,
//! and the case itself records that paygate opened it.

use deadpool_postgres::GenericClient;
use serde_json::Value;

use super::model::{actor_json, CaseKind};
use crate::audit::Actor;
use crate::domain::{AgencyCode, Amount, BankCode, BankTxnId, PaymentId};
use crate::ledger::exceptions::Reason;

/// A new case id, `cas_<hex>`, as paygate makes every id.
pub fn new_case_id() -> String {
    crate::domain::ids::random_id("cas", 12)
}

/// The case kind of a callback exception.
fn kind_of(reason: Reason) -> CaseKind {
    match reason {
        Reason::DoublePayment => CaseKind::DoublePayment,
        Reason::OrderClosed => CaseKind::OrderClosed,
        Reason::PaymentNotFound => CaseKind::PaymentNotFound,
        Reason::AmountMismatch => CaseKind::AmountMismatch,
    }
}

/// What a callback exception tells about the case it opens.
pub struct ExceptionCase<'a> {
    pub reason: Reason,
    pub bank: &'a BankCode,
    pub bank_txn_id: &'a BankTxnId,
    pub payment_id: &'a PaymentId,
    /// The order's agency, when the order exists.
    pub agency: Option<&'a AgencyCode>,
    pub amount: Amount,
}

/// Opens the case of a callback exception that was just recorded on `client`'s transaction,
/// naming that exception; nothing when the same difference has a case already.
pub async fn open_for_exception(
    client: &impl GenericClient,
    case: &ExceptionCase<'_>,
) -> Result<(), tokio_postgres::Error> {
    let statement = client
        .prepare_cached(
            "INSERT INTO cases (id, kind, agency_code, bank_code, bank_txn_id, payment_id, amount,
                 exception_id, opened_by)
             SELECT $1, $2, $3, $4, $5, $6, $7,
                    (SELECT e.id FROM callback_exceptions e
                     WHERE e.bank_code = $4 AND e.bank_txn_id = $5 AND e.reason = $2
                     ORDER BY e.id DESC LIMIT 1),
                    $8
             ON CONFLICT DO NOTHING",
        )
        .await?;
    let opened_by = actor_json(&Actor::system());
    client
        .execute(
            &statement,
            &[
                &new_case_id(),
                &kind_of(case.reason).as_str(),
                &case.agency.map(AgencyCode::as_str),
                &case.bank.as_str(),
                &case.bank_txn_id.as_str(),
                &case.payment_id.as_str(),
                &case.amount.decimal(),
                &opened_by,
            ],
        )
        .await?;
    Ok(())
}

/// Resolves the open inquiries about `payment_id` as `paid`, in the transaction that paid it.
pub async fn resolve_paid_inquiries(
    client: &impl GenericClient,
    payment_id: &PaymentId,
) -> Result<(), tokio_postgres::Error> {
    let statement = client
        .prepare_cached(
            "UPDATE cases SET status = 'resolved', resolution = 'paid', resolved_at = now(),
                 resolved_by = $2, resolution_note = 'the order was paid'
             WHERE payment_id = $1 AND kind = 'inquiry' AND status = 'open'",
        )
        .await?;
    let system = actor_json(&Actor::system());
    client
        .execute(&statement, &[&payment_id.as_str(), &system])
        .await?;
    Ok(())
}

/// [`resolve_paid_inquiries`] for several orders paid in one transaction, in one statement.
pub async fn resolve_paid_inquiries_of(
    client: &impl GenericClient,
    payment_ids: &[&str],
) -> Result<(), tokio_postgres::Error> {
    let statement = client
        .prepare_cached(
            "UPDATE cases SET status = 'resolved', resolution = 'paid', resolved_at = now(),
                 resolved_by = $2, resolution_note = 'the order was paid'
             WHERE payment_id = ANY($1) AND kind = 'inquiry' AND status = 'open'",
        )
        .await?;
    let system = actor_json(&Actor::system());
    client.execute(&statement, &[&payment_ids, &system]).await?;
    Ok(())
}

/// A reconciliation run's part in cases, in the run's transaction once its items are written:
/// the open `missing_in_bank` (and `missing_in_gateway`) cases of `bank` whose transaction this
/// run matched or recovered resolve themselves (`matched_later`), and each of its
/// `missing_in_gateway`, `missing_in_bank` and `mismatch` items opens a case unless that
/// difference has one already.
pub async fn reconcile_run(
    client: &impl GenericClient,
    run: crate::reconciliation::model::NewRun<'_>,
    bank: &BankCode,
) -> Result<(), tokio_postgres::Error> {
    let system: Value = actor_json(&Actor::system());
    // A `missing_in_gateway` case resolves too: an auditor's run reports a line it may not
    // recover as missing, and the admin's run that recovers it clears that difference.
    //
    // The open cases' transactions are read first (their partial index answers at once), then
    // the run's items are filtered by them in one pass, and only then are the cases updated.
    // Never a join of the cases with the items: the run's items were written by this very
    // transaction, so the planner's statistics do not know them and may take a million items
    // for a handful, choosing to read them all once per open case (seen: minutes instead of a
    // fraction of a second on a rerun of a million-line statement).
    let open: Vec<String> = client
        .query(
            "SELECT DISTINCT bank_txn_id FROM cases WHERE status = 'open' AND bank_code = $1
                 AND kind IN ('missing_in_bank', 'missing_in_gateway')",
            &[&bank.as_str()],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    if !open.is_empty() {
        let matched: Vec<String> = client
            .query(
                "SELECT DISTINCT bank_txn_id FROM reconciliation_items
                 WHERE run_seq = $1 AND outcome IN ('matched', 'recovered')
                   AND bank_txn_id = ANY($2)",
                &[&run.seq, &open],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        client
            .execute(
                "UPDATE cases SET status = 'resolved', resolution = 'matched_later',
                     resolved_at = now(), resolved_by = $3,
                     resolution_note = 'reconciliation run ' || $1 || ' matched this transaction'
                 WHERE status = 'open' AND bank_code = $2
                   AND kind IN ('missing_in_bank', 'missing_in_gateway')
                   AND bank_txn_id = ANY($4)",
                &[&run.id.as_str(), &bank.as_str(), &system, &matched],
            )
            .await?;
    }
    // The differences, through their small partial index (`outcome <> 'matched'`). The amount
    // is the bank's for a statement line and paygate's for a record no statement carried; the
    // agency is the order's, when the item names an order that exists. Case ids are made here
    // from random bytes, as every id paygate makes (`gen_random_uuid` is the server's source of
    // 122 random bits).
    client
        .execute(
            "INSERT INTO cases (id, kind, agency_code, bank_code, bank_txn_id, payment_id, amount,
                 run_id, opened_by)
             SELECT 'cas_' || replace(gen_random_uuid()::text, '-', ''), i.outcome, p.agency_code,
                    $2, i.bank_txn_id, i.payment_id,
                    CASE WHEN i.outcome = 'missing_in_bank' THEN i.gateway_amount
                         ELSE i.statement_amount END,
                    $1, $3
             FROM reconciliation_items i
             LEFT JOIN payments p ON p.id = i.payment_id
             WHERE i.run_seq = $4 AND i.outcome <> 'matched'
               AND i.outcome IN ('missing_in_gateway', 'missing_in_bank', 'mismatch')
               AND i.bank_txn_id IS NOT NULL
             ORDER BY i.id
             ON CONFLICT DO NOTHING",
            &[&run.id.as_str(), &bank.as_str(), &system, &run.seq],
        )
        .await?;
    Ok(())
}
