//! `GET /api2/json/backup` with `Upgrade: backup-protocol-v1`: checks the parameters,
//! reserves the group and the new snapshot directory, answers `101 Switching Protocols`
//! and hands the connection to [`crate::session::backup`].

use std::sync::Arc;

use bytes::Bytes;
use datastore::names::{BackupType, Namespace};
use datastore::snapshot::{BackupGroup, SnapshotRef};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use protocol::routes::BACKUP_PROTOCOL;
use protocol::types::{BackupParams, SNAPSHOT_HEADER};

use crate::auth::AuthId;
use crate::error::{ApiError, ApiResult};
use crate::http_util::{blocking, parse_query};
use crate::session::backup::BackupSession;
use crate::state::ServerState;

pub(super) async fn start(
    state: Arc<ServerState>,
    auth: AuthId,
    mut req: Request<Incoming>,
) -> ApiResult<Response<Full<Bytes>>> {
    check_upgrade(&req, BACKUP_PROTOCOL)?;
    let params: BackupParams = parse_query(req.uri().query())?;
    let ns: Namespace = params.ns.parse()?;
    let backup_type: BackupType = params.backup_type.parse()?;
    let group = BackupGroup::new(ns, backup_type, &params.backup_id)?;
    let open = state.open_store(&params.store)?;
    if !open.store.namespace_exists(&group.ns) {
        return Err(ApiError::NotFound(format!(
            "namespace '{}' does not exist in datastore '{}': create it first (backup-server namespace create)",
            group.ns, open.name
        )));
    }
    // A new group becomes the caller's at its first finished snapshot; an existing one
    // takes backups only from its owner (or a caller with Datastore.Modify).
    require_owner(
        &state,
        &auth,
        &open,
        &group,
        crate::access::privileges::DATASTORE_MODIFY,
        true,
    )?;
    let guard = state.lock_group(&open.name, &group)?;
    // The task starts before the session touches any chunk: GC never removes chunks
    // younger than the oldest running backup task.
    let task = state.tasks.begin(crate::tasks::TaskSpec {
        task_type: "backup".into(),
        store: Some(open.name.clone()),
        worker_id: Some(format!("{}/{}", group.backup_type, group.backup_id)),
        auth_id: auth.0.clone(),
    })?;

    let store = Arc::clone(&open.store);
    let requested = params.backup_time;
    let group_for_dir = group.clone();
    let snapshot = blocking(move || {
        let newest = store.newest_snapshot_time(&group_for_dir)?;
        let time = choose_backup_time(requested, newest, now_epoch())?;
        let snapshot = SnapshotRef::new(group_for_dir, time)?;
        store.create_snapshot_dir(&snapshot)?;
        Ok(snapshot)
    })
    .await
    .inspect_err(|e| task.finish(Err(anyhow::anyhow!("{e}"))))
    .map_err(|e| match e {
        ApiError::Internal(inner) if inner.is::<TimeConflict>() => {
            ApiError::Conflict(inner.to_string())
        }
        ApiError::Internal(inner) if inner.is::<datastore::names::NameError>() => {
            ApiError::BadRequest(inner.to_string())
        }
        other => other,
    })?;

    tracing::info!(
        "backup session for {}:{} by {}",
        open.name,
        snapshot,
        auth.0
    );
    let upgrade = hyper::upgrade::on(&mut req);
    let snapshot_text = snapshot.to_string();
    task.log(format!("backup of {snapshot} by {}", auth.0));
    let session = Arc::new(BackupSession::new(
        open,
        snapshot,
        Arc::clone(&state.zeros),
        guard,
        task,
        auth.0.clone(),
    ));
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => session.run(upgraded, state).await,
            Err(err) => {
                tracing::warn!("backup session upgrade failed: {err}");
                session.abandon().await;
            }
        }
    });
    switching_protocols(BACKUP_PROTOCOL, &snapshot_text)
}

/// Refuses a caller that lacks `bypass` on the group's namespace and does not own the
/// group. A group without an owner yet is open when `unowned_ok` (a first backup).
pub(super) fn require_owner(
    state: &ServerState,
    auth: &AuthId,
    open: &crate::state::OpenStore,
    group: &BackupGroup,
    bypass: crate::access::Privs,
    unowned_ok: bool,
) -> ApiResult<()> {
    if super::store_privs(state, auth, &open.name, &group.ns)?.intersects(bypass) {
        return Ok(());
    }
    match open
        .store
        .group_owner(group)
        .map_err(|e| ApiError::Internal(e.into()))?
    {
        None if unowned_ok => Ok(()),
        Some(owner) if super::owns(auth, Some(&owner)) => Ok(()),
        _ => Err(ApiError::Forbidden(format!(
            "{} does not own group {}/{}",
            auth.0, group.backup_type, group.backup_id
        ))),
    }
}

/// Refuses a request that does not ask for the protocol this route speaks.
pub(super) fn check_upgrade(req: &Request<Incoming>, protocol: &str) -> ApiResult<()> {
    let upgrade = req
        .headers()
        .get(hyper::header::UPGRADE)
        .and_then(|v| v.to_str().ok());
    if upgrade != Some(protocol) {
        return Err(ApiError::bad_request(format!(
            "this route needs 'Upgrade: {protocol}' (got {upgrade:?})"
        )));
    }
    Ok(())
}

pub(super) fn switching_protocols(
    protocol: &str,
    snapshot: &str,
) -> ApiResult<Response<Full<Bytes>>> {
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(hyper::header::UPGRADE, protocol)
        .header(hyper::header::CONNECTION, "upgrade")
        .header(SNAPSHOT_HEADER, snapshot)
        .body(Full::new(Bytes::new()))
        .map_err(|e| ApiError::Internal(e.into()))
}

#[derive(Debug, thiserror::Error)]
#[error("backup time {requested} is not newer than the group's newest snapshot ({newest})")]
struct TimeConflict {
    requested: i64,
    newest: i64,
}

/// The new snapshot's time: the requested one if it is newer than every existing snapshot
/// of the group; without a request, now, moved past the newest snapshot.
fn choose_backup_time(
    requested: Option<i64>,
    newest: Option<i64>,
    now: i64,
) -> anyhow::Result<i64> {
    match (requested, newest) {
        (Some(requested), Some(newest)) if requested <= newest => {
            Err(TimeConflict { requested, newest }.into())
        }
        (Some(requested), _) => Ok(requested),
        (None, Some(newest)) => Ok(now.max(newest + 1)),
        (None, None) => Ok(now),
    }
}

fn now_epoch() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::choose_backup_time;

    #[test]
    fn backup_time_is_always_newer_than_the_group() {
        assert_eq!(choose_backup_time(None, None, 100).unwrap(), 100);
        assert_eq!(choose_backup_time(None, Some(50), 100).unwrap(), 100);
        assert_eq!(choose_backup_time(None, Some(100), 100).unwrap(), 101);
        assert_eq!(choose_backup_time(None, Some(150), 100).unwrap(), 151);
        assert_eq!(choose_backup_time(Some(120), Some(100), 100).unwrap(), 120);
        assert!(choose_backup_time(Some(100), Some(100), 100).is_err());
        assert!(choose_backup_time(Some(90), Some(100), 100).is_err());
    }
}
