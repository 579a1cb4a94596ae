//! A backup session on one upgraded connection: archive streams (stream mode), index
//! writers and chunk uploads (chunked mode, in [`chunked`]), blobs and `finish`.
//!
//! The snapshot directory exists from the start but holds no manifest until `finish`, so
//! it never lists as a backup. When the connection ends without `finish` (client killed,
//! network lost, an error) the directory is removed. Handlers hold the session's `active`
//! read lock while they run; the end of the session takes the write lock, so cleanup never
//! races with a running upload.
//!
//! Both modes record the same manifest entry for an archive (size, index checksum, chunk
//! count), and the session's statistics ([`BackupSessionStats`]) become the backup task's
//! result.

mod chunked;
mod known_chunks;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use datastore::manifest::{BackupManifest, ManifestFile};
use datastore::names::{ArchiveKind, MANIFEST_NAME};
use datastore::snapshot::SnapshotRef;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use protocol::routes::{
    SESSION_APPEND_INDEX, SESSION_ARCHIVE, SESSION_BLOB, SESSION_CHUNK, SESSION_CLOSE_INDEX,
    SESSION_CREATE_INDEX, SESSION_FINISH, SESSION_PREVIOUS_INDEX,
};
use protocol::types::{
    ArchiveUploadParams, ArchiveUploadResponse, BackupSessionStats, FinishRequest, FinishResponse,
};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

use crate::api::{match_route, to_method};
use crate::error::{ApiError, ApiResult, json_response};
use crate::http_util::{blocking, parse_query, read_body, read_json};
use crate::ingest::{IngestTarget, ingest};
use crate::state::{GroupGuard, OpenStore, ServerState};
use crate::tasks::{TaskContext, TaskOutcome};

pub struct BackupSession {
    open: OpenStore,
    snapshot: SnapshotRef,
    zeros: Arc<datastore::digest::ZeroDigests>,
    /// Files uploaded so far, by file name in the snapshot directory.
    files: Mutex<BTreeMap<String, ManifestFile>>,
    /// Open, Finished or Abandoned. Handlers hold the read lock while they run; `finish` and
    /// `abandon` take the write lock, so the session never ends under a running request.
    active: RwLock<SessionEnd>,
    task: Arc<TaskContext>,
    /// Who runs the backup: becomes the owner of a new group at `finish`.
    auth_id: String,
    /// Index writers and known chunks of chunked mode.
    chunked: chunked::ChunkedState,
    stats: SessionCounters,
    _group: GroupGuard,
}

/// What the session received and stored so far (both modes).
#[derive(Default)]
struct SessionCounters {
    bytes_received: AtomicU64,
    chunks_uploaded: AtomicU64,
    chunks_reused: AtomicU64,
    new_chunks: AtomicU64,
    bytes_stored: AtomicU64,
}

impl SessionCounters {
    fn snapshot(&self) -> BackupSessionStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        BackupSessionStats {
            bytes_received: load(&self.bytes_received),
            chunks_uploaded: load(&self.chunks_uploaded),
            chunks_reused: load(&self.chunks_reused),
            new_chunks: load(&self.new_chunks),
            bytes_stored: load(&self.bytes_stored),
        }
    }
}

/// The one task-log line with a session's statistics.
fn stats_line(stats: &BackupSessionStats) -> String {
    format!(
        "session stats: {} bytes received, {} chunks uploaded, {} chunks reused, {} new \
         chunks, {} bytes stored",
        stats.bytes_received,
        stats.chunks_uploaded,
        stats.chunks_reused,
        stats.new_chunks,
        stats.bytes_stored
    )
}

/// The index file name of an archive name, which must be `NAME.tar`, `NAME.mtar` or
/// `NAME.ptar`.
fn index_file_name(archive_name: &str) -> ApiResult<String> {
    if !datastore::names::validate_archive_name(archive_name)?.is_index() {
        return Err(ApiError::bad_request(format!(
            "'{archive_name}' is not an archive name (NAME.tar, NAME.mtar, NAME.ptar)"
        )));
    }
    Ok(datastore::names::archive_file_name(archive_name))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessionEnd {
    Open,
    Finished,
    Abandoned,
}

impl BackupSession {
    pub fn new(
        open: OpenStore,
        snapshot: SnapshotRef,
        zeros: Arc<datastore::digest::ZeroDigests>,
        group: GroupGuard,
        task: Arc<TaskContext>,
        auth_id: String,
    ) -> Self {
        Self {
            open,
            snapshot,
            zeros,
            files: Mutex::new(BTreeMap::new()),
            active: RwLock::new(SessionEnd::Open),
            task,
            auth_id,
            chunked: chunked::ChunkedState::new(),
            stats: SessionCounters::default(),
            _group: group,
        }
    }

    /// Serves the session until the connection ends, then keeps or removes the snapshot.
    pub async fn run(self: Arc<Self>, io: hyper::upgrade::Upgraded, state: Arc<ServerState>) {
        let session = Arc::clone(&self);
        let service = service_fn(move |req| {
            let session = Arc::clone(&session);
            async move {
                if req.uri().path() == protocol::routes::SESSION_CHUNK.path
                    && crate::session::take_chunk_reset_fault()
                {
                    // An error from the service resets this HTTP/2 stream only.
                    tracing::warn!("test fault: resetting a chunk upload stream");
                    return Err(std::io::Error::other(
                        "test fault: chunk upload stream reset",
                    ));
                }
                let response = match session.handle(req).await {
                    Ok(response) => response,
                    Err(err) => err.into_response(),
                };
                Ok::<_, std::io::Error>(response)
            }
        });
        tokio::select! {
            served = crate::session::serve_h2(io, service) => {
                if let Err(err) = served {
                    tracing::info!("backup session {}: connection ended: {err}", self.snapshot);
                }
            }
            _ = self.task.aborted() => {
                self.task.log("abort requested: closing the session");
            }
        }
        self.abandon().await;
        state.bytes_received.fetch_add(
            self.stats.bytes_received.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
    }

    /// Ends the session: unless it finished, its snapshot directory is removed.
    pub async fn abandon(&self) {
        let mut end = self.active.write().await;
        if *end == SessionEnd::Finished {
            return;
        }
        *end = SessionEnd::Abandoned;
        self.chunked.drop_writers();
        self.task.log(stats_line(&self.stats.snapshot()));
        self.task.finish(Err(anyhow::anyhow!(
            "the backup session ended without finishing; snapshot {} removed",
            self.snapshot
        )));
        let store = Arc::clone(&self.open.store);
        let snapshot = self.snapshot.clone();
        let removed =
            tokio::task::spawn_blocking(move || store.remove_snapshot_dir(&snapshot)).await;
        match removed {
            Ok(Ok(())) => tracing::info!("removed unfinished backup {}", self.snapshot),
            Ok(Err(err)) => {
                tracing::error!("removing unfinished backup {}: {err}", self.snapshot)
            }
            Err(err) => tracing::error!("removing unfinished backup {}: {err}", self.snapshot),
        }
    }

    async fn handle(&self, req: Request<Incoming>) -> ApiResult<Response<Full<Bytes>>> {
        let active = self.active.read().await;
        if *active != SessionEnd::Open {
            return Err(ApiError::bad_request("the backup session has ended"));
        }
        let method = to_method(req.method())?;
        let routes = [
            SESSION_ARCHIVE,
            SESSION_PREVIOUS_INDEX,
            SESSION_CREATE_INDEX,
            SESSION_CHUNK,
            SESSION_APPEND_INDEX,
            SESSION_CLOSE_INDEX,
            SESSION_BLOB,
            SESSION_FINISH,
        ];
        let (route, _) = match_route(&routes, method, req.uri().path())?;
        match route {
            r if r == SESSION_ARCHIVE => self.upload_archive(req).await,
            r if r == SESSION_PREVIOUS_INDEX => self.previous_index(req).await,
            r if r == SESSION_CREATE_INDEX => self.create_index(req).await,
            r if r == SESSION_CHUNK => self.upload_chunk(req).await,
            r if r == SESSION_APPEND_INDEX => self.append_index(req).await,
            r if r == SESSION_CLOSE_INDEX => self.close_index(req).await,
            r if r == SESSION_BLOB => self.upload_blob(req).await,
            _ => {
                drop(active);
                self.finish(req).await
            }
        }
    }

    async fn upload_archive(&self, req: Request<Incoming>) -> ApiResult<Response<Full<Bytes>>> {
        let params: ArchiveUploadParams = parse_query(req.uri().query())?;
        let file_name = index_file_name(&params.archive_name)?;
        self.reserve(&file_name).await?;
        let target = IngestTarget {
            store: Arc::clone(&self.open.store),
            chunker: self.open.chunker,
            zeros: Arc::clone(&self.zeros),
            index_path: self
                .open
                .store
                .snapshot_path(&self.snapshot)
                .join(&file_name),
        };
        let result = ingest(req.into_body(), target, &self.stats.bytes_received).await;
        let stats = match result {
            Ok(stats) => stats,
            Err(err) => {
                self.unreserve(&file_name).await;
                return Err(err);
            }
        };
        let Some(index) = stats.index else {
            self.unreserve(&file_name).await;
            return Err(ApiError::Internal(anyhow::anyhow!(
                "ingest returned no index"
            )));
        };
        self.stats
            .new_chunks
            .fetch_add(stats.new_chunks, Ordering::Relaxed);
        self.stats
            .bytes_stored
            .fetch_add(stats.bytes_stored, Ordering::Relaxed);
        self.files.lock().await.insert(
            file_name.clone(),
            ManifestFile {
                filename: file_name,
                size: index.size,
                csum: index.csum.to_hex(),
                chunks: index.chunks,
            },
        );
        let response = ArchiveUploadResponse {
            size: index.size,
            chunks: index.chunks,
            new_chunks: stats.new_chunks,
            bytes_received: stats.bytes_received,
            bytes_stored: stats.bytes_stored,
            csum: index.csum.to_hex(),
        };
        self.task.log(format!(
            "archive {}: {} bytes, {} chunks ({} new, {} bytes stored)",
            params.archive_name,
            response.size,
            response.chunks,
            response.new_chunks,
            response.bytes_stored
        ));
        json_response(&response)
    }

    async fn upload_blob(&self, req: Request<Incoming>) -> ApiResult<Response<Full<Bytes>>> {
        #[derive(Deserialize)]
        #[serde(rename_all = "kebab-case", deny_unknown_fields)]
        struct BlobParams {
            file_name: String,
        }
        let params: BlobParams = parse_query(req.uri().query())?;
        if datastore::names::validate_archive_name(&params.file_name)? != ArchiveKind::Blob {
            return Err(ApiError::bad_request(format!(
                "'{}' is not a blob name (NAME.blob)",
                params.file_name
            )));
        }
        self.reserve(&params.file_name).await?;
        let result = self.store_blob(req.into_body(), &params.file_name).await;
        let mut files = self.files.lock().await;
        match result {
            Ok(file) => {
                files.insert(params.file_name.clone(), file);
                json_response(&serde_json::json!({}))
            }
            Err(err) => {
                files.remove(&params.file_name);
                Err(err)
            }
        }
    }

    async fn store_blob(&self, body: Incoming, file_name: &str) -> ApiResult<ManifestFile> {
        let blob = read_body(body, protocol::limits::MAX_BLOB_SIZE).await?;
        self.stats
            .bytes_received
            .fetch_add(blob.len() as u64, Ordering::Relaxed);
        let path = self
            .open
            .store
            .snapshot_file_path(&self.snapshot, file_name)
            .map_err(|e| ApiError::Internal(e.into()))?;
        let filename = file_name.to_string();
        // Decoding and hashing up to 128 MiB is CPU work: off the async task, with the write.
        tokio::task::spawn_blocking(move || {
            let raw = datastore::blob::decode(&blob, protocol::limits::MAX_BLOB_SIZE)
                .map_err(|e| ApiError::bad_request(format!("invalid blob: {e}")))?;
            let file = ManifestFile {
                filename,
                size: raw.len() as u64,
                csum: datastore::digest::Digest::of(&blob).to_hex(),
                chunks: 0,
            };
            datastore::fs_util::replace_file(&path, &blob)
                .map_err(|e| ApiError::Internal(e.into()))?;
            Ok::<_, ApiError>(file)
        })
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("blob worker failed: {e}")))?
    }

    /// Claims a file name for an upload; each name may be uploaded once per session.
    async fn reserve(&self, file_name: &str) -> ApiResult<()> {
        let mut files = self.files.lock().await;
        if files.contains_key(file_name) {
            return Err(ApiError::bad_request(format!(
                "'{file_name}' was already uploaded in this session"
            )));
        }
        files.insert(
            file_name.to_string(),
            ManifestFile {
                filename: file_name.to_string(),
                size: 0,
                csum: String::new(),
                chunks: 0,
            },
        );
        Ok(())
    }

    /// Frees a name whose upload failed, so that `finish` does not wait for it.
    async fn unreserve(&self, file_name: &str) {
        self.files.lock().await.remove(file_name);
    }

    async fn finish(&self, req: Request<Incoming>) -> ApiResult<Response<Full<Bytes>>> {
        let request: FinishRequest = read_json(req.into_body()).await?;
        let mut end = self.active.write().await;
        if *end != SessionEnd::Open {
            return Err(ApiError::bad_request("the backup session has ended"));
        }
        let open = self.chunked.still_open();
        if !open.is_empty() {
            return Err(ApiError::bad_request(format!(
                "indexes still open: {}; close them before finishing",
                open.join(", ")
            )));
        }
        let files: Vec<ManifestFile> = self.files.lock().await.values().cloned().collect();
        datastore::names::check_split_pairs(request.archives.iter().map(String::as_str))
            .map_err(ApiError::bad_request)?;
        let expected: Vec<String> = request
            .archives
            .iter()
            .map(|a| datastore::names::archive_file_name(a))
            .collect();
        let mut uploaded: Vec<String> = files.iter().map(|f| f.filename.clone()).collect();
        let mut expected_sorted = expected.clone();
        expected_sorted.sort();
        uploaded.sort();
        if uploaded.is_empty() {
            return Err(ApiError::bad_request(
                "nothing was uploaded: refusing an empty snapshot",
            ));
        }
        if uploaded != expected_sorted {
            return Err(ApiError::bad_request(format!(
                "the client names {expected_sorted:?} but the session stored {uploaded:?}"
            )));
        }
        if files
            .iter()
            .any(|f| f.filename != MANIFEST_NAME && f.csum.is_empty())
        {
            return Err(ApiError::bad_request(
                "an upload of this session is still running",
            ));
        }
        let manifest = BackupManifest {
            backup_type: self.snapshot.group.backup_type.to_string(),
            backup_id: self.snapshot.group.backup_id.clone(),
            backup_time: self.snapshot.time,
            files,
            unprotected: serde_json::json!({}),
        };
        let store = Arc::clone(&self.open.store);
        let snapshot = self.snapshot.clone();
        let owner = self.auth_id.clone();
        blocking(move || {
            store.write_manifest(&snapshot, &manifest)?;
            // The first finished snapshot of a group makes its creator the owner.
            if store.group_owner(&snapshot.group)?.is_none() {
                store.set_group_owner(&snapshot.group, &owner)?;
            }
            Ok(())
        })
        .await?;
        *end = SessionEnd::Finished;
        tracing::info!("backup {} finished", self.snapshot);
        self.task
            .log(format!("snapshot {} finished", self.snapshot));
        let stats = self.stats.snapshot();
        self.task.log(stats_line(&stats));
        // Plain integers: serializing cannot fail.
        let result = serde_json::to_value(&stats).ok();
        self.task.finish(Ok(TaskOutcome { result }));
        json_response(&FinishResponse {
            snapshot: self.snapshot.to_string(),
        })
    }
}
