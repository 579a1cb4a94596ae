//! Where the chunked pipeline's chunks go: the index writer of a backup session (the
//! session's requests, chunk uploads retried on transient failures), or nowhere (a dry run,
//! which only counts what it would send).
//!
//! Retries: a chunk upload whose stream was reset while the connection lives on, or that
//! the server answered 502/503/504, is sent again after a growing pause, up to
//! [`UPLOAD_ATTEMPTS`] times. A closed connection is not retried: the session, and with
//! it the snapshot, is gone on the server, so the backup fails with that message. Any other
//! answer (a refused digest, a size mismatch) ends the backup at once with the server's
//! message.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use api_client::http::{Session, decode_json, error_from_response, full_body};
use bytes::Bytes;
use datastore::blob::ChunkBuf;
use datastore::chunker::ChunkerParams;
use datastore::digest::Digest;
use datastore::index::DynamicIndex;
use hyper::StatusCode;
use protocol::routes::{
    self, PREVIOUS_SNAPSHOT_HEADER, SESSION_APPEND_INDEX, SESSION_CHUNK, SESSION_CLOSE_INDEX,
    SESSION_CREATE_INDEX, SESSION_PREVIOUS_INDEX, encode_query,
};
use protocol::types::{
    AppendChunk, ArchiveUploadResponse, ChunkUploaded, ChunkerConfig, IndexAppend, IndexCreated,
};

use super::ChunkedOutcome;

/// Tries per chunk upload (the first one included).
pub const UPLOAD_ATTEMPTS: u32 = 4;
/// Pause before the first retry; doubled for each further one.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(200);
/// Largest parent index the client downloads (40 bytes per chunk: 6.7 million chunks).
const MAX_INDEX_SIZE: usize = 256 << 20;

/// The destination of one archive's chunks.
#[derive(Clone)]
pub enum Target {
    /// The index writer `wid` of a backup session.
    Session { session: Session, wid: u64 },
    /// Nothing is sent: new chunks are only counted.
    DryRun,
}

/// One chunk that was sent (or, in a dry run, would be).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uploaded {
    pub digest: Digest,
    /// Plain size.
    pub size: u64,
    /// Body bytes sent.
    pub encoded_size: u64,
    /// The store did not have it.
    pub new: bool,
    pub bytes_stored: u64,
}

impl Target {
    /// Whether new chunks must be encoded for this target (a dry run sends nothing).
    pub fn wants_bodies(&self) -> bool {
        matches!(self, Target::Session { .. })
    }

    /// Sends one chunk, `encoded` by [`encode_chunk`]; `size` is its plain size.
    pub async fn upload(&self, digest: Digest, size: u64, encoded: Bytes) -> Result<Uploaded> {
        let Target::Session { session, wid } = self else {
            return Ok(Uploaded {
                digest,
                size,
                encoded_size: 0,
                new: false,
                bytes_stored: 0,
            });
        };
        let path = format!(
            "{}?{}",
            SESSION_CHUNK.path,
            encode_query(&[
                ("wid", &wid.to_string()),
                ("digest", &digest.to_hex()),
                ("size", &size.to_string()),
                ("encoded-size", &encoded.len().to_string()),
            ])
        );
        let answer: ChunkUploaded = send_with_retries(session, &path, &encoded)
            .await
            .with_context(|| format!("uploading chunk {digest}"))?;
        Ok(Uploaded {
            digest,
            size,
            encoded_size: encoded.len() as u64,
            new: answer.new,
            bytes_stored: answer.bytes_stored,
        })
    }

    /// Appends chunks, in archive order, to the index.
    pub async fn append(&self, chunks: Vec<AppendChunk>) -> Result<()> {
        let Target::Session { session, wid } = self else {
            return Ok(());
        };
        let path = format!(
            "{}?{}",
            SESSION_APPEND_INDEX.path,
            encode_query(&[("wid", &wid.to_string())])
        );
        let body = serde_json::to_vec(&IndexAppend { chunks })?;
        let _: serde_json::Value = session
            .clone()
            .call_json(hyper::Method::PUT, &path, full_body(body))
            .await
            .context("appending chunks to the index")?;
        Ok(())
    }
}

/// Sends a chunk body, retrying transient failures (see the module doc).
async fn send_with_retries(session: &Session, path: &str, body: &Bytes) -> Result<ChunkUploaded> {
    let mut delay = FIRST_RETRY_DELAY;
    let mut attempt = 1;
    loop {
        let failure = match session
            .clone()
            .send(hyper::Method::POST, path, full_body(body.clone()))
            .await
        {
            Ok(response) if response.status() == StatusCode::OK => {
                return decode_json(response).await;
            }
            Ok(response) if is_transient(response.status()) => error_from_response(response).await,
            Ok(response) => return Err(error_from_response(response).await),
            Err(err) if session.sender.is_closed() => {
                return Err(err.context(
                    "the connection to the server was lost; the server discards the unfinished snapshot",
                ));
            }
            Err(err) => err,
        };
        if attempt >= UPLOAD_ATTEMPTS {
            return Err(failure.context(format!("failed {attempt} times")));
        }
        tracing::warn!("chunk upload failed (attempt {attempt}), retrying: {failure:#}");
        tokio::time::sleep(delay).await;
        delay *= 2;
        attempt += 1;
    }
}

/// The blob of a chunk to upload (blocking: compression). Under the test fault
/// `corrupt-chunk-upload` the blob holds other bytes than the chunk.
pub fn encode_chunk(chunk: ChunkBuf) -> Vec<u8> {
    if corrupt_uploads() {
        let mut wrong = chunk.data().to_vec();
        wrong[0] ^= 0xff;
        return datastore::blob::encode(&wrong, true);
    }
    chunk.into_blob(true)
}

/// Test fault `corrupt-chunk-upload` ([`crate::upload::FAULT_ENV`]): every chunk body
/// differs from its digest, as a lying or broken client's would, so that a test can check
/// that the server refuses it and the backup fails.
fn corrupt_uploads() -> bool {
    static CORRUPT: std::sync::LazyLock<bool> = std::sync::LazyLock::new(|| {
        std::env::var(crate::upload::FAULT_ENV).is_ok_and(|f| f == "corrupt-chunk-upload")
    });
    *CORRUPT
}

fn is_transient(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
    )
}

/// The parent snapshot's index of `archive`, as the server chose it, or `None` when there is
/// no usable parent (first backup, damaged or unverified parent: every chunk is sent).
pub async fn previous_index(
    session: &Session,
    archive: &str,
) -> Result<Option<(String, DynamicIndex)>> {
    let path = format!(
        "{}?{}",
        SESSION_PREVIOUS_INDEX.path,
        encode_query(&[("archive-name", archive)])
    );
    let Some((headers, bytes)) = get_if_exists(session, &path)
        .await
        .context("asking for the parent index")?
    else {
        return Ok(None);
    };
    let parent = headers
        .get(PREVIOUS_SNAPSHOT_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let index = DynamicIndex::decode(&bytes)
        .map_err(|e| anyhow!("the parent index of {archive} from {parent} is damaged: {e}"))?;
    Ok(Some((parent, index)))
}

/// GETs a file that may be missing (an index, a small blob): its headers and bytes, or
/// `None` when the server answers 404 (the reason is logged).
pub async fn get_if_exists(
    session: &Session,
    path: &str,
) -> Result<Option<(hyper::HeaderMap, Bytes)>> {
    let response = session
        .clone()
        .send(hyper::Method::GET, path, full_body(Bytes::new()))
        .await?;
    if response.status() == StatusCode::NOT_FOUND {
        let reason = error_from_response(response).await;
        tracing::info!("nothing at {path}: {reason:#}");
        return Ok(None);
    }
    let headers = response.headers().clone();
    let bytes = api_client::http::read_ok_body(response, MAX_INDEX_SIZE).await?;
    Ok(Some((headers, bytes)))
}

/// Opens an index writer for `archive` in the session.
pub async fn create_index(session: &Session, archive: &str) -> Result<u64> {
    let path = format!(
        "{}?{}",
        SESSION_CREATE_INDEX.path,
        encode_query(&[("archive-name", archive)])
    );
    let created: IndexCreated = session
        .clone()
        .call_json(hyper::Method::POST, &path, full_body(Bytes::new()))
        .await
        .with_context(|| format!("opening the index of {archive}"))?;
    Ok(created.wid)
}

/// Closes an index; the server checks count, size and checksum against its own.
pub async fn close_index(
    session: &Session,
    wid: u64,
    outcome: &ChunkedOutcome,
) -> Result<ArchiveUploadResponse> {
    let path = format!(
        "{}?{}",
        SESSION_CLOSE_INDEX.path,
        encode_query(&[
            ("wid", &wid.to_string()),
            ("chunk-count", &outcome.chunks.to_string()),
            ("size", &outcome.size.to_string()),
            ("csum", &outcome.csum.to_hex()),
        ])
    );
    session
        .clone()
        .call_json(hyper::Method::POST, &path, full_body(Bytes::new()))
        .await
        .context("closing the index")
}

/// The datastore's chunker parameters; a client must cut exactly as the server would.
/// `ns` is the namespace the backup goes to (a backup token's privilege may be there only).
pub async fn chunker_params(
    client: &api_client::HttpClient,
    store: &str,
    ns: &str,
) -> Result<ChunkerParams> {
    let path = routes::fill_path(routes::DATASTORE_CHUNKER.path, &[("store", store)]);
    let config: ChunkerConfig = client
        .get_json(&format!("{path}?{}", encode_query(&[("ns", ns)])))
        .await
        .context("asking for the datastore's chunker parameters")?;
    let params = ChunkerParams::new(config.avg as usize)
        .map_err(|e| anyhow!("the server's chunker parameters are not usable: {e}"))?;
    if params.min as u64 != config.min || params.max as u64 != config.max {
        bail!(
            "the server chunks with min {} / avg {} / max {}, which this client cannot reproduce",
            config.min,
            config.avg,
            config.max
        );
    }
    Ok(params)
}
