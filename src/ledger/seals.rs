//! Ledger seals: signed blocks that chain the ledger's committed transactions in gap-free
//! ranges, and their verification.
//!
//! A seal covers the transaction ids `first_transaction..=last_transaction`, where
//! `first_transaction` is the previous seal's `last_transaction + 1`. Its `hash` is the chain
//! hash ([`crate::domain::canonical`]) of the previous seal's hash followed by the canonical
//! JSON of the seal's document:
//!
//! ```text
//! {"first_transaction", "last_transaction", "ledger": [{"callback_id", "case_id"?,
//!   "created_at", "entries": [{"account", "credit", "debit", "id"}, ... by id], "id", "kind",
//!   "payment_id", "refund_id"?}, ... by id], "prev_hash", "sealed_at", "seq", "transactions"}
//! ```
//!
//! `callback_id` is null for a posting no callback made (a refund, an apply); `refund_id` and
//! `case_id` appear only when not null, so that every seal made before they existed still
//! verifies.
//!
//! and its `signature` is the Ed25519 signature of the UTF-8 bytes of `hash` (64 hex
//! characters), made with a key kept outside the database ([`super::signing`]).

use std::time::{Duration, Instant};

use deadpool_postgres::{GenericClient, Pool};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::signing::{self, Keyring};
use crate::db::DbError;
use crate::domain::canonical::{to_canonical, ChainHasher, GENESIS_HASH};
use crate::timefmt::format_utc;

/// An arbitrary constant that identifies the sealer among advisory locks ("paygseal").
pub const SEAL_LOCK_KEY: i64 = 0x7061_7967_7365_616c;
/// The most transaction ids one seal covers; a backlog gives several seals in a row.
pub const MAX_TRANSACTIONS_PER_SEAL: i64 = 10_000;
/// The most seals one sealing pass makes before it yields to the next tick.
const MAX_SEALS_PER_PASS: usize = 1_000;
/// How long the sealer waits for the transactions in progress to end before it gives up the
/// round (a long-running transaction only delays sealing; the next tick tries again).
pub const HORIZON_WAIT_MS: u64 = 30_000;
/// Seals verified per query, so that verification holds at most one batch of seals and one
/// seal's transactions in memory, however long the ledger.
const VERIFY_BATCH_SEALS: i64 = 100;

/// One seal, as `GET /v1/ledger/seals` lists it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Seal {
    #[schema(example = 1)]
    pub seq: i64,
    #[schema(example = 1)]
    pub first_transaction: i64,
    #[schema(example = 250)]
    pub last_transaction: i64,
    /// Transactions present in the range (ids of postings that rolled back leave holes).
    #[schema(example = 250)]
    pub transactions: i64,
    /// Lowercase hex SHA-256 of `prev_hash` followed by the seal's canonical document.
    pub hash: String,
    /// The previous seal's `hash`; 64 zeros for the first seal.
    pub prev_hash: String,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub sealed_at: OffsetDateTime,
    /// Lowercase hex Ed25519 signature of the UTF-8 bytes of `hash`.
    pub signature: String,
    /// The hex Ed25519 public key that verifies `signature`.
    pub public_key: String,
}

/// A seal with the exact content its hash covers.
#[derive(Debug, Serialize, ToSchema)]
pub struct SealContent {
    #[serde(flatten)]
    pub seal: Seal,
    /// Every transaction of the range by id, each with its entries by id.
    pub ledger: Vec<SealedTransaction>,
}

/// A ledger transaction as a seal's document holds it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SealedTransaction {
    pub id: i64,
    #[schema(example = "payment")]
    pub kind: String,
    pub payment_id: String,
    /// The callback that made the posting; null for refunds and applies.
    #[schema(required = true)]
    pub callback_id: Option<i64>,
    /// The refund a `refund` or `suspense_refund` posting completes; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<String>,
    /// The case an `apply` posting resolves; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub case_id: Option<String>,
    /// As every time on the wire: UTC, microseconds only when not zero.
    #[schema(example = "2026-11-23T03:04:05.123456Z")]
    pub created_at: String,
    pub entries: Vec<SealedEntry>,
}

/// A ledger entry as a seal's document holds it; amounts are whole VND as strings.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SealedEntry {
    pub id: i64,
    #[schema(example = "bank:VCB")]
    pub account: String,
    #[schema(example = "150000")]
    pub debit: String,
    #[schema(example = "0")]
    pub credit: String,
}

/// The fields of a seal that its document holds besides the ledger.
struct Header<'a> {
    seq: i64,
    first_transaction: i64,
    last_transaction: i64,
    transactions: i64,
    sealed_at: &'a str,
    prev_hash: &'a str,
}

/// The seal hash of `header` over `ledger`, streamed into the hasher transaction by transaction
/// (the members in canonical order, keys sorted) so that no string of the whole document is
/// built.
fn seal_hash(header: &Header<'_>, ledger: &[SealedTransaction]) -> String {
    let mut hasher = ChainHasher::new(header.prev_hash);
    hasher.update(&format!(
        "{{\"first_transaction\":{},\"last_transaction\":{},\"ledger\":[",
        header.first_transaction, header.last_transaction
    ));
    for (i, transaction) in ledger.iter().enumerate() {
        if i > 0 {
            hasher.update(",");
        }
        let value = serde_json::to_value(transaction).expect("a transaction serialises");
        hasher.update(&to_canonical(&value));
    }
    let tail = serde_json::json!({
        "prev_hash": header.prev_hash,
        "sealed_at": header.sealed_at,
        "seq": header.seq,
        "transactions": header.transactions,
    });
    // `tail` in canonical form is `{"prev_hash":...}`: its members follow the ledger's.
    let tail = to_canonical(&tail);
    hasher.update("],");
    hasher.update(&tail[1..]);
    hasher.finish()
}

fn amount_text(value: Decimal) -> String {
    value.normalize().to_string()
}

/// The transactions with ids in `first..=last` and their entries, by id.
async fn read_range(
    client: &impl GenericClient,
    first: i64,
    last: i64,
) -> Result<Vec<SealedTransaction>, tokio_postgres::Error> {
    let statement = client
        .prepare_cached(
            "SELECT t.id, t.kind, t.payment_id, t.callback_id, t.created_at,
                    e.id, e.account, e.debit, e.credit, t.refund_id, t.case_id
             FROM ledger_transactions t LEFT JOIN ledger_entries e ON e.transaction_id = t.id
             WHERE t.id BETWEEN $1 AND $2
             ORDER BY t.id, e.id",
        )
        .await?;
    let rows = client.query(&statement, &[&first, &last]).await?;
    let mut ledger: Vec<SealedTransaction> = Vec::new();
    for row in rows {
        let id: i64 = row.get(0);
        if ledger.last().map(|t| t.id) != Some(id) {
            ledger.push(SealedTransaction {
                id,
                kind: row.get(1),
                payment_id: row.get(2),
                callback_id: row.get(3),
                refund_id: row.get(9),
                case_id: row.get(10),
                created_at: format_utc(row.get(4)),
                entries: Vec::new(),
            });
        }
        if let Some(entry_id) = row.get::<_, Option<i64>>(5) {
            let transaction = ledger.last_mut().expect("pushed above");
            transaction.entries.push(SealedEntry {
                id: entry_id,
                account: row.get(6),
                debit: amount_text(row.get(7)),
                credit: amount_text(row.get(8)),
            });
        }
    }
    Ok(ledger)
}

const SEAL_COLUMNS: &str = "seq, first_transaction, last_transaction, transactions, hash, \
                            prev_hash, sealed_at, signature, public_key";

fn seal_from_row(row: &tokio_postgres::Row) -> Seal {
    Seal {
        seq: row.get(0),
        first_transaction: row.get(1),
        last_transaction: row.get(2),
        transactions: row.get(3),
        hash: row.get(4),
        prev_hash: row.get(5),
        sealed_at: row.get(6),
        signature: row.get(7),
        public_key: row.get(8),
    }
}

/// What one sealing round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Made the seal with this `seq`; `more` when it stopped short of the horizon because it
    /// was full (a backlog: the next seal may follow at once).
    Sealed { seq: i64, more: bool },
    /// Everything that may be sealed is sealed.
    UpToDate,
    /// Another replica is sealing.
    Busy,
    /// A transaction that began before the round is still running; try again later.
    Waiting,
}

/// Seals everything that may be sealed, one seal after another; returns how many seals were
/// made. Every replica calls this on its timer; one seals at a time, the others skip. A pass
/// goes on only while seals are full (a backlog); transactions that commit meanwhile wait for
/// the next tick, so that under a steady load the sealer works once per interval instead of
/// chasing every new callback.
pub async fn seal_pending(pool: &Pool, keyring: &Keyring) -> Result<usize, DbError> {
    let mut sealed = 0;
    while sealed < MAX_SEALS_PER_PASS {
        match seal_once(pool, keyring).await? {
            Round::Sealed { more: true, .. } => sealed += 1,
            Round::Sealed { more: false, .. } => return Ok(sealed + 1),
            Round::UpToDate | Round::Busy | Round::Waiting => break,
        }
    }
    Ok(sealed)
}

/// One sealing round: at most one seal of at most [`MAX_TRANSACTIONS_PER_SEAL`] ids.
///
/// THE SAFE HORIZON. Ledger ids are allocated from a sequence when a posting inserts, but the
/// postings commit in any order: id 41 may still be uncommitted while 42 is visible. A seal that
/// covered 41 before it committed would leave it out of the chain for ever (or, read later,
/// change a sealed range). So a seal must only cover ids whose transaction has committed or
/// never will. The sealer finds such a horizon without taking any lock a posting needs:
///
/// 1. `ledger::store::post` makes its database transaction take a transaction id (xid) BEFORE
///    it draws the ledger id from the sequence (its first CTE is `pg_current_xact_id()`).
/// 2. The sealer reads L, the sequence's last value, in one statement. Every id <= L was drawn
///    by then, so its transaction already had an xid by then.
/// 3. In a LATER statement the sealer takes a transaction id of its own, N
///    (`pg_current_xact_id()`). Transaction ids are handed out in increasing order, so each of
///    those transactions has an xid below N.
/// 4. The sealer waits until a fresh snapshot's xmin (the oldest xid still running) is N, that
///    is until no transaction with an xid below N is running any more. Then every id <= L has
///    committed or rolled back, and a statement that starts afterwards sees every committed one.
///    Ids of transactions that rolled back are holes that stay holes.
///
/// Two tempting shortcuts are wrong. The in-progress list of a snapshot (`pg_snapshot_xip`)
/// leaves out running xids at or above the snapshot's xmax (xmax is the newest completed xid
/// plus one, not the next xid), so the newest running posting is often missing from it. And
/// `pg_xact_status` reads the commit log, which says "committed" a moment before the
/// transaction leaves the list of running ones that snapshots are made from. The xmin of a
/// fresh snapshot has neither gap.
///
/// It then seals `last sealed + 1 ..= L` (capped). A transaction that starts after step 3 draws
/// an id greater than L, so nothing new can appear below the horizon. The wait only concerns
/// transactions that had an xid before step 3; postings take milliseconds, and a long unrelated
/// transaction only delays sealing (after [`HORIZON_WAIT_MS`] the round is given up).
///
/// One sealer at a time: the round runs in a transaction holding a transaction-scoped advisory
/// lock taken with `pg_try_advisory_xact_lock`; a replica that does not get it skips the round.
/// The lock is released at commit, when the seal is visible to the next sealer. The seal's
/// `seq` primary key and the unique `first_transaction` turn any mistake into an error, never
/// into a fork. Sealing only reads the ledger, so it never delays a callback.
pub async fn seal_once(pool: &Pool, keyring: &Keyring) -> Result<Round, DbError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let locked: bool = transaction
        .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&SEAL_LOCK_KEY])
        .await?
        .get(0);
    if !locked {
        transaction.rollback().await?;
        return Ok(Round::Busy);
    }
    // Step 2: L, in a statement of its own.
    let horizon: i64 = transaction
        .query_one(
            "SELECT coalesce(pg_sequence_last_value(
                 pg_get_serial_sequence('ledger_transactions', 'id')::regclass), 0)",
            &[],
        )
        .await?
        .get(0);
    let last = transaction
        .query_opt(
            "SELECT seq, last_transaction, hash FROM ledger_seals ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .await?;
    let (last_seq, last_sealed, prev_hash): (i64, i64, String) = match last {
        Some(row) => (row.get(0), row.get(1), row.get(2)),
        None => (0, 0, GENESIS_HASH.to_owned()),
    };
    if horizon <= last_sealed {
        transaction.commit().await?;
        return Ok(Round::UpToDate);
    }
    // Step 3: an xid of our own, in a later statement than L (the seal's insert needs one
    // anyway). Carried as text: the driver has no type for xid8.
    let own_xid: String = transaction
        .query_one("SELECT pg_current_xact_id()::text", &[])
        .await?
        .get(0);
    // Step 4: wait until no transaction with an older xid is running.
    let deadline = Instant::now() + Duration::from_millis(HORIZON_WAIT_MS);
    let mut pause_ms = 1;
    loop {
        let settled: bool = transaction
            .query_one(
                "SELECT pg_snapshot_xmin(pg_current_snapshot()) >= $1::text::xid8",
                &[&own_xid],
            )
            .await?
            .get(0);
        if settled {
            break;
        }
        if Instant::now() >= deadline {
            transaction.rollback().await?;
            tracing::info!(
                "sealing waits for transactions that began before the round; trying again later"
            );
            return Ok(Round::Waiting);
        }
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        pause_ms = (pause_ms * 2).min(100);
    }
    let first = last_sealed + 1;
    let last = horizon.min(last_sealed + MAX_TRANSACTIONS_PER_SEAL);
    // This statement starts after the wait, so it sees every committed transaction <= L.
    let ledger = read_range(&transaction, first, last).await?;
    let sealed_at: OffsetDateTime = transaction
        .query_one("SELECT clock_timestamp()", &[])
        .await?
        .get(0);
    let seq = last_seq + 1;
    let sealed_at_text = format_utc(sealed_at);
    let header = Header {
        seq,
        first_transaction: first,
        last_transaction: last,
        transactions: ledger.len() as i64,
        sealed_at: &sealed_at_text,
        prev_hash: &prev_hash,
    };
    let hash = seal_hash(&header, &ledger);
    let Some((signature, public_key)) = keyring.sign(&hash) else {
        transaction.rollback().await?;
        tracing::warn!("no seal key: the ledger is not sealed");
        return Ok(Round::UpToDate);
    };
    transaction
        .execute(
            "INSERT INTO ledger_seals (seq, first_transaction, last_transaction, transactions,
                                       hash, prev_hash, sealed_at, signature, public_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &seq,
                &first,
                &last,
                &header.transactions,
                &hash,
                &prev_hash,
                &sealed_at,
                &signature,
                &public_key,
            ],
        )
        .await?;
    transaction.commit().await?;
    tracing::info!(
        seq,
        first_transaction = first,
        last_transaction = last,
        transactions = header.transactions,
        "sealed ledger transactions"
    );
    Ok(Round::Sealed {
        seq,
        more: last < horizon,
    })
}

/// Seals newest first, up to `limit + 1` (the extra one tells that a page follows), below the
/// seq `before`.
pub async fn list(pool: &Pool, before: Option<i64>, limit: i64) -> Result<Vec<Seal>, DbError> {
    let client = pool.get().await?;
    let fetch = limit + 1;
    let rows = client
        .query(
            &format!(
                "SELECT {SEAL_COLUMNS} FROM ledger_seals
                 WHERE ($1::bigint IS NULL OR seq < $1) ORDER BY seq DESC LIMIT $2"
            ),
            &[&before, &fetch],
        )
        .await?;
    Ok(rows.iter().map(seal_from_row).collect())
}

/// The newest seal, if any.
pub async fn newest(pool: &Pool) -> Result<Option<Seal>, DbError> {
    Ok(list(pool, None, 1).await?.into_iter().next())
}

/// One seal with the content its hash covers.
pub async fn get(pool: &Pool, seq: i64) -> Result<Option<SealContent>, DbError> {
    let mut client = pool.get().await?;
    // One snapshot: the seal and its content as of one instant.
    let transaction = crate::db::snapshot(&mut client).await?;
    let row = transaction
        .query_opt(
            &format!("SELECT {SEAL_COLUMNS} FROM ledger_seals WHERE seq = $1"),
            &[&seq],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let seal = seal_from_row(&row);
    let ledger = read_range(&transaction, seal.first_transaction, seal.last_transaction).await?;
    transaction.commit().await?;
    Ok(Some(SealContent { seal, ledger }))
}

/// A seal an outside auditor kept: verification fails unless the ledger still leads to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: String,
}

impl Checkpoint {
    /// Reads a checkpoint from the JSON `paygate ledger checkpoint` prints (only `seq` and
    /// `hash` matter).
    pub fn from_json(value: &Value) -> Result<Checkpoint, String> {
        let seq = value
            .get("seq")
            .and_then(Value::as_i64)
            .filter(|seq| *seq >= 1)
            .ok_or("`seq` must be a positive whole number")?;
        let hash = value
            .get("hash")
            .and_then(Value::as_str)
            .and_then(parse_hash)
            .ok_or("`hash` must be 64 lowercase hex digits")?;
        Ok(Checkpoint { seq, hash })
    }
}

/// A seal hash: 64 lowercase hex digits.
pub fn parse_hash(text: &str) -> Option<String> {
    (text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then(|| text.to_owned())
}

/// The first seal that fails verification, and why.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BrokenSeal {
    pub seq: i64,
    #[schema(example = "the hash does not match the sealed transactions")]
    pub reason: String,
}

/// The verdict on a kept checkpoint.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CheckpointVerdict {
    pub seq: i64,
    pub hash: String,
    /// True when the verified chain holds this seal with this hash.
    pub ok: bool,
}

/// What verifying the seals found.
#[derive(Debug, Clone)]
pub struct SealVerdict {
    /// Seals that verified (up to the first broken one).
    pub seals: i64,
    /// The last transaction id of the newest seal, if any.
    pub sealed_through: Option<i64>,
    pub broken_seal: Option<BrokenSeal>,
    pub checkpoint: Option<CheckpointVerdict>,
}

/// Recomputes every seal in order, checks that they chain, that each range follows the
/// previous one, that each hash matches the transactions it covers and that each signature
/// verifies with a trusted key; stops at the first broken seal. Run it inside a snapshot
/// transaction so that the seals and the ledger are read at one instant. Memory stays bounded:
/// one batch of seals and one seal's transactions at a time.
pub async fn verify(
    client: &impl GenericClient,
    keyring: &Keyring,
    checkpoint: Option<&Checkpoint>,
) -> Result<SealVerdict, tokio_postgres::Error> {
    let sealed_through: Option<i64> = client
        .query_opt(
            "SELECT last_transaction FROM ledger_seals ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .await?
        .map(|row| row.get(0));
    let mut verified = 0;
    let mut previous: (i64, i64, String) = (0, 0, GENESIS_HASH.to_owned());
    let mut broken: Option<BrokenSeal> = None;
    let mut checkpoint_ok = false;
    'batches: loop {
        let rows = client
            .query(
                &format!(
                    "SELECT {SEAL_COLUMNS} FROM ledger_seals WHERE seq > $1 ORDER BY seq LIMIT $2"
                ),
                &[&previous.0, &VERIFY_BATCH_SEALS],
            )
            .await?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let seal = seal_from_row(row);
            if let Some(reason) = check_seal(client, keyring, &seal, &previous).await? {
                broken = Some(BrokenSeal {
                    seq: seal.seq,
                    reason,
                });
                break 'batches;
            }
            verified += 1;
            if let Some(checkpoint) = checkpoint {
                if checkpoint.seq == seal.seq {
                    checkpoint_ok = checkpoint.hash == seal.hash;
                }
            }
            previous = (seal.seq, seal.last_transaction, seal.hash);
        }
    }
    Ok(SealVerdict {
        seals: verified,
        sealed_through,
        broken_seal: broken,
        checkpoint: checkpoint.map(|checkpoint| CheckpointVerdict {
            seq: checkpoint.seq,
            hash: checkpoint.hash.clone(),
            ok: checkpoint_ok,
        }),
    })
}

/// Why `seal` fails, given the previous seal's (seq, last_transaction, hash); `None` if sound.
async fn check_seal(
    client: &impl GenericClient,
    keyring: &Keyring,
    seal: &Seal,
    previous: &(i64, i64, String),
) -> Result<Option<String>, tokio_postgres::Error> {
    let (previous_seq, previous_last, previous_hash) = previous;
    if seal.seq != previous_seq + 1 {
        return Ok(Some(format!("seal {} is missing", previous_seq + 1)));
    }
    if seal.first_transaction != previous_last + 1 || seal.last_transaction < seal.first_transaction
    {
        return Ok(Some(
            "the range does not follow the previous seal's".to_owned(),
        ));
    }
    if &seal.prev_hash != previous_hash {
        return Ok(Some("prev_hash is not the previous seal's hash".to_owned()));
    }
    let ledger = read_range(client, seal.first_transaction, seal.last_transaction).await?;
    let sealed_at = format_utc(seal.sealed_at);
    let header = Header {
        seq: seal.seq,
        first_transaction: seal.first_transaction,
        last_transaction: seal.last_transaction,
        transactions: seal.transactions,
        sealed_at: &sealed_at,
        prev_hash: &seal.prev_hash,
    };
    if seal_hash(&header, &ledger) != seal.hash {
        return Ok(Some(
            "the hash does not match the sealed transactions".to_owned(),
        ));
    }
    if let Err(reason) =
        signing::check_signature(keyring, &seal.public_key, &seal.hash, &seal.signature)
    {
        return Ok(Some(reason.to_owned()));
    }
    Ok(None)
}

/// Recomputes a seal's hash from its fields and content, as an outside auditor would; for tests
/// and tools that rewrite a ledger on purpose.
pub fn recompute_hash(content: &SealContent) -> String {
    let sealed_at = format_utc(content.seal.sealed_at);
    seal_hash(
        &Header {
            seq: content.seal.seq,
            first_transaction: content.seal.first_transaction,
            last_transaction: content.seal.last_transaction,
            transactions: content.seal.transactions,
            sealed_at: &sealed_at,
            prev_hash: &content.seal.prev_hash,
        },
        &content.ledger,
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::canonical::chain_hash;

    #[test]
    fn the_streamed_hash_is_the_chain_hash_of_the_whole_canonical_document() {
        let ledger = vec![
            SealedTransaction {
                id: 3,
                kind: "payment".to_owned(),
                payment_id: "pay_Hà".to_owned(),
                callback_id: Some(7),
                refund_id: None,
                case_id: None,
                created_at: "2026-11-23T03:04:05.123456Z".to_owned(),
                entries: vec![
                    SealedEntry {
                        id: 5,
                        account: "bank:VCB".to_owned(),
                        debit: "150000".to_owned(),
                        credit: "0".to_owned(),
                    },
                    SealedEntry {
                        id: 6,
                        account: "agency:H12:fee".to_owned(),
                        debit: "0".to_owned(),
                        credit: "150000".to_owned(),
                    },
                ],
            },
            SealedTransaction {
                id: 5,
                kind: "suspense".to_owned(),
                payment_id: "pay_2".to_owned(),
                callback_id: None,
                refund_id: Some("rfd_1".to_owned()),
                case_id: None,
                created_at: "2026-11-23T03:04:06Z".to_owned(),
                entries: vec![],
            },
        ];
        let prev = "ab".repeat(32);
        let header = Header {
            seq: 2,
            first_transaction: 3,
            last_transaction: 5,
            transactions: 2,
            sealed_at: "2026-11-23T03:04:07Z",
            prev_hash: &prev,
        };
        let document = json!({
            "seq": 2, "first_transaction": 3, "last_transaction": 5, "transactions": 2,
            "sealed_at": "2026-11-23T03:04:07Z", "prev_hash": prev,
            "ledger": serde_json::to_value(&ledger).unwrap(),
        });
        assert_eq!(
            seal_hash(&header, &ledger),
            chain_hash(&prev, &to_canonical(&document))
        );
        let empty = Header {
            transactions: 0,
            ..header
        };
        let document = json!({
            "seq": 2, "first_transaction": 3, "last_transaction": 5, "transactions": 0,
            "sealed_at": "2026-11-23T03:04:07Z", "prev_hash": prev, "ledger": [],
        });
        assert_eq!(
            seal_hash(&empty, &[]),
            chain_hash(&prev, &to_canonical(&document))
        );
    }

    #[test]
    fn a_callbacks_transaction_is_sealed_as_before_and_a_refunds_names_its_refund() {
        let mut transaction = SealedTransaction {
            id: 1,
            kind: "payment".to_owned(),
            payment_id: "pay_1".to_owned(),
            callback_id: Some(7),
            refund_id: None,
            case_id: None,
            created_at: "2026-11-23T03:04:05Z".to_owned(),
            entries: vec![],
        };
        // The document every seal made before refunds existed holds: no refund_id, no case_id.
        assert_eq!(
            to_canonical(&serde_json::to_value(&transaction).unwrap()),
            r#"{"callback_id":7,"created_at":"2026-11-23T03:04:05Z","entries":[],"id":1,"kind":"payment","payment_id":"pay_1"}"#
        );
        transaction.kind = "refund".to_owned();
        transaction.callback_id = None;
        transaction.refund_id = Some("rfd_1".to_owned());
        assert_eq!(
            to_canonical(&serde_json::to_value(&transaction).unwrap()),
            r#"{"callback_id":null,"created_at":"2026-11-23T03:04:05Z","entries":[],"id":1,"kind":"refund","payment_id":"pay_1","refund_id":"rfd_1"}"#
        );
        transaction.kind = "apply".to_owned();
        transaction.refund_id = None;
        transaction.case_id = Some("cas_1".to_owned());
        assert_eq!(
            to_canonical(&serde_json::to_value(&transaction).unwrap()),
            r#"{"callback_id":null,"case_id":"cas_1","created_at":"2026-11-23T03:04:05Z","entries":[],"id":1,"kind":"apply","payment_id":"pay_1"}"#
        );
    }

    #[test]
    fn a_checkpoint_needs_a_positive_seq_and_a_lowercase_hex_hash() {
        let hash = "0f".repeat(32);
        assert_eq!(
            Checkpoint::from_json(&json!({"seq": 3, "hash": hash, "signature": "x"})),
            Ok(Checkpoint {
                seq: 3,
                hash: hash.clone()
            })
        );
        for bad in [
            json!({"seq": 0, "hash": hash}),
            json!({"seq": "3", "hash": hash}),
            json!({"seq": 3, "hash": hash.to_uppercase()}),
            json!({"seq": 3}),
            json!([]),
        ] {
            assert!(Checkpoint::from_json(&bad).is_err(), "{bad}");
        }
    }
}
