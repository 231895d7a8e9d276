//! Authentication and roles (contract section 3): bearer API keys, stored only as hashes.

pub mod keys;

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use deadpool_postgres::GenericClient;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::codes::AgencyCode;
use crate::http::error::ApiError;
use crate::http::AppState;

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

    fn from_db(value: &str) -> Option<Role> {
        match value {
            "admin" => Some(Role::Admin),
            "auditor" => Some(Role::Auditor),
            "agency" => Some(Role::Agency),
            _ => None,
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub key_id: i64,
    pub role: Role,
    /// Set exactly when `role` is `Agency`.
    pub agency: Option<AgencyCode>,
}

impl Principal {
    /// 403 `forbidden` unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }
}

/// The longest `Authorization` value worth hashing; real keys are 47 characters.
const MAX_API_KEY_CHARS: usize = 128;

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let key = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|key| !key.is_empty() && key.len() <= MAX_API_KEY_CHARS)
            .map(str::to_owned);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let key = key.ok_or(ApiError::Unauthenticated)?;
            let state = state.expect("AppState is registered on the app");
            let client = state.pool.get().await?;
            authenticate(&client, &key)
                .await?
                .ok_or(ApiError::Unauthenticated)
        })
    }
}

/// Finds the live key whose hash matches `key`.
pub async fn authenticate(
    client: &impl GenericClient,
    key: &str,
) -> Result<Option<Principal>, ApiError> {
    let statement = client
        .prepare_typed_cached(
            "SELECT id, role, agency_code FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
            &[tokio_postgres::types::Type::BYTEA],
        )
        .await?;
    let row = client
        .query_opt(&statement, &[&keys::hash_api_key(key)])
        .await?;
    Ok(row.map(|row| Principal {
        key_id: row.get(0),
        role: Role::from_db(row.get(1)).expect("the role column is constrained"),
        agency: row
            .get::<_, Option<String>>(2)
            .map(|code| AgencyCode::parse(&code).expect("agency codes are constrained")),
    }))
}

/// Creates an API key and returns it; only its hash is stored, so this is the one time it is
/// seen.
pub async fn create_api_key(
    client: &impl GenericClient,
    role: Role,
    agency: Option<&AgencyCode>,
) -> Result<String, tokio_postgres::Error> {
    let key = keys::random_secret("pgk");
    client
        .execute(
            "INSERT INTO api_keys (key_hash, role, agency_code) VALUES ($1, $2, $3)",
            &[
                &keys::hash_api_key(&key),
                &role.as_str(),
                &agency.map(AgencyCode::as_str),
            ],
        )
        .await?;
    Ok(key)
}
