//! `GET /api2/json/reader` with `Upgrade: backup-reader-protocol-v1`: opens a finished
//! snapshot for reading and hands the connection to [`crate::session::reader`].

use std::sync::Arc;

use bytes::Bytes;
use datastore::names::{BackupType, Namespace};
use datastore::snapshot::{BackupGroup, SnapshotRef};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use protocol::routes::READER_PROTOCOL;
use protocol::types::ReaderParams;

use super::backup::{check_upgrade, switching_protocols};
use crate::auth::AuthId;
use crate::error::{ApiError, ApiResult};
use crate::http_util::parse_query;
use crate::session::reader::ReaderSession;
use crate::state::ServerState;

pub(super) async fn start(
    state: Arc<ServerState>,
    auth: AuthId,
    mut req: Request<Incoming>,
) -> ApiResult<Response<Full<Bytes>>> {
    check_upgrade(&req, READER_PROTOCOL)?;
    let params: ReaderParams = parse_query(req.uri().query())?;
    let ns: Namespace = params.ns.parse()?;
    let backup_type: BackupType = params.backup_type.parse()?;
    let group = BackupGroup::new(ns, backup_type, &params.backup_id)?;
    let snapshot = SnapshotRef::new(group, params.backup_time)?;
    let open = state.open_store(&params.store)?;
    super::backup::require_owner(
        &state,
        &auth,
        &open,
        &snapshot.group,
        crate::access::privileges::DATASTORE_READ,
        false,
    )?;
    if !open.store.is_finished(&snapshot) {
        return Err(ApiError::NotFound(format!(
            "no finished snapshot {snapshot}"
        )));
    }
    tracing::info!(
        "reader session for {}:{} by {}",
        open.name,
        snapshot,
        auth.0
    );
    let upgrade = hyper::upgrade::on(&mut req);
    let text = snapshot.to_string();
    let session = Arc::new(ReaderSession::new(open, snapshot));
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => session.run(upgraded).await,
            Err(err) => tracing::warn!("reader session upgrade failed: {err}"),
        }
    });
    switching_protocols(READER_PROTOCOL, &text)
}
