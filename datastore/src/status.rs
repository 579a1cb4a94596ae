//! The numbers of a datastore's status: disk space, chunks stored, logical size of the
//! finished snapshots, and how well they deduplicate.
//!
//! Walks `.chunks` one prefix directory at a time and the snapshot tree one group at a
//! time, keeping nothing per chunk, so memory stays bounded however large the store. The
//! logical size comes from the manifests (which record each index's archive size), not
//! from the indexes, so a status call reads one small file per snapshot.
//!
//! What this module must not do: change anything in the store.

use std::fs;
use std::io;

use nix::sys::statvfs::statvfs;
use serde::{Deserialize, Serialize};

use crate::chunk_store::{ChunkFileKind, chunk_file_kind};
use crate::gc::dedup_factor;
use crate::names::INDEX_SUFFIX;
use crate::snapshot::SnapshotRef;
use crate::store::{DataStore, StoreError};

/// What a datastore holds and how full its filesystem is.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct StoreStatus {
    /// Size, used and available bytes of the filesystem that holds the store (statvfs).
    pub total: u64,
    pub used: u64,
    pub avail: u64,
    /// Chunk files (not `.bad` or temp files) and their bytes on disk.
    pub chunk_count: u64,
    pub bytes_stored: u64,
    /// Sum of the archive sizes of the indexes of finished snapshots.
    pub logical_bytes: u64,
    /// `logical_bytes / bytes_stored`; 0 when nothing is stored.
    pub dedup_factor: f64,
    /// Finished snapshots, and backup groups, in all namespaces.
    pub snapshot_count: u64,
    pub group_count: u64,
}

fn io_error(op: &'static str, path: &std::path::Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { op, path, source }
}

/// Gathers the status of `store`.
pub fn store_status(store: &DataStore) -> Result<StoreStatus, StoreError> {
    let mut status = StoreStatus::default();
    let base = store.base();
    let fs_stat = statvfs(base).map_err(|errno| io_error("statvfs", base)(errno.into()))?;
    let unit = fs_stat.fragment_size();
    status.total = fs_stat.blocks().saturating_mul(unit);
    status.avail = fs_stat.blocks_available().saturating_mul(unit);
    status.used = fs_stat
        .blocks()
        .saturating_sub(fs_stat.blocks_free())
        .saturating_mul(unit);

    for dir in store.chunk_store().prefix_dirs()? {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(io_error("list chunk directory", &dir)(err)),
        };
        for entry in entries {
            let entry = entry.map_err(io_error("list chunk directory", &dir))?;
            let is_chunk = entry
                .file_name()
                .to_str()
                .is_some_and(|name| chunk_file_kind(name) == ChunkFileKind::Chunk);
            if !is_chunk {
                continue;
            }
            match entry.metadata() {
                Ok(meta) if meta.is_file() => {
                    status.chunk_count += 1;
                    status.bytes_stored += meta.len();
                }
                Ok(_) => {}
                // Removed by a concurrent GC.
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(io_error("stat", &entry.path())(err)),
            }
        }
    }

    for ns in store.list_all_namespaces()? {
        for group in store.list_groups(&ns)? {
            status.group_count += 1;
            for time in store.snapshot_times(&group)? {
                let snap = SnapshotRef {
                    group: group.clone(),
                    time,
                };
                match store.read_manifest(&snap) {
                    Ok(manifest) => {
                        status.snapshot_count += 1;
                        status.logical_bytes += manifest
                            .files
                            .iter()
                            .filter(|f| f.filename.ends_with(INDEX_SUFFIX))
                            .map(|f| f.size)
                            .sum::<u64>();
                    }
                    // Unfinished, or removed since it was listed.
                    Err(StoreError::SnapshotNotFound { .. }) => {}
                    // A damaged manifest is verify's business; it still is a snapshot.
                    Err(StoreError::Manifest { .. } | StoreError::ManifestMismatch { .. }) => {
                        status.snapshot_count += 1;
                    }
                    Err(err) => return Err(err),
                }
            }
        }
    }
    status.dedup_factor = dedup_factor(status.logical_bytes, status.bytes_stored);
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gc::tests::Fixture;

    #[test]
    fn numbers_of_a_small_store() {
        let fx = Fixture::new();
        let empty = store_status(&fx.store).unwrap();
        assert_eq!(
            (empty.chunk_count, empty.snapshot_count, empty.group_count),
            (0, 0, 0)
        );
        assert_eq!(empty.dedup_factor, 0.0);
        assert!(empty.total > 0 && empty.avail <= empty.total && empty.used <= empty.total);

        let a = fx.add_snapshot("", "web", 100, &[0, 1, 2], true);
        let b = fx.add_snapshot("dev/eu", "web", 200, &[1, 2, 3, 1], true);
        fx.add_snapshot("dev/eu", "web", 300, &[7], false);
        fx.add_snapshot("dev", "db", 400, &[8], false);
        let bad = fx.store.chunk_store().chunk_path(&Fixture::digest(0));
        fs::write(
            bad.with_file_name(format!("{}.0.bad", Fixture::digest(0))),
            b"x",
        )
        .unwrap();

        let status = store_status(&fx.store).unwrap();
        let stored: u64 = [0, 1, 2, 3, 7, 8]
            .iter()
            .map(|&n| fx.chunk_file_size(n))
            .sum();
        assert_eq!(status.chunk_count, 6);
        assert_eq!(status.bytes_stored, stored);
        assert_eq!(status.logical_bytes, a.1 + b.1);
        assert_eq!(status.snapshot_count, 2);
        assert_eq!(status.group_count, 3);
        assert_eq!(status.dedup_factor, (a.1 + b.1) as f64 / stored as f64);
    }
}
