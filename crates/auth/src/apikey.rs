//! API keys: `tk_<id>_<secret>`, where `id` is a random UUID in 32 hex digits
//! (the public handle: listed, revoked, looked up by) and `secret` 256 random bits in
//! base64url. Only the SHA-256 of the whole key is stored; a presented key
//! is hashed and compared with the stored hash in constant time.

use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// Every key starts with this (so scanners and humans recognise one).
pub const PREFIX: &str = "tk_";
const ID_HEX: usize = 32;
const SECRET_B64: usize = 43; // 32 bytes, base64url without padding

/// A new key: shown once, then only its hash is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintedKey {
    /// The public id.
    pub id: Uuid,
    /// The whole key, to give the caller once.
    pub key: String,
    /// SHA-256 of `key`, hex: what the store keeps.
    pub hash: String,
}

/// Why a key could not be minted (the OS random source failed).
#[derive(Debug, Clone, thiserror::Error)]
#[error("no randomness available for a new key: {0}")]
pub struct MintError(String);

/// Mints a key from the operating system's random source.
pub fn mint() -> Result<MintedKey, MintError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| MintError(e.to_string()))?;
    let id = Uuid::new_v4();
    let key = format!(
        "{PREFIX}{}_{}",
        id.simple(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    );
    let hash = hash(&key);
    Ok(MintedKey { id, key, hash })
}

/// The key id of a well-formed key, or `None` (then the key is refused
/// without any lookup).
pub fn key_id(key: &str) -> Option<Uuid> {
    let rest = key.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let id_ok = id.len() == ID_HEX && id.bytes().all(|b| b.is_ascii_hexdigit());
    let secret_ok = secret.len() == SECRET_B64
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !(id_ok && secret_ok) {
        return None;
    }
    Uuid::try_parse(id).ok()
}

/// SHA-256 of `key`, lowercase hex.
pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Whether `key` hashes to `stored_hash`, compared in constant time (the
/// time does not depend on how many leading bytes match).
pub fn matches(key: &str, stored_hash: &str) -> bool {
    let presented = hash(key);
    presented.as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_minted_key_parses_and_matches_only_its_hash() {
        let k = mint().unwrap();
        assert!(k.key.starts_with("tk_"));
        assert_eq!(key_id(&k.key), Some(k.id));
        assert!(matches(&k.key, &k.hash));
        let other = mint().unwrap();
        assert_ne!(k.key, other.key);
        assert!(!matches(&other.key, &k.hash));
        // The stored hash is not the key.
        assert!(!k.hash.contains(&k.key[20..]));
    }

    #[test]
    fn malformed_keys_have_no_id() {
        let k = mint().unwrap();
        let truncated = &k.key[..k.key.len() - 1];
        for bad in [
            "",
            "tk_",
            "tk_abc_def",
            truncated,
            &k.key.replace("tk_", "tx_"),
            &format!("{}x", k.key),
            &k.key.replacen('_', "-", 2),
        ] {
            assert_eq!(key_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_hash_of_another_length_never_matches() {
        let k = mint().unwrap();
        assert!(!matches(&k.key, &k.hash[..10]));
        assert!(!matches(&k.key, ""));
    }
}
