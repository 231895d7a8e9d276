//! Random secrets: API keys, bank signing secrets, agency notification secrets.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// Every secret carries 32 random bytes (256 bits), the contract's minimum for API keys.
pub const SECRET_BYTES: usize = 32;

/// `<prefix>_` followed by 32 random bytes in unpadded base64url (43 characters). The prefix
/// tells a leaked string's kind at a glance (`pgk` API key, `bsk` bank secret, `nsk` notify
/// secret) and lets secret scanners find them.
pub fn random_secret(prefix: &str) -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    format!("{prefix}_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// A short random identifier, e.g. a bank key id `kid_1f2e3d4c5b6a7988`.
pub fn random_id(prefix: &str, bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system's random source is available");
    format!("{prefix}_{}", hex::encode(buf))
}

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
    fn the_hash_is_sha256_of_the_key() {
        assert_eq!(
            hex::encode(hash_api_key("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
