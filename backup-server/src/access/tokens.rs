//! API tokens: `user@realm!name` plus a random secret that is shown once and stored only as
//! its SHA-256.
//!
//! [`TokenEntry`] is the entry of `tokens.json`. Its JSON is a superset of the older
//! `config::TokenConfig` (same field names; `expire` and `comment` are optional), so files
//! written before it parse unchanged. A token acts only while it is active and its user is
//! active; what it may do is its own ACL entries limited by its user's (see `acl`). This
//! module never sees a stored secret, only hashes.

use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest as _, Sha256};

use super::ids::Authid;

/// Random bytes in a new secret.
const SECRET_BYTES: usize = 32;

/// One API token as configured.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TokenEntry {
    /// Always a token id (`user@realm!name`).
    #[serde(deserialize_with = "token_id")]
    pub id: Authid,
    /// Lowercase hex SHA-256 of the secret.
    pub secret_sha256: String,
    pub enabled: bool,
    /// Unix time after which the token is refused; `None`: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl TokenEntry {
    /// An enabled token for `secret`, without expiry or comment.
    pub fn new(id: Authid, secret: &str) -> Self {
        Self {
            id,
            secret_sha256: hash_token_secret(secret),
            enabled: true,
            expire: None,
            comment: None,
        }
    }

    /// Enabled and not expired at `now`. (Whether its user is active is the caller's
    /// second check.)
    pub fn is_active(&self, now: i64) -> bool {
        self.enabled && self.expire.is_none_or(|expire| now < expire)
    }

    /// True if `secret` is this token's secret; compares the hashes in constant time.
    pub fn matches_secret(&self, secret: &str) -> bool {
        constant_time_eq(
            hash_token_secret(secret).as_bytes(),
            self.secret_sha256.as_bytes(),
        )
    }
}

fn token_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Authid, D::Error> {
    let id = Authid::deserialize(deserializer)?;
    if !id.is_token() {
        return Err(serde::de::Error::custom(format!(
            "token id {id} must be user@realm!name"
        )));
    }
    Ok(id)
}

/// A new token secret: 32 random bytes as lowercase hex.
pub fn generate_secret() -> anyhow::Result<String> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for a secret: {e}"))?;
    Ok(hex::encode(bytes))
}

/// The stored form of a secret: lowercase hex SHA-256 (the same as `config::hash_secret`).
pub fn hash_token_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares without an early exit, so the time taken tells nothing of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    fn hash_secret(secret: &str) -> String {
        hash_token_secret(secret)
    }

    #[test]
    fn reads_the_tokens_json_of_earlier_versions() {
        // tokens.json entries written before expiry and comments existed.
        let json = format!(
            r#"{{"id":"root@local!admin","secret-sha256":"{}","enabled":true}}"#,
            hash_secret("s3cret")
        );
        let entry: TokenEntry = serde_json::from_str(&json).unwrap();
        assert_eq!(entry.id.to_string(), "root@local!admin");
        assert_eq!((entry.expire, entry.comment.as_deref()), (None, None));
        assert!(entry.matches_secret("s3cret"));
        assert!(!entry.matches_secret("s3cre"));
        assert_eq!(serde_json::to_string(&entry).unwrap(), json);
    }

    #[test]
    fn token_ids_must_be_tokens() {
        let json = format!(
            r#"{{"id":"root@local","secret-sha256":"{}","enabled":true}}"#,
            hash_secret("x")
        );
        assert!(serde_json::from_str::<TokenEntry>(&json).is_err());
    }

    #[test]
    fn activity() {
        let mut entry = TokenEntry::new("bob@local!t".parse().unwrap(), "secret");
        assert_eq!(entry.secret_sha256, hash_secret("secret"));
        assert!(entry.is_active(0));
        entry.expire = Some(10);
        assert!(entry.is_active(9));
        assert!(!entry.is_active(10));
        entry.expire = None;
        entry.enabled = false;
        assert!(!entry.is_active(0));
    }

    #[test]
    fn secrets_are_random_hex() {
        let a = generate_secret().unwrap();
        assert_eq!(a.len(), 64);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(a, generate_secret().unwrap());
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
