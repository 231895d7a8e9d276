//! The administration API: parse, authorize, call one store function, answer. The only place
//! where an [`AdminError`] meets HTTP.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::store::{AdminError, Changes};
use super::{agencies, api_keys, banks, notify_url};
use crate::audit::Actor;
use crate::auth::{self, Principal, Role};
use crate::domain::{AgencyCode, BankCode, ObligationCode};
use crate::http::answers::{
    AgencyNotFound, BankNotFound, DuplicateCode, InvalidFilter, InvalidPage, KeyNotFound,
    ValidationFailed,
};
use crate::http::body::{parse_object, parsed, text, JsonBody, RawBody, Validator};
use crate::http::error::{ApiError, ErrorCode};
use crate::http::pagination::{Page, PageParams, PageRequest};
use crate::http::{Answer, AppState, QueryMap, State};

impl AdminError {
    /// The stable code a client is answered with. It lives here, beside the mapping to HTTP,
    /// because wire codes are the HTTP edge's business, not the stores'.
    pub fn code(&self) -> ErrorCode {
        match self {
            AdminError::AgencyNotFound(_) => ErrorCode::AgencyNotFound,
            AdminError::BankNotFound(_) => ErrorCode::BankNotFound,
            AdminError::BankKeyNotFound { .. } | AdminError::KeyNotFound(_) => {
                ErrorCode::KeyNotFound
            }
            AdminError::DuplicateAgency(_) | AdminError::DuplicateBank(_) => {
                ErrorCode::DuplicateCode
            }
            AdminError::LastAdminKey(_) => ErrorCode::LastAdminKey,
            AdminError::BuiltinBank(_) => ErrorCode::BuiltinBank,
            AdminError::UnknownObligations(_) => ErrorCode::ValidationFailed,
            AdminError::Db(err) if err.is_transient() => ErrorCode::Unavailable,
            AdminError::Db(_) => ErrorCode::InternalError,
        }
    }
}

impl From<AdminError> for ApiError {
    fn from(err: AdminError) -> Self {
        match err {
            AdminError::AgencyNotFound(code) => agency_not_found(code.as_str()),
            AdminError::BankNotFound(code) => bank_not_found(code.as_str()),
            AdminError::Db(err) => err.into(),
            AdminError::BankKeyNotFound { .. } | AdminError::KeyNotFound(_) => {
                ApiError::not_found(err.code(), err.to_string())
            }
            AdminError::DuplicateAgency(_)
            | AdminError::DuplicateBank(_)
            | AdminError::LastAdminKey(_)
            | AdminError::BuiltinBank(_) => ApiError::conflict(err.code(), err.to_string()),
            AdminError::UnknownObligations(_) => ApiError::invalid("obligations", err.to_string()),
        }
    }
}

/// The answer for an agency that does not exist, whether its code is valid or not.
fn agency_not_found(code: &str) -> ApiError {
    ApiError::not_found(
        ErrorCode::AgencyNotFound,
        format!("no agency with code {code}"),
    )
}

/// The answer for a bank that does not exist, whether its code is valid or not.
fn bank_not_found(code: &str) -> ApiError {
    ApiError::not_found(ErrorCode::BankNotFound, format!("no bank with code {code}"))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/agencies", web::post().to(create_agency))
        .route("/v1/agencies", web::get().to(list_agencies))
        .route("/v1/agencies/{code}", web::get().to(get_agency))
        .route("/v1/agencies/{code}", web::patch().to(update_agency))
        .route(
            "/v1/agencies/{code}/keys",
            web::post().to(create_agency_key),
        )
        .route(
            "/v1/agencies/{code}/notify-secret",
            web::post().to(rotate_notify_secret),
        )
        .route("/v1/banks", web::post().to(create_bank))
        .route("/v1/banks", web::get().to(list_banks))
        .route("/v1/banks/{code}", web::get().to(get_bank))
        .route("/v1/banks/{code}", web::patch().to(update_bank))
        .route("/v1/banks/{code}/keys", web::post().to(create_bank_key))
        .route(
            "/v1/banks/{code}/keys/{key_id}",
            web::delete().to(revoke_bank_key),
        )
        .route("/v1/api-keys", web::post().to(create_api_key))
        .route("/v1/api-keys", web::get().to(list_api_keys))
        .route("/v1/api-keys/{id}", web::delete().to(revoke_api_key));
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
    /// 1-64 characters: whose the agency's first API key is.
    #[schema(example = "Cổng dịch vụ công Hà Nội, máy chủ 1")]
    label: Option<String>,
    /// `true` for a sandbox agency (default `false`; fixed at creation): its orders are
    /// sandbox orders, paid only by sandbox banks, and its money is kept apart from live money.
    sandbox: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)] // Documents the body; the handler validates the JSON field by field.
pub struct UpdateAgencyRequest {
    /// The new address, or `null` to stop notifications (events then wait, pending). Absent:
    /// unchanged.
    notify_url: Option<String>,
    /// `true` refuses the agency's keys (403 `agency_disabled`); its orders stay payable and
    /// its events are still delivered. Absent: unchanged.
    disabled: Option<bool>,
    /// The codes of the catalog's obligations the agency may create orders of (each must exist;
    /// an order of another is refused with 422 `obligation_not_allowed`), or `null` for every
    /// active one. Absent: unchanged.
    #[schema(example = json!(["fee", "hospital_fee"]))]
    obligations: Option<Vec<String>>,
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)] // Documents the body; the handler validates the JSON field by field.
pub struct CreateAgencyKeyRequest {
    /// 1-64 characters: whose key it is. The body itself may be left out.
    #[schema(example = "Cổng dịch vụ công Hà Nội, máy chủ 2")]
    label: Option<String>,
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
    /// `true` for a sandbox bank (default `false`; fixed at creation): it pays only sandbox
    /// orders, and live orders are unknown to it.
    sandbox: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)] // Documents the body; the handler validates the JSON field by field.
pub struct UpdateBankRequest {
    /// `true` refuses the bank's inquiries (403 `bank_disabled`); its callbacks are still
    /// accepted. Absent: unchanged.
    disabled: Option<bool>,
    /// Where refund instructions go: http or https, under the same address rules as an
    /// agency's `notify_url`; `null` clears it. Absent: unchanged.
    #[schema(example = "https://api.vcb.com.vn/paygate/refunds")]
    refund_url: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)] // Documents the body; the handler validates the JSON field by field.
pub struct CreateApiKeyRequest {
    /// `admin` or `auditor`; agency keys are made with `POST /v1/agencies/{code}/keys`.
    #[schema(example = "auditor")]
    role: String,
    /// 1-64 characters: whose key it is.
    #[schema(example = "Kiểm toán viên Trần Văn C")]
    label: Option<String>,
}

/// A further agency key.
#[derive(Serialize, ToSchema)]
pub struct AgencyApiKey {
    /// Shown once; only its hash is stored.
    #[schema(example = "pgk_Zk3v9x1QeP0m2d8Yf7sR5tW4uH6jK0lN1bC3aD5eF7g")]
    pub api_key: String,
    /// The key's id, under which it is listed and revoked.
    #[schema(example = "key_43")]
    pub api_key_id: String,
}

/// A new admin or auditor key.
#[derive(Serialize, ToSchema)]
pub struct RoleApiKey {
    /// The key's id, under which it is listed and revoked.
    #[schema(example = "key_44")]
    pub id: String,
    /// Shown once; only its hash is stored.
    pub api_key: String,
    pub role: Role,
    /// `null` when none was given.
    #[schema(required = true)]
    pub label: Option<String>,
}

/// A new notification secret.
#[derive(Serialize, ToSchema)]
pub struct NotifySecret {
    /// Shown once. Notifications are signed with it from now on; for 24 hours they also carry
    /// `Paygate-Signature-Previous`, made with the secret it replaced.
    pub notify_secret: String,
}

const NAME_MAX_CHARS: usize = 255;

fn notify_url_field(state: &AppState) -> impl Fn(&Value) -> Result<url::Url, String> + '_ {
    parsed(move |value| notify_url::parse(value, state.config.notify_allow_private))
}

fn label_field(value: &Value) -> Result<String, String> {
    parsed(auth::parse_label)(value)
}

/// A field that may be absent (unchanged), `null` (cleared) or a value: `None`, `Some(None)`
/// and `Some(Some(_))`. An invalid value is recorded in `v`.
fn patch_nullable<T>(
    v: &mut Validator,
    body: &Map<String, Value>,
    field: &str,
    parse: impl FnOnce(&Value) -> Result<T, String>,
) -> Option<Option<T>> {
    if !body.contains_key(field) {
        return None;
    }
    v.optional(body, field, parse)
}

/// An agency's allowed obligations: an array of distinct catalog codes (their existence is
/// checked by the store, in the update's transaction).
fn obligation_list(value: &Value) -> Result<Vec<ObligationCode>, String> {
    const MAX: usize = 256;
    let Value::Array(items) = value else {
        return Err("must be an array of obligation codes or null".to_owned());
    };
    if items.len() > MAX {
        return Err(format!("must list at most {MAX} obligations"));
    }
    let mut codes: Vec<ObligationCode> = Vec::with_capacity(items.len());
    for item in items {
        let code = item
            .as_str()
            .ok_or_else(|| "must be an array of obligation codes or null".to_owned())
            .and_then(ObligationCode::parse)?;
        if codes.contains(&code) {
            return Err(format!("lists {code} twice"));
        }
        codes.push(code);
    }
    Ok(codes)
}

/// A boolean field that may be absent (unchanged); `null` is not a boolean.
fn patch_bool(v: &mut Validator, body: &Map<String, Value>, field: &str) -> Option<bool> {
    match body.get(field)? {
        Value::Bool(value) => Some(*value),
        _ => {
            v.error(field, "must be true or false");
            None
        }
    }
}

/// A code in a path that cannot be valid names nothing: the answer is the same 404 as for a
/// code that is valid but unknown.
fn path_agency(code: &str) -> Result<AgencyCode, ApiError> {
    AgencyCode::parse(code).map_err(|_| agency_not_found(code))
}

fn path_bank(code: &str) -> Result<BankCode, ApiError> {
    BankCode::parse(code).map_err(|_| bank_not_found(code))
}

/// The optional `sandbox` flag of a new agency or bank: `true` or `false`, absent or `null`
/// meaning `false`.
fn sandbox_field(v: &mut Validator, body: &Map<String, Value>) -> Option<bool> {
    match body.get("sandbox") {
        None | Some(Value::Null) => Some(false),
        Some(Value::Bool(sandbox)) => Some(*sandbox),
        Some(_) => {
            v.error("sandbox", "must be true or false");
            None
        }
    }
}

/// The page a list without filters asks for.
fn page_only(query: &HashMap<String, String>) -> Result<PageRequest, ApiError> {
    let mut v = Validator::new();
    let page = PageRequest::parse(query, &mut v);
    v.finish()?;
    Ok(page)
}

/// Create an agency with its first API key and its notification secret.
#[utoipa::path(post, path = "/v1/agencies", tag = "administration",
    request_body = CreateAgencyRequest,
    responses(
        (status = 201, description = "Created; `api_key` and `notify_secret` are shown only now", body = agencies::CreatedAgency),
        DuplicateCode,
        ValidationFailed,
    ))]
pub async fn create_agency(principal: Principal, state: State, JsonBody(body): JsonBody) -> Answer {
    principal.require(&[Role::Admin])?;
    let mut v = Validator::new();
    let code = v.required(&body, "code", parsed(AgencyCode::parse));
    let name = v.required(&body, "name", text(1, NAME_MAX_CHARS));
    let notify_url = v.optional(&body, "notify_url", notify_url_field(&state));
    let label = v.optional(&body, "label", label_field);
    let sandbox = sandbox_field(&mut v, &body);
    let agency = v.finish_with(|| {
        Some(agencies::NewAgency {
            code: code?,
            name: name?,
            notify_url: notify_url?,
            key_label: label?,
            sandbox: sandbox?,
        })
    })?;
    let created = agencies::create(&state.pool, agency, &Actor::api(&principal)).await?;
    Ok(HttpResponse::Created().json(created))
}

/// List agencies, newest first (without their secrets). Admins and auditors.
#[utoipa::path(get, path = "/v1/agencies", tag = "administration",
    params(PageParams),
    responses(
        (status = 200, description = "One page", body = Page<agencies::Agency>),
        InvalidPage,
    ))]
pub async fn list_agencies(principal: Principal, state: State, query: QueryMap) -> Answer {
    principal.require(&[Role::Admin, Role::Auditor])?;
    let page = page_only(&query)?;
    Ok(HttpResponse::Ok().json(agencies::list(&state.pool, page).await?))
}

/// Read an agency (without its secrets).
#[utoipa::path(get, path = "/v1/agencies/{code}", tag = "administration",
    params(("code" = String, Path, description = "Agency code")),
    responses(
        (status = 200, description = "The agency", body = agencies::Agency),
        AgencyNotFound,
    ))]
pub async fn get_agency(principal: Principal, state: State, path: web::Path<String>) -> Answer {
    principal.require(&[Role::Admin])?;
    let code = path_agency(&path)?;
    Ok(HttpResponse::Ok().json(agencies::get(&state.pool, &code).await?))
}

/// Change an agency: any subset of `notify_url` and `disabled`; only the fields given change.
#[utoipa::path(patch, path = "/v1/agencies/{code}", tag = "administration",
    params(("code" = String, Path, description = "Agency code")),
    request_body = UpdateAgencyRequest,
    responses(
        (status = 200, description = "The agency (without secrets)", body = agencies::Agency),
        AgencyNotFound,
        ValidationFailed,
    ))]
pub async fn update_agency(
    principal: Principal,
    state: State,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Answer {
    principal.require(&[Role::Admin])?;
    let code = path_agency(&path)?;
    let mut v = Validator::new();
    let address = patch_nullable(&mut v, &body, "notify_url", notify_url_field(&state));
    let disabled = patch_bool(&mut v, &body, "disabled");
    let obligations = patch_nullable(&mut v, &body, "obligations", obligation_list);
    v.finish()?;
    let changes = Changes { address, disabled };
    let actor = Actor::api(&principal);
    let agency = agencies::update(&state.pool, &code, changes, obligations, &actor).await?;
    Ok(HttpResponse::Ok().json(agency))
}

/// Issue a further API key for an agency; its older keys stay valid.
#[utoipa::path(post, path = "/v1/agencies/{code}/keys", tag = "administration",
    params(("code" = String, Path, description = "Agency code")),
    request_body(content = Option<CreateAgencyKeyRequest>, description = "Optional"),
    responses(
        (status = 201, description = "The new key, shown only now", body = AgencyApiKey),
        AgencyNotFound,
        ValidationFailed,
    ))]
pub async fn create_agency_key(
    principal: Principal,
    state: State,
    path: web::Path<String>,
    RawBody(bytes): RawBody,
) -> Answer {
    // The body may be left out entirely (no bytes): then it is `{}`. Like every JSON body, it
    // is parsed before the key's role is checked.
    let body = if bytes.is_empty() {
        Map::new()
    } else {
        parse_object(&bytes)?
    };
    principal.require(&[Role::Admin])?;
    let code = path_agency(&path)?;
    let mut v = Validator::new();
    let label = v.optional(&body, "label", label_field);
    v.finish()?;
    let label = label.flatten();
    let actor = Actor::api(&principal);
    let key = agencies::add_key(&state.pool, &code, label.as_deref(), &actor).await?;
    Ok(HttpResponse::Created().json(AgencyApiKey {
        api_key: key.api_key,
        api_key_id: key.id,
    }))
}

/// Rotate an agency's notification secret. For 24 hours, every notification carries a second
/// signature made with the secret replaced, in `Paygate-Signature-Previous`.
#[utoipa::path(post, path = "/v1/agencies/{code}/notify-secret", tag = "administration",
    params(("code" = String, Path, description = "Agency code")),
    responses(
        (status = 201, description = "The new secret, shown only now", body = NotifySecret),
        AgencyNotFound,
    ))]
pub async fn rotate_notify_secret(
    principal: Principal,
    state: State,
    path: web::Path<String>,
) -> Answer {
    principal.require(&[Role::Admin])?;
    let code = path_agency(&path)?;
    let notify_secret =
        agencies::rotate_notify_secret(&state.pool, &code, &Actor::api(&principal)).await?;
    Ok(HttpResponse::Created().json(NotifySecret { notify_secret }))
}

/// Register a bank with its first signing key.
#[utoipa::path(post, path = "/v1/banks", tag = "administration",
    request_body = CreateBankRequest,
    responses(
        (status = 201, description = "Created; `secret` is shown only now", body = banks::CreatedBank),
        DuplicateCode,
        ValidationFailed,
    ))]
pub async fn create_bank(principal: Principal, state: State, JsonBody(body): JsonBody) -> Answer {
    principal.require(&[Role::Admin])?;
    let mut v = Validator::new();
    let code = v.required(&body, "code", parsed(BankCode::parse));
    let name = v.required(&body, "name", text(1, NAME_MAX_CHARS));
    let sandbox = sandbox_field(&mut v, &body);
    let (code, name, sandbox) = v.finish_with(|| Some((code?, name?, sandbox?)))?;
    let bank = banks::NewBank {
        code,
        name,
        sandbox,
    };
    let created = banks::create(&state.pool, bank, &Actor::api(&principal)).await?;
    Ok(HttpResponse::Created().json(created))
}

/// List banks, newest first (without their secrets or keys). Admins and auditors.
#[utoipa::path(get, path = "/v1/banks", tag = "administration",
    params(PageParams),
    responses(
        (status = 200, description = "One page", body = Page<banks::BankItem>),
        InvalidPage,
    ))]
pub async fn list_banks(principal: Principal, state: State, query: QueryMap) -> Answer {
    principal.require(&[Role::Admin, Role::Auditor])?;
    let page = page_only(&query)?;
    Ok(HttpResponse::Ok().json(banks::list(&state.pool, page).await?))
}

/// Read a bank and the state of its keys (never their secrets).
#[utoipa::path(get, path = "/v1/banks/{code}", tag = "administration",
    params(("code" = String, Path, description = "Bank code")),
    responses(
        (status = 200, description = "The bank", body = banks::Bank),
        BankNotFound,
    ))]
pub async fn get_bank(principal: Principal, state: State, path: web::Path<String>) -> Answer {
    principal.require(&[Role::Admin])?;
    let code = path_bank(&path)?;
    Ok(HttpResponse::Ok().json(banks::get(&state.pool, &code).await?))
}

/// Change a bank: any subset of `disabled` and `refund_url`; only the fields given change.
#[utoipa::path(patch, path = "/v1/banks/{code}", tag = "administration",
    params(("code" = String, Path, description = "Bank code")),
    request_body = UpdateBankRequest,
    responses(
        (status = 200, description = "The bank", body = banks::Bank),
        BankNotFound,
        ValidationFailed,
    ))]
pub async fn update_bank(
    principal: Principal,
    state: State,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Answer {
    principal.require(&[Role::Admin])?;
    let code = path_bank(&path)?;
    let mut v = Validator::new();
    let disabled = patch_bool(&mut v, &body, "disabled");
    let address = patch_nullable(&mut v, &body, "refund_url", notify_url_field(&state));
    v.finish()?;
    let changes = Changes { address, disabled };
    let bank = banks::update(&state.pool, &code, changes, &Actor::api(&principal)).await?;
    Ok(HttpResponse::Ok().json(bank))
}

/// Rotate: add a signing key. Old keys stay valid until revoked.
#[utoipa::path(post, path = "/v1/banks/{code}/keys", tag = "administration",
    params(("code" = String, Path, description = "Bank code")),
    responses(
        (status = 201, description = "The new key; `secret` is shown only now", body = banks::BankKey),
        BankNotFound,
    ))]
pub async fn create_bank_key(
    principal: Principal,
    state: State,
    path: web::Path<String>,
) -> Answer {
    principal.require(&[Role::Admin])?;
    let code = path_bank(&path)?;
    let key = banks::add_key(&state.pool, &code, &Actor::api(&principal)).await?;
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
        KeyNotFound,
    ))]
pub async fn revoke_bank_key(
    principal: Principal,
    state: State,
    path: web::Path<(String, String)>,
) -> Answer {
    principal.require(&[Role::Admin])?;
    let (code, key_id) = path.into_inner();
    let code = path_bank(&code)?;
    banks::revoke_key(&state.pool, &code, &key_id, &Actor::api(&principal)).await?;
    // Other processes hear of it from the database; this one forgets it before answering.
    state.bank_keys.forget(code.as_str());
    Ok(HttpResponse::NoContent().finish())
}

/// Create an admin or auditor API key.
#[utoipa::path(post, path = "/v1/api-keys", tag = "administration",
    request_body = CreateApiKeyRequest,
    responses(
        (status = 201, description = "The new key, shown only now", body = RoleApiKey),
        ValidationFailed,
    ))]
pub async fn create_api_key(
    principal: Principal,
    state: State,
    JsonBody(body): JsonBody,
) -> Answer {
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
    let label = v.optional(&body, "label", label_field);
    let (role, label) = v.finish_with(|| Some((role?, label?)))?;
    let actor = Actor::api(&principal);
    let key = api_keys::create(&state.pool, role, label.as_deref(), &actor).await?;
    Ok(HttpResponse::Created().json(RoleApiKey {
        id: key.id,
        api_key: key.api_key,
        role,
        label,
    }))
}

/// List API keys, newest first: who holds them and when they were last used, never the keys.
#[utoipa::path(get, path = "/v1/api-keys", tag = "administration",
    params(
        ("role" = Option<String>, Query, description = "admin, auditor or agency"),
        ("agency" = Option<String>, Query, description = "One agency's keys"),
        PageParams,
    ),
    responses(
        (status = 200, description = "One page", body = Page<api_keys::ApiKeyItem>),
        InvalidFilter,
    ))]
pub async fn list_api_keys(principal: Principal, state: State, query: QueryMap) -> Answer {
    principal.require(&[Role::Admin])?;
    let mut v = Validator::new();
    let page = PageRequest::parse(&query, &mut v);
    let filter = api_keys::KeyFilter {
        role: query.get("role").and_then(|role| {
            v.check(
                "role",
                Role::parse(role).ok_or_else(|| "must be admin, auditor or agency".to_owned()),
            )
        }),
        agency: query
            .get("agency")
            .and_then(|code| v.check("agency", AgencyCode::parse(code))),
    };
    v.finish()?;
    Ok(HttpResponse::Ok().json(api_keys::list(&state.pool, &filter, page).await?))
}

/// Revoke an API key of any role: from now on it answers 401 `unauthenticated`.
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "administration",
    params(("id" = String, Path, description = "The key's id (`key_<number>`)")),
    responses(
        (status = 204, description = "Revoked (also when it already was)"),
        KeyNotFound,
        (status = 409, description = "`last_admin_key`: it is the last live admin key", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke_api_key(principal: Principal, state: State, path: web::Path<String>) -> Answer {
    principal.require(&[Role::Admin])?;
    api_keys::revoke(&state.pool, &path, &Actor::api(&principal)).await?;
    tracing::info!(key_id = %path, revoked_by = %principal.key_id, "API key revocation requested");
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use actix_web::ResponseError;

    use super::*;

    fn answer(err: impl Into<ApiError>) -> (u16, ErrorCode, String) {
        let err = err.into();
        let status = err.status_code().as_u16();
        (status, err.code(), err.problem().detail)
    }

    #[test]
    fn each_admin_error_answers_its_documented_status_and_code() {
        let agency = AgencyCode::parse("000.00.00.H12").unwrap();
        let bank = BankCode::parse("VCB").unwrap();
        for (err, status, code) in [
            (
                AdminError::AgencyNotFound(agency.clone()),
                404,
                ErrorCode::AgencyNotFound,
            ),
            (
                AdminError::BankNotFound(bank.clone()),
                404,
                ErrorCode::BankNotFound,
            ),
            (
                AdminError::BankKeyNotFound {
                    bank: bank.clone(),
                    key_id: "kid_1".to_owned(),
                },
                404,
                ErrorCode::KeyNotFound,
            ),
            (
                AdminError::KeyNotFound("key_9".to_owned()),
                404,
                ErrorCode::KeyNotFound,
            ),
            (
                AdminError::DuplicateAgency(agency),
                409,
                ErrorCode::DuplicateCode,
            ),
            (
                AdminError::DuplicateBank(bank),
                409,
                ErrorCode::DuplicateCode,
            ),
            (
                AdminError::LastAdminKey("key_1".to_owned()),
                409,
                ErrorCode::LastAdminKey,
            ),
        ] {
            assert_eq!(err.code(), code, "{err}");
            let (answered_status, answered_code, _) = answer(err);
            assert_eq!((answered_status, answered_code), (status, code));
        }
    }

    #[test]
    fn a_code_that_cannot_be_valid_answers_like_a_valid_unknown_one() {
        let unknown = AgencyCode::parse("NO.SUCH").unwrap();
        assert_eq!(
            answer(path_agency("no such").unwrap_err()),
            (
                404,
                ErrorCode::AgencyNotFound,
                "no agency with code no such".to_owned()
            )
        );
        assert_eq!(
            answer(AdminError::AgencyNotFound(unknown)),
            (
                404,
                ErrorCode::AgencyNotFound,
                "no agency with code NO.SUCH".to_owned()
            )
        );
        assert_eq!(
            answer(path_bank("vcb").unwrap_err()),
            (
                404,
                ErrorCode::BankNotFound,
                "no bank with code vcb".to_owned()
            )
        );
    }
}
