//! The repository string `TOKENID@HOST[:PORT]:STORE` and the credentials that go with it.

use std::fmt;

/// Where backups go: a token id, a server address and a datastore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    pub auth_id: String,
    pub host: String,
    pub port: u16,
    pub store: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid repository '{input}': {reason} (expected TOKENID@HOST[:PORT]:STORE, e.g. root@local!admin@127.0.0.1:8007:store1)"
)]
pub struct RepositoryError {
    input: String,
    reason: &'static str,
}

impl std::str::FromStr for Repository {
    type Err = RepositoryError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason| RepositoryError {
            input: input.to_string(),
            reason,
        };
        let (rest, store) = input.rsplit_once(':').ok_or_else(|| err("no ':STORE'"))?;
        if store.is_empty() {
            return Err(err("empty store name"));
        }
        let (auth_id, address) = rest.rsplit_once('@').ok_or_else(|| err("no 'TOKENID@'"))?;
        if !auth_id.contains('@') || !auth_id.contains('!') {
            return Err(err("the token id must look like user@realm!name"));
        }
        let (host, port) = split_host_port(address).ok_or_else(|| err("bad HOST[:PORT]"))?;
        Ok(Repository {
            auth_id: auth_id.to_string(),
            host,
            port: port.unwrap_or(protocol::limits::DEFAULT_PORT),
            store: store.to_string(),
        })
    }
}

fn split_host_port(address: &str) -> Option<(String, Option<u16>)> {
    if let Some(rest) = address.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?.parse().ok()?),
        };
        return Some((host.to_string(), port));
    }
    match address.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => {
            Some((host.to_string(), Some(port.parse().ok()?)))
        }
        Some(_) => None,
        None if !address.is_empty() => Some((address.to_string(), None)),
        None => None,
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(
                f,
                "{}@[{}]:{}:{}",
                self.auth_id, self.host, self.port, self.store
            )
        } else {
            write!(
                f,
                "{}@{}:{}:{}",
                self.auth_id, self.host, self.port, self.store
            )
        }
    }
}

/// A repository with an HTTP client for its server.
#[derive(Clone)]
pub struct RepoClient {
    pub repo: Repository,
    pub http: api_client::HttpClient,
}

impl RepoClient {
    pub fn new(
        repo: Repository,
        secret: String,
        fingerprint: Option<api_client::Fingerprint>,
    ) -> anyhow::Result<Self> {
        let server = api_client::http::ServerAddress {
            host: repo.host.clone(),
            port: repo.port,
        };
        let http = api_client::HttpClient::new(server, repo.auth_id.clone(), secret, fingerprint)?;
        Ok(Self { repo, http })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_repositories() {
        let repo: Repository = "root@local!admin@127.0.0.1:8007:store1".parse().unwrap();
        assert_eq!(repo.auth_id, "root@local!admin");
        assert_eq!(repo.host, "127.0.0.1");
        assert_eq!(repo.port, 8007);
        assert_eq!(repo.store, "store1");
        assert_eq!(repo.to_string(), "root@local!admin@127.0.0.1:8007:store1");

        let repo: Repository = "a@pam!t@backup.example:st".parse().unwrap();
        assert_eq!((repo.host.as_str(), repo.port), ("backup.example", 8007));

        let repo: Repository = "a@pam!t@[::1]:9000:st".parse().unwrap();
        assert_eq!((repo.host.as_str(), repo.port), ("::1", 9000));
    }

    #[test]
    fn rejects_bad_repositories() {
        for bad in [
            "",
            "store",
            "host:store",
            "root@local!admin@:store",
            "a@b!c@h:99999:s",
            "a@b!c@h:8007:",
            "nobang@h:1:s",
        ] {
            assert!(bad.parse::<Repository>().is_err(), "{bad}");
        }
    }
}
