//! `backup-client restore SNAPSHOT NAME.tar TARGET`: a reader session fetches the manifest
//! and the archive's index, checks both, downloads the chunks in order with several
//! requests in flight, verifies each chunk's digest and feeds the bytes to the archive
//! decoder on its own thread. With `--format tar` the verified archive stream is written as
//! one standard tar file instead (TARGET `-` is standard output), for GNU tar, bsdtar or
//! another machine.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use api_client::http::Session;
use datastore::index::DynamicIndex;
use datastore::manifest::BackupManifest;
use datastore::names::{ArchiveKind, MANIFEST_NAME, Namespace};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::archive::{
    ArchiveError, ArchiveProgress, RestoreOptions, RestoreStats, Selection, export_tar,
    restore_split, restore_tree,
};

use crate::download::{
    ChannelReader, DOWNLOADS_IN_FLIGHT, Decode, IndexedPayload, METADATA_IN_FLIGHT, METADATA_QUEUE,
    download_path, fetch_chunks,
};
use crate::progress::ProgressReporter;
use crate::repository::RepoClient;

pub struct RestoreRequest {
    pub snapshot: String,
    pub archive: String,
    pub target: PathBuf,
    pub ns: String,
    pub format: RestoreFormat,
    /// Restore only these paths (split archives); empty: everything.
    pub include: Vec<String>,
    pub quiet: bool,
}

/// What a restore writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RestoreFormat {
    /// The tree, into a directory that is empty or does not exist.
    Dir,
    /// One tar stream, into a new file or `-` (standard output).
    Tar,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub struct RestoreSummary {
    pub snapshot: String,
    pub archive: String,
    pub target: String,
    pub entries: u64,
    pub files: u64,
    pub bytes_written: u64,
    pub chunks: u64,
    pub bytes_downloaded: u64,
    pub duration_s: f64,
    pub warnings: Vec<String>,
}

pub async fn run(client: &RepoClient, request: RestoreRequest) -> Result<RestoreSummary> {
    let started = Instant::now();
    let ns: Namespace = request.ns.parse()?;
    let snapshot = datastore::snapshot::parse_snapshot(ns, &request.snapshot)?;
    if datastore::names::validate_archive_name(&request.archive)? != ArchiveKind::Tar {
        bail!("'{}' is not an archive (NAME.tar)", request.archive);
    }
    match request.format {
        RestoreFormat::Dir => check_target(&request.target)?,
        RestoreFormat::Tar => check_tar_target(&request.target)?,
    }

    let (mut session, manifest) = open_snapshot(client, &request.ns, &snapshot).await?;
    let layout = Layout::of(&manifest, &request.snapshot, &request.archive)?;
    let selection = if request.include.is_empty() {
        None
    } else if matches!(layout, Layout::Single(_)) {
        bail!(
            "--include needs a split archive (backed up with --change-detection metadata); \
             {} of {} is one tar stream: restore it whole, or use --format tar and pick \
             files with tar",
            request.archive,
            request.snapshot
        );
    } else {
        Some(Selection::new(&request.include).map_err(|e| anyhow!(e))?)
    };
    // A split archive's payload is read by offset; the metadata, or the single stream,
    // streams in order.
    let (stream_index, payload_index) = match &layout {
        Layout::Single(name) => (load_index(&mut session, &manifest, name).await?, None),
        Layout::Split { meta, payload } => (
            load_index(&mut session, &manifest, meta).await?,
            Some(load_index(&mut session, &manifest, payload).await?),
        ),
    };
    // A whole restore of a payload that its backup wrote in order reads it forward only.
    let forward_only = match (&layout, &selection) {
        (Layout::Split { .. }, None) => crate::payload_record::download(&session, &request.archive)
            .await
            .is_some_and(|record| record.in_order),
        _ => false,
    };
    let chunks = stream_index.entries.len() as u64
        + payload_index.as_ref().map_or(0, |i| i.entries.len() as u64);
    let downloaded = Arc::new(AtomicU64::new(0));
    let payload = payload_index.map(|index| {
        IndexedPayload::new(
            tokio::runtime::Handle::current(),
            session.clone(),
            index,
            selection.is_none(),
            forward_only,
            Arc::clone(&downloaded),
        )
    });

    let progress = Arc::new(ArchiveProgress::default());
    let reporter = ProgressReporter::start(
        format!("restore {}", request.archive),
        Arc::clone(&progress),
        request.quiet,
    );
    // A split archive's metadata stream is read slowly beside its payload: fewer chunks
    // of it wait, compressed, and the reader decodes each when it gets to it.
    let (in_flight, queue, decode_at) = if payload.is_some() {
        (METADATA_IN_FLIGHT, METADATA_QUEUE, Decode::OnRead)
    } else {
        (DOWNLOADS_IN_FLIGHT, 4, Decode::OnFetch)
    };
    let (tx, rx) = mpsc::channel(queue);
    let target = request.target.clone();
    let decoder_progress = Arc::clone(&progress);
    let format = request.format;
    let decoder = tokio::task::spawn_blocking(move || {
        let input = ChannelReader::new(rx);
        decode(
            input,
            payload,
            selection,
            format,
            &target,
            &decoder_progress,
        )
    });
    let fetched = fetch_chunks(&mut session, &stream_index, in_flight, decode_at, tx).await;
    let decoded = decoder
        .await
        .map_err(|e| anyhow!("archive decoder failed: {e}"))?;
    reporter.finish().await;
    let bytes_downloaded = fetched? + downloaded.load(Relaxed);
    let stats = decoded.with_context(|| format!("restoring into {}", request.target.display()))?;
    Ok(RestoreSummary {
        snapshot: request.snapshot,
        archive: request.archive,
        target: request.target.display().to_string(),
        entries: stats.entries,
        files: stats.files,
        bytes_written: stats.bytes_written,
        chunks,
        bytes_downloaded,
        duration_s: started.elapsed().as_secs_f64(),
        warnings: stats.warnings,
    })
}

/// A reader session on `snapshot` and its manifest.
pub(crate) async fn open_snapshot(
    client: &RepoClient,
    ns: &str,
    snapshot: &datastore::snapshot::SnapshotRef,
) -> Result<(Session, BackupManifest)> {
    let mut session = crate::download::open_reader(client, ns, snapshot).await?;
    let manifest_blob = session
        .download(
            &download_path(MANIFEST_NAME),
            protocol::limits::MAX_BLOB_SIZE,
        )
        .await
        .context("downloading the manifest")?;
    let manifest = BackupManifest::from_blob(&manifest_blob)?;
    Ok((session, manifest))
}

/// How the snapshot stores the archive `NAME.tar`.
pub(crate) enum Layout {
    /// `NAME.tar.didx`: one tar stream.
    Single(String),
    /// `NAME.mtar.didx` and `NAME.ptar.didx`: metadata and payload.
    Split { meta: String, payload: String },
}

impl Layout {
    pub(crate) fn of(manifest: &BackupManifest, snapshot: &str, archive: &str) -> Result<Self> {
        let has = |name: &str| manifest.files.iter().any(|f| f.filename == name);
        let single = datastore::names::archive_file_name(archive);
        if has(&single) {
            return Ok(Layout::Single(single));
        }
        if let Some((meta, payload)) = datastore::names::split_archive_names(archive) {
            let (meta, payload) = (
                datastore::names::archive_file_name(&meta),
                datastore::names::archive_file_name(&payload),
            );
            if has(&meta) && has(&payload) {
                return Ok(Layout::Split { meta, payload });
            }
        }
        let names: Vec<&str> = manifest.files.iter().map(|f| f.filename.as_str()).collect();
        bail!(
            "snapshot {snapshot} has no archive '{archive}' (it has: {})",
            names.join(", ")
        )
    }
}

/// Downloads an index and checks it against its manifest entry.
pub(crate) async fn load_index(
    session: &mut Session,
    manifest: &BackupManifest,
    file_name: &str,
) -> Result<DynamicIndex> {
    let entry = manifest
        .files
        .iter()
        .find(|f| f.filename == file_name)
        .with_context(|| format!("the manifest has no {file_name}"))?;
    let index_bytes = session
        .download(&download_path(file_name), usize::MAX)
        .await
        .with_context(|| format!("downloading {file_name}"))?;
    let index = DynamicIndex::decode(&index_bytes).with_context(|| format!("index {file_name}"))?;
    if index.csum.to_hex() != entry.csum || index.size() != entry.size {
        bail!("index {file_name} does not match the manifest (checksum or size differ)");
    }
    Ok(index)
}

/// Restores (or exports) the archive: one tar stream (`input`), or metadata (`input`) and
/// payload read by offset.
fn decode(
    input: ChannelReader,
    payload: Option<IndexedPayload>,
    selection: Option<Selection>,
    format: RestoreFormat,
    target: &Path,
    progress: &ArchiveProgress,
) -> Result<RestoreStats, ArchiveError> {
    let options = RestoreOptions::default();
    match (payload, format) {
        (None, RestoreFormat::Dir) => restore_tree(input, target, &options, progress),
        (None, RestoreFormat::Tar) => {
            write_tar(target, progress, |out| copy_stream(input, out, progress))
        }
        (Some(payload), RestoreFormat::Dir) => {
            restore_split(input, payload, target, &options, progress, selection)
        }
        (Some(payload), RestoreFormat::Tar) => write_tar(target, progress, |out| {
            let out = CountingWriter::new(out, progress);
            export_tar(input, payload, out, selection).map(|_| ())
        }),
    }
}

/// A tar target is standard output (`-`) or a file that does not exist yet.
fn check_tar_target(target: &Path) -> Result<()> {
    if target == Path::new("-") {
        return Ok(());
    }
    match std::fs::symlink_metadata(target) {
        Ok(_) => bail!("{} exists: a tar export never overwrites", target.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("restore target {}", target.display())),
    }
}

/// Writes a tar stream to `target` (`-`: standard output) with `write`, which counts what
/// it writes in `progress.bytes`. A file target is written under a temporary name and
/// renamed when complete, so a failed export leaves none.
fn write_tar(
    target: &Path,
    progress: &ArchiveProgress,
    write: impl FnOnce(&mut dyn Write) -> Result<(), ArchiveError>,
) -> Result<RestoreStats, ArchiveError> {
    let output_error = |source| ArchiveError::Output { source };
    if target == Path::new("-") {
        write(&mut std::io::stdout().lock())?;
    } else {
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let mut file = tempfile::NamedTempFile::new_in(dir).map_err(output_error)?;
        write(&mut file)?;
        file.as_file().sync_all().map_err(output_error)?;
        file.persist_noclobber(target)
            .map_err(|e| output_error(e.error))?;
    }
    Ok(RestoreStats {
        bytes_written: progress.bytes.load(Relaxed),
        ..RestoreStats::default()
    })
}

/// Copies a verified tar stream to `out`, counting bytes in `progress`.
fn copy_stream(
    mut input: impl Read,
    out: &mut dyn Write,
    progress: &ArchiveProgress,
) -> Result<(), ArchiveError> {
    let mut out = CountingWriter::new(out, progress);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = input.read(&mut buf).map_err(|source| ArchiveError::Input {
            offset: progress.bytes.load(Relaxed),
            source,
        })?;
        if n == 0 {
            return out
                .flush()
                .map_err(|source| ArchiveError::Output { source });
        }
        out.write_all(&buf[..n])
            .map_err(|source| ArchiveError::Output { source })?;
    }
}

/// A writer that adds what it writes to `progress.bytes`.
struct CountingWriter<'a, W> {
    out: W,
    progress: &'a ArchiveProgress,
}

impl<'a, W: Write> CountingWriter<'a, W> {
    fn new(out: W, progress: &'a ArchiveProgress) -> Self {
        CountingWriter { out, progress }
    }
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.progress.bytes.fetch_add(n as u64, Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// The target must not exist or be an empty directory; checked before any download.
fn check_target(target: &Path) -> Result<()> {
    match std::fs::read_dir(target) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!("restore target {} is not empty", target.display());
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("restore target {}", target.display())),
    }
}

pub fn print_text(summary: &RestoreSummary) {
    use crate::progress::human_bytes;
    const SHOWN: usize = 20;
    for warning in summary.warnings.iter().take(SHOWN) {
        eprintln!("warning: {warning}");
    }
    if summary.warnings.len() > SHOWN {
        eprintln!(
            "warning: ... and {} more (--output-format json lists all)",
            summary.warnings.len() - SHOWN
        );
    }
    println!(
        "restored {} from {} into {}: {} files, {} written in {:.2}s",
        summary.archive,
        summary.snapshot,
        summary.target,
        summary.files,
        human_bytes(summary.bytes_written),
        summary.duration_s
    );
}
