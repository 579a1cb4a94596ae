//! Starting GC, verify and prune tasks: shared by the REST handlers (`api/maintenance.rs`)
//! and the job scheduler ([`start_job`]). Each function checks what it can before the task
//! starts and returns the task's UPID; the work itself runs on the task's thread.

use std::collections::BTreeMap;
use std::sync::Arc;

use datastore::gc::{GcOptions, run_gc};
use datastore::names::Namespace;
use datastore::prune::{KeepReason, KeepRules, PruneCandidate, plan};
use datastore::snapshot::{BackupGroup, SnapshotRef};
use datastore::store::DataStore;
use datastore::verify::{VerifyOptions, verify_snapshots};

use crate::jobs::{JobConfig, JobType};
use crate::state::{OpenStore, ServerState};
use crate::tasks::{TaskContext, TaskOutcome, TaskSpec};

/// The auth id scheduled jobs run as.
pub const JOB_AUTH_ID: &str = "root@local";

/// Environment variable of the server's test-only pause points: `NAME:PATH` makes the task
/// NAME (e.g. `verify`) wait at its start until PATH exists or the task is aborted, so that
/// tests can read a running task's log and abort it deterministically.
pub const TEST_PAUSE_ENV: &str = "BACKUP_SERVER_TEST_PAUSE";

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn spec(task_type: &str, store: &str, worker_id: Option<String>, auth_id: &str) -> TaskSpec {
    TaskSpec {
        task_type: task_type.to_string(),
        store: Some(store.to_string()),
        worker_id,
        auth_id: auth_id.to_string(),
    }
}

fn outcome<T: serde::Serialize>(result: &T) -> anyhow::Result<TaskOutcome> {
    Ok(TaskOutcome {
        result: Some(serde_json::to_value(result)?),
    })
}

fn test_pause_point(name: &str, ctx: &TaskContext) -> anyhow::Result<()> {
    let Ok(setting) = std::env::var(TEST_PAUSE_ENV) else {
        return Ok(());
    };
    let Some(path) = setting.strip_prefix(name).and_then(|r| r.strip_prefix(':')) else {
        return Ok(());
    };
    ctx.log(format!("waiting at test pause point until {path} exists"));
    while !std::path::Path::new(path).exists() {
        if ctx.is_aborted() {
            anyhow::bail!("aborted at the test pause point");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok(())
}

/// Starts garbage collection of a datastore.
pub fn spawn_gc(
    state: &Arc<ServerState>,
    open: OpenStore,
    auth_id: &str,
) -> anyhow::Result<String> {
    let tasks = Arc::clone(&state.tasks);
    let name = open.name.clone();
    state
        .tasks
        .spawn(spec("gc", &open.name, None, auth_id), move |ctx| {
            let options = GcOptions {
                grace_secs: open.gc_grace_secs,
                oldest_writer_start: tasks.oldest_running_start("backup", &name),
                now: now(),
            };
            ctx.log(format!("garbage collection of datastore '{name}'"));
            let stats = run_gc(
                &open.store,
                &options,
                &|line| ctx.log(line),
                ctx.abort_flag(),
            )?;
            if stats.missing_chunks > 0 {
                ctx.warn(format!(
                    "{} referenced chunks are missing",
                    stats.missing_chunks
                ));
            }
            outcome(&stats)
        })
}

/// Starts verifying `snapshots`; the task fails when any of them fails.
pub fn spawn_verify(
    state: &Arc<ServerState>,
    open: OpenStore,
    snapshots: Vec<SnapshotRef>,
    options: VerifyOptions,
    auth_id: &str,
) -> anyhow::Result<String> {
    let worker = (snapshots.len() == 1).then(|| snapshots[0].to_string());
    state
        .tasks
        .spawn(spec("verify", &open.name, worker, auth_id), move |ctx| {
            let threads = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2);
            ctx.log(format!(
                "verifying {} snapshots on {threads} threads",
                snapshots.len()
            ));
            test_pause_point("verify", ctx)?;
            let stats = verify_snapshots(
                &open.store,
                &snapshots,
                ctx.upid(),
                &options,
                threads,
                &|line| ctx.log(line),
                ctx.abort_flag(),
            )?;
            if stats.snapshots_failed > 0 {
                anyhow::bail!(
                    "{} of {} snapshots failed verification: {}",
                    stats.snapshots_failed,
                    stats.snapshots_failed + stats.snapshots_ok,
                    stats.failed_snapshots.join(", ")
                );
            }
            outcome(&stats)
        })
}

/// The prune decision for every finished snapshot directly in `ns` (of one group, or of
/// all), per group, newest first: `Some(reason)` keeps, `None` removes.
pub fn plan_prune(
    store: &DataStore,
    ns: &Namespace,
    group_filter: Option<&BackupGroup>,
    rules: &KeepRules,
    now: i64,
) -> anyhow::Result<Vec<(SnapshotRef, Option<KeepReason>)>> {
    let mut groups: BTreeMap<BackupGroup, Vec<(SnapshotRef, bool)>> = BTreeMap::new();
    for (snap, _) in store.list_snapshots(ns)? {
        if group_filter.is_some_and(|g| *g != snap.group) {
            continue;
        }
        let protected = store.is_protected(&snap);
        groups
            .entry(snap.group.clone())
            .or_default()
            .push((snap, protected));
    }
    let mut decisions = Vec::new();
    for (_, mut snaps) in groups {
        snaps.sort_by_key(|(s, _)| std::cmp::Reverse(s.time));
        let candidates: Vec<PruneCandidate> = snaps
            .iter()
            .map(|(s, protected)| PruneCandidate {
                time: s.time,
                protected: *protected,
            })
            .collect();
        for ((snap, _), reason) in snaps.into_iter().zip(plan(&candidates, rules, now)) {
            decisions.push((snap, reason));
        }
    }
    Ok(decisions)
}

/// Starts removing `removals` (a prune plan's removals).
pub fn spawn_prune(
    state: &Arc<ServerState>,
    open: OpenStore,
    removals: Vec<SnapshotRef>,
    ns: &Namespace,
    auth_id: &str,
) -> anyhow::Result<String> {
    state.tasks.spawn(
        spec("prune", &open.name, Some(ns.to_string()), auth_id),
        move |ctx| {
            ctx.log(format!("pruning: {} snapshots to remove", removals.len()));
            let mut removed = 0u64;
            for snap in &removals {
                if ctx.is_aborted() {
                    anyhow::bail!("aborted after removing {removed} snapshots");
                }
                // A snapshot protected since the plan was made stays.
                match open.store.forget_snapshot(snap) {
                    Ok(()) => {
                        removed += 1;
                        ctx.log(format!("removed {snap}"));
                    }
                    Err(err) => ctx.warn(format!("could not remove {snap}: {err}")),
                }
            }
            outcome(&serde_json::json!({ "removed": removed }))
        },
    )
}

/// Starts a scheduled (or "run now") job: GC of its store, verify of its namespace and
/// everything below, or prune of every group directly in its namespace.
pub fn start_job(state: &Arc<ServerState>, job: &JobConfig) -> anyhow::Result<String> {
    let open = state
        .open_store(&job.store)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let ns: Namespace = job.ns.parse()?;
    match job.job_type {
        JobType::Gc => spawn_gc(state, open, JOB_AUTH_ID),
        JobType::Verify => {
            let snapshots: Vec<SnapshotRef> = open
                .store
                .all_snapshots()?
                .into_iter()
                .filter(|(s, finished)| {
                    *finished && s.group.ns.components().starts_with(ns.components())
                })
                .map(|(s, _)| s)
                .collect();
            let options = VerifyOptions {
                outdated_after_secs: job.outdated_after_days.map(|d| i64::from(d) * 86_400),
                only_unverified: job.only_unverified,
                now: now(),
            };
            spawn_verify(state, open, snapshots, options, JOB_AUTH_ID)
        }
        JobType::Prune => {
            let rules = crate::jobs::config::keep_rules(&job.keep)?;
            let removals = plan_prune(&open.store, &ns, None, &rules, now())?
                .into_iter()
                .filter(|(_, reason)| reason.is_none())
                .map(|(s, _)| s)
                .collect();
            spawn_prune(state, open, removals, &ns, JOB_AUTH_ID)
        }
    }
}
