//! The parent index of a dry run. A dry run must write nothing on the server, so it opens no
//! backup session: it lists the group's snapshots, picks the parent with the server's rule
//! ([`datastore::snapshot::choose_parent`]) and downloads the parent's index over a
//! read-only reader session.

use anyhow::{Context, Result};
use api_client::http::Session;
use datastore::index::DynamicIndex;
use datastore::snapshot::{ParentCandidate, choose_parent, format_time};

use crate::commands::snapshots;
use crate::repository::RepoClient;

/// The group a backup writes to.
pub struct Group<'a> {
    pub ns: &'a str,
    pub backup_type: &'a str,
    pub backup_id: &'a str,
}

/// The parent snapshot of a backup at `new_time` and a reader session on it, or `None` for
/// a group without a usable parent.
pub async fn open_parent(
    client: &RepoClient,
    group: &Group<'_>,
    new_time: i64,
) -> Result<Option<(String, Session)>> {
    let lines = snapshots::run(client, group.ns).await?;
    let candidates: Vec<ParentCandidate> = lines
        .iter()
        .filter(|l| {
            l.ns == group.ns && l.backup_type == group.backup_type && l.backup_id == group.backup_id
        })
        .map(|l| ParentCandidate {
            time: l.backup_time,
            verify_failed: l.verify_state == "failed",
        })
        .collect();
    let Some(time) = choose_parent(&candidates, new_time) else {
        return Ok(None);
    };
    let name = format!(
        "{}/{}/{}",
        group.backup_type,
        group.backup_id,
        format_time(time)
    );
    let session = super::previous::open_reader(client, group.ns, &name).await?;
    Ok(Some((name, session)))
}

/// The parent's index of `archive`, if the parent has that archive.
pub async fn parent_index(session: &Session, archive: &str) -> Result<Option<DynamicIndex>> {
    let file_name = datastore::names::archive_file_name(archive);
    let path = crate::download::download_path(&file_name);
    let Some((_, bytes)) = super::target::get_if_exists(session, &path)
        .await
        .with_context(|| format!("downloading the parent's {file_name}"))?
    else {
        return Ok(None);
    };
    let index = DynamicIndex::decode(&bytes)
        .with_context(|| format!("the parent's {file_name} is damaged"))?;
    Ok(Some(index))
}
