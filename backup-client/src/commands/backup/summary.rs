//! The backup's summary: what each archive did, as JSON (`--output-format json`) or text.

use std::time::Instant;

use serde::Serialize;

use super::chunked_mode::ChunkedArchive;
use super::{ArchiveSpec, ChangeDetection, UploadMode};
use crate::archive::EncodeStats;

/// What one archive of the backup did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub struct ArchiveSummary {
    pub name: String,
    pub upload_mode: UploadMode,
    pub change_detection: ChangeDetection,
    /// The snapshot whose chunks were reused (chunked mode).
    pub parent: Option<String>,
    pub entries: u64,
    pub files: u64,
    pub bytes_read: u64,
    pub size: u64,
    pub chunks: u64,
    pub new_chunks: u64,
    /// Chunks appended by digest because the parent holds them (chunked mode).
    pub reused_chunks: u64,
    /// Chunks sent (chunked mode; in a dry run: that would be sent).
    pub uploaded_chunks: u64,
    /// Plain bytes of the chunks sent (chunked mode; in a dry run: that would be sent).
    pub uploaded_plain_bytes: u64,
    /// Bytes sent over the network: chunk bodies (chunked) or the archive stream.
    pub bytes_uploaded: u64,
    pub bytes_stored: u64,
    /// Entries left out by an exclude pattern (an excluded directory counts once).
    pub excluded: u64,
    /// The two streams of a split archive (metadata change detection).
    pub split: Option<SplitSummary>,
    /// What made the backup do more work than needed but lost nothing (change detection
    /// turned off because the previous metadata could not be read).
    pub notes: Vec<String>,
    pub errors: Vec<String>,
}

/// What a split archive's two streams did. The archive's totals include both.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub struct SplitSummary {
    /// Files not read because they are unchanged, and their payload bytes.
    pub reused_files: u64,
    pub reused_bytes: u64,
    /// Bytes of re-used chunks that belong to no file of this archive.
    pub padding_bytes: u64,
    pub metadata_size: u64,
    pub payload_size: u64,
    /// Plain bytes of the chunks sent, per stream.
    pub metadata_uploaded_plain_bytes: u64,
    pub payload_uploaded_plain_bytes: u64,
}

/// The backup's summary; `--output-format json` prints it as one object.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub struct BackupSummary {
    /// The snapshot written; in a dry run, the group.
    pub snapshot: String,
    pub dry_run: bool,
    pub bytes_read: u64,
    pub files: u64,
    pub chunks: u64,
    pub new_chunks: u64,
    pub bytes_uploaded: u64,
    pub bytes_stored: u64,
    pub duration_s: f64,
    pub errors: u64,
    pub archives: Vec<ArchiveSummary>,
}

pub(super) fn chunked_summary(
    spec: &ArchiveSpec,
    archive: ChunkedArchive,
    stats: EncodeStats,
) -> ArchiveSummary {
    let outcome = archive.outcome;
    ArchiveSummary {
        name: spec.name.clone(),
        upload_mode: UploadMode::Chunked,
        change_detection: ChangeDetection::Data,
        parent: archive.parent,
        entries: stats.entries,
        files: stats.files,
        bytes_read: stats.bytes_read,
        size: outcome.size,
        chunks: outcome.chunks,
        new_chunks: archive.response.as_ref().map_or(0, |r| r.new_chunks),
        reused_chunks: outcome.reused_chunks,
        uploaded_chunks: outcome.uploaded_chunks,
        uploaded_plain_bytes: outcome.uploaded_plain,
        bytes_uploaded: outcome.uploaded_encoded,
        bytes_stored: archive.response.as_ref().map_or(0, |r| r.bytes_stored),
        excluded: stats.excluded,
        split: None,
        notes: stats.notes,
        errors: stats.errors,
    }
}

pub(super) fn summarize(
    snapshot: String,
    dry_run: bool,
    archives: Vec<ArchiveSummary>,
    started: Instant,
) -> BackupSummary {
    BackupSummary {
        snapshot,
        dry_run,
        bytes_read: archives.iter().map(|a| a.bytes_read).sum(),
        files: archives.iter().map(|a| a.files).sum(),
        chunks: archives.iter().map(|a| a.chunks).sum(),
        new_chunks: archives.iter().map(|a| a.new_chunks).sum(),
        bytes_uploaded: archives.iter().map(|a| a.bytes_uploaded).sum(),
        bytes_stored: archives.iter().map(|a| a.bytes_stored).sum(),
        duration_s: started.elapsed().as_secs_f64(),
        errors: archives.iter().map(|a| a.errors.len() as u64).sum(),
        archives,
    }
}

/// Text form of the summary.
pub fn print_text(summary: &BackupSummary) {
    use crate::progress::human_bytes;
    for a in &summary.archives {
        if summary.dry_run {
            println!(
                "{}: {} files, {} read, {} chunks: would upload {} ({}), {} known from {}",
                a.name,
                a.files,
                human_bytes(a.bytes_read),
                a.chunks,
                a.uploaded_chunks,
                human_bytes(a.uploaded_plain_bytes),
                a.reused_chunks,
                a.parent.as_deref().unwrap_or("no parent")
            );
        } else {
            println!(
                "{}: {} files, {} read, {} chunks ({} new, {} reused), {} uploaded, {} stored",
                a.name,
                a.files,
                human_bytes(a.bytes_read),
                a.chunks,
                a.new_chunks,
                a.reused_chunks,
                human_bytes(a.bytes_uploaded),
                human_bytes(a.bytes_stored)
            );
        }
        for note in &a.notes {
            println!("  note: {note}");
        }
        for err in &a.errors {
            println!("  error: {err}");
        }
    }
    if summary.dry_run {
        println!(
            "dry run for {} done in {:.2}s: nothing was written on the server",
            summary.snapshot, summary.duration_s
        );
        return;
    }
    println!(
        "snapshot {} done in {:.2}s: {} read, {} uploaded, {} stored",
        summary.snapshot,
        summary.duration_s,
        human_bytes(summary.bytes_read),
        human_bytes(summary.bytes_uploaded),
        human_bytes(summary.bytes_stored)
    );
}
