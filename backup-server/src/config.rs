//! The server's configuration directory: datastores, API tokens and TLS files.
//!
//! Every file is JSON written atomically (temp file, fsync, rename). Token secrets are never
//! stored: only their SHA-256 is. This module reads and writes files; it does not serve.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// File names inside the config directory.
pub const DATASTORES_FILE: &str = "datastores.json";
pub const TOKENS_FILE: &str = "tokens.json";
pub const CERT_FILE: &str = "server.pem";
pub const KEY_FILE: &str = "server.key";
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// Written by `serve`: the address it listens on, for the admin subcommands.
pub const LISTEN_FILE: &str = "listen.addr";
/// Directory of task records and logs.
pub const TASKS_DIR: &str = "tasks";
/// The API token that `init` creates.
pub const ADMIN_TOKEN_ID: &str = "root@local!admin";

/// One datastore as configured.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DatastoreConfig {
    pub name: String,
    pub path: PathBuf,
    /// Average chunk size in bytes of the content-defined chunker.
    pub chunk_size: usize,
    /// FOR TESTS ONLY: how long an unreferenced chunk survives garbage collection, instead
    /// of 24h5m. A shorter grace lets GC delete chunks that a backup which started before
    /// the GC (but did not yet touch them) is about to reuse; never set it in production.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_grace_seconds: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatastoresFile {
    pub datastores: Vec<DatastoreConfig>,
}

/// Every API token (`tokens.json`): ids with the SHA-256 of their secrets.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensFile {
    pub tokens: Vec<crate::access::tokens::TokenEntry>,
}

/// Handle on a configuration directory.
#[derive(Debug, Clone)]
pub struct ConfigDir {
    dir: PathBuf,
}

impl ConfigDir {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Fails with a clear message when `init` has not been run on this directory.
    pub fn check_initialized(&self) -> Result<()> {
        for file in [TOKENS_FILE, CERT_FILE, KEY_FILE] {
            if !self.path(file).exists() {
                bail!(
                    "{} is not an initialized config directory (missing {file}); run `backup-server init --config-dir {}` first",
                    self.dir.display(),
                    self.dir.display()
                );
            }
        }
        Ok(())
    }

    pub fn datastores(&self) -> Result<DatastoresFile> {
        read_json_or_default(&self.path(DATASTORES_FILE))
    }

    pub fn save_datastores(&self, file: &DatastoresFile) -> Result<()> {
        write_json(&self.path(DATASTORES_FILE), file)
    }

    pub fn datastore(&self, name: &str) -> Result<Option<DatastoreConfig>> {
        Ok(self
            .datastores()?
            .datastores
            .into_iter()
            .find(|d| d.name == name))
    }

    pub fn tokens(&self) -> Result<TokensFile> {
        read_json_or_default(&self.path(TOKENS_FILE))
    }

    pub fn save_tokens(&self, file: &TokensFile) -> Result<()> {
        write_json(&self.path(TOKENS_FILE), file)
    }
}

fn read_json_or_default<T: for<'de> Deserialize<'de> + Default>(path: &Path) -> Result<T> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("parsing config file {}", path.display())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(err) => Err(err).with_context(|| format!("reading config file {}", path.display())),
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    datastore::fs_util::replace_file(path, &bytes)
        .with_context(|| format!("writing config file {}", path.display()))
}
