//! `backup-client catalog SNAPSHOT NAME.tar [PATH]`: lists the archive's entries (type,
//! size, mtime, path) from a reader session. A split archive needs only its metadata
//! stream: no file content is downloaded. An archive stored as one tar stream is
//! downloaded whole (and its contents read past).

use anyhow::{Context, Result, anyhow, bail};
use datastore::names::{ArchiveKind, Namespace};
use tokio::sync::mpsc;

use super::restore::{Layout, load_index, open_snapshot};
use crate::archive::{CatalogEntry, Selection, list_entries};
use crate::download::{ChannelReader, DOWNLOADS_IN_FLIGHT, Decode, fetch_chunks};
use crate::repository::RepoClient;

pub struct CatalogRequest {
    pub snapshot: String,
    pub archive: String,
    /// List only this path and what is below it.
    pub path: Option<String>,
    pub ns: String,
}

/// What `catalog` found, and what it cost.
#[derive(serde::Serialize)]
pub struct Catalog {
    pub entries: Vec<CatalogEntry>,
    /// Encoded bytes downloaded.
    pub bytes_downloaded: u64,
}

pub async fn run(client: &RepoClient, request: CatalogRequest) -> Result<Catalog> {
    let ns: Namespace = request.ns.parse()?;
    let snapshot = datastore::snapshot::parse_snapshot(ns, &request.snapshot)?;
    if datastore::names::validate_archive_name(&request.archive)? != ArchiveKind::Tar {
        bail!("'{}' is not an archive (NAME.tar)", request.archive);
    }
    let under = request
        .path
        .as_ref()
        .map(|path| Selection::new([path]))
        .transpose()
        .map_err(|e| anyhow!(e))?;
    let (mut session, manifest) = open_snapshot(client, &request.ns, &snapshot).await?;
    let layout = Layout::of(&manifest, &request.snapshot, &request.archive)?;
    let (file_name, split) = match &layout {
        Layout::Single(name) => (name.as_str(), false),
        Layout::Split { meta, .. } => (meta.as_str(), true),
    };
    let index = load_index(&mut session, &manifest, file_name).await?;
    let (tx, rx) = mpsc::channel(4);
    let lister = tokio::task::spawn_blocking(move || {
        let mut entries = Vec::new();
        list_entries(ChannelReader::new(rx), split, under.as_ref(), |e| {
            entries.push(e)
        })
        .map(|()| entries)
    });
    let fetched = fetch_chunks(
        &mut session,
        &index,
        DOWNLOADS_IN_FLIGHT,
        Decode::OnRead,
        tx,
    )
    .await;
    let listed = lister
        .await
        .map_err(|e| anyhow!("the catalog reader failed: {e}"))?;
    let bytes_downloaded = fetched?;
    let entries = listed.with_context(|| format!("reading {file_name}"))?;
    if entries.is_empty()
        && let Some(path) = &request.path
    {
        bail!("{} has no entry {path}", request.archive);
    }
    Ok(Catalog {
        entries,
        bytes_downloaded,
    })
}

/// One line per entry: type, size, mtime (UTC), path (` -> target` for links).
pub fn print_text(catalog: &Catalog) {
    for e in &catalog.entries {
        let time = datastore::snapshot::format_time(e.mtime);
        let target = e
            .target
            .as_deref()
            .map(|t| format!(" -> {t}"))
            .unwrap_or_default();
        println!("{:<8} {:>12} {time} {}{target}", e.kind, e.size, e.path);
    }
}
