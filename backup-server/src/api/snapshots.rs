//! `/api2/json/admin/datastore/{store}/snapshots` and `.../protected`: list finished
//! snapshots of a namespace, forget one, set or clear its protected flag.

use std::sync::Arc;

use bytes::Bytes;
use datastore::names::{BackupType, Namespace};
use datastore::snapshot::{BackupGroup, SnapshotRef};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use protocol::types::{
    ProtectedRequest, SnapshotFile, SnapshotListItem, SnapshotParams, VerifyState,
};
use serde::Deserialize;

use super::{PathParams, owns, param, store_privs};
use crate::access::privileges::{DATASTORE_AUDIT, DATASTORE_MODIFY};
use crate::auth::AuthId;
use crate::error::{ApiError, ApiResult, json_response};
use crate::http_util::{blocking, parse_query, read_json};
use crate::state::{OpenStore, ServerState};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    ns: String,
}

pub(super) async fn list(
    state: &Arc<ServerState>,
    auth: &AuthId,
    params: &PathParams,
    req: Request<Incoming>,
) -> ApiResult<Response<Full<Bytes>>> {
    let query: ListQuery = parse_query(req.uri().query())?;
    let ns: Namespace = query.ns.parse()?;
    let open = state.open_store(param(params, "store")?)?;
    // Without Datastore.Audit a (backup) caller sees only the groups it owns.
    let see_all = store_privs(state, auth, &open.name, &ns)?.intersects(DATASTORE_AUDIT);
    let auth = auth.clone();
    let items = blocking(move || {
        let snapshots = open.store.list_snapshots(&ns)?;
        let mut owners = std::collections::HashMap::new();
        let mut visible = Vec::new();
        for (snap, manifest) in snapshots {
            if !see_all {
                let owner = match owners.get(&snap.group) {
                    Some(owner) => owner,
                    None => owners
                        .entry(snap.group.clone())
                        .or_insert(open.store.group_owner(&snap.group)?),
                };
                if !owns(&auth, owner.as_deref()) {
                    continue;
                }
            }
            visible.push((snap, manifest));
        }
        Ok(visible
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
                    verification: manifest.verify_state().map(|v| VerifyState {
                        state: match v.state {
                            datastore::manifest::VerifyOutcome::Ok => "ok".into(),
                            datastore::manifest::VerifyOutcome::Failed => "failed".into(),
                        },
                        time: v.time,
                        upid: v.upid,
                    }),
                    protected: open.store.is_protected(&snap),
                }
            })
            .collect::<Vec<_>>())
    })
    .await?;
    json_response(&items)
}

/// The finished snapshot a [`SnapshotParams`] query names (404 if there is none).
fn finished_snapshot(open: &OpenStore, params: &SnapshotParams) -> ApiResult<SnapshotRef> {
    let ns: Namespace = params.ns.parse()?;
    let backup_type: BackupType = params.backup_type.parse()?;
    let group = BackupGroup::new(ns, backup_type, &params.backup_id)?;
    let snapshot = SnapshotRef::new(group, params.backup_time)?;
    if !open.store.is_finished(&snapshot) {
        return Err(ApiError::NotFound(format!(
            "no finished snapshot {snapshot}"
        )));
    }
    Ok(snapshot)
}

/// Callers without Datastore.Modify may change only snapshots of groups they own.
fn check_owner(
    state: &ServerState,
    auth: &AuthId,
    open: &OpenStore,
    snapshot: &SnapshotRef,
) -> ApiResult<()> {
    if store_privs(state, auth, &open.name, &snapshot.group.ns)?.intersects(DATASTORE_MODIFY) {
        return Ok(());
    }
    let owner = open
        .store
        .group_owner(&snapshot.group)
        .map_err(|e| ApiError::Internal(e.into()))?;
    if owns(auth, owner.as_deref()) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "{} does not own group {}/{}",
            auth.0, snapshot.group.backup_type, snapshot.group.backup_id
        )))
    }
}

pub(super) async fn forget(
    state: &Arc<ServerState>,
    auth: &AuthId,
    params: &PathParams,
    req: Request<Incoming>,
) -> ApiResult<Response<Full<Bytes>>> {
    let query: SnapshotParams = parse_query(req.uri().query())?;
    let open = state.open_store(param(params, "store")?)?;
    let snapshot = finished_snapshot(&open, &query)?;
    check_owner(state, auth, &open, &snapshot)?;
    if open.store.is_protected(&snapshot) {
        return Err(ApiError::Conflict(format!(
            "snapshot {snapshot} is protected; clear the flag first"
        )));
    }
    let store = Arc::clone(&open.store);
    let shown = snapshot.to_string();
    blocking(move || Ok(store.forget_snapshot(&snapshot)?)).await?;
    tracing::info!("forgot snapshot {}:{shown}", open.name);
    json_response(&serde_json::json!({}))
}

pub(super) async fn protect(
    state: &Arc<ServerState>,
    auth: &AuthId,
    params: &PathParams,
    req: Request<Incoming>,
) -> ApiResult<Response<Full<Bytes>>> {
    let query: SnapshotParams = parse_query(req.uri().query())?;
    let body: ProtectedRequest = read_json(req.into_body()).await?;
    let open = state.open_store(param(params, "store")?)?;
    let snapshot = finished_snapshot(&open, &query)?;
    check_owner(state, auth, &open, &snapshot)?;
    let store = Arc::clone(&open.store);
    blocking(move || Ok(store.set_protected(&snapshot, body.protected)?)).await?;
    json_response(&serde_json::json!({}))
}

/// `PUT .../owner`: hands a group to another user or token.
pub(super) async fn set_owner(
    state: &Arc<ServerState>,
    params: &PathParams,
    req: Request<Incoming>,
) -> ApiResult<Response<Full<Bytes>>> {
    #[derive(Deserialize)]
    #[serde(rename_all = "kebab-case", deny_unknown_fields)]
    struct GroupQuery {
        #[serde(default)]
        ns: String,
        backup_type: String,
        backup_id: String,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct OwnerBody {
        owner: String,
    }
    let query: GroupQuery = parse_query(req.uri().query())?;
    let body: OwnerBody = read_json(req.into_body()).await?;
    let owner: crate::access::Authid = body
        .owner
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid owner '{}'", body.owner)))?;
    let group = BackupGroup::new(
        query.ns.parse()?,
        query.backup_type.parse()?,
        &query.backup_id,
    )?;
    let open = state.open_store(param(params, "store")?)?;
    if open
        .store
        .list_group_snapshots(&group)
        .map(|s| s.is_empty())
        .unwrap_or(true)
    {
        return Err(ApiError::NotFound(format!(
            "no group {}/{}",
            group.backup_type, group.backup_id
        )));
    }
    let store = Arc::clone(&open.store);
    blocking(move || Ok(store.set_group_owner(&group, &owner.to_string())?)).await?;
    json_response(&serde_json::json!({}))
}
