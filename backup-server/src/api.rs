//! REST dispatch: authenticate, match the route table of [`protocol::routes`], call the
//! handler, map its error. Handlers live in one file per resource under `api/`.

mod access;
mod backup;
mod jobs;
mod maintenance;
mod namespaces;
pub mod privileges;
mod reader;
mod snapshots;
mod status;
mod tasks;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use protocol::routes::{self, Method, Route};

use crate::auth::{AuthId, authenticate};
use crate::error::{ApiError, ApiResult};
use crate::state::ServerState;

/// Path parameters captured from a route template.
pub type PathParams = Vec<(String, String)>;

/// Answers one request of a plain (not upgraded) connection.
pub async fn handle(
    state: Arc<ServerState>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let response = match dispatch(state, req, peer).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    };
    tracing::info!("{peer} {method} {path} -> {}", response.status().as_u16());
    response
}

async fn dispatch(
    state: Arc<ServerState>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> ApiResult<Response<Full<Bytes>>> {
    // The password login is the one route without authentication.
    if req.method() == hyper::Method::POST && req.uri().path() == routes::LOGIN.path {
        return access::login(&state, peer, req).await;
    }
    let auth_header = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let auth = authenticate(&state.config, auth_header.as_deref())?;
    let method = to_method(req.method())?;
    let (route, params) = match_route(routes::REST_ROUTES, method, req.uri().path())?;
    let requirement = privileges::requirement(route).ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!(
            "route {route:?} has no privilege requirement"
        ))
    })?;
    check_requirement(&state, &auth, requirement, &params, req.uri().query())?;
    match route {
        r if r == routes::VERSION => version(&auth),
        r if r == routes::OPENAPI => {
            let doc = crate::openapi::document()?;
            Ok(Response::builder()
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(doc.to_string())))
                .map_err(|e| ApiError::Internal(e.into()))?)
        }
        r if r == routes::USERS => access::users(&state).await,
        r if r == routes::ADD_USER => access::add_user(&state, req).await,
        r if r == routes::UPDATE_USER => access::update_user(&state, &params, req).await,
        r if r == routes::REMOVE_USER => access::remove_user(&state, &params).await,
        r if r == routes::ADD_TOKEN => access::add_token(&state, &auth, &params, req).await,
        r if r == routes::ACL => access::acl(&state).await,
        r if r == routes::SET_ACL => access::set_acl(&state, req).await,
        r if r == routes::SNAPSHOTS => snapshots::list(&state, &auth, &params, req).await,
        r if r == routes::FORGET_SNAPSHOT => snapshots::forget(&state, &auth, &params, req).await,
        r if r == routes::SNAPSHOT_PROTECTED => {
            snapshots::protect(&state, &auth, &params, req).await
        }
        r if r == routes::GROUP_OWNER => snapshots::set_owner(&state, &params, req).await,
        r if r == routes::DATASTORE_STATUS => status::get(&state, &params).await,
        r if r == routes::DATASTORE_CHUNKER => status::chunker(&state, &params, &req),
        r if r == routes::START_GC => maintenance::gc(&state, &auth, &params),
        r if r == routes::START_VERIFY => maintenance::verify(&state, &auth, &params, req).await,
        r if r == routes::PRUNE => maintenance::prune(&state, &auth, &params, req).await,
        r if r == routes::NAMESPACES => namespaces::list(&state, &params, req).await,
        r if r == routes::CREATE_NAMESPACE => namespaces::create(&state, &params, req).await,
        r if r == routes::REMOVE_NAMESPACE => namespaces::remove(&state, &params, req).await,
        r if r == routes::JOBS => jobs::list(&state).await,
        r if r == routes::ADD_JOB => jobs::add(&state, req).await,
        r if r == routes::UPDATE_JOB => jobs::update(&state, &params, req).await,
        r if r == routes::REMOVE_JOB => jobs::remove(&state, &params, req).await,
        r if r == routes::RUN_JOB => jobs::run_now(&state, &params).await,
        r if r == routes::TASKS => tasks::list(&state, &auth, req),
        r if r == routes::TASK_STATUS => tasks::status(&state, &auth, &params),
        r if r == routes::TASK_LOG => tasks::log(&state, &auth, &params, req),
        r if r == routes::TASK_ABORT => tasks::abort(&state, &auth, &params),
        r if r == routes::BACKUP => backup::start(state, auth, req).await,
        r if r == routes::READER => reader::start(state, auth, req).await,
        other => Err(ApiError::Internal(anyhow::anyhow!(
            "route {other:?} has no handler"
        ))),
    }
}

/// Refuses a caller that lacks what the route requires (403), before the handler runs.
fn check_requirement(
    state: &ServerState,
    auth: &AuthId,
    requirement: privileges::Requirement,
    params: &PathParams,
    query: Option<&str>,
) -> ApiResult<()> {
    let (path, needed) = match requirement {
        privileges::Requirement::Authenticated
        | privileges::Requirement::Public
        | privileges::Requirement::DatastoreBody(_) => {
            return Ok(());
        }
        privileges::Requirement::System(needed) => (crate::access::AclPath::root(), needed),
        privileges::Requirement::Datastore(needed) => {
            let store = param(params, "store")
                .ok()
                .map(str::to_string)
                .or_else(|| query_value(query, "store"));
            let Some(store) = store else {
                // The handler refuses the request for its missing store.
                return Ok(());
            };
            let ns: datastore::names::Namespace =
                query_value(query, "ns").unwrap_or_default().parse()?;
            let path = crate::access::AclPath::datastore(&store, &ns)
                .map_err(|e| ApiError::BadRequest(e.to_string()))?;
            (path, needed)
        }
    };
    let privs = caller_privs(state, auth, &path)?;
    if privs.intersects(needed) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "{} needs {} on {path}",
            auth.0,
            needed.names().join(" or ")
        )))
    }
}

/// The caller's privileges on an ACL path.
pub fn caller_privs(
    state: &ServerState,
    auth: &AuthId,
    path: &crate::access::AclPath,
) -> ApiResult<crate::access::Privs> {
    let access = crate::access::AccessConfig::load(&state.config)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("{e}")))?;
    Ok(access.privs(&auth.authid()?, path))
}

/// Refuses (403) a caller without any of `needed` on the datastore namespace.
pub fn require_store_privs(
    state: &ServerState,
    auth: &AuthId,
    store: &str,
    ns: &datastore::names::Namespace,
    needed: crate::access::Privs,
) -> ApiResult<()> {
    if store_privs(state, auth, store, ns)?.intersects(needed) {
        return Ok(());
    }
    Err(ApiError::Forbidden(format!(
        "{} needs {} on /datastore/{store}{}{ns}",
        auth.0,
        needed.names().join(" or "),
        if ns.is_root() { "" } else { "/" }
    )))
}

/// The caller's privileges on a datastore namespace.
pub fn store_privs(
    state: &ServerState,
    auth: &AuthId,
    store: &str,
    ns: &datastore::names::Namespace,
) -> ApiResult<crate::access::Privs> {
    let path = crate::access::AclPath::datastore(store, ns)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    caller_privs(state, auth, &path)
}

/// Whether `auth` owns a group owned by `owner`: the same auth id, or the user of an
/// owning token.
pub fn owns(auth: &AuthId, owner: Option<&str>) -> bool {
    match owner {
        None => false,
        Some(owner) => {
            owner == auth.0
                || owner
                    .split_once('!')
                    .is_some_and(|(user, _)| user == auth.0)
        }
    }
}

fn query_value(query: Option<&str>, key: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key)
            .then(|| protocol::routes::percent_decode(v))
            .flatten()
    })
}

fn version(auth: &AuthId) -> ApiResult<Response<Full<Bytes>>> {
    crate::error::json_response(&protocol::types::VersionResponse {
        version: env!("CARGO_PKG_VERSION").to_string(),
        auth_id: auth.0.clone(),
    })
}

pub fn to_method(method: &hyper::Method) -> ApiResult<Method> {
    Ok(match *method {
        hyper::Method::GET => Method::Get,
        hyper::Method::POST => Method::Post,
        hyper::Method::PUT => Method::Put,
        hyper::Method::DELETE => Method::Delete,
        _ => {
            return Err(ApiError::bad_request(format!(
                "method {method} is not supported"
            )));
        }
    })
}

/// Finds the route for a method and path; `{name}` template segments capture one
/// percent-decoded path segment each.
pub fn match_route(table: &[Route], method: Method, path: &str) -> ApiResult<(Route, PathParams)> {
    let segments: Vec<&str> = path.split('/').collect();
    let mut path_known = false;
    for route in table {
        let template: Vec<&str> = route.path.split('/').collect();
        if template.len() != segments.len() {
            continue;
        }
        let mut params = Vec::new();
        let matched = template.iter().zip(&segments).all(|(t, s)| {
            if let Some(name) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                match protocol::routes::percent_decode(s) {
                    Some(value) if !value.is_empty() => {
                        params.push((name.to_string(), value));
                        true
                    }
                    _ => false,
                }
            } else {
                t == s
            }
        });
        if matched {
            if route.method == method {
                return Ok((*route, params));
            }
            path_known = true;
        }
    }
    if path_known {
        Err(ApiError::bad_request(format!(
            "method not allowed on {path}"
        )))
    } else {
        Err(ApiError::NotFound(format!("no such route: {path}")))
    }
}

/// The value of a captured path parameter.
pub fn param<'a>(params: &'a PathParams, name: &str) -> ApiResult<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("route lacks parameter {name}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_with_parameters() {
        let (route, params) = match_route(
            routes::REST_ROUTES,
            Method::Get,
            "/api2/json/admin/datastore/st1/snapshots",
        )
        .unwrap();
        assert_eq!(route, routes::SNAPSHOTS);
        assert_eq!(params, vec![("store".to_string(), "st1".to_string())]);
        assert!(matches!(
            match_route(routes::REST_ROUTES, Method::Get, "/api2/json/nope"),
            Err(ApiError::NotFound(_))
        ));
        assert!(matches!(
            match_route(routes::REST_ROUTES, Method::Post, "/api2/json/version"),
            Err(ApiError::BadRequest(_))
        ));
        assert!(
            match_route(
                routes::REST_ROUTES,
                Method::Get,
                "/api2/json/admin/datastore//snapshots"
            )
            .is_err()
        );
    }
}
