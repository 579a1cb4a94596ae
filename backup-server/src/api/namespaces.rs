//! `/api2/json/admin/datastore/{store}/namespace`: list, create and remove namespaces.

use std::sync::Arc;

use bytes::Bytes;
use datastore::names::Namespace;
use datastore::store::StoreError;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use protocol::types::{NamespaceCreateRequest, NamespaceListParams, NamespaceRemoveParams};

use super::{PathParams, param};
use crate::error::{ApiError, ApiResult, json_response};
use crate::http_util::{blocking, parse_query, read_json};
use crate::state::ServerState;

/// Maps the datastore's namespace errors to the caller's mistakes.
fn store_error(err: anyhow::Error) -> ApiError {
    match err.downcast::<StoreError>() {
        Ok(StoreError::NamespaceNotFound { ns }) => {
            ApiError::NotFound(format!("namespace '{ns}' does not exist"))
        }
        Ok(
            e @ (StoreError::NamespaceExists { .. }
            | StoreError::NamespaceNotEmpty { .. }
            | StoreError::NamespaceProtected { .. }),
        ) => ApiError::Conflict(e.to_string()),
        Ok(StoreError::Name(e)) => ApiError::BadRequest(e.to_string()),
        Ok(other) => ApiError::Internal(other.into()),
        Err(other) => ApiError::Internal(other),
    }
}

async fn run<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> ApiResult<T> {
    match blocking(move || f().map_err(anyhow::Error::from)).await {
        Ok(value) => Ok(value),
        Err(ApiError::Internal(err)) => Err(store_error(err)),
        Err(other) => Err(other),
    }
}

pub(super) async fn list(
    state: &Arc<ServerState>,
    params: &PathParams,
    req: Request<Incoming>,
) -> ApiResult<Response<Full<Bytes>>> {
    let query: NamespaceListParams = parse_query(req.uri().query())?;
    let parent: Namespace = query.parent.parse()?;
    let open = state.open_store(param(params, "store")?)?;
    let store = Arc::clone(&open.store);
    let names = run(move || {
        if !store.namespace_exists(&parent) {
            return Err(StoreError::NamespaceNotFound {
                ns: parent.to_string(),
            });
        }
        let mut found = Vec::new();
        let mut queue = vec![parent];
        while let Some(ns) = queue.pop() {
            for child in store.list_child_namespaces(&ns)? {
                found.push(child.to_string());
                queue.push(child);
            }
        }
        found.sort();
        Ok(found)
    })
    .await?;
    json_response(&names)
}

pub(super) async fn create(
    state: &Arc<ServerState>,
    params: &PathParams,
    req: Request<Incoming>,
) -> ApiResult<Response<Full<Bytes>>> {
    let body: NamespaceCreateRequest = read_json(req.into_body()).await?;
    let ns: Namespace = body.ns.parse()?;
    if ns.is_root() {
        return Err(ApiError::bad_request("the root namespace always exists"));
    }
    let open = state.open_store(param(params, "store")?)?;
    let store = Arc::clone(&open.store);
    run(move || store.create_namespace(&ns)).await?;
    json_response(&serde_json::json!({}))
}

pub(super) async fn remove(
    state: &Arc<ServerState>,
    params: &PathParams,
    req: Request<Incoming>,
) -> ApiResult<Response<Full<Bytes>>> {
    let query: NamespaceRemoveParams = parse_query(req.uri().query())?;
    let ns: Namespace = query.ns.parse()?;
    if ns.is_root() {
        return Err(ApiError::bad_request(
            "the root namespace cannot be removed",
        ));
    }
    let open = state.open_store(param(params, "store")?)?;
    let store = Arc::clone(&open.store);
    run(move || store.remove_namespace(&ns, query.recursive)).await?;
    json_response(&serde_json::json!({}))
}
