//! The SQL of the case endpoints: reading cases, opening inquiries, notes, and the resolutions
//! with their approval. Each change is one transaction whose last statement is its audit entry.

use deadpool_postgres::{GenericClient, Pool, Transaction};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio_postgres::types::ToSql;

use super::model::{
    actor_json, Case, CaseError, CaseKind, CaseStatus, Note, Resolution, CASE_COLUMNS,
};
use super::opening::{new_case_id, resolve_paid_inquiries};
use crate::audit::{self, Action, Actor};
use crate::checklist::{self, AgencyStep};
use crate::db::error::violated_constraint;
use crate::db::DbError;
use crate::domain::{AgencyCode, Amount, BankCode, BankTxnId, PaymentId};
use crate::ledger::{self, Book, Entry, Kind, Posting, Source};
use crate::notifications::outbox::EventType;
use crate::payments::model::{Payment, PaymentStatus, PAYMENT_COLUMNS};
use crate::payments::store::record_event;

/// Filters of `GET /v1/cases`.
#[derive(Debug, Default)]
pub struct ListFilter {
    pub status: Option<CaseStatus>,
    pub kind: Option<CaseKind>,
    pub bank: Option<BankCode>,
    pub agency: Option<AgencyCode>,
    pub payment_id: Option<String>,
    /// Only cases older than this position (exclusive).
    pub before: Option<i64>,
    pub limit: i64,
}

/// Cases newest first, up to `limit + 1` (the extra one tells that a page follows).
pub async fn list(pool: &Pool, filter: &ListFilter) -> Result<Vec<Case>, DbError> {
    let client = pool.get().await?;
    let status = filter.status.map(CaseStatus::as_str);
    let kind = filter.kind.map(CaseKind::as_str);
    let bank = filter.bank.as_ref().map(BankCode::as_str);
    let agency = filter.agency.as_ref().map(AgencyCode::as_str);
    let fetch = filter.limit + 1;
    let params: [&(dyn ToSql + Sync); 7] = [
        &status,
        &kind,
        &bank,
        &agency,
        &filter.payment_id,
        &filter.before,
        &fetch,
    ];
    let rows = client
        .query(
            &format!(
                "SELECT {CASE_COLUMNS} FROM cases c
                 WHERE ($1::text IS NULL OR c.status = $1) AND ($2::text IS NULL OR c.kind = $2)
                   AND ($3::text IS NULL OR c.bank_code = $3)
                   AND ($4::text IS NULL OR c.agency_code = $4)
                   AND ($5::text IS NULL OR c.payment_id = $5)
                   AND ($6::bigint IS NULL OR c.seq < $6)
                 ORDER BY c.seq DESC LIMIT $7"
            ),
            &params,
        )
        .await?;
    let mut cases: Vec<Case> = rows.iter().map(Case::from_row).collect();
    add_notes(&client, &mut cases).await?;
    Ok(cases)
}

/// The case `id`; an agency (`scope`) sees only its own.
pub async fn get(pool: &Pool, id: &str, scope: Option<&AgencyCode>) -> Result<Case, CaseError> {
    let client = pool.get().await?;
    let case = load(&client, id).await?;
    match case {
        Some(case) if visible(&case.agency, scope) => Ok(case),
        _ => Err(CaseError::NotFound(id.to_owned())),
    }
}

/// Whether a case of `agency` is visible to a caller limited to `scope` (an agency key).
fn visible(agency: &Option<String>, scope: Option<&AgencyCode>) -> bool {
    match scope {
        None => true,
        Some(own) => agency.as_deref() == Some(own.as_str()),
    }
}

/// The case `id` with its notes, as the API answers it.
async fn load(client: &impl GenericClient, id: &str) -> Result<Option<Case>, DbError> {
    let row = client
        .query_opt(
            &format!("SELECT {CASE_COLUMNS} FROM cases c WHERE c.id = $1"),
            &[&id],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut cases = [Case::from_row(&row)];
    add_notes(client, &mut cases).await?;
    let [case] = cases;
    Ok(Some(case))
}

/// Adds their notes, oldest first, to `cases` (in one query for a whole page).
async fn add_notes(client: &impl GenericClient, cases: &mut [Case]) -> Result<(), DbError> {
    if cases.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = cases.iter().map(|case| case.id.as_str()).collect();
    let rows = client
        .query(
            "SELECT case_id, at, by, message FROM case_notes WHERE case_id = ANY($1)
             ORDER BY case_id, id",
            &[&ids],
        )
        .await?;
    for row in &rows {
        let case_id: &str = row.get(0);
        if let Some(case) = cases.iter_mut().find(|case| case.id == case_id) {
            case.notes.push(Note {
                at: row.get(1),
                by: row.get(2),
                message: row.get(3),
            });
        }
    }
    Ok(())
}

/// Commits `transaction` after its audit entry, and answers the case as it now stands.
async fn finish(
    transaction: Transaction<'_>,
    id: &str,
    actor: &Actor,
    action: Action,
    detail: Value,
) -> Result<Case, CaseError> {
    let case = load(&transaction, id)
        .await?
        .expect("the case changed in this transaction exists");
    // Last, right before the commit (see `crate::audit`).
    audit::record(&transaction, actor, action, &format!("case:{id}"), detail).await?;
    transaction.commit().await?;
    Ok(case)
}

/// An inquiry as its opener asks it.
#[derive(Debug)]
pub struct NewInquiry {
    pub payment_id: Option<PaymentId>,
    pub bank: Option<BankCode>,
    pub bank_txn_id: Option<BankTxnId>,
    pub message: String,
}

/// Opens an inquiry. An agency (`scope`) asks about one of its own orders; an admin or auditor
/// names an order, a bank or a bank transaction. The agency and the amount are the order's;
/// a bank transaction paygate recorded names its order when no order is named.
pub async fn open_inquiry(
    pool: &Pool,
    inquiry: &NewInquiry,
    scope: Option<&AgencyCode>,
    actor: &Actor,
) -> Result<Case, CaseError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    if let Some(bank) = &inquiry.bank {
        let known = transaction
            .query_opt("SELECT 1 FROM banks WHERE code = $1", &[&bank.as_str()])
            .await?;
        if known.is_none() {
            return Err(CaseError::BankNotFound(bank.to_string()));
        }
    }
    let mut payment_id = inquiry.payment_id.as_ref().map(|id| id.as_str().to_owned());
    if let (None, Some(bank), Some(bank_txn_id)) =
        (&payment_id, &inquiry.bank, &inquiry.bank_txn_id)
    {
        payment_id = transaction
            .query_opt(
                "SELECT payment_id FROM bank_callbacks WHERE bank_code = $1 AND bank_txn_id = $2",
                &[&bank.as_str(), &bank_txn_id.as_str()],
            )
            .await?
            .map(|row| row.get(0));
    }
    let order = match &payment_id {
        None => None,
        Some(id) => {
            let row = transaction
                .query_opt(
                    "SELECT agency_code, amount FROM payments
                     WHERE id = $1 AND ($2::text IS NULL OR agency_code = $2)",
                    &[id, &scope.map(AgencyCode::as_str)],
                )
                .await?
                .ok_or_else(|| CaseError::PaymentNotFound(id.clone()))?;
            Some((row.get::<_, String>(0), row.get::<_, Decimal>(1)))
        }
    };
    let id = new_case_id();
    let (agency, amount) = order.unzip();
    transaction
        .execute(
            "INSERT INTO cases (id, kind, agency_code, bank_code, bank_txn_id, payment_id, amount,
                 message, opened_by)
             VALUES ($1, 'inquiry', $2, $3, $4, $5, $6, $7, $8)",
            &[
                &id,
                &agency,
                &inquiry.bank.as_ref().map(BankCode::as_str),
                &inquiry.bank_txn_id.as_ref().map(BankTxnId::as_str),
                &payment_id,
                &amount,
                &inquiry.message,
                &actor_json(actor),
            ],
        )
        .await?;
    // An agency's own inquiry is a step of its checklist.
    if let Some(agency) = scope {
        checklist::mark_agency(&transaction, agency.as_str(), AgencyStep::InquiryCaseOpened)
            .await?;
    }
    let detail = json!({
        "kind": CaseKind::Inquiry.as_str(),
        "payment_id": payment_id,
        "bank": inquiry.bank.as_ref().map(BankCode::as_str),
        "bank_txn_id": inquiry.bank_txn_id.as_ref().map(BankTxnId::as_str),
    });
    finish(transaction, &id, actor, Action::CaseOpen, detail).await
}

/// Adds a note to the case `id` (an agency only to its own).
pub async fn add_note(
    pool: &Pool,
    id: &str,
    scope: Option<&AgencyCode>,
    message: &str,
    actor: &Actor,
) -> Result<Case, CaseError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let note_id: i64 = transaction
        .query_opt(
            "INSERT INTO case_notes (case_id, by, message)
             SELECT c.id, $3, $4 FROM cases c
             WHERE c.id = $1 AND ($2::text IS NULL OR c.agency_code = $2)
             RETURNING id",
            &[
                &id,
                &scope.map(AgencyCode::as_str),
                &actor_json(actor),
                &message,
            ],
        )
        .await?
        .ok_or_else(|| CaseError::NotFound(id.to_owned()))?
        .get(0);
    let detail = json!({"note_id": note_id, "chars": message.chars().count()});
    finish(transaction, id, actor, Action::CaseNote, detail).await
}

/// A case as a resolution sees it, locked for the transaction.
struct Locked {
    kind: CaseKind,
    status: CaseStatus,
    agency: Option<String>,
    bank: Option<String>,
    bank_txn_id: Option<String>,
    payment_id: Option<String>,
    amount: Option<Decimal>,
    resolution: Option<String>,
    resolved_by: Option<Value>,
    applied_payment_id: Option<String>,
    exception_id: Option<i64>,
}

impl Locked {
    /// The key that chose the pending resolution.
    fn requester_key(&self) -> Option<&str> {
        self.resolved_by
            .as_ref()
            .and_then(|by| by.get("key_id"))
            .and_then(Value::as_str)
    }
}

/// Locks the case `id` (`FOR UPDATE`) so that two resolutions of it are decided one after the
/// other.
async fn lock(transaction: &Transaction<'_>, id: &str) -> Result<Locked, CaseError> {
    let row = transaction
        .query_opt(
            "SELECT kind, status, agency_code, bank_code, bank_txn_id, payment_id, amount,
                    resolution, resolved_by, applied_payment_id, exception_id
             FROM cases WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await?
        .ok_or_else(|| CaseError::NotFound(id.to_owned()))?;
    Ok(Locked {
        kind: CaseKind::parse(row.get(0)).expect("the kind column is constrained"),
        status: CaseStatus::parse(row.get(1)).expect("the status column is constrained"),
        agency: row.get(2),
        bank: row.get(3),
        bank_txn_id: row.get(4),
        payment_id: row.get(5),
        amount: row.get(6),
        resolution: row.get(7),
        resolved_by: row.get(8),
        applied_payment_id: row.get(9),
        exception_id: row.get(10),
    })
}

/// A resolution as an admin chooses it.
#[derive(Debug)]
pub struct ResolveRequest {
    pub resolution: Resolution,
    pub note: String,
    /// `apply`: the pending order that receives the money.
    pub payment_id: Option<PaymentId>,
}

/// Resolves the case `id` as `request` says: `no_action` at once, `refund` by requesting a
/// suspense refund (the case is `resolving` until it ends), `apply` by waiting for a second
/// admin (`pending_approval`).
pub async fn resolve(
    pool: &Pool,
    id: &str,
    request: &ResolveRequest,
    actor: &Actor,
) -> Result<Case, CaseError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let case = lock(&transaction, id).await?;
    match case.status {
        CaseStatus::Open => {}
        CaseStatus::Resolved => return Err(CaseError::Resolved),
        status => return Err(CaseError::InProgress(status.as_str())),
    }
    let by = actor_json(actor);
    let mut detail = json!({"resolution": request.resolution.as_str()});
    match request.resolution {
        Resolution::NoAction => {
            if case.kind.in_suspense() {
                return Err(CaseError::MoneyInSuspense(case.kind.as_str()));
            }
            transaction
                .execute(
                    "UPDATE cases SET status = 'resolved', resolution = 'no_action',
                         resolved_at = now(), resolved_by = $2, resolution_note = $3
                     WHERE id = $1",
                    &[&id, &by, &request.note],
                )
                .await?;
        }
        Resolution::Refund => {
            let money = suspense_money(&case).ok_or_else(|| {
                CaseError::invalid(
                    "resolution",
                    "refund is only for money in suspense (double_payment and order_closed cases)",
                )
            })?;
            let refund_id = crate::refunds::request_suspense(
                &transaction,
                id,
                money.payment_id,
                money.agency,
                money.bank,
                money.bank_txn_id,
                money.amount,
                &request.note,
                actor,
            )
            .await?;
            transaction
                .execute(
                    "UPDATE cases SET status = 'resolving', resolution = 'refund', refund_id = $2,
                         resolved_at = now(), resolved_by = $3, resolution_note = $4
                     WHERE id = $1",
                    &[&id, &refund_id, &by, &request.note],
                )
                .await?;
            detail["refund_id"] = json!(refund_id);
        }
        Resolution::Apply => {
            if case.kind != CaseKind::OrderClosed {
                return Err(CaseError::invalid(
                    "resolution",
                    "apply is only for order_closed cases",
                ));
            }
            let target = request
                .payment_id
                .as_ref()
                .expect("the edge requires payment_id for apply");
            let order = read_order(&transaction, target, false).await?;
            check_target(&transaction, &case, target, order.as_ref()).await?;
            let updated = transaction
                .execute(
                    "UPDATE cases SET status = 'pending_approval', resolution = 'apply',
                         applied_payment_id = $2, resolved_at = now(), resolved_by = $3,
                         resolution_note = $4
                     WHERE id = $1",
                    &[&id, &target.as_str(), &by, &request.note],
                )
                .await;
            match updated {
                Ok(_) => {}
                Err(err) if violated_constraint(&err) == Some("cases_one_apply_per_order") => {
                    return Err(CaseError::invalid(
                        "payment_id",
                        "is already the order of another case's apply",
                    ));
                }
                Err(err) => return Err(err.into()),
            }
            detail["payment_id"] = json!(target.as_str());
        }
    }
    finish(transaction, id, actor, Action::CaseResolve, detail).await
}

/// The money of a case in suspense, as a refund of it needs it.
struct SuspenseMoney<'a> {
    payment_id: &'a str,
    agency: &'a str,
    bank: &'a str,
    bank_txn_id: &'a str,
    amount: Decimal,
}

fn suspense_money(case: &Locked) -> Option<SuspenseMoney<'_>> {
    if !case.kind.in_suspense() {
        return None;
    }
    // The table's checks give a suspense case its bank, transaction, order and amount; the
    // agency is that of the order, which exists (the money went to suspense because of it).
    Some(SuspenseMoney {
        payment_id: case.payment_id.as_deref()?,
        agency: case.agency.as_deref()?,
        bank: case.bank.as_deref()?,
        bank_txn_id: case.bank_txn_id.as_deref()?,
        amount: case.amount?,
    })
}

/// The order `id`, locked when `for_update`.
async fn read_order(
    client: &impl GenericClient,
    id: &PaymentId,
    for_update: bool,
) -> Result<Option<Payment>, DbError> {
    let lock = if for_update { "FOR UPDATE" } else { "" };
    let row = client
        .query_opt(
            &format!("SELECT {PAYMENT_COLUMNS} FROM payments p WHERE p.id = $1 {lock}"),
            &[&id.as_str()],
        )
        .await?;
    Ok(row.map(|row| Payment::from_row(&row)))
}

/// Refuses an `apply` whose order is not a pending order of the case's agency, with the
/// obligation of the case's closed order and the case's amount.
async fn check_target(
    client: &impl GenericClient,
    case: &Locked,
    target: &PaymentId,
    order: Option<&Payment>,
) -> Result<(), CaseError> {
    let Some(order) = order else {
        return Err(CaseError::invalid("payment_id", "names no order"));
    };
    if case.payment_id.as_deref() == Some(order.id.as_str()) {
        return Err(CaseError::invalid(
            "payment_id",
            "is the case's own closed order",
        ));
    }
    let closed_obligation: Option<String> = match &case.payment_id {
        None => None,
        Some(closed) => client
            .query_opt("SELECT obligation FROM payments WHERE id = $1", &[closed])
            .await?
            .map(|row| row.get(0)),
    };
    let agency = case.agency.as_deref().unwrap_or_default();
    if order.agency.as_str() != agency {
        return Err(CaseError::invalid(
            "payment_id",
            format!("must be an order of the case's agency {agency}"),
        ));
    }
    if closed_obligation.as_deref() != Some(order.obligation.as_str()) {
        return Err(CaseError::invalid(
            "payment_id",
            format!(
                "must be an order of the closed order's obligation {}",
                closed_obligation.as_deref().unwrap_or("(unknown)")
            ),
        ));
    }
    if Some(order.amount.decimal()) != case.amount {
        return Err(CaseError::invalid(
            "payment_id",
            format!(
                "must be an order of the case's amount {}",
                case.amount.unwrap_or_default()
            ),
        ));
    }
    if order.status != PaymentStatus::Pending {
        return Err(CaseError::invalid(
            "payment_id",
            format!(
                "must be a pending order; {target} is {}",
                order.status.as_str()
            ),
        ));
    }
    Ok(())
}

/// Approves the `apply` of case `id` (a different admin key than the one that chose it): in one
/// transaction the money moves from `suspense:<BANK>` to the agency's account, the order is
/// paid with the case's bank transaction and its original time of payment, `payment.paid` is
/// recorded for the agency, open inquiries about the order resolve themselves, and the case is
/// resolved. Approving an approved apply answers the case again.
pub async fn approve(pool: &Pool, id: &str, actor: &Actor) -> Result<Case, CaseError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let case = lock(&transaction, id).await?;
    pending_apply(&case, actor)?;
    if case.status == CaseStatus::Resolved {
        // The apply was approved before: nothing to do again.
        return Ok(load(&transaction, id)
            .await?
            .expect("the locked case exists"));
    }
    let target = PaymentId::from_trusted(
        case.applied_payment_id
            .clone()
            .expect("a pending apply names its order (cases_apply_names_order)"),
    );
    let order = read_order(&transaction, &target, true).await?;
    check_target(&transaction, &case, &target, order.as_ref()).await?;
    let order = order.expect("check_target refuses a missing order");
    let (Some(bank), Some(bank_txn_id), Some(amount)) =
        (&case.bank, &case.bank_txn_id, case.amount)
    else {
        unreachable!(
            "an order_closed case has its bank, transaction and amount (cases_money_needs_bank)"
        );
    };
    let bank = BankCode::parse(bank).expect("bank codes are constrained");
    let amount = Amount::from_decimal(amount).expect("a case in suspense holds a positive amount");
    // The time the payer paid: the bank's `paid_at` of the callback whose money went to
    // suspense (or of its exception), never the time of approval.
    let paid_at: Option<OffsetDateTime> = transaction
        .query_one(
            "SELECT coalesce(
                 (SELECT paid_at FROM bank_callbacks WHERE bank_code = $1 AND bank_txn_id = $2),
                 (SELECT paid_at FROM callback_exceptions WHERE id = $3))",
            &[&bank.as_str(), bank_txn_id, &case.exception_id],
        )
        .await?
        .get(0);
    let paid_at = paid_at.unwrap_or_else(OffsetDateTime::now_utc);
    transaction
        .execute(
            "UPDATE payments SET status = 'paid', paid_at = $2, bank_code = $3, bank_txn_id = $4,
                 closed_at = now()
             WHERE id = $1 AND status = 'pending'",
            &[&target.as_str(), &paid_at, &bank.as_str(), bank_txn_id],
        )
        .await?;
    let posting = Posting {
        kind: Kind::Apply,
        source: Source::Case(id.to_owned()),
        payment_id: target.clone(),
        entries: vec![
            Entry::debit(Book::of(order.sandbox).suspense(&bank), amount),
            Entry::credit(
                Book::of(order.sandbox).agency(&order.agency, &order.obligation),
                amount,
            ),
        ],
    };
    ledger::post(&transaction, &posting).await?;
    let paid = read_order(&transaction, &target, false)
        .await?
        .expect("the order paid in this transaction exists");
    record_event(&transaction, &paid, EventType::Paid).await?;
    resolve_paid_inquiries(&transaction, &target).await?;
    transaction
        .execute(
            "UPDATE cases SET status = 'resolved', approved_by = $2, resolved_at = now()
             WHERE id = $1",
            &[&id, &actor_json(actor)],
        )
        .await?;
    tracing::info!(case_id = id, payment_id = %target, "case applied to an order");
    let detail = json!({"step": "approve", "resolution": "apply", "payment_id": target.as_str()});
    finish(transaction, id, actor, Action::CaseResolve, detail).await
}

/// Rejects the `apply` of case `id` (a different admin key than the one that chose it): the
/// case is open again, and the reason becomes a note.
pub async fn reject(pool: &Pool, id: &str, reason: &str, actor: &Actor) -> Result<Case, CaseError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let case = lock(&transaction, id).await?;
    pending_apply(&case, actor)?;
    if case.status == CaseStatus::Resolved {
        return Err(CaseError::Resolved);
    }
    let target = case.applied_payment_id.clone().unwrap_or_default();
    transaction
        .execute(
            "UPDATE cases SET status = 'open', resolution = NULL, resolved_at = NULL,
                 resolved_by = NULL, resolution_note = NULL, applied_payment_id = NULL,
                 approved_by = NULL
             WHERE id = $1",
            &[&id],
        )
        .await?;
    transaction
        .execute(
            "INSERT INTO case_notes (case_id, by, message) VALUES ($1, $2, $3)",
            &[
                &id,
                &actor_json(actor),
                &format!("apply to {target} rejected: {reason}"),
            ],
        )
        .await?;
    let detail = json!({
        "step": "reject",
        "resolution": "apply",
        "payment_id": target,
        "reason": reason,
    });
    finish(transaction, id, actor, Action::CaseResolve, detail).await
}

/// Refuses to approve or reject anything but an apply waiting for approval (an approved one
/// passes, for the approval's replay), and the key that chose it.
fn pending_apply(case: &Locked, actor: &Actor) -> Result<(), CaseError> {
    match case.status {
        CaseStatus::PendingApproval => {
            if actor.key_id.is_some() && case.requester_key() == actor.key_id.as_deref() {
                return Err(CaseError::SameApprover);
            }
            Ok(())
        }
        CaseStatus::Resolved if case.resolution.as_deref() == Some("apply") => Ok(()),
        CaseStatus::Resolved => Err(CaseError::Resolved),
        CaseStatus::Open => Err(CaseError::NotPending(
            "the case has no apply waiting for approval".to_owned(),
        )),
        CaseStatus::Resolving => Err(CaseError::NotPending(
            "the case's refund is approved or rejected through /v1/refunds/{id}/approve or /reject"
                .to_owned(),
        )),
    }
}
