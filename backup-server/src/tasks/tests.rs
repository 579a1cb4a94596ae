//! Registry tests on temp dirs: logs while running, end states, panics, listings, restart
//! recovery and the running-task queries.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use protocol::types::{TaskListParams, TaskStatus};

use super::policy::{ABORTED, ERROR, OK, RUNNING, STOPPED_MESSAGE, UNKNOWN, WARNINGS};
use super::{TaskOutcome, TaskRegistry, TaskSpec};

fn spec(task_type: &str, store: Option<&str>) -> TaskSpec {
    TaskSpec {
        task_type: task_type.into(),
        store: store.map(Into::into),
        worker_id: Some("host/web1".into()),
        auth_id: "root@local!admin".into(),
    }
}

fn registry() -> (tempfile::TempDir, Arc<TaskRegistry>) {
    let dir = tempfile::tempdir().unwrap();
    let registry = Arc::new(TaskRegistry::open(&dir.path().join("tasks")).unwrap());
    (dir, registry)
}

/// Waits until the task has ended (its record no longer says running).
fn wait_ended(registry: &TaskRegistry, upid: &str) -> TaskStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = registry.status(upid).unwrap().expect("task exists");
        if status.status != RUNNING && !registry.read_log(upid, 0).unwrap().unwrap().running {
            return status;
        }
        assert!(Instant::now() < deadline, "task {upid} did not end");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn ok() -> anyhow::Result<TaskOutcome> {
    Ok(TaskOutcome { result: None })
}

#[test]
fn log_is_readable_while_running_and_after() {
    let (_dir, registry) = registry();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (logged_tx, logged_rx) = mpsc::channel::<()>();
    let upid = registry
        .spawn(spec("verify", Some("store1")), move |ctx| {
            ctx.log("first");
            ctx.log("second");
            logged_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            ctx.log("third");
            Ok(TaskOutcome {
                result: Some(serde_json::json!({"checked": 3})),
            })
        })
        .unwrap();
    logged_rx.recv().unwrap();

    let log = registry.read_log(&upid, 0).unwrap().unwrap();
    assert!(log.running);
    assert_eq!(log.next, 2);
    assert!(log.lines[0].ends_with("Z: first"), "{:?}", log.lines);
    assert!(log.lines[1].ends_with("Z: second"));
    let status = registry.status(&upid).unwrap().unwrap();
    assert_eq!(status.status, RUNNING);
    assert_eq!(status.end_time, None);
    assert_eq!(status.worker_id.as_deref(), Some("host/web1"));

    go_tx.send(()).unwrap();
    let status = wait_ended(&registry, &upid);
    assert_eq!(status.status, OK);
    assert_eq!(status.result, Some(serde_json::json!({"checked": 3})));
    assert!(status.end_time.unwrap() >= status.start_time);

    let rest = registry.read_log(&upid, log.next).unwrap().unwrap();
    assert!(!rest.running);
    assert_eq!(rest.next, 4);
    assert!(rest.lines[0].ends_with(": third"));
    assert!(rest.lines[1].ends_with(": TASK OK"));
    let past_end = registry.read_log(&upid, 10).unwrap().unwrap();
    assert!(past_end.lines.is_empty());
    assert_eq!(past_end.next, 10);
}

#[test]
fn end_states() {
    let (_dir, registry) = registry();
    let warned = registry
        .spawn(spec("gc", Some("s")), |ctx| {
            ctx.warn("chunk a is missing");
            ctx.warn("chunk b is missing");
            ok()
        })
        .unwrap();
    let failed = registry
        .spawn(spec("gc", Some("s")), |_| {
            Err(anyhow::anyhow!("disk full").context("writing chunk"))
        })
        .unwrap();
    let panicked = registry
        .spawn(
            spec("prune", Some("s")),
            |_| -> anyhow::Result<TaskOutcome> { panic!("boom") },
        )
        .unwrap();

    let status = wait_ended(&registry, &warned);
    assert_eq!(
        (status.status.as_str(), status.message.as_deref()),
        (WARNINGS, Some("2"))
    );
    let log = registry.read_log(&warned, 0).unwrap().unwrap();
    assert!(log.lines[0].ends_with(": WARN: chunk a is missing"));
    assert!(log.lines[2].ends_with(": TASK WARNINGS: 2"));

    let status = wait_ended(&registry, &failed);
    assert_eq!(status.status, ERROR);
    assert_eq!(status.message.as_deref(), Some("writing chunk: disk full"));
    let log = registry.read_log(&failed, 0).unwrap().unwrap();
    assert!(
        log.lines
            .last()
            .unwrap()
            .ends_with(": TASK ERROR: writing chunk: disk full")
    );

    let status = wait_ended(&registry, &panicked);
    assert_eq!(status.status, ERROR);
    assert_eq!(status.message.as_deref(), Some("task panicked: boom"));
    assert!(!registry.is_running("prune", "s"));
}

#[test]
fn abort_stops_a_polling_task() {
    let (_dir, registry) = registry();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let upid = registry
        .spawn(spec("verify", Some("s")), move |ctx| {
            started_tx.send(()).unwrap();
            while !ctx.abort_flag().load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            anyhow::bail!("verify aborted")
        })
        .unwrap();
    started_rx.recv().unwrap();
    assert_eq!(registry.abort(&upid).unwrap(), Some(true));
    let status = wait_ended(&registry, &upid);
    assert_eq!(status.status, ABORTED);
    let log = registry.read_log(&upid, 0).unwrap().unwrap();
    assert!(log.lines[0].ends_with(": abort requested"));
    assert!(log.lines.last().unwrap().ends_with(": TASK ABORTED"));
    assert_eq!(registry.abort(&upid).unwrap(), Some(false));
}

#[tokio::test]
async fn begin_finish_and_async_abort() {
    let (_dir, registry) = registry();
    let ctx = registry.begin(spec("backup", Some("s"))).unwrap();
    ctx.log("session started");
    let waiter = {
        let ctx = Arc::clone(&ctx);
        tokio::spawn(async move { ctx.aborted().await })
    };
    assert_eq!(registry.abort(ctx.upid()).unwrap(), Some(true));
    tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("aborted() resolves")
        .unwrap();
    assert!(ctx.is_aborted());
    ctx.finish(Err(anyhow::anyhow!("client went away")));
    ctx.finish(ok()); // idempotent: changes nothing
    ctx.log("after the end"); // not logged: TASK ABORTED stays last

    let status = registry.status(ctx.upid()).unwrap().unwrap();
    assert_eq!(status.status, ABORTED);
    assert_eq!(status.message.as_deref(), Some("client went away"));
    let log = registry.read_log(ctx.upid(), 0).unwrap().unwrap();
    assert!(!log.running);
    assert_eq!(log.lines.len(), 3);
    assert!(log.lines[2].ends_with(": TASK ABORTED"));
}

#[test]
fn dropped_context_ends_as_error() {
    let (_dir, registry) = registry();
    let ctx = registry.begin(spec("reader", Some("s"))).unwrap();
    let upid = ctx.upid().to_string();
    drop(ctx);
    let status = registry.status(&upid).unwrap().unwrap();
    assert_eq!(status.status, ERROR);
    assert!(!registry.is_running("reader", "s"));
}

#[test]
fn bad_ids_and_names_are_rejected() {
    let (dir, registry) = registry();
    std::fs::write(dir.path().join("x.json"), b"{}").unwrap();
    for bad in ["../x", "x", "", "UPID:localhost:../../x.json"] {
        assert_eq!(registry.status(bad).unwrap(), None);
        assert_eq!(registry.read_log(bad, 0).unwrap(), None);
        assert_eq!(registry.abort(bad).unwrap(), None);
    }
    let unknown = "UPID:localhost:00000001:00000002:00000003:gc:s:";
    assert_eq!(registry.status(unknown).unwrap(), None);
    assert_eq!(registry.abort(unknown).unwrap(), None);
    assert!(registry.begin(spec("gc/../../x", None)).is_err());
    assert!(registry.begin(spec("gc", Some("../s"))).is_err());
    assert!(
        registry
            .list(&TaskListParams::default())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn list_filters_and_order() {
    let (_dir, registry) = registry();
    let a = registry.begin(spec("backup", Some("a"))).unwrap();
    let b = registry.begin(spec("backup", Some("b"))).unwrap();
    let gc = registry.begin(spec("gc", Some("a"))).unwrap();
    let reader = registry.begin(spec("reader", None)).unwrap();
    b.finish(ok());
    reader.finish(ok());

    let upids = |params: TaskListParams| -> Vec<String> {
        let list = registry.list(&params).unwrap();
        list.into_iter().map(|t| t.upid).collect()
    };
    // Same second: the sequence number orders them.
    let all = upids(TaskListParams::default());
    assert_eq!(all, [reader.upid(), gc.upid(), b.upid(), a.upid()]);
    let backups = upids(TaskListParams {
        task_type: Some("backup".into()),
        ..Default::default()
    });
    assert_eq!(backups, [b.upid(), a.upid()]);
    let on_a = upids(TaskListParams {
        store: Some("a".into()),
        ..Default::default()
    });
    assert_eq!(on_a, [gc.upid(), a.upid()]);
    let running = upids(TaskListParams {
        running: true,
        ..Default::default()
    });
    assert_eq!(running, [gc.upid(), a.upid()]);
    let limited = upids(TaskListParams {
        limit: Some(2),
        ..Default::default()
    });
    assert_eq!(limited, [reader.upid(), gc.upid()]);
    let running_backups = upids(TaskListParams {
        task_type: Some("backup".into()),
        running: true,
        limit: Some(5),
        ..Default::default()
    });
    assert_eq!(running_backups, [a.upid()]);
    a.finish(ok());
    gc.finish(ok());
}

#[test]
fn restart_marks_running_tasks_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Arc::new(TaskRegistry::open(dir.path()).unwrap());
    let done = registry
        .spawn(spec("gc", Some("s")), |ctx| {
            ctx.log("collected");
            ok()
        })
        .unwrap();
    wait_ended(&registry, &done);
    let crashed = registry.begin(spec("backup", Some("s"))).unwrap();
    crashed.log("uploading");
    // A crash: the registry goes away, the task never finishes. The context is kept alive
    // so that its drop does not end the task.
    drop(registry);
    // A leftover of an interrupted record write is cleaned up.
    let temp = dir.path().join(".x.json.tmp-0123456789abcdef");
    std::fs::write(&temp, b"partial").unwrap();

    let reopened = Arc::new(TaskRegistry::open(dir.path()).unwrap());
    assert!(!temp.exists());
    let status = reopened.status(crashed.upid()).unwrap().unwrap();
    assert_eq!(status.status, UNKNOWN);
    assert_eq!(status.message.as_deref(), Some(STOPPED_MESSAGE));
    assert!(status.end_time.unwrap() >= status.start_time);
    assert!(
        !reopened
            .read_log(crashed.upid(), 0)
            .unwrap()
            .unwrap()
            .running
    );
    assert!(!reopened.is_running("backup", "s"));
    assert_eq!(reopened.abort(crashed.upid()).unwrap(), Some(false));

    let list = reopened.list(&TaskListParams::default()).unwrap();
    let statuses: Vec<(&str, &str)> = list
        .iter()
        .map(|t| (t.upid.as_str(), t.status.as_str()))
        .collect();
    assert_eq!(statuses, [(crashed.upid(), UNKNOWN), (done.as_str(), OK)]);
    let log = reopened.read_log(&done, 0).unwrap().unwrap();
    assert!(log.lines.last().unwrap().ends_with(": TASK OK"));

    // A new task after the restart gets its own id and log.
    let next = reopened.begin(spec("backup", Some("s"))).unwrap();
    assert_ne!(next.upid(), crashed.upid());
    assert_eq!(
        reopened
            .read_log(next.upid(), 0)
            .unwrap()
            .unwrap()
            .lines
            .len(),
        0
    );
    next.finish(ok());
    std::mem::forget(crashed);
}

#[test]
fn running_queries() {
    let (_dir, registry) = registry();
    assert_eq!(registry.oldest_running_start("backup", "s"), None);
    assert!(!registry.is_running("backup", "s"));
    let first = registry.begin(spec("backup", Some("s"))).unwrap();
    let second = registry.begin(spec("backup", Some("s"))).unwrap();
    let other = registry.begin(spec("backup", Some("t"))).unwrap();
    let start = registry.status(first.upid()).unwrap().unwrap().start_time;
    assert_eq!(registry.oldest_running_start("backup", "s"), Some(start));
    assert!(registry.is_running("backup", "s"));
    assert!(!registry.is_running("gc", "s"));
    assert!(!registry.is_running("backup", "u"));
    first.finish(ok());
    second.finish(ok());
    assert_eq!(registry.oldest_running_start("backup", "s"), None);
    assert!(!registry.is_running("backup", "s"));
    assert!(registry.is_running("backup", "t"));
    other.finish(ok());
    assert!(!registry.is_running("backup", "t"));
}

#[test]
fn registry_and_context_are_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<TaskRegistry>();
    assert_send_sync::<super::TaskContext>();
}
