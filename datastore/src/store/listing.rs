//! Listing what a datastore holds (namespaces, groups, snapshots) and start-up cleanup of
//! unfinished snapshots.
//!
//! Directory entries whose names do not parse as what their level holds are skipped, never
//! guessed at: stray files, temp files and foreign directories do not disturb a listing.

use std::fs;
use std::io;
use std::path::Path;

use super::{DataStore, StoreError, io_error};
use crate::manifest::BackupManifest;
use crate::names::{BackupType, MANIFEST_NAME, Namespace};
use crate::snapshot::{self, BackupGroup, SnapshotRef};

impl DataStore {
    /// Times of the snapshot directories of a group, finished or not, sorted.
    pub fn snapshot_times(&self, group: &BackupGroup) -> Result<Vec<i64>, StoreError> {
        let dir = self.group_path(group);
        let mut times: Vec<i64> = dir_names(&dir)?
            .iter()
            .filter_map(|name| snapshot::parse_time(name).ok())
            .collect();
        times.sort_unstable();
        Ok(times)
    }

    /// The newest snapshot time of a group, finished or not (a new backup must be later).
    pub fn newest_snapshot_time(&self, group: &BackupGroup) -> Result<Option<i64>, StoreError> {
        Ok(self.snapshot_times(group)?.last().copied())
    }

    /// The backup groups directly in `ns`, sorted.
    pub fn list_groups(&self, ns: &Namespace) -> Result<Vec<BackupGroup>, StoreError> {
        let ns_dir = self.base.join(ns.rel_path());
        let mut groups = Vec::new();
        for type_name in dir_names(&ns_dir)? {
            let Ok(backup_type) = type_name.parse::<BackupType>() else {
                continue;
            };
            for id in dir_names(&ns_dir.join(&type_name))? {
                if let Ok(group) = BackupGroup::new(ns.clone(), backup_type, &id) {
                    groups.push(group);
                }
            }
        }
        groups.sort();
        Ok(groups)
    }

    /// The finished snapshots of a group with their manifests, oldest first.
    pub fn list_group_snapshots(
        &self,
        group: &BackupGroup,
    ) -> Result<Vec<(SnapshotRef, BackupManifest)>, StoreError> {
        let mut out = Vec::new();
        for time in self.snapshot_times(group)? {
            let snap = SnapshotRef {
                group: group.clone(),
                time,
            };
            match self.read_manifest(&snap) {
                Ok(manifest) => out.push((snap, manifest)),
                // Unfinished, or removed since the directory was listed.
                Err(StoreError::SnapshotNotFound { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(out)
    }

    /// The parent of a new snapshot of `group` taken at `new_time`, with its manifest: the
    /// newest finished snapshot not newer than `new_time`, other than the one at `new_time`
    /// itself, whose last verify did not fail ([`snapshot::choose_parent`]).
    pub fn parent_snapshot(
        &self,
        group: &BackupGroup,
        new_time: i64,
    ) -> Result<Option<(SnapshotRef, BackupManifest)>, StoreError> {
        let finished: Vec<(SnapshotRef, BackupManifest)> = self
            .list_group_snapshots(group)?
            .into_iter()
            .filter(|(snap, _)| snap.time != new_time)
            .collect();
        let candidates: Vec<snapshot::ParentCandidate> = finished
            .iter()
            .map(|(snap, manifest)| snapshot::ParentCandidate {
                time: snap.time,
                verify_failed: manifest
                    .verify_state()
                    .is_some_and(|v| v.state == crate::manifest::VerifyOutcome::Failed),
            })
            .collect();
        let Some(time) = snapshot::choose_parent(&candidates, new_time) else {
            return Ok(None);
        };
        Ok(finished.into_iter().find(|(snap, _)| snap.time == time))
    }

    /// The finished snapshots directly in `ns` (not in child namespaces), sorted by group and
    /// time. Directory entries whose names do not parse are skipped.
    pub fn list_snapshots(
        &self,
        ns: &Namespace,
    ) -> Result<Vec<(SnapshotRef, BackupManifest)>, StoreError> {
        let mut out = Vec::new();
        for group in self.list_groups(ns)? {
            out.extend(self.list_group_snapshots(&group)?);
        }
        Ok(out)
    }

    /// The namespaces directly inside `ns`, sorted.
    pub fn list_child_namespaces(&self, ns: &Namespace) -> Result<Vec<Namespace>, StoreError> {
        let dir = self.base.join(ns.rel_path()).join("ns");
        let mut children: Vec<Namespace> = dir_names(&dir)?
            .iter()
            .filter_map(|name| ns.child(name).ok())
            .collect();
        children.sort();
        Ok(children)
    }

    /// Every namespace of the store, the root first, parents before children.
    pub fn list_all_namespaces(&self) -> Result<Vec<Namespace>, StoreError> {
        let mut all = vec![Namespace::root()];
        let mut i = 0;
        while i < all.len() {
            let children = self.list_child_namespaces(&all[i])?;
            all.extend(children);
            i += 1;
        }
        Ok(all)
    }

    /// Removes every snapshot directory without a manifest, in all namespaces, and returns
    /// what it removed. Such directories are left by sessions that never finished (crash,
    /// kill): call this only while no backup session runs, e.g. at server start.
    pub fn remove_unfinished_snapshots(&self) -> Result<Vec<SnapshotRef>, StoreError> {
        let mut removed = Vec::new();
        for ns in self.list_all_namespaces()? {
            for group in self.list_groups(&ns)? {
                for time in self.snapshot_times(&group)? {
                    let snap = SnapshotRef {
                        group: group.clone(),
                        time,
                    };
                    if !self.snapshot_path(&snap).join(MANIFEST_NAME).exists() {
                        self.remove_snapshot_dir(&snap)?;
                        removed.push(snap);
                    }
                }
            }
        }
        Ok(removed)
    }
}

/// Names of the subdirectories of `dir` that are valid UTF-8; a missing `dir` has none.
fn dir_names(dir: &Path) -> Result<Vec<String>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(io_error("list directory", dir)(err)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_error("list directory", dir))?;
        let is_dir = entry
            .file_type()
            .map_err(io_error("stat entry in", dir))?
            .is_dir();
        if let (true, Ok(name)) = (is_dir, entry.file_name().into_string()) {
            names.push(name);
        }
    }
    Ok(names)
}
