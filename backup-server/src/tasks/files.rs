//! The task directory on disk: `<upid>.json` (the record, a protocol `TaskStatus`, replaced
//! atomically) and `<upid>.log` (appended line by line).
//!
//! Paths are only built from a parsed [`Upid`], never from a caller's string, so no request
//! can name a file outside the directory. This module does IO only; what a record says is
//! decided by the registry and [`super::policy`].

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use protocol::types::TaskStatus;

use super::policy;
use super::upid::{Upid, parse_upid};

const RECORD_SUFFIX: &str = ".json";
const LOG_SUFFIX: &str = ".log";

pub(super) fn record_path(dir: &Path, upid: &Upid) -> PathBuf {
    dir.join(format!("{upid}{RECORD_SUFFIX}"))
}

pub(super) fn log_path(dir: &Path, upid: &Upid) -> PathBuf {
    dir.join(format!("{upid}{LOG_SUFFIX}"))
}

/// Epoch seconds now.
pub(super) fn now_epoch() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Creates a task's log file; fails if it exists, which makes the UPID unique in the
/// directory even when a restarted server gets the same pid in the same second.
pub(super) fn create_log(dir: &Path, upid: &Upid) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(log_path(dir, upid))
}

/// Writes (replaces) a task's record atomically.
pub(super) fn write_record(dir: &Path, upid: &Upid, record: &TaskStatus) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(record)?;
    bytes.push(b'\n');
    let path = record_path(dir, upid);
    datastore::fs_util::replace_file(&path, &bytes)
        .with_context(|| format!("writing task record {}", path.display()))
}

/// A task's record, or `None` if it has none.
pub(super) fn read_record(dir: &Path, upid: &Upid) -> Result<Option<TaskStatus>> {
    let path = record_path(dir, upid);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => {
            return Err(err).with_context(|| format!("reading task record {}", path.display()));
        }
    };
    let record: TaskStatus = serde_json::from_slice(&bytes)
        .with_context(|| format!("parsing task record {}", path.display()))?;
    if record.upid != upid.to_string() {
        bail!(
            "task record {} names another task ({})",
            path.display(),
            record.upid
        );
    }
    Ok(Some(record))
}

/// The ids of every record in the directory (only names that parse as UPIDs), and leftover
/// temp files of interrupted record writes.
pub(super) fn scan(dir: &Path) -> Result<(Vec<Upid>, Vec<PathBuf>)> {
    let mut ids = Vec::new();
    let mut temps = Vec::new();
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("listing task directory {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing task directory {}", dir.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if datastore::fs_util::is_temp_name(name) {
            temps.push(entry.path());
        } else if let Some(upid) = name.strip_suffix(RECORD_SUFFIX)
            && let Ok(upid) = parse_upid(upid)
        {
            ids.push(upid);
        }
    }
    Ok((ids, temps))
}

/// Complete log lines from line `start` on, and the number of the line after the last one
/// returned. A line still being written (no newline yet) is left for the next call. `None`
/// if the task has no log.
pub(super) fn read_log_lines(
    dir: &Path,
    upid: &Upid,
    start: usize,
) -> Result<Option<(Vec<String>, usize)>> {
    let path = log_path(dir, upid);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => {
            return Err(err).with_context(|| format!("opening task log {}", path.display()));
        }
    };
    let mut reader = BufReader::new(file);
    let mut lines = Vec::new();
    let mut number = 0usize;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let read = reader
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("reading task log {}", path.display()))?;
        if read == 0 || buf.last() != Some(&b'\n') {
            break;
        }
        if number >= start {
            buf.pop();
            lines.push(String::from_utf8_lossy(&buf).into_owned());
        }
        number += 1;
    }
    Ok(Some((lines, number.max(start))))
}

/// Rewrites the records of tasks that were running when a previous process died as
/// `unknown`, ended at their log's last change; removes temp files of interrupted writes.
/// Unreadable records are logged and left alone. Returns how many records it rewrote.
pub(super) fn recover(dir: &Path) -> Result<usize> {
    let (ids, temps) = scan(dir)?;
    for temp in temps {
        if let Err(err) = std::fs::remove_file(&temp) {
            tracing::warn!("removing leftover temp file {}: {err}", temp.display());
        }
    }
    let mut recovered = 0;
    for upid in ids {
        let mut record = match read_record(dir, &upid) {
            Ok(Some(record)) if record.status == policy::RUNNING => record,
            Ok(_) => continue,
            Err(err) => {
                tracing::warn!("skipping task record: {err:#}");
                continue;
            }
        };
        let end_time = std::fs::metadata(log_path(dir, &upid))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_secs()).ok())
            .unwrap_or_else(now_epoch);
        record.status = policy::UNKNOWN.to_string();
        record.message = Some(policy::STOPPED_MESSAGE.to_string());
        record.end_time = Some(end_time.max(record.start_time));
        write_record(dir, &upid, &record)?;
        tracing::info!("task {} was running when the server stopped", record.upid);
        recovered += 1;
    }
    Ok(recovered)
}
