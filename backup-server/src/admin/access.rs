//! `backup-server user|token|acl ...`: users, API tokens and ACL entries.

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::{Context, Result};
use protocol::routes::{self, fill_path};

use super::AdminTarget;

pub async fn user_add(
    target: &AdminTarget,
    userid: &str,
    password_stdin: bool,
    comment: Option<String>,
) -> Result<ExitCode> {
    let password = password_stdin.then(read_password).transpose()?;
    let body = serde_json::json!({ "userid": userid, "password": password, "comment": comment });
    let _: serde_json::Value = target
        .http
        .call_json(hyper::Method::POST, routes::ADD_USER.path, Some(&body))
        .await?;
    target.done(&serde_json::json!({ "added": userid }), || {
        println!("added user {userid}")
    })
}

/// The first line of stdin, for `--password-stdin`.
pub fn read_password() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

pub async fn user_update(
    target: &AdminTarget,
    userid: &str,
    body: &serde_json::Value,
) -> Result<ExitCode> {
    let path = fill_path(routes::UPDATE_USER.path, &[("userid", userid)]);
    // Unset options stay unchanged: send only what was given.
    let body: serde_json::Map<String, serde_json::Value> = body
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let _: serde_json::Value = target
        .http
        .call_json(hyper::Method::PUT, &path, Some(&body))
        .await?;
    target.done(&serde_json::json!({ "updated": userid }), || {
        println!("updated user {userid}")
    })
}

pub async fn user_list(target: &AdminTarget) -> Result<ExitCode> {
    let users: serde_json::Value = target.http.get_json(routes::USERS.path).await?;
    target.done(&users, || {
        for user in users.as_array().into_iter().flatten() {
            println!(
                "{:<32} enabled={} expire={} {}",
                user["userid"].as_str().unwrap_or(""),
                user["enable"],
                user["expire"],
                user["comment"].as_str().unwrap_or("")
            );
        }
    })
}

pub async fn user_remove(target: &AdminTarget, userid: &str) -> Result<ExitCode> {
    let path = fill_path(routes::REMOVE_USER.path, &[("userid", userid)]);
    let _: serde_json::Value = target
        .http
        .call_json(hyper::Method::DELETE, &path, None::<&()>)
        .await?;
    target.done(&serde_json::json!({ "removed": userid }), || {
        println!("removed user {userid}")
    })
}

pub async fn token_add(target: &AdminTarget, userid: &str, name: &str) -> Result<ExitCode> {
    let path = fill_path(
        routes::ADD_TOKEN.path,
        &[("userid", userid), ("name", name)],
    );
    let answer: serde_json::Value = target
        .http
        .call_json(hyper::Method::POST, &path, Some(&serde_json::json!({})))
        .await?;
    target.done(&answer, || {
        println!("token: {}", answer["tokenid"].as_str().unwrap_or(""));
        println!("secret: {}", answer["secret"].as_str().unwrap_or(""));
        println!("(the secret is shown only this once)");
    })
}

pub async fn acl_set(
    target: &AdminTarget,
    path: &str,
    role: &str,
    auth_id: &str,
    propagate: bool,
    delete: bool,
) -> Result<ExitCode> {
    let body = serde_json::json!({
        "path": path, "role": role, "auth-id": auth_id, "propagate": propagate, "delete": delete,
    });
    let answer: serde_json::Value = target
        .http
        .call_json(hyper::Method::PUT, routes::SET_ACL.path, Some(&body))
        .await?;
    target.done(&answer, || {
        let verb = if delete { "removed" } else { "set" };
        println!("{verb} {role} for {auth_id} on {path}");
    })
}

pub async fn acl_list(target: &AdminTarget) -> Result<ExitCode> {
    let acl: serde_json::Value = target.http.get_json(routes::ACL.path).await?;
    target.done(&acl, || {
        for entry in acl["entries"].as_array().into_iter().flatten() {
            println!(
                "{:<32} {:<20} {:<32} propagate={}",
                entry["path"].as_str().unwrap_or(""),
                entry["role"].as_str().unwrap_or(""),
                entry["auth-id"].as_str().unwrap_or(""),
                entry["propagate"]
            );
        }
    })
}
