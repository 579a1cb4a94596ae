//! End to end: garbage collection, verify and prune as server tasks, with the real binaries.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use e2e::harness::{ServerOptions, TestServer, run_ok};
use e2e::tree::compare_trees;

fn grace0() -> TestServer {
    TestServer::start_with(ServerOptions {
        gc_grace_seconds: Some(0),
        ..Default::default()
    })
}

/// A tree of `files` files of 1 MiB pseudo-random data; `seed` makes its content distinct.
fn data_tree(root: &Path, seed: u64, files: usize) {
    std::fs::create_dir_all(root).unwrap();
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for i in 0..files {
        let mut data = vec![0u8; 1 << 20];
        for chunk in data.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        std::fs::write(root.join(format!("f{i:03}.bin")), data).unwrap();
    }
}

/// Digests of chunk files on disk (not `.bad` or temp files).
fn chunk_files(store: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for prefix in std::fs::read_dir(store.join(".chunks")).unwrap().flatten() {
        for chunk in std::fs::read_dir(prefix.path()).unwrap().flatten() {
            let name = chunk.file_name().to_string_lossy().to_string();
            if name.len() == 64 {
                out.insert(name);
            }
        }
    }
    out
}

/// Digests referenced by every index file of every snapshot directory.
fn referenced_chunks(store: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![store.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.file_name().is_some_and(|n| n == ".chunks") {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "didx") {
                let index = datastore::index::DynamicIndex::load(&path).unwrap();
                out.extend(index.entries.iter().map(|e| e.digest.to_hex()));
            }
        }
    }
    out
}

fn restore_and_compare(server: &TestServer, snapshot: &str, source: &Path, target: PathBuf) {
    server.client_json(&["restore", snapshot, "root.tar", target.to_str().unwrap()]);
    compare_trees(source, &target).unwrap_or_else(|d| panic!("{snapshot}: {}", d.join("\n")));
}

fn verify_status(server: &TestServer) -> Vec<(String, String)> {
    server
        .snapshots()
        .iter()
        .map(|s| {
            (
                s["snapshot"].as_str().unwrap().to_string(),
                s["verify_state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn gc_removes_only_what_pruned_snapshots_referenced() {
    let server = grace0();
    let work = tempfile::tempdir().unwrap();
    let mut snapshots = Vec::new();
    let mut sources = Vec::new();
    for round in 0..3u64 {
        let source = work.path().join(format!("src{round}"));
        data_tree(&source, round + 1, 6);
        let summary = server.backup(&source, "gcgroup");
        snapshots.push(summary["snapshot"].as_str().unwrap().to_string());
        sources.push(source);
    }
    let prune = server.admin_json(&["prune", TestServer::STORE, "--keep-last", "1"]);
    assert_eq!(prune["status"], "ok", "{prune}");
    assert_eq!(server.snapshots().len(), 1);

    // GC counts chunks touched in the second before its start as fresh: let two pass.
    std::thread::sleep(Duration::from_millis(2100));
    let before = chunk_files(&server.store_path);
    let gc = server.admin_json(&["gc", TestServer::STORE]);
    assert_eq!(gc["status"], "ok", "{gc}");
    let report = &gc["result"];
    let after = chunk_files(&server.store_path);
    assert_eq!(
        after,
        referenced_chunks(&server.store_path),
        "GC must keep exactly the referenced chunks"
    );
    assert!(report["removed-chunks"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(
        report["removed-chunks"].as_u64().unwrap(),
        (before.len() - after.len()) as u64,
        "{report}"
    );
    assert_eq!(report["missing-chunks"], 0, "{report}");

    restore_and_compare(
        &server,
        &snapshots[2],
        &sources[2],
        work.path().join("restore"),
    );
    server.verify_ok();
    assert_eq!(
        verify_status(&server),
        vec![(snapshots[2].clone(), "ok".to_string())]
    );

    let status = server.admin_json(&["status", TestServer::STORE]);
    assert_eq!(status["snapshot-count"], 1, "{status}");
    assert_eq!(
        status["chunk-count"].as_u64().unwrap(),
        after.len() as u64,
        "{status}"
    );
    assert!(
        status["last-gc"]["removed-chunks"].as_u64().unwrap() > 0,
        "{status}"
    );
}

#[test]
fn gc_and_forget_during_a_running_stream_backup_never_break_it() {
    gc_and_forget_during_a_running_backup("stream");
}

#[test]
fn gc_and_forget_during_a_running_chunked_backup_never_break_it() {
    gc_and_forget_during_a_running_backup("chunked");
}

/// A backup reuses the chunks of a snapshot that is forgotten, and GC runs, while the
/// backup is paused. Stream mode: GC removes the forgotten snapshot's chunks and the backup
/// stores them again as it reaches them. Chunked mode: the session touched every chunk of its
/// parent index when it started, so GC keeps them all, and the backup, which appends them
/// by digest without sending them, is whole.
fn gc_and_forget_during_a_running_backup(mode: &str) {
    let server = grace0();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    data_tree(&source, 7, 12);
    let first = server.backup(&source, "running")["snapshot"]
        .as_str()
        .unwrap()
        .to_string();

    // A second backup of the same data reuses every chunk of the first. It pauses after its
    // first block until the release file exists.
    let release = work.path().join("release");
    std::thread::sleep(Duration::from_millis(2100));
    let spec = format!("root.tar:{}", source.display());
    let child = server
        .client()
        .env(
            "BACKUP_CLIENT_TEST_FAULT",
            format!("pause-after-first-block:{}", release.display()),
        )
        .args([
            "--output-format",
            "json",
            "backup",
            &spec,
            "--backup-id",
            "running",
            "--upload-mode",
            mode,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    server.wait_for(
        Duration::from_secs(20),
        "the second backup to start",
        || {
            let tasks = server.admin_json(&["task", "list", "--type", "backup", "--running"]);
            let Some(task) = tasks.as_array().filter(|t| t.len() == 1).map(|t| &t[0]) else {
                return false;
            };
            // A chunked backup is past its known-chunk setup once the server logged it.
            let upid = task["upid"].as_str().unwrap();
            let log = run_ok(&mut server.admin(&["task", "log", upid]));
            mode == "stream" || String::from_utf8_lossy(&log.stdout).contains("previous index of")
        },
    );

    // While it runs: forget the snapshot whose chunks it reuses, and collect garbage.
    run_ok(server.client().args(["snapshot", "forget", &first]));
    std::thread::sleep(Duration::from_millis(2100));
    let gc = server.admin_json(&["gc", TestServer::STORE]);
    assert_eq!(gc["status"], "ok", "{gc}");
    let removed = gc["result"]["removed-chunks"].as_u64().unwrap();
    if mode == "stream" {
        assert!(
            removed > 0,
            "GC removed the forgotten snapshot's chunks: {gc}"
        );
    } else {
        assert_eq!(
            removed, 0,
            "GC kept the running backup's parent chunks: {gc}"
        );
    }

    std::fs::write(&release, b"go").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let second = summary["snapshot"].as_str().unwrap();
    restore_and_compare(&server, second, &source, work.path().join("restore"));
    server.verify_ok();
}

/// The digests of every index of a snapshot directory (one for each archive; a split
/// archive has two).
fn snapshot_digests(dir: &std::path::Path) -> BTreeSet<String> {
    let mut digests = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "didx") {
            let index = datastore::index::DynamicIndex::load(&path).unwrap();
            digests.extend(index.entries.iter().map(|e| e.digest.to_hex()));
        }
    }
    assert!(!digests.is_empty(), "{} has no index", dir.display());
    digests
}

#[test]
fn verify_finds_a_flipped_chunk_and_the_next_backup_heals_it() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let (x, y) = (work.path().join("x"), work.path().join("y"));
    data_tree(&x, 11, 6);
    data_tree(&y, 12, 6);
    let sx = server.backup(&x, "x")["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    let sy = server.backup(&y, "y")["snapshot"]
        .as_str()
        .unwrap()
        .to_string();

    // Flip one byte of a chunk that only x's snapshot uses.
    let only_x: Vec<String> = {
        let ys = snapshot_digests(&server.store_path.join(&sy));
        snapshot_digests(&server.store_path.join(&sx))
            .into_iter()
            .filter(|d| !ys.contains(d))
            .collect()
    };
    let victim = &only_x[only_x.len() / 2];
    let path = server
        .store_path
        .join(".chunks")
        .join(&victim[..4])
        .join(victim);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();

    let output = server
        .admin(&["verify", TestServer::STORE])
        .output()
        .unwrap();
    assert!(!output.status.success(), "verify must fail");
    let mut states = verify_status(&server);
    states.sort();
    let mut expected = vec![
        (sx.clone(), "failed".to_string()),
        (sy.clone(), "ok".to_string()),
    ];
    expected.sort();
    assert_eq!(states, expected);
    assert!(!path.exists(), "the corrupt chunk is moved aside");
    assert!(path.with_file_name(format!("{victim}.0.bad")).exists());

    // The next backup of the same data uploads the chunk again; then everything verifies.
    let again = server.backup(&x, "x");
    assert!(again["new_chunks"].as_u64().unwrap() >= 1, "{again}");
    assert!(path.exists());
    server.verify_ok();
    restore_and_compare(&server, &sx, &x, work.path().join("restore"));
}

#[test]
fn prune_dry_run_changes_nothing_and_prune_keeps_protected_snapshots() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("file"), b"content").unwrap();
    // Two snapshots on each of three days.
    let times = [
        "2026-01-01T08:00:00Z",
        "2026-01-01T20:00:00Z",
        "2026-01-02T08:00:00Z",
        "2026-01-02T20:00:00Z",
        "2026-01-03T08:00:00Z",
        "2026-01-03T20:00:00Z",
    ];
    for time in times {
        let spec = format!("root.tar:{}", source.display());
        server.client_json(&["backup", &spec, "--backup-id", "p", "--backup-time", time]);
    }
    let listed = |server: &TestServer| -> Vec<String> {
        server
            .snapshots()
            .iter()
            .map(|s| s["snapshot"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(listed(&server).len(), 6);
    run_ok(server.client().args([
        "snapshot",
        "protected",
        "host/p/2026-01-01T08:00:00Z",
        "true",
    ]));

    let before = e2e::harness::disk_state(&server.store_path);
    let plan = server.admin_json(&["prune", TestServer::STORE, "--keep-daily", "2", "--dry-run"]);
    assert_eq!(
        e2e::harness::disk_state(&server.store_path),
        before,
        "a dry run changes nothing"
    );
    assert!(plan["upid"].is_null(), "{plan}");
    let decisions: Vec<(String, Option<String>)> = plan["plan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["snapshot"].as_str().unwrap().to_string(),
                i["reason"].as_str().map(str::to_string),
            )
        })
        .collect();
    let reason = |snap: &str| {
        decisions
            .iter()
            .find(|(s, _)| s.ends_with(snap))
            .unwrap()
            .1
            .clone()
    };
    assert_eq!(
        reason("2026-01-03T20:00:00Z").as_deref(),
        Some("keep-daily")
    );
    assert_eq!(
        reason("2026-01-02T20:00:00Z").as_deref(),
        Some("keep-daily")
    );
    assert_eq!(reason("2026-01-01T08:00:00Z").as_deref(), Some("protected"));
    assert_eq!(reason("2026-01-03T08:00:00Z"), None);

    let done = server.admin_json(&["prune", TestServer::STORE, "--keep-daily", "2"]);
    assert_eq!(done["status"], "ok", "{done}");
    let mut remaining = listed(&server);
    remaining.sort();
    assert_eq!(
        remaining,
        vec![
            "host/p/2026-01-01T08:00:00Z",
            "host/p/2026-01-02T20:00:00Z",
            "host/p/2026-01-03T20:00:00Z"
        ]
    );
    // A protected snapshot cannot be forgotten either.
    let forget = server
        .client()
        .args(["snapshot", "forget", "host/p/2026-01-01T08:00:00Z"])
        .output()
        .unwrap();
    assert!(!forget.status.success());
    assert!(String::from_utf8_lossy(&forget.stderr).contains("protected"));
}

#[test]
fn prune_without_keep_options_is_refused() {
    let server = TestServer::start();
    let output = server
        .admin(&["prune", TestServer::STORE])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("keep"));
}

#[test]
fn tasks_log_while_running_abort_and_survive_a_restart() {
    let work = tempfile::tempdir().unwrap();
    let release = work.path().join("release-verify");
    let mut server = TestServer::start_with(ServerOptions {
        env: vec![(
            "BACKUP_SERVER_TEST_PAUSE".into(),
            format!("verify:{}", release.display()),
        )],
        ..Default::default()
    });
    let source = work.path().join("source");
    data_tree(&source, 3, 2);
    server.backup(&source, "t");

    // A verify that waits at the server's test pause point until released or aborted.
    let verify = server
        .admin(&["verify", TestServer::STORE, "--output-format", "json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let upid = wait_for_running(&server, "verify");
    server.wait_for(Duration::from_secs(10), "the running verify's log", || {
        let log = run_ok(&mut server.admin(&["task", "log", &upid]));
        String::from_utf8_lossy(&log.stdout).contains("test pause point")
    });
    run_ok(&mut server.admin(&["task", "abort", &upid]));
    let output = verify.wait_with_output().unwrap();
    assert!(!output.status.success(), "an aborted verify fails");
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(status["status"], "aborted", "{status}");

    // A task that is running when the server dies shows as unknown after the restart.
    let mut follower = server
        .admin(&["verify", TestServer::STORE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let interrupted = wait_for_running(&server, "verify");
    let before = task_ids(&server);
    server.restart();
    // The admin command following the task loses its server and fails.
    assert!(!follower.wait().unwrap().success());
    assert_eq!(
        task_ids(&server),
        before,
        "finished tasks survive a restart"
    );
    let status = server.admin_json(&["task", "list", "--type", "verify"]);
    let state = |upid: &str| {
        status
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["upid"] == upid)
            .unwrap()["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(state(&upid), "aborted");
    assert_eq!(state(&interrupted), "unknown");
    let log = run_ok(&mut server.admin(&["task", "log", &upid]));
    assert!(String::from_utf8_lossy(&log.stdout).contains("TASK ABORTED"));

    // Released, a verify runs to the end.
    std::fs::write(&release, b"go").unwrap();
    server.verify_ok();
}

fn wait_for_running(server: &TestServer, task_type: &str) -> String {
    let mut upid = String::new();
    server.wait_for(Duration::from_secs(20), "a running task", || {
        let tasks = server.admin_json(&["task", "list", "--type", task_type, "--running"]);
        match tasks.as_array().and_then(|t| t.first()) {
            Some(task) => {
                upid = task["upid"].as_str().unwrap().to_string();
                true
            }
            None => false,
        }
    });
    upid
}

fn task_ids(server: &TestServer) -> Vec<String> {
    let tasks = server.admin_json(&["task", "list"]);
    tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["upid"].as_str().unwrap().to_string())
        .collect()
}
