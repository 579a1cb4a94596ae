//! The accept loop: TCP -> TLS (rustls) -> HTTP/1.1 with upgrades -> [`crate::api`].
//!
//! Every connection runs on its own task; a failed handshake or a broken connection ends
//! that task only. Blocking work never runs here.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::config::{CERT_FILE, KEY_FILE};
use crate::state::ServerState;

/// Binds `listen` and serves until the process is stopped. Prints the bound address on
/// stdout (`listening on ADDR`) once it accepts connections.
pub async fn serve(state: Arc<ServerState>, listen: &str) -> Result<()> {
    state.config.check_initialized()?;
    let tls =
        crate::tls::server_config(&state.config.path(CERT_FILE), &state.config.path(KEY_FILE))?;
    crate::cleanup::remove_unfinished_snapshots(&state)?;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    datastore::fs_util::replace_file(
        &state.config.path(crate::config::LISTEN_FILE),
        format!("{addr}\n").as_bytes(),
    )
    .context("writing the listen address file")?;
    state.start_scheduler();
    println!("listening on {addr}");
    tracing::info!("listening on {addr}");
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(err) => {
                tracing::warn!("accept failed: {err}");
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            if let Err(err) = serve_connection(state, acceptor, tcp, peer).await {
                tracing::info!("connection from {peer}: {err:#}");
            }
        });
    }
}

async fn serve_connection(
    state: Arc<ServerState>,
    acceptor: TlsAcceptor,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
) -> Result<()> {
    let tls = acceptor.accept(tcp).await.context("TLS handshake")?;
    let service = service_fn(move |req| {
        let state = Arc::clone(&state);
        async move { Ok::<_, std::convert::Infallible>(crate::api::handle(state, req, peer).await) }
    });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), service)
        .with_upgrades()
        .await
        .context("HTTP connection")
}
