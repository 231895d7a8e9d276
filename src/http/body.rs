//! Request bodies: read with a size limit (into memory, or spooled to a file), parsed as JSON,
//! then validated field by field into domain types, collecting every invalid field so that one
//! 422 names them all.

use std::fs::File;
use std::future::Future;
use std::io::{Seek, Write};
use std::pin::Pin;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse};
use actix_web::web::{Bytes, BytesMut};
use actix_web::{FromRequest, HttpRequest};
use futures_util::StreamExt;
use serde_json::{Map, Value};

use super::error::{ApiError, ErrorCode, FieldError};

/// JSON bodies over 1 MiB answer 413 `payload_too_large`.
pub const JSON_BODY_LIMIT_BYTES: usize = 1024 * 1024;

/// A request body read chunk by chunk under a size limit: it is refused with 413
/// `payload_too_large` as soon as its declared `Content-Length`, or the bytes read so far,
/// exceed `limit_bytes`, so an oversized body is never read whole. Every body paygate reads
/// goes through here, buffered ([`LimitedBody::read_all`]) or spooled to a file
/// ([`LimitedBody::spool`]).
pub struct LimitedBody<'a> {
    payload: &'a mut Payload,
    limit_bytes: usize,
    read_bytes: usize,
    /// The `Content-Length` the client sent, at most `limit_bytes`.
    declared_bytes: Option<usize>,
}

impl<'a> LimitedBody<'a> {
    pub fn new(
        req: &HttpRequest,
        payload: &'a mut Payload,
        limit_bytes: usize,
    ) -> Result<Self, ApiError> {
        let declared_bytes = req
            .headers()
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<usize>().ok());
        if declared_bytes.is_some_and(|length| length > limit_bytes) {
            return Err(ApiError::PayloadTooLarge { limit_bytes });
        }
        Ok(LimitedBody {
            payload,
            limit_bytes,
            read_bytes: 0,
            declared_bytes,
        })
    }

    /// The next chunk of the body, or `None` at its end.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, ApiError> {
        let Some(chunk) = self.payload.next().await else {
            return Ok(None);
        };
        let chunk = chunk.map_err(|err| ApiError::BadRequest {
            code: ErrorCode::MalformedBody,
            detail: format!("the body could not be read: {err}"),
        })?;
        self.read_bytes += chunk.len();
        if self.read_bytes > self.limit_bytes {
            return Err(ApiError::PayloadTooLarge {
                limit_bytes: self.limit_bytes,
            });
        }
        Ok(Some(chunk))
    }

    /// Reads the whole body into memory.
    pub async fn read_all(mut self) -> Result<Bytes, ApiError> {
        let mut body = BytesMut::with_capacity(self.declared_bytes.unwrap_or(0));
        while let Some(chunk) = self.next_chunk().await? {
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }

    /// Writes the whole body to an anonymous temporary file (deleted when closed) and returns
    /// the file rewound to its start. For bodies too large to hold in memory (a bank's
    /// statement): memory stays flat however large they are.
    ///
    /// A method to call rather than an extractor, so that a handler checks the key's role and
    /// the query before it reads a body of up to `limit_bytes`.
    pub async fn spool(mut self) -> Result<File, ApiError> {
        let mut file = tempfile::tempfile().map_err(ApiError::internal)?;
        while let Some(chunk) = self.next_chunk().await? {
            file.write_all(&chunk).map_err(ApiError::internal)?;
        }
        file.rewind().map_err(ApiError::internal)?;
        Ok(file)
    }
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
            LimitedBody::new(&req, &mut payload, JSON_BODY_LIMIT_BYTES)?
                .read_all()
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
///
/// A body in which any string (a value or a member name, at any depth) holds a NUL character
/// is refused here with a 422 that names each such field, before any handler reads it: the
/// database cannot store NUL in text, and checking the whole body at the one place where every
/// JSON body is read means that no field, present or future, can forget the rule.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(object)) => {
            let mut errors = Vec::new();
            for (name, value) in &object {
                find_nul(name, value, &mut errors);
            }
            if errors.is_empty() {
                Ok(object)
            } else {
                Err(ApiError::Validation(errors))
            }
        }
        Ok(_) => Err(ApiError::invalid("", "the body must be a JSON object")),
        Err(err) => Err(ApiError::MalformedJson(err.to_string())),
    }
}

/// The message for text that holds a NUL character (U+0000).
pub const NUL_MESSAGE: &str = "must not contain a NUL character (U+0000)";

/// Whether `text` holds a NUL character, which no text field may.
pub fn has_nul(text: &str) -> bool {
    text.contains('\0')
}

/// A field's name as an error names it: a NUL inside a member name is written as `\u0000`,
/// so that the answer itself carries none.
fn shown(name: &str) -> String {
    name.replace('\0', "\\u0000")
}

/// Records an error for every string under `path` (a dotted path; array elements by index)
/// that holds a NUL, in a member name or a value.
fn find_nul(path: &str, value: &Value, errors: &mut Vec<FieldError>) {
    if has_nul(path) {
        errors.push(FieldError::new(shown(path), NUL_MESSAGE));
        return;
    }
    match value {
        Value::String(text) if has_nul(text) => errors.push(FieldError::new(path, NUL_MESSAGE)),
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                find_nul(&format!("{path}.{index}"), item, errors);
            }
        }
        Value::Object(members) => {
            for (name, member) in members {
                find_nul(&format!("{path}.{name}"), member, errors);
            }
        }
        _ => {}
    }
}

/// What a request's address carries that no handler may see: a NUL character, written `%00`
/// in the path or the query string. `None` when there is none.
///
/// A query parameter that holds one is a 422 naming it; a path that holds one names nothing
/// that can exist (no id, code or route has a NUL), so it is a 404.
pub fn nul_in_url(path: &str, query: &str) -> Option<ApiError> {
    // Percent-encoding sequences never overlap, so `%00` appears in the raw path exactly when
    // the decoded path holds a NUL (an encoded `%` is `%25`).
    if path.contains("%00") {
        return Some(ApiError::not_found(ErrorCode::NotFound, "no such resource"));
    }
    // Query strings are decoded like `web::Query` decodes them (`+` is a space).
    let errors: Vec<FieldError> = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(name, value)| has_nul(name) || has_nul(value))
        .map(|(name, _)| FieldError::new(shown(&name), NUL_MESSAGE))
        .collect();
    (!errors.is_empty()).then_some(ApiError::Validation(errors))
}

/// Middleware that answers [`nul_in_url`]'s refusal before any route sees the request, so that
/// every handler, whichever parameters it reads, gets text without NUL.
pub fn refuse_nul_in_url<S, B>(
    req: ServiceRequest,
    service: &S,
) -> impl Future<Output = Result<ServiceResponse<EitherBody<B>>, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let next = match nul_in_url(req.path(), req.query_string()) {
        None => Ok(service.call(req)),
        Some(refusal) => Err((req, refusal)),
    };
    async move {
        match next {
            Ok(call) => call.await.map(ServiceResponse::map_into_left_body),
            Err((req, refusal)) => Ok(req.error_response(refusal).map_into_right_body()),
        }
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

    /// The typed input built from the fields read, or one 422 that lists every invalid field.
    ///
    /// `build` assembles the value from the `Option`s that `required`, `optional` and `check`
    /// gave, with `?` on each: when no error was recorded, every required field is present, so
    /// `build` gives `Some`. This is the one place where that is relied upon.
    pub fn finish_with<T>(self, build: impl FnOnce() -> Option<T>) -> Result<T, ApiError> {
        self.finish()?;
        Ok(build().expect("a validator with no errors has every required field"))
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
        if has_nul(text) {
            return Err(NUL_MESSAGE.to_owned());
        }
        let chars = text.chars().count();
        if chars < min || chars > max {
            return Err(format!("must be {min} to {max} characters long"));
        }
        Ok(text.clone())
    }
}

/// A JSON string parsed by a domain type's `parse`; text holding a NUL is refused before
/// `parse` sees it.
pub fn parsed<T>(
    parse: impl Fn(&str) -> Result<T, String>,
) -> impl Fn(&Value) -> Result<T, String> {
    move |value| match value {
        Value::String(text) if has_nul(text) => Err(NUL_MESSAGE.to_owned()),
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

    /// A request and its body; `declared` replaces the body's true `Content-Length`.
    fn request(body: &'static [u8], declared: Option<&str>) -> (HttpRequest, Payload) {
        let mut request = actix_web::test::TestRequest::post().set_payload(body);
        if let Some(declared) = declared {
            request = request.insert_header((actix_web::http::header::CONTENT_LENGTH, declared));
        }
        request.to_http_parts()
    }

    fn too_large(err: ApiError) -> usize {
        match err {
            ApiError::PayloadTooLarge { limit_bytes } => limit_bytes,
            other => panic!("expected payload_too_large, got {other:?}"),
        }
    }

    /// Reads the body whole under a limit of 10 bytes: into memory, or spooled to a file and
    /// read back from where the file stands.
    async fn read(
        req: &HttpRequest,
        payload: &mut Payload,
        spool: bool,
    ) -> Result<Vec<u8>, ApiError> {
        use std::io::Read;
        let body = LimitedBody::new(req, payload, 10)?;
        if !spool {
            return Ok(body.read_all().await?.to_vec());
        }
        let mut file = body.spool().await?;
        let mut spooled = Vec::new();
        file.read_to_end(&mut spooled).unwrap();
        Ok(spooled)
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_read_whole_into_memory_or_a_rewound_file() {
        for spool in [false, true] {
            let (req, mut payload) = request(b"0123456789", None);
            assert_eq!(
                read(&req, &mut payload, spool).await.unwrap(),
                b"0123456789",
                "spooled: {spool}"
            );
        }
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_by_its_declared_length_or_as_it_streams() {
        for spool in [false, true] {
            // Declared over the limit: refused before a byte is read.
            let (req, mut payload) = request(b"", Some("11"));
            let err = read(&req, &mut payload, spool).await.unwrap_err();
            assert_eq!(too_large(err), 10, "spooled: {spool}");
            // Declared within the limit, or not a number, but longer: refused as it streams.
            for declared in ["1", "many"] {
                let (req, mut payload) = request(b"0123456789x", Some(declared));
                let err = read(&req, &mut payload, spool).await.unwrap_err();
                assert_eq!(too_large(err), 10, "{declared}, spooled: {spool}");
            }
        }
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

    fn fields_of(err: ApiError) -> Vec<(String, String)> {
        let ApiError::Validation(errors) = err else {
            panic!("expected a validation error, got {err:?}");
        };
        errors.into_iter().map(|e| (e.field, e.message)).collect()
    }

    #[test]
    fn a_nul_anywhere_in_a_body_is_refused_naming_every_such_field() {
        let body = br#"{"reference": "a\u0000b", "payer": {"name": "ok", "id_number": "\u0000"},
            "details": {"dossier_code": "x\u0000"}, "list": ["a", "\u0000"],
            "na\u0000me": "fine", "clean": "text", "n": 1}"#;
        let fields: Vec<String> = fields_of(parse_object(body).unwrap_err())
            .into_iter()
            .map(|(field, message)| {
                assert_eq!(message, NUL_MESSAGE);
                field
            })
            .collect();
        assert_eq!(
            fields,
            [
                "reference",
                "payer.id_number",
                "details.dossier_code",
                "list.1",
                "na\\u0000me"
            ]
        );
    }

    #[test]
    fn a_body_without_nul_parses_and_other_control_characters_are_kept() {
        let object = parse_object(br#"{"a": "tab\tand\u0001", "b": "Nguy\u1ec5n"}"#).unwrap();
        assert_eq!(object["a"], "tab\tand\u{1}");
        assert_eq!(object["b"], "Nguyễn");
    }

    #[test]
    fn text_and_parsed_refuse_nul_before_any_other_rule() {
        assert_eq!(text(1, 3)(&json!("a\u{0}b")).unwrap_err(), NUL_MESSAGE);
        assert_eq!(text(1, 3)(&json!("\u{0}")).unwrap_err(), NUL_MESSAGE);
        let parse = parsed(|t: &str| Ok::<_, String>(t.len()));
        assert_eq!(parse(&json!("x\u{0}")).unwrap_err(), NUL_MESSAGE);
        assert_eq!(parse(&json!("x")), Ok(1));
    }

    #[test]
    fn a_nul_in_a_query_parameter_is_a_422_naming_it_and_in_a_path_a_404() {
        assert!(nul_in_url("/v1/payments", "reference=a&limit=5").is_none());
        assert!(nul_in_url("/v1/payments/%2500", "reference=%2500").is_none());
        let fields = fields_of(
            nul_in_url(
                "/v1/payments",
                "reference=a%00b&status=paid&x%00=1&cursor=%00",
            )
            .unwrap(),
        );
        let names: Vec<&str> = fields.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(names, ["reference", "x\\u0000", "cursor"]);
        let err = nul_in_url("/v1/reconciliations/run%00", "").unwrap();
        assert_eq!(err.code(), ErrorCode::NotFound);
    }

    #[test]
    fn a_body_that_is_not_an_object_or_not_json_is_refused() {
        assert_eq!(
            parse_object(b"[1]").unwrap_err().code(),
            ErrorCode::ValidationFailed
        );
        assert_eq!(
            parse_object(b"{\"a\":").unwrap_err().code(),
            ErrorCode::MalformedJson
        );
        assert_eq!(
            parse_object(b"").unwrap_err().code(),
            ErrorCode::MalformedJson
        );
    }
}
