//! `/api2/json/nodes/localhost/tasks...`: list tasks, read a task's status and log (also
//! while it runs), abort a running task.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use protocol::types::TaskListParams;
use serde::Deserialize;

use super::privileges::{TASK_ABORT_ANY, TASK_AUDIT};
use super::{PathParams, caller_privs, param};
use crate::auth::AuthId;
use crate::error::{ApiError, ApiResult, json_response};
use crate::http_util::parse_query;
use crate::state::ServerState;

fn not_found(upid: &str) -> ApiError {
    ApiError::NotFound(format!("no task {upid}"))
}

/// Whether the caller may see (or, with `needed`, act on) a task of `owner`: its own
/// tasks always, others' with `needed` on `/`.
fn allowed(
    state: &ServerState,
    auth: &AuthId,
    owner: &str,
    needed: crate::access::Privs,
) -> ApiResult<bool> {
    Ok(owner == auth.0
        || caller_privs(state, auth, &crate::access::AclPath::root())?.intersects(needed))
}

pub(super) fn list(
    state: &ServerState,
    auth: &AuthId,
    req: Request<Incoming>,
) -> ApiResult<Response<Full<Bytes>>> {
    let params: TaskListParams = parse_query(req.uri().query())?;
    let all = caller_privs(state, auth, &crate::access::AclPath::root())?.intersects(TASK_AUDIT);
    let mut tasks = state.tasks.list(&TaskListParams {
        limit: None,
        ..params.clone()
    })?;
    if !all {
        tasks.retain(|t| t.auth_id == auth.0);
    }
    if let Some(limit) = params.limit {
        tasks.truncate(limit);
    }
    json_response(&tasks)
}

/// The task's status if the caller may see it (404 otherwise, as if it did not exist).
fn visible_task(
    state: &ServerState,
    auth: &AuthId,
    upid: &str,
    needed: crate::access::Privs,
) -> ApiResult<protocol::types::TaskStatus> {
    let status = state.tasks.status(upid)?.ok_or_else(|| not_found(upid))?;
    if !allowed(state, auth, &status.auth_id, needed)? {
        return Err(not_found(upid));
    }
    Ok(status)
}

pub(super) fn status(
    state: &ServerState,
    auth: &AuthId,
    params: &PathParams,
) -> ApiResult<Response<Full<Bytes>>> {
    let upid = param(params, "upid")?;
    json_response(&visible_task(state, auth, upid, TASK_AUDIT)?)
}

pub(super) fn log(
    state: &ServerState,
    auth: &AuthId,
    params: &PathParams,
    req: Request<Incoming>,
) -> ApiResult<Response<Full<Bytes>>> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct LogQuery {
        #[serde(default)]
        start: usize,
    }
    let query: LogQuery = parse_query(req.uri().query())?;
    let upid = param(params, "upid")?;
    visible_task(state, auth, upid, TASK_AUDIT)?;
    let log = state
        .tasks
        .read_log(upid, query.start)?
        .ok_or_else(|| not_found(upid))?;
    json_response(&log)
}

pub(super) fn abort(
    state: &ServerState,
    auth: &AuthId,
    params: &PathParams,
) -> ApiResult<Response<Full<Bytes>>> {
    let upid = param(params, "upid")?;
    visible_task(state, auth, upid, TASK_ABORT_ANY)?;
    match state.tasks.abort(upid)? {
        None => Err(not_found(upid)),
        Some(false) => Err(ApiError::Conflict(format!("task {upid} is not running"))),
        Some(true) => json_response(&serde_json::json!({})),
    }
}
