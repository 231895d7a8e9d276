//! Plain SQL migrations from `migrations/`, applied in order, each once.
//!
//! The files are compiled into the binary, so a deployed image needs nothing beside it to
//! migrate. Replicas that start together serialise on a PostgreSQL advisory lock; each file runs
//! in its own transaction together with the row that records it, so a failed migration leaves
//! nothing half-applied.

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
];

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

/// Applies the pending migrations and returns the names of those it applied.
pub async fn run(client: &mut Client) -> Result<Vec<String>, MigrateError> {
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
            Some(row) if row.get::<_, String>(0) == checksum => continue,
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
