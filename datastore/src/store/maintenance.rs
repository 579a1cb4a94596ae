//! What garbage collection and status need from the store directory: the GC lock, the list
//! of every snapshot, and the check that the filesystem keeps the access times GC marks with.
//!
//! The lock is an `flock` on `<base>/.gc.lock`, so it holds across processes and is released
//! by the kernel when its holder exits: a crashed GC never blocks the next one. The lock file
//! itself stays (removing a lock file that others may have open is a race). Nothing here
//! decides which chunk is garbage.

use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;

use super::{DataStore, StoreError, io_error};
use crate::fs_util;
use crate::names::MANIFEST_NAME;
use crate::snapshot::SnapshotRef;

/// Name of the GC lock file in the store's base directory.
const GC_LOCK_NAME: &str = ".gc.lock";
/// How far the probe's atime may be from the clock after a touch (network filesystems keep
/// the server's clock).
const ATIME_TOLERANCE_SECS: i64 = 5;
/// How far back the probe's atime is set first, so that a filesystem that ignores the
/// touch cannot pass by accident.
const ATIME_PROBE_AGE_SECS: i64 = 86_400;

/// Held while a GC runs on a store; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct GcLock {
    _lock: Flock<File>,
}

impl DataStore {
    /// Takes the store's GC lock without waiting: an exclusive `flock` on `<base>/.gc.lock`.
    /// [`StoreError::GcRunning`] if another GC (in this or another process) holds it.
    pub fn try_lock_gc(&self) -> Result<GcLock, StoreError> {
        let path = self.base.join(GC_LOCK_NAME);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_error("open", &path))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(GcLock { _lock: lock }),
            Err((_, Errno::EWOULDBLOCK)) => Err(StoreError::GcRunning {
                path: self.base.clone(),
            }),
            Err((_, errno)) => Err(io_error("lock", &path)(errno.into())),
        }
    }

    /// Every snapshot directory of the store, in every namespace, finished or not, with
    /// whether it is finished; sorted. Memory grows with the number of snapshots only.
    pub fn all_snapshots(&self) -> Result<Vec<(SnapshotRef, bool)>, StoreError> {
        let mut out = Vec::new();
        for ns in self.list_all_namespaces()? {
            for group in self.list_groups(&ns)? {
                for time in self.snapshot_times(&group)? {
                    let snap = SnapshotRef {
                        group: group.clone(),
                        time,
                    };
                    let finished = self.snapshot_path(&snap).join(MANIFEST_NAME).is_file();
                    out.push((snap, finished));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Checks that the store's filesystem records explicit access-time updates (see
    /// [`check_atime`]); GC runs it before it marks.
    pub fn check_atime(&self) -> Result<(), StoreError> {
        check_atime(&self.base)
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Pure: did a touch at `now` move an atime that was `before` to `after`?
fn atime_updated(before: i64, after: i64, now: i64) -> bool {
    after > before && (after - now).abs() <= ATIME_TOLERANCE_SECS
}

/// Creates a probe file in `dir`, sets its atime a day back, touches it the way
/// [`ChunkStore::touch`](crate::chunk_store::ChunkStore::touch) does (atime now, mtime
/// unchanged) and requires the atime to be now. The probe is removed in every case.
pub(super) fn check_atime(dir: &Path) -> Result<(), StoreError> {
    let (file, temp) = fs_util::create_temp_for(&dir.join("atime-probe"))
        .map_err(io_error("create atime probe in", dir))?;
    drop(file);
    let probe = temp.path();
    let before = now() - ATIME_PROBE_AGE_SECS;
    let set = |atime: &TimeSpec| {
        utimensat(
            nix::fcntl::AT_FDCWD,
            probe,
            atime,
            &TimeSpec::UTIME_OMIT,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|errno| io_error("set atime of", probe)(errno.into()))
    };
    set(&TimeSpec::new(before, 0))?;
    set(&TimeSpec::UTIME_NOW)?;
    let after = fs::symlink_metadata(probe)
        .map_err(io_error("stat", probe))?
        .atime();
    drop(temp);
    if atime_updated(before, after, now()) {
        Ok(())
    } else {
        Err(StoreError::AtimeNotUpdated {
            path: dir.to_path_buf(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{BackupType, Namespace};
    use crate::snapshot::BackupGroup;

    #[test]
    fn atime_decision() {
        let now = 1_800_000_000;
        let day_ago = now - ATIME_PROBE_AGE_SECS;
        let cases = [
            (day_ago, now, true),
            (day_ago, now - ATIME_TOLERANCE_SECS, true),
            (day_ago, now + ATIME_TOLERANCE_SECS, true),
            (day_ago, now - ATIME_TOLERANCE_SECS - 1, false),
            (day_ago, now + ATIME_TOLERANCE_SECS + 1, false),
            // The touch was ignored.
            (day_ago, day_ago, false),
            // An atime that never moves, even if it happens to be near now.
            (now, now, false),
            (day_ago, 0, false),
        ];
        for (before, after, ok) in cases {
            assert_eq!(atime_updated(before, after, now), ok, "{before} {after}");
        }
    }

    #[test]
    fn probe_passes_here_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        check_atime(dir.path()).unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        let store = DataStore::create(&dir.path().join("store")).unwrap();
        store.check_atime().unwrap();
    }

    #[test]
    fn gc_lock_is_exclusive_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = DataStore::create(&dir.path().join("store")).unwrap();
        let first = store.try_lock_gc().unwrap();
        let other = DataStore::open(store.base()).unwrap();
        assert!(matches!(
            other.try_lock_gc(),
            Err(StoreError::GcRunning { .. })
        ));
        assert!(matches!(
            store.try_lock_gc(),
            Err(StoreError::GcRunning { .. })
        ));
        drop(first);
        let again = other.try_lock_gc().unwrap();
        drop(again);
    }

    #[test]
    fn all_snapshots_lists_every_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let store = DataStore::create(&dir.path().join("store")).unwrap();
        let snap = |ns: &str, id: &str, time: i64| {
            let ns: Namespace = ns.parse().unwrap();
            SnapshotRef::new(BackupGroup::new(ns, BackupType::Host, id).unwrap(), time).unwrap()
        };
        let finished = snap("a/b", "web", 200);
        let unfinished = snap("", "db", 100);
        let other = snap("a", "web", 300);
        for s in [&finished, &unfinished, &other] {
            store.create_snapshot_dir(s).unwrap();
        }
        for s in [&finished, &other] {
            store
                .write_manifest(s, &crate::manifest::BackupManifest::new(s))
                .unwrap();
        }
        fs::write(store.base().join("host/stray-file"), b"x").unwrap();
        let mut expected = vec![(finished, true), (unfinished, false), (other, true)];
        expected.sort();
        assert_eq!(store.all_snapshots().unwrap(), expected);
    }
}
