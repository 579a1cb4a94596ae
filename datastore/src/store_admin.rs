//! Administrative changes to finished snapshots: protection, forgetting (prune's removal),
//! and recording a verify result in the manifest.
//!
//! A protected snapshot has an empty marker file [`PROTECTED_MARKER`] in its directory;
//! prune keeps it and [`DataStore::forget_snapshot`] refuses it. Forgetting removes the
//! manifest first (made durable), then the directory, so a crash in between leaves an
//! unfinished snapshot that is never listed and is cleaned up at start-up, never a listed
//! snapshot with missing files. Chunks are not touched: GC frees them later.
//!
//! What this module must not do: change an unfinished snapshot (a backup session owns it),
//! or serialize anything itself. The caller holds the snapshot's lock: a forget against a
//! reader or a running verify, or two manifest updates of one snapshot, are its to prevent.

use std::fs;
use std::io;
use std::path::Path;

use crate::fs_util;
use crate::manifest::VerifyState;
use crate::snapshot::SnapshotRef;
use crate::store::{DataStore, StoreError};

/// Marker file in a snapshot directory that protects it from prune and forget.
pub const PROTECTED_MARKER: &str = ".protected";

/// An administrative change that was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("snapshot {snapshot} is protected: remove the protection before removing it")]
    Protected { snapshot: String },
    #[error("snapshot {snapshot} is not finished (a backup may still be writing it)")]
    NotFinished { snapshot: String },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io_error(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> AdminError {
    let path = path.to_path_buf();
    move |source| AdminError::Io { op, path, source }
}

impl DataStore {
    /// True if the snapshot carries the protection marker.
    pub fn is_protected(&self, snap: &SnapshotRef) -> bool {
        fs::symlink_metadata(self.snapshot_path(snap).join(PROTECTED_MARKER)).is_ok()
    }

    /// Protects or unprotects a finished snapshot: creates or removes the marker and fsyncs
    /// the directory. Setting the state it already has is not an error.
    pub fn set_protected(&self, snap: &SnapshotRef, protected: bool) -> Result<(), AdminError> {
        self.require_finished(snap)?;
        let dir = self.snapshot_path(snap);
        let marker = dir.join(PROTECTED_MARKER);
        if protected {
            // Temp file, fsync, rename, directory fsync.
            fs_util::replace_file(&marker, b"").map_err(io_error("create", &marker))?;
            return Ok(());
        }
        match fs::remove_file(&marker) {
            Ok(()) => fs_util::fsync_dir(&dir).map_err(io_error("fsync", &dir)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(io_error("remove", &marker)(err)),
        }
    }

    /// Removes a finished, unprotected snapshot (prune, forget): the manifest first, made
    /// durable, so that the snapshot stops listing as finished before anything else goes;
    /// then the directory, and group directories left empty.
    pub fn forget_snapshot(&self, snap: &SnapshotRef) -> Result<(), AdminError> {
        self.require_finished(snap)?;
        if self.is_protected(snap) {
            return Err(AdminError::Protected {
                snapshot: snap.to_string(),
            });
        }
        Ok(self.remove_snapshot_dir(snap)?)
    }

    /// Records a verify result in the snapshot's manifest: read, set, write atomically.
    /// [`StoreError::SnapshotNotFound`] if the snapshot has no manifest (it was removed).
    pub fn update_verify_state(
        &self,
        snap: &SnapshotRef,
        state: &VerifyState,
    ) -> Result<(), StoreError> {
        let mut manifest = self.read_manifest(snap)?;
        manifest.set_verify_state(state);
        self.write_manifest(snap, &manifest)
    }

    /// `Ok` if the snapshot is finished; [`StoreError::SnapshotNotFound`] if its directory
    /// does not exist, [`AdminError::NotFinished`] if it has no manifest.
    fn require_finished(&self, snap: &SnapshotRef) -> Result<(), AdminError> {
        if self.is_finished(snap) {
            return Ok(());
        }
        if self.snapshot_path(snap).is_dir() {
            Err(AdminError::NotFinished {
                snapshot: snap.to_string(),
            })
        } else {
            Err(StoreError::SnapshotNotFound {
                snapshot: snap.to_string(),
            }
            .into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{BackupManifest, VerifyOutcome};
    use crate::names::{BackupType, Namespace};
    use crate::snapshot::BackupGroup;

    fn setup() -> (tempfile::TempDir, DataStore, SnapshotRef) {
        let dir = tempfile::tempdir().unwrap();
        let store = DataStore::create(&dir.path().join("store")).unwrap();
        let group = BackupGroup::new(Namespace::root(), BackupType::Host, "web1").unwrap();
        let snap = SnapshotRef::new(group, 1_764_000_000).unwrap();
        store.create_snapshot_dir(&snap).unwrap();
        (dir, store, snap)
    }

    fn finish(store: &DataStore, snap: &SnapshotRef) {
        store
            .write_manifest(snap, &BackupManifest::new(snap))
            .unwrap();
    }

    #[test]
    fn unfinished_snapshots_are_refused() {
        let (_dir, store, snap) = setup();
        let err = store.set_protected(&snap, true).unwrap_err();
        assert!(matches!(err, AdminError::NotFinished { .. }), "{err}");
        assert!(!store.is_protected(&snap));
        let err = store.forget_snapshot(&snap).unwrap_err();
        assert!(matches!(err, AdminError::NotFinished { .. }), "{err}");
        assert!(store.snapshot_path(&snap).is_dir());

        let missing = SnapshotRef::new(snap.group.clone(), 1_764_000_001).unwrap();
        let err = store.set_protected(&missing, true).unwrap_err();
        assert!(matches!(
            err,
            AdminError::Store(StoreError::SnapshotNotFound { .. })
        ));
    }

    #[test]
    fn protection_blocks_forget_until_removed() {
        let (_dir, store, snap) = setup();
        finish(&store, &snap);
        store.set_protected(&snap, true).unwrap();
        store.set_protected(&snap, true).unwrap();
        assert!(store.is_protected(&snap));
        let err = store.forget_snapshot(&snap).unwrap_err();
        assert!(matches!(err, AdminError::Protected { .. }), "{err}");
        assert!(err.to_string().contains("host/web1/"));
        assert!(store.is_finished(&snap));

        store.set_protected(&snap, false).unwrap();
        store.set_protected(&snap, false).unwrap();
        assert!(!store.is_protected(&snap));
        store.forget_snapshot(&snap).unwrap();
        assert!(!store.snapshot_path(&snap).exists());
        // The empty group directories went with it.
        assert!(!store.group_path(&snap.group).exists());
        assert!(store.list_snapshots(&Namespace::root()).unwrap().is_empty());
        let err = store.forget_snapshot(&snap).unwrap_err();
        assert!(matches!(
            err,
            AdminError::Store(StoreError::SnapshotNotFound { .. })
        ));
    }

    #[test]
    fn verify_state_is_recorded_in_the_manifest() {
        let (_dir, store, snap) = setup();
        let state = VerifyState {
            state: VerifyOutcome::Ok,
            upid: "UPID:x".into(),
            time: 1_764_000_100,
        };
        let err = store.update_verify_state(&snap, &state).unwrap_err();
        assert!(matches!(err, StoreError::SnapshotNotFound { .. }));
        finish(&store, &snap);
        store.update_verify_state(&snap, &state).unwrap();
        let manifest = store.read_manifest(&snap).unwrap();
        assert_eq!(manifest.verify_state(), Some(state));
    }
}
