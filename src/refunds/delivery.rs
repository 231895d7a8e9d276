//! Delivering approved refunds to banks: the `refund.requested` instruction, POSTed to the
//! bank's `refund_url`, signed with the bank's newest live key.
//!
//! The guarantees are the agency notifications' (see [`crate::notifications::delivery`]), with
//! the same outgoing client, address rules and retry schedule: a claim is `FOR UPDATE SKIP
//! LOCKED` plus a lease committed at once, an outcome is recorded only while the lease holds,
//! and delivery is at least once. A bank without a `refund_url` is not claimed until one is
//! set. The bank's result ends delivery too (it proves the bank has the instruction).

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use futures_util::StreamExt;
use rust_decimal::Decimal;
use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::config::Config;
use crate::db::DbError;
use crate::notifications::outgoing::{self, Outcome, LEASE_S};
use crate::telemetry::{Metrics, OutcomeLabels};

/// Instructions claimed per round.
pub const CLAIM_BATCH_ROWS: i64 = 50;
/// Deliveries in flight at once per replica.
pub const MAX_CONCURRENT_DELIVERIES: usize = 8;

/// A claimed instruction, ready to send.
#[derive(Debug)]
struct Claimed {
    refund_id: String,
    instruction_id: String,
    created_at: OffsetDateTime,
    bank: String,
    bank_txn_id: String,
    payment_id: String,
    amount: Decimal,
    currency: String,
    reason: String,
    refund_url: String,
    /// The bank's newest live key (`[key_id, secret]`); none when every key is revoked.
    key: Option<(String, String)>,
    lease: OffsetDateTime,
}

pub struct InstructionDeliverer {
    pool: Pool,
    http: reqwest::Client,
    backoff_s: Vec<u64>,
    allow_private: bool,
    metrics: Arc<Metrics>,
}

impl InstructionDeliverer {
    pub fn new(pool: Pool, config: &Config, metrics: Arc<Metrics>) -> InstructionDeliverer {
        InstructionDeliverer {
            pool,
            http: outgoing::client(config),
            backoff_s: config.notify_backoff_s.clone(),
            allow_private: config.notify_allow_private,
            metrics,
        }
    }

    fn count(&self, outcome: &'static str) {
        self.metrics
            .refund_instructions
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Delivers until `shutdown` turns true; deliveries in flight then finish and are
    /// recorded, and claimed instructions not yet started are released.
    pub async fn run(self, interval: Duration, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            if let Err(err) = self.drain(&shutdown).await {
                tracing::warn!(error = %err, "refund instruction round failed");
            }
            tokio::select! {
                _ = shutdown.changed() => {}
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// Delivers every due instruction, one batch after another.
    async fn drain(&self, shutdown: &watch::Receiver<bool>) -> Result<(), DbError> {
        loop {
            let claimed = self.claim().await?;
            let full = claimed.len() as i64 == CLAIM_BATCH_ROWS;
            futures_util::stream::iter(claimed)
                .map(|instruction| async move {
                    if *shutdown.borrow() {
                        self.release(&instruction).await;
                    } else {
                        self.deliver(instruction).await;
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

    async fn claim(&self) -> Result<Vec<Claimed>, DbError> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(
                "UPDATE refunds r SET locked_until = now() + make_interval(secs => $2)
                 FROM (SELECT d.id FROM refunds d JOIN banks db ON db.code = d.bank_code
                       WHERE d.delivery_status = 'pending' AND d.next_attempt_at <= now()
                         AND (d.locked_until IS NULL OR d.locked_until < now())
                         AND db.refund_url IS NOT NULL
                       ORDER BY d.next_attempt_at LIMIT $1
                       FOR UPDATE OF d SKIP LOCKED) due,
                      banks b
                 WHERE r.id = due.id AND b.code = r.bank_code
                 RETURNING r.id, r.instruction_id, r.approved_at, r.bank_code, r.bank_txn_id,
                           r.payment_id, r.amount, r.currency, r.reason, b.refund_url,
                           r.locked_until,
                           (SELECT ARRAY[k.key_id, k.secret] FROM bank_keys k
                            WHERE k.bank_code = b.code AND k.revoked_at IS NULL
                            ORDER BY k.created_at DESC, k.key_id DESC LIMIT 1)",
            )
            .await?;
        let rows = client
            .query(&statement, &[&CLAIM_BATCH_ROWS, &LEASE_S])
            .await?;
        Ok(rows
            .iter()
            .map(|row| {
                let key: Option<Vec<String>> = row.get(11);
                Claimed {
                    refund_id: row.get(0),
                    instruction_id: row.get(1),
                    created_at: row.get(2),
                    bank: row.get(3),
                    bank_txn_id: row.get(4),
                    payment_id: row.get(5),
                    amount: row.get(6),
                    currency: row.get(7),
                    reason: row.get(8),
                    refund_url: row.get(9),
                    lease: row.get(10),
                    key: key.map(|pair| (pair[0].clone(), pair[1].clone())),
                }
            })
            .collect())
    }

    async fn release(&self, instruction: &Claimed) {
        let released = async {
            let client = self.pool.get().await?;
            client
                .execute(
                    "UPDATE refunds SET locked_until = NULL WHERE id = $1 AND locked_until = $2",
                    &[&instruction.refund_id, &instruction.lease],
                )
                .await?;
            Ok::<_, DbError>(())
        };
        if let Err(err) = released.await {
            tracing::warn!(refund_id = %instruction.refund_id, error = %err, "could not release a claimed refund instruction");
        }
    }

    async fn deliver(&self, instruction: Claimed) {
        let outcome = self.attempt(&instruction).await;
        self.count(if outcome.delivered() {
            "delivered"
        } else {
            "failed"
        });
        match self.record(&instruction, &outcome).await {
            Ok(true) => {
                self.count("dead");
                tracing::warn!(refund_id = %instruction.refund_id, bank = %instruction.bank, "refund instruction is dead after its last attempt")
            }
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(refund_id = %instruction.refund_id, error = %err, "could not record a refund instruction attempt")
            }
        }
    }

    async fn attempt(&self, instruction: &Claimed) -> Outcome {
        let Some((kid, secret)) = &instruction.key else {
            return Outcome::not_attempted("the bank has no live key to sign with".to_owned());
        };
        let body = instruction_body(instruction);
        let timestamp = OffsetDateTime::now_utc().unix_timestamp();
        let signature = crate::signature::sign(secret.as_bytes(), kid, timestamp, &body);
        let headers = [
            ("Paygate-Event-Id", instruction.instruction_id.clone()),
            (crate::signature::HEADER, signature),
        ];
        outgoing::post(
            &self.http,
            self.allow_private,
            &instruction.refund_url,
            &headers,
            body,
        )
        .await
    }

    /// Records an attempt; true when the instruction is now dead. Only while the lease holds:
    /// a result recorded meanwhile (which ends delivery) is never undone.
    async fn record(&self, instruction: &Claimed, outcome: &Outcome) -> Result<bool, DbError> {
        let schedule: Vec<i64> = self.backoff_s.iter().map(|s| *s as i64).collect();
        let client = self.pool.get().await?;
        let updated = client
            .query_opt(
                &format!(
                    "UPDATE refunds SET {} WHERE id = $1 AND locked_until = $2
                     RETURNING delivery_status",
                    outgoing::record_attempt_sql("delivery_status")
                ),
                &[
                    &instruction.refund_id,
                    &instruction.lease,
                    &outcome.delivered(),
                    &outcome.error,
                    &schedule,
                ],
            )
            .await?;
        Ok(updated.is_some_and(|row| row.get::<_, &str>(0) == "dead"))
    }
}

/// The `refund.requested` instruction's exact bytes.
fn instruction_body(instruction: &Claimed) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": instruction.instruction_id,
        "type": "refund.requested",
        "created_at": crate::timefmt::format_utc(instruction.created_at),
        "refund": {
            "id": instruction.refund_id,
            "bank_txn_id": instruction.bank_txn_id,
            "payment_id": instruction.payment_id,
            "amount": instruction.amount.normalize().to_string(),
            "currency": instruction.currency,
            "reason": instruction.reason,
        },
    }))
    .expect("an instruction serialises")
}
