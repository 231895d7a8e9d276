//! Refunds in PostgreSQL: every state change is one transaction, with its audit entry (for
//! people's actions), its ledger posting and its event (for the bank's result).

use deadpool_postgres::{GenericClient, Pool, Transaction};
use serde_json::json;
use tokio_postgres::types::ToSql;

use super::error::RefundError;
use super::model::{BankResult, NewRefund, Refund, RefundKind, RefundStatus, REFUND_COLUMNS};
use crate::audit::{self, Action, Actor};
use crate::auth::{Principal, Role};
use crate::cases::{self, RefundEnd};
use crate::checklist::{self, AgencyStep, BankStep};
use crate::db::error::violated_constraint;
use crate::domain::{AgencyCode, Amount, BankCode, ObligationCode, PaymentId};
use crate::http::pagination::{Page, PageRequest};
use crate::ledger::{self, Book, Entry, Kind, Posting, Source};
use crate::notifications::outbox::{self, EventType};
use crate::payments::idempotency::IdempotencyKey;
use crate::payments::store::{claim_key, remember_answer, Created};

/// What requesting a payment refund answered.
pub enum Requested {
    /// A new refund (201), with the answer's exact bytes as stored for replays.
    New { refund: Box<Refund>, body: String },
    /// The stored answer of an earlier request with the same key and body.
    Replayed { status: u16, body: String },
}

/// The agency whose refunds a caller may see: its own for an agency key, any for the others.
pub fn agency_scope(principal: &Principal) -> Option<&str> {
    match principal.role {
        Role::Agency => principal.agency.as_ref().map(AgencyCode::as_str),
        Role::Admin | Role::Auditor => None,
    }
}

/// Requests a refund of the agency's paid order `payment_id`, exactly once per agency and
/// `Idempotency-Key`. The order's row is locked and its `refund_reserved` raised by the
/// amount: the database's check refuses a sum over the order's amount, so concurrent requests
/// can never together exceed it.
pub async fn request_payment(
    pool: &Pool,
    actor: &Actor,
    agency: &AgencyCode,
    payment_id: &PaymentId,
    key: &IdempotencyKey,
    fingerprint: &[u8],
    refund: NewRefund,
) -> Result<Requested, RefundError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    if let Some(Created::Replayed { status, body }) =
        claim_key(&transaction, agency, key, fingerprint).await?
    {
        return Ok(Requested::Replayed { status, body });
    }
    // The effective status: a pending order past its expiry is expired, as everywhere.
    let order = transaction
        .query_opt(
            "SELECT CASE WHEN status = 'pending' AND expires_at <= now() THEN 'expired'
                         ELSE status END
             FROM payments WHERE id = $1 AND agency_code = $2 FOR UPDATE",
            &[&payment_id.as_str(), &agency.as_str()],
        )
        .await?
        .ok_or_else(|| RefundError::PaymentNotFound(payment_id.to_string()))?;
    let status: String = order.get(0);
    if status != "paid" {
        return Err(RefundError::PaymentNotRefundable(
            crate::payments::model::PaymentStatus::parse(&status)
                .map(|s| s.as_str())
                .unwrap_or("not paid"),
        ));
    }
    let reserved = transaction
        .execute(
            "UPDATE payments SET refund_reserved = refund_reserved + $2 WHERE id = $1",
            &[&payment_id.as_str(), &refund.amount.decimal()],
        )
        .await;
    match reserved {
        Err(err) if violated_constraint(&err) == Some("payments_refunds_within_amount") => {
            return Err(RefundError::ExceedsPayment)
        }
        other => {
            other?;
        }
    }
    let id = super::new_refund_id();
    let requested_by = serde_json::to_value(actor).expect("an actor serialises");
    let row = transaction
        .query_one(
            &format!(
                "INSERT INTO refunds AS r (id, kind, payment_id, agency_code, bank_code,
                                           bank_txn_id, amount, reason, requested_by)
                 SELECT $1, 'payment', p.id, p.agency_code, p.bank_code, p.bank_txn_id, $2, $3, $4
                 FROM payments p WHERE p.id = $5
                 RETURNING {REFUND_COLUMNS}"
            ),
            &[
                &id,
                &refund.amount.decimal(),
                &refund.reason,
                &requested_by,
                &payment_id.as_str(),
            ],
        )
        .await?;
    let created = Refund::from_row(&row);
    let body = serde_json::to_string(&created).expect("a refund serialises");
    remember_answer(&transaction, agency, key, payment_id, 201, &body).await?;
    checklist::mark_agency(&transaction, agency.as_str(), AgencyStep::RefundRequested).await?;
    let detail = json!({
        "kind": "payment",
        "payment_id": payment_id.as_str(),
        "amount": refund.amount.to_string(),
        "reason": refund.reason,
    });
    audit::record(
        &transaction,
        actor,
        Action::RefundRequest,
        &format!("refund:{id}"),
        detail,
    )
    .await?;
    transaction.commit().await?;
    tracing::info!(refund_id = %id, payment_id = %payment_id, "payment refund requested");
    Ok(Requested::New {
        refund: Box::new(created),
        body,
    })
}

/// Locks the refund `id` the caller may see and act on: an agency key its own agency's
/// refunds, an admin any; refuses the requester's own key (`same_approver`) and an agency key
/// on a suspense refund.
async fn lock_for_decision(
    transaction: &Transaction<'_>,
    id: &str,
    principal: &Principal,
) -> Result<Refund, RefundError> {
    let row = transaction
        .query_opt(
            &format!(
                "SELECT {REFUND_COLUMNS} FROM refunds r
                 WHERE r.id = $1 AND ($2::text IS NULL OR r.agency_code = $2) FOR UPDATE"
            ),
            &[&id, &agency_scope(principal)],
        )
        .await?
        .ok_or_else(|| RefundError::NotFound(id.to_owned()))?;
    let refund = Refund::from_row(&row);
    if refund.kind == RefundKind::Suspense && principal.role != Role::Admin {
        return Err(RefundError::Forbidden);
    }
    if refund.requester_key_id() == Some(principal.key_id.as_str()) {
        return Err(RefundError::SameApprover);
    }
    Ok(refund)
}

/// Approves a refund waiting for approval: it becomes an instruction to the bank, due now.
/// Approving an approved (or since completed or failed) refund changes nothing and answers it
/// again; a rejected one is [`RefundError::NotPending`].
pub async fn approve(
    pool: &Pool,
    id: &str,
    principal: &Principal,
    actor: &Actor,
) -> Result<Refund, RefundError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let refund = lock_for_decision(&transaction, id, principal).await?;
    match refund.status {
        RefundStatus::PendingApproval => {}
        RefundStatus::Rejected => return Err(RefundError::NotPending(refund.status)),
        RefundStatus::Approved | RefundStatus::Completed | RefundStatus::Failed => {
            return Ok(refund)
        }
    }
    let approved_by = serde_json::to_value(actor).expect("an actor serialises");
    let instruction_id = crate::domain::EventId::generate().into_string();
    let row = transaction
        .query_one(
            &format!(
                "UPDATE refunds r SET status = 'approved', approved_by = $2, approved_at = now(),
                     instruction_id = $3, delivery_status = 'pending', next_attempt_at = now()
                 WHERE r.id = $1 RETURNING {REFUND_COLUMNS}"
            ),
            &[&id, &approved_by, &instruction_id],
        )
        .await?;
    let approved = Refund::from_row(&row);
    let detail = json!({
        "kind": approved.kind.as_str(),
        "payment_id": approved.payment_id,
        "amount": approved.amount.to_string(),
    });
    audit::record(
        &transaction,
        actor,
        Action::RefundApprove,
        &format!("refund:{id}"),
        detail,
    )
    .await?;
    transaction.commit().await?;
    tracing::info!(refund_id = %id, "refund approved");
    Ok(approved)
}

/// Rejects a refund waiting for approval: the amount it reserved is free again, and a case
/// it was to resolve is open again. Anything not waiting is [`RefundError::NotPending`].
pub async fn reject(
    pool: &Pool,
    id: &str,
    principal: &Principal,
    actor: &Actor,
    reason: &str,
) -> Result<Refund, RefundError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let refund = lock_for_decision(&transaction, id, principal).await?;
    if refund.status != RefundStatus::PendingApproval {
        return Err(RefundError::NotPending(refund.status));
    }
    let rejected_by = serde_json::to_value(actor).expect("an actor serialises");
    let row = transaction
        .query_one(
            &format!(
                "UPDATE refunds r SET status = 'rejected', rejected_by = $2, rejected_at = now(),
                     rejection_reason = $3
                 WHERE r.id = $1 RETURNING {REFUND_COLUMNS}"
            ),
            &[&id, &rejected_by, &reason],
        )
        .await?;
    let rejected = Refund::from_row(&row);
    release(&transaction, &rejected, RefundEnd::Rejected).await?;
    let detail = json!({
        "kind": rejected.kind.as_str(),
        "payment_id": rejected.payment_id,
        "amount": rejected.amount.to_string(),
        "reason": reason,
    });
    audit::record(
        &transaction,
        actor,
        Action::RefundReject,
        &format!("refund:{id}"),
        detail,
    )
    .await?;
    transaction.commit().await?;
    tracing::info!(refund_id = %id, "refund rejected");
    Ok(rejected)
}

/// Undoes what a refund that will never complete held: a payment refund's reservation on its
/// order, a suspense refund's hold on its case.
async fn release(
    transaction: &Transaction<'_>,
    refund: &Refund,
    end: RefundEnd,
) -> Result<(), RefundError> {
    match (&refund.kind, &refund.case_id) {
        (RefundKind::Payment, _) => {
            transaction
                .execute(
                    "UPDATE payments SET refund_reserved = refund_reserved - $2 WHERE id = $1",
                    &[&refund.payment_id, &refund.amount.decimal()],
                )
                .await?;
        }
        (RefundKind::Suspense, Some(case_id)) => {
            cases::refund_finished(transaction, case_id, end).await?;
        }
        (RefundKind::Suspense, None) => {
            unreachable!("the database requires a case for a suspense refund")
        }
    }
    Ok(())
}

/// One refund the caller may see.
pub async fn get(pool: &Pool, id: &str, agency: Option<&str>) -> Result<Refund, RefundError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            &format!(
                "SELECT {REFUND_COLUMNS} FROM refunds r
                 WHERE r.id = $1 AND ($2::text IS NULL OR r.agency_code = $2)"
            ),
            &[&id, &agency],
        )
        .await?
        .ok_or_else(|| RefundError::NotFound(id.to_owned()))?;
    Ok(Refund::from_row(&row))
}

/// Which refunds to list.
#[derive(Debug, Default)]
pub struct ListFilter {
    pub status: Option<RefundStatus>,
    pub kind: Option<RefundKind>,
    /// Set to the caller's own agency for an agency key, whatever it asked.
    pub agency: Option<String>,
    pub bank: Option<BankCode>,
    pub payment_id: Option<String>,
}

/// One page of refunds, newest first.
pub async fn list(
    pool: &Pool,
    filter: &ListFilter,
    page: PageRequest,
) -> Result<Page<Refund>, RefundError> {
    let status = filter.status.map(RefundStatus::as_str);
    let kind = filter.kind.map(RefundKind::as_str);
    let bank = filter.bank.as_ref().map(BankCode::as_str);
    let fetch = page.limit + 1;
    let params: [&(dyn ToSql + Sync); 7] = [
        &status,
        &kind,
        &filter.agency,
        &bank,
        &filter.payment_id,
        &page.cursor,
        &fetch,
    ];
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {REFUND_COLUMNS} FROM refunds r
                 WHERE ($1::text IS NULL OR r.status = $1)
                   AND ($2::text IS NULL OR r.kind = $2)
                   AND ($3::text IS NULL OR r.agency_code = $3)
                   AND ($4::text IS NULL OR r.bank_code = $4)
                   AND ($5::text IS NULL OR r.payment_id = $5)
                   AND ($6::bigint IS NULL OR r.seq < $6)
                 ORDER BY r.seq DESC LIMIT $7"
            ),
            &params,
        )
        .await?;
    let items = rows.iter().map(Refund::from_row).collect();
    Ok(Page::from_rows(items, page.limit, |r: &Refund| r.seq))
}

/// How the bank's result was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultOutcome {
    /// The first result: recorded, posted (when completed) and announced.
    Accepted(RefundStatus),
    /// The same result again: nothing changed.
    Duplicate(RefundStatus),
}

/// Records the bank's result for its approved refund `id`, exactly once: a completed refund
/// is posted to the ledger (the unique `refund_id` of a ledger transaction makes a second
/// posting impossible), a payment refund's order counts it as refunded and its agency hears of
/// it; a failed one frees what it reserved. The same result again is a duplicate; another one a
/// conflict.
pub async fn record_result(
    pool: &Pool,
    bank: &BankCode,
    id: &str,
    result: &BankResult,
) -> Result<ResultOutcome, RefundError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let row = transaction
        .query_opt(
            &format!(
                "SELECT {REFUND_COLUMNS}, p.obligation, p.sandbox FROM refunds r
                 JOIN payments p ON p.id = r.payment_id
                 WHERE r.id = $1 AND r.bank_code = $2 AND r.approved_at IS NOT NULL
                 FOR UPDATE OF r"
            ),
            &[&id, &bank.as_str()],
        )
        .await?
        .ok_or_else(|| RefundError::NotFound(id.to_owned()))?;
    let refund = Refund::from_row(&row);
    // The column references the catalog, whose codes have the code syntax.
    let obligation = ObligationCode::from_trusted(row.get::<_, String>(18));
    let book = Book::of(row.get(19));
    if refund.status != RefundStatus::Approved {
        let same = refund.status == result.status()
            && refund.bank_refund_id.as_deref() == result.bank_refund_id();
        return if same {
            Ok(ResultOutcome::Duplicate(refund.status))
        } else {
            Err(RefundError::ResultConflict(refund.status))
        };
    }
    // A result proves the bank has the instruction: its delivery stops.
    let (completed_at, failure_reason) = match result {
        BankResult::Completed { completed_at, .. } => (Some(*completed_at), None),
        BankResult::Failed { failure_reason, .. } => (None, failure_reason.clone()),
    };
    let row = transaction
        .query_one(
            &format!(
                "UPDATE refunds r SET status = $2, result_at = now(),
                     completed_at = CASE WHEN $2 = 'completed' THEN coalesce($3, now()) END,
                     bank_refund_id = $4, failure_reason = $5,
                     delivery_status = CASE WHEN delivery_status = 'pending' THEN 'delivered'
                                            ELSE delivery_status END,
                     delivered_at = coalesce(delivered_at, now()), locked_until = NULL
                 WHERE r.id = $1 RETURNING {REFUND_COLUMNS}"
            ),
            &[
                &id,
                &result.status().as_str(),
                &completed_at.flatten(),
                &result.bank_refund_id(),
                &failure_reason,
            ],
        )
        .await?;
    let ended = Refund::from_row(&row);
    match (result, ended.kind) {
        (BankResult::Completed { .. }, kind) => {
            post_completed(&transaction, &ended, book, &obligation).await?;
            match kind {
                RefundKind::Payment => {
                    transaction
                        .execute(
                            "UPDATE payments SET refunded_amount = refunded_amount + $2
                             WHERE id = $1",
                            &[&ended.payment_id, &ended.amount.decimal()],
                        )
                        .await?;
                    announce(&transaction, &ended, EventType::RefundCompleted).await?;
                }
                RefundKind::Suspense => {
                    let case_id = ended
                        .case_id
                        .as_deref()
                        .expect("a suspense refund has a case");
                    cases::refund_finished(&transaction, case_id, RefundEnd::Completed).await?;
                }
            }
        }
        (BankResult::Failed { .. }, kind) => {
            release(&transaction, &ended, RefundEnd::Failed).await?;
            if kind == RefundKind::Payment {
                announce(&transaction, &ended, EventType::RefundFailed).await?;
            }
        }
    }
    checklist::mark_banks(&transaction, &[(bank.as_str(), BankStep::RefundResult)]).await?;
    transaction.commit().await?;
    tracing::info!(refund_id = %id, bank = %bank, status = ended.status.as_str(), "refund result recorded");
    Ok(ResultOutcome::Accepted(ended.status))
}

/// The ledger transaction of a completed refund: the money leaves the bank's account, taken
/// from what the agency is owed (a payment refund) or from suspense (a suspense refund).
async fn post_completed(
    client: &impl GenericClient,
    refund: &Refund,
    book: Book,
    obligation: &ObligationCode,
) -> Result<(), RefundError> {
    let bank = BankCode::parse(&refund.bank).expect("bank codes are constrained");
    let amount: Amount = refund.amount;
    let (kind, debited) = match refund.kind {
        RefundKind::Payment => {
            let agency = AgencyCode::parse(&refund.agency).expect("agency codes are constrained");
            (Kind::Refund, book.agency(&agency, obligation))
        }
        RefundKind::Suspense => (Kind::SuspenseRefund, book.suspense(&bank)),
    };
    let posting = Posting {
        kind,
        source: Source::Refund(refund.id.clone()),
        payment_id: PaymentId::from_trusted(refund.payment_id.clone()),
        entries: vec![
            Entry::debit(debited, amount),
            Entry::credit(book.bank(&bank), amount),
        ],
    };
    ledger::post(client, &posting).await?;
    Ok(())
}

/// The agency's event for its payment refund's end, carrying the refund as it now answers.
async fn announce(
    client: &impl GenericClient,
    refund: &Refund,
    event: EventType,
) -> Result<(), RefundError> {
    outbox::record_refund(
        client,
        &refund.agency,
        &refund.payment_id,
        &refund.id,
        event,
        &refund.to_json(),
    )
    .await?;
    Ok(())
}
