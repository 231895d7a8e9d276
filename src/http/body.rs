//! Request bodies: read with a size limit, parsed as JSON, then validated field by field into
//! domain types, collecting every invalid field so that one 422 names them all.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{FromRequest, HttpRequest};
use futures_util::StreamExt;
use serde_json::{Map, Value};

use super::error::{ApiError, FieldError};

/// JSON bodies over 1 MiB answer 413 `payload_too_large` (contract section 2).
pub const JSON_BODY_LIMIT_BYTES: usize = 1024 * 1024;

/// Reads the whole body, refusing it as soon as it exceeds `limit_bytes` (so an oversized body
/// is never buffered whole).
pub async fn read_limited(
    req: &HttpRequest,
    payload: &mut Payload,
    limit_bytes: usize,
) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit_bytes) {
        return Err(ApiError::PayloadTooLarge { limit_bytes });
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|err| ApiError::BadRequest {
            code: "malformed_body",
            detail: format!("the body could not be read: {err}"),
        })?;
        if body.len() + chunk.len() > limit_bytes {
            return Err(ApiError::PayloadTooLarge { limit_bytes });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The raw body bytes (at most 1 MiB), for signature checks that must see exactly what was sent.
pub struct RawBody(pub Bytes);

impl FromRequest for RawBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            read_limited(&req, &mut payload, JSON_BODY_LIMIT_BYTES)
                .await
                .map(RawBody)
        })
    }
}

/// A JSON object body (at most 1 MiB). Anything that is not JSON answers 400 `malformed_json`;
/// JSON that is not an object answers 422 naming the body.
pub struct JsonBody(pub Map<String, Value>);

impl FromRequest for JsonBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let raw = RawBody::from_request(req, payload);
        Box::pin(async move { parse_object(&raw.await?.0).map(JsonBody) })
    }
}

/// Parses bytes as a JSON object.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(ApiError::invalid("", "the body must be a JSON object")),
        Err(err) => Err(ApiError::MalformedJson(err.to_string())),
    }
}

/// Collects field errors while a JSON object is turned into typed values.
#[derive(Debug, Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    pub fn new() -> Self {
        Validator::default()
    }

    /// A field that must be present and not null, parsed by `parse`.
    pub fn required<T>(
        &mut self,
        object: &Map<String, Value>,
        path: &str,
        parse: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Option<T> {
        match object.get(leaf(path)) {
            None | Some(Value::Null) => {
                self.error(path, "is required");
                None
            }
            Some(value) => self.check(path, parse(value)),
        }
    }

    /// A field that may be absent or null (`Some(None)`), or else must parse.
    pub fn optional<T>(
        &mut self,
        object: &Map<String, Value>,
        path: &str,
        parse: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Option<Option<T>> {
        match object.get(leaf(path)) {
            None | Some(Value::Null) => Some(None),
            Some(value) => self.check(path, parse(value)).map(Some),
        }
    }

    /// Records the error of a parse result under `path`.
    pub fn check<T>(&mut self, path: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|message| self.error(path, message)).ok()
    }

    pub fn error(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(path, message));
    }

    /// Ok when no field was invalid; otherwise one 422 that lists them all.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}

/// The last segment of a dotted path: the key inside its own object.
fn leaf(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

/// A JSON string of `min..=max` characters (Unicode scalar values, not bytes).
pub fn text(min: usize, max: usize) -> impl Fn(&Value) -> Result<String, String> {
    move |value| {
        let Value::String(text) = value else {
            return Err("must be a string".to_owned());
        };
        let chars = text.chars().count();
        if chars < min || chars > max {
            return Err(format!("must be {min} to {max} characters long"));
        }
        Ok(text.clone())
    }
}

/// A JSON string parsed by a domain type's `parse`.
pub fn parsed<T>(
    parse: impl Fn(&str) -> Result<T, String>,
) -> impl Fn(&Value) -> Result<T, String> {
    move |value| match value {
        Value::String(text) => parse(text),
        _ => Err("must be a string".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn every_invalid_field_is_reported_at_once() {
        let body = object(json!({"name": "", "code": 5}));
        let mut v = Validator::new();
        let name = v.required(&body, "name", text(1, 10));
        let code = v.required(&body, "code", text(1, 10));
        let missing = v.required(&body, "payer.name", text(1, 10));
        assert!(name.is_none() && code.is_none() && missing.is_none());
        let ApiError::Validation(errors) = v.finish().unwrap_err() else {
            panic!("expected a validation error");
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "code", "payer.name"]);
    }

    #[test]
    fn text_length_counts_characters_not_bytes() {
        // 10 characters, 24 bytes in UTF-8.
        let vietnamese = json!("Nguyễn Văn");
        assert_eq!(text(1, 10)(&vietnamese).unwrap(), "Nguyễn Văn");
        assert!(text(1, 9)(&vietnamese).is_err());
    }

    #[test]
    fn null_counts_as_absent_for_optional_fields() {
        let body = object(json!({"notify_url": null}));
        let mut v = Validator::new();
        assert_eq!(v.optional(&body, "notify_url", text(1, 5)), Some(None));
        assert!(v.finish().is_ok());
    }

    #[test]
    fn a_body_that_is_not_an_object_or_not_json_is_refused() {
        assert_eq!(
            parse_object(b"[1]").unwrap_err().code(),
            "validation_failed"
        );
        assert_eq!(
            parse_object(b"{\"a\":").unwrap_err().code(),
            "malformed_json"
        );
        assert_eq!(parse_object(b"").unwrap_err().code(), "malformed_json");
    }
}
