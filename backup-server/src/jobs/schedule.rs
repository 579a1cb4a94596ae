//! The scheduler's decisions, as pure functions of a job's schedule, its state and `now`:
//! when it runs next, whether it is due, and how its state changes when a run starts or its
//! task ends.
//!
//! Catch-up policy (as in PBS): the next run is the first occurrence of the schedule after
//! the last run, or after the job was registered if it never ran. When that time has
//! passed — the server was down, or the previous run was still going — the job is due, and
//! only once: the run that catches up becomes the last run, and the next one is computed
//! from it, so the occurrences missed meanwhile are skipped, never replayed.
//!
//! No IO and no clock here: the scheduler reads the files and the task registry, passes
//! `now`, and writes what these functions return.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use protocol::types::TaskStatus;

use super::state::{JobState, RUNNING, status_text};
use crate::calendar::CalendarEvent;

/// The status of a run whose task record is gone (rotated away or deleted by hand).
const UNKNOWN: &str = crate::tasks::policy::UNKNOWN;

/// When the job should run next: the first occurrence of its schedule after the last run
/// (or after `registered` if it never ran). `None` if the job was never registered or the
/// schedule has no later occurrence. A time in the past means a missed run: due now, once.
pub fn next_run(event: &CalendarEvent, state: &JobState, tz: &TimeZone) -> Option<i64> {
    let base = state.last_run_time.or(state.registered)?;
    let after = Timestamp::from_second(base).ok()?;
    event.next_after(after, tz).map(|t| t.as_second())
}

/// Whether a job whose next run is `next_run` should start at `now`.
pub fn is_due(next_run: Option<i64>, now: i64) -> bool {
    next_run.is_some_and(|t| t <= now)
}

/// What the scheduler does with one job at one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Start the job now (then record it with [`record_start`]).
    Start,
    /// Leave it; its state's `next_run` becomes this.
    Wait { next_run: Option<i64> },
}

/// Registers a job the scheduler sees for the first time: it will run at the first
/// occurrence of its schedule after `now`, not at one before it was configured.
pub fn register(state: &mut JobState, now: i64) {
    if state.last_run_time.is_none() && state.registered.is_none() {
        state.registered = Some(now);
    }
}

/// Decides about one job at `now`, from its state as refreshed from the task registry.
/// A disabled job never starts and has no next run; a job whose last run still runs waits
/// (it starts once that run ended, if it is still due then).
pub fn decide(
    event: &CalendarEvent,
    enabled: bool,
    state: &JobState,
    now: i64,
    tz: &TimeZone,
) -> Decision {
    if !enabled {
        return Decision::Wait { next_run: None };
    }
    let next = next_run(event, state, tz);
    if is_due(next, now) && !state.is_running() {
        Decision::Start
    } else {
        Decision::Wait { next_run: next }
    }
}

/// Records a run started at `now`: `started` is the new task's UPID, or why no task could
/// be started (then the run counts as done and failed, so that it is not retried before
/// the next occurrence). The next run is computed from this one.
pub fn record_start(
    state: &mut JobState,
    event: &CalendarEvent,
    enabled: bool,
    now: i64,
    started: Result<&str, &str>,
    tz: &TimeZone,
) {
    state.last_run_time = Some(now);
    match started {
        Ok(upid) => {
            state.last_run_upid = Some(upid.to_string());
            state.last_run_status = Some(RUNNING.to_string());
        }
        Err(why) => {
            state.last_run_upid = None;
            state.last_run_status = Some(status_text(
                crate::tasks::policy::ERROR,
                Some(&format!("could not start: {why}")),
            ));
        }
    }
    state.next_run = if enabled {
        next_run(event, state, tz)
    } else {
        None
    };
}

/// Takes the end of the last run into account. `task` is the record of
/// `state.last_run_upid` (`None`: there is no such record). Only a run recorded as running
/// changes; returns whether the state changed.
pub fn record_task_end(state: &mut JobState, task: Option<&TaskStatus>) -> bool {
    if !state.is_running() {
        return false;
    }
    let status = match task {
        Some(task) if task.status == RUNNING => return false,
        Some(task) => status_text(&task.status, task.message.as_deref()),
        None => UNKNOWN.to_string(),
    };
    state.last_run_status = Some(status);
    true
}
