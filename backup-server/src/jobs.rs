//! Scheduled jobs: GC, verify and prune runs of a datastore on a calendar-event schedule.
//!
//! The jobs are configured in `<config-dir>/jobs.json` ([`config`]); what the scheduler
//! remembers of each (last run, its task and status, next run) is in
//! `<config-dir>/jobstate/<id>.json` ([`state`]), so that a restart knows what ran. The
//! [`Scheduler`] checks every job once a second: the decisions are pure ([`schedule`]), this
//! file only reads the files and the task registry, starts tasks and writes the state.
//!
//! Invariants: a job never runs twice at the same time (a run starts only when the task
//! of the previous one has ended, checked under one lock for scheduled and "run now" runs);
//! a run missed while the server was down is caught up once, not once per missed
//! occurrence; an error of one job is logged and never stops the others. Schedules are in
//! the server's local time zone.
//!
//! What this module must not do: know how a GC, verify or prune task works (the caller's
//! `start_job` starts it, with the same code as the REST handlers), or run its blocking
//! file IO on an async worker ([`Scheduler::run`] ticks on a blocking thread).

pub mod config;
pub mod schedule;
#[cfg(test)]
mod scheduler_tests;
pub mod state;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jiff::tz::TimeZone;

pub use config::{
    JobConfig, JobType, JobsFile, add_job, load_jobs, remove_job, update_job, validate_job,
};
pub use state::JobState;

use crate::calendar::CalendarEvent;
use crate::config::ConfigDir;
use crate::config_store::ConfigError;
use crate::tasks::TaskRegistry;
use schedule::Decision;

/// Starts a job's task and returns its UPID.
pub type StartJob = Arc<dyn Fn(&JobConfig) -> anyhow::Result<String> + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The caller's mistake: a bad id, store, schedule or option.
    #[error("{0}")]
    Invalid(String),
    #[error("no job named '{0}'")]
    NotFound(String),
    #[error("a job named '{0}' already exists")]
    Exists(String),
    #[error("{path} was changed by someone else (digest mismatch): reload and try again")]
    Conflict { path: PathBuf },
    #[error("job '{id}' is still running (task {upid})")]
    Running { id: String, upid: String },
    #[error("starting job '{id}': {source:#}")]
    Start { id: String, source: anyhow::Error },
    #[error(transparent)]
    Config(ConfigError),
    #[error("{what} job state {path}: {source}")]
    State {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("job state {path}: {source}")]
    StateParse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("reading the task of job '{id}': {source:#}")]
    Task { id: String, source: anyhow::Error },
}

impl From<ConfigError> for JobError {
    fn from(err: ConfigError) -> Self {
        match err {
            ConfigError::Conflict { path } => Self::Conflict { path },
            ConfigError::Invalid(message) => Self::Invalid(message),
            other => Self::Config(other),
        }
    }
}

/// Runs the configured jobs on their schedules.
pub struct Scheduler {
    config_dir: ConfigDir,
    tasks: Arc<TaskRegistry>,
    start_job: StartJob,
    tz: TimeZone,
    /// Held while a job's state is read, a run decided and started and the state written:
    /// a tick and a "run now" never both start the same job.
    lock: Mutex<()>,
    /// The last error logged per job, so that a broken job is logged once, not every second.
    reported: Mutex<HashMap<String, String>>,
}

impl Scheduler {
    /// A scheduler in the server's local time zone. `start_job` starts the job's task
    /// (with the same code as the REST handlers) and returns its UPID.
    pub fn new(config_dir: ConfigDir, tasks: Arc<TaskRegistry>, start_job: StartJob) -> Self {
        Self::with_time_zone(config_dir, tasks, start_job, TimeZone::system())
    }

    /// A scheduler whose schedules are in `tz` (tests use UTC or a fixed zone).
    pub fn with_time_zone(
        config_dir: ConfigDir,
        tasks: Arc<TaskRegistry>,
        start_job: StartJob,
        tz: TimeZone,
    ) -> Self {
        Self {
            config_dir,
            tasks,
            start_job,
            tz,
            lock: Mutex::new(()),
            reported: Mutex::new(HashMap::new()),
        }
    }

    /// Checks every job once at `now`: registers new jobs, records the end of finished
    /// runs, starts the due jobs whose previous run has ended and records their run and
    /// next run. An error of one job is logged and does not stop the others. Blocking IO.
    pub fn tick(&self, now: i64) {
        let _guard = self.lock();
        let jobs = match load_jobs(&self.config_dir) {
            Ok(file) => file.data.jobs,
            Err(err) => {
                self.report("", Err(&err));
                return;
            }
        };
        self.report("", Ok(()));
        for job in &jobs {
            let result = self.check_job(job, now);
            self.report(&job.id, result.as_ref().map(|_| ()));
        }
        self.remove_orphaned_states(&jobs);
    }

    /// Runs [`Self::tick`] every second, on a blocking thread, until the future is dropped.
    pub async fn run(self: Arc<Self>) {
        let mut interval = tokio::time::interval(Duration::from_secs(1));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let now = jiff::Timestamp::now().as_second();
            let this = Arc::clone(&self);
            if let Err(err) = tokio::task::spawn_blocking(move || this.tick(now)).await {
                tracing::error!("job scheduler tick failed: {err}");
            }
        }
    }

    /// Runs a job now, whatever its schedule (also a disabled one), the same way as a
    /// scheduled run; refuses while its previous run is still running. Returns the UPID.
    /// Blocking IO.
    pub fn run_now(&self, id: &str, now: i64) -> Result<String, JobError> {
        let _guard = self.lock();
        let jobs = load_jobs(&self.config_dir)?.data;
        let job = jobs
            .get(id)
            .ok_or_else(|| JobError::NotFound(id.to_string()))?;
        let event = config::parse_schedule(&job.schedule)?;
        let mut state = state::load_state(&self.config_dir, id)?;
        self.refresh(job, &mut state)?;
        if state.is_running() {
            let upid = state.last_run_upid.unwrap_or_default();
            return Err(JobError::Running {
                id: id.to_string(),
                upid,
            });
        }
        let started = self.start(job, &event, &mut state, now);
        state::save_state(&self.config_dir, id, &state)?;
        started
    }

    /// Every configured job with its state; the status of a run that has ended since the
    /// last tick is already shown as ended. Blocking IO.
    pub fn list(&self) -> Result<Vec<(JobConfig, JobState)>, JobError> {
        let jobs = load_jobs(&self.config_dir)?.data.jobs;
        let mut listed = Vec::with_capacity(jobs.len());
        for job in jobs {
            let mut state = state::load_state(&self.config_dir, &job.id)?;
            self.refresh(&job, &mut state)?;
            listed.push((job, state));
        }
        Ok(listed)
    }

    /// One job at one tick: read, decide, maybe start, write what changed.
    fn check_job(&self, job: &JobConfig, now: i64) -> Result<(), JobError> {
        let event = config::parse_schedule(&job.schedule)?;
        let mut state = state::load_state(&self.config_dir, &job.id)?;
        let before = state.clone();
        self.refresh(job, &mut state)?;
        if job.enabled {
            schedule::register(&mut state, now);
        }
        let started = match schedule::decide(&event, job.enabled, &state, now, &self.tz) {
            Decision::Start => Some(self.start(job, &event, &mut state, now)),
            Decision::Wait { next_run } => {
                state.next_run = next_run;
                None
            }
        };
        if state != before {
            state::save_state(&self.config_dir, &job.id, &state)?;
        }
        match started {
            Some(Ok(upid)) => {
                tracing::info!("job '{}' started task {upid}", job.id);
                Ok(())
            }
            Some(Err(err)) => Err(err),
            None => Ok(()),
        }
    }

    /// Starts a run and records it in `state` (also a run that could not start).
    fn start(
        &self,
        job: &JobConfig,
        event: &CalendarEvent,
        state: &mut JobState,
        now: i64,
    ) -> Result<String, JobError> {
        let started = (self.start_job)(job);
        let why;
        let outcome = match &started {
            Ok(upid) => Ok(upid.as_str()),
            Err(err) => {
                why = format!("{err:#}");
                Err(why.as_str())
            }
        };
        schedule::record_start(state, event, job.enabled, now, outcome, &self.tz);
        started.map_err(|source| JobError::Start {
            id: job.id.clone(),
            source,
        })
    }

    /// Records the end of the last run if its task has ended.
    fn refresh(&self, job: &JobConfig, state: &mut JobState) -> Result<(), JobError> {
        if !state.is_running() {
            return Ok(());
        }
        let task = match &state.last_run_upid {
            Some(upid) => self.tasks.status(upid).map_err(|source| JobError::Task {
                id: job.id.clone(),
                source,
            })?,
            None => None,
        };
        schedule::record_task_end(state, task.as_ref());
        Ok(())
    }

    /// Deletes the state files of jobs that are no longer configured (a job removed while a
    /// tick was writing its state, or removed by editing the file).
    fn remove_orphaned_states(&self, jobs: &[JobConfig]) {
        let configured: HashSet<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
        let result = state::state_ids(&self.config_dir).and_then(|ids| {
            ids.iter()
                .filter(|id| !configured.contains(id.as_str()))
                .try_for_each(|id| state::remove_state(&self.config_dir, id))
        });
        if let Err(err) = result {
            tracing::warn!("removing the state of deleted jobs: {err}");
        }
    }

    /// Logs an error of a job (`""`: of the jobs file) when it differs from the last one.
    fn report(&self, id: &str, result: Result<(), &JobError>) {
        let mut reported = self.reported.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(()) => {
                reported.remove(id);
            }
            // A run that could not start fails once per occurrence: always worth a line.
            Err(err @ JobError::Start { .. }) => {
                tracing::error!("scheduled job '{id}': {err}");
                reported.remove(id);
            }
            Err(err) => {
                let message = err.to_string();
                if reported.get(id) != Some(&message) {
                    if id.is_empty() {
                        tracing::error!("scheduled jobs: {message}");
                    } else {
                        tracing::error!("scheduled job '{id}': {message}");
                    }
                    reported.insert(id.to_string(), message);
                }
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
