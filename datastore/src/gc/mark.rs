//! GC phase 1: find every index file of every snapshot directory and touch the chunks it
//! references.
//!
//! One index is in memory at a time, with the set of its digests so that a chunk it names
//! many times is touched once. An index that vanished since it was listed (pruned) is
//! skipped; one that cannot be read stops the GC before anything is removed, because its
//! chunks would otherwise be swept.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{GcError, io_error, progress_step};
use crate::digest::Digest;
use crate::fs_util;
use crate::index::{DynamicIndex, IndexError};
use crate::names::INDEX_SUFFIX;
use crate::snapshot::SnapshotRef;
use crate::store::DataStore;

/// Missing chunks logged one by one per index; the rest are summed up.
const MISSING_LOGGED_PER_INDEX: u64 = 10;

/// An index file to mark.
#[derive(Debug)]
pub(super) struct IndexFile {
    pub(super) snapshot: SnapshotRef,
    pub(super) finished: bool,
    pub(super) path: PathBuf,
}

/// What marking found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct MarkTally {
    pub(super) index_files: u64,
    pub(super) marked_chunks: u64,
    pub(super) missing_chunks: u64,
    pub(super) logical_bytes: u64,
}

/// Names a snapshot with its namespace, as its path in the store.
pub(super) fn snapshot_label(snap: &SnapshotRef) -> String {
    snap.rel_path().display().to_string()
}

/// Pure: a file name that GC reads as an index. Every `*.didx` counts, not only the names
/// the server writes today, so that no stray index's chunks are swept; temp files (hidden)
/// do not, they are never complete.
fn is_index_name(name: &str) -> bool {
    name.ends_with(INDEX_SUFFIX) && !name.starts_with('.') && !fs_util::is_temp_name(name)
}

/// Every index file of every snapshot directory, finished or not, in every namespace.
pub(super) fn find_indexes(store: &DataStore) -> Result<Vec<IndexFile>, GcError> {
    let mut out = Vec::new();
    for (snapshot, finished) in store.all_snapshots()? {
        let dir = store.snapshot_path(&snapshot);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(io_error("list snapshot directory", &dir)(err)),
        };
        let mut paths = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_error("list snapshot directory", &dir))?;
            let is_file = entry
                .file_type()
                .map_err(io_error("stat entry in", &dir))?
                .is_file();
            if is_file && entry.file_name().to_str().is_some_and(is_index_name) {
                paths.push(entry.path());
            }
        }
        paths.sort();
        out.extend(paths.into_iter().map(|path| IndexFile {
            snapshot: snapshot.clone(),
            finished,
            path,
        }));
    }
    Ok(out)
}

/// Touches every chunk that `indexes` reference, each once per index.
pub(super) fn mark(
    store: &DataStore,
    indexes: &[IndexFile],
    log: &(dyn Fn(String) + Sync),
    abort: &AtomicBool,
) -> Result<MarkTally, GcError> {
    let mut tally = MarkTally::default();
    for (i, index) in indexes.iter().enumerate() {
        if abort.load(Ordering::Relaxed) {
            return Err(GcError::Aborted);
        }
        let decoded = match DynamicIndex::load(&index.path) {
            Ok(decoded) => decoded,
            Err(IndexError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                continue;
            }
            Err(source) => {
                return Err(GcError::Index {
                    path: index.path.clone(),
                    snapshot: snapshot_label(&index.snapshot),
                    source,
                });
            }
        };
        tally.index_files += 1;
        if index.finished {
            tally.logical_bytes += decoded.size();
        }
        let missing_before = tally.missing_chunks;
        let missing = mark_index(store, &decoded, &mut tally)?;
        let missing_here = tally.missing_chunks - missing_before;
        for digest in &missing {
            log(format!(
                "warning: chunk {digest} of {} ({}) is missing",
                snapshot_label(&index.snapshot),
                index.path.display()
            ));
        }
        if missing_here > missing.len() as u64 {
            log(format!(
                "warning: {} more chunks of {} are missing",
                missing_here - missing.len() as u64,
                index.path.display()
            ));
        }
        if let Some(percent) = progress_step(i + 1, indexes.len()) {
            log(format!(
                "marked {percent}% ({} of {} indexes)",
                i + 1,
                indexes.len()
            ));
        }
    }
    Ok(tally)
}

/// Touches the chunks of one index; returns the first missing digests (to log).
fn mark_index(
    store: &DataStore,
    index: &DynamicIndex,
    tally: &mut MarkTally,
) -> Result<Vec<Digest>, GcError> {
    let chunks = store.chunk_store();
    let mut seen = HashSet::with_capacity(index.entries.len());
    let mut missing = Vec::new();
    for entry in &index.entries {
        if !seen.insert(entry.digest) {
            continue;
        }
        if chunks.touch(&entry.digest)? {
            tally.marked_chunks += 1;
        } else {
            tally.missing_chunks += 1;
            if (missing.len() as u64) < MISSING_LOGGED_PER_INDEX {
                missing.push(entry.digest);
            }
        }
    }
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names() {
        for (name, ok) in [
            ("root.tar.didx", true),
            ("odd name.didx", true),
            ("root.tar", false),
            ("catalog.blob", false),
            ("index.json.blob", false),
            (".root.tar.didx.tmp-0123456789abcdef", false),
            (".hidden.didx", false),
        ] {
            assert_eq!(is_index_name(name), ok, "{name}");
        }
    }
}
