//! Banks and their signing keys. A bank may hold several keys at once, so that it can roll a
//! new key out before the old one is revoked.

use deadpool_postgres::{GenericClient, Pool};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::store::{apply_changes, bank_code, changed_fields, newest_first, AdminError, Changes};
use crate::audit::{self, Action, Actor};
use crate::auth::keys;
use crate::db::error::violated_constraint;
use crate::db::DbError;
use crate::domain::BankCode;
use crate::http::pagination::{Page, PageRequest};

/// A bank to create.
pub struct NewBank {
    pub code: BankCode,
    pub name: String,
    /// A sandbox bank pays only sandbox orders.
    pub sandbox: bool,
}

/// The answer to creating a bank: the only time its first secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedBank {
    #[schema(value_type = String, example = "VCB")]
    pub code: BankCode,
    #[schema(example = "Ngân hàng TMCP Ngoại thương Việt Nam")]
    pub name: String,
    /// The `kid` to put in `Paygate-Signature`.
    #[schema(example = "kid_3f9a1c0d2b7e4a66")]
    pub key_id: String,
    /// The HMAC-SHA256 key (its UTF-8 bytes); shown once.
    pub secret: String,
    /// Whether this is a sandbox bank (fixed at creation).
    pub sandbox: bool,
}

/// A new signing key: the only time its secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct BankKey {
    #[schema(example = "kid_3f9a1c0d2b7e4a66")]
    pub key_id: String,
    pub secret: String,
}

/// A bank as administrators read it, with its keys' state but never their secrets.
#[derive(Debug, Serialize, ToSchema)]
pub struct Bank {
    #[schema(value_type = String, example = "VCB")]
    pub code: BankCode,
    pub name: String,
    /// A disabled bank's inquiries are refused (403 `bank_disabled`); its callbacks are still
    /// accepted, because money it already collected must land.
    pub disabled: bool,
    /// Where refund instructions for this bank go; absent when none is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "https://api.vcb.com.vn/paygate/refunds")]
    pub refund_url: Option<String>,
    /// Whether this is a sandbox bank (fixed at creation): it pays only sandbox orders.
    pub sandbox: bool,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    /// When paygate last recorded a callback from this bank (one that moved money, recorded a
    /// failure, or was rejected and kept for investigation); `null` before its first.
    #[serde(serialize_with = "crate::timefmt::serialize_option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub last_activity_at: Option<OffsetDateTime>,
    pub keys: Vec<BankKeyState>,
}

/// A bank in the list: as [`Bank`], without its keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct BankItem {
    #[schema(value_type = String, example = "VCB")]
    pub code: BankCode,
    pub name: String,
    /// A disabled bank's inquiries are refused (403 `bank_disabled`); its callbacks are still
    /// accepted.
    pub disabled: bool,
    /// Where refund instructions for this bank go; absent when none is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_url: Option<String>,
    /// Whether this is a sandbox bank (fixed at creation): it pays only sandbox orders.
    pub sandbox: bool,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    /// When paygate last recorded a callback from this bank; `null` before its first.
    #[serde(serialize_with = "crate::timefmt::serialize_option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub last_activity_at: Option<OffsetDateTime>,
    #[serde(skip)]
    pub seq: i64,
}

impl BankItem {
    fn from_row(row: &tokio_postgres::Row) -> Self {
        BankItem {
            code: bank_code(row, "code"),
            name: row.get("name"),
            disabled: row.get("disabled"),
            refund_url: row.get("refund_url"),
            sandbox: row.get("sandbox"),
            created_at: row.get("created_at"),
            updated_at: row.get("updated_at"),
            last_activity_at: row.get("last_activity_at"),
            seq: row.get("seq"),
        }
    }
}

/// The columns every read of a bank selects, `last_activity_at` included: the newest callback
/// the bank sent that paygate recorded, found through two small indexes per bank at read time,
/// so that no callback ever writes to the bank's row. Lines applied by reconciliation are not
/// the bank's activity and are not counted.
const BANK_COLUMNS: &str = "b.code, b.name, b.disabled, b.refund_url, b.sandbox, b.created_at,
    b.updated_at,
    greatest(
        (SELECT c.received_at FROM bank_callbacks c
         WHERE c.bank_code = b.code AND c.source = 'callback' ORDER BY c.id DESC LIMIT 1),
        (SELECT e.created_at FROM callback_exceptions e
         WHERE e.bank_code = b.code AND e.callback_id IS NULL ORDER BY e.id DESC LIMIT 1)
    ) AS last_activity_at,
    b.seq";

#[derive(Debug, Serialize, ToSchema)]
pub struct BankKeyState {
    pub key_id: String,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Present once the key is revoked.
    #[serde(
        serialize_with = "crate::timefmt::serialize_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<OffsetDateTime>,
}

async fn insert_key(
    client: &impl GenericClient,
    bank: &BankCode,
) -> Result<BankKey, tokio_postgres::Error> {
    let key = BankKey {
        key_id: crate::domain::ids::random_id("kid", 8),
        secret: keys::random_secret("bsk"),
    };
    client
        .execute(
            "INSERT INTO bank_keys (key_id, bank_code, secret) VALUES ($1, $2, $3)",
            &[&key.key_id, &bank.as_str(), &key.secret],
        )
        .await?;
    Ok(key)
}

/// The audit trail's name for a bank.
fn target(code: &BankCode) -> String {
    format!("bank:{code}")
}

/// The audit trail's name for a bank's signing key.
fn key_target(code: &BankCode, key_id: &str) -> String {
    format!("bank:{code}/key:{key_id}")
}

/// Creates the bank and its first signing key in one transaction, with its audit entry.
pub async fn create(pool: &Pool, bank: NewBank, actor: &Actor) -> Result<CreatedBank, AdminError> {
    let NewBank {
        code,
        name,
        sandbox,
    } = bank;
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let inserted = transaction
        .execute(
            "INSERT INTO banks (code, name, sandbox) VALUES ($1, $2, $3)",
            &[&code.as_str(), &name, &sandbox],
        )
        .await;
    if let Err(err) = inserted {
        return Err(match violated_constraint(&err) {
            Some("banks_pkey") => AdminError::DuplicateBank(code),
            _ => err.into(),
        });
    }
    let key = insert_key(&transaction, &code).await?;
    let detail = json!({"name": name, "key_id": key.key_id, "sandbox": sandbox});
    audit::record(
        &transaction,
        actor,
        Action::BankCreate,
        &target(&code),
        detail,
    )
    .await?;
    transaction.commit().await?;
    tracing::info!(bank = %code, key_id = %key.key_id, "bank created");
    Ok(CreatedBank {
        code,
        name,
        key_id: key.key_id,
        secret: key.secret,
        sandbox,
    })
}

/// Adds a signing key (rotation), with its audit entry; the bank's other keys stay valid until
/// revoked.
pub async fn add_key(pool: &Pool, code: &BankCode, actor: &Actor) -> Result<BankKey, AdminError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let key = match insert_key(&transaction, code).await {
        Ok(key) => key,
        Err(err) if violated_constraint(&err) == Some("bank_keys_bank_code_fkey") => {
            return Err(AdminError::BankNotFound(code.clone()));
        }
        Err(err) if violated_constraint(&err) == Some("bank_keys_not_sandbox") => {
            return Err(AdminError::BuiltinBank(code.clone()));
        }
        Err(err) => return Err(err.into()),
    };
    let detail = json!({"key_id": key.key_id});
    let target = key_target(code, &key.key_id);
    audit::record(&transaction, actor, Action::BankKeyCreate, &target, detail).await?;
    transaction.commit().await?;
    tracing::info!(bank = %code, key_id = %key.key_id, "bank key created");
    Ok(key)
}

/// Revokes a key; from then on its signatures are rejected. Revoking a revoked key is a no-op
/// that succeeds, so a retried request does not fail; only the revocation that changed the key
/// is recorded in the audit trail.
pub async fn revoke_key(
    pool: &Pool,
    code: &BankCode,
    key_id: &str,
    actor: &Actor,
) -> Result<(), AdminError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let revoked = transaction
        .query_opt(
            "UPDATE bank_keys SET revoked_at = coalesce(revoked_at, now())
             WHERE bank_code = $1 AND key_id = $2
             RETURNING revoked_at = now()",
            &[&code.as_str(), &key_id],
        )
        .await?
        .ok_or_else(|| AdminError::BankKeyNotFound {
            bank: code.clone(),
            key_id: key_id.to_owned(),
        })?;
    // `now()` is the transaction's start: equal exactly when this statement set it.
    if revoked.get::<_, bool>(0) {
        let detail = json!({"key_id": key_id});
        let target = key_target(code, key_id);
        audit::record(&transaction, actor, Action::BankKeyRevoke, &target, detail).await?;
    }
    transaction.commit().await?;
    tracing::info!(bank = %code, key_id, "bank key revoked");
    Ok(())
}

async fn read(client: &impl GenericClient, code: &BankCode) -> Result<BankItem, AdminError> {
    client
        .query_opt(
            &format!("SELECT {BANK_COLUMNS} FROM banks b WHERE b.code = $1"),
            &[&code.as_str()],
        )
        .await?
        .as_ref()
        .map(BankItem::from_row)
        .ok_or_else(|| AdminError::BankNotFound(code.clone()))
}

async fn read_with_keys(client: &impl GenericClient, code: &BankCode) -> Result<Bank, AdminError> {
    let bank = read(client, code).await?;
    let keys = client
        .query(
            "SELECT key_id, created_at, revoked_at FROM bank_keys
             WHERE bank_code = $1 ORDER BY created_at, key_id",
            &[&code.as_str()],
        )
        .await?
        .into_iter()
        .map(|row| BankKeyState {
            key_id: row.get(0),
            created_at: row.get(1),
            revoked_at: row.get(2),
        })
        .collect();
    Ok(Bank {
        code: bank.code,
        name: bank.name,
        disabled: bank.disabled,
        refund_url: bank.refund_url,
        sandbox: bank.sandbox,
        created_at: bank.created_at,
        updated_at: bank.updated_at,
        last_activity_at: bank.last_activity_at,
        keys,
    })
}

pub async fn get(pool: &Pool, code: &BankCode) -> Result<Bank, AdminError> {
    let client = pool.get().await?;
    read_with_keys(&client, code).await
}

/// One page of banks, newest first.
pub async fn list(pool: &Pool, page: PageRequest) -> Result<Page<BankItem>, AdminError> {
    let sql = format!(
        "SELECT {BANK_COLUMNS} FROM banks b
         WHERE ($1::bigint IS NULL OR b.seq < $1)
         ORDER BY b.seq DESC LIMIT $2"
    );
    newest_first(pool, &sql, &[], page, BankItem::from_row, |b| b.seq).await
}

/// Sets a bank's `refund_url` and its switch, each only when given (see [`apply_changes`]).
const UPDATE_BANK: &str = "UPDATE banks SET
        refund_url = CASE WHEN $2 THEN $3 ELSE refund_url END,
        disabled = coalesce($4, disabled),
        updated_at = now()
    WHERE code = $1";

/// Applies `changes` (the address is the `refund_url`) and returns the bank as it is now. The
/// audit entry lists each field whose value changed; a change to nothing records none.
pub async fn update(
    pool: &Pool,
    code: &BankCode,
    changes: Changes,
    actor: &Actor,
) -> Result<Bank, AdminError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let before = transaction
        .query_opt(
            "SELECT refund_url, disabled FROM banks WHERE code = $1 FOR UPDATE",
            &[&code.as_str()],
        )
        .await?
        .ok_or_else(|| AdminError::BankNotFound(code.clone()))?;
    if !apply_changes(&transaction, UPDATE_BANK, code.as_str(), &changes).await? {
        return Err(AdminError::BankNotFound(code.clone()));
    }
    let detail = changed_fields("refund_url", before.get(0), before.get(1), &changes);
    if !detail.is_empty() {
        audit::record(
            &transaction,
            actor,
            Action::BankUpdate,
            &target(code),
            detail.into(),
        )
        .await?;
    }
    transaction.commit().await?;
    if !changes.is_empty() {
        tracing::info!(bank = %code, refund_url_changed = changes.address.is_some(), disabled = ?changes.disabled, "bank updated");
    }
    read_with_keys(&client, code).await
}

/// Whether the bank `code` is disabled; `false` for a bank that does not exist (whoever asks
/// has verified a signature of this bank's key, so it exists).
pub async fn is_disabled(pool: &Pool, code: &BankCode) -> Result<bool, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached("SELECT disabled FROM banks WHERE code = $1")
        .await?;
    Ok(client
        .query_opt(&statement, &[&code.as_str()])
        .await?
        .is_some_and(|row| row.get(0)))
}
