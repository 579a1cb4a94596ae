//! The client's connections to the server: TLS with a pinned certificate, plain REST calls
//! over HTTP/1.1, and sessions that upgrade one connection to HTTP/2.

use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use protocol::limits::{H2_CONNECTION_WINDOW, H2_MAX_FRAME_SIZE, H2_STREAM_WINDOW};
use protocol::routes::AUTH_SCHEME;
use protocol::types::{DataResponse, ErrorResponse};
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::tls::Fingerprint;

/// Body type of every request the client sends.
pub type RequestBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A full body from bytes.
pub fn full_body(data: impl Into<Bytes>) -> RequestBody {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Where the server listens and who we are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddress {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for ServerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Connection settings and credentials for one server.
#[derive(Clone)]
pub struct HttpClient {
    pub server: ServerAddress,
    pub auth_id: String,
    secret: String,
    tls: Arc<rustls::ClientConfig>,
}

/// An open session: HTTP/2 requests on the upgraded connection. Clones share the
/// connection, so that several requests (chunk uploads) run on it at once.
#[derive(Clone)]
pub struct Session {
    pub sender: hyper::client::conn::http2::SendRequest<RequestBody>,
    /// What the server said the session is about (the snapshot path).
    pub snapshot: String,
}

impl HttpClient {
    pub fn new(
        server: ServerAddress,
        auth_id: String,
        secret: String,
        fingerprint: Option<Fingerprint>,
    ) -> Result<Self> {
        Ok(Self {
            server,
            auth_id,
            secret: secret.trim().to_string(),
            tls: crate::tls::client_config(fingerprint)?,
        })
    }

    async fn connect(&self) -> Result<TlsStream<TcpStream>> {
        let addr = (self.server.host.as_str(), self.server.port);
        let tcp = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {}:{}", self.server.host, self.server.port))?;
        tcp.set_nodelay(true)?;
        let name = rustls_pki_types::ServerName::try_from(self.server.host.clone())
            .map_err(|_| anyhow!("invalid server name '{}'", self.server.host))?;
        TlsConnector::from(Arc::clone(&self.tls))
            .connect(name, tcp)
            .await
            .map_err(|e| {
                match e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                {
                    Some(rustls::Error::General(msg)) => anyhow!("TLS: {msg}"),
                    _ => anyhow!(
                        "TLS handshake with {}:{} failed: {e}",
                        self.server.host,
                        self.server.port
                    ),
                }
            })
    }

    fn authorization(&self) -> String {
        format!("{AUTH_SCHEME} {}:{}", self.auth_id, self.secret)
    }

    /// GET a REST route and decode its `{"data": ...}`.
    pub async fn get_json<T: DeserializeOwned>(&self, path_and_query: &str) -> Result<T> {
        self.call_json(hyper::Method::GET, path_and_query, None::<&()>)
            .await
    }

    /// Calls a REST route with an optional JSON body and decodes its `{"data": ...}`; any
    /// status but 200 is an error carrying the server's message.
    pub async fn call_json<T: DeserializeOwned, B: serde::Serialize + ?Sized>(
        &self,
        method: hyper::Method,
        path_and_query: &str,
        body: Option<&B>,
    ) -> Result<T> {
        let response = self.request(method, path_and_query, body).await?;
        decode_json(response).await
    }

    /// Sends one REST request and returns the answer, whatever its status.
    pub async fn request<B: serde::Serialize + ?Sized>(
        &self,
        method: hyper::Method,
        path_and_query: &str,
        body: Option<&B>,
    ) -> Result<Response<Incoming>> {
        let tls = self.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(hyper::header::HOST, &self.server.host)
            .header(hyper::header::AUTHORIZATION, self.authorization());
        let body = match body {
            Some(body) => {
                req = req.header(hyper::header::CONTENT_TYPE, "application/json");
                full_body(serde_json::to_vec(body)?)
            }
            None => full_body(Bytes::new()),
        };
        sender
            .send_request(req.body(body)?)
            .await
            .context("sending request")
    }

    /// Opens a session: an HTTP/1.1 GET with `Upgrade: protocol`, then HTTP/2 on the same
    /// connection with windows sized for bulk transfer.
    pub async fn open_session(&self, path: &str, query: &str, upgrade: &str) -> Result<Session> {
        let tls = self.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(conn.with_upgrades());
        let req = Request::get(format!("{path}?{query}"))
            .header(hyper::header::HOST, &self.server.host)
            .header(hyper::header::AUTHORIZATION, self.authorization())
            .header(hyper::header::CONNECTION, "upgrade")
            .header(hyper::header::UPGRADE, upgrade)
            .body(full_body(Bytes::new()))?;
        let response = sender.send_request(req).await.context("opening session")?;
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Err(error_from_response(response).await);
        }
        let snapshot = response
            .headers()
            .get(protocol::types::SNAPSHOT_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let upgraded = hyper::upgrade::on(response)
            .await
            .context("upgrading connection")?;
        let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(H2_STREAM_WINDOW)
            .initial_connection_window_size(H2_CONNECTION_WINDOW)
            .max_frame_size(H2_MAX_FRAME_SIZE)
            .handshake(upgraded)
            .await
            .context("HTTP/2 handshake")?;
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!("session connection ended: {err}");
            }
        });
        Ok(Session { sender, snapshot })
    }
}

impl Session {
    /// Sends one request on the session and returns the answer, any status.
    pub async fn send(
        &mut self,
        method: hyper::Method,
        path_and_query: &str,
        body: RequestBody,
    ) -> Result<Response<Incoming>> {
        self.sender
            .ready()
            .await
            .context("session connection lost")?;
        let req = Request::builder()
            .method(method)
            .uri(path_and_query)
            .body(body)?;
        self.sender
            .send_request(req)
            .await
            .context("session request failed")
    }

    /// Sends a request and decodes a `{"data": ...}` answer; any other status is an error.
    pub async fn call_json<T: DeserializeOwned>(
        &mut self,
        method: hyper::Method,
        path_and_query: &str,
        body: RequestBody,
    ) -> Result<T> {
        let response = self.send(method, path_and_query, body).await?;
        decode_json(response).await
    }

    /// Sends a GET and returns the whole body; any status but 200 is an error.
    pub async fn download(&mut self, path_and_query: &str, limit: usize) -> Result<Bytes> {
        let response = self
            .send(hyper::Method::GET, path_and_query, full_body(Bytes::new()))
            .await?;
        read_ok_body(response, limit).await
    }
}

/// Reads a 200 answer's whole body (at most `limit` bytes); other statuses become errors.
pub async fn read_ok_body(response: Response<Incoming>, limit: usize) -> Result<Bytes> {
    read_ok_body_into(response, limit, Vec::with_capacity)
        .await
        .map(Bytes::from)
}

/// [`read_ok_body`] into a buffer that `alloc` gives with room for the announced size, so
/// that the caller can bring buffers of its own. Chunk bodies are megabytes in many frames:
/// they are copied once into one buffer, not kept as a list of frames and copied at the end.
pub async fn read_ok_body_into(
    response: Response<Incoming>,
    limit: usize,
    alloc: impl FnOnce(usize) -> Vec<u8>,
) -> Result<Vec<u8>> {
    use hyper::body::Body as _;
    if response.status() != StatusCode::OK {
        return Err(error_from_response(response).await);
    }
    let mut body = response.into_body();
    let announced = body.size_hint().exact().unwrap_or(0);
    if announced > limit as u64 {
        bail!("reading answer: {announced} bytes announced, the limit is {limit}");
    }
    let mut buf = alloc(announced as usize);
    buf.clear();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| anyhow!("reading answer: {e}"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if buf.len() + data.len() > limit {
            bail!("reading answer: longer than the limit of {limit} bytes");
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf)
}

/// Decodes a 200 answer's `{"data": ...}`; other statuses become errors.
pub async fn decode_json<T: DeserializeOwned>(response: Response<Incoming>) -> Result<T> {
    let body = read_ok_body(response, protocol::limits::MAX_BLOB_SIZE).await?;
    let parsed: DataResponse<T> =
        serde_json::from_slice(&body).context("the server's answer is not the expected JSON")?;
    Ok(parsed.data)
}

/// Turns an error answer into an error that carries the status and the server's message.
pub async fn error_from_response(response: Response<Incoming>) -> anyhow::Error {
    let status = response.status();
    let body = match http_body_util::Limited::new(response.into_body(), 64 * 1024)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(e) => return anyhow!("server answered {status} (body unreadable: {e})"),
    };
    match serde_json::from_slice::<ErrorResponse>(&body) {
        Ok(err) => anyhow!("server answered {}: {}", status, err.error),
        Err(_) => anyhow!(
            "server answered {status}: {}",
            String::from_utf8_lossy(&body)
        ),
    }
}
