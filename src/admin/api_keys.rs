//! API keys as administrators see them: listed (never the key, never its hash) and revoked.

use deadpool_postgres::Pool;
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::store::{newest_first, AdminError};
use crate::audit::{self, Action, Actor};
use crate::auth::{self, keys, CreatedApiKey, NewApiKey, Role};
use crate::domain::AgencyCode;
use crate::http::pagination::{Page, PageRequest};

/// One API key in the list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyItem {
    /// The key's id (`key_<number>`); the key itself is never shown again.
    #[schema(example = "key_42")]
    pub id: String,
    pub role: Role,
    /// The agency an `agency` key belongs to; `null` for admin and auditor keys.
    #[schema(value_type = Option<String>, example = "000.00.00.H12", required = true)]
    pub agency: Option<AgencyCode>,
    /// Whose key it is.
    #[schema(example = "Nguyễn Thị B, kế toán", required = true)]
    pub label: Option<String>,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When the key last authenticated a request, to about a minute (it is written at most
    /// once a minute per key); `null` if it never did.
    #[serde(serialize_with = "crate::timefmt::serialize_option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub last_used_at: Option<OffsetDateTime>,
    #[serde(serialize_with = "crate::timefmt::serialize_option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub revoked_at: Option<OffsetDateTime>,
    #[serde(skip)]
    pub row_id: i64,
}

/// Which keys to list.
pub struct KeyFilter {
    pub role: Option<Role>,
    pub agency: Option<AgencyCode>,
}

/// One page of keys, newest first.
pub async fn list(
    pool: &Pool,
    filter: &KeyFilter,
    page: PageRequest,
) -> Result<Page<ApiKeyItem>, AdminError> {
    let role = filter.role.map(Role::as_str);
    let agency = filter.agency.as_ref().map(AgencyCode::as_str);
    newest_first(
        pool,
        "SELECT id, role, agency_code, label, created_at, last_used_at, revoked_at
         FROM api_keys
         WHERE ($1::text IS NULL OR role = $1)
           AND ($2::text IS NULL OR agency_code = $2)
           AND ($3::bigint IS NULL OR id < $3)
         ORDER BY id DESC LIMIT $4",
        &[&role, &agency],
        page,
        |row| ApiKeyItem {
            id: keys::key_id(row.get(0)),
            role: Role::from_db(row.get(1)),
            agency: row
                .get::<_, Option<&str>>(2)
                .map(|code| AgencyCode::parse(code).expect("agency codes are constrained")),
            label: row.get(3),
            created_at: row.get(4),
            last_used_at: row.get(5),
            revoked_at: row.get(6),
            row_id: row.get(0),
        },
        |key| key.row_id,
    )
    .await
}

/// The audit trail's name for an API key.
fn target(id: &str) -> String {
    format!("api_key:{id}")
}

/// Creates an admin or auditor key (agency keys belong to their agency, see
/// [`super::agencies::add_key`]) in one transaction with its audit entry.
pub async fn create(
    pool: &Pool,
    role: Role,
    label: Option<&str>,
    actor: &Actor,
) -> Result<CreatedApiKey, AdminError> {
    assert_ne!(role, Role::Agency, "agency keys are made for their agency");
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let key = auth::insert_api_key(
        &transaction,
        NewApiKey {
            role,
            agency: None,
            label,
        },
    )
    .await?;
    let detail = json!({"role": role.as_str(), "label": label});
    audit::record(
        &transaction,
        actor,
        Action::ApiKeyCreate,
        &target(&key.id),
        detail,
    )
    .await?;
    transaction.commit().await?;
    tracing::info!(role = role.as_str(), key_id = %key.id, via = actor.via.as_str(), "API key created");
    Ok(key)
}

/// Revokes the key `id` (as the API writes it). From the commit on, the key authenticates
/// nothing. Revoking a revoked key succeeds and changes nothing, so a retried request does not
/// fail. The last live admin key cannot be revoked: nobody could administer paygate any more
/// (but `paygate admin create-key` can always make a new one). Only the revocation that changed
/// the key is recorded in the audit trail.
pub async fn revoke(pool: &Pool, id: &str, actor: &Actor) -> Result<(), AdminError> {
    let not_found = || AdminError::KeyNotFound(id.to_owned());
    let row_id = keys::parse_key_id(id).ok_or_else(not_found)?;
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let (role, agency, label) = transaction
        .query_opt(
            "SELECT role, agency_code, label FROM api_keys WHERE id = $1",
            &[&row_id],
        )
        .await?
        .map(|row| {
            (
                Role::from_db(row.get(0)),
                row.get::<_, Option<String>>(1),
                row.get::<_, Option<String>>(2),
            )
        })
        .ok_or_else(not_found)?;
    if role == Role::Admin {
        // Two revocations of the last two admin keys must not both succeed. Each locks every
        // live admin key, in one order (so they cannot deadlock), before it counts them: the
        // second waits for the first, and then re-reads the rows it locks, so it sees the
        // first's revocation and finds one live admin key left.
        let live: Vec<i64> = transaction
            .query(
                "SELECT id FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL
                 ORDER BY id FOR UPDATE",
                &[],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        if !live.contains(&row_id) {
            // Already revoked (perhaps just now, by a concurrent request).
            transaction.commit().await?;
            return Ok(());
        }
        if live.len() <= 1 {
            return Err(AdminError::LastAdminKey(id.to_owned()));
        }
    }
    let revoked = transaction
        .execute(
            "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
            &[&row_id],
        )
        .await?;
    if revoked > 0 {
        let detail = json!({"role": role.as_str(), "agency": agency, "label": label});
        audit::record(
            &transaction,
            actor,
            Action::ApiKeyRevoke,
            &target(id),
            detail,
        )
        .await?;
    }
    transaction.commit().await?;
    tracing::info!(key_id = id, role = role.as_str(), "API key revoked");
    Ok(())
}
