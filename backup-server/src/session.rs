//! Sessions on an upgraded connection: after `101 Switching Protocols` both ends speak
//! HTTP/2 on the same TLS stream, and every request on it belongs to the session.

pub mod backup;
pub mod reader;

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::TokioExecutor;
use protocol::limits::{H2_CONNECTION_WINDOW, H2_MAX_FRAME_SIZE, H2_STREAM_WINDOW};

/// Serves HTTP/2 on an upgraded connection with windows sized for bulk transfer, until
/// the client closes it or it breaks.
pub async fn serve_h2<S>(io: hyper::upgrade::Upgraded, service: S) -> Result<(), hyper::Error>
where
    S: Service<hyper::Request<Incoming>, Response = Response<Full<Bytes>>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let _open = OpenSession::start();
    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW)
        .max_frame_size(H2_MAX_FRAME_SIZE)
        .serve_connection(io, service)
        .await
}

/// Sessions being served.
static OPEN_SESSIONS: AtomicUsize = AtomicUsize::new(0);

/// One session being served; when the last one ends, the process's idle buffers and codec
/// contexts are freed (`datastore::pool::release_idle`): a daemon between backups keeps
/// none of the chunk buffers they needed.
struct OpenSession;

impl OpenSession {
    fn start() -> Self {
        OPEN_SESSIONS.fetch_add(1, Ordering::SeqCst);
        OpenSession
    }
}

impl Drop for OpenSession {
    fn drop(&mut self) {
        if OPEN_SESSIONS.fetch_sub(1, Ordering::SeqCst) == 1 {
            datastore::pool::release_idle();
        }
    }
}

/// Environment variable of the server's test-only network faults: `reset-chunk-uploads:N`
/// resets the HTTP/2 streams of the first N chunk uploads of the process (a transient
/// network error as a client sees it), so that a test can check that the client retries.
pub const TEST_FAULT_ENV: &str = "BACKUP_SERVER_TEST_FAULT";

/// Chunk uploads still to be reset: -1 until read from the environment.
static CHUNK_RESETS_LEFT: AtomicI64 = AtomicI64::new(-1);

/// Whether this chunk upload is to be reset by the test fault (see [`TEST_FAULT_ENV`]).
pub fn take_chunk_reset_fault() -> bool {
    if CHUNK_RESETS_LEFT.load(Ordering::Relaxed) == -1 {
        let n = std::env::var(TEST_FAULT_ENV)
            .ok()
            .and_then(|v| v.strip_prefix("reset-chunk-uploads:")?.parse::<i64>().ok())
            .unwrap_or(0)
            .max(0);
        let _ = CHUNK_RESETS_LEFT.compare_exchange(-1, n, Ordering::Relaxed, Ordering::Relaxed);
    }
    CHUNK_RESETS_LEFT
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
            (left > 0).then_some(left - 1)
        })
        .is_ok()
}
