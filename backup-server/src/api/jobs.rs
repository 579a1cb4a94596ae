//! `/api2/json/config/jobs`: list, add, change, remove and run scheduled GC, verify and
//! prune jobs. Edits carry the digest of the jobs config they were based on; a stale one
//! is a 409, so concurrent admins never overwrite each other.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use protocol::types::TaskStarted;
use serde::{Deserialize, Serialize};

use super::{PathParams, param};
use crate::error::{ApiError, ApiResult, json_response};
use crate::http_util::{parse_query, read_json};
use crate::jobs::{JobConfig, JobError, JobState};
use crate::state::ServerState;

/// Body of add and update.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobRequest {
    job: JobConfig,
    #[serde(default)]
    digest: Option<String>,
}

#[derive(Serialize)]
struct JobListItem {
    config: JobConfig,
    state: JobState,
}

#[derive(Serialize)]
struct JobList {
    jobs: Vec<JobListItem>,
    digest: String,
}

fn job_error(err: JobError) -> ApiError {
    match err {
        JobError::Invalid(msg) => ApiError::BadRequest(msg),
        JobError::NotFound(id) => ApiError::NotFound(format!("no job named '{id}'")),
        e @ (JobError::Exists(_) | JobError::Conflict { .. } | JobError::Running { .. }) => {
            ApiError::Conflict(e.to_string())
        }
        JobError::Config(crate::config_store::ConfigError::Conflict { path }) => {
            ApiError::Conflict(format!(
                "{} was changed by someone else: reload and try again",
                path.display()
            ))
        }
        other => ApiError::Internal(other.into()),
    }
}

async fn run<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, JobError> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("worker failed: {e}")))?
        .map_err(job_error)
}

pub(super) async fn list(state: &Arc<ServerState>) -> ApiResult<Response<Full<Bytes>>> {
    let scheduler = Arc::clone(state.scheduler()?);
    let config = state.config.clone();
    let list = run(move || {
        let digest = crate::jobs::load_jobs(&config)?.digest;
        let jobs = scheduler
            .list()?
            .into_iter()
            .map(|(config, state)| JobListItem { config, state })
            .collect();
        Ok(JobList { jobs, digest })
    })
    .await?;
    json_response(&list)
}

pub(super) async fn add(
    state: &Arc<ServerState>,
    req: Request<Incoming>,
) -> ApiResult<Response<Full<Bytes>>> {
    let request: JobRequest = read_json(req.into_body()).await?;
    let config = state.config.clone();
    let file =
        run(move || crate::jobs::add_job(&config, request.job, request.digest.as_deref())).await?;
    json_response(&serde_json::json!({ "digest": file.digest }))
}

pub(super) async fn update(
    state: &Arc<ServerState>,
    params: &PathParams,
    req: Request<Incoming>,
) -> ApiResult<Response<Full<Bytes>>> {
    let request: JobRequest = read_json(req.into_body()).await?;
    let id = param(params, "id")?.to_string();
    let config = state.config.clone();
    let file = run(move || {
        let new = request.job;
        crate::jobs::update_job(&config, &id, |job| *job = new, request.digest.as_deref())
    })
    .await?;
    json_response(&serde_json::json!({ "digest": file.digest }))
}

pub(super) async fn remove(
    state: &Arc<ServerState>,
    params: &PathParams,
    req: Request<Incoming>,
) -> ApiResult<Response<Full<Bytes>>> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Query {
        #[serde(default)]
        digest: Option<String>,
    }
    let query: Query = parse_query(req.uri().query())?;
    let id = param(params, "id")?.to_string();
    let config = state.config.clone();
    let file = run(move || crate::jobs::remove_job(&config, &id, query.digest.as_deref())).await?;
    json_response(&serde_json::json!({ "digest": file.digest }))
}

pub(super) async fn run_now(
    state: &Arc<ServerState>,
    params: &PathParams,
) -> ApiResult<Response<Full<Bytes>>> {
    let id = param(params, "id")?.to_string();
    let scheduler = Arc::clone(state.scheduler()?);
    let upid = run(move || scheduler.run_now(&id, crate::maintenance::now())).await?;
    json_response(&TaskStarted { upid })
}
