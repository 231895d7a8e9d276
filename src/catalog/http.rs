//! The catalog API: list (any key), create and change entries (admin). The only place where a
//! catalog error meets HTTP.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::openapi::{RefOr, Response};
use utoipa::{IntoResponses, ToSchema};

use super::schema;
use super::store::{self, CatalogEntry, Changes, NewEntry, StoreError};
use crate::audit::Actor;
use crate::auth::{Principal, Role};
use crate::domain::obligation::ObligationCode;
use crate::http::answers::{problem, DuplicateCode, ValidationFailed};
use crate::http::body::{text, JsonBody, Validator};
use crate::http::error::{ApiError, ErrorCode};
use crate::http::{Answer, State};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/obligations", web::get().to(list_obligations))
        .route("/v1/obligations", web::post().to(create_obligation))
        .route("/v1/obligations/{code}", web::patch().to(update_obligation));
}

/// The longest name of an entry, in characters.
const NAME_MAX_CHARS: usize = 128;

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Duplicate(_) => {
                ApiError::conflict(ErrorCode::DuplicateCode, err.to_string())
            }
            StoreError::NotFound(_) => ApiError::not_found(ErrorCode::NotFound, err.to_string()),
            StoreError::Db(err) => err.into(),
        }
    }
}

/// The catalog, as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Catalog {
    pub items: Vec<CatalogEntry>,
}

/// The body of `POST /v1/obligations`.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct CreateObligationRequest {
    /// `^[a-z][a-z0-9_]{1,31}$`; never reused.
    #[schema(example = "hospital_fee")]
    code: String,
    /// 1 to 128 characters.
    #[schema(example = "Viện phí (hospital fees)")]
    name: String,
    /// A JSON Schema (draft 2020-12) whose root has `"type": "object"` and
    /// `"additionalProperties": false`; at most 64 KiB, 32 levels deep, patterns of at most
    /// 1,000 characters; no `$ref` outside the schema itself. It never changes once created.
    #[schema(value_type = Object, example = json!({
        "type": "object",
        "properties": {"patient_code": {"type": "string", "pattern": "^BN[0-9]{8}$"}},
        "required": ["patient_code"],
        "additionalProperties": false
    }))]
    details_schema: Value,
}

/// The body of `PATCH /v1/obligations/{code}`: any subset; only the fields given change.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct UpdateObligationRequest {
    name: Option<String>,
    /// `false`: new orders are refused with `obligation_inactive`.
    active: Option<bool>,
}

/// 422 `invalid_schema`.
pub struct InvalidSchema;

impl IntoResponses for InvalidSchema {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        BTreeMap::from([(
            "422".to_owned(),
            problem("`invalid_schema` (the detail names the problem), or `validation_failed`"),
        )])
    }
}

/// 404 `not_found`: no entry with that code.
pub struct ObligationNotFound;

impl IntoResponses for ObligationNotFound {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        BTreeMap::from([("404".to_owned(), problem("`not_found`"))])
    }
}

/// List the obligation catalog: the built-ins first, then the others as created. Any key.
#[utoipa::path(get, path = "/v1/obligations", tag = "obligations",
    responses(
        (status = 200, description = "Every catalog entry, active or not", body = Catalog),
    ))]
pub async fn list_obligations(_principal: Principal, state: State) -> Answer {
    let items = store::list(&state.pool).await?;
    Ok(HttpResponse::Ok().json(Catalog { items }))
}

/// Add an obligation to the catalog, usable by every agency allowed it at once.
#[utoipa::path(post, path = "/v1/obligations", tag = "obligations",
    request_body = CreateObligationRequest,
    responses(
        (status = 201, description = "Created", body = CatalogEntry),
        DuplicateCode,
        InvalidSchema,
    ))]
pub async fn create_obligation(
    principal: Principal,
    state: State,
    JsonBody(body): JsonBody,
) -> Answer {
    principal.require(&[Role::Admin])?;
    let mut v = Validator::new();
    let code = v.required(&body, "code", code_field);
    let name = v.required(&body, "name", text(1, NAME_MAX_CHARS));
    let details_schema = v.required(&body, "details_schema", |value| Ok(value.clone()));
    let (code, name, details_schema) = v.finish_with(|| Some((code?, name?, details_schema?)))?;
    if let Err(problem) = schema::check(&details_schema) {
        return Err(ApiError::Unprocessable {
            code: ErrorCode::InvalidSchema,
            detail: format!("details_schema {problem}"),
        });
    }
    let new = NewEntry {
        code,
        name,
        details_schema,
    };
    let created = store::create(&state.pool, new, &Actor::api(&principal)).await?;
    Ok(HttpResponse::Created().json(created))
}

/// Rename an obligation or switch it on or off; its schema never changes.
#[utoipa::path(patch, path = "/v1/obligations/{code}", tag = "obligations",
    params(("code" = String, Path, description = "Obligation code")),
    request_body = UpdateObligationRequest,
    responses(
        (status = 200, description = "The entry", body = CatalogEntry),
        ObligationNotFound,
        ValidationFailed,
    ))]
pub async fn update_obligation(
    principal: Principal,
    state: State,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Answer {
    principal.require(&[Role::Admin])?;
    let code = path.into_inner();
    let mut v = Validator::new();
    let name = patch_field(&mut v, &body, "name", text(1, NAME_MAX_CHARS));
    let active = patch_field(&mut v, &body, "active", |value| {
        value
            .as_bool()
            .ok_or_else(|| "must be true or false".to_owned())
    });
    v.finish()?;
    // A code that cannot be valid names nothing: the same 404 as for one that is unknown.
    if code_field(&Value::String(code.clone())).is_err() {
        return Err(StoreError::NotFound(code).into());
    }
    let changes = Changes { name, active };
    let entry = store::update(&state.pool, &code, changes, &Actor::api(&principal)).await?;
    Ok(HttpResponse::Ok().json(entry))
}

/// A field that may be absent (unchanged); present, even as null, it must parse.
fn patch_field<T>(
    v: &mut Validator,
    body: &Map<String, Value>,
    field: &str,
    parse: impl FnOnce(&Value) -> Result<T, String>,
) -> Option<T> {
    let value = body.get(field)?;
    v.check(field, parse(value))
}

/// An obligation code: `^[a-z][a-z0-9_]{1,31}$` (the syntax [`ObligationCode`] holds codes to).
fn code_field(value: &Value) -> Result<String, String> {
    let message = || "must match ^[a-z][a-z0-9_]{1,31}$".to_owned();
    let code = value.as_str().ok_or_else(message)?;
    ObligationCode::parse(code)
        .map(|code| code.as_str().to_owned())
        .map_err(|_| message())
}
