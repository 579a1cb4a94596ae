//! Chunked upload mode: the client cuts the archive stream with the datastore's chunker,
//! hashes every chunk, and uploads only the chunks that neither the parent snapshot's index
//! nor this archive has sent already; every other chunk is appended by digest alone.
//!
//! One pipeline per archive, stages joined so that the first error stops all of them
//! (RELIABILITY.md: no worker blocks on a pool whose peers have exited):
//!
//! ```text
//! encoder body -> chunker -> job on a blocking worker (ordered; at most one per core):
//!                              hash; not in the parent index: compress, drop the plain bytes
//!              -> known? (in archive order)
//!                   yes: append by digest
//!                   no:  upload (at most UPLOAD_SLOTS, UPLOAD_BUDGET bytes in all)
//!              -> append in archive order, in batches -> close (count, size, checksum)
//! ```
//!
//! Memory is bounded whatever the archive size: at most `cores` chunk jobs run, each
//! pipeline keeps at most `cores` finished ones in order and [`HASHED_QUEUE`] waiting for the
//! known check, and [`UPLOAD_SLOTS`] uploads of at most [`UPLOAD_BUDGET`] bytes in all are
//! being sent. A new chunk's plain bytes are dropped as soon as it is compressed, so every
//! stage after the job holds only the compressed body. The pipelines of one backup (a split
//! archive's metadata and payload run at once) share one [`Limits`]: the jobs and uploads
//! bound is per backup, not per pipeline. A chunk's
//! buffer is moved from stage to stage, never shared for writing.
//!
//! This module decides what to send; [`target`] says how (the session's requests, with
//! retries) or counts instead (dry run). It must not read the file system: the archive
//! comes from the encoder thread as an HTTP body whose end carries the encoder's result.

pub mod dry_run;
pub mod previous;
pub mod target;

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use datastore::blob::ChunkBuf;
use datastore::chunker::{Chunker, ChunkerParams};
use datastore::digest::{Digest, ZeroDigests, is_all_zero};
use datastore::index::IndexChecksum;
use futures_util::stream::FuturesOrdered;
use futures_util::{Stream, StreamExt};
use protocol::types::AppendChunk;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::upload::{EncoderStream, Piece};
pub use target::Target;

/// Encoded chunk bytes in flight at once, per backup (a chunk larger than this goes alone).
/// An upload is answered once the server has hashed the chunk and written and fsynced its
/// file, 8-10 ms for 4 MiB here: 16 MiB in flight keeps up with the client hashing random
/// data at 1.5 GB/s, where two uploads at a time left a core idle a quarter of the time
/// (corpus b first backup, cold, alternating: 3.74-4.17 s against 3.98-4.69 s, for 3-6 MiB
/// more client and 5-8 more server RSS). Compressible data is produced more slowly than it
/// is sent, so it rarely has more than two in flight.
pub const UPLOAD_BUDGET: usize = 16 << 20;
/// Chunk uploads in flight at once, whatever their size: small blobs (a metadata stream's)
/// would otherwise send dozens at once, which the server holds in its HTTP/2 buffers
/// until it has a worker for them (corpus a's first backup with 1 MiB metadata chunks:
/// server peak RSS 41 MiB without this bound, 35 with it, 31 with two uploads at a time).
pub const UPLOAD_SLOTS: usize = 4;
/// [`UPLOAD_BUDGET`] counts in units of this many bytes (semaphore permits).
const BUDGET_UNIT: usize = 1024;
/// Hashed chunks waiting for the known check.
const HASHED_QUEUE: usize = 1;
/// Chunks waiting to be appended (their data is gone or held by an upload).
const APPEND_QUEUE: usize = 256;
/// Chunks per append request.
const APPEND_BATCH: usize = 128;

/// Chunk jobs of an archive that wait for a worker, besides those running: the jobs are
/// passed on in archive order, so without one waiting a worker sat idle behind an oldest
/// job that was slow (a chunk that compresses, next to one that does not). Corpus b's first
/// backup (four alternating pairs, cold cache) took 3.44-3.72 s with none and 3.13-3.48 s
/// with one, for 3-8 MiB more client RSS; two were no quicker.
const JOBS_WAITING: usize = 1;

/// One CPU-bound worker per core.
pub fn workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// What the pipeline knows before it starts: the chunker and the parent's chunks.
pub struct ChunkedPlan {
    pub params: ChunkerParams,
    /// Digests of the parent snapshot's index of this archive (empty without a parent).
    pub parent: HashSet<Digest>,
    pub zeros: Arc<ZeroDigests>,
    /// Shared with the other pipelines of the same backup.
    pub limits: Limits,
}

/// The bounds on work in flight that the pipelines of one backup share.
#[derive(Clone)]
pub struct Limits {
    /// Chunk jobs (hash, compress) running: one per core.
    jobs: Arc<Semaphore>,
    /// Encoded bytes of chunk uploads in flight, in [`BUDGET_UNIT`]s.
    uploads: Arc<Semaphore>,
    /// Chunk uploads in flight.
    upload_slots: Arc<Semaphore>,
}

impl Limits {
    pub fn new() -> Self {
        Self {
            jobs: Arc::new(Semaphore::new(workers())),
            uploads: Arc::new(Semaphore::new(UPLOAD_BUDGET / BUDGET_UNIT)),
            upload_slots: Arc::new(Semaphore::new(UPLOAD_SLOTS)),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::new()
    }
}

/// What one chunked archive did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkedOutcome {
    /// Archive bytes.
    pub size: u64,
    pub chunks: u64,
    /// Chunks appended by digest because the parent index holds them.
    pub reused_chunks: u64,
    /// Chunks appended by digest because this archive sent them before.
    pub repeated_chunks: u64,
    /// Chunks sent (or, in a dry run, that would be sent).
    pub uploaded_chunks: u64,
    /// Plain bytes of the chunks sent.
    pub uploaded_plain: u64,
    /// Encoded bytes sent as chunk bodies (0 in a dry run).
    pub uploaded_encoded: u64,
    /// Chunks the server stored as new, and their encoded bytes.
    pub new_chunks: u64,
    pub bytes_stored: u64,
    /// Index checksum over every (end, digest) entry.
    pub csum: Digest,
}

/// A chunk with its name, and what the job left of its bytes.
struct Hashed {
    digest: Digest,
    size: u64,
    body: ChunkBody,
}

/// What a chunk job keeps of a chunk's bytes.
enum ChunkBody {
    /// A chunk of the previous payload re-used whole: the encoder named it, nothing was
    /// hashed, there is nothing to send.
    Reused,
    /// The parent index holds it (or the target sends nothing): the bytes are dropped.
    Dropped,
    /// Not in the parent index: the encoded blob to upload.
    Encoded(Bytes),
}

/// One index entry, in archive order, once its chunk is safe to append.
enum Pending {
    /// Known chunk: nothing to send.
    Known {
        digest: Digest,
        size: u64,
        from_parent: bool,
    },
    /// New chunk: append once its upload has been answered.
    Upload(AbortOnDrop<Result<target::Uploaded>>),
}

/// Runs the pipeline over the archive stream `body` into `target` and returns what was
/// done. The caller closes the index (a session target) with the outcome's count, size
/// and checksum.
pub async fn upload_archive(
    body: EncoderStream,
    plan: ChunkedPlan,
    target: Target,
) -> Result<ChunkedOutcome> {
    upload_pieces(body.map(|item| item.map(Piece::Data)), plan, target).await
}

/// `upload_archive` over a stream of pieces: bytes are cut by the chunker, re-used chunks
/// (which must be in the parent index) are appended as they are, the chunker cut before
/// them and restarted after them.
pub async fn upload_pieces(
    body: impl Stream<Item = Result<Piece, String>> + Send + Unpin,
    plan: ChunkedPlan,
    target: Target,
) -> Result<ChunkedOutcome> {
    let (hashed_tx, hashed_rx) = mpsc::channel(HASHED_QUEUE);
    let (pending_tx, pending_rx) = mpsc::channel(APPEND_QUEUE);
    let ChunkedPlan {
        params,
        parent,
        zeros,
        limits,
    } = plan;
    let parent = Arc::new(parent);
    let jobs = ChunkJobs {
        zeros,
        parent: Arc::clone(&parent),
        encode: target.wants_bodies(),
        limit: Arc::clone(&limits.jobs),
    };
    let chunking = chunk_and_hash(body, params, jobs, hashed_tx);
    let dispatching = dispatch(hashed_rx, parent, target.clone(), limits, pending_tx);
    let appending = append_in_order(pending_rx, target);
    let ((), (), outcome) = tokio::try_join!(chunking, dispatching, appending)?;
    Ok(outcome)
}

/// What a chunk job needs besides the chunk.
struct ChunkJobs {
    zeros: Arc<ZeroDigests>,
    parent: Arc<HashSet<Digest>>,
    /// Whether new chunks are compressed (the target sends bodies).
    encode: bool,
    /// Jobs running in this backup.
    limit: Arc<Semaphore>,
}

impl ChunkJobs {
    /// Starts the job of one chunk on a blocking worker once a slot is free.
    async fn start(&self, data: ChunkBuf) -> Result<HashJob> {
        let permit = Arc::clone(&self.limit)
            .acquire_owned()
            .await
            .context("chunk jobs closed")?;
        let zeros = Arc::clone(&self.zeros);
        let parent = Arc::clone(&self.parent);
        let encode = self.encode;
        Ok(AbortOnDrop(tokio::task::spawn_blocking(move || {
            let hashed = chunk_job(data, &zeros, &parent, encode);
            drop(permit);
            hashed
        })))
    }
}

/// Stage 1: cuts the body into chunks and runs their jobs on blocking workers, passing them
/// on in archive order; re-used chunks pass as they are, in their place.
async fn chunk_and_hash(
    mut body: impl Stream<Item = Result<Piece, String>> + Unpin,
    params: ChunkerParams,
    jobs: ChunkJobs,
    tx: mpsc::Sender<Hashed>,
) -> Result<()> {
    let mut chunker = Chunker::new(params);
    // The current chunk's bytes, copied out of the encoder's blocks so that each block is
    // freed as soon as it is cut (a block shared by chunks in different jobs would live until
    // the last of them ends), into a buffer that becomes the raw blob if it does not compress.
    let new_chunk = || ChunkBuf::new(params.avg * 2);
    let mut pending = new_chunk();
    let mut hashing = FuturesOrdered::new();
    let limit = workers() + JOBS_WAITING;
    let submit = async |chunk: ChunkBuf, hashing: &mut FuturesOrdered<_>| -> Result<()> {
        while hashing.len() >= limit {
            forward(hashing, &tx).await?;
        }
        hashing.push_back(jobs.start(chunk).await?);
        Ok(())
    };
    while let Some(piece) = body.next().await {
        let piece = piece.map_err(|e| anyhow!("the archive stream failed: {e}"))?;
        let data = match piece {
            Piece::Data(data) => data,
            Piece::Reuse(chunks) => {
                if !pending.is_empty() {
                    submit(std::mem::replace(&mut pending, new_chunk()), &mut hashing).await?;
                }
                while !hashing.is_empty() {
                    forward(&mut hashing, &tx).await?;
                }
                chunker = Chunker::new(params);
                for chunk in chunks {
                    let reused = Hashed {
                        digest: chunk.digest,
                        size: chunk.size,
                        body: ChunkBody::Reused,
                    };
                    tx.send(reused)
                        .await
                        .map_err(|_| anyhow!("the upload pipeline stopped"))?;
                }
                continue;
            }
        };
        let mut at = 0;
        while let Some(n) = chunker.scan(&data[at..]) {
            pending.extend_from_slice(&data[at..at + n]);
            submit(std::mem::replace(&mut pending, new_chunk()), &mut hashing).await?;
            at += n;
        }
        pending.extend_from_slice(&data[at..]);
    }
    if !pending.is_empty() {
        submit(pending, &mut hashing).await?;
    }
    while !hashing.is_empty() {
        forward(&mut hashing, &tx).await?;
    }
    Ok(())
}

type HashJob = AbortOnDrop<Hashed>;

/// Passes the oldest hashed chunk on.
async fn forward(hashing: &mut FuturesOrdered<HashJob>, tx: &mpsc::Sender<Hashed>) -> Result<()> {
    if let Some(hashed) = hashing.next().await {
        tx.send(hashed?)
            .await
            .map_err(|_| anyhow!("the upload pipeline stopped"))?;
    }
    Ok(())
}

/// The job of one chunk: its digest (all-zero chunks take theirs from the table instead of
/// hashing) and, unless the parent index holds it or `encode` is off, its blob. The plain
/// bytes are dropped here (their buffer goes back to the pool, or is the raw blob). A chunk
/// that repeats within the archive is compressed again (rare; the dispatcher sends it once).
fn chunk_job(
    chunk: ChunkBuf,
    zeros: &ZeroDigests,
    parent: &HashSet<Digest>,
    encode: bool,
) -> Hashed {
    let size = chunk.len();
    let digest = if is_all_zero(chunk.data()) {
        zeros.digest(size)
    } else {
        Digest::of(chunk.data())
    };
    let body = if encode && !parent.contains(&digest) {
        ChunkBody::Encoded(datastore::pool::into_bytes(target::encode_chunk(chunk)))
    } else {
        ChunkBody::Dropped
    };
    Hashed {
        digest,
        size: size as u64,
        body,
    }
}

/// Stage 2: in archive order, decides for each chunk whether it is known (append by digest)
/// or new (start its upload). A chunk that repeats within the archive is sent once: its
/// later appends come after the first one's, which waits for the upload's answer.
async fn dispatch(
    mut rx: mpsc::Receiver<Hashed>,
    parent: Arc<HashSet<Digest>>,
    target: Target,
    limits: Limits,
    tx: mpsc::Sender<Pending>,
) -> Result<()> {
    let mut sent: HashSet<Digest> = HashSet::new();
    while let Some(Hashed { digest, size, body }) = rx.recv().await {
        let in_parent = parent.contains(&digest);
        let pending = match body {
            ChunkBody::Reused if in_parent => Pending::Known {
                digest,
                size,
                from_parent: true,
            },
            ChunkBody::Reused => bail!("re-used chunk {digest} is not in the parent index"),
            _ if in_parent || sent.contains(&digest) => Pending::Known {
                digest,
                size,
                from_parent: in_parent,
            },
            ChunkBody::Dropped if target.wants_bodies() => {
                bail!("new chunk {digest} reached the upload without its blob")
            }
            ChunkBody::Dropped | ChunkBody::Encoded(_) => {
                // A dry run sends nothing and wants no blob.
                let encoded = match body {
                    ChunkBody::Encoded(encoded) => encoded,
                    _ => Bytes::new(),
                };
                sent.insert(digest);
                let units = encoded
                    .len()
                    .div_ceil(BUDGET_UNIT)
                    .clamp(1, UPLOAD_BUDGET / BUDGET_UNIT);
                let slot = Arc::clone(&limits.upload_slots)
                    .acquire_owned()
                    .await
                    .context("upload window closed")?;
                let permit = Arc::clone(&limits.uploads)
                    .acquire_many_owned(units as u32)
                    .await
                    .context("upload window closed")?;
                let target = target.clone();
                Pending::Upload(AbortOnDrop(tokio::spawn(async move {
                    let uploaded = target.upload(digest, size, encoded).await;
                    drop((slot, permit));
                    uploaded
                })))
            }
        };
        tx.send(pending)
            .await
            .map_err(|_| anyhow!("the upload pipeline stopped"))?;
    }
    Ok(())
}

/// Stage 3: appends the chunks in archive order, each new one after its upload was answered.
async fn append_in_order(
    mut rx: mpsc::Receiver<Pending>,
    target: Target,
) -> Result<ChunkedOutcome> {
    let mut outcome = ChunkedOutcome {
        size: 0,
        chunks: 0,
        reused_chunks: 0,
        repeated_chunks: 0,
        uploaded_chunks: 0,
        uploaded_plain: 0,
        uploaded_encoded: 0,
        new_chunks: 0,
        bytes_stored: 0,
        csum: Digest([0; 32]),
    };
    let mut csum = IndexChecksum::new();
    let mut batch = Vec::with_capacity(APPEND_BATCH);
    while let Some(pending) = rx.recv().await {
        let (digest, size) = match pending {
            Pending::Known {
                digest,
                size,
                from_parent,
            } => {
                if from_parent {
                    outcome.reused_chunks += 1;
                } else {
                    outcome.repeated_chunks += 1;
                }
                (digest, size)
            }
            Pending::Upload(job) => {
                let uploaded = job.await??;
                outcome.uploaded_chunks += 1;
                outcome.uploaded_plain += uploaded.size;
                outcome.uploaded_encoded += uploaded.encoded_size;
                if uploaded.new {
                    outcome.new_chunks += 1;
                    outcome.bytes_stored += uploaded.bytes_stored;
                }
                (uploaded.digest, uploaded.size)
            }
        };
        outcome.size += size;
        outcome.chunks += 1;
        csum.add(outcome.size, &digest);
        batch.push(AppendChunk {
            digest: digest.to_hex(),
            size,
        });
        if batch.len() >= APPEND_BATCH {
            target.append(std::mem::take(&mut batch)).await?;
        }
    }
    if !batch.is_empty() {
        target.append(batch).await?;
    }
    outcome.csum = csum.finish();
    Ok(outcome)
}

/// A spawned task that is aborted when its handle is dropped: when the pipeline stops on an
/// error, no hashing or upload goes on behind it.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> std::future::Future for AbortOnDrop<T> {
    type Output = Result<T>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|joined| joined.map_err(|e| anyhow!("pipeline worker failed: {e}")))
    }
}

#[cfg(test)]
mod tests;
