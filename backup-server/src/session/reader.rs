//! A reader session: downloads of one finished snapshot's files and of the chunks its
//! indexes reference. A chunk is served only after an index that holds it was downloaded
//! in this session, so a reader can never fetch chunks of other snapshots by guessing.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use datastore::digest::Digest;
use datastore::index::DynamicIndex;
use datastore::snapshot::SnapshotRef;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use protocol::routes::{READER_CHUNK, READER_DOWNLOAD};
use serde::Deserialize;

use crate::api::{match_route, to_method};
use crate::error::{ApiError, ApiResult, bytes_response};
use crate::http_util::{blocking, parse_query};
use crate::state::OpenStore;

pub struct ReaderSession {
    open: OpenStore,
    snapshot: SnapshotRef,
    readable: Mutex<HashSet<Digest>>,
}

impl ReaderSession {
    pub fn new(open: OpenStore, snapshot: SnapshotRef) -> Self {
        Self {
            open,
            snapshot,
            readable: Mutex::new(HashSet::new()),
        }
    }

    pub async fn run(self: Arc<Self>, io: hyper::upgrade::Upgraded) {
        let session = Arc::clone(&self);
        let service = service_fn(move |req| {
            let session = Arc::clone(&session);
            async move {
                let response = match session.handle(req).await {
                    Ok(response) => response,
                    Err(err) => err.into_response(),
                };
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        if let Err(err) = crate::session::serve_h2(io, service).await {
            tracing::info!("reader session {}: connection ended: {err}", self.snapshot);
        }
    }

    async fn handle(&self, req: Request<Incoming>) -> ApiResult<Response<Full<Bytes>>> {
        let method = to_method(req.method())?;
        let (route, _) = match_route(&[READER_DOWNLOAD, READER_CHUNK], method, req.uri().path())?;
        if route == READER_DOWNLOAD {
            self.download(req).await
        } else {
            self.chunk(req).await
        }
    }

    async fn download(&self, req: Request<Incoming>) -> ApiResult<Response<Full<Bytes>>> {
        #[derive(Deserialize)]
        #[serde(rename_all = "kebab-case", deny_unknown_fields)]
        struct Params {
            file_name: String,
        }
        let params: Params = parse_query(req.uri().query())?;
        let path = self
            .open
            .store
            .snapshot_file_path(&self.snapshot, &params.file_name)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let is_index = params.file_name.ends_with(".didx");
        let shown = params.file_name.clone();
        let (data, digests) = blocking(move || {
            let data = match std::fs::read(&path) {
                Ok(data) => data,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Ok(None);
                }
                Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {shown}"))),
            };
            let digests = if is_index {
                let index = DynamicIndex::decode(&data)
                    .map_err(|e| anyhow::anyhow!("index {shown} is damaged: {e}"))?;
                index.entries.iter().map(|e| e.digest).collect()
            } else {
                Vec::new()
            };
            Ok(Some((data, digests)))
        })
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!("snapshot has no file '{}'", params.file_name))
        })?;
        self.readable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(digests);
        bytes_response(Bytes::from(data))
    }

    async fn chunk(&self, req: Request<Incoming>) -> ApiResult<Response<Full<Bytes>>> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Params {
            digest: String,
        }
        let params: Params = parse_query(req.uri().query())?;
        let digest: Digest = params
            .digest
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid digest '{}'", params.digest)))?;
        if !self
            .readable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&digest)
        {
            return Err(ApiError::bad_request(format!(
                "chunk {digest} is not referenced by an index downloaded in this session"
            )));
        }
        let store = Arc::clone(self.open.store.chunk_store());
        let data = blocking(move || {
            // A buffer of the process's pool (taken for the file's size), given back once
            // the answer is sent.
            let mut data = Vec::new();
            match store.read_into(&digest, &mut data) {
                Ok(()) => Ok(datastore::pool::into_bytes(data)),
                Err(e) => {
                    datastore::pool::give_buffer(data);
                    Err(anyhow::Error::new(e).context(format!("reading chunk {digest}")))
                }
            }
        })
        .await?;
        bytes_response(data)
    }
}
