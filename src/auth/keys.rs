//! Random secrets (API keys, bank signing secrets, agency notification secrets) and the ids
//! under which API keys are shown.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// Every secret carries 32 random bytes (256 bits), the least an API key may carry.
pub const SECRET_BYTES: usize = 32;

/// `<prefix>_` followed by 32 random bytes in unpadded base64url (43 characters). The prefix
/// tells a leaked string's kind at a glance (`pgk` API key, `bsk` bank secret, `nsk` notify
/// secret) and lets secret scanners find them.
pub fn random_secret(prefix: &str) -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    format!("{prefix}_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// How the API names an API key: `key_` and the row's number, e.g. `key_42`. It is safe in
/// paths and query strings, and says nothing about the key itself.
pub fn key_id(row_id: i64) -> String {
    format!("{KEY_ID_PREFIX}{row_id}")
}

/// The row number of an API key id written as [`key_id`] writes it; `None` for anything else.
pub fn parse_key_id(id: &str) -> Option<i64> {
    let digits = id.strip_prefix(KEY_ID_PREFIX)?;
    // Exactly the canonical form: no sign, no leading zero, so that one key has one id.
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<i64>().ok()
}

const KEY_ID_PREFIX: &str = "key_";

/// The stored form of an API key. A fast hash suffices: the key has 256 bits of entropy, so
/// there is nothing to guess, and a slow hash would only slow every request.
pub fn hash_api_key(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_distinct_and_prefixed() {
        let a = random_secret("pgk");
        let b = random_secret("pgk");
        assert_ne!(a, b);
        assert!(a.starts_with("pgk_"));
        assert_eq!(a.len(), 4 + 43);
        assert!(a[4..]
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }

    #[test]
    fn key_ids_round_trip_and_only_the_canonical_form_parses() {
        assert_eq!(key_id(42), "key_42");
        assert_eq!(parse_key_id("key_42"), Some(42));
        assert_eq!(parse_key_id(&key_id(i64::MAX)), Some(i64::MAX));
        for other in [
            "42",
            "key_",
            "key_042",
            "key_-1",
            "key_+1",
            "key_1x",
            "KEY_1",
            "key_99999999999999999999",
        ] {
            assert_eq!(parse_key_id(other), None, "{other}");
        }
    }

    #[test]
    fn the_hash_is_sha256_of_the_key() {
        assert_eq!(
            hex::encode(hash_api_key("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
