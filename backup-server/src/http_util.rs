//! Small helpers for handlers: query parsing and bounded body reads.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Parses a query string into `T` (unknown or malformed parameters are a 400).
pub fn parse_query<T: DeserializeOwned>(query: Option<&str>) -> Result<T, ApiError> {
    serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("invalid query parameters: {e}")))
}

/// Reads a whole body, failing with 413 as soon as it grows past `limit`.
pub async fn read_body(mut body: Incoming, limit: usize) -> Result<Bytes, ApiError> {
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::bad_request(format!("reading request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(ApiError::PayloadTooLarge(format!(
                    "request body is larger than {limit} bytes"
                )));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Reads a body that must be exactly `expected` bytes (a declared length), counting every
/// byte that arrives into each of `received`. A body that grows past `expected` is refused at once;
/// one that ends short is refused at its end. Both are 400s naming `what`.
pub async fn read_body_exact(
    mut body: Incoming,
    expected: usize,
    received: &[&AtomicU64],
    what: &str,
) -> Result<Bytes, ApiError> {
    // A buffer of the process's pool, given back when the last `Bytes` of it is dropped.
    // The body starts at an aligned address, so that a chunk can be written past the page
    // cache straight from it (`datastore::direct_io`).
    let mut buf = datastore::pool::take_buffer(expected + datastore::direct_io::ALIGN);
    let pad = datastore::direct_io::align_start(&mut buf, expected);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad_request(format!("reading {what}: {e}")))?;
        if let Ok(data) = frame.into_data() {
            for counter in received {
                counter.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
            if buf.len() - pad + data.len() > expected {
                return Err(ApiError::bad_request(format!(
                    "{what} is longer than the declared {expected} bytes"
                )));
            }
            buf.extend_from_slice(&data);
        }
    }
    if buf.len() - pad != expected {
        return Err(ApiError::bad_request(format!(
            "{what} has {} bytes, {expected} were declared",
            buf.len() - pad
        )));
    }
    Ok(datastore::pool::into_bytes(buf).slice(pad..))
}

/// Reads a JSON body of at most [`protocol::limits::MAX_JSON_BODY`] bytes.
pub async fn read_json<T: DeserializeOwned>(body: Incoming) -> Result<T, ApiError> {
    let bytes = read_body(body, protocol::limits::MAX_JSON_BODY).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// Runs blocking work (file IO, hashing) off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("worker failed: {e}")))?
        .map_err(ApiError::Internal)
}
