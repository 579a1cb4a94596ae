//! Namespaces as managed objects: created explicitly (their parent must exist), listed,
//! and removed — empty ones plainly, non-empty ones only when asked to remove recursively,
//! and never while they hold a protected snapshot.
//!
//! A namespace `a/b` is the directory `ns/a/ns/b` under the store's base. The root
//! namespace always exists and cannot be created or removed.

use std::fs;
use std::io;

use super::{DataStore, StoreError, io_error};
use crate::fs_util;
use crate::names::{NameError, Namespace};

impl DataStore {
    /// Whether the namespace exists (the root always does).
    pub fn namespace_exists(&self, ns: &Namespace) -> bool {
        ns.is_root() || self.base.join(ns.rel_path()).is_dir()
    }

    /// Creates a namespace whose parent exists.
    pub fn create_namespace(&self, ns: &Namespace) -> Result<(), StoreError> {
        if ns.is_root() {
            return Err(NameError::new("namespace", "", "the root namespace always exists").into());
        }
        let parent = ns.parent();
        if !self.namespace_exists(&parent) {
            return Err(StoreError::NamespaceNotFound {
                ns: parent.to_string(),
            });
        }
        let parent_dir = self.base.join(parent.rel_path());
        let ns_holder = parent_dir.join("ns");
        match fs::create_dir(&ns_holder) {
            Ok(()) => fs_util::fsync_dir(&parent_dir).map_err(io_error("fsync", &parent_dir))?,
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(io_error("create", &ns_holder)(err)),
        }
        let dir = self.base.join(ns.rel_path());
        match fs::create_dir(&dir) {
            Ok(()) => fs_util::fsync_dir(&ns_holder).map_err(io_error("fsync", &ns_holder)),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                Err(StoreError::NamespaceExists { ns: ns.to_string() })
            }
            Err(err) => Err(io_error("create", &dir)(err)),
        }
    }

    /// Removes a namespace. Without `recursive` it must hold no group and no child
    /// namespace. With it, every snapshot below is forgotten first (manifests before
    /// directories), unless one of them is protected: then nothing is removed.
    pub fn remove_namespace(&self, ns: &Namespace, recursive: bool) -> Result<(), StoreError> {
        if ns.is_root() {
            return Err(
                NameError::new("namespace", "", "the root namespace cannot be removed").into(),
            );
        }
        if !self.namespace_exists(ns) {
            return Err(StoreError::NamespaceNotFound { ns: ns.to_string() });
        }
        let mut namespaces = vec![ns.clone()];
        let mut i = 0;
        while i < namespaces.len() {
            let children = self.list_child_namespaces(&namespaces[i])?;
            namespaces.extend(children);
            i += 1;
        }
        let mut snapshots = Vec::new();
        for namespace in &namespaces {
            for group in self.list_groups(namespace)? {
                for time in self.snapshot_times(&group)? {
                    snapshots.push(crate::snapshot::SnapshotRef {
                        group: group.clone(),
                        time,
                    });
                }
            }
        }
        if !recursive && (namespaces.len() > 1 || !snapshots.is_empty()) {
            let what = format!(
                "{} child namespaces, {} snapshots",
                namespaces.len() - 1,
                snapshots.len()
            );
            return Err(StoreError::NamespaceNotEmpty {
                ns: ns.to_string(),
                what,
            });
        }
        if snapshots.iter().any(|s| self.is_protected(s)) {
            return Err(StoreError::NamespaceProtected { ns: ns.to_string() });
        }
        for snapshot in &snapshots {
            self.remove_snapshot_dir(snapshot)?;
        }
        let dir = self.base.join(ns.rel_path());
        fs::remove_dir_all(&dir).map_err(io_error("remove namespace", &dir))?;
        let holder = self.base.join(ns.parent().rel_path()).join("ns");
        fs_util::fsync_dir(&holder).map_err(io_error("fsync", &holder))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::BackupType;
    use crate::snapshot::{BackupGroup, SnapshotRef};

    fn ns(s: &str) -> Namespace {
        s.parse().unwrap()
    }

    #[test]
    fn create_list_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let store = DataStore::create(&dir.path().join("s")).unwrap();
        assert!(store.namespace_exists(&Namespace::default()));
        assert!(matches!(
            store.create_namespace(&ns("a/b")),
            Err(StoreError::NamespaceNotFound { .. })
        ));
        store.create_namespace(&ns("a")).unwrap();
        store.create_namespace(&ns("a/b")).unwrap();
        assert!(matches!(
            store.create_namespace(&ns("a")),
            Err(StoreError::NamespaceExists { .. })
        ));
        assert_eq!(
            store.list_child_namespaces(&ns("a")).unwrap(),
            vec![ns("a/b")]
        );

        let group = BackupGroup::new(ns("a/b"), BackupType::Host, "h").unwrap();
        let snap = SnapshotRef::new(group, 1_700_000_000).unwrap();
        store.create_snapshot_dir(&snap).unwrap();
        assert!(matches!(
            store.remove_namespace(&ns("a"), false),
            Err(StoreError::NamespaceNotEmpty { .. })
        ));
        assert!(store.namespace_exists(&ns("a/b")));
        store.remove_namespace(&ns("a"), true).unwrap();
        assert!(!store.namespace_exists(&ns("a")));
        assert!(store.remove_namespace(&Namespace::default(), true).is_err());
    }
}
