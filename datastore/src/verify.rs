//! Verify: read back every chunk of a set of snapshots and record, in each manifest,
//! whether the snapshot can be restored whole.
//!
//! Per snapshot: the manifest is read; each `.didx` it lists is loaded and its checksum,
//! size and chunk count are compared with the manifest; each `.blob` is checked against the
//! manifest's SHA-256 and decoded; every chunk an index references is read, its CRC checked,
//! decompressed, hashed against its name and its size compared with the index. A missing or
//! corrupt chunk, or a bad index or blob, fails the snapshot. The result (ok or failed, the
//! task id and the job's start time) goes into the manifest's unprotected part.
//!
//! Each chunk is checked at most once per call, however many snapshots share it: a job-wide
//! map from digest to verdict is consulted first (memory grows with the distinct chunks,
//! some 100 bytes each). The reading and hashing run on `threads` worker threads fed through
//! bounded channels; each worker holds one chunk at a time, so memory for chunk data stays
//! at a few chunks per worker whatever the size of the snapshots.
//!
//! A corrupt chunk (bad CRC, zstd or digest, or too large) is renamed aside to
//! `<digest>.<n>.bad` so that the next backup stores a good copy. A missing chunk has
//! nothing to rename; an unreadable one (an IO error) is left in place, because the error
//! may be passing and a good chunk must never be moved away.
//!
//! What this module must not do: change anything but the verify state in manifests and the
//! names of corrupt chunks; record a result for a snapshot it did not finish checking (an
//! abort records nothing for it); read the clock (the caller passes `now`).

use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::manifest::VerifyState;
use crate::snapshot::SnapshotRef;
use crate::store::{DataStore, StoreError};

mod job;
mod pool;
#[cfg(test)]
mod tests;

/// Which snapshots to verify, and the job's start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Verify a snapshot again once its last verify is at least this old (seconds).
    pub outdated_after_secs: Option<i64>,
    /// Skip snapshots that have been verified, unless `outdated_after_secs` says the last
    /// verify is too old.
    pub only_unverified: bool,
    /// The job's start time: recorded as the verify time, and the base for "outdated".
    pub now: i64,
}

/// Pure: should a snapshot whose last verify was `last` be verified now?
///
/// - Never verified: yes.
/// - `outdated_after_secs` set: only if the last verify, whatever its outcome, happened at
///   least that long ago (`last.time <= now - outdated_after`). A failed snapshot is thus
///   re-verified on the same schedule as a good one; a re-upload of its chunks can heal it.
/// - Otherwise: not if `only_unverified`, else yes (verify everything).
///
/// This matches PBS's `ignore-verified` + `outdated-after`, except that `outdated_after`
/// alone already skips recently verified snapshots (in PBS it has no effect without
/// `ignore-verified`, which surprises).
pub fn needs_verify(last: Option<&VerifyState>, options: &VerifyOptions) -> bool {
    let Some(last) = last else {
        return true;
    };
    match options.outdated_after_secs {
        Some(max_age) => last.time <= options.now.saturating_sub(max_age),
        None => !options.only_unverified,
    }
}

/// What a verify call did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct VerifyStats {
    pub snapshots_ok: u64,
    pub snapshots_failed: u64,
    /// Not verified: recently verified, or gone before they could be read or recorded.
    pub snapshots_skipped: u64,
    /// Distinct chunks read and checked (each once).
    pub chunks_checked: u64,
    /// Bytes read from chunk files.
    pub bytes_checked: u64,
    /// Snapshots that failed, as `[ns/<ns>/]<type>/<id>/<time>`.
    pub failed_snapshots: Vec<String>,
    /// Digests of chunks that failed their check (corrupt, missing or unreadable), once each.
    pub bad_chunks: Vec<String>,
}

/// A verify job that could not run to its end. Problems found in the data are not errors:
/// they fail snapshots and are counted in [`VerifyStats`].
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("verify aborted")]
    Aborted,
    #[error("cannot record the verify result of {snapshot}: {source}")]
    Record {
        snapshot: String,
        #[source]
        source: Box<StoreError>,
    },
    #[error("cannot start a verify worker thread: {source}")]
    Spawn {
        #[source]
        source: std::io::Error,
    },
    #[error("the verify worker threads stopped unexpectedly")]
    WorkersGone,
}

/// Verifies `snapshots` in the given order (see the module docs), records each result under
/// the task id `upid` with time `options.now`, and skips those that [`needs_verify`]
/// rejects. Logs one line per snapshot and one per bad chunk through `log`. When `abort` is
/// set, stops within moments with [`VerifyError::Aborted`]; results recorded until then
/// stay. The caller keeps the snapshots from being removed meanwhile, or accepts that a
/// removed one is skipped.
pub fn verify_snapshots(
    store: &DataStore,
    snapshots: &[SnapshotRef],
    upid: &str,
    options: &VerifyOptions,
    threads: usize,
    log: &(dyn Fn(String) + Sync),
    abort: &AtomicBool,
) -> Result<VerifyStats, VerifyError> {
    let threads = threads.max(1);
    let chunks = store.chunk_store();
    std::thread::scope(|scope| {
        // The channels live in this closure: whenever it returns, even early, their ends
        // drop, the workers see them closed and exit, and the scope can join them.
        let capacity = threads * pool::QUEUED_PER_WORKER;
        let (job_tx, job_rx) = mpsc::sync_channel(capacity);
        let (result_tx, result_rx) = mpsc::sync_channel(capacity);
        let job_rx = Arc::new(Mutex::new(job_rx));
        for n in 0..threads {
            let (job_rx, result_tx) = (Arc::clone(&job_rx), result_tx.clone());
            std::thread::Builder::new()
                .name(format!("verify-{n}"))
                .spawn_scoped(scope, move || {
                    pool::worker(chunks, &job_rx, result_tx, abort)
                })
                .map_err(|source| VerifyError::Spawn { source })?;
        }
        drop(result_tx);
        let pool = pool::Pool::new(job_tx, result_rx, abort);
        job::Job::new(store, upid, options, log, abort, pool).run(snapshots)
    })
}

/// How a snapshot is named in logs and stats: its path in the store, which includes the
/// namespace (`ns/a/host/web1/2026-11-24T08:00:00Z`).
fn snapshot_name(snap: &SnapshotRef) -> String {
    snap.rel_path().to_string_lossy().into_owned()
}
