//! Server-side ingestion of an archive stream: body -> chunker -> (zero check, SHA-256,
//! dedup, zstd, store) on worker threads -> dynamic index.
//!
//! The chunker runs on the connection's task (it is cheap and keeps the body in order);
//! hashing, compressing and writing run on blocking workers, at most [`inflight_limit`]
//! chunks at a time, so memory stays bounded by that many maximum-size chunks whatever
//! the archive size. Results are taken in stream order, so the index is written in order
//! by its own blocking task. An error anywhere drops the index writer, which removes its
//! temp file: a failed upload leaves no index behind.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;
use datastore::chunker::{Chunker, ChunkerParams};
use datastore::digest::{Digest, ZeroDigests};
use datastore::index::{DynamicIndexWriter, IndexStats};
use datastore::ingest::{StoredChunk, store_chunk};
use datastore::store::DataStore;
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::ApiError;

/// Where and how one archive is stored.
pub struct IngestTarget {
    pub store: Arc<DataStore>,
    pub chunker: ChunkerParams,
    pub zeros: Arc<ZeroDigests>,
    pub index_path: PathBuf,
}

/// What one archive upload did.
#[derive(Debug, Clone, Default)]
pub struct IngestStats {
    pub index: Option<IndexStats>,
    pub new_chunks: u64,
    pub bytes_received: u64,
    pub bytes_stored: u64,
}

/// Chunks processed at once per upload: one per core, plus one being handed over.
pub fn inflight_limit() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        + 1
}

enum IndexMsg {
    Entry(u64, Digest),
    Close,
}

/// Reads `body` to its end and stores it as chunks plus a dynamic index.
pub async fn ingest(
    mut body: Incoming,
    target: IngestTarget,
    received_counter: &AtomicU64,
) -> Result<IngestStats, ApiError> {
    let (index_tx, index_rx) = mpsc::channel(4096);
    let index_task = spawn_index_writer(target.index_path.clone(), index_rx);
    let mut pipeline = Pipeline::new(&target, index_tx);
    let mut chunker = Chunker::new(target.chunker);
    let mut pending = BytesMut::new();

    let result: Result<(), ApiError> = async {
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|e| ApiError::bad_request(format!("archive stream broken: {e}")))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            received_counter.fetch_add(data.len() as u64, Ordering::Relaxed);
            pipeline.stats.bytes_received += data.len() as u64;
            let mut rest = &data[..];
            while !rest.is_empty() {
                match chunker.scan(rest) {
                    Some(n) => {
                        pending.extend_from_slice(&rest[..n]);
                        pipeline.submit(pending.split().freeze()).await?;
                        rest = &rest[n..];
                    }
                    None => {
                        pending.extend_from_slice(rest);
                        rest = &[];
                    }
                }
            }
        }
        if !pending.is_empty() {
            pipeline.submit(pending.split().freeze()).await?;
        }
        pipeline.drain().await
    }
    .await;

    let Pipeline {
        index_tx,
        mut stats,
        ..
    } = pipeline;
    if result.is_ok() {
        // A send error means the writer failed; its own error is reported below.
        let _ = index_tx.send(IndexMsg::Close).await;
    }
    drop(index_tx);
    let written = index_task
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("index writer failed: {e}")))?;
    result?;
    let index = written.map_err(ApiError::Internal)?;
    let store = Arc::clone(target.store.chunk_store());
    tokio::task::spawn_blocking(move || store.sync_dirty_dirs())
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("sync failed: {e}")))?
        .map_err(|e| ApiError::Internal(e.into()))?;
    if index.size != stats.bytes_received {
        return Err(ApiError::Internal(anyhow::anyhow!(
            "index covers {} bytes but {} were received",
            index.size,
            stats.bytes_received
        )));
    }
    stats.index = Some(index);
    Ok(stats)
}

/// Chunks in flight and the running index offset.
struct Pipeline<'a> {
    target: &'a IngestTarget,
    inflight:
        FuturesOrdered<JoinHandle<Result<StoredChunk, datastore::chunk_store::ChunkStoreError>>>,
    limit: usize,
    offset: u64,
    index_tx: mpsc::Sender<IndexMsg>,
    stats: IngestStats,
}

impl<'a> Pipeline<'a> {
    fn new(target: &'a IngestTarget, index_tx: mpsc::Sender<IndexMsg>) -> Self {
        Self {
            target,
            inflight: FuturesOrdered::new(),
            limit: inflight_limit(),
            offset: 0,
            index_tx,
            stats: IngestStats::default(),
        }
    }

    async fn submit(&mut self, chunk: bytes::Bytes) -> Result<(), ApiError> {
        while self.inflight.len() >= self.limit {
            self.complete_one().await?;
        }
        let store = Arc::clone(self.target.store.chunk_store());
        let zeros = Arc::clone(&self.target.zeros);
        self.inflight
            .push_back(tokio::task::spawn_blocking(move || {
                store_chunk(&store, &chunk, &zeros)
            }));
        Ok(())
    }

    async fn drain(&mut self) -> Result<(), ApiError> {
        while !self.inflight.is_empty() {
            self.complete_one().await?;
        }
        Ok(())
    }

    async fn complete_one(&mut self) -> Result<(), ApiError> {
        let Some(joined) = self.inflight.next().await else {
            return Ok(());
        };
        let stored = joined
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("chunk worker failed: {e}")))?
            .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("storing chunk")))?;
        self.offset += stored.size;
        if stored.new {
            self.stats.new_chunks += 1;
            self.stats.bytes_stored += stored.stored_bytes;
        }
        self.index_tx
            .send(IndexMsg::Entry(self.offset, stored.digest))
            .await
            .map_err(|_| ApiError::Internal(anyhow::anyhow!("index writer stopped")))
    }
}

fn spawn_index_writer(
    path: PathBuf,
    mut rx: mpsc::Receiver<IndexMsg>,
) -> JoinHandle<anyhow::Result<IndexStats>> {
    tokio::task::spawn_blocking(move || {
        use anyhow::Context;
        let mut writer = DynamicIndexWriter::create(&path)
            .with_context(|| format!("creating index {}", path.display()))?;
        while let Some(msg) = rx.blocking_recv() {
            match msg {
                IndexMsg::Entry(end, digest) => writer.push(end, &digest)?,
                IndexMsg::Close => {
                    return writer
                        .close()
                        .with_context(|| format!("closing index {}", path.display()));
                }
            }
        }
        anyhow::bail!("archive upload ended without completing; index discarded")
    })
}
