//! The delivery worker: claims due events with a lease, POSTs them, records each attempt.
//!
//! A claim is `FOR UPDATE SKIP LOCKED` plus a lease (`locked_until`) committed at once, so
//! replicas never claim the same event together, and an event claimed by a replica that died
//! goes to the others once its lease has passed. An outcome is recorded only while the lease
//! still holds (`locked_until` is the lease's token). Delivery is at least once: a crash between
//! the POST and the recording repeats that attempt later.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use futures_util::StreamExt;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::watch;

use super::outbox::EventType;
use super::outgoing::{self, Outcome};
use super::store::EventStatus;
use crate::admin::agencies::PREVIOUS_SECRET_WINDOW_S;
use crate::checklist::{self, AgencyStep};
use crate::config::Config;
use crate::db::DbError;
use crate::domain::{AgencyCode, EventId};
use crate::telemetry::{Metrics, OutcomeLabels};

/// Events claimed per round.
pub const CLAIM_BATCH_ROWS: i64 = 50;
/// Deliveries in flight at once per replica.
pub const MAX_CONCURRENT_DELIVERIES: usize = 16;
pub use super::outgoing::{CONNECT_TIMEOUT_MS, DELIVERY_TIMEOUT_MS, LEASE_S, MAX_RESPONSE_BYTES};
/// For a day after an agency's notification secret is rotated, notifications carry a second
/// signature, made with the secret replaced, in this header.
pub const PREVIOUS_SIGNATURE_HEADER: &str = "Paygate-Signature-Previous";

/// Why a round of delivery stopped early: the database failed. (A failed POST is no error of
/// the worker: it is an attempt's outcome, recorded on the event.)
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::from_db_errors!(DeliveryError);

/// A claimed event, ready to send.
#[derive(Debug)]
struct Claimed {
    id: EventId,
    event_type: String,
    created_at: OffsetDateTime,
    payment: Value,
    agency: AgencyCode,
    notify_url: String,
    notify_secret: String,
    /// The secret a rotation replaced, while notifications still carry a signature made with
    /// it (for a day after the rotation).
    previous_notify_secret: Option<String>,
    lease: OffsetDateTime,
}

pub struct Deliverer {
    pool: Pool,
    http: reqwest::Client,
    backoff_s: Vec<u64>,
    allow_private: bool,
    metrics: Arc<Metrics>,
}

impl Deliverer {
    pub fn new(pool: Pool, config: &Config, metrics: Arc<Metrics>) -> Deliverer {
        Deliverer {
            pool,
            http: outgoing::client(config),
            backoff_s: config.notify_backoff_s.clone(),
            allow_private: config.notify_allow_private,
            metrics,
        }
    }

    /// Delivers until `shutdown` turns true; deliveries in flight then finish and are
    /// recorded, and claimed events not yet started are released for other replicas.
    pub async fn run(self, interval: Duration, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            if let Err(err) = self.drain(&shutdown).await {
                tracing::warn!(error = %err, "notification delivery round failed");
            }
            self.update_queue_depth().await;
            tokio::select! {
                _ = shutdown.changed() => {}
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }

    async fn drain(&self, shutdown: &watch::Receiver<bool>) -> Result<(), DeliveryError> {
        loop {
            let claimed = self.claim().await?;
            let full = claimed.len() as i64 == CLAIM_BATCH_ROWS;
            futures_util::stream::iter(claimed)
                .map(|event| async move {
                    if *shutdown.borrow() {
                        self.release(&event).await;
                    } else {
                        self.deliver(event).await;
                    }
                })
                .buffer_unordered(MAX_CONCURRENT_DELIVERIES)
                .collect::<Vec<()>>()
                .await;
            if !full || *shutdown.borrow() {
                return Ok(());
            }
        }
    }

    async fn claim(&self) -> Result<Vec<Claimed>, DeliveryError> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(
                "UPDATE events e SET locked_until = now() + make_interval(secs => $2)
                 FROM (SELECT d.id FROM events d JOIN agencies da ON da.code = d.agency_code
                       WHERE d.status = 'pending' AND d.next_attempt_at <= now()
                         AND (d.locked_until IS NULL OR d.locked_until < now())
                         AND da.notify_url IS NOT NULL
                       ORDER BY d.next_attempt_at LIMIT $1
                       FOR UPDATE OF d SKIP LOCKED) due,
                      agencies a
                 WHERE e.id = due.id AND a.code = e.agency_code
                 RETURNING e.id, e.type, e.created_at, e.payment, e.agency_code, a.notify_url,
                           a.notify_secret, e.locked_until,
                           CASE WHEN a.notify_secret_rotated_at > now() - make_interval(secs => $3)
                                THEN a.previous_notify_secret END",
            )
            .await?;
        let rows = client
            .query(
                &statement,
                &[&CLAIM_BATCH_ROWS, &LEASE_S, &PREVIOUS_SECRET_WINDOW_S],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| Claimed {
                id: EventId::from_trusted(row.get(0)),
                event_type: row.get(1),
                created_at: row.get(2),
                payment: row.get(3),
                agency: AgencyCode::parse(row.get(4)).expect("agency codes are constrained"),
                notify_url: row.get(5),
                notify_secret: row.get(6),
                lease: row.get(7),
                previous_notify_secret: row.get(8),
            })
            .collect())
    }

    async fn release(&self, event: &Claimed) {
        let released = async {
            let client = self.pool.get().await?;
            client
                .execute(
                    "UPDATE events SET locked_until = NULL WHERE id = $1 AND locked_until = $2",
                    &[&event.id.as_str(), &event.lease],
                )
                .await?;
            Ok::<_, DeliveryError>(())
        };
        if let Err(err) = released.await {
            tracing::warn!(event_id = %event.id, error = %err, "could not release a claimed event");
        }
    }

    async fn deliver(&self, event: Claimed) {
        let outcome = self.attempt(&event).await;
        let delivered = outcome.error.is_none();
        self.metrics
            .notify_deliveries
            .get_or_create(&OutcomeLabels {
                outcome: if delivered { "delivered" } else { "failed" },
            })
            .inc();
        self.metrics
            .notify_latency
            .observe(outcome.duration.as_secs_f64());
        match self.record(&event, &outcome).await {
            Ok(dead) => {
                if dead {
                    self.metrics
                        .notify_deliveries
                        .get_or_create(&OutcomeLabels { outcome: "dead" })
                        .inc();
                    tracing::warn!(event_id = %event.id, agency = %event.agency, "event is dead after its last attempt");
                }
            }
            Err(err) => {
                tracing::warn!(event_id = %event.id, error = %err, "could not record a delivery attempt")
            }
        }
    }

    async fn attempt(&self, event: &Claimed) -> Outcome {
        // The event's object goes under `refund` for refund events, `payment` otherwise.
        let mut body = serde_json::json!({
            "id": event.id,
            "type": event.event_type,
            "created_at": crate::timefmt::format_utc(event.created_at),
        });
        body[EventType::object_key(&event.event_type)] = event.payment.clone();
        let body = serde_json::to_vec(&body).expect("an event serialises");
        let timestamp = OffsetDateTime::now_utc().unix_timestamp();
        let signature = crate::signature::sign(
            event.notify_secret.as_bytes(),
            event.agency.as_str(),
            timestamp,
            &body,
        );
        let mut headers = vec![
            ("Paygate-Event-Id", event.id.as_str().to_owned()),
            (crate::signature::HEADER, signature),
        ];
        if let Some(previous) = &event.previous_notify_secret {
            // The same scheme and timestamp, with the secret the last rotation replaced, so an
            // agency still verifying with it loses nothing while it switches over.
            let signature = crate::signature::sign(
                previous.as_bytes(),
                event.agency.as_str(),
                timestamp,
                &body,
            );
            headers.push((PREVIOUS_SIGNATURE_HEADER, signature));
        }
        outgoing::post(
            &self.http,
            self.allow_private,
            &event.notify_url,
            &headers,
            body,
        )
        .await
    }

    /// Records an attempt; true when the event is now dead. The next state is computed from
    /// the row as it is now, not as it was when claimed; and if the event was redelivered
    /// meanwhile (which voids the lease), only the attempt is counted: the redelivery's fresh
    /// schedule stands.
    async fn record(&self, event: &Claimed, outcome: &Outcome) -> Result<bool, DeliveryError> {
        let delivered = outcome.delivered();
        let error = outcome.error.clone();
        let duration_ms = outcome.duration.as_millis().min(i32::MAX as u128) as i32;
        let schedule: Vec<i64> = self.backoff_s.iter().map(|s| *s as i64).collect();
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        let updated = transaction
            .query_opt(
                &format!(
                    "UPDATE events SET {} WHERE id = $1 AND locked_until = $2 RETURNING status",
                    outgoing::record_attempt_sql("status")
                ),
                &[
                    &event.id.as_str(),
                    &event.lease,
                    &delivered,
                    &error,
                    &schedule,
                ],
            )
            .await?;
        if updated.is_none() {
            transaction
                .execute(
                    "UPDATE events SET attempts = attempts + 1 WHERE id = $1",
                    &[&event.id.as_str()],
                )
                .await?;
            tracing::info!(event_id = %event.id, "the event was redelivered (or its lease ran out) during an attempt; only the attempt is counted");
        }
        transaction
            .execute(
                "INSERT INTO event_attempts (event_id, started_at, duration_ms, http_status, error)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &event.id.as_str(),
                    &outcome.started_at,
                    &duration_ms,
                    &outcome.http_status.map(|s| s as i16),
                    &error,
                ],
            )
            .await?;
        if delivered {
            let step = AgencyStep::NotificationAcknowledged;
            checklist::mark_agency(&transaction, event.agency.as_str(), step).await?;
        }
        transaction.commit().await?;
        Ok(updated.is_some_and(|row| EventStatus::from_db(row.get(0)) == EventStatus::Dead))
    }

    async fn update_queue_depth(&self) {
        let depth = async {
            let client = self.pool.get().await?;
            let row = client
                .query_one(
                    "SELECT count(*) FROM events WHERE status = 'pending' AND next_attempt_at <= now()",
                    &[],
                )
                .await?;
            Ok::<i64, DeliveryError>(row.get(0))
        };
        if let Ok(depth) = depth.await {
            self.metrics.notify_queue_depth.set(depth);
        }
    }
}
