//! Access control: who a caller is (users, passwords, tokens, login tickets) and what it may
//! do (roles granted on ACL paths).
//!
//! This file is the facade the REST handlers and the CLI use: it reads `users.json` and
//! `acl.json` from the config directory through `config_store` (digests, a lock per file,
//! atomic writes) and keeps the invariants every saved file must satisfy. The submodules are
//! pure logic apart from the ticket key file. Nothing here serves HTTP or maps errors to
//! status codes, and nothing here ever stores, logs or reports a plain password or secret.
//!
//! The functions here do blocking file IO and `authenticate_password` spends tens of
//! milliseconds hashing: call them from `spawn_blocking`, never on an async worker.

pub mod acl;
pub mod ids;
pub mod privileges;
pub mod rate_limit;
pub mod ticket;
pub mod tokens;
pub mod users;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::OnceLock;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use acl::{AclEntry, AclTree};
pub use ids::{AclPath, Authid, ROOT, Userid};
pub use privileges::{Privs, Role};
pub use users::{UserConfig, UsersFile};

use crate::config::ConfigDir;
use crate::config_store::{self, ConfigError, Versioned};

/// Users and their password hashes.
pub const USERS_FILE: &str = "users.json";
/// The ACL: a JSON array of [`AclEntry`].
pub const ACL_FILE: &str = "acl.json";
/// The key that signs login tickets and CSRF tokens (see [`ticket::load_or_create_key`]).
pub const TICKET_KEY_FILE: &str = "ticket.key";

/// Why an access decision or an access config change failed.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("permission denied: {auth_id} needs {needed} on {path}")]
    PermissionDenied {
        auth_id: Authid,
        path: AclPath,
        needed: Privs,
    },
    /// Any failed login, whatever was wrong: never tells which part.
    #[error("authentication failed")]
    InvalidCredentials,
    #[error("the login ticket has expired: log in again")]
    Expired,
    #[error("invalid login ticket")]
    BadTicket,
    #[error("invalid CSRF prevention token")]
    BadCsrfToken,
    #[error("invalid {what} {name:?}: {reason}")]
    BadName {
        what: &'static str,
        name: String,
        reason: &'static str,
    },
    #[error("password {0}")]
    WeakPassword(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("{what} {name} does not exist")]
    NotFound { what: &'static str, name: String },
    #[error("{ROOT} cannot be removed, disabled or given an expiry date")]
    RootProtected,
    #[error("too many failed logins from this address: try again in {retry_after} s")]
    RateLimited { retry_after: i64 },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl AccessError {
    /// A [`AccessError::BadName`], with the input cut to 128 characters.
    pub(crate) fn bad_name(what: &'static str, name: &str, reason: &'static str) -> Self {
        Self::BadName {
            what,
            name: name.chars().take(128).collect(),
            reason,
        }
    }
}

impl From<datastore::names::NameError> for AccessError {
    fn from(err: datastore::names::NameError) -> Self {
        Self::BadName {
            what: err.what,
            name: err.name,
            reason: err.reason,
        }
    }
}

/// The users and the ACL as read, each with its file's digest for a later update.
#[derive(Debug, Clone)]
pub struct AccessConfig {
    pub users: Versioned<UsersFile>,
    pub acl: Versioned<AclTree>,
}

impl AccessConfig {
    /// Reads both files; a missing file is empty.
    pub fn load(config_dir: &ConfigDir) -> Result<Self, AccessError> {
        Ok(Self {
            users: config_store::load(&config_dir.path(USERS_FILE))?,
            acl: config_store::load(&config_dir.path(ACL_FILE))?,
        })
    }

    /// What `auth_id` may do on `path` (see [`AclTree::privs`]).
    pub fn privs(&self, auth_id: &Authid, path: &AclPath) -> Privs {
        self.acl.data.privs(auth_id, path)
    }

    /// `Ok` if `auth_id` has every privilege of `needed` on `path`.
    pub fn check(
        &self,
        auth_id: &Authid,
        path: &AclPath,
        needed: Privs,
    ) -> Result<(), AccessError> {
        if self.privs(auth_id, path).contains(needed) {
            Ok(())
        } else {
            Err(AccessError::PermissionDenied {
                auth_id: auth_id.clone(),
                path: path.clone(),
                needed,
            })
        }
    }
}

/// Changes `users.json` under its lock. With `expected_digest` the change applies only if
/// the file is unchanged since it was read. A change that breaks an invariant (duplicate
/// ids, root disabled) is refused and the file stays as it was.
pub fn update_users(
    config_dir: &ConfigDir,
    expected_digest: Option<&str>,
    change: impl FnOnce(&mut UsersFile) -> Result<(), AccessError>,
) -> Result<Versioned<UsersFile>, AccessError> {
    update_file(&config_dir.path(USERS_FILE), expected_digest, |users| {
        change(users)?;
        users.validate()
    })
}

/// Changes `acl.json` under its lock, like [`update_users`].
pub fn update_acl(
    config_dir: &ConfigDir,
    expected_digest: Option<&str>,
    change: impl FnOnce(&mut AclTree) -> Result<(), AccessError>,
) -> Result<Versioned<AclTree>, AccessError> {
    update_file(&config_dir.path(ACL_FILE), expected_digest, change)
}

/// Removes a user and then its ACL entries and its tokens' (never root). The user's tokens
/// in `tokens.json` are the caller's to remove.
pub fn delete_user(
    config_dir: &ConfigDir,
    userid: &Userid,
    expected_digest: Option<&str>,
) -> Result<(), AccessError> {
    if userid.is_root() {
        return Err(AccessError::RootProtected);
    }
    update_users(config_dir, expected_digest, |file| {
        let before = file.users.len();
        file.users.retain(|u| u.userid != *userid);
        if file.users.len() == before {
            return Err(AccessError::NotFound {
                what: "user",
                name: userid.to_string(),
            });
        }
        Ok(())
    })?;
    update_acl(config_dir, None, |acl| {
        acl.remove_auth_id(&Authid::from(userid.clone()));
        Ok(())
    })?;
    Ok(())
}

/// Checks a password login: the user exists, is enabled and not expired, has a password and
/// it matches. Every failure is the same [`AccessError::InvalidCredentials`] and takes about
/// as long, so that a caller learns nothing about which part was wrong or which users exist.
/// Only an unreadable config is a different error.
pub fn authenticate_password(
    config_dir: &ConfigDir,
    userid: &Userid,
    password: &str,
    now: i64,
) -> Result<(), AccessError> {
    let users: Versioned<UsersFile> = config_store::load(&config_dir.path(USERS_FILE))?;
    let hash = users
        .data
        .get(userid)
        .filter(|u| u.is_active(now))
        .and_then(|u| u.password_hash.as_deref());
    match hash {
        Some(hash) if users::verify_password(hash, password) => Ok(()),
        Some(_) => Err(AccessError::InvalidCredentials),
        None => {
            // Spend the time a real check would take.
            users::verify_password(dummy_hash(), password);
            Err(AccessError::InvalidCredentials)
        }
    }
}

/// A hash with the same parameters as real ones, that no password matches in practice.
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| users::hash_password("no user has this password").unwrap_or_default())
}

/// `config_store::update`, carrying the change's own error out unchanged.
fn update_file<T>(
    path: &Path,
    expected_digest: Option<&str>,
    change: impl FnOnce(&mut T) -> Result<(), AccessError>,
) -> Result<Versioned<T>, AccessError>
where
    T: DeserializeOwned + Serialize + Default,
{
    let mut refused = None;
    let result = config_store::update(path, expected_digest, |data: &mut T| {
        change(data).map_err(|err| {
            let message = err.to_string();
            refused = Some(err);
            ConfigError::Invalid(message)
        })
    });
    match (result, refused) {
        (Err(_), Some(err)) => Err(err),
        (result, _) => Ok(result?),
    }
}
