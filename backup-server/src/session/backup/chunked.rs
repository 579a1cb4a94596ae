//! Chunked mode of a backup session: the client chunks and hashes, downloads the parent's
//! index to learn which chunks it may reuse, uploads only new chunks (checked here before
//! they are stored), appends chunks to an index by digest and closes it with its own count,
//! size and checksum, which must equal the server's.
//!
//! Concurrency: chunk uploads of one session run at once (HTTP/2 streams). They share only
//! the known-chunk map (a short `std` lock, never held across an await) and a semaphore
//! that bounds how many chunk bodies are held in memory. Each open index has its own async
//! lock, taken by appends and the close; its blocking writes run on worker threads.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use datastore::digest::Digest;
use datastore::index::{DynamicIndex, DynamicIndexWriter};
use datastore::ingest::{UploadError, store_uploaded_chunk};
use datastore::manifest::ManifestFile;
use datastore::snapshot::SnapshotRef;
use datastore::store::DataStore;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use protocol::routes::PREVIOUS_SNAPSHOT_HEADER;
use protocol::types::{
    ArchiveUploadParams, ArchiveUploadResponse, ChunkUploadParams, ChunkUploaded, IndexAppend,
    IndexCloseParams, IndexCreated, IndexParams,
};

use super::known_chunks::{AppendState, KnownChunks};
use super::{BackupSession, index_file_name};
use crate::error::{ApiError, ApiResult, json_response};
use crate::http_util::{blocking, parse_query, read_body_exact, read_json};

/// Indexes one session may have open at once.
const MAX_OPEN_INDEXES: usize = 64;

/// The chunked-mode state of one session.
pub(super) struct ChunkedState {
    known: Mutex<KnownChunks>,
    indexes: Mutex<HashMap<u64, Arc<OpenIndex>>>,
    next_wid: AtomicU64,
    /// Chunk bodies read and checked at once; the rest wait in HTTP/2 flow control.
    uploads: tokio::sync::Semaphore,
    /// One permit per index that may be open ([`MAX_OPEN_INDEXES`]): taken before an index
    /// is created, so that requests running at once cannot open more between check and
    /// insert.
    index_slots: Arc<tokio::sync::Semaphore>,
}

/// An index being written.
struct OpenIndex {
    archive_name: String,
    file_name: String,
    writer: tokio::sync::Mutex<IndexWriterState>,
    uploads: UploadCounters,
    /// Given back when the index leaves the open set.
    _slot: tokio::sync::OwnedSemaphorePermit,
}

struct IndexWriterState {
    /// `None` once the writer failed or was closed.
    writer: Option<DynamicIndexWriter>,
    appended: AppendState,
}

/// Chunk uploads that named one index.
#[derive(Default)]
struct UploadCounters {
    bytes_received: AtomicU64,
    new_chunks: AtomicU64,
    bytes_stored: AtomicU64,
}

impl ChunkedState {
    pub(super) fn new() -> Self {
        Self {
            known: Mutex::new(KnownChunks::default()),
            indexes: Mutex::new(HashMap::new()),
            next_wid: AtomicU64::new(1),
            uploads: tokio::sync::Semaphore::new(2 * crate::ingest::inflight_limit()),
            index_slots: Arc::new(tokio::sync::Semaphore::new(MAX_OPEN_INDEXES)),
        }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, KnownChunks> {
        // Plain data: a panic elsewhere cannot leave it half-updated.
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn indexes(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<OpenIndex>>> {
        self.indexes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn open_index(&self, wid: u64) -> ApiResult<Arc<OpenIndex>> {
        self.indexes().get(&wid).cloned().ok_or_else(|| {
            ApiError::bad_request(format!("no open index with wid {wid} in this session"))
        })
    }

    /// Archives whose index is still open, as `NAME.tar (wid N)`.
    pub(super) fn still_open(&self) -> Vec<String> {
        let mut open: Vec<String> = self
            .indexes()
            .iter()
            .map(|(wid, index)| format!("{} (wid {wid})", index.archive_name))
            .collect();
        open.sort();
        open
    }

    /// Drops every open index writer: their temp files are removed.
    pub(super) fn drop_writers(&self) {
        let dropped: Vec<Arc<OpenIndex>> = self.indexes().drain().map(|(_, i)| i).collect();
        drop(dropped);
    }
}

/// What the parent lookup found, decided on a worker thread.
enum ParentLookup {
    NoParent,
    NoArchive {
        parent: SnapshotRef,
    },
    Damaged {
        parent: SnapshotRef,
        reason: String,
    },
    MissingChunks {
        parent: SnapshotRef,
        missing: Vec<Digest>,
        distinct: usize,
    },
    Found {
        parent: SnapshotRef,
        bytes: Vec<u8>,
        /// (digest, plain size) of every entry.
        chunks: Vec<(Digest, u64)>,
    },
}

/// Finds the parent of `snapshot`, reads its index `file_name`, checks it against the
/// parent's manifest and touches its chunks. Blocking.
fn lookup_parent(
    store: &DataStore,
    snapshot: &SnapshotRef,
    file_name: &str,
) -> anyhow::Result<ParentLookup> {
    let Some((parent, manifest)) = store.parent_snapshot(&snapshot.group, snapshot.time)? else {
        return Ok(ParentLookup::NoParent);
    };
    let Some(recorded) = manifest.file(file_name) else {
        return Ok(ParentLookup::NoArchive { parent });
    };
    let path = store.snapshot_file_path(&parent, file_name)?;
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Ok(ParentLookup::NoArchive { parent });
        }
        Err(err) => return Err(anyhow::Error::new(err).context(format!("reading {file_name}"))),
    };
    let index = match DynamicIndex::decode(&bytes) {
        Ok(index) => index,
        Err(err) => {
            return Ok(ParentLookup::Damaged {
                parent,
                reason: err.to_string(),
            });
        }
    };
    if index.csum.to_hex() != recorded.csum || index.size() != recorded.size {
        return Ok(ParentLookup::Damaged {
            parent,
            reason: format!(
                "the index has size {} and checksum {}, the manifest records {} and {}",
                index.size(),
                index.csum,
                recorded.size,
                recorded.csum
            ),
        });
    }
    let mut seen = HashSet::with_capacity(index.entries.len());
    let distinct: Vec<&Digest> = index
        .entries
        .iter()
        .map(|e| &e.digest)
        .filter(|d| seen.insert(**d))
        .collect();
    let missing = store.chunk_store().touch_all(distinct.iter().copied())?;
    if !missing.is_empty() {
        return Ok(ParentLookup::MissingChunks {
            parent,
            missing,
            distinct: distinct.len(),
        });
    }
    let chunks = (0..index.entries.len())
        .map(|i| {
            let range = index.chunk_range(i);
            (index.entries[i].digest, range.end - range.start)
        })
        .collect();
    Ok(ParentLookup::Found {
        parent,
        bytes,
        chunks,
    })
}

impl BackupSession {
    /// `GET /previous-index`: the parent's index of an archive, whose chunks the session
    /// then accepts in appends.
    pub(super) async fn previous_index(
        &self,
        req: Request<Incoming>,
    ) -> ApiResult<Response<Full<Bytes>>> {
        let params: ArchiveUploadParams = parse_query(req.uri().query())?;
        let file_name = index_file_name(&params.archive_name)?;
        let store = Arc::clone(&self.open.store);
        let snapshot = self.snapshot.clone();
        let lookup = blocking(move || lookup_parent(&store, &snapshot, &file_name)).await?;
        let archive = &params.archive_name;
        let (parent, bytes, chunks) = match lookup {
            ParentLookup::NoParent => {
                return Err(ApiError::NotFound(format!(
                    "group {} has no finished snapshot to reuse chunks from",
                    self.snapshot.group
                )));
            }
            ParentLookup::NoArchive { parent } => {
                return Err(ApiError::NotFound(format!(
                    "the previous snapshot {parent} has no archive {archive}"
                )));
            }
            ParentLookup::Damaged { parent, reason } => {
                let message = format!(
                    "the index of {archive} in the previous snapshot {parent} is damaged \
                     ({reason}): upload every chunk"
                );
                self.task.log(&message);
                return Err(ApiError::NotFound(message));
            }
            ParentLookup::MissingChunks {
                parent,
                missing,
                distinct,
            } => {
                let message = format!(
                    "the previous snapshot {parent} is unusable as a parent of {archive}: \
                     {} of its {distinct} chunks are missing from the store (first: {}); \
                     upload every chunk",
                    missing.len(),
                    missing[0]
                );
                self.task.log(&message);
                return Err(ApiError::NotFound(message));
            }
            ParentLookup::Found {
                parent,
                bytes,
                chunks,
            } => (parent, bytes, chunks),
        };
        let count = chunks.len();
        {
            let mut known = self.chunked.known();
            for (digest, size) in chunks {
                known.register_parent(digest, size);
            }
        }
        self.task.log(format!(
            "previous index of {archive}: {count} chunks of {parent} may be reused"
        ));
        Response::builder()
            .header(hyper::header::CONTENT_TYPE, "application/octet-stream")
            .header(PREVIOUS_SNAPSHOT_HEADER, parent.to_string())
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| ApiError::Internal(e.into()))
    }

    /// `POST /index`: opens an index writer for an archive.
    pub(super) async fn create_index(
        &self,
        req: Request<Incoming>,
    ) -> ApiResult<Response<Full<Bytes>>> {
        let params: ArchiveUploadParams = parse_query(req.uri().query())?;
        let file_name = index_file_name(&params.archive_name)?;
        let slot = Arc::clone(&self.chunked.index_slots)
            .try_acquire_owned()
            .map_err(|_| {
                ApiError::bad_request(format!(
                    "this session has {MAX_OPEN_INDEXES} open indexes already: close one first"
                ))
            })?;
        self.reserve(&file_name).await?;
        let path = self
            .open
            .store
            .snapshot_path(&self.snapshot)
            .join(&file_name);
        let created = blocking(move || Ok(DynamicIndexWriter::create(&path)?)).await;
        let writer = match created {
            Ok(writer) => writer,
            Err(err) => {
                self.unreserve(&file_name).await;
                return Err(err);
            }
        };
        let wid = self.chunked.next_wid.fetch_add(1, Ordering::Relaxed);
        let index = OpenIndex {
            archive_name: params.archive_name.clone(),
            file_name,
            writer: tokio::sync::Mutex::new(IndexWriterState {
                writer: Some(writer),
                appended: AppendState::default(),
            }),
            uploads: UploadCounters::default(),
            _slot: slot,
        };
        self.chunked.indexes().insert(wid, Arc::new(index));
        self.task.log(format!(
            "index of {} opened (wid {wid})",
            params.archive_name
        ));
        json_response(&IndexCreated { wid })
    }

    /// `POST /chunk`: stores one uploaded chunk after checking its digest and size.
    pub(super) async fn upload_chunk(
        &self,
        req: Request<Incoming>,
    ) -> ApiResult<Response<Full<Bytes>>> {
        let params: ChunkUploadParams = parse_query(req.uri().query())?;
        let digest: Digest = params
            .digest
            .parse()
            .map_err(|_| ApiError::bad_request("digest must be 64 hex digits"))?;
        let max_size = datastore::blob::MAX_CHUNK_SIZE as u64;
        if params.size == 0 || params.size > max_size {
            return Err(ApiError::bad_request(format!(
                "chunk size {} is not in 1..={max_size}",
                params.size
            )));
        }
        let max_encoded = protocol::limits::MAX_ENCODED_CHUNK as u64;
        if params.encoded_size > max_encoded {
            return Err(ApiError::bad_request(format!(
                "encoded-size {} is larger than the largest chunk blob ({max_encoded})",
                params.encoded_size
            )));
        }
        let index = self.chunked.open_index(params.wid)?;
        let _permit = self
            .chunked
            .uploads
            .acquire()
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
        let body = read_body_exact(
            req.into_body(),
            params.encoded_size as usize,
            &[&self.stats.bytes_received, &index.uploads.bytes_received],
            "chunk body",
        )
        .await?;
        let store = Arc::clone(self.open.store.chunk_store());
        let size = params.size;
        let stored =
            tokio::task::spawn_blocking(move || store_uploaded_chunk(&store, &digest, size, &body))
                .await
                .map_err(|e| ApiError::Internal(anyhow::anyhow!("chunk worker failed: {e}")))?
                .map_err(|e| match e {
                    UploadError::Store(inner) => ApiError::Internal(
                        anyhow::Error::new(inner).context(format!("storing chunk {digest}")),
                    ),
                    refused => ApiError::bad_request(format!("chunk refused: {refused}")),
                })?;
        self.chunked.known().register_upload(digest, stored.size);
        self.stats.chunks_uploaded.fetch_add(1, Ordering::Relaxed);
        if stored.new {
            self.stats.new_chunks.fetch_add(1, Ordering::Relaxed);
            self.stats
                .bytes_stored
                .fetch_add(stored.stored_bytes, Ordering::Relaxed);
            index.uploads.new_chunks.fetch_add(1, Ordering::Relaxed);
            index
                .uploads
                .bytes_stored
                .fetch_add(stored.stored_bytes, Ordering::Relaxed);
        }
        json_response(&ChunkUploaded {
            new: stored.new,
            bytes_stored: stored.stored_bytes,
        })
    }

    /// `PUT /index`: appends known chunks to an open index, all of the batch or nothing.
    pub(super) async fn append_index(
        &self,
        req: Request<Incoming>,
    ) -> ApiResult<Response<Full<Bytes>>> {
        let params: IndexParams = parse_query(req.uri().query())?;
        let batch: IndexAppend = read_json(req.into_body()).await?;
        let index = self.chunked.open_index(params.wid)?;
        let mut state = index.writer.lock().await;
        if state.writer.is_none() {
            return Err(ApiError::bad_request(format!(
                "index {} (wid {}) is not open any more",
                index.archive_name, params.wid
            )));
        }
        let plan = state
            .appended
            .plan(&batch.chunks, &self.chunked.known())
            .map_err(|e| ApiError::bad_request(format!("append refused: {e}")))?;
        if plan.entries.is_empty() {
            return json_response(&serde_json::json!({}));
        }
        let Some(mut writer) = state.writer.take() else {
            return Err(ApiError::Internal(anyhow::anyhow!("index writer vanished")));
        };
        let entries = plan.entries.clone();
        let pushed = blocking(move || {
            for entry in &entries {
                writer.push(entry.end, &entry.digest)?;
            }
            Ok(writer)
        })
        .await;
        match pushed {
            Ok(writer) => {
                state.writer = Some(writer);
                state.appended.apply(&plan);
                self.stats
                    .chunks_reused
                    .fetch_add(plan.reused, Ordering::Relaxed);
                json_response(&serde_json::json!({}))
            }
            Err(err) => {
                // The writer is gone with its temp file: this archive cannot be completed.
                drop(state);
                self.fail_index(params.wid, &index).await;
                Err(err)
            }
        }
    }

    /// `POST /index/close`: checks the client's count, size and checksum against the
    /// server's, then makes the index durable and records it for the manifest.
    pub(super) async fn close_index(
        &self,
        req: Request<Incoming>,
    ) -> ApiResult<Response<Full<Bytes>>> {
        let params: IndexCloseParams = parse_query(req.uri().query())?;
        let csum: Digest = params
            .csum
            .parse()
            .map_err(|_| ApiError::bad_request("csum must be 64 hex digits"))?;
        let index = self.chunked.open_index(params.wid)?;
        let mut state = index.writer.lock().await;
        state
            .appended
            .check_close(params.chunk_count, params.size, &csum)
            .map_err(|e| ApiError::bad_request(format!("index {}: {e}", index.archive_name)))?;
        let Some(writer) = state.writer.take() else {
            return Err(ApiError::bad_request(format!(
                "index {} (wid {}) is not open any more",
                index.archive_name, params.wid
            )));
        };
        let reused = state.appended.reused;
        drop(state);
        let store = Arc::clone(self.open.store.chunk_store());
        // The chunks become durable before the index that references them.
        let closed = blocking(move || {
            store.sync_dirty_dirs()?;
            Ok(writer.close()?)
        })
        .await;
        self.chunked.indexes().remove(&params.wid);
        let checked = match closed {
            Ok(stats) if stats.csum == csum && stats.chunks == params.chunk_count => Ok(stats),
            Ok(stats) => Err(ApiError::Internal(anyhow::anyhow!(
                "index {} closed with {} chunks and checksum {}, expected {} and {csum}",
                index.file_name,
                stats.chunks,
                stats.csum,
                params.chunk_count
            ))),
            Err(err) => Err(err),
        };
        let stats = match checked {
            Ok(stats) => stats,
            Err(err) => {
                // The file may have been renamed into place before the check failed: it
                // must not stay in the snapshot without a manifest entry.
                self.discard_index_file(&index.file_name).await;
                self.unreserve(&index.file_name).await;
                return Err(err);
            }
        };
        self.files.lock().await.insert(
            index.file_name.clone(),
            ManifestFile {
                filename: index.file_name.clone(),
                size: stats.size,
                csum: stats.csum.to_hex(),
                chunks: stats.chunks,
            },
        );
        let response = ArchiveUploadResponse {
            size: stats.size,
            chunks: stats.chunks,
            new_chunks: index.uploads.new_chunks.load(Ordering::Relaxed),
            bytes_received: index.uploads.bytes_received.load(Ordering::Relaxed),
            bytes_stored: index.uploads.bytes_stored.load(Ordering::Relaxed),
            csum: stats.csum.to_hex(),
        };
        self.task.log(format!(
            "archive {} (chunked): {} bytes, {} chunks ({reused} reused, {} new, {} bytes \
             received, {} bytes stored)",
            index.archive_name,
            response.size,
            response.chunks,
            response.new_chunks,
            response.bytes_received,
            response.bytes_stored
        ));
        json_response(&response)
    }

    /// Removes a closed index's file that will not be in the manifest (a failed close).
    /// A file that cannot be removed is logged: the session fails either way.
    async fn discard_index_file(&self, file_name: &str) {
        let path = self
            .open
            .store
            .snapshot_path(&self.snapshot)
            .join(file_name);
        let removed = blocking(move || match std::fs::remove_file(&path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                Err(anyhow::Error::new(err).context(format!("removing {}", path.display())))
            }
            _ => Ok(()),
        })
        .await;
        if let Err(err) = removed {
            self.task
                .log(format!("the failed index stays behind: {err}"));
        }
    }

    /// Forgets an index whose writer failed; its name is free again, and `finish` refuses
    /// a session that names it.
    async fn fail_index(&self, wid: u64, index: &OpenIndex) {
        self.chunked.indexes().remove(&wid);
        self.unreserve(&index.file_name).await;
        self.task.log(format!(
            "index of {} (wid {wid}) failed and was discarded",
            index.archive_name
        ));
    }
}
