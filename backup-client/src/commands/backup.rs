//! `backup-client backup NAME.tar:PATH ...`: one snapshot with one archive per spec,
//! streamed to the server (stream mode: the server chunks).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use http_body_util::BodyExt;
use protocol::routes::{self, BACKUP_PROTOCOL, encode_query};
use protocol::types::{ArchiveUploadResponse, FinishRequest, FinishResponse};
use serde::Serialize;

use crate::archive::ArchiveProgress;
use api_client::http::full_body;

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

pub struct BackupOptions {
    pub specs: Vec<ArchiveSpec>,
    pub backup_type: String,
    pub backup_id: String,
    pub ns: String,
    pub backup_time: Option<i64>,
    pub quiet: bool,
}

/// What one archive of the backup did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub struct ArchiveSummary {
    pub name: String,
    pub entries: u64,
    pub files: u64,
    pub bytes_read: u64,
    pub size: u64,
    pub chunks: u64,
    pub new_chunks: u64,
    pub bytes_uploaded: u64,
    pub bytes_stored: u64,
    pub errors: Vec<String>,
}

/// The backup's summary; `--output-format json` prints it as one object.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub struct BackupSummary {
    pub snapshot: String,
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

pub async fn run(client: &RepoClient, options: BackupOptions) -> Result<BackupSummary> {
    let started = Instant::now();
    check_specs(&options.specs)?;
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
        let progress = Arc::new(ArchiveProgress::default());
        let sent = Arc::new(AtomicU64::new(0));
        let (stream, slot) =
            spawn_encoder(spec.path.clone(), Arc::clone(&progress), Arc::clone(&sent))?;
        let reporter =
            ProgressReporter::start(format!("backup {}", spec.name), progress, options.quiet);
        let path = format!(
            "{}?{}",
            routes::SESSION_ARCHIVE.path,
            encode_query(&[("archive-name", &spec.name)])
        );
        let result: Result<ArchiveUploadResponse> = session
            .call_json(hyper::Method::POST, &path, stream.boxed_unsync())
            .await;
        reporter.finish().await;
        let encoder = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        let context = || format!("uploading {} from {}", spec.name, spec.path.display());
        let stats = match (result, encoder) {
            (_, Some(Err(encoder_error))) => {
                bail!("{}: the archive encoder failed: {encoder_error}", context())
            }
            (Err(err), _) => return Err(err.context(context())),
            (Ok(_), None) => bail!(
                "{}: the archive stream ended without the encoder's result",
                context()
            ),
            (Ok(response), Some(Ok(stats))) => (response, stats),
        };
        let (response, stats) = stats;
        archives.push(ArchiveSummary {
            name: spec.name.clone(),
            entries: stats.entries,
            files: stats.files,
            bytes_read: stats.bytes_read,
            size: response.size,
            chunks: response.chunks,
            new_chunks: response.new_chunks,
            bytes_uploaded: sent.load(std::sync::atomic::Ordering::Relaxed),
            bytes_stored: response.bytes_stored,
            errors: stats.errors,
        });
    }
    let finish = FinishRequest {
        archives: options.specs.iter().map(|s| s.name.clone()).collect(),
    };
    let finished: FinishResponse = session
        .call_json(
            hyper::Method::POST,
            routes::SESSION_FINISH.path,
            full_body(serde_json::to_vec(&finish)?),
        )
        .await
        .context("finishing the backup")?;
    Ok(BackupSummary {
        snapshot: finished.snapshot,
        bytes_read: archives.iter().map(|a| a.bytes_read).sum(),
        files: archives.iter().map(|a| a.files).sum(),
        chunks: archives.iter().map(|a| a.chunks).sum(),
        new_chunks: archives.iter().map(|a| a.new_chunks).sum(),
        bytes_uploaded: archives.iter().map(|a| a.bytes_uploaded).sum(),
        bytes_stored: archives.iter().map(|a| a.bytes_stored).sum(),
        duration_s: started.elapsed().as_secs_f64(),
        errors: archives.iter().map(|a| a.errors.len() as u64).sum(),
        archives,
    })
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

/// Text form of the summary.
pub fn print_text(summary: &BackupSummary) {
    use crate::progress::human_bytes;
    for a in &summary.archives {
        println!(
            "{}: {} files, {} read, {} chunks ({} new), {} uploaded, {} stored",
            a.name,
            a.files,
            human_bytes(a.bytes_read),
            a.chunks,
            a.new_chunks,
            human_bytes(a.bytes_uploaded),
            human_bytes(a.bytes_stored)
        );
        for err in &a.errors {
            println!("  error: {err}");
        }
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
