//! Group commit of new orders: orders that arrive together are created in one database
//! transaction, with one statement per table for the whole batch, so that a burst of orders
//! costs one commit and a handful of statements instead of six statements each.
//!
//! Each order is still created exactly once per `Idempotency-Key` and answered exactly as it
//! would be alone:
//!
//! - Only orders that can only succeed are created together: a well-formed order whose key
//!   and reference no other order of the batch names, whose obligation the catalog allows,
//!   whose key nobody claimed before, and whose reference no active order holds. That is what
//!   almost every order is.
//! - Every other order (a replay, a reused key, a refused obligation, a taken reference) is
//!   created alone afterwards by [`store::create`], the path every order took before, which
//!   answers it as it always did.
//! - No answer leaves before the batch's commit has succeeded. When the batch fails as a whole
//!   (the connection broke, a concurrent request held a key), nothing of it was kept, or, if
//!   the commit did reach the server, all of it was: each order is then created alone, which
//!   either creates it or finds its key answered and replays that answer, never twice.
//!
//! Orders are spread over lanes ([`crate::db::lanes`]) by agency and reference, so that the
//! retries of one request, and every order that claims one reference, meet in one lane, in
//! arrival order, instead of waiting for another lane's transaction.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Pool};
use rust_decimal::Decimal;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::oneshot;

use super::error::PaymentError;
use super::idempotency::IdempotencyKey;
use super::model::{NewPayment, Payment, DEFAULT_EXPIRY, PAYMENT_COLUMNS};
use super::store::{self, Created, Standing};
use crate::checklist::{self, AgencyStep, Recent};
use crate::db::lanes::Lanes;
use crate::db::DbError;
use crate::domain::PaymentId;
use crate::notifications::outbox::{self, EventType};
use crate::telemetry::Metrics;

/// At most this many orders share a transaction.
pub const MAX_BATCH: usize = 32;

type Decision = Result<Created, PaymentError>;

/// An order waiting for its batch, with the way back to its request.
struct Job {
    key: IdempotencyKey,
    fingerprint: Vec<u8>,
    order: NewPayment,
    reply: oneshot::Sender<Decision>,
}

/// The order lanes of this process; every new order goes through [`OrderLanes::create`].
pub struct OrderLanes {
    lanes: Lanes<Job>,
}

impl OrderLanes {
    /// Starts `lanes` lanes on the current Tokio runtime; `gather_ms` as for callbacks (0: a
    /// lone order is never delayed).
    pub fn start(
        pool: Pool,
        metrics: Arc<Metrics>,
        recent: Arc<Recent>,
        lanes: usize,
        gather_ms: u64,
    ) -> Self {
        let decide = move |jobs: Vec<Job>| {
            let (pool, metrics, recent) = (pool.clone(), metrics.clone(), recent.clone());
            async move {
                metrics.order_batch_size.observe(jobs.len() as f64);
                commit_batch(&pool, &recent, jobs).await;
            }
        };
        OrderLanes {
            lanes: Lanes::start(lanes, MAX_BATCH, Duration::from_millis(gather_ms), decide),
        }
    }

    /// Creates an order exactly once per agency and `Idempotency-Key`, in the next batch of
    /// its lane; answers once that batch has committed.
    pub async fn create(
        &self,
        key: IdempotencyKey,
        fingerprint: Vec<u8>,
        order: NewPayment,
    ) -> Decision {
        let (reply, answer) = oneshot::channel();
        let lane = (order.agency.as_str().to_owned(), order.reference.clone());
        let job = Job {
            key,
            fingerprint,
            order,
            reply,
        };
        // A lane ends only when this process drops its handle, and it answers what it took
        // before it ends; a lane that is gone (it panicked) is reported as unavailable.
        self.lanes
            .send(lane, job)
            .await
            .map_err(|_| PaymentError::LaneStopped)?;
        answer.await.map_err(|_| PaymentError::LaneStopped)?
    }
}

/// Runs one batch and answers every order of it: those created together once their
/// transaction has committed, then the others, one by one.
async fn commit_batch(pool: &Pool, recent: &Recent, jobs: Vec<Job>) {
    let mut created = if jobs.len() < 2 {
        // A lone order costs the same either way.
        HashMap::new()
    } else {
        match create_together(pool, recent, &jobs).await {
            Ok(created) => created,
            Err(err) => {
                tracing::warn!(error = %err, orders = jobs.len(), "a batch of orders failed to commit; creating each alone");
                HashMap::new()
            }
        }
    };
    let mut alone = Vec::new();
    for (n, job) in jobs.into_iter().enumerate() {
        match created.remove(&n) {
            Some((payment, body)) => {
                tracing::info!(payment_id = %payment.id, agency = %payment.agency, "payment order created");
                // The request may have gone (the client hung up); its order stands.
                let _ = job.reply.send(Ok(Created::New {
                    payment: Box::new(payment),
                    body,
                }));
            }
            None => alone.push(job),
        }
    }
    for job in alone {
        let decision = store::create(pool, &job.key, &job.fingerprint, job.order).await;
        let _ = job.reply.send(decision);
    }
}

/// Creates together, in one transaction, the orders of the batch that can only succeed (see
/// the module's documentation); returns them with their answers' bytes, by their place in
/// the batch. The others are left to be created alone.
async fn create_together(
    pool: &Pool,
    recent: &Recent,
    jobs: &[Job],
) -> Result<HashMap<usize, (Payment, String)>, DbError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let candidates = unshared(jobs);
    // What the catalog says of the candidates and which keys they claim, in one round trip
    // (the statements are sent together and run in this order).
    let (catalog, claimed) = futures_util::future::try_join(
        read_catalog(&transaction, &candidates),
        claim_keys(&transaction, &candidates),
    )
    .await?;
    let mut allowed = Vec::with_capacity(candidates.len());
    let mut refused = Vec::new();
    for (n, job) in candidates {
        if !claimed.contains(&(job.order.agency.as_str(), job.key.as_str())) {
            // Claimed before: answered alone, with the stored answer.
            continue;
        }
        match store::check_obligation(&transaction, &job.order, catalog.standing(job)).await {
            Ok(()) => allowed.push((n, job)),
            Err(PaymentError::Db(err)) => return Err(err),
            // Answered alone (its key given back first).
            Err(_) => refused.push(job),
        }
    }
    // The overdue holders of the references first, then the orders, in one round trip.
    let (_, inserted) = futures_util::future::try_join(
        expire_overdue_holders(&transaction, &allowed),
        insert_orders(&transaction, &allowed),
    )
    .await?;
    let mut created = HashMap::with_capacity(inserted.len());
    for (n, job, written) in &inserted {
        match written {
            Some(payment) => {
                let body = serde_json::to_string(payment).expect("a payment serialises");
                created.insert(*n, (payment.clone(), body));
            }
            // An active order holds the reference: the key is given back, and the order is
            // answered alone (409, or created if the holder has gone meanwhile).
            None => refused.push(*job),
        }
    }
    let answers: Vec<(&Job, &Payment, &str)> = inserted
        .iter()
        .filter_map(|(n, job, _)| created.get(n).map(|(p, body)| (*job, p, body.as_str())))
        .collect();
    // The agencies' `order_created`, unless this process recorded it in the last second.
    let created_by: Vec<(&str, AgencyStep)> = answers
        .iter()
        .map(|(job, _, _)| (job.order.agency.as_str(), AgencyStep::OrderCreated))
        .collect();
    let steps = recent.unrecorded(&created_by);
    futures_util::future::try_join3(
        remember_answers(&transaction, &answers),
        release_keys(&transaction, &refused),
        checklist::mark_agencies(&transaction, &steps),
    )
    .await?;
    transaction.commit().await?;
    recent.recorded(&steps);
    Ok(created)
}

/// The orders whose key and reference no other order of the batch names, with their place.
fn unshared(jobs: &[Job]) -> Vec<(usize, &Job)> {
    let mut keys: HashMap<(&str, &str), usize> = HashMap::new();
    let mut references: HashMap<(&str, &str), usize> = HashMap::new();
    for job in jobs {
        let agency = job.order.agency.as_str();
        *keys.entry((agency, job.key.as_str())).or_default() += 1;
        *references
            .entry((agency, job.order.reference.as_str()))
            .or_default() += 1;
    }
    jobs.iter()
        .enumerate()
        .filter(|(_, job)| {
            let agency = job.order.agency.as_str();
            keys[&(agency, job.key.as_str())] == 1
                && references[&(agency, job.order.reference.as_str())] == 1
        })
        .collect()
}

/// What the catalog check of an order reads ([`store::check_obligation`]), for a batch.
struct Catalog {
    /// By agency: its allowed obligations (`None`: every active one).
    allowed: HashMap<String, Option<Vec<String>>>,
    /// By obligation: whether it is active, and its schema's digest.
    entries: HashMap<String, (bool, String)>,
}

impl Catalog {
    fn standing(&self, job: &Job) -> Standing {
        Standing {
            // An agency that is gone allows nothing.
            allowed: self
                .allowed
                .get(job.order.agency.as_str())
                .cloned()
                .unwrap_or(Some(Vec::new())),
            entry: self.entries.get(job.order.obligation.as_str()).cloned(),
        }
    }
}

/// Reads the catalog for the candidates, in the batch's transaction, as an order alone reads
/// it in its own.
async fn read_catalog(
    transaction: &deadpool_postgres::Transaction<'_>,
    candidates: &[(usize, &Job)],
) -> Result<Catalog, DbError> {
    let agencies: Vec<&str> = candidates
        .iter()
        .map(|(_, job)| job.order.agency.as_str())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let obligations: Vec<&str> = candidates
        .iter()
        .map(|(_, job)| job.order.obligation.as_str())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let agencies_statement = transaction
        .prepare_cached("SELECT code, obligations FROM agencies WHERE code = ANY($1)")
        .await?;
    let entries_statement = transaction
        .prepare_cached("SELECT code, active, schema_digest FROM obligations WHERE code = ANY($1)")
        .await?;
    let (agency_rows, entry_rows) = futures_util::future::try_join(
        transaction.query(&agencies_statement, &[&agencies]),
        transaction.query(&entries_statement, &[&obligations]),
    )
    .await?;
    Ok(Catalog {
        allowed: agency_rows
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect(),
        entries: entry_rows
            .iter()
            .map(|row| (row.get(0), (row.get(1), row.get(2))))
            .collect(),
    })
}

/// Claims the candidates' keys; returns those claimed (the others were claimed before).
async fn claim_keys<'a>(
    transaction: &deadpool_postgres::Transaction<'_>,
    candidates: &[(usize, &'a Job)],
) -> Result<HashSet<(&'a str, &'a str)>, DbError> {
    let agencies: Vec<&str> = candidates
        .iter()
        .map(|(_, job)| job.order.agency.as_str())
        .collect();
    let keys: Vec<&str> = candidates.iter().map(|(_, job)| job.key.as_str()).collect();
    let fingerprints: Vec<&[u8]> = candidates
        .iter()
        .map(|(_, job)| job.fingerprint.as_slice())
        .collect();
    let statement = transaction
        .prepare_cached(
            "INSERT INTO idempotency_keys (agency_code, key, request_sha256)
             SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[])
             ON CONFLICT DO NOTHING
             RETURNING agency_code, key",
        )
        .await?;
    let rows = transaction
        .query(&statement, &[&agencies, &keys, &fingerprints])
        .await?;
    let claimed: HashSet<(String, String)> =
        rows.iter().map(|row| (row.get(0), row.get(1))).collect();
    Ok(candidates
        .iter()
        .map(|(_, job)| (job.order.agency.as_str(), job.key.as_str()))
        .filter(|(agency, key)| claimed.contains(&((*agency).to_owned(), (*key).to_owned())))
        .collect())
}

/// [`store::expire_overdue_holder`] for every order of the batch at once: a pending order past
/// its expiry that holds one of their references is expired, with its event.
async fn expire_overdue_holders(
    transaction: &deadpool_postgres::Transaction<'_>,
    orders: &[(usize, &Job)],
) -> Result<(), DbError> {
    let agencies: Vec<&str> = orders
        .iter()
        .map(|(_, job)| job.order.agency.as_str())
        .collect();
    let references: Vec<&str> = orders
        .iter()
        .map(|(_, job)| job.order.reference.as_str())
        .collect();
    let statement = transaction
        .prepare_cached(&format!(
            "UPDATE payments p SET status = 'expired', closed_at = now()
                 FROM unnest($1::text[], $2::text[]) AS r(agency, reference)
                 WHERE p.agency_code = r.agency AND p.reference = r.reference
                   AND p.status = 'pending' AND p.expires_at <= now()
                 RETURNING {PAYMENT_COLUMNS}"
        ))
        .await?;
    let rows = transaction
        .query(&statement, &[&agencies, &references])
        .await?;
    if rows.is_empty() {
        return Ok(());
    }
    let expired: Vec<Payment> = rows.iter().map(Payment::from_row).collect();
    let events: Vec<_> = expired
        .iter()
        .map(|payment| (&payment.agency, &payment.id, payment.to_json()))
        .collect();
    outbox::record_many(transaction, EventType::Expired, &events).await?;
    Ok(())
}

/// Inserts the orders; per order, the order as written, or `None` when an active order holds
/// its reference.
async fn insert_orders<'a>(
    transaction: &deadpool_postgres::Transaction<'_>,
    orders: &[(usize, &'a Job)],
) -> Result<Vec<(usize, &'a Job, Option<Payment>)>, DbError> {
    let ids: Vec<PaymentId> = orders.iter().map(|_| PaymentId::generate()).collect();
    let id_texts: Vec<&str> = ids.iter().map(PaymentId::as_str).collect();
    let order = |(_, job): &(usize, &'a Job)| &job.order;
    let agencies: Vec<&str> = orders.iter().map(|o| order(o).agency.as_str()).collect();
    let obligations: Vec<&str> = orders
        .iter()
        .map(|o| order(o).obligation.as_str())
        .collect();
    let references: Vec<&str> = orders.iter().map(|o| order(o).reference.as_str()).collect();
    let amounts: Vec<Decimal> = orders.iter().map(|o| order(o).amount.decimal()).collect();
    let descriptions: Vec<&str> = orders
        .iter()
        .map(|o| order(o).description.as_str())
        .collect();
    let payer_names: Vec<&str> = orders
        .iter()
        .map(|o| order(o).payer.name.as_str())
        .collect();
    let payer_ids: Vec<Option<&str>> = orders
        .iter()
        .map(|o| order(o).payer.id_number.as_deref())
        .collect();
    let details: Vec<Value> = orders.iter().map(|o| order(o).details.to_json()).collect();
    let expiries: Vec<Option<OffsetDateTime>> =
        orders.iter().map(|o| order(o).expires_at).collect();
    let default_expiry_s = DEFAULT_EXPIRY.whole_seconds() as f64;
    let statement = transaction
        .prepare_cached(&format!(
            "INSERT INTO payments AS p (id, agency_code, obligation, reference, amount,
                     currency, description, payer_name, payer_id_number, details, status,
                     expires_at, sandbox)
                 SELECT r.id, r.agency, r.obligation, r.reference, r.amount, 'VND',
                     r.description, r.payer_name, r.payer_id_number, r.details, 'pending',
                     coalesce(r.expires_at, now() + make_interval(secs => $11)),
                     coalesce((SELECT a.sandbox FROM agencies a WHERE a.code = r.agency), false)
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::numeric[],
                     $6::text[], $7::text[], $8::text[], $9::json[], $10::timestamptz[])
                     AS r(id, agency, obligation, reference, amount, description, payer_name,
                          payer_id_number, details, expires_at)
                 ON CONFLICT (agency_code, reference) WHERE status IN ('pending', 'paid')
                 DO NOTHING
                 RETURNING {PAYMENT_COLUMNS}"
        ))
        .await?;
    let rows = transaction
        .query(
            &statement,
            &[
                &id_texts,
                &agencies,
                &obligations,
                &references,
                &amounts,
                &descriptions,
                &payer_names,
                &payer_ids,
                &details,
                &expiries,
                &default_expiry_s,
            ],
        )
        .await?;
    let mut written: HashMap<String, Payment> = rows
        .iter()
        .map(Payment::from_row)
        .map(|payment| (payment.id.as_str().to_owned(), payment))
        .collect();
    Ok(orders
        .iter()
        .zip(&ids)
        .map(|((n, job), id)| (*n, *job, written.remove(id.as_str())))
        .collect())
}

/// Stores each created order's answer under its key, for replays ([`store::remember_answer`]
/// for the batch). Every key was claimed by this transaction, so each row takes the update;
/// written as an upsert so that each key is found through its primary key whatever the planner
/// believes of the table's size (a join with the batch, planned while the table was small,
/// would read the whole table for every batch as it grows).
async fn remember_answers(
    transaction: &deadpool_postgres::Transaction<'_>,
    answers: &[(&Job, &Payment, &str)],
) -> Result<(), tokio_postgres::Error> {
    let agencies: Vec<&str> = answers
        .iter()
        .map(|(j, _, _)| j.order.agency.as_str())
        .collect();
    let keys: Vec<&str> = answers.iter().map(|(j, _, _)| j.key.as_str()).collect();
    let fingerprints: Vec<&[u8]> = answers
        .iter()
        .map(|(j, _, _)| j.fingerprint.as_slice())
        .collect();
    let ids: Vec<&str> = answers.iter().map(|(_, p, _)| p.id.as_str()).collect();
    let bodies: Vec<&str> = answers.iter().map(|(_, _, body)| *body).collect();
    let statement = transaction
        .prepare_cached(
            "INSERT INTO idempotency_keys AS k (agency_code, key, request_sha256, payment_id,
                 response_status, response_body)
             SELECT r.agency, r.key, r.fingerprint, r.payment_id, 201, r.body
             FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[], $5::text[])
                 AS r(agency, key, fingerprint, payment_id, body)
             ON CONFLICT (agency_code, key) DO UPDATE
             SET payment_id = EXCLUDED.payment_id, response_status = EXCLUDED.response_status,
                 response_body = EXCLUDED.response_body",
        )
        .await?;
    transaction
        .execute(
            &statement,
            &[&agencies, &keys, &fingerprints, &ids, &bodies],
        )
        .await?;
    Ok(())
}

/// Gives back the keys of orders the batch did not create, as their own transaction's rollback
/// would have.
async fn release_keys(
    client: &impl GenericClient,
    jobs: &[&Job],
) -> Result<(), tokio_postgres::Error> {
    if jobs.is_empty() {
        return Ok(());
    }
    let agencies: Vec<&str> = jobs.iter().map(|j| j.order.agency.as_str()).collect();
    let keys: Vec<&str> = jobs.iter().map(|j| j.key.as_str()).collect();
    let statement = client
        .prepare_cached(
            "DELETE FROM idempotency_keys k
             USING unnest($1::text[], $2::text[]) AS r(agency, key)
             WHERE k.agency_code = r.agency AND k.key = r.key",
        )
        .await?;
    client.execute(&statement, &[&agencies, &keys]).await?;
    Ok(())
}
