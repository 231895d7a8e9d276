//! Background work of `serve`: the expiry sweep, notification delivery, refund instruction
//! delivery to banks, the idempotency-key purge and the ledger's sealing.
//!
//! Each loop takes its work in bounded batches, one transaction each, and claims rows with
//! `FOR UPDATE SKIP LOCKED` where replicas could collide, so any number of replicas may run
//! them at once. A failed round is logged and retried at the next tick.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::ledger::seals;
use crate::ledger::signing::Keyring;
use crate::notifications::delivery::{Deliverer, DELIVERY_TIMEOUT_MS};
use crate::payments::{idempotency, store};
use crate::refunds::delivery::InstructionDeliverer;
use crate::telemetry::Metrics;

/// Idempotency keys are purged this often; they are kept at least 24 hours anyway.
const PURGE_INTERVAL_S: u64 = 3_600;

/// The running background loops; dropping this does not stop them, [`Workers::stop`] does.
pub struct Workers {
    handles: Vec<JoinHandle<()>>,
    delivery: JoinHandle<()>,
    instructions: JoinHandle<()>,
    shutdown: watch::Sender<bool>,
}

impl Workers {
    /// Starts every loop on the current tokio runtime.
    pub fn spawn(
        pool: &Pool,
        config: &Config,
        metrics: Arc<Metrics>,
        seal_keys: Arc<Keyring>,
    ) -> Workers {
        let (shutdown, stopping) = watch::channel(false);
        let expiry = tokio::spawn(expiry_loop(
            pool.clone(),
            Duration::from_millis(config.expiry_interval_ms),
        ));
        let purge = tokio::spawn(purge_loop(pool.clone()));
        let mut handles = vec![expiry, purge];
        // An interval of 0 turns sealing off (for benchmarks only).
        if config.seal_interval_ms > 0 {
            handles.push(tokio::spawn(seal_loop(
                pool.clone(),
                seal_keys,
                Duration::from_millis(config.seal_interval_ms),
            )));
        }
        let deliverer = Deliverer::new(pool.clone(), config, metrics.clone());
        let delivery = tokio::spawn(deliverer.run(
            Duration::from_millis(config.notify_poll_interval_ms),
            stopping.clone(),
        ));
        // Refund instructions to banks are polled as often as notifications: both are money
        // news that someone waits for.
        let instructions = tokio::spawn(
            InstructionDeliverer::new(pool.clone(), config, metrics).run(
                Duration::from_millis(config.notify_poll_interval_ms),
                stopping,
            ),
        );
        Workers {
            handles,
            delivery,
            instructions,
            shutdown,
        }
    }

    /// Stops the loops. Deliveries in flight (notifications and refund instructions) finish
    /// and are recorded (each takes at most 10 s) and claimed ones not yet sent are released to
    /// other replicas. The other loops
    /// stop at once: one stopped inside a transaction leaves it uncommitted, and PostgreSQL
    /// rolls it back, so nothing is half done.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for handle in self.handles {
            handle.abort();
        }
        let grace = Duration::from_millis(DELIVERY_TIMEOUT_MS * 2);
        // Both delivery loops wind down together, within one grace period.
        let aborts = [
            self.delivery.abort_handle(),
            self.instructions.abort_handle(),
        ];
        let both = futures_util::future::join(self.delivery, self.instructions);
        if tokio::time::timeout(grace, both).await.is_err() {
            for abort in aborts {
                abort.abort();
            }
        }
    }
}

async fn expiry_loop(pool: Pool, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        // Drain every due batch, so a backlog clears within one tick.
        loop {
            match store::expire_due(&pool).await {
                Ok(expired) => {
                    if expired > 0 {
                        tracing::info!(expired, "expired overdue payment orders");
                    }
                    if (expired as i64) < store::EXPIRY_BATCH_ROWS {
                        break;
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "expiry sweep failed; retrying at the next tick");
                    break;
                }
            }
        }
    }
}

/// Seals the ledger on every tick. Every replica runs this loop; one seals at a time (see
/// [`seals::seal_once`]), the others skip the round.
async fn seal_loop(pool: Pool, keys: Arc<Keyring>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(err) = seals::seal_pending(&pool, &keys).await {
            tracing::warn!(error = %err, "sealing failed; retrying at the next tick");
        }
    }
}

async fn purge_loop(pool: Pool) {
    let mut ticker = tokio::time::interval(Duration::from_secs(PURGE_INTERVAL_S));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match idempotency::purge_expired(&pool).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "purged old idempotency keys"),
            Err(err) => tracing::warn!(error = %err, "idempotency purge failed"),
        }
        match crate::console::session::purge_old_sessions(&pool).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "purged old console sessions"),
            Err(err) => tracing::warn!(error = %err, "console session purge failed"),
        }
    }
}
