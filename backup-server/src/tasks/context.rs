//! The handle a running task works with: its log, its warning count, its abort flag, and
//! `finish`, which writes the last log line and the final record.
//!
//! Logging never fails the task and never panics: IO errors go to `tracing`. Once a task has
//! finished, its log is closed: the `TASK ...` line stays the last one. A context dropped
//! without `finish` (a session future that was cancelled) ends its task as an error, so no
//! task stays `running` in a live server.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, Weak};

use protocol::types::TaskStatus;
use tokio::sync::watch;

use super::upid::Upid;
use super::{TaskOutcome, files, policy};

/// The registry's map of running tasks, by UPID. It holds weak references: a context lives as
/// long as its worker holds it, and leaves the map when it finishes.
pub(super) type RunningTasks = Mutex<HashMap<String, Weak<TaskContext>>>;

/// One running (or just finished) task.
pub struct TaskContext {
    id: Upid,
    upid: String,
    dir: PathBuf,
    record: Mutex<TaskStatus>,
    /// `None` once the task has finished; `finish` holds this lock until the final record is
    /// written, so whoever sees `None` also sees the complete log and record.
    log: Mutex<Option<File>>,
    warnings: AtomicU64,
    abort: AtomicBool,
    abort_tx: watch::Sender<bool>,
    running: Weak<RunningTasks>,
}

/// Locks a mutex even when a panicking task poisoned it: the data stays consistent because
/// every critical section here is a single assignment or write.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TaskContext {
    pub(super) fn new(
        id: Upid,
        dir: PathBuf,
        record: TaskStatus,
        log: File,
        running: Weak<RunningTasks>,
    ) -> Self {
        Self {
            upid: id.to_string(),
            id,
            dir,
            record: Mutex::new(record),
            log: Mutex::new(Some(log)),
            warnings: AtomicU64::new(0),
            abort: AtomicBool::new(false),
            abort_tx: watch::Sender::new(false),
            running,
        }
    }

    pub fn upid(&self) -> &str {
        &self.upid
    }

    pub(super) fn id(&self) -> &Upid {
        &self.id
    }

    /// The task's record as it stands now.
    pub(super) fn record(&self) -> TaskStatus {
        lock(&self.record).clone()
    }

    /// Whether the task has not finished yet. Waits for a `finish` in progress.
    pub(super) fn is_running(&self) -> bool {
        lock(&self.log).is_some()
    }

    /// Appends `<time>: line` to the log (one log line per line of `line`).
    pub fn log(&self, line: impl AsRef<str>) {
        let time = datastore::snapshot::format_time(files::now_epoch());
        let mut text = String::new();
        for part in line.as_ref().lines() {
            text.push_str(&time);
            text.push_str(": ");
            text.push_str(part);
            text.push('\n');
        }
        if text.is_empty() {
            text = format!("{time}: \n");
        }
        let mut log = lock(&self.log);
        let Some(file) = log.as_mut() else {
            tracing::debug!(
                "task {} already finished; not logged: {}",
                self.upid,
                line.as_ref()
            );
            return;
        };
        // One write per call: a reader sees whole lines or a line without its newline yet.
        if let Err(err) = file.write_all(text.as_bytes()).and_then(|()| file.flush()) {
            tracing::error!("writing the log of task {}: {err}", self.upid);
        }
    }

    /// Logs `WARN: line` and counts a warning: a task that ends well with warnings ends with
    /// status `warnings`.
    pub fn warn(&self, line: impl AsRef<str>) {
        self.warnings.fetch_add(1, Ordering::Relaxed);
        self.log(format!("WARN: {}", line.as_ref()));
    }

    /// Set when an abort was requested; blocking work polls it.
    pub fn abort_flag(&self) -> &AtomicBool {
        &self.abort
    }

    pub fn is_aborted(&self) -> bool {
        self.abort.load(Ordering::SeqCst)
    }

    /// Resolves once an abort was requested (at once if it already was).
    pub async fn aborted(&self) {
        let mut rx = self.abort_tx.subscribe();
        // The sender lives in `self`, so this only returns when the flag was set.
        let _ = rx.wait_for(|&aborted| aborted).await;
    }

    pub(super) fn request_abort(&self) {
        self.log("abort requested");
        self.abort.store(true, Ordering::SeqCst);
        self.abort_tx.send_replace(true);
    }

    /// Ends the task: status from the work's result, the abort flag and the warning count
    /// ([`policy::end_state`]), the last log line, the final record. A second call does
    /// nothing.
    pub fn finish(&self, result: anyhow::Result<TaskOutcome>) {
        let mut log = lock(&self.log);
        let Some(mut file) = log.take() else { return };
        let end = policy::end_state(
            &result,
            self.is_aborted(),
            self.warnings.load(Ordering::Relaxed),
        );
        let line = format!(
            "{}: {}\n",
            datastore::snapshot::format_time(files::now_epoch()),
            end.log_line
        );
        if let Err(err) = file
            .write_all(line.as_bytes())
            .and_then(|()| file.sync_all())
        {
            tracing::error!("writing the log of task {}: {err}", self.upid);
        }
        drop(file);
        let record = {
            let mut record = lock(&self.record);
            record.end_time = Some(files::now_epoch().max(record.start_time));
            record.status = end.status.to_string();
            record.message = end.message;
            record.result = result.ok().and_then(|outcome| outcome.result);
            record.clone()
        };
        if let Err(err) = files::write_record(&self.dir, &self.id, &record) {
            tracing::error!("finishing task {}: {err:#}", self.upid);
        }
        tracing::info!("task {} ended: {}", self.upid, record.status);
        drop(log);
        if let Some(running) = self.running.upgrade() {
            lock(&running).remove(&self.upid);
        }
    }
}

impl Drop for TaskContext {
    fn drop(&mut self) {
        // Does nothing if the task finished, which is the normal case.
        self.finish(Err(anyhow::anyhow!(
            "the task ended without reporting a result"
        )));
    }
}

impl std::fmt::Debug for TaskContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskContext")
            .field("upid", &self.upid)
            .field("aborted", &self.is_aborted())
            .finish_non_exhaustive()
    }
}
