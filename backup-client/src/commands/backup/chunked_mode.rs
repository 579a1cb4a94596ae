//! One archive in chunked mode: fetch the parent's index, open an index writer, run the
//! pipeline, close the index with what the client computed (the server compares it with
//! its own). The dry run runs the same pipeline against the parent index that a reader
//! session provides, and sends nothing.
//!
//! A split archive (`NAME.tar` as `NAME.mtar` + `NAME.ptar`, [`split`]) runs two
//! pipelines side by side, one per stream, from one encoder that re-uses the previous
//! payload for unchanged files.

use std::collections::HashSet;
use std::io::Read;
use std::sync::Arc;

use anyhow::{Context, Result};
use api_client::http::Session;
use bytes::Bytes;
use datastore::chunker::ChunkerParams;
use datastore::digest::{Digest, ZeroDigests};
use datastore::index::DynamicIndex;
use protocol::types::ArchiveUploadResponse;

use crate::archive::PreviousPayload;
use crate::chunked::previous::{DownloadGuard, PreviousSplit, open_reader, stream_archive};
use crate::chunked::{
    ChunkedOutcome, ChunkedPlan, Limits, Target, dry_run, target, upload_archive, upload_pieces,
};
use crate::repository::RepoClient;
use crate::upload::{EncoderStream, Piece};

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
        limits: Limits::new(),
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
        limits: Limits::new(),
    };
    let outcome = upload_archive(body, plan, Target::DryRun).await?;
    Ok(ChunkedArchive {
        outcome,
        response: None,
        parent: index.and(parent.map(|(name, _)| name.clone())),
    })
}

/// Where a split archive goes and where its parent comes from.
pub(super) enum SplitTarget<'a> {
    /// A backup session; the parent's metadata is read over a reader session of `client`.
    Session {
        client: &'a RepoClient,
        session: &'a Session,
        ns: &'a str,
    },
    /// A dry run against the parent (if any) that this reader session reads.
    DryRun {
        parent: Option<&'a (String, Session)>,
    },
}

/// What one split archive did: its two streams.
pub(super) struct SplitArchive {
    /// Problems that did not stop the archive (for the summary's errors).
    pub notes: Vec<String>,
    pub meta: ChunkedArchive,
    pub payload: ChunkedArchive,
}

/// The previous split archive, as the encoder reads it.
pub(super) type PreviousForEncoder = Option<(Box<dyn Read + Send>, PreviousPayload)>;

/// The split archive `archive` (`NAME.tar`): finds the parent's two indexes, starts the
/// encoder with them (`start`), runs both pipelines and closes both indexes.
pub(super) async fn split(
    target: SplitTarget<'_>,
    archive: &str,
    start: impl FnOnce(PreviousForEncoder) -> Result<(EncoderStream<Bytes>, EncoderStream<Piece>)>,
    params: ChunkerParams,
    zeros: Arc<ZeroDigests>,
) -> Result<SplitArchive> {
    let (meta_name, payload_name) = datastore::names::split_archive_names(archive)
        .with_context(|| format!("'{archive}' is not NAME.tar"))?;
    let previous = match &target {
        SplitTarget::Session { session, .. } => PreviousSplit::pair(
            target::previous_index(session, &meta_name).await?,
            target::previous_index(session, &payload_name).await?,
        )?,
        SplitTarget::DryRun {
            parent: Some((name, reader)),
        } => {
            let named = |index: Option<DynamicIndex>| index.map(|i| (name.clone(), i));
            PreviousSplit::pair(
                named(dry_run::parent_index(reader, &meta_name).await?),
                named(dry_run::parent_index(reader, &payload_name).await?),
            )?
        }
        SplitTarget::DryRun { parent: None } => None,
    };
    let mut notes = Vec::new();
    let (download, for_encoder) = match &previous {
        Some(previous) => match open_previous(&target, previous, archive, &meta_name).await {
            Ok((download, meta, payload)) => (Some(download), Some((meta, payload))),
            Err(err) => {
                notes.push(format!(
                    "change detection off, every file is read: the metadata of {} could not be read: {err:#}",
                    previous.parent
                ));
                (None, None)
            }
        },
        None => (None, None),
    };
    let (meta_stream, payload_stream) = start(for_encoder)?;
    let (meta_target, payload_target) = match &target {
        SplitTarget::Session { session, .. } => {
            let meta_wid = target::create_index(session, &meta_name).await?;
            let payload_wid = target::create_index(session, &payload_name).await?;
            let target = |wid| Target::Session {
                session: (*session).clone(),
                wid,
            };
            (target(meta_wid), target(payload_wid))
        }
        SplitTarget::DryRun { .. } => (Target::DryRun, Target::DryRun),
    };
    // Both pipelines share one bound on jobs and uploads in flight.
    let limits = Limits::new();
    let plan = |index: Option<&DynamicIndex>, params| ChunkedPlan {
        params,
        parent: index.map(digests).unwrap_or_default(),
        zeros: Arc::clone(&zeros),
        limits: limits.clone(),
    };
    let meta_plan = plan(previous.as_ref().map(|p| &p.meta), params.for_metadata());
    let payload_plan = plan(previous.as_ref().map(|p| &p.payload), params);
    let (meta, payload) = tokio::try_join!(
        upload_archive(meta_stream, meta_plan, meta_target.clone()),
        upload_pieces(payload_stream, payload_plan, payload_target.clone()),
    )?;
    drop(download);
    let close = async |target: &Target, outcome: &ChunkedOutcome| match target {
        Target::Session { session, wid } => {
            target::close_index(session, *wid, outcome).await.map(Some)
        }
        Target::DryRun => Ok(None),
    };
    let meta_response = close(&meta_target, &meta).await?;
    let payload_response = close(&payload_target, &payload).await?;
    let parent = previous.map(|p| p.parent);
    Ok(SplitArchive {
        notes,
        meta: ChunkedArchive {
            outcome: meta,
            response: meta_response,
            parent: parent.clone(),
        },
        payload: ChunkedArchive {
            outcome: payload,
            response: payload_response,
            parent,
        },
    })
}

/// The previous metadata stream, downloaded over a reader session on the parent, and the
/// previous payload's chunks with the dead bytes the parent's padding record names (a
/// parent without one, from before the record existed, gives none: no chunk is then
/// rewritten for being mostly dead).
async fn open_previous(
    target: &SplitTarget<'_>,
    previous: &PreviousSplit,
    archive: &str,
    meta_name: &str,
) -> Result<(DownloadGuard, Box<dyn Read + Send>, PreviousPayload)> {
    let reader = match target {
        SplitTarget::Session { client, ns, .. } => {
            open_reader(client, ns, &previous.parent).await?
        }
        SplitTarget::DryRun { parent } => parent
            .map(|(_, session)| session.clone())
            .context("a dry run's parent has no reader session")?,
    };
    let mut payload = previous.payload_chunks()?;
    // The padding record and the metadata stream's index are asked for at once.
    let (record, stream) = tokio::join!(
        crate::payload_record::download(&reader, archive),
        stream_archive(reader.clone(), meta_name, &previous.meta)
    );
    if let Some(record) = record {
        payload.set_dead(&record.dead);
    }
    let (meta, guard) = stream?;
    Ok((guard, Box::new(meta), payload))
}
