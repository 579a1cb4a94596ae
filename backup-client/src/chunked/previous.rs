//! The previous split archive, for change detection: its payload index (which chunks hold
//! which bytes) and its metadata stream, downloaded over a reader session on the parent
//! snapshot while the encoder reads it alongside the walk.
//!
//! The download runs as its own task into a bounded channel; a failed download reaches the
//! encoder as a read error, which makes it read every file from there on (the backup
//! itself goes on). Must not write anything on the server.

use anyhow::{Context, Result, bail};
use api_client::http::Session;
use datastore::index::DynamicIndex;
use datastore::names::Namespace;
use tokio::sync::mpsc;

use crate::archive::PreviousPayload;
use crate::download::{ChannelReader, Decode, METADATA_IN_FLIGHT, METADATA_QUEUE, fetch_chunks};
use crate::repository::RepoClient;

/// The previous snapshot's two indexes of one split archive.
pub struct PreviousSplit {
    /// The snapshot, `TYPE/ID/TIME`.
    pub parent: String,
    pub meta: DynamicIndex,
    pub payload: DynamicIndex,
}

impl PreviousSplit {
    /// Pairs the parent's metadata and payload indexes; both must come from one snapshot.
    pub fn pair(
        meta: Option<(String, DynamicIndex)>,
        payload: Option<(String, DynamicIndex)>,
    ) -> Result<Option<Self>> {
        match (meta, payload) {
            (Some((parent, meta)), Some((payload_parent, payload))) => {
                if parent != payload_parent {
                    bail!(
                        "the server named two parents for one archive ({parent}, {payload_parent})"
                    );
                }
                Ok(Some(PreviousSplit {
                    parent,
                    meta,
                    payload,
                }))
            }
            _ => Ok(None),
        }
    }

    /// The payload index as the encoder's planner needs it.
    pub fn payload_chunks(&self) -> Result<PreviousPayload> {
        PreviousPayload::new(self.payload.entries.iter().map(|e| (e.digest, e.end)))
            .with_context(|| format!("the payload index of {} is damaged", self.parent))
    }
}

/// A reader session on snapshot `parent` (`TYPE/ID/TIME`) in namespace `ns`.
pub async fn open_reader(client: &RepoClient, ns: &str, parent: &str) -> Result<Session> {
    let namespace: Namespace = ns.parse()?;
    let snapshot = datastore::snapshot::parse_snapshot(namespace, parent)
        .with_context(|| format!("the server named parent snapshot '{parent}'"))?;
    crate::download::open_reader(client, ns, &snapshot)
        .await
        .with_context(|| format!("opening a reader session on the parent snapshot {parent}"))
}

/// The bytes of the reader session's archive `archive` as a `Read`, downloaded (and
/// verified chunk by chunk) by a task that the returned guard aborts when dropped. The
/// index must be the one `expected` (a reader session serves only chunks of indexes it
/// handed out, so it is downloaded again here).
pub async fn stream_archive(
    mut session: Session,
    archive: &str,
    expected: &DynamicIndex,
) -> Result<(ChannelReader, DownloadGuard)> {
    let index = super::dry_run::parent_index(&session, archive)
        .await?
        .with_context(|| format!("the parent snapshot has no {archive}"))?;
    if index.csum != expected.csum {
        bail!("the parent's {archive} changed while it was being read");
    }
    let (tx, rx) = mpsc::channel(METADATA_QUEUE);
    let task = tokio::spawn(async move {
        if let Err(err) =
            fetch_chunks(&mut session, &index, METADATA_IN_FLIGHT, Decode::OnRead, tx).await
        {
            tracing::warn!("downloading the previous metadata failed: {err:#}");
        }
    });
    Ok((ChannelReader::new(rx), DownloadGuard(task)))
}

/// Aborts the download when the archive it serves is done (or abandoned).
pub struct DownloadGuard(tokio::task::JoinHandle<()>);

impl Drop for DownloadGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}
