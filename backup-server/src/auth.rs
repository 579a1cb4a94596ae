//! Who is calling: `Authorization: BackupAPIToken TOKENID:SECRET` (API tokens) or
//! `Authorization: BackupAuthTicket TICKET` (a signed ticket from a password login).
//!
//! Token secrets are compared by their SHA-256, in constant time; disabled or expired
//! tokens and users are refused. This module decides who the caller is; what the caller
//! may do is [`crate::access`]'s and the route table's business.

use crate::access::{Authid, Userid};
use crate::config::ConfigDir;
use crate::error::ApiError;

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthId(pub String);

impl AuthId {
    /// The typed id (always valid: it was read from the config).
    pub fn authid(&self) -> Result<Authid, ApiError> {
        self.0
            .parse()
            .map_err(|_| ApiError::Internal(anyhow::anyhow!("invalid auth id {}", self.0)))
    }
}

/// Scheme of ticket authentication.
pub const TICKET_SCHEME: &str = "BackupAuthTicket";

fn now() -> i64 {
    crate::maintenance::now()
}

/// Checks the `Authorization` header value.
pub fn authenticate(config: &ConfigDir, header: Option<&str>) -> Result<AuthId, ApiError> {
    let header = header.ok_or(ApiError::Unauthorized)?;
    let (scheme, credentials) = header.split_once(' ').ok_or(ApiError::Unauthorized)?;
    match scheme {
        s if s == protocol::routes::AUTH_SCHEME => token(config, credentials.trim()),
        TICKET_SCHEME => ticket(config, credentials.trim()),
        _ => Err(ApiError::Unauthorized),
    }
}

fn token(config: &ConfigDir, credentials: &str) -> Result<AuthId, ApiError> {
    let (token_id, secret) = credentials.split_once(':').ok_or(ApiError::Unauthorized)?;
    let tokens = config.tokens()?;
    let now = now();
    let token = tokens
        .tokens
        .iter()
        .find(|t| t.id.to_string() == token_id && t.is_active(now))
        .ok_or(ApiError::Unauthorized)?;
    if !token.matches_secret(secret) {
        return Err(ApiError::Unauthorized);
    }
    // A token is only as alive as its user.
    let user = token.id.user();
    if !user.is_root() && !user_active(config, user, now)? {
        return Err(ApiError::Unauthorized);
    }
    Ok(AuthId(token.id.to_string()))
}

fn ticket(config: &ConfigDir, ticket: &str) -> Result<AuthId, ApiError> {
    let key =
        crate::access::ticket::load_or_create_key(&config.path(crate::access::TICKET_KEY_FILE))?;
    let user = crate::access::ticket::verify_ticket(ticket, &key, now())
        .map_err(|_| ApiError::Unauthorized)?;
    if !user.is_root() && !user_active(config, &user, now())? {
        return Err(ApiError::Unauthorized);
    }
    Ok(AuthId(user.to_string()))
}

fn user_active(config: &ConfigDir, user: &Userid, now: i64) -> Result<bool, ApiError> {
    let users = crate::config_store::load::<crate::access::UsersFile>(
        &config.path(crate::access::USERS_FILE),
    )
    .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(users.data.is_active(user, now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::tokens::TokenEntry;
    use crate::config::TokensFile;

    fn config_with_token() -> (tempfile::TempDir, ConfigDir) {
        let dir = tempfile::tempdir().unwrap();
        let config = ConfigDir::new(dir.path());
        let mut expired = TokenEntry::new("root@local!old".parse().unwrap(), "s3cret");
        expired.expire = Some(1);
        config
            .save_tokens(&TokensFile {
                tokens: vec![
                    TokenEntry::new("root@local!admin".parse().unwrap(), "s3cret"),
                    expired,
                ],
            })
            .unwrap();
        (dir, config)
    }

    #[test]
    fn accepts_the_right_secret_only() {
        let (_dir, config) = config_with_token();
        let ok = authenticate(&config, Some("BackupAPIToken root@local!admin:s3cret")).unwrap();
        assert_eq!(ok.0, "root@local!admin");
        for bad in [
            None,
            Some(""),
            Some("BackupAPIToken root@local!admin:wrong"),
            Some("BackupAPIToken root@local!admin"),
            Some("Bearer root@local!admin:s3cret"),
            Some("BackupAPIToken other@local!admin:s3cret"),
            Some("BackupAPIToken root@local!old:s3cret"),
            Some("BackupAuthTicket BKP:root@local:0::forged"),
        ] {
            assert!(
                matches!(authenticate(&config, bad), Err(ApiError::Unauthorized)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn tickets_authenticate_their_user() {
        let (_dir, config) = config_with_token();
        let key =
            crate::access::ticket::load_or_create_key(&config.path(crate::access::TICKET_KEY_FILE))
                .unwrap();
        let ticket = crate::access::ticket::create_ticket(&Userid::root(), now(), &key);
        let auth = authenticate(&config, Some(&format!("BackupAuthTicket {ticket}"))).unwrap();
        assert_eq!(auth.0, "root@local");
    }
}
