//! `GET /api2/json/admin/datastore/{store}/snapshots`: finished snapshots of a namespace.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use protocol::types::{SnapshotFile, SnapshotListItem};
use serde::Deserialize;

use super::{PathParams, param};
use crate::error::{ApiResult, json_response};
use crate::http_util::{blocking, parse_query};
use crate::state::ServerState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    ns: String,
}

pub(super) async fn list(
    state: &Arc<ServerState>,
    params: &PathParams,
    req: Request<Incoming>,
) -> ApiResult<Response<Full<Bytes>>> {
    let query: ListQuery = parse_query(req.uri().query())?;
    let ns: datastore::names::Namespace = query.ns.parse()?;
    let open = state.open_store(param(params, "store")?)?;
    let items = blocking(move || {
        let snapshots = open.store.list_snapshots(&ns)?;
        Ok(snapshots
            .into_iter()
            .map(|(snap, manifest)| {
                let files: Vec<SnapshotFile> = manifest
                    .files
                    .iter()
                    .map(|f| SnapshotFile {
                        filename: f.filename.clone(),
                        size: f.size,
                    })
                    .collect();
                SnapshotListItem {
                    ns: snap.group.ns.to_string(),
                    backup_type: snap.group.backup_type.to_string(),
                    backup_id: snap.group.backup_id.clone(),
                    backup_time: snap.time,
                    size: files.iter().map(|f| f.size).sum(),
                    files,
                }
            })
            .collect::<Vec<_>>())
    })
    .await?;
    json_response(&items)
}
