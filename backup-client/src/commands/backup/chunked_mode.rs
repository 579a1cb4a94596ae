//! One archive in chunked mode: fetch the parent's index, open an index writer, run the
//! pipeline, close the index with what the client computed (the server compares it with
//! its own). The dry run runs the same pipeline against the parent index that a reader
//! session provides, and sends nothing.

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::Result;
use api_client::http::Session;
use datastore::chunker::ChunkerParams;
use datastore::digest::{Digest, ZeroDigests};
use datastore::index::DynamicIndex;
use protocol::types::ArchiveUploadResponse;

use crate::chunked::{ChunkedOutcome, ChunkedPlan, Target, dry_run, target, upload_archive};
use crate::upload::EncoderStream;

/// What one chunked archive did, with the server's answer to the close.
pub(super) struct ChunkedArchive {
    pub outcome: ChunkedOutcome,
    /// `None` in a dry run.
    pub response: Option<ArchiveUploadResponse>,
    /// The parent snapshot whose chunks were reused.
    pub parent: Option<String>,
}

fn digests(index: &DynamicIndex) -> HashSet<Digest> {
    index.entries.iter().map(|e| e.digest).collect()
}

/// Uploads one archive into the backup session.
pub(super) async fn upload(
    session: &Session,
    archive: &str,
    body: EncoderStream,
    params: ChunkerParams,
    zeros: Arc<ZeroDigests>,
) -> Result<ChunkedArchive> {
    let previous = target::previous_index(session, archive).await?;
    let wid = target::create_index(session, archive).await?;
    let plan = ChunkedPlan {
        params,
        parent: previous
            .as_ref()
            .map(|(_, index)| digests(index))
            .unwrap_or_default(),
        zeros,
    };
    let target = Target::Session {
        session: session.clone(),
        wid,
    };
    let outcome = upload_archive(body, plan, target).await?;
    let response = target::close_index(session, wid, &outcome).await?;
    Ok(ChunkedArchive {
        outcome,
        response: Some(response),
        parent: previous.map(|(parent, _)| parent),
    })
}

/// Runs the pipeline without sending: what would be uploaded, given the parent (if any).
pub(super) async fn dry_run(
    parent: Option<&(String, Session)>,
    archive: &str,
    body: EncoderStream,
    params: ChunkerParams,
    zeros: Arc<ZeroDigests>,
) -> Result<ChunkedArchive> {
    let index = match parent {
        Some((_, session)) => dry_run::parent_index(session, archive).await?,
        None => None,
    };
    let plan = ChunkedPlan {
        params,
        parent: index.as_ref().map(digests).unwrap_or_default(),
        zeros,
    };
    let outcome = upload_archive(body, plan, Target::DryRun).await?;
    Ok(ChunkedArchive {
        outcome,
        response: None,
        parent: index.and(parent.map(|(name, _)| name.clone())),
    })
}
