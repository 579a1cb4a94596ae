//! What the scheduler remembers of each job across restarts: `<config-dir>/jobstate/<id>.json`,
//! one small JSON file per job, replaced atomically (temp file, fsync, rename).
//!
//! Only the scheduler writes these files (and `remove_job` deletes one); a missing file is
//! a job the scheduler has not seen yet. What this module must not do: build a path from
//! an id that did not pass [`validate_job_id`], or decide anything about schedules.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::JobError;
use super::config::validate_job_id;
use crate::config::ConfigDir;

/// Directory of the job state files inside the config directory.
pub const JOBSTATE_DIR: &str = "jobstate";

/// The `last_run_status` of a run whose task has not ended (the task's own status).
pub const RUNNING: &str = crate::tasks::policy::RUNNING;

/// The scheduler's memory of one job. Times are seconds since the epoch.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct JobState {
    /// When the scheduler (or "run now") last started the job.
    #[serde(default)]
    pub last_run_time: Option<i64>,
    /// The task of that run; `None` if it could not be started.
    #[serde(default)]
    pub last_run_upid: Option<String>,
    /// `running`, then the task's end status (`ok`, `warnings`, `error`, `aborted`,
    /// `unknown`), followed by `: <message>` when the task has one (the error, or the
    /// number of warnings), as in `error: datastore is not mounted`.
    #[serde(default)]
    pub last_run_status: Option<String>,
    /// When the job runs next, as last computed by the scheduler; `None` for a disabled
    /// job or a schedule without further occurrences.
    #[serde(default)]
    pub next_run: Option<i64>,
    /// When the scheduler first saw the job: a job that never ran is scheduled from here.
    #[serde(default)]
    pub registered: Option<i64>,
}

impl JobState {
    /// Whether the last run's task was running when this state was last refreshed.
    pub fn is_running(&self) -> bool {
        self.last_run_status.as_deref() == Some(RUNNING)
    }
}

/// The `last_run_status` text of an ended task.
pub fn status_text(status: &str, message: Option<&str>) -> String {
    match message {
        Some(message) => format!("{status}: {message}"),
        None => status.to_string(),
    }
}

fn state_dir(config_dir: &ConfigDir) -> PathBuf {
    config_dir.path(JOBSTATE_DIR)
}

fn state_path(config_dir: &ConfigDir, id: &str) -> Result<PathBuf, JobError> {
    validate_job_id(id)?;
    Ok(state_dir(config_dir).join(format!("{id}.json")))
}

fn io_error(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> JobError {
    let path = path.to_path_buf();
    move |source| JobError::State { what, path, source }
}

/// A job's state; the default for a job without a state file.
pub fn load_state(config_dir: &ConfigDir, id: &str) -> Result<JobState, JobError> {
    let path = state_path(config_dir, id)?;
    match std::fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|source| JobError::StateParse { path, source })
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(JobState::default()),
        Err(err) => Err(io_error("reading", &path)(err)),
    }
}

/// Replaces a job's state file atomically.
pub fn save_state(config_dir: &ConfigDir, id: &str, state: &JobState) -> Result<(), JobError> {
    let path = state_path(config_dir, id)?;
    let dir = state_dir(config_dir);
    std::fs::create_dir_all(&dir).map_err(io_error("creating", &dir))?;
    let mut bytes = serde_json::to_vec_pretty(state).map_err(|source| JobError::StateParse {
        path: path.clone(),
        source,
    })?;
    bytes.push(b'\n');
    datastore::fs_util::replace_file(&path, &bytes).map_err(io_error("writing", &path))
}

/// Deletes a job's state file; a missing one is fine.
pub fn remove_state(config_dir: &ConfigDir, id: &str) -> Result<(), JobError> {
    let path = state_path(config_dir, id)?;
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(io_error("removing", &path)(err)),
    }
}

/// The ids that have a state file (temp files and foreign names are skipped).
pub fn state_ids(config_dir: &ConfigDir) -> Result<Vec<String>, JobError> {
    let dir = state_dir(config_dir);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(io_error("listing", &dir)(err)),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_error("listing", &dir))?;
        let name = entry.file_name();
        if let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json"))
            && validate_job_id(id).is_ok()
        {
            ids.push(id.to_string());
        }
    }
    Ok(ids)
}
