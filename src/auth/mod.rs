//! Authentication and roles: bearer API keys, stored only as hashes (see `docs/api-guide.md`).

pub mod extract;
pub mod keys;

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use deadpool_postgres::GenericClient;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::db::DbError;
use crate::domain::AgencyCode;

/// Why a request's key is refused although it was found, or why it could not be looked up.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The key belongs to an agency that an administrator disabled.
    #[error("agency {0} is disabled; its keys are refused")]
    AgencyDisabled(AgencyCode),
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::from_db_errors!(AuthError);

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages agencies, banks and keys; reads everything.
    Admin,
    /// Reads everything; runs reconciliations.
    Auditor,
    /// Bound to one agency: its payments and events only.
    Agency,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Auditor => "auditor",
            Role::Agency => "agency",
        }
    }

    /// The role named `value` (`admin`, `auditor` or `agency`).
    pub fn parse(value: &str) -> Option<Role> {
        match value {
            "admin" => Some(Role::Admin),
            "auditor" => Some(Role::Auditor),
            "agency" => Some(Role::Agency),
            _ => None,
        }
    }

    pub(crate) fn from_db(value: &str) -> Role {
        Role::parse(value).expect("the role column is constrained")
    }
}

/// The authenticated caller of a request: everything needed to say who did something.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The key's id as the API shows it (`key_42`); never the key itself.
    pub key_id: String,
    pub role: Role,
    /// Set exactly when `role` is `Agency`.
    pub agency: Option<AgencyCode>,
    /// Whose key it is, as the administrator who made it wrote it.
    pub label: Option<String>,
    /// The request's `X-Request-Id` (given by the client or made by paygate), for the audit
    /// trail; set by the extractor, `None` outside a request.
    pub request_id: Option<String>,
}

/// A key's label: whose key it is.
pub const LABEL_MAX_CHARS: usize = 64;

/// Checks a key's label: 1-64 characters, no NUL (which PostgreSQL text cannot hold).
pub fn parse_label(label: &str) -> Result<String, String> {
    let chars = label.chars().count();
    if !(1..=LABEL_MAX_CHARS).contains(&chars) {
        return Err(format!("must be 1 to {LABEL_MAX_CHARS} characters long"));
    }
    if label.contains('\0') {
        return Err("must not contain the NUL character (U+0000)".to_owned());
    }
    Ok(label.to_owned())
}

/// `last_used_at` is rewritten only when it is older than this, so a key that makes many
/// requests costs one write a minute, not one per request; the column is accurate to about
/// this much.
pub const LAST_USED_PRECISION_S: f64 = 60.0;

/// Keys whose `last_used_at` this process is writing or has written, by key hash, with the
/// stale value it replaced. Concurrent requests with one key all see the same stale value;
/// only the first of them writes. (A request that sees a different value, e.g. after the
/// write landed and a minute passed, writes again.)
static USE_WRITES: LazyLock<Mutex<HashMap<Vec<u8>, Option<OffsetDateTime>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Bounds the map above; it only deduplicates, so forgetting everything is harmless.
const USE_WRITES_MAX_ENTRIES: usize = 10_000;

/// True when this request should write `last_used_at` over `seen`.
fn claim_use_write(hash: &[u8], seen: Option<OffsetDateTime>) -> bool {
    let mut writes = USE_WRITES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if writes.get(hash) == Some(&seen) {
        return false;
    }
    if writes.len() >= USE_WRITES_MAX_ENTRIES {
        writes.clear();
    }
    writes.insert(hash.to_vec(), seen);
    true
}

fn forget_use_write(hash: &[u8]) {
    let mut writes = USE_WRITES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    writes.remove(hash);
}

/// Finds the live key whose hash matches `key`. A key of a disabled agency is found and then
/// refused with [`AuthError::AgencyDisabled`]; an unknown or revoked key is `None`.
pub async fn authenticate(
    client: &impl GenericClient,
    key: &str,
) -> Result<Option<Principal>, AuthError> {
    let hash = keys::hash_api_key(key);
    let statement = client
        .prepare_typed_cached(
            "SELECT k.id, k.role, k.agency_code, k.label, k.last_used_at,
                    k.last_used_at IS NULL
                        OR k.last_used_at < now() - make_interval(secs => $2),
                    coalesce(a.disabled, false)
             FROM api_keys k LEFT JOIN agencies a ON a.code = k.agency_code
             WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
            &[
                tokio_postgres::types::Type::BYTEA,
                tokio_postgres::types::Type::FLOAT8,
            ],
        )
        .await?;
    let Some(row) = client
        .query_opt(&statement, &[&hash, &LAST_USED_PRECISION_S])
        .await?
    else {
        return Ok(None);
    };
    let id: i64 = row.get(0);
    let stale: bool = row.get(5);
    if stale && claim_use_write(&hash, row.get(4)) {
        record_use(client, id, &hash).await;
    }
    let principal = Principal {
        key_id: keys::key_id(id),
        role: Role::from_db(row.get(1)),
        agency: row
            .get::<_, Option<String>>(2)
            .map(|code| AgencyCode::parse(&code).expect("agency codes are constrained")),
        label: row.get(3),
        request_id: None,
    };
    if row.get::<_, bool>(6) {
        if let Some(agency) = principal.agency {
            return Err(AuthError::AgencyDisabled(agency));
        }
    }
    Ok(Some(principal))
}

/// Writes `last_used_at`, unless another request (here or in another replica) did within the
/// last minute. A failure is logged, not answered: the request itself is fine.
async fn record_use(client: &impl GenericClient, id: i64, hash: &[u8]) {
    let written = client
        .execute(
            "UPDATE api_keys SET last_used_at = now()
             WHERE id = $1
               AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $2))",
            &[&id, &LAST_USED_PRECISION_S],
        )
        .await;
    if let Err(err) = written {
        forget_use_write(hash);
        tracing::warn!(key_id = %keys::key_id(id), error = %err, "could not record a key's use");
    }
}

/// A key to create.
#[derive(Debug, Clone, Copy)]
pub struct NewApiKey<'a> {
    pub role: Role,
    /// Exactly for role `Agency`.
    pub agency: Option<&'a AgencyCode>,
    pub label: Option<&'a str>,
}

/// A key just created: the only time the key itself is seen.
#[derive(Debug, Clone)]
pub struct CreatedApiKey {
    /// The key's id as the API shows it (`key_42`).
    pub id: String,
    pub api_key: String,
}

/// Creates an API key; only its hash is stored.
pub async fn insert_api_key(
    client: &impl GenericClient,
    key: NewApiKey<'_>,
) -> Result<CreatedApiKey, tokio_postgres::Error> {
    let api_key = keys::random_secret("pgk");
    let row = client
        .query_one(
            "INSERT INTO api_keys (key_hash, role, agency_code, label) VALUES ($1, $2, $3, $4)
             RETURNING id",
            &[
                &keys::hash_api_key(&api_key),
                &key.role.as_str(),
                &key.agency.map(AgencyCode::as_str),
                &key.label,
            ],
        )
        .await?;
    Ok(CreatedApiKey {
        id: keys::key_id(row.get(0)),
        api_key,
    })
}

/// Creates an unlabelled API key and returns it (the key itself, shown this once).
pub async fn create_api_key(
    client: &impl GenericClient,
    role: Role,
    agency: Option<&AgencyCode>,
) -> Result<String, tokio_postgres::Error> {
    let created = insert_api_key(
        client,
        NewApiKey {
            role,
            agency,
            label: None,
        },
    )
    .await?;
    Ok(created.api_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_of_1_to_64_characters_without_nul_are_accepted() {
        assert_eq!(parse_label("Kế toán trưởng").unwrap(), "Kế toán trưởng");
        assert!(parse_label(&"ệ".repeat(64)).is_ok());
        assert!(parse_label(&"ệ".repeat(65)).is_err());
        assert!(parse_label("").is_err());
        assert!(parse_label("a\0b").is_err());
    }

    #[test]
    fn concurrent_uses_of_one_stale_value_write_once() {
        let hash = keys::hash_api_key(&keys::random_secret("pgk"));
        assert!(claim_use_write(&hash, None));
        assert!(!claim_use_write(&hash, None), "the same stale value");
        let later = OffsetDateTime::now_utc();
        assert!(claim_use_write(&hash, Some(later)), "a newer stale value");
        forget_use_write(&hash);
        assert!(claim_use_write(&hash, Some(later)), "after a failed write");
    }
}
