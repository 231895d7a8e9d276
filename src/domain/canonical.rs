//! Canonical JSON and the SHA-256 chains built on it (the audit log and the ledger seals).
//!
//! The canonical form of a JSON value is what an outside auditor can reproduce with any JSON
//! library: object keys sorted (by Unicode code point) at every level, no whitespace, strings
//! escaped only where JSON requires it (`"`, `\` and control characters), every other character
//! written as itself, numbers as integers. In Python that is
//! `json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`.
//!
//! A chain links entries: each entry's hash is the lowercase hex SHA-256 of the UTF-8 bytes of
//! the previous entry's hash (64 hex characters; [`GENESIS_HASH`] before the first) followed by
//! the entry's canonical JSON.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first entry of a chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// `value` in canonical form.
pub fn to_canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(&mut out, value);
    out
}

/// Appends the canonical form of `value` to `out`.
pub fn write_canonical(out: &mut String, value: &Value) {
    match value {
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            // Rust orders strings by their UTF-8 bytes, which is Unicode code point order.
            members.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, member)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_canonical(out, member);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(out, item);
            }
            out.push(']');
        }
        Value::String(text) => write_string(out, text),
        // null, booleans and numbers print the same in every form.
        other => out.push_str(&other.to_string()),
    }
}

fn write_string(out: &mut String, text: &str) {
    // serde_json escapes exactly `"`, `\` and the control characters, and writes every other
    // character as itself, as the canonical form requires.
    out.push_str(&serde_json::to_string(text).expect("a string always serialises"));
}

/// A running chain hash: feed the previous hash, then the entry's canonical JSON (in as many
/// pieces as convenient), then take the hex digest.
pub struct ChainHasher(Sha256);

impl ChainHasher {
    pub fn new(prev_hash: &str) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(prev_hash.as_bytes());
        ChainHasher(hasher)
    }

    pub fn update(&mut self, canonical_piece: &str) {
        self.0.update(canonical_piece.as_bytes());
    }

    /// The lowercase hex digest.
    pub fn finish(self) -> String {
        hex::encode(self.0.finalize())
    }
}

/// The hash of an entry whose canonical JSON is `canonical`, chained to `prev_hash`.
pub fn chain_hash(prev_hash: &str, canonical: &str) -> String {
    let mut hasher = ChainHasher::new(prev_hash);
    hasher.update(canonical);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn keys_are_sorted_at_every_level_without_spaces() {
        let value = json!({"b": 1, "a": {"d": [true, null, {"z": 1, "y": "x"}], "c": "ä"}});
        assert_eq!(
            to_canonical(&value),
            r#"{"a":{"c":"ä","d":[true,null,{"y":"x","z":1}]},"b":1}"#
        );
    }

    #[test]
    fn strings_escape_only_what_json_requires() {
        let value = json!({"s": "Sở Tư pháp \"Hà Nội\"\\\n\u{1}\u{7f}"});
        assert_eq!(
            to_canonical(&value),
            "{\"s\":\"Sở Tư pháp \\\"Hà Nội\\\"\\\\\\n\\u0001\u{7f}\"}"
        );
    }

    #[test]
    fn keys_sort_by_code_point() {
        // "Z" (U+005A) < "a" (U+0061) < "é" (U+00E9) < "ả" (U+1EA3).
        let value = json!({"ả": 1, "é": 2, "a": 3, "Z": 4});
        assert_eq!(to_canonical(&value), r#"{"Z":4,"a":3,"é":2,"ả":1}"#);
    }

    #[test]
    fn the_chain_hash_is_sha256_of_prev_hash_then_canonical_json() {
        // printf '%s{"a":1}' 000...0 | sha256sum
        let expected = hex::encode(Sha256::digest(format!("{GENESIS_HASH}{{\"a\":1}}")));
        assert_eq!(chain_hash(GENESIS_HASH, r#"{"a":1}"#), expected);
        let mut pieces = ChainHasher::new(GENESIS_HASH);
        pieces.update("{\"a\"");
        pieces.update(":1}");
        assert_eq!(pieces.finish(), expected);
    }
}
