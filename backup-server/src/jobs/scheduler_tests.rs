//! Scheduler tests on a temp config dir with a real task registry whose tasks run until the
//! test releases them; time is injected into `tick(now)`, nothing sleeps on the schedule.
//! Covers: due runs, never two runs of a job at once, recorded last runs, "run now", a
//! restart that catches a missed run up exactly once, and one broken job among good ones.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use jiff::tz::TimeZone;

use super::config::{JOBS_FILE, JobsFile};
use super::state::{JobState, load_state, save_state};
use super::tests::job;
use super::*;
use crate::tasks::{TaskOutcome, TaskSpec};

/// A scheduler on a temp config dir whose jobs start real tasks that run until released.
struct Fixture {
    dir: tempfile::TempDir,
    config: ConfigDir,
    tasks: Arc<TaskRegistry>,
    release: Arc<AtomicBool>,
    starts: Arc<AtomicUsize>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = ConfigDir::new(dir.path());
        let tasks = Arc::new(TaskRegistry::open(&dir.path().join("tasks")).unwrap());
        Self {
            dir,
            config,
            tasks,
            release: Arc::new(AtomicBool::new(false)),
            starts: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A restart: a new task registry and scheduler on the same config dir.
    fn restart(&mut self) -> Scheduler {
        self.tasks = Arc::new(TaskRegistry::open(&self.dir.path().join("tasks")).unwrap());
        self.scheduler()
    }

    fn scheduler(&self) -> Scheduler {
        let (tasks, release, starts) = (
            Arc::clone(&self.tasks),
            Arc::clone(&self.release),
            Arc::clone(&self.starts),
        );
        let start: StartJob = Arc::new(move |job: &JobConfig| {
            starts.fetch_add(1, Ordering::SeqCst);
            let release = Arc::clone(&release);
            let spec = TaskSpec {
                task_type: job.job_type.to_string(),
                store: Some(job.store.clone()),
                worker_id: None,
                auth_id: "root@local!admin".into(),
            };
            tasks.spawn(spec, move |_| {
                let deadline = Instant::now() + Duration::from_secs(30);
                while !release.load(Ordering::SeqCst) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Ok(TaskOutcome::default())
            })
        });
        Scheduler::with_time_zone(
            self.config.clone(),
            Arc::clone(&self.tasks),
            start,
            TimeZone::UTC,
        )
    }

    fn state(&self, id: &str) -> JobState {
        load_state(&self.config, id).unwrap()
    }

    fn starts(&self) -> usize {
        self.starts.load(Ordering::SeqCst)
    }

    /// Lets the running tasks end and waits until the registry shows them ended.
    fn finish(&self, upid: &str) {
        self.release.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.tasks.status(upid).unwrap().unwrap().status == "running" {
            assert!(Instant::now() < deadline, "task {upid} did not end");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// A multiple of 5 and of 60: `*:*:0/5` fires at T0, T0 + 5, ...
const T0: i64 = 1_700_000_100;

#[test]
fn scheduler_runs_due_jobs_once_at_a_time_and_catches_up_once_after_a_restart() {
    let mut fx = Fixture::new();
    add_job(&fx.config, job("gc1", JobType::Gc, "*:*:0/5"), None).unwrap();
    let scheduler = fx.scheduler();

    scheduler.tick(T0 + 1);
    let state = fx.state("gc1");
    assert_eq!(
        (state.registered, state.next_run),
        (Some(T0 + 1), Some(T0 + 5))
    );
    scheduler.tick(T0 + 4);
    assert_eq!(fx.starts(), 0, "not due before T0 + 5");

    scheduler.tick(T0 + 5);
    assert_eq!(fx.starts(), 1);
    let state = fx.state("gc1");
    let first = state.last_run_upid.clone().expect("upid recorded");
    assert_eq!(state.last_run_time, Some(T0 + 5));
    assert_eq!(state.last_run_status.as_deref(), Some("running"));
    assert_eq!(state.next_run, Some(T0 + 10));

    // Due again, but the first run still runs: never twice at the same time.
    scheduler.tick(T0 + 10);
    scheduler.tick(T0 + 11);
    assert_eq!(fx.starts(), 1);
    let now_err = scheduler.run_now("gc1", T0 + 11).unwrap_err();
    assert!(
        matches!(&now_err, JobError::Running { upid, .. } if *upid == first),
        "{now_err}"
    );

    // Once it ended, its status is recorded and the occurrence it blocked runs once.
    fx.finish(&first);
    let listed = scheduler.list().unwrap();
    assert_eq!(listed[0].1.last_run_status.as_deref(), Some("ok"));
    scheduler.tick(T0 + 12);
    assert_eq!(fx.starts(), 2);
    let state = fx.state("gc1");
    assert_eq!(
        (state.last_run_time, state.next_run),
        (Some(T0 + 12), Some(T0 + 15))
    );
    let second = state.last_run_upid.clone().unwrap();
    assert_ne!(second, first);
    fx.finish(&second);
    scheduler.tick(T0 + 13);
    assert_eq!(fx.state("gc1").last_run_status.as_deref(), Some("ok"));
    assert_eq!(fx.starts(), 2);
    drop(scheduler);

    // Down from T0 + 13 to T0 + 100: seventeen occurrences missed, one run on restart.
    let scheduler = fx.restart();
    let (job, state) = scheduler.list().unwrap().remove(0);
    assert_eq!(job.id, "gc1");
    assert_eq!(state.last_run_upid.as_deref(), Some(second.as_str()));
    assert_eq!(state.last_run_time, Some(T0 + 12));
    scheduler.tick(T0 + 100);
    assert_eq!(fx.starts(), 3);
    let state = fx.state("gc1");
    assert_eq!(
        (state.last_run_time, state.next_run),
        (Some(T0 + 100), Some(T0 + 105))
    );
    fx.finish(state.last_run_upid.as_deref().unwrap());
    for now in T0 + 101..T0 + 105 {
        scheduler.tick(now);
    }
    assert_eq!(fx.starts(), 3, "the missed occurrences are not replayed");
    scheduler.tick(T0 + 105);
    assert_eq!(fx.starts(), 4);
}

#[test]
fn run_now_starts_even_a_disabled_job_but_never_twice() {
    let fx = Fixture::new();
    let mut disabled = job("v1", JobType::Verify, "*:*:0/5");
    disabled.enabled = false;
    add_job(&fx.config, disabled, None).unwrap();
    let scheduler = fx.scheduler();
    for now in T0..T0 + 20 {
        scheduler.tick(now);
    }
    assert_eq!(fx.starts(), 0);
    assert_eq!(fx.state("v1").next_run, None);

    let upid = scheduler.run_now("v1", T0 + 20).unwrap();
    let state = fx.state("v1");
    assert_eq!(state.last_run_upid.as_deref(), Some(upid.as_str()));
    assert_eq!(state.last_run_time, Some(T0 + 20));
    assert!(matches!(
        scheduler.run_now("v1", T0 + 21),
        Err(JobError::Running { .. })
    ));
    assert!(matches!(
        scheduler.run_now("nope", T0 + 21),
        Err(JobError::NotFound(_))
    ));
    fx.finish(&upid);
    assert!(scheduler.run_now("v1", T0 + 22).is_ok());
    assert_eq!(fx.starts(), 2);
}

#[test]
fn one_broken_job_does_not_stop_the_others() {
    let fx = Fixture::new();
    let good = job("good", JobType::Gc, "*:*:0/5");
    // Written by hand, past validation: a schedule the scheduler cannot parse.
    let broken = job("broken", JobType::Gc, "bogus");
    let file = JobsFile {
        jobs: vec![broken, good],
    };
    std::fs::write(
        fx.config.path(JOBS_FILE),
        serde_json::to_vec(&file).unwrap(),
    )
    .unwrap();
    // A state left behind by a job that no longer exists.
    save_state(
        &fx.config,
        "ghost",
        &JobState {
            registered: Some(1),
            ..JobState::default()
        },
    )
    .unwrap();
    let scheduler = fx.scheduler();
    scheduler.tick(T0 - 1);
    scheduler.tick(T0);
    assert_eq!(fx.starts(), 1);
    assert!(fx.state("good").is_running());
    assert_eq!(fx.state("broken"), JobState::default());
    let ghost = fx.config.path("jobstate/ghost.json");
    assert!(!ghost.exists(), "orphaned state is removed");
    fx.finish(fx.state("good").last_run_upid.as_deref().unwrap());
}
