//! Sessions on an upgraded connection: after `101 Switching Protocols` both ends speak
//! HTTP/2 on the same TLS stream, and every request on it belongs to the session.

pub mod backup;
pub mod reader;

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
    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW)
        .max_frame_size(H2_MAX_FRAME_SIZE)
        .serve_connection(io, service)
        .await
}
