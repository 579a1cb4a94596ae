//! `backup-client snapshots`: the finished snapshots of the repository's datastore.

use anyhow::Result;
use protocol::routes::{self, encode_query, fill_path};
use protocol::types::SnapshotListItem;
use serde::Serialize;

use crate::http::HttpClient;
use crate::progress::human_bytes;

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
}

pub async fn run(client: &HttpClient, ns: &str) -> Result<Vec<SnapshotLine>> {
    let path = fill_path(routes::SNAPSHOTS.path, &[("store", &client.repo.store)]);
    let items: Vec<SnapshotListItem> = client
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
    println!("{:<width$}  {:>12}  files", "snapshot", "size");
    for line in lines {
        println!(
            "{:<width$}  {:>12}  {}",
            line.snapshot,
            human_bytes(line.size),
            line.files.join(" ")
        );
    }
}
