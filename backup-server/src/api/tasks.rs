//! `/api2/json/nodes/localhost/tasks...`: list tasks, read a task's status and log (also
//! while it runs), abort a running task.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use protocol::types::TaskListParams;
use serde::Deserialize;

use super::{PathParams, param};
use crate::error::{ApiError, ApiResult, json_response};
use crate::http_util::parse_query;
use crate::state::ServerState;

fn not_found(upid: &str) -> ApiError {
    ApiError::NotFound(format!("no task {upid}"))
}

pub(super) fn list(
    state: &ServerState,
    req: Request<Incoming>,
) -> ApiResult<Response<Full<Bytes>>> {
    let params: TaskListParams = parse_query(req.uri().query())?;
    json_response(&state.tasks.list(&params)?)
}

pub(super) fn status(state: &ServerState, params: &PathParams) -> ApiResult<Response<Full<Bytes>>> {
    let upid = param(params, "upid")?;
    let status = state.tasks.status(upid)?.ok_or_else(|| not_found(upid))?;
    json_response(&status)
}

pub(super) fn log(
    state: &ServerState,
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
    let log = state
        .tasks
        .read_log(upid, query.start)?
        .ok_or_else(|| not_found(upid))?;
    json_response(&log)
}

pub(super) fn abort(state: &ServerState, params: &PathParams) -> ApiResult<Response<Full<Bytes>>> {
    let upid = param(params, "upid")?;
    match state.tasks.abort(upid)? {
        None => Err(not_found(upid)),
        Some(false) => Err(ApiError::Conflict(format!("task {upid} is not running"))),
        Some(true) => json_response(&serde_json::json!({})),
    }
}
