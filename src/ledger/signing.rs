//! The Ed25519 key that signs ledger seals, and the public keys trusted when verifying them.
//!
//! The private key never enters the database: a hash chain alone can be recomputed by whoever
//! can write the database, a signature cannot. The key is a 32-byte seed, from
//! `PAYGATE_SEAL_KEY` (hex; in Kubernetes a Secret) or else from `$PAYGATE_DATA_DIR/seal.key`,
//! generated there on first use. Keys used before a rotation stay trusted when listed in
//! `PAYGATE_SEAL_PREVIOUS_KEYS` or, in data-directory mode, in
//! `$PAYGATE_DATA_DIR/seal.previous-keys` (one hex public key a line).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

/// The file the seed is kept in, in data-directory mode.
pub const KEY_FILE: &str = "seal.key";
/// The public keys of earlier seeds, in data-directory mode.
pub const PREVIOUS_KEYS_FILE: &str = "seal.previous-keys";
/// Trusting more earlier keys than this is surely a mistake (a key rotated every day for years).
pub const MAX_PREVIOUS_KEYS: usize = 1_000;

/// A 32-byte Ed25519 seed. Its `Debug` never shows the seed, so a logged configuration cannot
/// leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct SealSeed([u8; 32]);

impl std::fmt::Debug for SealSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealSeed(<hidden>)")
    }
}

impl SealSeed {
    pub fn from_bytes(bytes: [u8; 32]) -> SealSeed {
        SealSeed(bytes)
    }

    /// 64 hex digits (either case; surrounding whitespace ignored).
    pub fn parse_hex(text: &str) -> Option<SealSeed> {
        let bytes: [u8; 32] = hex::decode(text.trim()).ok()?.try_into().ok()?;
        Some(SealSeed(bytes))
    }

    fn generate() -> std::io::Result<SealSeed> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|err| std::io::Error::other(err.to_string()))?;
        Ok(SealSeed(bytes))
    }

    fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// Parses a hex Ed25519 public key (64 hex digits) into its lowercase form.
pub fn parse_public_key(text: &str) -> Option<String> {
    let bytes: [u8; 32] = hex::decode(text.trim()).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()?;
    Some(hex::encode(bytes))
}

/// Where the seal keys come from (the configuration's `PAYGATE_SEAL_KEY`,
/// `PAYGATE_SEAL_PREVIOUS_KEYS` and `PAYGATE_DATA_DIR`).
#[derive(Debug, Clone, Copy)]
pub struct KeySource<'a> {
    /// The seed; `None` takes (or makes) the data directory's key file.
    pub seed: Option<&'a SealSeed>,
    /// Public keys of earlier seeds, trusted when verifying.
    pub previous: &'a [String],
    pub data_dir: &'a Path,
}

/// The signing key and the public keys trusted besides its own.
pub struct Keyring {
    signing: Option<SigningKey>,
    previous: Vec<String>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("public_key", &self.public_key())
            .field("previous", &self.previous)
            .finish()
    }
}

impl Keyring {
    /// A keyring for `seed`, trusting `previous` too.
    pub fn new(seed: &SealSeed, previous: Vec<String>) -> Keyring {
        Keyring {
            signing: Some(SigningKey::from_bytes(&seed.0)),
            previous,
        }
    }

    /// The keyring of `source`, generating the data directory's key file on first use.
    pub fn load(source: KeySource<'_>) -> std::io::Result<Keyring> {
        Self::load_from(source, true)
    }

    /// The keyring of `source` for verifying only: a missing key file is not generated (the
    /// previous keys alone are then trusted).
    pub fn load_for_verifying(source: KeySource<'_>) -> std::io::Result<Keyring> {
        Self::load_from(source, false)
    }

    fn load_from(source: KeySource<'_>, generate: bool) -> std::io::Result<Keyring> {
        let mut previous = source.previous.to_vec();
        let seed = match source.seed {
            Some(seed) => Some(seed.clone()),
            None => {
                previous.extend(read_previous_keys(source.data_dir)?);
                read_or_create_seed(&key_path(source.data_dir), generate)?
            }
        };
        previous.dedup();
        Ok(Keyring {
            signing: seed.map(|seed| SigningKey::from_bytes(&seed.0)),
            previous,
        })
    }

    /// The hex public key that signs new seals (`None` for a verifying-only keyring without a
    /// key).
    pub fn public_key(&self) -> Option<String> {
        self.signing
            .as_ref()
            .map(|key| hex::encode(key.verifying_key().as_bytes()))
    }

    /// The public keys used before, still trusted.
    pub fn previous_keys(&self) -> &[String] {
        &self.previous
    }

    /// Signs a seal: the lowercase hex signature of the UTF-8 bytes of its `hash`. Returns the
    /// signature and the public key that verifies it; `None` without a signing key.
    pub fn sign(&self, hash: &str) -> Option<(String, String)> {
        let key = self.signing.as_ref()?;
        let signature = key.sign(hash.as_bytes());
        Some((
            hex::encode(signature.to_bytes()),
            hex::encode(key.verifying_key().as_bytes()),
        ))
    }

    /// True when `public_key` is the current key or one of the previous ones.
    pub fn trusts(&self, public_key: &str) -> bool {
        self.public_key().as_deref() == Some(public_key)
            || self.previous.iter().any(|key| key == public_key)
    }
}

/// Why a seal's signature is refused, if it is.
pub fn check_signature(
    keyring: &Keyring,
    public_key: &str,
    hash: &str,
    signature: &str,
) -> Result<(), &'static str> {
    if !keyring.trusts(public_key) {
        return Err("signed by a key that is not trusted");
    }
    let key = hex::decode(public_key)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .and_then(|bytes| VerifyingKey::from_bytes(&bytes).ok())
        .ok_or("the public key is not an Ed25519 key")?;
    let signature = hex::decode(signature)
        .ok()
        .and_then(|bytes| <[u8; 64]>::try_from(bytes).ok())
        .map(|bytes| Signature::from_bytes(&bytes))
        .ok_or("the signature is not an Ed25519 signature")?;
    key.verify(hash.as_bytes(), &signature)
        .map_err(|_| "the signature does not verify")
}

fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join(KEY_FILE)
}

fn read_previous_keys(data_dir: &Path) -> std::io::Result<Vec<String>> {
    let path = data_dir.join(PREVIOUS_KEYS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let keys = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| {
            parse_public_key(line).ok_or_else(|| {
                std::io::Error::other(format!(
                    "{}: {line:?} is not a hex Ed25519 public key",
                    path.display()
                ))
            })
        })
        .collect::<std::io::Result<Vec<String>>>()?;
    if keys.len() > MAX_PREVIOUS_KEYS {
        return Err(std::io::Error::other(format!(
            "{} lists more than {MAX_PREVIOUS_KEYS} keys",
            path.display()
        )));
    }
    Ok(keys)
}

/// Reads the seed file, or (when `generate`) creates it with a fresh seed, readable by its
/// owner only. `create_new` makes two processes starting together agree on one key: the loser
/// of the race reads the winner's file.
fn read_or_create_seed(path: &Path, generate: bool) -> std::io::Result<Option<SealSeed>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            return SealSeed::parse_hex(&text).map(Some).ok_or_else(|| {
                std::io::Error::other(format!(
                    "{} does not hold a hex 32-byte seed",
                    path.display()
                ))
            })
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    if !generate {
        return Ok(None);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let seed = SealSeed::generate()?;
    match write_new_file(path, &seed) {
        Ok(()) => {
            tracing::info!(file = %path.display(), "generated the ledger seal key");
            Ok(Some(seed))
        }
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            read_or_create_seed(path, false)
        }
        Err(err) => Err(err),
    }
}

fn write_new_file(path: &Path, seed: &SealSeed) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    writeln!(file, "{}", seed.to_hex())?;
    file.sync_all()
}

/// Rotates the data directory's key: the current public key joins `seal.previous-keys` (so
/// seals signed so far stay verifiable) and a new seed replaces `seal.key`. Returns the new
/// public key. Running servers keep signing with the key they loaded until restarted.
pub fn rotate(data_dir: &Path) -> std::io::Result<String> {
    let path = key_path(data_dir);
    let old = read_or_create_seed(&path, false)?.ok_or_else(|| {
        std::io::Error::other(format!(
            "{} does not exist: there is no key to rotate",
            path.display()
        ))
    })?;
    let old_public = Keyring::new(&old, Vec::new())
        .public_key()
        .expect("a keyring made from a seed has a public key");
    // The old key is trusted first, so that a failure between the two steps never leaves seals
    // that no listed key verifies.
    if !read_previous_keys(data_dir)?.contains(&old_public) {
        let mut previous = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o644)
            .open(data_dir.join(PREVIOUS_KEYS_FILE))?;
        writeln!(previous, "{old_public}")?;
        previous.sync_all()?;
    }
    let seed = SealSeed::generate()?;
    let temporary = data_dir.join(format!("{KEY_FILE}.new"));
    let _ = std::fs::remove_file(&temporary);
    write_new_file(&temporary, &seed)?;
    std::fs::rename(&temporary, &path)?;
    Ok(Keyring::new(&seed, Vec::new())
        .public_key()
        .expect("a keyring made from a seed has a public key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_with_its_key_and_fails_on_another_hash_or_key() {
        let keyring = Keyring::new(&SealSeed::from_bytes([7; 32]), Vec::new());
        let hash = "ab".repeat(32);
        let (signature, public_key) = keyring.sign(&hash).unwrap();
        assert_eq!(signature.len(), 128);
        assert_eq!(Some(public_key.clone()), keyring.public_key());
        assert_eq!(
            check_signature(&keyring, &public_key, &hash, &signature),
            Ok(())
        );
        let other_hash = "cd".repeat(32);
        assert!(check_signature(&keyring, &public_key, &other_hash, &signature).is_err());
        let stranger = Keyring::new(&SealSeed::from_bytes([8; 32]), Vec::new());
        assert!(check_signature(&stranger, &public_key, &hash, &signature).is_err());
        let trusting = Keyring::new(&SealSeed::from_bytes([8; 32]), vec![public_key.clone()]);
        assert_eq!(
            check_signature(&trusting, &public_key, &hash, &signature),
            Ok(())
        );
    }

    #[test]
    fn rotating_keeps_the_old_key_trusted_and_signs_with_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let config = KeySource {
            seed: None,
            previous: &[],
            data_dir: dir.path(),
        };
        assert!(Keyring::load_for_verifying(config)
            .unwrap()
            .public_key()
            .is_none());
        let first = Keyring::load(config).unwrap().public_key().unwrap();
        assert_eq!(
            Keyring::load(config).unwrap().public_key().unwrap(),
            first,
            "the generated key is kept"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = rotate(dir.path()).unwrap();
        assert_ne!(second, first);
        let keyring = Keyring::load(config).unwrap();
        assert_eq!(keyring.public_key().unwrap(), second);
        assert_eq!(keyring.previous_keys(), std::slice::from_ref(&first));
        assert!(keyring.trusts(&first) && keyring.trusts(&second));
    }

    #[test]
    fn seeds_and_public_keys_must_be_32_bytes_of_hex() {
        assert!(SealSeed::parse_hex(&"0a".repeat(32)).is_some());
        assert!(SealSeed::parse_hex(&"0a".repeat(31)).is_none());
        assert!(SealSeed::parse_hex(&"zz".repeat(32)).is_none());
        assert!(parse_public_key(&"0A".repeat(31)).is_none());
        let public = Keyring::new(&SealSeed::from_bytes([1; 32]), Vec::new())
            .public_key()
            .unwrap();
        assert_eq!(
            parse_public_key(&public.to_uppercase()).as_deref(),
            Some(public.as_str())
        );
        assert!(!format!("{:?}", SealSeed::from_bytes([1; 32])).contains("0101"));
    }
}
