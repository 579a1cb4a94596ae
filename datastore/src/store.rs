//! The datastore directory: chunk store, namespaces, groups and snapshot directories.
//!
//! ```text
//! <base>/.datastore.json                 {"format": 1}: marks the directory as a store
//! <base>/.chunks/<prefix>/<digest>       chunk blobs (see chunk_store)
//! <base>/.gc.lock, .gc-status            GC's lock (flock) and last result (see gc)
//! <base>/[ns/<a>/[ns/<b>/…]]<type>/<id>/<time>/   snapshot: index.json.blob, *.didx, *.blob
//! ```
//!
//! A snapshot directory is created exclusively (one session per snapshot) and counts as
//! finished only once its manifest exists; the manifest is written last and removed first.
//! Every path is built from validated names, so nothing here can be steered outside `base`.
//! This module holds no global state: the caller passes the base path and owns the value.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::chunk_store::{CHUNK_DIR, ChunkStore, ChunkStoreError};
use crate::fs_util;
use crate::manifest::{BackupManifest, ManifestError};
use crate::names::{self, MANIFEST_NAME, NameError};
use crate::snapshot::{self, BackupGroup, SnapshotRef};

/// Marker file that makes a directory a datastore.
pub const MARKER_NAME: &str = ".datastore.json";
/// The on-disk format version this code writes and reads.
pub const FORMAT_VERSION: u64 = 1;

/// A datastore operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot create a datastore in {path}: it exists and is not an empty directory")]
    NotEmpty { path: PathBuf },
    #[error("{path} is not a datastore (no valid {MARKER_NAME})")]
    NotADataStore { path: PathBuf },
    #[error("datastore {path} has format {format}, this program reads format {FORMAT_VERSION}")]
    UnsupportedFormat { path: PathBuf, format: u64 },
    #[error("snapshot {snapshot} already exists")]
    SnapshotExists { snapshot: String },
    #[error("snapshot {snapshot} not found")]
    SnapshotNotFound { snapshot: String },
    #[error("manifest {path}: {source}")]
    Manifest {
        path: PathBuf,
        #[source]
        source: ManifestError,
    },
    #[error("manifest {path} describes {found}, not the snapshot it is stored in")]
    ManifestMismatch { path: PathBuf, found: String },
    #[error("garbage collection of datastore {path} is already running")]
    GcRunning { path: PathBuf },
    #[error(
        "the filesystem at {path} does not update access times (noatime?): garbage \
         collection would delete live chunks"
    )]
    AtimeNotUpdated { path: PathBuf },
    #[error("namespace '{ns}' does not exist")]
    NamespaceNotFound { ns: String },
    #[error("namespace '{ns}' exists already")]
    NamespaceExists { ns: String },
    #[error("namespace '{ns}' is not empty ({what}); remove it recursively to delete its content")]
    NamespaceNotEmpty { ns: String, what: String },
    #[error("namespace '{ns}' holds protected snapshots; clear their flag first")]
    NamespaceProtected { ns: String },
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Chunks(#[from] ChunkStoreError),
}

fn io_error(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { op, path, source }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Marker {
    format: u64,
}

/// An open datastore.
#[derive(Debug, Clone)]
pub struct DataStore {
    base: PathBuf,
    chunks: Arc<ChunkStore>,
}

impl DataStore {
    /// Creates a datastore at `base`, which must not exist or be an empty directory. On
    /// failure, what this call created is removed again. Refuses a filesystem that ignores
    /// explicit access-time updates ([`StoreError::AtimeNotUpdated`]): GC marks by atime.
    pub fn create(base: &Path) -> Result<Self, StoreError> {
        let created_base = match fs::read_dir(base) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(StoreError::NotEmpty {
                        path: base.to_path_buf(),
                    });
                }
                false
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                if let Some(parent) = base.parent().filter(|p| !p.as_os_str().is_empty()) {
                    fs::create_dir_all(parent).map_err(io_error("create directory", parent))?;
                }
                fs::create_dir(base).map_err(io_error("create datastore directory", base))?;
                true
            }
            Err(err) if err.kind() == io::ErrorKind::NotADirectory => {
                return Err(StoreError::NotEmpty {
                    path: base.to_path_buf(),
                });
            }
            Err(err) => return Err(io_error("read directory", base)(err)),
        };
        let result = Self::populate(base, created_base);
        if result.is_err() {
            if created_base {
                let _ = fs::remove_dir_all(base);
            } else {
                let _ = fs::remove_file(base.join(MARKER_NAME));
                let _ = fs::remove_dir(base.join(CHUNK_DIR));
            }
        }
        result
    }

    fn populate(base: &Path, created_base: bool) -> Result<Self, StoreError> {
        maintenance::check_atime(base)?;
        let chunks = ChunkStore::create(base)?;
        let marker = serde_json::to_vec(&Marker {
            format: FORMAT_VERSION,
        })
        .map_err(|e| io_error("encode marker for", base)(e.into()))?;
        let marker_path = base.join(MARKER_NAME);
        fs_util::replace_file(&marker_path, &marker).map_err(io_error("write", &marker_path))?;
        if created_base {
            let parent = fs_util::parent_dir(base);
            fs_util::fsync_dir(parent).map_err(io_error("fsync", parent))?;
        }
        Ok(Self {
            base: base.to_path_buf(),
            chunks: Arc::new(chunks),
        })
    }

    /// Opens the datastore at `base`; requires its marker file.
    pub fn open(base: &Path) -> Result<Self, StoreError> {
        let marker_path = base.join(MARKER_NAME);
        let not_a_store = || StoreError::NotADataStore {
            path: base.to_path_buf(),
        };
        let bytes = match fs::read(&marker_path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Err(not_a_store()),
            Err(err) => return Err(io_error("read", &marker_path)(err)),
        };
        let marker: Marker = serde_json::from_slice(&bytes).map_err(|_| not_a_store())?;
        if marker.format != FORMAT_VERSION {
            return Err(StoreError::UnsupportedFormat {
                path: base.to_path_buf(),
                format: marker.format,
            });
        }
        Ok(Self {
            base: base.to_path_buf(),
            chunks: Arc::new(ChunkStore::open(base)?),
        })
    }

    /// The store's directory.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// The chunk store, to share with worker threads.
    pub fn chunk_store(&self) -> &Arc<ChunkStore> {
        &self.chunks
    }

    /// Directory of a backup group.
    pub fn group_path(&self, group: &BackupGroup) -> PathBuf {
        self.base.join(group.rel_path())
    }

    /// Directory of a snapshot.
    pub fn snapshot_path(&self, snap: &SnapshotRef) -> PathBuf {
        self.base.join(snap.rel_path())
    }

    /// Creates the snapshot directory (and its group directories as needed). The snapshot
    /// directory must be new: an existing one is [`StoreError::SnapshotExists`].
    pub fn create_snapshot_dir(&self, snap: &SnapshotRef) -> Result<PathBuf, StoreError> {
        snapshot::validate_time(snap.time)?;
        let group_dir = self.group_path(&snap.group);
        fs::create_dir_all(&group_dir).map_err(io_error("create group directory", &group_dir))?;
        let path = self.snapshot_path(snap);
        match fs::create_dir(&path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                return Err(StoreError::SnapshotExists {
                    snapshot: snap.to_string(),
                });
            }
            Err(err) => return Err(io_error("create snapshot directory", &path)(err)),
        }
        // Make the new entries durable up to the store's base, so that a finished snapshot
        // cannot vanish with its directory after a crash.
        let mut dir = group_dir.as_path();
        loop {
            fs_util::fsync_dir(dir).map_err(io_error("fsync", dir))?;
            if dir == self.base {
                break;
            }
            match dir.parent() {
                Some(parent) => dir = parent,
                None => break,
            }
        }
        Ok(path)
    }

    /// Removes a snapshot directory: the manifest first, so that the snapshot never lists as
    /// finished while half removed, then the rest. A missing directory is not an error.
    pub fn remove_snapshot_dir(&self, snap: &SnapshotRef) -> Result<(), StoreError> {
        let path = self.snapshot_path(snap);
        let manifest = path.join(MANIFEST_NAME);
        match fs::remove_file(&manifest) {
            Ok(()) => fs_util::fsync_dir(&path).map_err(io_error("fsync", &path))?,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(io_error("remove", &manifest)(err)),
        }
        match fs::remove_dir_all(&path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(io_error("remove snapshot directory", &path)(err)),
        }
        let group_dir = self.group_path(&snap.group);
        fs_util::fsync_dir(&group_dir).map_err(io_error("fsync", &group_dir))?;
        let ns_dir = self.base.join(snap.group.ns.rel_path());
        self.remove_empty_parents(&group_dir, &ns_dir)
    }

    /// Removes `dir` and its parents up to (not including) `stop` (the group's namespace
    /// directory, which is managed on its own) while they are empty, so that a refused or
    /// abandoned first backup of a group leaves no trace. A directory that is not empty
    /// (another group, a concurrent session) stops the walk.
    fn remove_empty_parents(&self, dir: &Path, stop: &Path) -> Result<(), StoreError> {
        let mut dir = dir;
        while dir != stop && dir.starts_with(stop) {
            match fs::remove_dir(dir) {
                Ok(()) => {}
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::DirectoryNotEmpty | io::ErrorKind::NotFound
                    ) =>
                {
                    return Ok(());
                }
                Err(err) => return Err(io_error("remove empty directory", dir)(err)),
            }
            let Some(parent) = dir.parent() else { break };
            fs_util::fsync_dir(parent).map_err(io_error("fsync", parent))?;
            dir = parent;
        }
        Ok(())
    }

    /// True if the snapshot's manifest exists.
    pub fn is_finished(&self, snap: &SnapshotRef) -> bool {
        self.snapshot_path(snap).join(MANIFEST_NAME).is_file()
    }

    /// Writes the manifest atomically: after this the snapshot is finished.
    pub fn write_manifest(
        &self,
        snap: &SnapshotRef,
        manifest: &BackupManifest,
    ) -> Result<(), StoreError> {
        let path = self.snapshot_path(snap).join(MANIFEST_NAME);
        fs_util::replace_file(&path, &manifest.to_blob()).map_err(io_error("write manifest", &path))
    }

    /// Reads a snapshot's manifest, and checks that it describes this snapshot.
    pub fn read_manifest(&self, snap: &SnapshotRef) -> Result<BackupManifest, StoreError> {
        let path = self.snapshot_path(snap).join(MANIFEST_NAME);
        let blob = match fs::read(&path) {
            Ok(blob) => blob,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::SnapshotNotFound {
                    snapshot: snap.to_string(),
                });
            }
            Err(err) => return Err(io_error("read manifest", &path)(err)),
        };
        let manifest = BackupManifest::from_blob(&blob).map_err(|source| StoreError::Manifest {
            path: path.clone(),
            source,
        })?;
        if !manifest.matches(snap) {
            let found = format!(
                "{}/{}/{}",
                manifest.backup_type,
                manifest.backup_id,
                snapshot::format_time(manifest.backup_time)
            );
            return Err(StoreError::ManifestMismatch { path, found });
        }
        Ok(manifest)
    }

    /// Path of a file in a snapshot: the manifest or a stored archive file name
    /// (`x.tar.didx`, `x.blob`). Anything else, including any path, is rejected.
    pub fn snapshot_file_path(
        &self,
        snap: &SnapshotRef,
        file_name: &str,
    ) -> Result<PathBuf, StoreError> {
        names::validate_snapshot_file_name(file_name)?;
        Ok(self.snapshot_path(snap).join(file_name))
    }
}

mod listing;
mod maintenance;
mod namespaces;
mod owner;

pub use maintenance::GcLock;
pub use owner::OWNER_FILE;
#[cfg(test)]
mod tests;
