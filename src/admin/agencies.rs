//! Agencies: the services that create payment orders and receive notifications.

use deadpool_postgres::Pool;
use serde::Serialize;
use time::OffsetDateTime;
use url::Url;
use utoipa::ToSchema;

use crate::auth::{self, keys, Role};
use crate::codes::AgencyCode;
use crate::http::error::{violated_constraint, ApiError};

pub struct NewAgency {
    pub code: AgencyCode,
    pub name: String,
    pub notify_url: Option<Url>,
}

/// The answer to creating an agency: the only time its first key and its secret are shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedAgency {
    #[schema(example = "000.00.00.H12")]
    pub code: String,
    #[schema(example = "Sở Tư pháp Hà Nội")]
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "https://dvc.hanoi.gov.vn/paygate/notify")]
    pub notify_url: Option<String>,
    /// The agency's first API key (role `agency`); shown once.
    pub api_key: String,
    /// The HMAC key with which paygate signs this agency's notifications; shown once.
    pub notify_secret: String,
}

/// An agency as administrators read it: never with its secrets.
#[derive(Debug, Serialize, ToSchema)]
pub struct Agency {
    #[schema(example = "000.00.00.H12")]
    pub code: String,
    #[schema(example = "Sở Tư pháp Hà Nội")]
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify_url: Option<String>,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<tokio_postgres::Row> for Agency {
    fn from(row: tokio_postgres::Row) -> Self {
        Agency {
            code: row.get("code"),
            name: row.get("name"),
            notify_url: row.get("notify_url"),
            created_at: row.get("created_at"),
            updated_at: row.get("updated_at"),
        }
    }
}

/// Creates the agency and its first API key in one transaction.
pub async fn create(pool: &Pool, agency: NewAgency) -> Result<CreatedAgency, ApiError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let notify_secret = keys::random_secret("nsk");
    let notify_url = agency.notify_url.map(String::from);
    let inserted = transaction
        .execute(
            "INSERT INTO agencies (code, name, notify_url, notify_secret) VALUES ($1, $2, $3, $4)",
            &[
                &agency.code.as_str(),
                &agency.name,
                &notify_url,
                &notify_secret,
            ],
        )
        .await;
    if let Err(err) = inserted {
        return Err(match violated_constraint(&err) {
            Some("agencies_pkey") => ApiError::conflict(
                "duplicate_code",
                format!("an agency with code {} already exists", agency.code),
            ),
            _ => err.into(),
        });
    }
    let api_key = auth::create_api_key(&transaction, Role::Agency, Some(&agency.code)).await?;
    transaction.commit().await?;
    tracing::info!(agency = %agency.code, "agency created");
    Ok(CreatedAgency {
        code: agency.code.to_string(),
        name: agency.name,
        notify_url,
        api_key,
        notify_secret,
    })
}

/// Adds a further API key; the agency's older keys stay valid.
pub async fn add_key(pool: &Pool, code: &AgencyCode) -> Result<String, ApiError> {
    let client = pool.get().await?;
    match auth::create_api_key(&client, Role::Agency, Some(code)).await {
        Ok(key) => {
            tracing::info!(agency = %code, "agency API key created");
            Ok(key)
        }
        Err(err) if violated_constraint(&err) == Some("api_keys_agency_code_fkey") => {
            Err(agency_not_found(code.as_str()))
        }
        Err(err) => Err(err.into()),
    }
}

pub async fn get(pool: &Pool, code: &AgencyCode) -> Result<Agency, ApiError> {
    let client = pool.get().await?;
    client
        .query_opt(
            "SELECT code, name, notify_url, created_at, updated_at FROM agencies WHERE code = $1",
            &[&code.as_str()],
        )
        .await?
        .map(Agency::from)
        .ok_or_else(|| agency_not_found(code.as_str()))
}

/// Sets (or, with `None`, clears) where the agency's notifications go.
pub async fn set_notify_url(
    pool: &Pool,
    code: &AgencyCode,
    notify_url: Option<Url>,
) -> Result<Agency, ApiError> {
    let client = pool.get().await?;
    let notify_url = notify_url.map(String::from);
    client
        .query_opt(
            "UPDATE agencies SET notify_url = $2, updated_at = now() WHERE code = $1
             RETURNING code, name, notify_url, created_at, updated_at",
            &[&code.as_str(), &notify_url],
        )
        .await?
        .map(Agency::from)
        .ok_or_else(|| agency_not_found(code.as_str()))
}

pub fn agency_not_found(code: &str) -> ApiError {
    ApiError::not_found("agency_not_found", format!("no agency with code {code}"))
}
