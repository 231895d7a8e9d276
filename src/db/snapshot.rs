//! Read-only snapshots: several queries that must see the database at one instant.

use deadpool_postgres::{Client, Transaction};

use super::error::DbError;

/// A read-only transaction at REPEATABLE READ: every query in it sees the same committed state,
/// so that (for example) totals read in two queries cannot disagree because a posting committed
/// between them. Read-only transactions at this level never fail with a serialization error.
pub async fn snapshot(client: &mut Client) -> Result<Transaction<'_>, DbError> {
    Ok(client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?)
}
