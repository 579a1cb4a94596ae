//! `backup-client snapshots`: the finished snapshots of the repository's datastore.

use anyhow::Result;
use protocol::routes::{self, encode_query, fill_path};
use protocol::types::SnapshotListItem;
use serde::Serialize;

use crate::progress::human_bytes;
use crate::repository::RepoClient;

/// One line of the listing.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub struct SnapshotLine {
    pub snapshot: String,
    pub ns: String,
    pub backup_type: String,
    pub backup_id: String,
    pub backup_time: i64,
    pub size: u64,
    pub files: Vec<String>,
    /// `ok`, `failed` or `none` (never verified).
    pub verify_state: String,
    pub verify_time: Option<i64>,
    pub protected: bool,
}

pub async fn run(client: &RepoClient, ns: &str) -> Result<Vec<SnapshotLine>> {
    let path = fill_path(routes::SNAPSHOTS.path, &[("store", &client.repo.store)]);
    let items: Vec<SnapshotListItem> = client
        .http
        .get_json(&format!("{path}?{}", encode_query(&[("ns", ns)])))
        .await?;
    Ok(items
        .into_iter()
        .map(|item| SnapshotLine {
            snapshot: format!(
                "{}/{}/{}",
                item.backup_type,
                item.backup_id,
                datastore::snapshot::format_time(item.backup_time)
            ),
            ns: item.ns,
            backup_type: item.backup_type,
            backup_id: item.backup_id,
            backup_time: item.backup_time,
            size: item.size,
            files: item.files.into_iter().map(|f| f.filename).collect(),
            verify_state: item
                .verification
                .as_ref()
                .map_or("none".into(), |v| v.state.clone()),
            verify_time: item.verification.map(|v| v.time),
            protected: item.protected,
        })
        .collect())
}

pub fn print_text(lines: &[SnapshotLine]) {
    if lines.is_empty() {
        println!("no snapshots");
        return;
    }
    let width = lines
        .iter()
        .map(|l| l.snapshot.len())
        .max()
        .unwrap_or(8)
        .max(8);
    println!(
        "{:<width$}  {:>12}  {:<8}  {:<9}  files",
        "snapshot", "size", "verify", "protected"
    );
    for line in lines {
        println!(
            "{:<width$}  {:>12}  {:<8}  {:<9}  {}",
            line.snapshot,
            human_bytes(line.size),
            line.verify_state,
            if line.protected { "yes" } else { "" },
            line.files.join(" ")
        );
    }
}
