//! `Idempotency-Key` for creating orders (see "Idempotency" in `docs/api-guide.md`).
//!
//! A create request inserts its key row first, in the transaction that creates the order. A
//! concurrent request with the same key blocks on that row's primary key until the first
//! transaction ends: if it committed, the second replays the stored answer; if it rolled back
//! (the request failed), the key is free and the second proceeds. One order, by construction.

use deadpool_postgres::Pool;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::db::DbError;

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
    /// The key in a header's bytes, or `None` when they are not 1-255 printable ASCII
    /// characters.
    pub fn parse(bytes: &[u8]) -> Option<IdempotencyKey> {
        let printable = bytes.iter().all(|b| (0x20..=0x7e).contains(b));
        if bytes.is_empty() || bytes.len() > MAX_KEY_BYTES || !printable {
            return None;
        }
        // Printable ASCII is always UTF-8, so this never fails.
        String::from_utf8(bytes.to_vec()).ok().map(IdempotencyKey)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// SHA-256 of the body (a JSON object): object keys sorted at every level, so that the same
/// value sent with another key order or spacing is the same request.
pub fn request_fingerprint(body: &Map<String, Value>) -> Vec<u8> {
    let mut canonical = String::new();
    write_object(body, &mut canonical);
    Sha256::digest(canonical.as_bytes()).to_vec()
}

fn write_object(object: &Map<String, Value>, out: &mut String) {
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

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(object) => write_object(object, out),
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
pub async fn purge_expired(pool: &Pool) -> Result<u64, DbError> {
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

    fn fingerprint(body: &Value) -> Vec<u8> {
        request_fingerprint(body.as_object().expect("a test body is an object"))
    }

    #[test]
    fn the_same_value_in_another_key_order_has_the_same_fingerprint() {
        let a = json!({"amount": "1", "payer": {"name": "A", "id_number": "1"}, "x": [1, {"b": 1, "a": 2}]});
        let b: Value = serde_json::from_str(
            r#"{ "x": [1, {"a": 2, "b": 1}], "payer": {"id_number": "1", "name": "A"}, "amount": "1" }"#,
        )
        .unwrap();
        assert_eq!(fingerprint(&a), fingerprint(&b));
    }

    #[test]
    fn keys_of_printable_ascii_up_to_255_bytes_are_accepted_and_others_refused() {
        assert_eq!(
            IdempotencyKey::parse(b"order 1/2~").map(|k| k.as_str().to_owned()),
            Some("order 1/2~".to_owned())
        );
        assert!(IdempotencyKey::parse(&[b'k'; MAX_KEY_BYTES]).is_some());
        let too_long = [b'k'; MAX_KEY_BYTES + 1];
        let refused: [&[u8]; 4] = [b"", &too_long, b"tab\tkey", "kh\u{f3}a".as_bytes()];
        for bad in refused {
            assert!(IdempotencyKey::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn a_different_value_has_a_different_fingerprint() {
        let a = json!({"amount": "150000"});
        let b = json!({"amount": "150001"});
        let c = json!({"amount": 150000});
        assert_ne!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&c));
    }
}
