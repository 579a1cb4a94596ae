//! The task registry: every long operation of the server (backup and reader sessions, GC,
//! verify, prune) runs as a task with a UPID, a record and a log that survive a restart.
//!
//! A task directory holds `<upid>.json` (a protocol `TaskStatus`, replaced atomically at
//! start and at end) and `<upid>.log` (`<RFC 3339 time>: line`, ending with a `TASK ...`
//! line). Running tasks are also in memory; at `open`, records still `running` from a dead
//! process become `unknown`. A listing reads records only, never logs.
//!
//! What it must not do: build a path from anything but a parsed [`upid::Upid`] (every method
//! taking a UPID string validates it first; a bad one is "no such task"), put free text
//! (worker ids, auth ids) into a UPID, or leave a task `running` in a live server: a panic in
//! a spawned task and a context dropped without `finish` both end the task as an error.
//!
//! Pure parts: [`upid`] (format, parse) and [`policy`] (end status, listing selection).

mod context;
mod files;
pub mod policy;
#[cfg(test)]
mod tests;
pub mod upid;

use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context as _, Result, anyhow, bail};
use protocol::types::{TaskListParams, TaskLog, TaskStatus};

use context::RunningTasks;
pub use context::TaskContext;
use upid::{Upid, parse_upid};

/// What a new task is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSpec {
    /// `backup`, `reader`, `gc`, `verify`, `prune`: a plain `[A-Za-z0-9_.-]+` name.
    pub task_type: String,
    /// The datastore it works on: a plain name, too.
    pub store: Option<String>,
    /// Free text shown in listings (e.g. `host/web1`); never part of a file name.
    pub worker_id: Option<String>,
    pub auth_id: String,
}

/// What a task's work returns on success.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskOutcome {
    /// Task-specific report (e.g. GC stats), stored in the record.
    pub result: Option<serde_json::Value>,
}

/// Process-wide sequence number of UPIDs: two tasks started in the same second differ in it.
static NEXT_SEQ: AtomicU32 = AtomicU32::new(0);

/// How many sequence numbers `begin` tries when log files with the same UPID already exist
/// (a restarted server with the same pid, in the same second).
const MAX_ID_ATTEMPTS: usize = 1000;

/// The tasks of one server, kept in one directory.
#[derive(Debug)]
pub struct TaskRegistry {
    dir: PathBuf,
    running: Arc<RunningTasks>,
}

impl TaskRegistry {
    /// Opens (creates) the task directory, e.g. `<config-dir>/tasks`. Records still
    /// `running` from a previous process are rewritten as `unknown`, ended at their log's
    /// last change.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating task directory {}", dir.display()))?;
        let recovered = files::recover(dir)?;
        if recovered > 0 {
            tracing::warn!("{recovered} tasks were running when the server stopped");
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            running: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// Starts `work` on a new OS thread (for blocking work: GC, verify, prune) and returns
    /// its UPID at once. The task ends with the closure's result; a panic ends it as an
    /// error.
    pub fn spawn<F>(self: &Arc<Self>, spec: TaskSpec, work: F) -> Result<String>
    where
        F: FnOnce(&TaskContext) -> Result<TaskOutcome> + Send + 'static,
    {
        let ctx = self.begin(spec)?;
        let upid = ctx.upid().to_string();
        let worker = Arc::clone(&ctx);
        let spawned = std::thread::Builder::new()
            .name(format!("task-{}", ctx.id().task_type))
            .spawn(move || {
                let result = panic::catch_unwind(AssertUnwindSafe(|| work(&worker)))
                    .unwrap_or_else(|payload| {
                        let what = payload
                            .downcast_ref::<&str>()
                            .copied()
                            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                            .unwrap_or("unknown cause");
                        Err(anyhow!("task panicked: {what}"))
                    });
                worker.finish(result);
            });
        if let Err(err) = spawned {
            ctx.finish(Err(anyhow!("could not start the task's thread: {err}")));
            return Err(err).context("starting a task thread");
        }
        Ok(upid)
    }

    /// Registers a running task (for async work: backup sessions); the caller ends it with
    /// [`TaskContext::finish`].
    pub fn begin(self: &Arc<Self>, spec: TaskSpec) -> Result<Arc<TaskContext>> {
        let pid = std::process::id();
        let start_time = files::now_epoch();
        let mut attempt = 0;
        let (id, log) = loop {
            let seq = NEXT_SEQ.fetch_add(1, Ordering::Relaxed);
            let id = Upid::new(pid, start_time, seq, &spec.task_type, spec.store.as_deref())?;
            match files::create_log(&self.dir, &id) {
                Ok(log) => break (id, log),
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                    attempt += 1;
                    if attempt >= MAX_ID_ATTEMPTS {
                        bail!("no free task id in {}", self.dir.display());
                    }
                }
                Err(err) => {
                    return Err(err)
                        .with_context(|| format!("creating task log in {}", self.dir.display()));
                }
            }
        };
        let record = TaskStatus {
            upid: id.to_string(),
            task_type: spec.task_type,
            store: spec.store,
            worker_id: spec.worker_id,
            auth_id: spec.auth_id,
            start_time,
            end_time: None,
            status: policy::RUNNING.to_string(),
            message: None,
            result: None,
        };
        if let Err(err) = files::write_record(&self.dir, &id, &record) {
            let _ = std::fs::remove_file(files::log_path(&self.dir, &id));
            return Err(err);
        }
        let upid = record.upid.clone();
        let ctx = Arc::new(TaskContext::new(
            id,
            self.dir.clone(),
            record,
            log,
            Arc::downgrade(&self.running),
        ));
        self.running_map()
            .insert(upid.clone(), Arc::downgrade(&ctx));
        tracing::info!("task {upid} started");
        Ok(ctx)
    }

    /// Tasks, newest first, filtered by type, store and `running`, at most `limit`.
    /// Unreadable records are skipped (and logged).
    pub fn list(&self, params: &TaskListParams) -> Result<Vec<TaskStatus>> {
        let limit = params.limit.unwrap_or(usize::MAX);
        let ids = if params.running {
            self.live().iter().map(|ctx| ctx.id().clone()).collect()
        } else {
            files::scan(&self.dir)?.0
        };
        let mut tasks = Vec::new();
        for id in policy::select(ids, params) {
            if tasks.len() >= limit {
                break;
            }
            match self.record_of(&id) {
                Ok(Some(record)) if !params.running || record.status == policy::RUNNING => {
                    tasks.push(record);
                }
                Ok(_) => {}
                Err(err) => tracing::warn!("skipping task record: {err:#}"),
            }
        }
        Ok(tasks)
    }

    /// A task's record; `None` for an unknown or malformed UPID.
    pub fn status(&self, upid: &str) -> Result<Option<TaskStatus>> {
        let Ok(id) = parse_upid(upid) else {
            return Ok(None);
        };
        self.record_of(&id)
    }

    /// Log lines from line `start` (0-based) on, also while the task runs.
    pub fn read_log(&self, upid: &str, start: usize) -> Result<Option<TaskLog>> {
        let Ok(id) = parse_upid(upid) else {
            return Ok(None);
        };
        // Asked before reading: a task seen as ended has written its last line already.
        let running = self.find(upid).is_some_and(|ctx| ctx.is_running());
        Ok(
            files::read_log_lines(&self.dir, &id, start)?.map(|(lines, next)| TaskLog {
                lines,
                next,
                running,
            }),
        )
    }

    /// Requests a task's abort: `Some(true)` if it was running, `Some(false)` if it had
    /// ended, `None` if there is no such task.
    pub fn abort(&self, upid: &str) -> Result<Option<bool>> {
        let Ok(id) = parse_upid(upid) else {
            return Ok(None);
        };
        if let Some(ctx) = self.find(upid)
            && ctx.is_running()
        {
            ctx.request_abort();
            return Ok(Some(true));
        }
        Ok(self.record_of(&id)?.map(|_| false))
    }

    /// The oldest start time among running tasks of a type on a store.
    pub fn oldest_running_start(&self, task_type: &str, store: &str) -> Option<i64> {
        self.live()
            .iter()
            .map(|ctx| ctx.id())
            .filter(|id| id.task_type == task_type && id.store.as_deref() == Some(store))
            .map(|id| id.start_time)
            .min()
    }

    /// Whether a task of this type runs on this store now.
    pub fn is_running(&self, task_type: &str, store: &str) -> bool {
        self.oldest_running_start(task_type, store).is_some()
    }

    fn running_map(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, std::sync::Weak<TaskContext>>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The running tasks. The map lock is released before the contexts can be dropped (a
    /// drop may finish a task, which takes the lock).
    fn live(&self) -> Vec<Arc<TaskContext>> {
        let map = self.running_map();
        map.values().filter_map(std::sync::Weak::upgrade).collect()
    }

    fn find(&self, upid: &str) -> Option<Arc<TaskContext>> {
        let map = self.running_map();
        map.get(upid).and_then(std::sync::Weak::upgrade)
    }

    /// The in-memory record of a running task, else the one on disk.
    fn record_of(&self, id: &Upid) -> Result<Option<TaskStatus>> {
        match self.find(&id.to_string()) {
            Some(ctx) => Ok(Some(ctx.record())),
            None => files::read_record(&self.dir, id),
        }
    }
}
