//! Payment orders in PostgreSQL: every state change is one transaction that also writes its
//! event into the outbox.

use deadpool_postgres::{GenericClient, Pool};
use time::OffsetDateTime;
use tokio_postgres::types::ToSql;

use super::error::PaymentError;
use super::idempotency::IdempotencyKey;
use super::model::{NewPayment, Payment, PaymentStatus, DEFAULT_EXPIRY, PAYMENT_COLUMNS};
use crate::catalog::CatalogError;
use crate::checklist::{self, AgencyStep};
use crate::db::error::violated_constraint;
use crate::db::DbError;
use crate::domain::{AgencyCode, ObligationCode, PaymentId};
use crate::notifications::outbox::{self, EventType};

/// Orders expired per transaction by the sweep.
pub const EXPIRY_BATCH_ROWS: i64 = 500;

/// What creating an order answered.
pub enum Created {
    /// A new order (201).
    New {
        payment: Box<Payment>,
        /// The answer's exact bytes, as stored for replays.
        body: String,
    },
    /// The stored answer of an earlier request with the same key and body: its status and
    /// its exact bytes.
    Replayed { status: u16, body: String },
}

/// The stored answer for `key`, if a request with it completed: replayed when the body is the
/// same, [`PaymentError::KeyReused`] when it differs. Looked up when the body breaks a rule,
/// so that a retry is answered as the first request was even when a rule that depends on the
/// time (`expires_at` in the future) would now refuse the body.
pub async fn stored_answer(
    pool: &Pool,
    agency: &AgencyCode,
    key: &IdempotencyKey,
    fingerprint: &[u8],
) -> Result<Option<Created>, PaymentError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT request_sha256, response_status, response_body FROM idempotency_keys
             WHERE agency_code = $1 AND key = $2",
        )
        .await?;
    match client
        .query_opt(&statement, &[&agency.as_str(), &key.as_str()])
        .await?
    {
        Some(row) => replay(&row, fingerprint).map(Some),
        None => Ok(None),
    }
}

fn replay(row: &tokio_postgres::Row, fingerprint: &[u8]) -> Result<Created, PaymentError> {
    let stored: Vec<u8> = row.get(0);
    if stored != fingerprint {
        return Err(PaymentError::KeyReused);
    }
    let status: i16 = row.get(1);
    Ok(Created::Replayed {
        status: status as u16,
        body: row.get(2),
    })
}

/// Creates an order exactly once per agency and `Idempotency-Key`.
pub async fn create(
    pool: &Pool,
    key: &IdempotencyKey,
    fingerprint: &[u8],
    order: NewPayment,
) -> Result<Created, PaymentError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let standing = match claim_order_key(&transaction, &order, key, fingerprint).await? {
        OrderClaim::Claimed(standing) => standing,
        OrderClaim::Answered(replayed) => return Ok(replayed),
    };
    check_obligation(&transaction, &order, standing).await?;
    expire_overdue_holder(&transaction, &order.agency, &order.reference, None).await?;
    let payment = insert(&transaction, &order).await?;
    let body = serde_json::to_string(&payment).expect("a payment serialises");
    futures_util::future::try_join(
        remember_answer(&transaction, &order.agency, key, &payment.id, 201, &body),
        async {
            checklist::mark_agency(
                &transaction,
                order.agency.as_str(),
                AgencyStep::OrderCreated,
            )
            .await
            .map_err(PaymentError::from)
        },
    )
    .await?;
    transaction.commit().await?;
    tracing::info!(payment_id = %payment.id, agency = %payment.agency, "payment order created");
    Ok(Created::New {
        payment: Box::new(payment),
        body,
    })
}

/// What an order's catalog check needs, read in the statement that claims its key: the
/// agency's allowed obligations (`None`: every active one) and its obligation's entry.
pub(super) struct Standing {
    pub(super) allowed: Option<Vec<String>>,
    pub(super) entry: crate::catalog::EntryState,
}

enum OrderClaim {
    /// The key is this request's: go on and create, with what the claim read.
    Claimed(Standing),
    /// A request with the key committed before: its answer.
    Answered(Created),
}

/// [`claim_key`] for an order, reading in the same statement what the catalog check needs, so
/// that the catalog costs an order no extra statement.
async fn claim_order_key(
    transaction: &deadpool_postgres::Transaction<'_>,
    order: &NewPayment,
    key: &IdempotencyKey,
    fingerprint: &[u8],
) -> Result<OrderClaim, PaymentError> {
    let claim = transaction
        .prepare_cached(
            "WITH claim AS (
                 INSERT INTO idempotency_keys (agency_code, key, request_sha256)
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING 1)
             SELECT EXISTS (SELECT 1 FROM claim),
                    (SELECT obligations FROM agencies WHERE code = $1),
                    o.active, o.schema_digest
             FROM (VALUES (1)) AS one LEFT JOIN obligations o ON o.code = $4",
        )
        .await?;
    let row = transaction
        .query_one(
            &claim,
            &[
                &order.agency.as_str(),
                &key.as_str(),
                &fingerprint,
                &order.obligation.as_str(),
            ],
        )
        .await
        .map_err(key_in_use)?;
    if !row.get::<_, bool>(0) {
        let answered = stored_for_claim(transaction, &order.agency, key, fingerprint).await?;
        return Ok(OrderClaim::Answered(answered));
    }
    let active: Option<bool> = row.get(2);
    let digest: Option<String> = row.get(3);
    Ok(OrderClaim::Claimed(Standing {
        allowed: row.get(1),
        entry: active.zip(digest),
    }))
}

/// Claims `key` for a create request inside its transaction: `None` when the key is new (the
/// caller creates and then calls [`remember_answer`]), the stored answer when a request with it
/// committed (replayed for the same fingerprint, [`PaymentError::KeyReused`] otherwise). A
/// concurrent request with the same key waits here on the key's row until the first ends. Used
/// by every create that takes an `Idempotency-Key` (orders, refunds), so that one key names one
/// request of the agency, whatever it created.
pub async fn claim_key(
    transaction: &deadpool_postgres::Transaction<'_>,
    agency: &AgencyCode,
    key: &IdempotencyKey,
    fingerprint: &[u8],
) -> Result<Option<Created>, PaymentError> {
    let claim = transaction
        .prepare_cached(
            "INSERT INTO idempotency_keys (agency_code, key, request_sha256) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .await?;
    let claimed = transaction
        .execute(&claim, &[&agency.as_str(), &key.as_str(), &fingerprint])
        .await
        .map_err(key_in_use)?;
    if claimed == 1 {
        return Ok(None);
    }
    stored_for_claim(transaction, agency, key, fingerprint)
        .await
        .map(Some)
}

/// The answer stored under `key` when a claim found it taken.
async fn stored_for_claim(
    transaction: &deadpool_postgres::Transaction<'_>,
    agency: &AgencyCode,
    key: &IdempotencyKey,
    fingerprint: &[u8],
) -> Result<Created, PaymentError> {
    let row = transaction
        .query_opt(
            "SELECT request_sha256, response_status, response_body FROM idempotency_keys
             WHERE agency_code = $1 AND key = $2",
            &[&agency.as_str(), &key.as_str()],
        )
        .await?
        .ok_or(PaymentError::KeyJustReleased)?;
    replay(&row, fingerprint)
}

/// Stores the answer of the request that claimed `key`, for its replays; `payment_id` is the
/// order the request created or acted on.
pub async fn remember_answer(
    transaction: &deadpool_postgres::Transaction<'_>,
    agency: &AgencyCode,
    key: &IdempotencyKey,
    payment_id: &PaymentId,
    status: i16,
    body: &str,
) -> Result<(), PaymentError> {
    let remember = transaction
        .prepare_cached(
            "UPDATE idempotency_keys SET payment_id = $3, response_status = $4, response_body = $5
             WHERE agency_code = $1 AND key = $2",
        )
        .await?;
    transaction
        .execute(
            &remember,
            &[
                &agency.as_str(),
                &key.as_str(),
                &payment_id.as_str(),
                &status,
                &body,
            ],
        )
        .await?;
    Ok(())
}

fn key_in_use(err: tokio_postgres::Error) -> PaymentError {
    let lock_timeout = err
        .as_db_error()
        .is_some_and(|db| db.code().code() == "55P03");
    if lock_timeout {
        PaymentError::KeyInFlight
    } else {
        err.into()
    }
}

/// Writes `event` of `payment` into the outbox, with the order as every answer shows it; call it
/// inside the transaction that made the change.
pub async fn record_event(
    client: &impl GenericClient,
    payment: &Payment,
    event: EventType,
) -> Result<(), tokio_postgres::Error> {
    outbox::record(
        client,
        &payment.agency,
        &payment.id,
        event,
        &payment.to_json(),
    )
    .await
}

/// A pending order past its `expires_at` no longer holds its reference, whether or not the
/// sweep has reached it: expire it now (with its event) so the new order may take it.
///
/// `except` is an order that must not be expired (the one being paid, which goes straight
/// from pending to paid).
pub async fn expire_overdue_holder(
    client: &impl GenericClient,
    agency: &AgencyCode,
    reference: &str,
    except: Option<&PaymentId>,
) -> Result<(), DbError> {
    let expire = client
        .prepare_cached(&format!(
            "UPDATE payments p SET status = 'expired', closed_at = now()
             WHERE agency_code = $1 AND reference = $2 AND status = 'pending'
               AND expires_at <= now() AND ($3::text IS NULL OR id <> $3)
             RETURNING {PAYMENT_COLUMNS}"
        ))
        .await?;
    let rows = client
        .query(
            &expire,
            &[&agency.as_str(), &reference, &except.map(PaymentId::as_str)],
        )
        .await?;
    for row in rows {
        record_event(client, &Payment::from_row(&row), EventType::Expired).await?;
    }
    Ok(())
}

/// Checks the order's obligation against the catalog, with what [`claim_order_key`] read of it
/// inside the order's transaction: it must exist, be active, be allowed for the agency, and the
/// details must satisfy its schema.
///
/// Whether an entry is active and what an agency may use can change at any time through any
/// replica, so both are read for every order, never cached; only the compiled schema (which
/// never changes) is kept, by `crate::catalog`. A replayed request never gets here: it answers
/// what it answered.
pub(super) async fn check_obligation(
    client: &impl GenericClient,
    order: &NewPayment,
    standing: Standing,
) -> Result<(), PaymentError> {
    let code = &order.obligation;
    let details = order.details.to_json();
    let invalid = match crate::catalog::check_details(
        client,
        code.as_str(),
        standing.entry,
        &details,
    )
    .await
    {
        Ok(()) => None,
        Err(CatalogError::Unknown) => return Err(PaymentError::UnknownObligation(code.clone())),
        Err(CatalogError::Inactive) => return Err(PaymentError::ObligationInactive(code.clone())),
        Err(CatalogError::Invalid(errors)) => Some(errors),
        Err(CatalogError::Db(err)) => return Err(err.into()),
    };
    let allowed = standing.allowed;
    if allowed.is_some_and(|codes| !codes.iter().any(|c| c == code.as_str())) {
        return Err(PaymentError::ObligationNotAllowed(code.clone()));
    }
    match invalid {
        Some(errors) => Err(PaymentError::InvalidDetails(errors)),
        None => Ok(()),
    }
}

async fn insert(client: &impl GenericClient, order: &NewPayment) -> Result<Payment, PaymentError> {
    let id = PaymentId::generate();
    let default_expiry_s = DEFAULT_EXPIRY.whole_seconds() as f64;
    let statement = client
        .prepare_cached(&format!(
            "INSERT INTO payments AS p (id, agency_code, obligation, reference, amount, currency,
                 description, payer_name, payer_id_number, details, status, expires_at, sandbox)
             VALUES ($1, $2, $3, $4, $5, 'VND', $6, $7, $8, $9, 'pending',
                 coalesce($10, now() + make_interval(secs => $11)),
                 coalesce((SELECT a.sandbox FROM agencies a WHERE a.code = $2), false))
             RETURNING {PAYMENT_COLUMNS}"
        ))
        .await?;
    let result = client
        .query_one(
            &statement,
            &[
                &id.as_str(),
                &order.agency.as_str(),
                &order.obligation.as_str(),
                &order.reference,
                &order.amount.decimal(),
                &order.description,
                &order.payer.name,
                &order.payer.id_number,
                &order.details.to_json(),
                &order.expires_at,
                &default_expiry_s,
            ],
        )
        .await;
    match result {
        Ok(row) => Ok(Payment::from_row(&row)),
        Err(err) => Err(match violated_constraint(&err) {
            // The database's clock decides creation time; an `expires_at` that was ahead of
            // ours by a hair may not be ahead of it.
            Some("payments_expiry_after_creation") => PaymentError::ExpiryNotAhead,
            Some("payments_active_reference") => {
                PaymentError::DuplicateReference(order.reference.clone())
            }
            _ => err.into(),
        }),
    }
}

/// Reads an order; `agency` limits it to that agency's orders (another agency's order is
/// exactly as absent as one that does not exist).
pub async fn get(
    pool: &Pool,
    id: &PaymentId,
    agency: Option<&AgencyCode>,
) -> Result<Payment, PaymentError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments p
             WHERE p.id = $1 AND ($2::text IS NULL OR p.agency_code = $2)"
        ))
        .await?;
    client
        .query_opt(&statement, &[&id.as_str(), &agency.map(AgencyCode::as_str)])
        .await?
        .map(|row| Payment::from_row(&row))
        .ok_or_else(|| PaymentError::NotFound(id.clone()))
}

/// Filters of `GET /v1/payments`.
#[derive(Debug, Default)]
pub struct ListFilter {
    pub agency: Option<AgencyCode>,
    pub status: Option<PaymentStatus>,
    pub obligation: Option<ObligationCode>,
    pub reference: Option<String>,
    pub created_from: Option<OffsetDateTime>,
    pub created_to: Option<OffsetDateTime>,
    /// Only orders older than this position (exclusive).
    pub before_seq: Option<i64>,
    pub limit: i64,
}

/// A query whose conditions are added only when their filter is given, so that each list query
/// is simple enough to use the index on (agency_code, seq).
struct Conditions<'a> {
    sql: String,
    params: Vec<&'a (dyn ToSql + Sync)>,
}

impl<'a> Conditions<'a> {
    /// Adds `AND <left> $n`, binding `param` as `$n`.
    fn and(&mut self, left: &str, param: &'a (dyn ToSql + Sync)) {
        self.params.push(param);
        self.sql
            .push_str(&format!(" AND {left} ${}", self.params.len()));
    }
}

/// Newest first, one page plus one row to tell whether another page follows.
///
/// An obligation filter must name a catalog entry (active or not): a code of none is refused
/// rather than answered with an empty page, so that a misspelt filter is noticed.
pub async fn list(pool: &Pool, filter: &ListFilter) -> Result<Vec<Payment>, PaymentError> {
    let client = pool.get().await?;
    if let Some(obligation) = &filter.obligation {
        let known: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM obligations WHERE code = $1)",
                &[&obligation.as_str()],
            )
            .await?
            .get(0);
        if !known {
            return Err(PaymentError::UnknownObligation(obligation.clone()));
        }
    }
    let status = filter.status.as_ref().map(PaymentStatus::as_str);
    let obligation = filter.obligation.as_ref().map(|o| o.as_str());
    let agency = filter.agency.as_ref().map(AgencyCode::as_str);
    let fetch = filter.limit + 1;
    let mut query = Conditions {
        sql: format!("SELECT {PAYMENT_COLUMNS} FROM payments p WHERE TRUE"),
        params: Vec::new(),
    };
    if let Some(agency) = &agency {
        query.and("p.agency_code =", agency);
    }
    if let Some(status) = &status {
        query.and(
            "(CASE WHEN p.status = 'pending' AND p.expires_at <= now() THEN 'expired' ELSE p.status END) =",
            status,
        );
    }
    if let Some(obligation) = &obligation {
        query.and("p.obligation =", obligation);
    }
    if let Some(reference) = &filter.reference {
        query.and("p.reference =", reference);
    }
    if let Some(from) = &filter.created_from {
        query.and("p.created_at >=", from);
    }
    if let Some(to) = &filter.created_to {
        query.and("p.created_at <", to);
    }
    if let Some(seq) = &filter.before_seq {
        query.and("p.seq <", seq);
    }
    query.params.push(&fetch);
    query.sql.push_str(&format!(
        " ORDER BY p.seq DESC LIMIT ${}",
        query.params.len()
    ));
    let rows = client.query(&query.sql, &query.params).await?;
    Ok(rows.iter().map(Payment::from_row).collect())
}

/// Cancels a pending order; a cancelled one answers the same again; anything else is
/// [`PaymentError::NotCancellable`]. The order row is locked while this is decided, so a concurrent
/// payment or expiry waits (or, for the sweep, skips it).
pub async fn cancel(
    pool: &Pool,
    id: &PaymentId,
    agency: Option<&AgencyCode>,
) -> Result<Payment, PaymentError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let row = transaction
        .query_opt(
            &format!(
                "SELECT {PAYMENT_COLUMNS} FROM payments p
                 WHERE p.id = $1 AND ($2::text IS NULL OR p.agency_code = $2) FOR UPDATE"
            ),
            &[&id.as_str(), &agency.map(AgencyCode::as_str)],
        )
        .await?
        .ok_or_else(|| PaymentError::NotFound(id.clone()))?;
    let payment = Payment::from_row(&row);
    match payment.status {
        PaymentStatus::Cancelled => Ok(payment),
        PaymentStatus::Pending => {
            let row = transaction
                .query_one(
                    &format!(
                        "UPDATE payments p SET status = 'cancelled', closed_at = now()
                         WHERE p.id = $1 RETURNING {PAYMENT_COLUMNS}"
                    ),
                    &[&id.as_str()],
                )
                .await?;
            let cancelled = Payment::from_row(&row);
            record_event(&transaction, &cancelled, EventType::Cancelled).await?;
            let step = AgencyStep::OrderCancelled;
            checklist::mark_agency(&transaction, cancelled.agency.as_str(), step).await?;
            transaction.commit().await?;
            tracing::info!(payment_id = %id, "payment order cancelled");
            Ok(cancelled)
        }
        PaymentStatus::Paid | PaymentStatus::Expired => {
            Err(PaymentError::NotCancellable(payment.status))
        }
    }
}

/// Expires one batch of overdue pending orders, with their events, in one transaction.
/// `SKIP LOCKED` lets several replicas sweep at once without waiting on each other or on an
/// order whose payment or cancellation is being decided; returns how many it expired.
pub async fn expire_due(pool: &Pool) -> Result<usize, DbError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let rows = transaction
        .query(
            &format!(
                "WITH due AS (
                     SELECT id FROM payments
                     WHERE status = 'pending' AND expires_at <= now()
                     ORDER BY expires_at LIMIT $1
                     FOR UPDATE SKIP LOCKED)
                 UPDATE payments p SET status = 'expired', closed_at = now()
                 FROM due WHERE p.id = due.id
                 RETURNING {PAYMENT_COLUMNS}"
            ),
            &[&EXPIRY_BATCH_ROWS],
        )
        .await?;
    for row in &rows {
        record_event(&transaction, &Payment::from_row(row), EventType::Expired).await?;
    }
    transaction.commit().await?;
    Ok(rows.len())
}
