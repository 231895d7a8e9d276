//! Banks and their signing keys. A bank may hold several keys at once, so that it can roll a
//! new key out before the old one is revoked.

use deadpool_postgres::{GenericClient, Pool};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::auth::keys;
use crate::codes::BankCode;
use crate::http::error::{violated_constraint, ApiError};

/// The answer to creating a bank: the only time its first secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedBank {
    #[schema(example = "VCB")]
    pub code: String,
    #[schema(example = "Ngân hàng TMCP Ngoại thương Việt Nam")]
    pub name: String,
    /// The `kid` to put in `Paygate-Signature`.
    #[schema(example = "kid_3f9a1c0d2b7e4a66")]
    pub key_id: String,
    /// The HMAC-SHA256 key (its UTF-8 bytes); shown once.
    pub secret: String,
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
    pub code: String,
    pub name: String,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    pub keys: Vec<BankKeyState>,
}

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
        key_id: keys::random_id("kid", 8),
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

/// Creates the bank and its first signing key in one transaction.
pub async fn create(pool: &Pool, code: BankCode, name: String) -> Result<CreatedBank, ApiError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let inserted = transaction
        .execute(
            "INSERT INTO banks (code, name) VALUES ($1, $2)",
            &[&code.as_str(), &name],
        )
        .await;
    if let Err(err) = inserted {
        return Err(match violated_constraint(&err) {
            Some("banks_pkey") => ApiError::conflict(
                "duplicate_code",
                format!("a bank with code {code} already exists"),
            ),
            _ => err.into(),
        });
    }
    let key = insert_key(&transaction, &code).await?;
    transaction.commit().await?;
    tracing::info!(bank = %code, key_id = %key.key_id, "bank created");
    Ok(CreatedBank {
        code: code.to_string(),
        name,
        key_id: key.key_id,
        secret: key.secret,
    })
}

/// Adds a signing key (rotation); the bank's other keys stay valid until revoked.
pub async fn add_key(pool: &Pool, code: &BankCode) -> Result<BankKey, ApiError> {
    let client = pool.get().await?;
    match insert_key(&client, code).await {
        Ok(key) => {
            tracing::info!(bank = %code, key_id = %key.key_id, "bank key created");
            Ok(key)
        }
        Err(err) if violated_constraint(&err) == Some("bank_keys_bank_code_fkey") => {
            Err(bank_not_found(code.as_str()))
        }
        Err(err) => Err(err.into()),
    }
}

/// Revokes a key; from then on its signatures are rejected. Revoking a revoked key is a no-op
/// that succeeds, so a retried request does not fail.
pub async fn revoke_key(pool: &Pool, code: &BankCode, key_id: &str) -> Result<(), ApiError> {
    let client = pool.get().await?;
    let revoked = client
        .execute(
            "UPDATE bank_keys SET revoked_at = coalesce(revoked_at, now())
             WHERE bank_code = $1 AND key_id = $2",
            &[&code.as_str(), &key_id],
        )
        .await?;
    if revoked == 0 {
        return Err(ApiError::not_found(
            "key_not_found",
            format!("bank {code} has no key {key_id}"),
        ));
    }
    tracing::info!(bank = %code, key_id, "bank key revoked");
    Ok(())
}

pub async fn get(pool: &Pool, code: &BankCode) -> Result<Bank, ApiError> {
    let client = pool.get().await?;
    let bank = client
        .query_opt(
            "SELECT code, name, created_at FROM banks WHERE code = $1",
            &[&code.as_str()],
        )
        .await?
        .ok_or_else(|| bank_not_found(code.as_str()))?;
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
        code: bank.get(0),
        name: bank.get(1),
        created_at: bank.get(2),
        keys,
    })
}

pub fn bank_not_found(code: &str) -> ApiError {
    ApiError::not_found("bank_not_found", format!("no bank with code {code}"))
}
