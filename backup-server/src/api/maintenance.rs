//! Garbage collection, verify and prune: each checks its request, then runs as a task on a
//! blocking thread and answers with the task's id at once (prune also with its plan).

use std::sync::Arc;

use bytes::Bytes;
use datastore::names::{BackupType, Namespace};
use datastore::snapshot::{BackupGroup, SnapshotRef};
use datastore::verify::VerifyOptions;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use protocol::types::{PrunePlanItem, PruneRequest, PruneResponse, TaskStarted, VerifyRequest};

use super::{PathParams, param};
use crate::access::privileges::{DATASTORE_MODIFY, DATASTORE_PRUNE, DATASTORE_VERIFY};
use crate::auth::AuthId;
use crate::error::{ApiError, ApiResult, json_response};
use crate::http_util::{blocking, read_json};
use crate::state::ServerState;

use crate::maintenance::now;

/// `POST .../gc`: one GC per datastore at a time (409 otherwise).
pub(super) fn gc(
    state: &Arc<ServerState>,
    auth: &AuthId,
    params: &PathParams,
) -> ApiResult<Response<Full<Bytes>>> {
    let open = state.open_store(param(params, "store")?)?;
    if state.tasks.is_running("gc", &open.name) {
        return Err(ApiError::Conflict(format!(
            "garbage collection of '{}' is already running",
            open.name
        )));
    }
    let upid = crate::maintenance::spawn_gc(state, open, &auth.0)?;
    json_response(&TaskStarted { upid })
}

/// `POST .../verify`: a snapshot, a group, a namespace (and below) or the whole store.
pub(super) async fn verify(
    state: &Arc<ServerState>,
    auth: &AuthId,
    params: &PathParams,
    req: Request<Incoming>,
) -> ApiResult<Response<Full<Bytes>>> {
    let request: VerifyRequest = read_json(req.into_body()).await?;
    let open = state.open_store(param(params, "store")?)?;
    let ns: Namespace = request.ns.as_deref().unwrap_or("").parse()?;
    super::require_store_privs(state, auth, &open.name, &ns, DATASTORE_VERIFY)?;
    let selection = Selection::from_request(&request)?;
    let store = Arc::clone(&open.store);
    let snapshots = blocking(move || {
        let all = store.all_snapshots()?;
        Ok(all
            .into_iter()
            .filter(|(s, finished)| *finished && selection.matches(s))
            .map(|(s, _)| s)
            .collect::<Vec<_>>())
    })
    .await?;
    if snapshots.is_empty() {
        return Err(ApiError::NotFound("no finished snapshot matches".into()));
    }
    let options = VerifyOptions {
        outdated_after_secs: request.outdated_after_days.map(|d| i64::from(d) * 86_400),
        only_unverified: request.only_unverified,
        now: now(),
    };
    let upid = crate::maintenance::spawn_verify(state, open, snapshots, options, &auth.0)?;
    json_response(&TaskStarted { upid })
}

/// Which snapshots a verify request names.
struct Selection {
    ns: Option<Namespace>,
    backup_type: Option<BackupType>,
    backup_id: Option<String>,
    backup_time: Option<i64>,
}

impl Selection {
    fn from_request(request: &VerifyRequest) -> ApiResult<Self> {
        let ns = request
            .ns
            .as_deref()
            .map(str::parse::<Namespace>)
            .transpose()?;
        let backup_type = request
            .backup_type
            .as_deref()
            .map(str::parse::<BackupType>)
            .transpose()?;
        if let Some(id) = &request.backup_id {
            datastore::names::validate_backup_id(id)?;
        }
        if request.backup_time.is_some() && request.backup_id.is_none() {
            return Err(ApiError::bad_request(
                "backup-time needs backup-type and backup-id",
            ));
        }
        Ok(Self {
            ns,
            backup_type,
            backup_id: request.backup_id.clone(),
            backup_time: request.backup_time,
        })
    }

    /// A group or snapshot is looked up in exactly its namespace (the root if none is
    /// given); a namespace alone selects everything in and below it.
    fn matches(&self, snapshot: &SnapshotRef) -> bool {
        let group = &snapshot.group;
        if self.backup_id.is_some() {
            let ns = self.ns.clone().unwrap_or_default();
            return group.ns == ns
                && self.backup_type.is_none_or(|t| t == group.backup_type)
                && self.backup_id.as_deref() == Some(group.backup_id.as_str())
                && self.backup_time.is_none_or(|t| t == snapshot.time);
        }
        let in_ns = self
            .ns
            .as_ref()
            .is_none_or(|ns| group.ns.components().starts_with(ns.components()));
        in_ns && self.backup_type.is_none_or(|t| t == group.backup_type)
    }
}

/// `POST .../prune`: computes the plan per group; a dry run returns only the plan, else a
/// task removes what the plan removes.
pub(super) async fn prune(
    state: &Arc<ServerState>,
    auth: &AuthId,
    params: &PathParams,
    req: Request<Incoming>,
) -> ApiResult<Response<Full<Bytes>>> {
    let request: PruneRequest = read_json(req.into_body()).await?;
    let store_name = param(params, "store")?;
    let prune_privs = DATASTORE_MODIFY.union(DATASTORE_PRUNE);
    super::require_store_privs(state, auth, store_name, &request.ns.parse()?, prune_privs)?;
    let rules = crate::jobs::config::keep_rules(&request.keep)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    if rules.is_empty() {
        return Err(ApiError::bad_request(
            "no keep option given: pass at least one --keep-* option (prune never removes everything by default)",
        ));
    }
    let ns: Namespace = request.ns.parse()?;
    let prune_ns = ns.clone();
    let group_filter = match (&request.backup_type, &request.backup_id) {
        (Some(t), Some(id)) => Some(BackupGroup::new(ns.clone(), t.parse()?, id)?),
        (None, None) => None,
        _ => {
            return Err(ApiError::bad_request(
                "give both backup-type and backup-id, or neither",
            ));
        }
    };
    let open = state.open_store(param(params, "store")?)?;
    let store = Arc::clone(&open.store);
    let now = now();
    // Without Datastore.Modify (a power user) only the caller's own groups are pruned.
    let only_own = !super::store_privs(state, auth, &open.name, &ns)?.intersects(DATASTORE_MODIFY);
    let caller = auth.clone();
    let decisions = blocking(move || {
        let mut decisions =
            crate::maintenance::plan_prune(&store, &ns, group_filter.as_ref(), &rules, now)?;
        if only_own {
            let mut owners = std::collections::HashMap::new();
            let mut kept = Vec::new();
            for (snap, reason) in decisions {
                if !owners.contains_key(&snap.group) {
                    owners.insert(snap.group.clone(), store.group_owner(&snap.group)?);
                }
                if super::owns(&caller, owners[&snap.group].as_deref()) {
                    kept.push((snap, reason));
                }
            }
            decisions = kept;
        }
        Ok(decisions)
    })
    .await?;
    let items: Vec<PrunePlanItem> = decisions
        .iter()
        .map(|(snap, reason)| PrunePlanItem {
            snapshot: snap.to_string(),
            ns: snap.group.ns.to_string(),
            keep: reason.is_some(),
            reason: reason.map(|r| r.to_string()),
        })
        .collect();
    if request.dry_run {
        return json_response(&PruneResponse {
            plan: items,
            upid: None,
        });
    }
    let removals: Vec<SnapshotRef> = decisions
        .into_iter()
        .filter(|(_, reason)| reason.is_none())
        .map(|(s, _)| s)
        .collect();
    let upid = crate::maintenance::spawn_prune(state, open, removals, &prune_ns, &auth.0)?;
    json_response(&PruneResponse {
        plan: items,
        upid: Some(upid),
    })
}
