//! `backup-server namespace create|list|remove STORE [NS]`.

use std::process::ExitCode;

use anyhow::Result;
use protocol::routes::{self, encode_query, fill_path};
use protocol::types::NamespaceCreateRequest;

use super::AdminTarget;

fn path(template: &str, store: &str) -> String {
    fill_path(template, &[("store", store)])
}

pub async fn create(target: &AdminTarget, store: &str, ns: &str) -> Result<ExitCode> {
    let body = NamespaceCreateRequest { ns: ns.to_string() };
    let _: serde_json::Value = target
        .http
        .call_json(
            hyper::Method::POST,
            &path(routes::CREATE_NAMESPACE.path, store),
            Some(&body),
        )
        .await?;
    target.done(&serde_json::json!({ "created": ns }), || {
        println!("created namespace '{ns}'")
    })
}

pub async fn list(target: &AdminTarget, store: &str, parent: &str) -> Result<ExitCode> {
    let query = encode_query(&[("parent", parent)]);
    let names: Vec<String> = target
        .http
        .get_json(&format!("{}?{query}", path(routes::NAMESPACES.path, store)))
        .await?;
    target.done(&names, || {
        for name in &names {
            println!("{name}");
        }
    })
}

pub async fn remove(
    target: &AdminTarget,
    store: &str,
    ns: &str,
    recursive: bool,
) -> Result<ExitCode> {
    let query = encode_query(&[
        ("ns", ns),
        ("recursive", if recursive { "true" } else { "false" }),
    ]);
    let _: serde_json::Value = target
        .http
        .call_json(
            hyper::Method::DELETE,
            &format!("{}?{query}", path(routes::REMOVE_NAMESPACE.path, store)),
            None::<&()>,
        )
        .await?;
    target.done(&serde_json::json!({ "removed": ns }), || {
        println!("removed namespace '{ns}'")
    })
}
