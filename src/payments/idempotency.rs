//! `Idempotency-Key` for creating orders (see "Idempotency" in `docs/api-guide.md`).
//!
//! A create request inserts its key row first, in the transaction that creates the order. A
//! concurrent request with the same key blocks on that row's primary key until the first
//! transaction ends: if it committed, the second replays the stored answer; if it rolled back
//! (the request failed), the key is free and the second proceeds. One order, by construction.

use actix_web::HttpRequest;
use deadpool_postgres::Pool;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::http::error::ApiError;

pub const HEADER: &str = "Idempotency-Key";
pub const MAX_KEY_BYTES: usize = 255;
/// Keys are remembered at least this long (the documented minimum).
pub const RETENTION_HOURS: i32 = 24;
/// Rows deleted per statement by the purge, so that it never holds long locks.
pub const PURGE_BATCH_ROWS: i64 = 1_000;

/// A valid `Idempotency-Key`: 1-255 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn from_request(req: &HttpRequest) -> Result<IdempotencyKey, ApiError> {
        let required = |detail: &str| ApiError::BadRequest {
            code: "idempotency_key_required",
            detail: detail.to_owned(),
        };
        let value = req
            .headers()
            .get(HEADER)
            .ok_or_else(|| required("the Idempotency-Key header is required"))?;
        let bytes = value.as_bytes();
        let printable = bytes.iter().all(|b| (0x20..=0x7e).contains(b));
        if bytes.is_empty() || bytes.len() > MAX_KEY_BYTES || !printable {
            return Err(required(
                "the Idempotency-Key header must be 1 to 255 printable ASCII characters",
            ));
        }
        Ok(IdempotencyKey(
            String::from_utf8(bytes.to_vec()).expect("printable ASCII is UTF-8"),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// SHA-256 of the body as a JSON value: object keys sorted at every level, so that the same
/// value sent with another key order or spacing is the same request.
pub fn request_fingerprint(body: &Value) -> Vec<u8> {
    let mut canonical = String::new();
    write_canonical(body, &mut canonical);
    Sha256::digest(canonical.as_bytes()).to_vec()
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(object) => {
            let mut entries: Vec<_> = object.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Deletes keys older than the retention, a bounded batch per statement; returns how many.
pub async fn purge_expired(pool: &Pool) -> Result<u64, ApiError> {
    let client = pool.get().await?;
    let mut purged = 0;
    loop {
        let deleted = client
            .execute(
                "DELETE FROM idempotency_keys WHERE ctid IN (
                    SELECT ctid FROM idempotency_keys
                    WHERE created_at < now() - make_interval(hours => $1)
                    LIMIT $2)",
                &[&RETENTION_HOURS, &PURGE_BATCH_ROWS],
            )
            .await?;
        purged += deleted;
        if deleted < PURGE_BATCH_ROWS as u64 {
            return Ok(purged);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_same_value_in_another_key_order_has_the_same_fingerprint() {
        let a = json!({"amount": "1", "payer": {"name": "A", "id_number": "1"}, "x": [1, {"b": 1, "a": 2}]});
        let b: Value = serde_json::from_str(
            r#"{ "x": [1, {"a": 2, "b": 1}], "payer": {"id_number": "1", "name": "A"}, "amount": "1" }"#,
        )
        .unwrap();
        assert_eq!(request_fingerprint(&a), request_fingerprint(&b));
    }

    #[test]
    fn a_different_value_has_a_different_fingerprint() {
        let a = json!({"amount": "150000"});
        let b = json!({"amount": "150001"});
        let c = json!({"amount": 150000});
        assert_ne!(request_fingerprint(&a), request_fingerprint(&b));
        assert_ne!(request_fingerprint(&a), request_fingerprint(&c));
    }
}
