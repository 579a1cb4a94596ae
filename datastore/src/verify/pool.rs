//! The chunk checkers: worker threads that each read and check one chunk at a time, and the
//! job's end of their channels.
//!
//! Both channels are bounded. The job never blocks on a full job queue: it takes a result
//! instead, so workers blocked on a full result queue always make progress, and nobody
//! waits on a pool whose workers have gone (a closed channel is an error, and every wait
//! also watches the abort flag).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::VerifyError;
use crate::blob::{self, BlobError, MAX_CHUNK_SIZE};
use crate::chunk_store::{ChunkStore, ChunkStoreError};
use crate::digest::Digest;

/// Chunks queued per worker beyond the one it is checking: enough to keep it busy.
pub(super) const QUEUED_PER_WORKER: usize = 2;
/// How often a wait for results looks at the abort flag.
const POLL: Duration = Duration::from_millis(50);

/// Why a chunk failed its check.
#[derive(Debug, thiserror::Error)]
pub(super) enum ChunkProblem {
    #[error("missing")]
    Missing,
    #[error("corrupt: {0}")]
    Corrupt(#[source] BlobError),
    #[error("corrupt: {0}")]
    Oversized(#[source] ChunkStoreError),
    #[error("unreadable: {0}")]
    Unreadable(#[source] ChunkStoreError),
    #[error("its check panicked")]
    Panicked,
}

/// The result of checking one chunk.
#[derive(Debug)]
pub(super) struct Checked {
    pub(super) digest: Digest,
    /// Bytes read from the chunk file.
    pub(super) read_bytes: u64,
    /// The chunk's plain size, or what is wrong with it.
    pub(super) outcome: Result<u64, ChunkProblem>,
    /// For a corrupt chunk: where it was moved aside, or why it could not be.
    pub(super) renamed: Option<Result<PathBuf, ChunkStoreError>>,
}

/// Reads, decodes and hashes one chunk; renames it aside if it is corrupt.
fn check_chunk(chunks: &ChunkStore, digest: &Digest) -> Checked {
    let checked = |read_bytes, outcome, renamed| Checked {
        digest: *digest,
        read_bytes,
        outcome,
        renamed,
    };
    let encoded = match chunks.read(digest) {
        Ok(encoded) => encoded,
        Err(ChunkStoreError::NotFound { .. }) => {
            return checked(0, Err(ChunkProblem::Missing), None);
        }
        Err(err @ ChunkStoreError::TooLarge { .. }) => {
            let renamed = Some(chunks.rename_bad(digest));
            return checked(0, Err(ChunkProblem::Oversized(err)), renamed);
        }
        Err(err) => return checked(0, Err(ChunkProblem::Unreadable(err)), None),
    };
    let read_bytes = encoded.len() as u64;
    match blob::verify(&encoded, digest, MAX_CHUNK_SIZE) {
        Ok(size) => checked(read_bytes, Ok(size), None),
        Err(err) => {
            let renamed = Some(chunks.rename_bad(digest));
            checked(read_bytes, Err(ChunkProblem::Corrupt(err)), renamed)
        }
    }
}

/// A worker: checks chunks from `jobs` until the queue closes, the results are no longer
/// wanted, or the job is aborted.
pub(super) fn worker(
    chunks: &ChunkStore,
    jobs: &Arc<Mutex<Receiver<Digest>>>,
    results: SyncSender<Checked>,
    abort: &AtomicBool,
) {
    loop {
        // The lock only hands out the next digest; a poisoned one still holds a receiver.
        let next = jobs.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(digest) = next else { return };
        if abort.load(Ordering::Relaxed) {
            return;
        }
        // A panic must not leave the job waiting for a result that never comes.
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            check_chunk(chunks, &digest)
        }))
        .unwrap_or(Checked {
            digest,
            read_bytes: 0,
            outcome: Err(ChunkProblem::Panicked),
            renamed: None,
        });
        if results.send(checked).is_err() {
            return;
        }
    }
}

/// The job's end of the worker channels.
pub(super) struct Pool<'a> {
    jobs: SyncSender<Digest>,
    results: Receiver<Checked>,
    /// Chunks queued or being checked whose results have not been taken.
    pending: usize,
    abort: &'a AtomicBool,
}

impl<'a> Pool<'a> {
    pub(super) fn new(
        jobs: SyncSender<Digest>,
        results: Receiver<Checked>,
        abort: &'a AtomicBool,
    ) -> Self {
        Self {
            jobs,
            results,
            pending: 0,
            abort,
        }
    }

    fn check_abort(&self) -> Result<(), VerifyError> {
        if self.abort.load(Ordering::Relaxed) {
            Err(VerifyError::Aborted)
        } else {
            Ok(())
        }
    }

    /// Queues a chunk for checking. While the queue is full, hands results to `done`.
    pub(super) fn submit(
        &mut self,
        digest: Digest,
        done: &mut impl FnMut(Checked),
    ) -> Result<(), VerifyError> {
        let mut digest = digest;
        loop {
            self.check_abort()?;
            match self.jobs.try_send(digest) {
                Ok(()) => {
                    self.pending += 1;
                    return Ok(());
                }
                Err(TrySendError::Full(back)) => {
                    digest = back;
                    self.take_one(done)?;
                }
                Err(TrySendError::Disconnected(_)) => return Err(VerifyError::WorkersGone),
            }
        }
    }

    /// Waits for every queued chunk and hands each result to `done`.
    pub(super) fn drain(&mut self, done: &mut impl FnMut(Checked)) -> Result<(), VerifyError> {
        while self.pending > 0 {
            self.take_one(done)?;
        }
        Ok(())
    }

    fn take_one(&mut self, done: &mut impl FnMut(Checked)) -> Result<(), VerifyError> {
        loop {
            self.check_abort()?;
            match self.results.recv_timeout(POLL) {
                Ok(checked) => {
                    self.pending -= 1;
                    done(checked);
                    return Ok(());
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.check_abort()?;
                    return Err(VerifyError::WorkersGone);
                }
            }
        }
    }
}
