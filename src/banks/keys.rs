//! The banks' live signing keys, kept in memory so that checking a signed request costs no
//! database round trip, and forgotten the moment a key changes anywhere.
//!
//! Every change to `bank_keys` (a key added, revoked or deleted, by this process or another
//! replica) notifies the channel [`CHANNEL`] with the bank's code, from a trigger, when its
//! transaction commits. Each process listens on a connection of its own and forgets that
//! bank's keys when told; the process that revoked a key forgets it before answering, too.
//!
//! Memory is used only while the listener is connected: before it has started listening, and
//! from the moment its connection fails until it listens again, every key is read from the
//! database, as if there were no memory. A key read while a change was being announced is
//! not kept (each change bumps a generation number that a read must find unchanged), so a
//! revoked key cannot come back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use deadpool_postgres::Pool;
use futures_util::StreamExt;
use tokio_postgres::AsyncMessage;

use crate::db::settings::Settings;
use crate::db::DbError;
use crate::domain::BankCode;

/// The notification channel that the trigger on `bank_keys` notifies (migration 0015); the
/// payload is the bank's code, or `*` for every bank (a `TRUNCATE`).
pub const CHANNEL: &str = "paygate_bank_keys";

/// How long the listener waits before connecting again after its connection failed.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// The `application_name` of the listener's connection.
pub const LISTENER_NAME: &str = "paygate bank keys";

/// The code of the built-in sandbox bank, which the migrations create without a key.
pub const SANDBOX_BANK: &str = "SANDBOX";

/// The key id under which paygate signs as the sandbox bank (see [`BankKeys::sign_as_sandbox`]).
const SANDBOX_KID: &str = "paygate-sandbox";

/// A bank's live signing key.
#[derive(Debug)]
pub struct Key {
    pub secret: String,
    /// Whether the bank had a key before this one: a request signed with it shows that the
    /// bank has rotated its keys.
    pub rotated: bool,
}

/// The live keys by bank and key id, while the listener listens.
pub struct BankKeys {
    secrets: RwLock<HashMap<(String, String), Arc<Key>>>,
    /// The key with which this process signs as the sandbox bank: random, made at start, held
    /// only here and never shown, so that nobody else can sign as it. Each replica has its
    /// own, which is enough: a replica verifies only what it signed itself.
    sandbox: Arc<Key>,
    /// Bumped by every change announced; a read keeps what it found only if it is unchanged.
    generation: AtomicU64,
    /// Whether the listener is listening: memory is trusted only then.
    listening: AtomicBool,
}

impl Default for BankKeys {
    fn default() -> Self {
        BankKeys {
            secrets: RwLock::default(),
            sandbox: Arc::new(Key {
                secret: crate::auth::keys::random_secret("sbx"),
                rotated: false,
            }),
            generation: AtomicU64::default(),
            listening: AtomicBool::default(),
        }
    }
}

impl BankKeys {
    /// A `Paygate-Signature` value for `body`, signed now as the sandbox bank.
    pub fn sign_as_sandbox(&self, body: &[u8]) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        crate::signature::sign(self.sandbox.secret.as_bytes(), SANDBOX_KID, now, body)
    }

    /// The bank's live key `kid`, if it has one.
    pub async fn key(
        &self,
        pool: &Pool,
        bank: &BankCode,
        kid: &str,
    ) -> Result<Option<Arc<Key>>, DbError> {
        if bank.as_str() == SANDBOX_BANK {
            return Ok((kid == SANDBOX_KID).then(|| self.sandbox.clone()));
        }
        let key = (bank.as_str().to_owned(), kid.to_owned());
        if self.listening.load(Ordering::Acquire) {
            if let Some(secret) = self.read_lock().get(&key) {
                return Ok(Some(secret.clone()));
            }
        }
        let generation = self.generation.load(Ordering::Acquire);
        let secret: Option<Arc<Key>> = read_key(pool, bank, kid).await?.map(Arc::new);
        if let Some(secret) = &secret {
            let mut secrets = self.write_lock();
            // Checked under the lock that `forget` takes, so that nothing read before a change
            // is kept after it.
            if self.listening.load(Ordering::Acquire)
                && self.generation.load(Ordering::Acquire) == generation
            {
                secrets.insert(key, secret.clone());
            }
        }
        Ok(secret)
    }

    /// Forgets a bank's keys (`*`: every bank's).
    pub fn forget(&self, bank: &str) {
        let mut secrets = self.write_lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        if bank == "*" {
            secrets.clear();
        } else {
            secrets.retain(|(code, _), _| code != bank);
        }
    }

    /// Listens for changes to `bank_keys` until the process ends, connecting again whenever
    /// the connection fails.
    pub fn listen(self: Arc<Self>, settings: Settings) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if let Err(err) = self.listen_once(&settings).await {
                    tracing::warn!(error = %err, "bank key changes are not heard; keys are read from the database until they are");
                }
                self.stop_trusting();
                tokio::time::sleep(RECONNECT_AFTER).await;
            }
        })
    }

    async fn listen_once(&self, settings: &Settings) -> Result<(), tokio_postgres::Error> {
        let mut config = settings.effective_config();
        config
            .application_name(LISTENER_NAME)
            // A connection that went silent is noticed within a minute or so, not hours.
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30));
        let (client, mut connection) = config.connect(settings.connector()).await?;
        let (notes, mut heard) = tokio::sync::mpsc::unbounded_channel();
        // The connection's messages: notifications go to `heard`; the stream ends when the
        // connection does.
        let driver = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(note)) => {
                        let _ = notes.send(note.payload().to_owned());
                    }
                    Ok(_) => {}
                    Err(err) => return Err(err),
                }
            }
            Ok(())
        });
        client
            .batch_execute(&format!("LISTEN \"{CHANNEL}\""))
            .await?;
        // Whatever was read before listening may be stale: start empty, then trust memory.
        self.forget("*");
        self.listening.store(true, Ordering::Release);
        while let Some(bank) = heard.recv().await {
            self.forget(&bank);
        }
        self.stop_trusting();
        drop(client);
        match driver.await {
            Ok(Err(err)) => Err(err),
            _ => Ok(()),
        }
    }

    fn stop_trusting(&self) {
        self.listening.store(false, Ordering::Release);
        self.forget("*");
    }

    fn read_lock(&self) -> std::sync::RwLockReadGuard<'_, HashMap<(String, String), Arc<Key>>> {
        self.secrets
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write_lock(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<(String, String), Arc<Key>>> {
        self.secrets
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

async fn read_key(pool: &Pool, bank: &BankCode, kid: &str) -> Result<Option<Key>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT k.secret, EXISTS (SELECT 1 FROM bank_keys o
                                      WHERE o.bank_code = k.bank_code
                                        AND o.created_at < k.created_at)
             FROM bank_keys k
             WHERE k.bank_code = $1 AND k.key_id = $2 AND k.revoked_at IS NULL",
        )
        .await?;
    Ok(client
        .query_opt(&statement, &[&bank.as_str(), &kid])
        .await?
        .map(|row| Key {
            secret: row.get(0),
            rotated: row.get(1),
        }))
}
