//! `backup-client snapshot forget|protected SNAPSHOT`: manage one snapshot.

use anyhow::Result;
use datastore::names::Namespace;
use protocol::routes::{self, encode_query, fill_path};
use protocol::types::ProtectedRequest;

use crate::repository::RepoClient;

/// The query naming `snapshot` (e.g. `host/web1/2026-11-24T08:00:00Z`) in `ns`.
fn snapshot_query(ns: &str, snapshot: &str) -> Result<String> {
    let namespace: Namespace = ns.parse()?;
    let snap = datastore::snapshot::parse_snapshot(namespace, snapshot)?;
    Ok(encode_query(&[
        ("ns", ns),
        ("backup-type", &snap.group.backup_type.to_string()),
        ("backup-id", &snap.group.backup_id),
        ("backup-time", &snap.time.to_string()),
    ]))
}

/// Removes one snapshot (refused for protected snapshots).
pub async fn forget(client: &RepoClient, ns: &str, snapshot: &str) -> Result<()> {
    let query = snapshot_query(ns, snapshot)?;
    let path = fill_path(
        routes::FORGET_SNAPSHOT.path,
        &[("store", &client.repo.store)],
    );
    let _: serde_json::Value = client
        .http
        .call_json(
            hyper::Method::DELETE,
            &format!("{path}?{query}"),
            None::<&()>,
        )
        .await?;
    Ok(())
}

/// Sets or clears the protected flag.
pub async fn set_protected(
    client: &RepoClient,
    ns: &str,
    snapshot: &str,
    protected: bool,
) -> Result<()> {
    let query = snapshot_query(ns, snapshot)?;
    let path = fill_path(
        routes::SNAPSHOT_PROTECTED.path,
        &[("store", &client.repo.store)],
    );
    let _: serde_json::Value = client
        .http
        .call_json(
            hyper::Method::PUT,
            &format!("{path}?{query}"),
            Some(&ProtectedRequest { protected }),
        )
        .await?;
    Ok(())
}
