//! Administration (contract section 4, role `admin`): agencies, banks, keys.

pub mod agencies;
pub mod banks;
pub mod notify_url;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::auth::{self, Principal, Role};
use crate::codes::{AgencyCode, BankCode};
use crate::http::body::{parsed, text, JsonBody, Validator};
use crate::http::error::ApiError;
use crate::http::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/agencies", web::post().to(create_agency))
        .route("/v1/agencies/{code}", web::get().to(get_agency))
        .route("/v1/agencies/{code}", web::patch().to(update_agency))
        .route(
            "/v1/agencies/{code}/keys",
            web::post().to(create_agency_key),
        )
        .route("/v1/banks", web::post().to(create_bank))
        .route("/v1/banks/{code}", web::get().to(get_bank))
        .route("/v1/banks/{code}/keys", web::post().to(create_bank_key))
        .route(
            "/v1/banks/{code}/keys/{key_id}",
            web::delete().to(revoke_bank_key),
        )
        .route("/v1/api-keys", web::post().to(create_api_key));
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)] // Documents the body; the handler validates the JSON field by field.
pub struct CreateAgencyRequest {
    /// `^[A-Z0-9][A-Z0-9._-]{1,31}$`
    #[schema(example = "000.00.00.H12")]
    code: String,
    /// 1-255 characters.
    #[schema(example = "Sở Tư pháp Hà Nội")]
    name: String,
    /// http or https; link-local addresses are refused, loopback and private ones unless
    /// `PAYGATE_NOTIFY_ALLOW_PRIVATE=true`.
    #[schema(example = "https://dvc.hanoi.gov.vn/paygate/notify")]
    notify_url: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)] // Documents the body; the handler validates the JSON field by field.
pub struct UpdateAgencyRequest {
    /// The new address, or `null` to stop notifications (events then wait, pending).
    notify_url: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)] // Documents the body; the handler validates the JSON field by field.
pub struct CreateBankRequest {
    /// `^[A-Z0-9][A-Z0-9._-]{1,31}$`
    #[schema(example = "VCB")]
    code: String,
    /// 1-255 characters.
    #[schema(example = "Ngân hàng TMCP Ngoại thương Việt Nam")]
    name: String,
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)] // Documents the body; the handler validates the JSON field by field.
pub struct CreateApiKeyRequest {
    /// `admin` or `auditor`; agency keys are made with `POST /v1/agencies/{code}/keys`.
    #[schema(example = "auditor")]
    role: String,
}

#[derive(Serialize, ToSchema)]
pub struct ApiKey {
    /// Shown once; only its hash is stored.
    #[schema(example = "pgk_Zk3v9x1QeP0m2d8Yf7sR5tW4uH6jK0lN1bC3aD5eF7g")]
    pub api_key: String,
}

#[derive(Serialize, ToSchema)]
pub struct RoleApiKey {
    /// Shown once; only its hash is stored.
    pub api_key: String,
    pub role: Role,
}

const NAME_MAX_CHARS: usize = 255;

fn notify_url_field(state: &AppState) -> impl Fn(&Value) -> Result<url::Url, String> + '_ {
    parsed(move |value| notify_url::parse(value, state.config.notify_allow_private))
}

/// A code in a path that cannot be valid names nothing: the answer is the same 404 as for a
/// code that is valid but unknown.
fn path_agency(code: &str) -> Result<AgencyCode, ApiError> {
    AgencyCode::parse(code).map_err(|_| agencies::agency_not_found(code))
}

fn path_bank(code: &str) -> Result<BankCode, ApiError> {
    BankCode::parse(code).map_err(|_| banks::bank_not_found(code))
}

/// Create an agency with its first API key and its notification secret.
#[utoipa::path(post, path = "/v1/agencies", tag = "administration",
    request_body = CreateAgencyRequest,
    responses(
        (status = 201, description = "Created; `api_key` and `notify_secret` are shown only now", body = agencies::CreatedAgency),
        (status = 409, description = "`duplicate_code`", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_agency(
    principal: Principal,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    principal.require(&[Role::Admin])?;
    let mut v = Validator::new();
    let code = v.required(&body, "code", parsed(AgencyCode::parse));
    let name = v.required(&body, "name", text(1, NAME_MAX_CHARS));
    let notify_url = v.optional(&body, "notify_url", notify_url_field(&state));
    v.finish()?;
    let (Some(code), Some(name), Some(notify_url)) = (code, name, notify_url) else {
        unreachable!("the validator reported every missing field");
    };
    let created = agencies::create(
        &state.pool,
        agencies::NewAgency {
            code,
            name,
            notify_url,
        },
    )
    .await?;
    Ok(HttpResponse::Created().json(created))
}

/// Read an agency (without its secrets).
#[utoipa::path(get, path = "/v1/agencies/{code}", tag = "administration",
    params(("code" = String, Path, description = "Agency code")),
    responses(
        (status = 200, description = "The agency", body = agencies::Agency),
        (status = 404, description = "`agency_not_found`", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_agency(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&[Role::Admin])?;
    let code = path_agency(&path)?;
    Ok(HttpResponse::Ok().json(agencies::get(&state.pool, &code).await?))
}

/// Set or clear an agency's `notify_url`.
#[utoipa::path(patch, path = "/v1/agencies/{code}", tag = "administration",
    params(("code" = String, Path, description = "Agency code")),
    request_body = UpdateAgencyRequest,
    responses(
        (status = 200, description = "The agency (without secrets)", body = agencies::Agency),
        (status = 404, description = "`agency_not_found`", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_agency(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    principal.require(&[Role::Admin])?;
    let code = path_agency(&path)?;
    let mut v = Validator::new();
    if !body.contains_key("notify_url") {
        v.error("notify_url", "is required (null clears it)");
    }
    let notify_url = v.optional(&body, "notify_url", notify_url_field(&state));
    v.finish()?;
    let notify_url = notify_url.expect("validated");
    let agency = agencies::set_notify_url(&state.pool, &code, notify_url).await?;
    Ok(HttpResponse::Ok().json(agency))
}

/// Issue a further API key for an agency; its older keys stay valid.
#[utoipa::path(post, path = "/v1/agencies/{code}/keys", tag = "administration",
    params(("code" = String, Path, description = "Agency code")),
    responses(
        (status = 201, description = "The new key, shown only now", body = ApiKey),
        (status = 404, description = "`agency_not_found`", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_agency_key(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&[Role::Admin])?;
    let code = path_agency(&path)?;
    let api_key = agencies::add_key(&state.pool, &code).await?;
    Ok(HttpResponse::Created().json(ApiKey { api_key }))
}

/// Register a bank with its first signing key.
#[utoipa::path(post, path = "/v1/banks", tag = "administration",
    request_body = CreateBankRequest,
    responses(
        (status = 201, description = "Created; `secret` is shown only now", body = banks::CreatedBank),
        (status = 409, description = "`duplicate_code`", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_bank(
    principal: Principal,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    principal.require(&[Role::Admin])?;
    let mut v = Validator::new();
    let code = v.required(&body, "code", parsed(BankCode::parse));
    let name = v.required(&body, "name", text(1, NAME_MAX_CHARS));
    v.finish()?;
    let (Some(code), Some(name)) = (code, name) else {
        unreachable!("the validator reported every missing field");
    };
    let created = banks::create(&state.pool, code, name).await?;
    Ok(HttpResponse::Created().json(created))
}

/// Read a bank and the state of its keys (never their secrets).
#[utoipa::path(get, path = "/v1/banks/{code}", tag = "administration",
    params(("code" = String, Path, description = "Bank code")),
    responses(
        (status = 200, description = "The bank", body = banks::Bank),
        (status = 404, description = "`bank_not_found`", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_bank(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&[Role::Admin])?;
    let code = path_bank(&path)?;
    Ok(HttpResponse::Ok().json(banks::get(&state.pool, &code).await?))
}

/// Rotate: add a signing key. Old keys stay valid until revoked.
#[utoipa::path(post, path = "/v1/banks/{code}/keys", tag = "administration",
    params(("code" = String, Path, description = "Bank code")),
    responses(
        (status = 201, description = "The new key; `secret` is shown only now", body = banks::BankKey),
        (status = 404, description = "`bank_not_found`", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_bank_key(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&[Role::Admin])?;
    let code = path_bank(&path)?;
    let key = banks::add_key(&state.pool, &code).await?;
    Ok(HttpResponse::Created().json(key))
}

/// Revoke a signing key: from now on its signatures are rejected.
#[utoipa::path(delete, path = "/v1/banks/{code}/keys/{key_id}", tag = "administration",
    params(
        ("code" = String, Path, description = "Bank code"),
        ("key_id" = String, Path, description = "Key id (`kid`)"),
    ),
    responses(
        (status = 204, description = "Revoked (also when it already was)"),
        (status = 404, description = "`key_not_found`", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke_bank_key(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&[Role::Admin])?;
    let (code, key_id) = path.into_inner();
    let code = path_bank(&code)?;
    banks::revoke_key(&state.pool, &code, &key_id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Create an admin or auditor API key.
#[utoipa::path(post, path = "/v1/api-keys", tag = "administration",
    request_body = CreateApiKeyRequest,
    responses(
        (status = 201, description = "The new key, shown only now", body = RoleApiKey),
        (status = 422, description = "`validation_failed`", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_api_key(
    principal: Principal,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    principal.require(&[Role::Admin])?;
    let mut v = Validator::new();
    let role = v.required(
        &body,
        "role",
        parsed(|role| match role {
            "admin" => Ok(Role::Admin),
            "auditor" => Ok(Role::Auditor),
            _ => Err("must be admin or auditor".to_owned()),
        }),
    );
    v.finish()?;
    let role = role.expect("validated");
    let client = state.pool.get().await?;
    let api_key = auth::create_api_key(&client, role, None).await?;
    tracing::info!(
        role = role.as_str(),
        created_by = principal.key_id,
        "API key created"
    );
    Ok(HttpResponse::Created().json(RoleApiKey { api_key, role }))
}
