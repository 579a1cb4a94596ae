//! End to end: scheduled jobs run as tasks, keep their state across restarts, catch up a
//! missed run once, and concurrent edits of the jobs config conflict instead of being lost.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use e2e::harness::{TestServer, run_ok};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn job(server: &TestServer, id: &str) -> serde_json::Value {
    let list = server.admin_json(&["job", "list"]);
    list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["config"]["id"] == id)
        .cloned()
        .unwrap_or_default()
}

/// Verify tasks on record, read from the task directory (works while the server is down).
fn verify_task_files(server: &TestServer) -> usize {
    std::fs::read_dir(server.config_dir.join("tasks"))
        .unwrap()
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name.contains(":verify:") && name.ends_with(".json")
        })
        .count()
}

fn verify_tasks(server: &TestServer) -> usize {
    server
        .admin_json(&["task", "list", "--type", "verify"])
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn a_scheduled_verify_job_runs_survives_a_restart_and_catches_up_once() {
    let mut server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("f"), b"data").unwrap();
    server.backup(work.path(), "j");

    // Every 6 seconds; the job is registered now and first runs at the next slot.
    run_ok(&mut server.admin(&[
        "job",
        "add",
        "verify",
        "--id",
        "often",
        "--store",
        TestServer::STORE,
        "--schedule",
        "*:*:0/6",
    ]));
    server.wait_for(Duration::from_secs(20), "the first scheduled run", || {
        job(&server, "often")["state"]["last-run-status"] == "ok"
    });
    let state = job(&server, "often")["state"].clone();
    let last = state["last-run-time"].as_i64().unwrap();
    assert!(state["next-run"].as_i64().unwrap() > last, "{state}");
    assert!(verify_tasks(&server) >= 1);

    // Stop the server for two slots, restarting just after a slot so that the next regular
    // one is 5 s away: the missed runs are caught up by exactly one run.
    server.kill();
    std::thread::sleep(Duration::from_secs(13));
    while now() % 6 != 1 {
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = verify_task_files(&server);
    server.restart();
    let known = job(&server, "often")["state"]["last-run-time"]
        .as_i64()
        .unwrap();
    assert!(
        known >= last,
        "the last run is remembered across the restart"
    );
    std::thread::sleep(Duration::from_millis(3000));
    assert_eq!(verify_tasks(&server), before + 1, "one catch-up run");

    run_ok(&mut server.admin(&["job", "remove", "often"]));
    assert!(job(&server, "often").is_null());
}

#[test]
fn concurrent_job_edits_conflict() {
    let server = TestServer::start();
    run_ok(&mut server.admin(&[
        "job",
        "add",
        "gc",
        "--id",
        "nightly-gc",
        "--store",
        TestServer::STORE,
        "--schedule",
        "daily",
    ]));
    let digest = server.admin_json(&["job", "list"])["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let client = server.api_client();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let job = |schedule: &str| {
        serde_json::json!({
            "job": {"id": "nightly-gc", "job-type": "gc", "store": TestServer::STORE, "schedule": schedule},
            "digest": digest,
        })
    };
    rt.block_on(async {
        let path = "/api2/json/config/jobs/nightly-gc";
        let first = client.request(hyper::Method::PUT, path, Some(&job("02:00"))).await.unwrap();
        assert_eq!(first.status(), 200);
        // The second admin still holds the old digest.
        let second = client.request(hyper::Method::PUT, path, Some(&job("03:00"))).await.unwrap();
        assert_eq!(second.status(), 409);
        // Bad input: unknown fields, bad schedules, bad ids get 400 and change nothing.
        let bad = serde_json::json!({"job": {"id": "x", "job-type": "gc", "store": TestServer::STORE, "schedule": "25:00"}});
        let answer = client.request(hyper::Method::POST, "/api2/json/config/jobs", Some(&bad)).await.unwrap();
        assert_eq!(answer.status(), 400);
        let bad = serde_json::json!({"job": {"id": "../x", "job-type": "gc", "store": TestServer::STORE, "schedule": "daily"}});
        let answer = client.request(hyper::Method::POST, "/api2/json/config/jobs", Some(&bad)).await.unwrap();
        assert_eq!(answer.status(), 400);
        let bad = serde_json::json!({"job": {"id": "y", "job-type": "gc", "store": TestServer::STORE, "schedule": "daily", "bogus": 1}});
        let answer = client.request(hyper::Method::POST, "/api2/json/config/jobs", Some(&bad)).await.unwrap();
        assert_eq!(answer.status(), 400);
    });
    let list = server.admin_json(&["job", "list"]);
    let jobs = list["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["config"]["schedule"], "02:00");
}
