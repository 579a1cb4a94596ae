//! Users and their passwords.
//!
//! A password is kept only as an argon2id PHC string (`$argon2id$v=19$...`, random salt);
//! plain passwords are never stored, logged or put in an error. `users.json` is read and
//! written by the facade in `access.rs` through `config_store`; this module holds the types
//! and the password functions.

use std::fmt;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use serde::{Deserialize, Serialize};

use super::AccessError;
use super::ids::Userid;

/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest accepted password, in bytes: argon2 hashes any length, but an attacker's
/// megabyte passwords should not cost us more than a login.
pub const MAX_PASSWORD_LEN: usize = 1024;

/// One user as configured.
#[derive(Serialize, Deserialize, Clone)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct UserConfig {
    pub userid: Userid,
    /// argon2id PHC string; `None`: no password login (API tokens only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    pub enable: bool,
    /// Unix time after which the user can no longer log in; `None`: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl UserConfig {
    /// An enabled user without password, expiry or comment.
    pub fn new(userid: Userid) -> Self {
        Self {
            userid,
            password_hash: None,
            enable: true,
            expire: None,
            comment: None,
        }
    }

    /// Enabled and not expired at `now`.
    pub fn is_active(&self, now: i64) -> bool {
        self.enable && self.expire.is_none_or(|expire| now < expire)
    }
}

/// Shows everything but the password hash, so that a logged config leaks nothing to crack.
impl fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserConfig")
            .field("userid", &self.userid)
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "<hidden>"),
            )
            .field("enable", &self.enable)
            .field("expire", &self.expire)
            .field("comment", &self.comment)
            .finish()
    }
}

/// The content of `users.json`.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct UsersFile {
    pub users: Vec<UserConfig>,
}

impl UsersFile {
    pub fn get(&self, userid: &Userid) -> Option<&UserConfig> {
        self.users.iter().find(|u| u.userid == *userid)
    }

    pub fn get_mut(&mut self, userid: &Userid) -> Option<&mut UserConfig> {
        self.users.iter_mut().find(|u| u.userid == *userid)
    }

    /// Whether `userid` may act at `now`: the superuser always, anyone else if configured
    /// and active. Token requests check their user with this too.
    pub fn is_active(&self, userid: &Userid, now: i64) -> bool {
        userid.is_root() || self.get(userid).is_some_and(|u| u.is_active(now))
    }

    /// Checks what every saved file must satisfy: unique ids, and the superuser (if listed)
    /// enabled and never expiring.
    pub fn validate(&self) -> Result<(), AccessError> {
        for (i, user) in self.users.iter().enumerate() {
            if self.users[..i].iter().any(|u| u.userid == user.userid) {
                return Err(AccessError::Conflict(format!(
                    "user {} is listed twice",
                    user.userid
                )));
            }
            if user.userid.is_root() && !(user.enable && user.expire.is_none()) {
                return Err(AccessError::RootProtected);
            }
        }
        Ok(())
    }
}

/// Refuses passwords shorter than [`MIN_PASSWORD_LEN`] characters or longer than
/// [`MAX_PASSWORD_LEN`] bytes.
pub fn check_password_strength(password: &str) -> Result<(), AccessError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(AccessError::WeakPassword("is shorter than 8 characters"));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(AccessError::WeakPassword("is longer than 1024 bytes"));
    }
    Ok(())
}

/// Hashes `password` with argon2id (default parameters, 16 random salt bytes) into a PHC
/// string.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| anyhow::anyhow!("no randomness for a salt: {e}"))?;
    let hash: PasswordHash = Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?;
    Ok(hash.to_string())
}

/// True if `password` matches the PHC string `hash`; false for a malformed hash too.
pub fn verify_password(hash: &str, password: &str) -> bool {
    if password.len() > MAX_PASSWORD_LEN {
        return false;
    }
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_round_trip() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        assert!(!hash.contains(&hex::encode("correct horse")));
        assert!(verify_password(&hash, "correct horse"));
        assert!(!verify_password(&hash, "correct horsf"));
        assert!(!verify_password(&hash, ""));
        assert!(!verify_password("not a hash", "correct horse"));
        assert!(!verify_password("", ""));
        // A fresh salt each time.
        assert_ne!(hash_password("correct horse").unwrap(), hash);
    }

    #[test]
    fn password_strength() {
        assert!(check_password_strength("12345678").is_ok());
        assert!(check_password_strength("äöüäöüäö").is_ok());
        assert!(matches!(
            check_password_strength("1234567"),
            Err(AccessError::WeakPassword(_))
        ));
        assert!(check_password_strength(&"x".repeat(1024)).is_ok());
        assert!(check_password_strength(&"x".repeat(1025)).is_err());
    }

    #[test]
    fn activity_and_validation() {
        let alice: Userid = "alice@local".parse().unwrap();
        let mut user = UserConfig::new(alice.clone());
        assert!(user.is_active(0));
        user.expire = Some(100);
        assert!(user.is_active(99));
        assert!(!user.is_active(100));
        user.expire = None;
        user.enable = false;
        assert!(!user.is_active(0));

        let mut file = UsersFile::default();
        assert!(file.is_active(&Userid::root(), 0), "root needs no entry");
        assert!(!file.is_active(&alice, 0));
        file.users.push(UserConfig::new(alice.clone()));
        assert!(file.is_active(&alice, 0));
        file.get_mut(&alice).unwrap().password_hash = Some("$argon2id$secret".into());
        assert!(!format!("{file:?}").contains("secret"));
        assert!(file.validate().is_ok());
        file.users.push(UserConfig::new(alice));
        assert!(matches!(file.validate(), Err(AccessError::Conflict(_))));
        file.users.pop();
        let mut root = UserConfig::new(Userid::root());
        root.enable = false;
        file.users.push(root);
        assert!(matches!(file.validate(), Err(AccessError::RootProtected)));
    }
}
