//! `/api2/json/access/...`: password login, users, API tokens and the ACL.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde::{Deserialize, Serialize};

use super::{PathParams, caller_privs, param};
use crate::access::privileges::PERMISSIONS_MODIFY;
use crate::access::tokens::TokenEntry;
use crate::access::{AccessError, AclEntry, AclPath, Authid, Role, UserConfig, Userid};
use crate::auth::AuthId;
use crate::error::{ApiError, ApiResult, json_response};
use crate::http_util::{blocking, read_json};
use crate::state::ServerState;

fn access_error(err: AccessError) -> ApiError {
    match err {
        AccessError::NotFound { .. } => ApiError::NotFound(err.to_string()),
        AccessError::Config(crate::config_store::ConfigError::Conflict { .. })
        | AccessError::Conflict(_) => ApiError::Conflict(err.to_string()),
        AccessError::InvalidCredentials | AccessError::Expired | AccessError::BadTicket => {
            ApiError::Unauthorized
        }
        AccessError::PermissionDenied { .. } => ApiError::Forbidden(err.to_string()),
        AccessError::RateLimited { .. } => ApiError::TooManyRequests(err.to_string()),
        AccessError::Config(e) => ApiError::Internal(e.into()),
        other => ApiError::BadRequest(other.to_string()),
    }
}

async fn run<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AccessError> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("worker failed: {e}")))?
        .map_err(access_error)
}

/// A new password's hash, after the strength check.
fn hash_new_password(password: &str) -> Result<String, AccessError> {
    crate::access::users::check_password_strength(password)?;
    crate::access::users::hash_password(password).map_err(|e| AccessError::Conflict(e.to_string()))
}

fn parse<T: std::str::FromStr>(what: &str, value: &str) -> ApiResult<T> {
    value
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid {what} '{value}'")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    username: String,
    password: String,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct LoginResponse {
    username: String,
    ticket: String,
    csrf_token: String,
}

/// `POST /access/ticket`: failed logins are limited per source address and logged.
pub(super) async fn login(
    state: &Arc<ServerState>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> ApiResult<Response<Full<Bytes>>> {
    let now = crate::maintenance::now();
    if let Err(retry_after) = state.login_limiter.check(peer.ip(), now) {
        tracing::warn!("login from {peer} refused: rate limited");
        return Err(ApiError::TooManyRequests(format!(
            "too many failed logins from this address: try again in {retry_after} s"
        )));
    }
    let request: LoginRequest = read_json(req.into_body()).await?;
    let config = state.config.clone();
    let username = request.username.clone();
    let result = blocking(move || {
        let Ok(userid) = username.parse::<Userid>() else {
            return Ok(Err(AccessError::InvalidCredentials));
        };
        let checked =
            crate::access::authenticate_password(&config, &userid, &request.password, now);
        let key = crate::access::ticket::load_or_create_key(
            &config.path(crate::access::TICKET_KEY_FILE),
        )?;
        Ok(checked.map(|()| {
            let ticket = crate::access::ticket::create_ticket(&userid, now, &key);
            let csrf = crate::access::ticket::create_csrf_token(&userid, now, &key);
            LoginResponse {
                username: userid.to_string(),
                ticket,
                csrf_token: csrf,
            }
        }))
    })
    .await?;
    match result {
        Ok(response) => {
            state.login_limiter.record_success(peer.ip());
            tracing::info!("login of {} from {peer}", response.username);
            json_response(&response)
        }
        Err(err) => {
            state.login_limiter.record_failure(peer.ip(), now);
            tracing::warn!("failed login for {:?} from {peer}", request.username);
            Err(access_error(err))
        }
    }
}

#[derive(Serialize)]
struct UserInfo {
    userid: String,
    enable: bool,
    expire: Option<i64>,
    comment: Option<String>,
}

pub(super) async fn users(state: &Arc<ServerState>) -> ApiResult<Response<Full<Bytes>>> {
    let config = state.config.clone();
    let users = run(move || {
        let file: crate::config_store::Versioned<crate::access::UsersFile> =
            crate::config_store::load(&config.path(crate::access::USERS_FILE))?;
        Ok(file.data.users)
    })
    .await?;
    let list: Vec<UserInfo> = users
        .into_iter()
        .map(|u| UserInfo {
            userid: u.userid.to_string(),
            enable: u.enable,
            expire: u.expire,
            comment: u.comment,
        })
        .collect();
    json_response(&list)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddUserRequest {
    userid: String,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    expire: Option<i64>,
    #[serde(default)]
    digest: Option<String>,
}

pub(super) async fn add_user(
    state: &Arc<ServerState>,
    req: Request<Incoming>,
) -> ApiResult<Response<Full<Bytes>>> {
    let request: AddUserRequest = read_json(req.into_body()).await?;
    let userid: Userid = parse("userid", &request.userid)?;
    if userid.is_root() {
        return Err(ApiError::bad_request("root@local exists always"));
    }
    let config = state.config.clone();
    run(move || {
        let hash = request
            .password
            .as_deref()
            .map(hash_new_password)
            .transpose()?;
        crate::access::update_users(&config, request.digest.as_deref(), |file| {
            if file.get(&userid).is_some() {
                return Err(AccessError::Conflict(format!(
                    "user {userid} exists already"
                )));
            }
            let mut user = UserConfig::new(userid.clone());
            user.password_hash = hash;
            user.comment = request.comment;
            user.expire = request.expire;
            file.users.push(user);
            Ok(())
        })
    })
    .await?;
    json_response(&serde_json::json!({}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateUserRequest {
    #[serde(default)]
    enable: Option<bool>,
    #[serde(default)]
    expire: Option<i64>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    digest: Option<String>,
}

pub(super) async fn update_user(
    state: &Arc<ServerState>,
    params: &PathParams,
    req: Request<Incoming>,
) -> ApiResult<Response<Full<Bytes>>> {
    let userid: Userid = parse("userid", param(params, "userid")?)?;
    let request: UpdateUserRequest = read_json(req.into_body()).await?;
    let config = state.config.clone();
    run(move || {
        let hash = request
            .password
            .as_deref()
            .map(hash_new_password)
            .transpose()?;
        crate::access::update_users(&config, request.digest.as_deref(), |file| {
            let user = file.get_mut(&userid).ok_or_else(|| AccessError::NotFound {
                what: "user",
                name: userid.to_string(),
            })?;
            if let Some(enable) = request.enable {
                user.enable = enable;
            }
            if let Some(expire) = request.expire {
                user.expire = (expire != 0).then_some(expire);
            }
            if let Some(comment) = request.comment {
                user.comment = Some(comment);
            }
            if hash.is_some() {
                user.password_hash = hash;
            }
            Ok(())
        })
    })
    .await?;
    json_response(&serde_json::json!({}))
}

pub(super) async fn remove_user(
    state: &Arc<ServerState>,
    params: &PathParams,
) -> ApiResult<Response<Full<Bytes>>> {
    let userid: Userid = parse("userid", param(params, "userid")?)?;
    let config = state.config.clone();
    run(move || {
        crate::access::delete_user(&config, &userid, None)?;
        // Its tokens go with it.
        let mut tokens = config
            .tokens()
            .map_err(|e| AccessError::Conflict(e.to_string()))?;
        tokens.tokens.retain(|t| t.id.user() != &userid);
        config
            .save_tokens(&tokens)
            .map_err(|e| AccessError::Conflict(e.to_string()))
    })
    .await?;
    json_response(&serde_json::json!({}))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AddTokenRequest {
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    expire: Option<i64>,
}

/// `POST /access/users/{userid}/token/{name}`: for one's own user, or with
/// Permissions.Modify on `/`. The secret is in the answer and nowhere else.
pub(super) async fn add_token(
    state: &Arc<ServerState>,
    auth: &AuthId,
    params: &PathParams,
    req: Request<Incoming>,
) -> ApiResult<Response<Full<Bytes>>> {
    let userid: Userid = parse("userid", param(params, "userid")?)?;
    let tokenid = Authid::token(userid.clone(), param(params, "name")?).map_err(access_error)?;
    // A user's own tokens (a new token has no ACL entries: no privilege until granted).
    let own = auth.authid()?.user() == &userid;
    if !own && !caller_privs(state, auth, &AclPath::root())?.intersects(PERMISSIONS_MODIFY) {
        return Err(ApiError::Forbidden(format!(
            "{} may not create tokens for {userid}",
            auth.0
        )));
    }
    let request: AddTokenRequest = read_json(req.into_body()).await?;
    let config = state.config.clone();
    let secret = run(move || {
        if !userid.is_root() {
            let users: crate::config_store::Versioned<crate::access::UsersFile> =
                crate::config_store::load(&config.path(crate::access::USERS_FILE))?;
            if users.data.get(&userid).is_none() {
                return Err(AccessError::NotFound {
                    what: "user",
                    name: userid.to_string(),
                });
            }
        }
        let secret = crate::access::tokens::generate_secret()
            .map_err(|e| AccessError::Conflict(e.to_string()))?;
        let mut tokens = config
            .tokens()
            .map_err(|e| AccessError::Conflict(e.to_string()))?;
        if tokens.tokens.iter().any(|t| t.id == tokenid) {
            return Err(AccessError::Conflict(format!(
                "token {tokenid} exists already"
            )));
        }
        let mut entry = TokenEntry::new(tokenid.clone(), &secret);
        entry.comment = request.comment;
        entry.expire = request.expire;
        tokens.tokens.push(entry);
        config
            .save_tokens(&tokens)
            .map_err(|e| AccessError::Conflict(e.to_string()))?;
        Ok((tokenid.to_string(), secret))
    })
    .await?;
    json_response(&serde_json::json!({ "tokenid": secret.0, "secret": secret.1 }))
}

pub(super) async fn acl(state: &Arc<ServerState>) -> ApiResult<Response<Full<Bytes>>> {
    let config = state.config.clone();
    let acl = run(move || {
        Ok(crate::config_store::load::<crate::access::AclTree>(
            &config.path(crate::access::ACL_FILE),
        )?)
    })
    .await?;
    json_response(&serde_json::json!({ "entries": acl.data.entries(), "digest": acl.digest }))
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct SetAclRequest {
    path: String,
    role: String,
    auth_id: String,
    #[serde(default = "yes")]
    propagate: bool,
    #[serde(default)]
    delete: bool,
    #[serde(default)]
    digest: Option<String>,
}

fn yes() -> bool {
    true
}

pub(super) async fn set_acl(
    state: &Arc<ServerState>,
    req: Request<Incoming>,
) -> ApiResult<Response<Full<Bytes>>> {
    let request: SetAclRequest = read_json(req.into_body()).await?;
    let path: AclPath = parse("ACL path", &request.path)?;
    let role: Role = parse("role", &request.role)?;
    let auth_id: Authid = parse("auth id", &request.auth_id)?;
    let config = state.config.clone();
    let acl = run(move || {
        crate::access::update_acl(&config, request.digest.as_deref(), |acl| {
            if request.delete {
                if acl.remove(&path, &auth_id, Some(role)) == 0 {
                    return Err(AccessError::NotFound {
                        what: "ACL entry",
                        name: format!("{path} {auth_id} {role}"),
                    });
                }
            } else {
                acl.set(AclEntry {
                    path,
                    auth_id,
                    role,
                    propagate: request.propagate,
                });
            }
            Ok(())
        })
    })
    .await?;
    json_response(&serde_json::json!({ "digest": acl.digest }))
}
