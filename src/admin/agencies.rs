//! Agencies: the services that create payment orders and receive notifications.

use deadpool_postgres::{GenericClient, Pool};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use url::Url;
use utoipa::ToSchema;

use super::store::{agency_code, apply_changes, changed_fields, newest_first, AdminError, Changes};
use crate::audit::{self, redact, Action, Actor};
use crate::auth::{self, keys, CreatedApiKey, NewApiKey, Role};
use crate::db::error::violated_constraint;
use crate::domain::{AgencyCode, ObligationCode};
use crate::http::pagination::{Page, PageRequest};

pub struct NewAgency {
    pub code: AgencyCode,
    pub name: String,
    pub notify_url: Option<Url>,
    /// The label of the agency's first API key.
    pub key_label: Option<String>,
    pub sandbox: bool,
}

/// The answer to creating an agency: the only time its first key and its secret are shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedAgency {
    #[schema(value_type = String, example = "000.00.00.H12")]
    pub code: AgencyCode,
    #[schema(example = "Sở Tư pháp Hà Nội")]
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "https://dvc.hanoi.gov.vn/paygate/notify")]
    pub notify_url: Option<String>,
    /// The agency's first API key (role `agency`); shown once.
    pub api_key: String,
    /// The id of `api_key`, under which it is listed and revoked.
    #[schema(example = "key_42")]
    pub api_key_id: String,
    /// The HMAC key with which paygate signs this agency's notifications; shown once.
    pub notify_secret: String,
    /// Whether this is a sandbox agency (fixed at creation).
    pub sandbox: bool,
}

/// An agency as administrators read it: never with its secrets.
#[derive(Debug, Serialize, ToSchema)]
pub struct Agency {
    #[schema(value_type = String, example = "000.00.00.H12")]
    pub code: AgencyCode,
    #[schema(example = "Sở Tư pháp Hà Nội")]
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify_url: Option<String>,
    /// A disabled agency's keys are refused (403 `agency_disabled`); its orders stay payable
    /// and its events are still delivered.
    pub disabled: bool,
    /// The codes of the obligations the agency may create orders of; absent: every active
    /// obligation of the catalog (as agencies were before the catalog, so their answers are
    /// unchanged).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = json!(["fee", "hospital_fee"]))]
    pub obligations: Option<Vec<String>>,
    /// Whether this is a sandbox agency (fixed at creation): its orders are paid only by
    /// sandbox banks, and its money is kept in `sandbox:` ledger accounts.
    pub sandbox: bool,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    /// When the agency's last payment order was created; `null` before its first.
    #[serde(serialize_with = "crate::timefmt::serialize_option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub last_activity_at: Option<OffsetDateTime>,
    #[serde(skip)]
    pub seq: i64,
}

/// The columns every read of an agency selects, `last_activity_at` included: the creation time
/// of its newest order, found through the index on (agency_code, seq), so that it costs one
/// index probe per agency and no order ever writes to the agency's row.
const AGENCY_COLUMNS: &str =
    "a.code, a.name, a.notify_url, a.disabled, a.obligations, a.sandbox, a.created_at,
    a.updated_at,
    (SELECT p.created_at FROM payments p WHERE p.agency_code = a.code
     ORDER BY p.seq DESC LIMIT 1) AS last_activity_at,
    a.seq";

impl Agency {
    fn from_row(row: &tokio_postgres::Row) -> Self {
        Agency {
            code: agency_code(row, "code"),
            name: row.get("name"),
            notify_url: row.get("notify_url"),
            disabled: row.get("disabled"),
            obligations: row.get("obligations"),
            sandbox: row.get("sandbox"),
            created_at: row.get("created_at"),
            updated_at: row.get("updated_at"),
            last_activity_at: row.get("last_activity_at"),
            seq: row.get("seq"),
        }
    }
}

/// The audit trail's name for an agency.
fn target(code: &AgencyCode) -> String {
    format!("agency:{code}")
}

/// Creates the agency and its first API key in one transaction, with its audit entry.
pub async fn create(
    pool: &Pool,
    agency: NewAgency,
    actor: &Actor,
) -> Result<CreatedAgency, AdminError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let notify_secret = keys::random_secret("nsk");
    let notify_url = agency.notify_url.map(String::from);
    let inserted = transaction
        .execute(
            "INSERT INTO agencies (code, name, notify_url, notify_secret, sandbox)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &agency.code.as_str(),
                &agency.name,
                &notify_url,
                &notify_secret,
                &agency.sandbox,
            ],
        )
        .await;
    if let Err(err) = inserted {
        return Err(match violated_constraint(&err) {
            Some("agencies_pkey") => AdminError::DuplicateAgency(agency.code),
            _ => err.into(),
        });
    }
    let key = auth::insert_api_key(
        &transaction,
        NewApiKey {
            role: Role::Agency,
            agency: Some(&agency.code),
            label: agency.key_label.as_deref(),
        },
    )
    .await?;
    let detail = json!({
        "name": agency.name,
        "notify_url": notify_url.as_deref().and_then(redact::stored_address),
        "key_id": key.id,
        "key_label": agency.key_label,
        "sandbox": agency.sandbox,
    });
    audit::record(
        &transaction,
        actor,
        Action::AgencyCreate,
        &target(&agency.code),
        detail,
    )
    .await?;
    transaction.commit().await?;
    tracing::info!(agency = %agency.code, key_id = %key.id, "agency created");
    Ok(CreatedAgency {
        code: agency.code,
        name: agency.name,
        notify_url,
        api_key: key.api_key,
        api_key_id: key.id,
        notify_secret,
        sandbox: agency.sandbox,
    })
}

/// Adds a further API key, with its audit entry; the agency's older keys stay valid.
pub async fn add_key(
    pool: &Pool,
    code: &AgencyCode,
    label: Option<&str>,
    actor: &Actor,
) -> Result<CreatedApiKey, AdminError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let created = auth::insert_api_key(
        &transaction,
        NewApiKey {
            role: Role::Agency,
            agency: Some(code),
            label,
        },
    )
    .await;
    let key = match created {
        Ok(key) => key,
        Err(err) if violated_constraint(&err) == Some("api_keys_agency_code_fkey") => {
            return Err(AdminError::AgencyNotFound(code.clone()));
        }
        Err(err) => return Err(err.into()),
    };
    let detail = json!({"key_id": key.id, "label": label});
    audit::record(
        &transaction,
        actor,
        Action::AgencyKeyCreate,
        &target(code),
        detail,
    )
    .await?;
    transaction.commit().await?;
    tracing::info!(agency = %code, key_id = %key.id, "agency API key created");
    Ok(key)
}

async fn read(client: &impl GenericClient, code: &AgencyCode) -> Result<Agency, AdminError> {
    client
        .query_opt(
            &format!("SELECT {AGENCY_COLUMNS} FROM agencies a WHERE a.code = $1"),
            &[&code.as_str()],
        )
        .await?
        .as_ref()
        .map(Agency::from_row)
        .ok_or_else(|| AdminError::AgencyNotFound(code.clone()))
}

pub async fn get(pool: &Pool, code: &AgencyCode) -> Result<Agency, AdminError> {
    let client = pool.get().await?;
    read(&client, code).await
}

/// One page of agencies, newest first.
pub async fn list(pool: &Pool, page: PageRequest) -> Result<Page<Agency>, AdminError> {
    let sql = format!(
        "SELECT {AGENCY_COLUMNS} FROM agencies a
         WHERE ($1::bigint IS NULL OR a.seq < $1)
         ORDER BY a.seq DESC LIMIT $2"
    );
    newest_first(pool, &sql, &[], page, Agency::from_row, |a| a.seq).await
}

/// Sets an agency's `notify_url` and its switch, each only when given (see [`apply_changes`]).
const UPDATE_AGENCY: &str = "UPDATE agencies SET
        notify_url = CASE WHEN $2 THEN $3 ELSE notify_url END,
        disabled = coalesce($4, disabled),
        updated_at = now()
    WHERE code = $1";

/// Applies `changes` (the address is the `notify_url`) and returns the agency as it is now.
/// The audit entry lists each field whose value changed; a change to nothing (every value as it
/// was) records none.
pub async fn update(
    pool: &Pool,
    code: &AgencyCode,
    changes: Changes,
    obligations: Option<Option<Vec<ObligationCode>>>,
    actor: &Actor,
) -> Result<Agency, AdminError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let before = transaction
        .query_opt(
            "SELECT notify_url, disabled, obligations FROM agencies WHERE code = $1 FOR UPDATE",
            &[&code.as_str()],
        )
        .await?
        .ok_or_else(|| AdminError::AgencyNotFound(code.clone()))?;
    if !apply_changes(&transaction, UPDATE_AGENCY, code.as_str(), &changes).await? {
        return Err(AdminError::AgencyNotFound(code.clone()));
    }
    let mut detail = changed_fields("notify_url", before.get(0), before.get(1), &changes);
    if let Some(obligations) = obligations {
        let after: Option<Vec<String>> =
            obligations.map(|codes| codes.iter().map(|c| c.as_str().to_owned()).collect());
        let before: Option<Vec<String>> = before.get(2);
        if after != before {
            set_obligations(&transaction, code, after.as_deref()).await?;
            detail.insert(
                "obligations".to_owned(),
                json!({"from": before, "to": after}),
            );
        }
    }
    if !detail.is_empty() {
        audit::record(
            &transaction,
            actor,
            Action::AgencyUpdate,
            &target(code),
            detail.into(),
        )
        .await?;
    }
    transaction.commit().await?;
    if !changes.is_empty() {
        tracing::info!(agency = %code, notify_url_changed = changes.address.is_some(), disabled = ?changes.disabled, "agency updated");
    }
    read(&client, code).await
}

/// Replaces the agency's allowed obligations (`None`: every active one). Each code must name a
/// catalog entry, checked here, in the update's transaction; an inactive entry may be listed
/// (it stays refused for new orders while inactive).
async fn set_obligations(
    client: &impl GenericClient,
    code: &AgencyCode,
    obligations: Option<&[String]>,
) -> Result<(), AdminError> {
    if let Some(codes) = obligations {
        let unknown: Vec<String> = client
            .query(
                "SELECT wanted FROM unnest($1::text[]) WITH ORDINALITY AS w (wanted, n)
                 WHERE NOT EXISTS (SELECT 1 FROM obligations o WHERE o.code = w.wanted)
                 ORDER BY n",
                &[&codes],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        if !unknown.is_empty() {
            return Err(AdminError::UnknownObligations(unknown));
        }
    }
    client
        .execute(
            "UPDATE agencies SET obligations = $2, updated_at = now() WHERE code = $1",
            &[&code.as_str(), &obligations],
        )
        .await?;
    Ok(())
}

/// How long after a rotation notifications also carry a signature made with the secret it
/// replaced.
pub const PREVIOUS_SECRET_WINDOW_S: f64 = 24.0 * 3600.0;

/// Replaces the agency's notification secret and returns the new one (shown this once). The
/// secret it replaces keeps signing, beside the new one, for [`PREVIOUS_SECRET_WINDOW_S`];
/// a secret replaced earlier than that is forgotten, so only the one just before the newest is
/// ever kept.
pub async fn rotate_notify_secret(
    pool: &Pool,
    code: &AgencyCode,
    actor: &Actor,
) -> Result<String, AdminError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let secret = keys::random_secret("nsk");
    let updated = transaction
        .execute(
            "UPDATE agencies SET previous_notify_secret = notify_secret, notify_secret = $2,
                                 notify_secret_rotated_at = now(), updated_at = now()
             WHERE code = $1",
            &[&code.as_str(), &secret],
        )
        .await?;
    if updated == 0 {
        return Err(AdminError::AgencyNotFound(code.clone()));
    }
    // Which secret replaced which is no business of the trail: only that it happened, and how
    // long the replaced one still signs.
    let detail = json!({"previous_secret_signs_for_s": PREVIOUS_SECRET_WINDOW_S as i64});
    audit::record(
        &transaction,
        actor,
        Action::AgencyNotifySecretRotate,
        &target(code),
        detail,
    )
    .await?;
    transaction.commit().await?;
    tracing::info!(agency = %code, "agency notification secret rotated");
    Ok(secret)
}
