//! Reading the audit trail: the list, and the verification of its chain.

use deadpool_postgres::Pool;
use serde::Serialize;
use time::OffsetDateTime;
use tokio_postgres::types::ToSql;
use utoipa::ToSchema;

use super::{AuditEntry, ENTRY_COLUMNS};
use crate::db::snapshot::snapshot;
use crate::db::DbError;
use crate::domain::canonical::GENESIS_HASH;
use crate::http::pagination::{Page, PageRequest};

/// Which entries to list; every filter is optional.
#[derive(Debug, Default)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub key_id: Option<String>,
    pub target: Option<String>,
    /// At or after.
    pub from: Option<OffsetDateTime>,
    /// Before.
    pub to: Option<OffsetDateTime>,
}

/// One page of entries, newest first.
pub async fn list(
    pool: &Pool,
    filter: &AuditFilter,
    page: PageRequest,
) -> Result<Page<AuditEntry>, DbError> {
    let fetch = page.limit + 1;
    let params: [&(dyn ToSql + Sync); 7] = [
        &filter.action,
        &filter.key_id,
        &filter.target,
        &filter.from,
        &filter.to,
        &page.cursor,
        &fetch,
    ];
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {ENTRY_COLUMNS} FROM audit_log
                 WHERE ($1::text IS NULL OR action = $1)
                   AND ($2::text IS NULL OR actor_key_id = $2)
                   AND ($3::text IS NULL OR target = $3)
                   AND ($4::timestamptz IS NULL OR at >= $4)
                   AND ($5::timestamptz IS NULL OR at < $5)
                   AND ($6::bigint IS NULL OR seq < $6)
                 ORDER BY seq DESC LIMIT $7"
            ),
            &params,
        )
        .await?;
    let entries = rows.iter().map(AuditEntry::from_row).collect();
    Ok(Page::from_rows(
        entries,
        page.limit,
        |entry: &AuditEntry| entry.seq,
    ))
}

/// The verdict on the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AuditVerification {
    /// True when every entry is where the chain says and carries the hash it should.
    pub ok: bool,
    /// How many entries the log holds.
    pub entries: i64,
    /// The newest entry's `hash`; `null` while the log is empty.
    #[schema(required = true)]
    pub head: Option<String>,
    /// When `ok` is false: the first `seq` at which the chain breaks (an entry changed, or the
    /// number of a missing one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken_seq: Option<i64>,
    /// When `ok` is false: what is wrong at `broken_seq`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Entries read per round of the verification, so that a log of millions of entries is
/// verified in constant memory.
const VERIFY_BATCH_ROWS: i64 = 1_000;

/// Recomputes the whole chain from its first entry, in batches, in one snapshot (entries
/// appended meanwhile are left for the next verification).
pub async fn verify(pool: &Pool) -> Result<AuditVerification, DbError> {
    let mut client = pool.get().await?;
    let transaction = snapshot(&mut client).await?;
    let statement = transaction
        .prepare(&format!(
            "SELECT {ENTRY_COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
        ))
        .await?;
    let mut chain = Chain::default();
    let mut after = 0i64;
    loop {
        let rows = transaction
            .query(&statement, &[&after, &VERIFY_BATCH_ROWS])
            .await?;
        for row in &rows {
            chain.check(&AuditEntry::from_row(row));
        }
        match rows.last() {
            Some(last) if rows.len() as i64 == VERIFY_BATCH_ROWS => after = last.get("seq"),
            _ => break,
        }
    }
    transaction.commit().await?;
    Ok(chain.verdict())
}

/// The verification's state while the entries stream past in `seq` order.
#[derive(Debug, Default)]
struct Chain {
    entries: i64,
    last_seq: i64,
    /// The hash of the entry before the next one, as stored.
    head: Option<String>,
    broken: Option<(i64, String)>,
}

impl Chain {
    fn check(&mut self, entry: &AuditEntry) {
        self.entries += 1;
        let expected_seq = self.last_seq + 1;
        let prev_hash = self.head.as_deref().unwrap_or(GENESIS_HASH);
        if self.broken.is_none() {
            let fault = if entry.seq != expected_seq {
                Some((
                    expected_seq,
                    format!(
                        "entry {expected_seq} is missing (the next is {})",
                        entry.seq
                    ),
                ))
            } else if entry.id != AuditEntry::id_of(entry.seq) {
                Some((entry.seq, "its id does not match its seq".to_owned()))
            } else if entry.prev_hash != prev_hash {
                Some((
                    entry.seq,
                    "its prev_hash is not the previous entry's hash".to_owned(),
                ))
            } else if entry.hash != entry.computed_hash() {
                Some((
                    entry.seq,
                    "its hash does not match its content (the entry was changed)".to_owned(),
                ))
            } else {
                None
            };
            self.broken = fault;
        }
        self.last_seq = entry.seq;
        self.head = Some(entry.hash.clone());
    }

    fn verdict(self) -> AuditVerification {
        let (broken_seq, reason) = match self.broken {
            Some((seq, reason)) => (Some(seq), Some(reason)),
            None => (None, None),
        };
        AuditVerification {
            ok: broken_seq.is_none(),
            entries: self.entries,
            head: self.head,
            broken_seq,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Actor;
    use super::*;

    fn chain_of(n: i64) -> Vec<AuditEntry> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|seq| {
                let mut entry = AuditEntry {
                    id: AuditEntry::id_of(seq),
                    seq,
                    at: time::macros::datetime!(2026-12-02 08:30:00 UTC),
                    actor: Actor::system(),
                    action: "bank.update".to_owned(),
                    target: "bank:VCB".to_owned(),
                    detail: serde_json::json!({"disabled": seq % 2 == 0}),
                    request_id: None,
                    hash: String::new(),
                    prev_hash: prev.clone(),
                };
                entry.hash = entry.computed_hash();
                prev = entry.hash.clone();
                entry
            })
            .collect()
    }

    fn verdict(entries: &[AuditEntry]) -> AuditVerification {
        let mut chain = Chain::default();
        for entry in entries {
            chain.check(entry);
        }
        chain.verdict()
    }

    #[test]
    fn a_sound_chain_is_ok_and_an_empty_one_has_no_head() {
        let entries = chain_of(5);
        let sound = verdict(&entries);
        assert!(sound.ok);
        assert_eq!(sound.entries, 5);
        assert_eq!(sound.head.as_deref(), Some(entries[4].hash.as_str()));
        let empty = verdict(&[]);
        assert!(empty.ok && empty.entries == 0 && empty.head.is_none());
    }

    #[test]
    fn a_changed_removed_or_relinked_entry_names_its_seq() {
        let mut changed = chain_of(5);
        changed[2].detail = serde_json::json!({"disabled": true});
        assert_eq!(verdict(&changed).broken_seq, Some(3));

        let mut removed = chain_of(5);
        removed.remove(1);
        let removed = verdict(&removed);
        assert_eq!((removed.ok, removed.broken_seq), (false, Some(2)));
        assert_eq!(removed.entries, 4);

        // An entry rewritten with a hash recomputed over its new content breaks the next link.
        let mut rehashed = chain_of(5);
        rehashed[1].target = "bank:BIDV".to_owned();
        rehashed[1].hash = rehashed[1].computed_hash();
        assert_eq!(verdict(&rehashed).broken_seq, Some(3));
    }
}
