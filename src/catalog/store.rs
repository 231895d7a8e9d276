//! The catalog's SQL: read an entry's state on the order path, list, create and update entries
//! with their audit entries.

use deadpool_postgres::{GenericClient, Pool};
use serde::Serialize;
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio_postgres::Row;
use utoipa::ToSchema;

use crate::audit::{self, Action, Actor};
use crate::db::error::violated_constraint;
use crate::db::DbError;

/// One catalog entry, as the API answers it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CatalogEntry {
    /// The obligation's code, which orders name in `obligation`.
    #[schema(example = "hospital_fee")]
    pub code: String,
    #[schema(example = "Viện phí (hospital fees)")]
    pub name: String,
    /// Whether paygate brought the entry (the six original obligations) or an admin created it.
    pub builtin: bool,
    /// An inactive obligation refuses new orders; its existing orders are unchanged.
    pub active: bool,
    /// The JSON Schema (draft 2020-12) every order's `details` must satisfy; it never changes.
    #[schema(value_type = Object)]
    pub details_schema: Value,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

/// What can go wrong when changing the catalog.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("an obligation with code {0} exists")]
    Duplicate(String),
    #[error("no obligation with code {0}")]
    NotFound(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::from_db_errors!(StoreError);

const COLUMNS: &str = "code, name, builtin, active, details_schema, created_at";

fn entry(row: &Row) -> CatalogEntry {
    CatalogEntry {
        code: row.get("code"),
        name: row.get("name"),
        builtin: row.get("builtin"),
        active: row.get("active"),
        details_schema: row.get("details_schema"),
        created_at: row.get("created_at"),
    }
}

fn target(code: &str) -> String {
    format!("obligation:{code}")
}

/// Whether the entry is active and the digest of its schema; `None` when there is no such entry.
pub async fn state(
    client: &impl GenericClient,
    code: &str,
) -> Result<Option<(bool, String)>, DbError> {
    let statement = client
        .prepare_cached("SELECT active, schema_digest FROM obligations WHERE code = $1")
        .await?;
    let row = client.query_opt(&statement, &[&code]).await?;
    Ok(row.map(|row| (row.get(0), row.get(1))))
}

/// The entry's schema; `None` when there is no such entry.
pub async fn details_schema(
    client: &impl GenericClient,
    code: &str,
) -> Result<Option<Value>, DbError> {
    let row = client
        .query_opt(
            "SELECT details_schema FROM obligations WHERE code = $1",
            &[&code],
        )
        .await?;
    Ok(row.map(|row| row.get(0)))
}

/// Every entry, the built-ins first in their original order, then the others as created.
pub async fn list(pool: &Pool) -> Result<Vec<CatalogEntry>, DbError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!("SELECT {COLUMNS} FROM obligations ORDER BY seq"),
            &[],
        )
        .await?;
    Ok(rows.iter().map(entry).collect())
}

/// A new entry whose schema has been checked (see [`crate::catalog::schema::check`]).
pub struct NewEntry {
    pub code: String,
    pub name: String,
    pub details_schema: Value,
}

/// Creates an entry, with its audit entry.
pub async fn create(pool: &Pool, new: NewEntry, actor: &Actor) -> Result<CatalogEntry, StoreError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let inserted = transaction
        .query_one(
            &format!(
                "INSERT INTO obligations (code, name, details_schema) VALUES ($1, $2, $3)
                 RETURNING {COLUMNS}"
            ),
            &[&new.code, &new.name, &new.details_schema],
        )
        .await;
    let row = match inserted {
        Ok(row) => row,
        Err(err) => {
            return Err(match violated_constraint(&err) {
                Some("obligations_pkey") => StoreError::Duplicate(new.code),
                _ => err.into(),
            })
        }
    };
    let created = entry(&row);
    let detail = json!({"name": created.name});
    audit::record(
        &transaction,
        actor,
        Action::ObligationCreate,
        &target(&created.code),
        detail,
    )
    .await?;
    transaction.commit().await?;
    tracing::info!(obligation = %created.code, "obligation created");
    Ok(created)
}

/// What a PATCH changes; `None` leaves a field as it is.
pub struct Changes {
    pub name: Option<String>,
    pub active: Option<bool>,
}

/// Changes an entry's name or whether it is active, with an audit entry naming what changed.
pub async fn update(
    pool: &Pool,
    code: &str,
    changes: Changes,
    actor: &Actor,
) -> Result<CatalogEntry, StoreError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let row = transaction
        .query_opt(
            &format!(
                "UPDATE obligations SET name = coalesce($2, name), active = coalesce($3, active)
                 WHERE code = $1 RETURNING {COLUMNS}"
            ),
            &[&code, &changes.name, &changes.active],
        )
        .await?
        .ok_or_else(|| StoreError::NotFound(code.to_owned()))?;
    let updated = entry(&row);
    let mut detail = serde_json::Map::new();
    if let Some(name) = changes.name {
        detail.insert("name".to_owned(), Value::String(name));
    }
    if let Some(active) = changes.active {
        detail.insert("active".to_owned(), Value::Bool(active));
    }
    audit::record(
        &transaction,
        actor,
        Action::ObligationUpdate,
        &target(code),
        Value::Object(detail),
    )
    .await?;
    transaction.commit().await?;
    tracing::info!(obligation = %code, "obligation updated");
    Ok(updated)
}
