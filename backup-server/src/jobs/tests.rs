//! Jobs tests of the pure parts and the config: the validation table, the JSON form,
//! config changes with digests, and the schedule decisions (table-driven, injected times).
//! The scheduler itself is tested in `scheduler_tests.rs`.

use jiff::Timestamp;
use jiff::tz::{self, TimeZone};
use protocol::types::TaskStatus;

use super::schedule::{Decision, decide, is_due, next_run, record_start, record_task_end};
use super::state::{JobState, load_state, save_state};
use super::*;
use crate::calendar::CalendarEvent;

pub(super) fn job(id: &str, job_type: JobType, schedule: &str) -> JobConfig {
    JobConfig {
        id: id.into(),
        job_type,
        store: "store1".into(),
        ns: String::new(),
        schedule: schedule.into(),
        enabled: true,
        comment: None,
        outdated_after_days: None,
        only_unverified: false,
        keep: Default::default(),
    }
}

fn event(s: &str) -> CalendarEvent {
    s.parse().unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

/// A time of 2024-01-01 UTC, `HH:MM` or `HH:MM:SS`.
fn at(time: &str) -> i64 {
    let time = if time.len() == 5 {
        format!("{time}:00")
    } else {
        time.to_string()
    };
    format!("2024-01-01T{time}Z")
        .parse::<Timestamp>()
        .unwrap()
        .as_second()
}

/// A validation case: name, type of the valid job it starts from, change, expected error.
type Case = (&'static str, JobType, Change, Option<&'static str>);
type Change = fn(&mut JobConfig);

#[test]
fn validation_table() {
    use JobType::{Gc, Prune, Verify};
    let valid = |job_type| {
        let mut j = job("job-1", job_type, "daily");
        if job_type == Prune {
            j.keep.keep_last = Some(3);
        }
        j
    };
    #[rustfmt::skip]
    let cases: &[Case] = &[
        ("gc", Gc, |_| {}, None),
        ("prune", Prune, |_| {}, None),
        ("verify", Verify, |j| j.outdated_after_days = Some(30), None),
        ("verify ns", Verify, |j| j.ns = "a/b".into(), None),
        ("unverified", Verify, |j| j.only_unverified = true, None),
        ("weekdays", Gc, |j| j.schedule = "mon..fri 02:30".into(), None),
        ("empty id", Gc, |j| j.id.clear(), Some("invalid job id")),
        ("hidden id", Gc, |j| j.id = ".x".into(), Some("invalid job id")),
        ("slash id", Gc, |j| j.id = "a/b".into(), Some("invalid job id")),
        ("long id", Gc, |j| j.id = "a".repeat(65), Some("invalid job id")),
        ("short store", Gc, |j| j.store = "x".into(), Some("store name")),
        ("path store", Gc, |j| j.store = "../etc".into(), Some("store name")),
        ("bad ns", Prune, |j| j.ns = "a/../b".into(), Some("namespace")),
        ("bad schedule", Gc, |j| j.schedule = "bogus".into(), Some("invalid schedule")),
        ("comment", Gc, |j| j.comment = Some("a\nb".into()), Some("one line")),
        ("gc with ns", Gc, |j| j.ns = "a".into(), Some("no namespace")),
        ("no keep", Prune, |j| j.keep.keep_last = None, Some("at least one keep")),
        ("keep 0", Prune, |j| j.keep.keep_last = Some(0), Some("at least one keep")),
        ("bad within", Prune, |j| j.keep.keep_within = Some("7x".into()), Some("keep-within")),
        ("unverified gc", Gc, |j| j.only_unverified = true, Some("verify options")),
        ("days on prune", Prune, |j| j.outdated_after_days = Some(1), Some("verify options")),
        ("keep on verify", Verify, |j| j.keep.keep_daily = Some(1), Some("prune options")),
        ("keep on gc", Gc, |j| j.keep.keep_within = Some("1d".into()), Some("prune options")),
    ];
    for (name, job_type, change, expected) in cases {
        let mut job = valid(*job_type);
        change(&mut job);
        match (validate_job(&job), expected) {
            (Ok(()), None) => {}
            (Err(JobError::Invalid(msg)), Some(part)) => {
                assert!(msg.contains(part), "{name}: {msg:?} lacks {part:?}");
            }
            (result, expected) => panic!("{name}: got {result:?}, expected {expected:?}"),
        }
    }
    // The calendar's own explanation is part of the message.
    let calendar_error = "bogus".parse::<CalendarEvent>().unwrap_err().to_string();
    let err = validate_job(&job("a", Gc, "bogus"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&calendar_error),
        "{err:?} lacks {calendar_error:?}"
    );
}

#[test]
fn job_json_is_kebab_case_with_flat_keep_options() {
    let mut j = job("p", JobType::Prune, "daily");
    j.keep.keep_daily = Some(7);
    let value = serde_json::to_value(&j).unwrap();
    assert_eq!(value["job-type"], "prune");
    assert_eq!(value["keep-daily"], 7);
    let parsed: JobConfig = serde_json::from_value(serde_json::json!({
        "id": "p", "job-type": "prune", "store": "store1", "schedule": "daily", "keep-daily": 7,
    }))
    .unwrap();
    assert!(parsed.enabled, "enabled by default");
    assert_eq!(parsed, j);
    let unknown = serde_json::from_value::<JobConfig>(serde_json::json!({
        "id": "p", "job-type": "gc", "store": "store1", "schedule": "daily", "keep-all": 1,
    }));
    assert!(unknown.is_err());
}

#[test]
fn config_changes_check_the_digest() {
    let dir = tempfile::tempdir().unwrap();
    let config = ConfigDir::new(dir.path());
    let gc = |id: &str, schedule: &str| job(id, JobType::Gc, schedule);
    let empty = load_jobs(&config).unwrap();
    let one = add_job(&config, gc("a", "daily"), Some(&empty.digest)).unwrap();
    let stale = add_job(&config, gc("b", "daily"), Some(&empty.digest));
    assert!(matches!(stale, Err(JobError::Conflict { .. })), "{stale:?}");
    let dup = add_job(&config, gc("a", "hourly"), None);
    assert!(matches!(dup, Err(JobError::Exists(id)) if id == "a"));
    let invalid = add_job(&config, gc("b", "bogus"), None);
    assert!(matches!(invalid, Err(JobError::Invalid(_))));
    assert_eq!(load_jobs(&config).unwrap(), one);

    let hourly = |j: &mut JobConfig| j.schedule = "hourly".into();
    let two = update_job(&config, "a", hourly, Some(&one.digest)).unwrap();
    assert_eq!(two.data.jobs[0].schedule, "hourly");
    let stale = update_job(&config, "a", |j| j.enabled = false, Some(&one.digest));
    assert!(matches!(stale, Err(JobError::Conflict { .. })));
    let invalid = update_job(&config, "a", |j| j.only_unverified = true, None);
    assert!(matches!(invalid, Err(JobError::Invalid(_))));
    let renamed = update_job(&config, "a", |j| j.id = "z".into(), None);
    assert!(matches!(renamed, Err(JobError::Invalid(_))));
    let missing = update_job(&config, "nope", |_| {}, None);
    assert!(matches!(missing, Err(JobError::NotFound(_))));
    assert_eq!(load_jobs(&config).unwrap(), two);

    let seen = JobState {
        registered: Some(1),
        ..JobState::default()
    };
    save_state(&config, "a", &seen).unwrap();
    let stale = remove_job(&config, "a", Some(&one.digest));
    assert!(matches!(stale, Err(JobError::Conflict { .. })));
    let missing = remove_job(&config, "nope", None);
    assert!(matches!(missing, Err(JobError::NotFound(_))));
    let gone = remove_job(&config, "a", Some(&two.digest)).unwrap();
    assert!(gone.data.jobs.is_empty());
    assert_eq!(
        load_state(&config, "a").unwrap(),
        JobState::default(),
        "state removed"
    );
}

#[test]
fn next_run_table() {
    let every_15 = event("*:0/15");
    let utc = TimeZone::UTC;
    let state = |registered: Option<&str>, last: Option<&str>| JobState {
        registered: registered.map(at),
        last_run_time: last.map(at),
        ..JobState::default()
    };
    let cases = [
        ("unregistered", state(None, None), None),
        ("never run", state(Some("10:07"), None), Some("10:15")),
        (
            "registered on time",
            state(Some("10:15"), None),
            Some("10:30"),
        ),
        (
            "after a run",
            state(Some("09:00"), Some("10:15")),
            Some("10:30"),
        ),
        ("late run", state(None, Some("10:17:41")), Some("10:30")),
        ("missed runs", state(None, Some("03:10")), Some("03:15")),
    ];
    for (name, state, expected) in cases {
        assert_eq!(
            next_run(&every_15, &state, &utc),
            expected.map(at),
            "{name}"
        );
    }
    // Schedules are in the given zone: midnight at +02:00 is 22:00 UTC.
    let plus_two = TimeZone::fixed(tz::offset(2));
    let registered = state(Some("21:00"), None);
    let daily = event("daily");
    assert_eq!(next_run(&daily, &registered, &plus_two), Some(at("22:00")));
    assert_eq!(
        next_run(&daily, &registered, &utc),
        Some(at("00:00") + 86_400)
    );

    let now = at("10:15");
    let cases = [
        (None, false),
        (Some(now), true),
        (Some(now + 1), false),
        (Some(now - 60), true),
    ];
    for (next, due) in cases {
        assert_eq!(is_due(next, now), due, "{next:?}");
    }
}

#[test]
fn a_missed_run_is_due_once_then_the_schedule_continues() {
    let every_15 = event("*:0/15");
    let utc = TimeZone::UTC;
    let mut state = JobState {
        last_run_time: Some(at("10:15")),
        last_run_status: Some("ok".into()),
        ..JobState::default()
    };
    // The server was down from 10:20 to 13:02: eleven occurrences were missed.
    let now = at("13:02");
    assert_eq!(decide(&every_15, true, &state, now, &utc), Decision::Start);
    record_start(&mut state, &every_15, true, now, Ok("UPID:x"), &utc);
    assert_eq!(state.next_run, Some(at("13:15")));
    assert!(state.is_running());
    let wait = Decision::Wait {
        next_run: Some(at("13:15")),
    };
    assert_eq!(decide(&every_15, true, &state, now + 60, &utc), wait);
    // Due again at 13:15, but the 13:02 run still runs: it waits, then starts once.
    assert_eq!(decide(&every_15, true, &state, at("13:15"), &utc), wait);
    state.last_run_status = Some("ok".into());
    assert_eq!(
        decide(&every_15, true, &state, at("13:16"), &utc),
        Decision::Start
    );
    // A disabled job never starts and has no next run.
    let off = decide(&every_15, false, &state, at("13:16"), &utc);
    assert_eq!(off, Decision::Wait { next_run: None });
    // A run that could not start counts as done: no retry before the next occurrence.
    record_start(
        &mut state,
        &every_15,
        true,
        at("13:16"),
        Err("store is busy"),
        &utc,
    );
    let status = state.last_run_status.as_deref();
    assert_eq!(status, Some("error: could not start: store is busy"));
    assert_eq!(state.last_run_upid, None);
    let wait = Decision::Wait {
        next_run: Some(at("13:30")),
    };
    assert_eq!(decide(&every_15, true, &state, at("13:17"), &utc), wait);
}

#[test]
fn task_end_table() {
    let task = |status: &str, message: Option<&str>| TaskStatus {
        upid: "UPID:x".into(),
        task_type: "gc".into(),
        store: None,
        worker_id: None,
        auth_id: "root@local!admin".into(),
        start_time: 0,
        end_time: None,
        status: status.into(),
        message: message.map(Into::into),
        result: None,
    };
    let running = JobState {
        last_run_status: Some("running".into()),
        ..JobState::default()
    };
    let ended = JobState {
        last_run_status: Some("ok".into()),
        ..JobState::default()
    };
    let cases = [
        (&running, Some(task("running", None)), "running", false),
        (&running, Some(task("ok", None)), "ok", true),
        (
            &running,
            Some(task("warnings", Some("2"))),
            "warnings: 2",
            true,
        ),
        (
            &running,
            Some(task("error", Some("disk full"))),
            "error: disk full",
            true,
        ),
        (&running, None, "unknown", true),
        (&ended, Some(task("error", None)), "ok", false),
    ];
    for (state, task, expected, changed) in cases {
        let mut state = state.clone();
        assert_eq!(
            record_task_end(&mut state, task.as_ref()),
            changed,
            "{expected}"
        );
        assert_eq!(state.last_run_status.as_deref(), Some(expected));
    }
}
