//! Plain SQL migrations from `migrations/`, applied in order, each once.
//!
//! The files are compiled into the binary, so a deployed image needs nothing beside it to
//! migrate. Replicas that start together serialise on a PostgreSQL advisory lock; each file runs
//! in its own transaction together with the row that records it, so a failed migration leaves
//! nothing half-applied.
//!
//! Migrations run as the owner of the schema. A run that finds nothing pending only reads
//! `schema_migrations`, which the service role may do, so commands run with the service role's
//! URL work on an up-to-date database (and fail with a permission error on an outdated one).

use sha2::{Digest, Sha256};
use tokio_postgres::Client;

/// Every migration, in the order it is applied. Names are never reused or edited once landed.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_foundation.sql",
        include_str!("../../migrations/0001_foundation.sql"),
    ),
    (
        "0002_payments.sql",
        include_str!("../../migrations/0002_payments.sql"),
    ),
    (
        "0003_callbacks_ledger.sql",
        include_str!("../../migrations/0003_callbacks_ledger.sql"),
    ),
    (
        "0004_notifications.sql",
        include_str!("../../migrations/0004_notifications.sql"),
    ),
    (
        "0005_reconciliation.sql",
        include_str!("../../migrations/0005_reconciliation.sql"),
    ),
    (
        "0006_keys_and_switches.sql",
        include_str!("../../migrations/0006_keys_and_switches.sql"),
    ),
    (
        "0007_service_role.sql",
        include_str!("../../migrations/0007_service_role.sql"),
    ),
    (
        "0008_audit_log.sql",
        include_str!("../../migrations/0008_audit_log.sql"),
    ),
    (
        "0009_ledger_seals.sql",
        include_str!("../../migrations/0009_ledger_seals.sql"),
    ),
    (
        "0010_cases_and_refunds.sql",
        include_str!("../../migrations/0010_cases_and_refunds.sql"),
    ),
    (
        "0011_obligation_catalog.sql",
        include_str!("../../migrations/0011_obligation_catalog.sql"),
    ),
    (
        "0012_console.sql",
        include_str!("../../migrations/0012_console.sql"),
    ),
    (
        "0013_reconciliation_speed.sql",
        include_str!("../../migrations/0013_reconciliation_speed.sql"),
    ),
    (
        "0014_reconciliation_items_by_run_number.sql",
        include_str!("../../migrations/0014_reconciliation_items_by_run_number.sql"),
    ),
    (
        "0015_bank_key_changes.sql",
        include_str!("../../migrations/0015_bank_key_changes.sql"),
    ),
    (
        "0016_sandbox_and_checklists.sql",
        include_str!("../../migrations/0016_sandbox_and_checklists.sql"),
    ),
    (
        "0017_statement_indexes.sql",
        include_str!("../../migrations/0017_statement_indexes.sql"),
    ),
];

/// Checksums that earlier releases recorded for migrations whose comments have been reworded
/// since (their statements are unchanged), so that databases those releases migrated still count
/// as up to date. Only a change to comments may ever be listed here: a change to what a
/// migration does is a new migration.
const REWORDED: &[(&str, &str)] = &[
    (
        "0001_foundation.sql",
        "227463293e5461ace5266593ff1c2524326e97279e6ed2f54e6b432fcb87ebaa",
    ),
    (
        "0002_payments.sql",
        "6918619002ae73a1e68a01664813bc3c1a14fc453cea20559288adda95e569ff",
    ),
    (
        "0003_callbacks_ledger.sql",
        "9b808ed8e201384a98409c135410c3f1174ef735f3e07ccdad2a199e71351007",
    ),
    (
        "0004_notifications.sql",
        "79ca967ac4d45808f502b9221445d49972f858a464ca59229f87485844e16049",
    ),
    (
        "0005_reconciliation.sql",
        "49eb2d2efb78a1cc7cebcf87489f7d639d0bab8bd66e48b57ae621a79b323c82",
    ),
];

/// True when `recorded` is the checksum of migration `name` (whose text is `sql`) as this or an
/// earlier release applied it.
fn is_recorded_checksum(name: &str, sql: &str, recorded: &str) -> bool {
    recorded == hex::encode(Sha256::digest(sql.as_bytes())) || REWORDED.contains(&(name, recorded))
}

/// An arbitrary constant that identifies paygate's migration lock among advisory locks.
const MIGRATION_LOCK_KEY: i64 = 0x7061_7967_6174_6501;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("migration {0} was changed after it was applied (checksum differs); add a new migration instead")]
    Edited(String),
    #[error("migration {name} failed: {source}")]
    Failed {
        name: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("database error while migrating: {0}")]
    Database(#[from] tokio_postgres::Error),
}

impl MigrateError {
    /// True when the role lacks a privilege a migration needs (SQLSTATE 42501): it is not the
    /// owner of the schema.
    pub fn is_permission_denied(&self) -> bool {
        let source = match self {
            MigrateError::Failed { source, .. } | MigrateError::Database(source) => source,
            MigrateError::Edited(_) => return false,
        };
        source.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    }
}

/// Applies the pending migrations and returns the names of those it applied.
pub async fn run(client: &mut Client) -> Result<Vec<String>, MigrateError> {
    if up_to_date(client).await? {
        return Ok(Vec::new());
    }
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    let result = apply_pending(client).await;
    // The lock is per session: release it even when a migration failed.
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    result
}

/// True when every migration is recorded with its checksum; no lock and no DDL, so any role that
/// may read `schema_migrations` can ask. A missing or edited migration answers false, and the
/// locked path below then applies or reports it.
pub async fn up_to_date(client: &Client) -> Result<bool, MigrateError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        return Ok(false);
    }
    let rows = client
        .query("SELECT name, sha256 FROM schema_migrations", &[])
        .await?;
    let applied: std::collections::HashMap<String, String> =
        rows.iter().map(|row| (row.get(0), row.get(1))).collect();
    Ok(MIGRATIONS.iter().all(|(name, sql)| {
        applied
            .get(*name)
            .is_some_and(|recorded| is_recorded_checksum(name, sql, recorded))
    }))
}

async fn apply_pending(client: &mut Client) -> Result<Vec<String>, MigrateError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                name text PRIMARY KEY,
                sha256 text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await?;
    let mut applied = Vec::new();
    for (name, sql) in MIGRATIONS {
        let checksum = hex::encode(Sha256::digest(sql.as_bytes()));
        let row = client
            .query_opt(
                "SELECT sha256 FROM schema_migrations WHERE name = $1",
                &[name],
            )
            .await?;
        match row {
            Some(row) if is_recorded_checksum(name, sql, row.get(0)) => continue,
            Some(_) => return Err(MigrateError::Edited((*name).to_owned())),
            None => {}
        }
        let failed = |source| MigrateError::Failed {
            name: (*name).to_owned(),
            source,
        };
        let transaction = client.transaction().await?;
        transaction.batch_execute(sql).await.map_err(failed)?;
        transaction
            .execute(
                "INSERT INTO schema_migrations (name, sha256) VALUES ($1, $2)",
                &[name, &checksum],
            )
            .await?;
        transaction.commit().await?;
        tracing::info!(migration = name, "applied migration");
        applied.push((*name).to_owned());
    }
    Ok(applied)
}
