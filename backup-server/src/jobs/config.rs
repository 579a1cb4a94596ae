//! The jobs config: `<config-dir>/jobs.json`, one entry per scheduled GC, verify or prune
//! job, read and changed through [`crate::config_store`] (digest check, lock, atomic write).
//!
//! Every change is validated before it is written: an invalid job never reaches the file
//! through this module. What it must not do: run jobs or touch their state (that is the
//! scheduler's), or trust the file (the scheduler re-parses each schedule it reads).

use std::str::FromStr;

use datastore::duration::{CalendarDuration, parse_duration};
use datastore::names::{Namespace, validate_store_name};
use datastore::prune::KeepRules;
use protocol::types::KeepOptions;
use serde::{Deserialize, Serialize};

use super::JobError;
use super::state::remove_state;
use crate::calendar::CalendarEvent;
use crate::config::ConfigDir;
use crate::config_store::{self, ConfigError, Versioned};

/// File name of the jobs config inside the config directory.
pub const JOBS_FILE: &str = "jobs.json";

/// Longest job id.
const MAX_ID_LEN: usize = 64;
/// Longest comment.
const MAX_COMMENT_LEN: usize = 256;

/// What a job does.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum JobType {
    Gc,
    Verify,
    Prune,
}

impl JobType {
    /// The name used in the config, in task types and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gc => "gc",
            Self::Verify => "verify",
            Self::Prune => "prune",
        }
    }
}

impl std::fmt::Display for JobType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobType {
    type Err = JobError;

    fn from_str(s: &str) -> Result<Self, JobError> {
        match s {
            "gc" => Ok(Self::Gc),
            "verify" => Ok(Self::Verify),
            "prune" => Ok(Self::Prune),
            _ => Err(JobError::Invalid(format!(
                "invalid job type {s:?}: expected gc, verify or prune"
            ))),
        }
    }
}

fn yes() -> bool {
    true
}

/// One scheduled job.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct JobConfig {
    /// `[A-Za-z0-9_][A-Za-z0-9._-]{0,63}`, unique among the jobs.
    pub id: String,
    pub job_type: JobType,
    pub store: String,
    /// Namespace of a verify or prune job (and everything below it for verify); empty for
    /// the root. GC always covers the whole store.
    #[serde(default)]
    pub ns: String,
    /// A calendar event in the server's local time, e.g. `daily` or `mon..fri 02:30`.
    pub schedule: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub comment: Option<String>,
    /// Verify: re-verify snapshots whose last verify is older than this many days.
    #[serde(default)]
    pub outdated_after_days: Option<u32>,
    /// Verify: only snapshots that were never verified.
    #[serde(default)]
    pub only_unverified: bool,
    /// Prune: the retention policy; at least one option is required.
    #[serde(default, flatten)]
    pub keep: KeepOptions,
}

/// Contents of [`JOBS_FILE`].
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JobsFile {
    pub jobs: Vec<JobConfig>,
}

impl JobsFile {
    pub fn get(&self, id: &str) -> Option<&JobConfig> {
        self.jobs.iter().find(|j| j.id == id)
    }
}

/// Checks a job id: `[A-Za-z0-9_][A-Za-z0-9._-]{0,63}`. It names the job's state file.
pub fn validate_job_id(id: &str) -> Result<(), JobError> {
    let bad = |reason: &str| {
        Err(JobError::Invalid(format!(
            "invalid job id {id:?}: {reason}"
        )))
    };
    match id.bytes().next() {
        None => return bad("must not be empty"),
        Some(b) if !(b.is_ascii_alphanumeric() || b == b'_') => {
            return bad("must start with a letter, a digit or '_'");
        }
        Some(_) => {}
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return bad("may only contain letters, digits, '_', '-' and '.'");
    }
    if id.len() > MAX_ID_LEN {
        return bad("is longer than 64 characters");
    }
    Ok(())
}

/// Parses a job's schedule; the calendar's error is part of the message.
pub fn parse_schedule(schedule: &str) -> Result<CalendarEvent, JobError> {
    schedule
        .parse::<CalendarEvent>()
        .map_err(|err| JobError::Invalid(format!("invalid schedule {schedule:?}: {err}")))
}

/// Checks everything about a job that can be checked without the datastore: names, the
/// schedule, and that it only carries the options of its type.
pub fn validate_job(job: &JobConfig) -> Result<(), JobError> {
    let invalid = |msg: String| Err(JobError::Invalid(format!("job {:?}: {msg}", job.id)));
    validate_job_id(&job.id)?;
    validate_store_name(&job.store).map_err(|e| JobError::Invalid(e.to_string()))?;
    Namespace::parse(&job.ns).map_err(|e| JobError::Invalid(e.to_string()))?;
    parse_schedule(&job.schedule)?;
    if let Some(comment) = &job.comment
        && (comment.len() > MAX_COMMENT_LEN || comment.chars().any(char::is_control))
    {
        return invalid("the comment must be one line of at most 256 bytes".into());
    }
    let has_verify_options = job.outdated_after_days.is_some() || job.only_unverified;
    let has_keep_options = job.keep != KeepOptions::default();
    if job.job_type != JobType::Verify && has_verify_options {
        return invalid(format!(
            "outdated-after-days and only-unverified are verify options, not {} options",
            job.job_type
        ));
    }
    if job.job_type != JobType::Prune && has_keep_options {
        return invalid(format!(
            "keep-* are prune options, not {} options",
            job.job_type
        ));
    }
    if job.job_type == JobType::Gc && !job.ns.is_empty() {
        return invalid("a gc job covers the whole datastore: it takes no namespace".into());
    }
    if job.job_type == JobType::Prune && keep_rules(&job.keep)?.is_empty() {
        return invalid(
            "a prune job needs at least one keep-* option (prune never removes everything)".into(),
        );
    }
    Ok(())
}

/// The prune policy of a job's keep options; a bad duration is an invalid job.
pub fn keep_rules(keep: &KeepOptions) -> Result<KeepRules, JobError> {
    let duration = |name: &str,
                    value: &Option<String>|
     -> Result<Option<CalendarDuration>, JobError> {
        value
            .as_deref()
            .map(|v| parse_duration(v).map_err(|e| JobError::Invalid(format!("{name} {v:?}: {e}"))))
            .transpose()
    };
    Ok(KeepRules {
        last: keep.keep_last,
        hourly: keep.keep_hourly,
        daily: keep.keep_daily,
        weekly: keep.keep_weekly,
        monthly: keep.keep_monthly,
        yearly: keep.keep_yearly,
        within: duration("keep-within", &keep.keep_within)?,
        within_hourly: duration("keep-within-hourly", &keep.keep_within_hourly)?,
        within_daily: duration("keep-within-daily", &keep.keep_within_daily)?,
        within_weekly: duration("keep-within-weekly", &keep.keep_within_weekly)?,
        within_monthly: duration("keep-within-monthly", &keep.keep_within_monthly)?,
        within_yearly: duration("keep-within-yearly", &keep.keep_within_yearly)?,
    })
}

/// Reads the jobs config (empty when the file does not exist) and its digest.
pub fn load_jobs(config_dir: &ConfigDir) -> Result<Versioned<JobsFile>, JobError> {
    Ok(config_store::load(&config_dir.path(JOBS_FILE))?)
}

/// Adds a job; refuses an invalid job, a duplicate id, or a stale `digest`.
pub fn add_job(
    config_dir: &ConfigDir,
    job: JobConfig,
    digest: Option<&str>,
) -> Result<Versioned<JobsFile>, JobError> {
    validate_job(&job)?;
    change_jobs(config_dir, digest, |file| {
        if file.get(&job.id).is_some() {
            return Err(JobError::Exists(job.id.clone()));
        }
        file.jobs.push(job);
        Ok(())
    })
}

/// Changes a job in place; the changed job must be valid and keep its id.
pub fn update_job(
    config_dir: &ConfigDir,
    id: &str,
    change: impl FnOnce(&mut JobConfig),
    digest: Option<&str>,
) -> Result<Versioned<JobsFile>, JobError> {
    change_jobs(config_dir, digest, |file| {
        let job = file
            .jobs
            .iter_mut()
            .find(|j| j.id == id)
            .ok_or_else(|| JobError::NotFound(id.to_string()))?;
        change(job);
        if job.id != id {
            return Err(JobError::Invalid(format!(
                "the id of job {id:?} cannot change"
            )));
        }
        validate_job(job)
    })
}

/// Removes a job and its state (so a new job with the same id starts afresh).
pub fn remove_job(
    config_dir: &ConfigDir,
    id: &str,
    digest: Option<&str>,
) -> Result<Versioned<JobsFile>, JobError> {
    let file = change_jobs(config_dir, digest, |file| {
        let before = file.jobs.len();
        file.jobs.retain(|j| j.id != id);
        if file.jobs.len() == before {
            return Err(JobError::NotFound(id.to_string()));
        }
        Ok(())
    })?;
    remove_state(config_dir, id)?;
    Ok(file)
}

/// A read-modify-write of the jobs file. `config_store` only carries its own error type
/// through the change, so a refusal is kept aside and returned as it was.
fn change_jobs(
    config_dir: &ConfigDir,
    digest: Option<&str>,
    change: impl FnOnce(&mut JobsFile) -> Result<(), JobError>,
) -> Result<Versioned<JobsFile>, JobError> {
    let mut refusal = None;
    let result = config_store::update(&config_dir.path(JOBS_FILE), digest, |file| {
        change(file).map_err(|err| {
            let message = err.to_string();
            refusal = Some(err);
            ConfigError::Invalid(message)
        })
    });
    match (result, refusal) {
        (_, Some(err)) => Err(err),
        (result, None) => Ok(result?),
    }
}
