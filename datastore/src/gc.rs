//! Garbage collection of one datastore: mark every chunk that an index references, then
//! sweep the chunks that are neither marked nor young enough to belong to a running backup.
//!
//! Mark ([`mark`]) touches (atime = now) each chunk that any `.didx` of any snapshot
//! directory references: every namespace, finished or not. Sweep ([`sweep`]) walks
//! `.chunks` one prefix directory at a time and asks the pure [`chunk_fate`] about each
//! chunk, against the pure [`gc_cutoff`]; the walk holds no policy of its own.
//!
//! Why a concurrent backup loses nothing: a session that started at `S` touches every chunk
//! it finds stored and writes the others, so all its chunks have an atime after `S`, and
//! the cutoff is never later than the oldest running session's start. Chunks that it reuses
//! from its base snapshot without sending them are referenced by the base's index and so
//! are marked (the caller keeps the base from being pruned meanwhile, or fails the session).
//! A touch that lands between the sweep's look at a chunk and its removal is caught by
//! [`ChunkStore::remove_if_unused`](crate::chunk_store::ChunkStore::remove_if_unused).
//!
//! Memory stays bounded with millions of chunks: one index and its set of digests at a
//! time, one directory entry at a time, and the list of index files (which grows with the
//! snapshots, not the chunks).
//!
//! What this module must not do: remove anything before mark has finished; keep a set of
//! all chunks of the store; remove `.bad` files (verify's evidence) or files it does not
//! recognise; run without the store's GC lock; read the clock for the cutoff (the caller
//! passes the start time, so tests control it).

use std::io;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};

use crate::chunk_store::ChunkStoreError;
use crate::fs_util;
use crate::index::IndexError;
use crate::snapshot::format_time;
use crate::store::{DataStore, StoreError};

mod mark;
mod sweep;
#[cfg(test)]
pub(crate) mod tests;

/// Default grace period: a chunk younger than this is never removed. 24 hours cover
/// filesystems that update atime lazily; 5 minutes are slack.
pub const DEFAULT_GRACE_SECS: i64 = 24 * 3600 + 5 * 60;
/// File in the store's base directory with the stats of the last finished GC (JSON).
pub const GC_STATUS_NAME: &str = ".gc-status";
/// The kernel stamps a touch with a coarse clock that may lag the caller's clock by a tick,
/// so a chunk marked in the first milliseconds of a GC can carry the previous second. The
/// line between "marked" and "older" is drawn this much before the start.
const CLOCK_SLACK_SECS: i64 = 1;

/// Pure: chunks whose atime is older than this are garbage:
/// `min(gc_start - grace, oldest running backup session's start)`.
pub fn gc_cutoff(gc_start: i64, grace_secs: i64, oldest_writer_start: Option<i64>) -> i64 {
    let by_grace = gc_start.saturating_sub(grace_secs);
    oldest_writer_start.map_or(by_grace, |writer| by_grace.min(writer))
}

/// What the sweep does with a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkFate {
    /// Not used since the cutoff: removed.
    Remove,
    /// Not marked by this GC, but too young to remove.
    Pending,
    /// Marked by this GC (or written since it started).
    Keep,
}

/// Pure: `atime < cutoff` is [`ChunkFate::Remove`], `cutoff <= atime < gc_start` is
/// [`ChunkFate::Pending`], `atime >= gc_start` is [`ChunkFate::Keep`]. Seconds; the atime
/// truncated.
pub fn chunk_fate(atime: i64, gc_start: i64, cutoff: i64) -> ChunkFate {
    if atime < cutoff {
        ChunkFate::Remove
    } else if atime < gc_start {
        ChunkFate::Pending
    } else {
        ChunkFate::Keep
    }
}

/// Pure: a temp file in the chunk store is a leftover once neither its atime nor its mtime
/// (which an insert in progress keeps moving) is after the cutoff.
pub fn temp_is_stale(atime: i64, mtime: i64, cutoff: i64) -> bool {
    atime.max(mtime) < cutoff
}

/// Pure: the percentage to report after `done` of `total` steps, each time it reaches a new
/// multiple of 10.
fn progress_step(done: usize, total: usize) -> Option<usize> {
    if done == 0 || done > total {
        return None;
    }
    let tenth = done * 10 / total;
    (tenth > (done - 1) * 10 / total).then_some(tenth * 10)
}

/// How a GC runs.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Chunks younger than this are never removed ([`DEFAULT_GRACE_SECS`]).
    pub grace_secs: i64,
    /// Start of the oldest backup session still running on the store, if any.
    pub oldest_writer_start: Option<i64>,
    /// Start of this GC, seconds since the epoch.
    pub now: i64,
}

/// The result of a GC, also saved as [`GC_STATUS_NAME`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct GcStats {
    /// Start and end, seconds since the epoch.
    pub start: i64,
    pub end: i64,
    /// Chunks with an older atime were removed.
    pub cutoff: i64,
    /// Index files read (every snapshot, finished or not).
    pub index_files: u64,
    /// Chunk references touched: each chunk once per index that references it.
    pub marked_chunks: u64,
    /// Chunk references whose chunk file does not exist (each chunk once per index).
    pub missing_chunks: u64,
    pub removed_chunks: u64,
    pub removed_bytes: u64,
    /// Chunks marked by this GC (or written since it started).
    pub kept_chunks: u64,
    pub kept_bytes: u64,
    /// Chunks not marked but younger than the cutoff; a later GC decides.
    pub pending_chunks: u64,
    pub pending_bytes: u64,
    /// `<digest>.<n>.bad` files (kept).
    pub bad_chunks: u64,
    /// Stale temp files of interrupted inserts that were removed.
    pub removed_temp_files: u64,
    /// Bytes of all chunk files (`.bad` included) before and after the sweep.
    pub disk_bytes_before: u64,
    pub disk_bytes_after: u64,
    /// Sum of the archive sizes of the indexes of finished snapshots.
    pub logical_bytes: u64,
    /// `logical_bytes / kept_bytes`; 0 without kept chunks.
    pub dedup_factor: f64,
}

/// A GC that failed or was aborted.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Chunks(#[from] ChunkStoreError),
    #[error("index {path} of snapshot {snapshot}: {source}")]
    Index {
        path: PathBuf,
        snapshot: String,
        #[source]
        source: IndexError,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("garbage collection aborted")]
    Aborted,
}

fn io_error(op: &'static str, path: &std::path::Path) -> impl FnOnce(io::Error) -> GcError {
    let path = path.to_path_buf();
    move |source| GcError::Io { op, path, source }
}

fn clock_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Runs a GC on `store`: takes the GC lock (fails with [`StoreError::GcRunning`] if another
/// GC holds it), checks that atimes are kept, marks, sweeps, and saves the stats as
/// [`GC_STATUS_NAME`]. Progress and warnings (missing chunks) go to `log`. `abort` is
/// checked between indexes and between prefix directories; when set, the GC stops with
/// [`GcError::Aborted`] and removes nothing more.
pub fn run_gc(
    store: &DataStore,
    options: &GcOptions,
    log: &(dyn Fn(String) + Sync),
    abort: &AtomicBool,
) -> Result<GcStats, GcError> {
    let _lock = store.try_lock_gc()?;
    store.check_atime()?;
    let marked_since = options.now - CLOCK_SLACK_SECS;
    let cutoff =
        gc_cutoff(options.now, options.grace_secs, options.oldest_writer_start).min(marked_since);
    log(format!(
        "cutoff {}: chunks not used since then are removed",
        format_time(cutoff)
    ));

    let indexes = mark::find_indexes(store)?;
    log(format!(
        "phase 1: marking the chunks of {} indexes",
        indexes.len()
    ));
    let marked = mark::mark(store, &indexes, log, abort)?;
    if marked.missing_chunks > 0 {
        log(format!(
            "warning: {} referenced chunks are missing",
            marked.missing_chunks
        ));
    }

    log("phase 2: sweeping unused chunks".to_owned());
    let swept = sweep::sweep(store.chunk_store(), marked_since, cutoff, log, abort)?;

    let stats = GcStats {
        start: options.now,
        end: clock_now(),
        cutoff,
        index_files: marked.index_files,
        marked_chunks: marked.marked_chunks,
        missing_chunks: marked.missing_chunks,
        removed_chunks: swept.removed_chunks,
        removed_bytes: swept.removed_bytes,
        kept_chunks: swept.kept_chunks,
        kept_bytes: swept.kept_bytes,
        pending_chunks: swept.pending_chunks,
        pending_bytes: swept.pending_bytes,
        bad_chunks: swept.bad_chunks,
        removed_temp_files: swept.removed_temp_files,
        disk_bytes_before: swept.disk_bytes_before(),
        disk_bytes_after: swept.disk_bytes_after(),
        logical_bytes: marked.logical_bytes,
        dedup_factor: dedup_factor(marked.logical_bytes, swept.kept_bytes),
    };
    let path = store.base().join(GC_STATUS_NAME);
    let json =
        serde_json::to_vec_pretty(&stats).map_err(|e| io_error("encode", &path)(e.into()))?;
    fs_util::replace_file(&path, &json).map_err(io_error("write", &path))?;
    log(format!(
        "removed {} chunks ({} bytes), kept {} ({} bytes), pending {} ({} bytes), \
         {} bad, {} missing; dedup factor {:.2}",
        stats.removed_chunks,
        stats.removed_bytes,
        stats.kept_chunks,
        stats.kept_bytes,
        stats.pending_chunks,
        stats.pending_bytes,
        stats.bad_chunks,
        stats.missing_chunks,
        stats.dedup_factor
    ));
    Ok(stats)
}

/// Pure: `logical / stored`, 0 when nothing is stored.
pub fn dedup_factor(logical_bytes: u64, stored_bytes: u64) -> f64 {
    if stored_bytes == 0 {
        0.0
    } else {
        logical_bytes as f64 / stored_bytes as f64
    }
}

impl DataStore {
    /// The stats of the last finished GC, `None` if none ever finished.
    pub fn last_gc_status(&self) -> Result<Option<GcStats>, StoreError> {
        let path = self.base().join(GC_STATUS_NAME);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::Io {
                    op: "read",
                    path,
                    source,
                });
            }
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Io {
                op: "parse",
                path,
                source: e.into(),
            })
    }
}

#[cfg(test)]
mod policy_tests {
    use super::*;

    #[test]
    fn cutoff_table() {
        let start = 1_800_000_000;
        let grace = DEFAULT_GRACE_SECS;
        let cases = [
            // (grace, oldest writer, cutoff)
            (grace, None, start - grace),
            (grace, Some(start - grace - 1), start - grace - 1),
            (grace, Some(start - grace), start - grace),
            (grace, Some(start - 60), start - grace),
            (0, None, start),
            (0, Some(start - 10), start - 10),
            (0, Some(start + 10), start),
            (i64::MAX, None, i64::MIN + start + 1),
        ];
        for (grace, writer, cutoff) in cases {
            assert_eq!(
                gc_cutoff(start, grace, writer),
                cutoff,
                "{grace} {writer:?}"
            );
        }
    }

    #[test]
    fn fate_table() {
        let (start, cutoff) = (1000, 900);
        let cases = [
            (0, ChunkFate::Remove),
            (899, ChunkFate::Remove),
            (900, ChunkFate::Pending),
            (999, ChunkFate::Pending),
            (1000, ChunkFate::Keep),
            (5000, ChunkFate::Keep),
        ];
        for (atime, fate) in cases {
            assert_eq!(chunk_fate(atime, start, cutoff), fate, "{atime}");
        }
        // Grace 0: the cutoff is the start, nothing is pending.
        assert_eq!(chunk_fate(999, 1000, 1000), ChunkFate::Remove);
        assert_eq!(chunk_fate(1000, 1000, 1000), ChunkFate::Keep);
    }

    #[test]
    fn temp_files_age_by_their_newest_time() {
        assert!(temp_is_stale(10, 20, 21));
        assert!(!temp_is_stale(10, 21, 21));
        assert!(!temp_is_stale(30, 0, 21));
    }

    #[test]
    fn progress_every_tenth() {
        let steps: Vec<usize> = (1..=20).filter_map(|d| progress_step(d, 20)).collect();
        assert_eq!(steps, [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
        let steps: Vec<usize> = (1..=3).filter_map(|d| progress_step(d, 3)).collect();
        assert_eq!(steps, [30, 60, 100]);
        assert_eq!(progress_step(0, 0), None);
        assert_eq!(progress_step(1, 0), None);
        assert_eq!(
            (1..=1000).filter_map(|d| progress_step(d, 1000)).count(),
            10
        );
    }

    #[test]
    fn dedup() {
        assert_eq!(dedup_factor(100, 0), 0.0);
        assert_eq!(dedup_factor(300, 100), 3.0);
    }
}
