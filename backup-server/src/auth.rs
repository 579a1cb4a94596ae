//! API token authentication: `Authorization: BackupAPIToken TOKENID:SECRET`.
//!
//! The secret is compared by its SHA-256 against the stored hash, in constant time. This
//! module decides who the caller is; it does not decide what the caller may do.

use crate::config::ConfigDir;
use crate::error::ApiError;

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthId(pub String);

/// Checks the `Authorization` header value against the token config.
pub fn authenticate(config: &ConfigDir, header: Option<&str>) -> Result<AuthId, ApiError> {
    let header = header.ok_or(ApiError::Unauthorized)?;
    let (scheme, credentials) = header.split_once(' ').ok_or(ApiError::Unauthorized)?;
    if scheme != protocol::routes::AUTH_SCHEME {
        return Err(ApiError::Unauthorized);
    }
    let (token_id, secret) = credentials
        .trim()
        .split_once(':')
        .ok_or(ApiError::Unauthorized)?;
    let tokens = config.tokens()?;
    let token = tokens
        .tokens
        .iter()
        .find(|t| t.id == token_id && t.enabled)
        .ok_or(ApiError::Unauthorized)?;
    let presented = crate::config::hash_secret(secret);
    if constant_time_eq(presented.as_bytes(), token.secret_sha256.as_bytes()) {
        Ok(AuthId(token.id.clone()))
    } else {
        Err(ApiError::Unauthorized)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{TokenConfig, TokensFile, hash_secret};

    fn config_with_token() -> (tempfile::TempDir, ConfigDir) {
        let dir = tempfile::tempdir().unwrap();
        let config = ConfigDir::new(dir.path());
        config
            .save_tokens(&TokensFile {
                tokens: vec![TokenConfig {
                    id: "root@local!admin".into(),
                    secret_sha256: hash_secret("s3cret"),
                    enabled: true,
                }],
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
        ] {
            assert!(
                matches!(authenticate(&config, bad), Err(ApiError::Unauthorized)),
                "{bad:?}"
            );
        }
    }
}
