//! `backup-client backup NAME.tar:PATH ...`: one snapshot with one archive per spec.
//!
//! Chunked mode (the default) cuts and hashes the archive here and sends only chunks that
//! the parent snapshot does not hold ([`chunked_mode`]); stream mode sends the archive's
//! bytes and the server chunks them. Both give the same index for the same bytes. A dry run
//! runs the chunked pipeline against the parent's index and writes nothing on the server.

mod chunked_mode;
mod summary;

pub use summary::{ArchiveSummary, BackupSummary, SplitSummary, print_text};
use summary::{chunked_summary, summarize};

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use http_body_util::BodyExt;
use protocol::routes::{self, BACKUP_PROTOCOL, encode_query};
use protocol::types::{ArchiveUploadResponse, FinishRequest, FinishResponse};
use serde::Serialize;

use crate::archive::{ArchiveProgress, EncodeStats};
use crate::chunked::target;
use api_client::http::full_body;
use datastore::digest::ZeroDigests;

use crate::progress::ProgressReporter;
use crate::repository::RepoClient;
use crate::upload::spawn_encoder;

/// One `NAME.tar:PATH` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveSpec {
    pub name: String,
    pub path: PathBuf,
}

impl std::str::FromStr for ArchiveSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, path) = s
            .split_once(':')
            .ok_or_else(|| format!("'{s}' is not NAME.tar:PATH"))?;
        match datastore::names::validate_archive_name(name) {
            Ok(datastore::names::ArchiveKind::Tar) => {}
            _ => {
                return Err(format!(
                    "'{name}' is not a valid archive name (NAME.tar, NAME of letters, digits, '.', '_', '-')"
                ));
            }
        }
        if path.is_empty() {
            return Err(format!("'{s}' names no path"));
        }
        Ok(ArchiveSpec {
            name: name.to_string(),
            path: PathBuf::from(path),
        })
    }
}

/// How archives travel to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadMode {
    /// The client chunks and hashes, and uploads only chunks the parent snapshot lacks.
    Chunked,
    /// The client sends the archive stream; the server chunks it.
    Stream,
}

/// How a backup finds what changed since the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeDetection {
    /// Split archive (metadata + payload): files whose size, mode, mtime, ctime and inode
    /// are unchanged are not read; their previous payload chunks are re-used.
    Metadata,
    /// One tar stream: every file is read; unchanged chunks are still not sent.
    Data,
}

pub struct BackupOptions {
    pub specs: Vec<ArchiveSpec>,
    pub upload_mode: UploadMode,
    /// `None`: metadata in chunked mode, data in stream mode.
    pub change_detection: Option<ChangeDetection>,
    /// Walk and chunk, report what would be uploaded, write nothing on the server.
    pub dry_run: bool,
    pub backup_type: String,
    pub backup_id: String,
    pub ns: String,
    pub backup_time: Option<i64>,
    pub quiet: bool,
    /// How each tree is walked: excludes, file-system boundaries.
    pub encode: crate::archive::EncodeOptions,
}

pub async fn run(client: &RepoClient, options: BackupOptions) -> Result<BackupSummary> {
    let started = Instant::now();
    check_specs(&options.specs)?;
    let detection = change_detection(&options)?;
    let zeros = Arc::new(ZeroDigests::new());
    let params = if options.upload_mode == UploadMode::Chunked || options.dry_run {
        Some(target::chunker_params(&client.http, &client.repo.store, &options.ns).await?)
    } else {
        None
    };
    if options.dry_run {
        let params = params.context("a dry run needs the chunker parameters")?;
        return run_dry(client, &options, params, zeros, started, detection).await;
    }
    let time = options.backup_time.map(|t| t.to_string());
    let mut pairs = vec![
        ("store", client.repo.store.as_str()),
        ("ns", options.ns.as_str()),
        ("backup-type", options.backup_type.as_str()),
        ("backup-id", options.backup_id.as_str()),
    ];
    if let Some(time) = &time {
        pairs.push(("backup-time", time));
    }
    let query = encode_query(&pairs);
    let mut session = client
        .http
        .open_session(routes::BACKUP.path, &query, BACKUP_PROTOCOL)
        .await?;
    if !options.quiet {
        eprintln!("backup {} to {}", session.snapshot, client.repo);
    }
    let mut archives = Vec::new();
    for spec in &options.specs {
        if let (Some(params), ChangeDetection::Metadata) = (params, detection) {
            let target = chunked_mode::SplitTarget::Session {
                client,
                session: &session,
                ns: &options.ns,
            };
            let summary =
                split_archive(target, spec, &options, params, Arc::clone(&zeros), "backup").await?;
            if !options.quiet
                && let (Some(parent), Some(split)) = (&summary.parent, &summary.split)
            {
                eprintln!(
                    "{}: {} of {} files unchanged since {parent} (not read)",
                    spec.name, split.reused_files, summary.files
                );
            }
            archives.push(summary);
            continue;
        }
        let (stream, slot, sent, reporter) = start_encoder(spec, &options, "backup")?;
        let summary = match params {
            Some(params) => {
                let result =
                    chunked_mode::upload(&session, &spec.name, stream, params, Arc::clone(&zeros))
                        .await;
                reporter.finish().await;
                let (archive, stats) = encoder_outcome(spec, result, &slot)?;
                chunked_summary(spec, archive, stats)
            }
            None => {
                let path = format!(
                    "{}?{}",
                    routes::SESSION_ARCHIVE.path,
                    encode_query(&[("archive-name", &spec.name)])
                );
                let result: Result<ArchiveUploadResponse> = session
                    .call_json(hyper::Method::POST, &path, stream.boxed_unsync())
                    .await;
                reporter.finish().await;
                let (response, stats) = encoder_outcome(spec, result, &slot)?;
                ArchiveSummary {
                    name: spec.name.clone(),
                    upload_mode: UploadMode::Stream,
                    change_detection: ChangeDetection::Data,
                    parent: None,
                    entries: stats.entries,
                    files: stats.files,
                    bytes_read: stats.bytes_read,
                    size: response.size,
                    chunks: response.chunks,
                    new_chunks: response.new_chunks,
                    reused_chunks: 0,
                    uploaded_chunks: 0,
                    uploaded_plain_bytes: 0,
                    bytes_uploaded: sent.load(std::sync::atomic::Ordering::Relaxed),
                    bytes_stored: response.bytes_stored,
                    excluded: stats.excluded,
                    split: None,
                    notes: Vec::new(),
                    errors: stats.errors,
                }
            }
        };
        if !options.quiet
            && let Some(parent) = &summary.parent
        {
            eprintln!("{}: reused chunks of {parent}", spec.name);
        }
        archives.push(summary);
    }
    let finish = FinishRequest {
        archives: stored_archive_names(&options.specs, detection),
    };
    let finished: FinishResponse = session
        .call_json(
            hyper::Method::POST,
            routes::SESSION_FINISH.path,
            full_body(serde_json::to_vec(&finish)?),
        )
        .await
        .context("finishing the backup")?;
    Ok(summarize(finished.snapshot, false, archives, started))
}

/// The chunked pipeline over every archive against the parent's indexes; nothing is written
/// on the server.
async fn run_dry(
    client: &RepoClient,
    options: &BackupOptions,
    params: datastore::chunker::ChunkerParams,
    zeros: Arc<ZeroDigests>,
    started: Instant,
    detection: ChangeDetection,
) -> Result<BackupSummary> {
    let group = crate::chunked::dry_run::Group {
        ns: &options.ns,
        backup_type: &options.backup_type,
        backup_id: &options.backup_id,
    };
    let new_time = options.backup_time.unwrap_or_else(now_epoch);
    let parent = crate::chunked::dry_run::open_parent(client, &group, new_time).await?;
    let mut archives = Vec::new();
    for spec in &options.specs {
        if detection == ChangeDetection::Metadata {
            let target = chunked_mode::SplitTarget::DryRun {
                parent: parent.as_ref(),
            };
            let summary =
                split_archive(target, spec, options, params, Arc::clone(&zeros), "dry run").await?;
            archives.push(summary);
            continue;
        }
        let (stream, slot, _sent, reporter) = start_encoder(spec, options, "dry run")?;
        let result = chunked_mode::dry_run(
            parent.as_ref(),
            &spec.name,
            stream,
            params,
            Arc::clone(&zeros),
        )
        .await;
        reporter.finish().await;
        let (archive, stats) = encoder_outcome(spec, result, &slot)?;
        archives.push(chunked_summary(spec, archive, stats));
    }
    let group_name = format!("{}/{}", options.backup_type, options.backup_id);
    Ok(summarize(group_name, true, archives, started))
}

/// Starts an archive's encoder thread and its progress display. `sent` counts the bytes the
/// encoder's body yields.
fn start_encoder(
    spec: &ArchiveSpec,
    options: &BackupOptions,
    what: &str,
) -> Result<(
    crate::upload::EncoderStream,
    crate::upload::StatsSlot,
    Arc<AtomicU64>,
    ProgressReporter,
)> {
    let progress = Arc::new(ArchiveProgress::default());
    let sent = Arc::new(AtomicU64::new(0));
    let (stream, slot) = spawn_encoder(
        spec.path.clone(),
        options.encode.clone(),
        Arc::clone(&progress),
        Arc::clone(&sent),
    )?;
    let reporter =
        ProgressReporter::start(format!("{what} {}", spec.name), progress, options.quiet);
    Ok((stream, slot, sent, reporter))
}

/// Pairs an upload's result with the encoder's: an encoder failure is the real cause of a
/// broken upload, so it is reported first.
fn encoder_outcome<T>(
    spec: &ArchiveSpec,
    result: Result<T>,
    slot: &crate::upload::StatsSlot,
) -> Result<(T, EncodeStats)> {
    let encoder = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    let context = || format!("uploading {} from {}", spec.name, spec.path.display());
    match (result, encoder) {
        (_, Some(Err(encoder_error))) => {
            bail!("{}: the archive encoder failed: {encoder_error}", context())
        }
        (Err(err), _) => Err(err.context(context())),
        (Ok(_), None) => bail!(
            "{}: the archive stream ended without the encoder's result",
            context()
        ),
        (Ok(value), Some(Ok(stats))) => Ok((value, stats)),
    }
}

/// The change detection of a backup: metadata by default in chunked mode, data in stream
/// mode (which cannot split an archive).
fn change_detection(options: &BackupOptions) -> Result<ChangeDetection> {
    match (options.change_detection, options.upload_mode) {
        (Some(ChangeDetection::Metadata), UploadMode::Stream) => {
            bail!("--change-detection metadata needs --upload-mode chunked")
        }
        (Some(detection), _) => Ok(detection),
        (None, UploadMode::Chunked) => Ok(ChangeDetection::Metadata),
        (None, UploadMode::Stream) => Ok(ChangeDetection::Data),
    }
}

/// The archives the snapshot stores: `NAME.tar`, or when split `NAME.mtar`, `NAME.ptar` and
/// the payload's dead bytes `NAME.ptar.padding.blob`.
fn stored_archive_names(specs: &[ArchiveSpec], detection: ChangeDetection) -> Vec<String> {
    specs
        .iter()
        .flat_map(|spec| match detection {
            ChangeDetection::Metadata => {
                let split = datastore::names::split_archive_names(&spec.name);
                let padding = datastore::names::padding_blob_name(&spec.name);
                match (split, padding) {
                    (Some((meta, payload)), Some(padding)) => vec![meta, payload, padding],
                    _ => vec![spec.name.clone()],
                }
            }
            ChangeDetection::Data => vec![spec.name.clone()],
        })
        .collect()
}

/// One archive in the split layout: the encoder starts once the parent's indexes are
/// known, both streams go through the chunked pipeline.
async fn split_archive(
    target: chunked_mode::SplitTarget<'_>,
    spec: &ArchiveSpec,
    options: &BackupOptions,
    params: datastore::chunker::ChunkerParams,
    zeros: Arc<ZeroDigests>,
    what: &str,
) -> Result<ArchiveSummary> {
    let progress = Arc::new(ArchiveProgress::default());
    // Inode reads start now, overlapping the download of the parent's metadata.
    let readahead = crate::prefetch::start(&spec.path, options.encode.excludes.clone());
    let mut started = None;
    let start = |previous: chunked_mode::PreviousForEncoder| {
        if previous.is_none() {
            // No parent to re-use files from: the encoder reads every file.
            readahead.read_content(Arc::clone(&progress));
        }
        let encode = crate::archive::EncodeOptions {
            listings: Some(readahead.listings()),
            ..options.encode.clone()
        };
        let (meta, payload, slot) = crate::upload::spawn_split_encoder(
            spec.path.clone(),
            encode,
            Arc::clone(&progress),
            Arc::new(AtomicU64::new(0)),
            previous,
        )?;
        let reporter = ProgressReporter::start(
            format!("{what} {}", spec.name),
            Arc::clone(&progress),
            options.quiet,
        );
        started = Some((slot, reporter));
        Ok((meta, payload))
    };
    let padding_session = match &target {
        chunked_mode::SplitTarget::Session { session, .. } => Some(*session),
        chunked_mode::SplitTarget::DryRun { .. } => None,
    };
    let result = chunked_mode::split(target, &spec.name, start, params, zeros).await;
    let Some((slot, reporter)) = started else {
        return Err(result
            .err()
            .unwrap_or_else(|| anyhow::anyhow!("the encoder never started"))
            .context(format!(
                "backing up {} from {}",
                spec.name,
                spec.path.display()
            )));
    };
    reporter.finish().await;
    let (split, stats) = encoder_outcome(spec, result, &slot)?;
    if let Some(session) = padding_session {
        let record = crate::payload_record::PayloadRecord {
            dead: stats.dead_chunks.clone(),
            in_order: stats.payload_in_order,
        };
        crate::payload_record::upload(session, &spec.name, &record).await?;
    }
    let split_summary = SplitSummary {
        reused_files: stats.reused_files,
        reused_bytes: stats.reused_bytes,
        padding_bytes: stats.padding_bytes,
        metadata_size: split.meta.outcome.size,
        payload_size: split.payload.outcome.size,
        metadata_uploaded_plain_bytes: split.meta.outcome.uploaded_plain,
        payload_uploaded_plain_bytes: split.payload.outcome.uploaded_plain,
    };
    let mut summary = chunked_summary(spec, split.payload, stats);
    summary.split = Some(split_summary);
    // The pipelines' notes (change detection turned off) before the encoder's.
    summary.notes.splice(0..0, split.notes);
    let meta = split.meta;
    summary.change_detection = ChangeDetection::Metadata;
    summary.size += meta.outcome.size;
    summary.chunks += meta.outcome.chunks;
    summary.reused_chunks += meta.outcome.reused_chunks;
    summary.uploaded_chunks += meta.outcome.uploaded_chunks;
    summary.uploaded_plain_bytes += meta.outcome.uploaded_plain;
    summary.bytes_uploaded += meta.outcome.uploaded_encoded;
    if let Some(response) = &meta.response {
        summary.new_chunks += response.new_chunks;
        summary.bytes_stored += response.bytes_stored;
    }
    Ok(summary)
}

fn now_epoch() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Refuses bad specs before anything is sent: duplicate names, paths that are not
/// directories.
fn check_specs(specs: &[ArchiveSpec]) -> Result<()> {
    if specs.is_empty() {
        bail!("nothing to back up: give at least one NAME.tar:PATH");
    }
    for (i, spec) in specs.iter().enumerate() {
        if specs[..i].iter().any(|s| s.name == spec.name) {
            bail!("archive name '{}' is given twice", spec.name);
        }
        let meta = std::fs::metadata(&spec.path)
            .with_context(|| format!("cannot back up {}", spec.path.display()))?;
        if !meta.is_dir() {
            bail!("{} is not a directory", spec.path.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ArchiveSpec;

    #[test]
    fn specs_parse() {
        let spec: ArchiveSpec = "root.tar:/etc".parse().unwrap();
        assert_eq!(spec.name, "root.tar");
        assert_eq!(spec.path, std::path::PathBuf::from("/etc"));
        let spec: ArchiveSpec = "data.tar:/a:b".parse().unwrap();
        assert_eq!(spec.path, std::path::PathBuf::from("/a:b"));
        for bad in [
            "root.tar",
            "root:/etc",
            "../x.tar:/etc",
            "x.tar:",
            ":/etc",
            "index.json.blob:/x",
        ] {
            assert!(bad.parse::<ArchiveSpec>().is_err(), "{bad}");
        }
    }
}
