//! Config files with a digest: every read returns the file's SHA-256, and an update that
//! names the digest it was based on fails with [`ConfigError::Conflict`] when the file
//! changed meanwhile, so two admins editing at once never lose an edit silently.
//!
//! Updates hold an exclusive `flock` on `<file>.lock` for their read-modify-write and
//! write the file atomically (temp file, fsync, rename). This module knows nothing of what
//! the files contain.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest as _, Sha256};

/// A config value and the digest of the file it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    pub data: T,
    /// Hex SHA-256 of the file's bytes (of nothing, for a missing file).
    pub digest: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path} was changed by someone else (digest mismatch): reload and try again")]
    Conflict { path: PathBuf },
    #[error("{0}")]
    Invalid(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ConfigError {
    let path = path.to_path_buf();
    move |source| ConfigError::Io { what, path, source }
}

fn digest_of(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Reads a JSON config file; a missing file is the default value.
pub fn load<T: DeserializeOwned + Default>(path: &Path) -> Result<Versioned<T>, ConfigError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(err) => return Err(io("reading", path)(err)),
    };
    let data = if bytes.is_empty() {
        T::default()
    } else {
        serde_json::from_slice(&bytes).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })?
    };
    Ok(Versioned {
        data,
        digest: digest_of(&bytes),
    })
}

/// Read-modify-write under the file's lock. With `expected_digest`, the update applies
/// only if the file still has that digest. `change` may refuse with an error; then the
/// file is left as it was.
pub fn update<T, F>(
    path: &Path,
    expected_digest: Option<&str>,
    change: F,
) -> Result<Versioned<T>, ConfigError>
where
    T: DeserializeOwned + Serialize + Default,
    F: FnOnce(&mut T) -> Result<(), ConfigError>,
{
    let lock_path = path.with_extension("lock");
    let lock_file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io("opening lock", &lock_path))?;
    let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| io("locking", &lock_path)(std::io::Error::from(errno)))?;
    let mut current: Versioned<T> = load(path)?;
    if expected_digest.is_some_and(|d| d != current.digest) {
        return Err(ConfigError::Conflict {
            path: path.to_path_buf(),
        });
    }
    change(&mut current.data)?;
    let mut bytes =
        serde_json::to_vec_pretty(&current.data).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
    bytes.push(b'\n');
    datastore::fs_util::replace_file(path, &bytes).map_err(io("writing", path))?;
    current.digest = digest_of(&bytes);
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct List {
        items: Vec<String>,
    }

    #[test]
    fn stale_digest_is_a_conflict_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("list.json");
        let first: Versioned<List> = load(&path).unwrap();
        let a = update(&path, Some(&first.digest), |l: &mut List| {
            l.items.push("a".into());
            Ok(())
        })
        .unwrap();
        // A second admin still holds the first digest.
        let err = update(&path, Some(&first.digest), |l: &mut List| {
            l.items.push("b".into());
            Ok(())
        })
        .unwrap_err();
        assert!(matches!(err, ConfigError::Conflict { .. }));
        let now: Versioned<List> = load(&path).unwrap();
        assert_eq!(now, a);
        assert_eq!(now.data.items, vec!["a".to_string()]);
        // Without a digest, or with the current one, updates apply.
        update(&path, Some(&now.digest), |l: &mut List| {
            l.items.push("c".into());
            Ok(())
        })
        .unwrap();
        update(&path, None, |l: &mut List| {
            l.items.push("d".into());
            Ok(())
        })
        .unwrap();
        assert_eq!(load::<List>(&path).unwrap().data.items, ["a", "c", "d"]);
    }

    #[test]
    fn a_refused_change_leaves_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("list.json");
        update(&path, None, |l: &mut List| {
            l.items.push("a".into());
            Ok(())
        })
        .unwrap();
        let before = std::fs::read(&path).unwrap();
        let err = update(&path, None, |_: &mut List| {
            Err(ConfigError::Invalid("no".into()))
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }
}
