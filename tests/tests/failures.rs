//! End to end: failures never look like success, and refused input changes nothing.

use std::process::Stdio;
use std::time::Duration;

use e2e::harness::{TestServer, disk_state};

fn small_tree(root: &std::path::Path) {
    std::fs::create_dir_all(root.join("dir")).unwrap();
    std::fs::write(root.join("dir/a.txt"), b"hello").unwrap();
    std::fs::write(root.join("b.bin"), vec![7u8; 3 << 20]).unwrap();
}

fn snapshot_dirs(server: &TestServer) -> Vec<std::path::PathBuf> {
    disk_state(&server.store_path)
        .into_iter()
        .map(|(p, ..)| p)
        .filter(|p| !p.starts_with(server.store_path.join(".chunks")))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with('Z'))
        })
        .collect()
}

#[test]
fn encoder_failure_after_its_last_byte_fails_the_backup() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    small_tree(work.path());
    let output = server
        .client()
        .env("BACKUP_CLIENT_TEST_FAULT", "encoder-fail-after-end")
        .args([
            "backup",
            &format!("root.tar:{}", work.path().display()),
            "--backup-id",
            "fail",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "backup succeeded: {stderr}");
    assert!(stderr.contains("injected fault"), "{stderr}");
    assert!(server.snapshots().is_empty());
    server.wait_for(
        Duration::from_secs(10),
        "unfinished snapshot removal",
        || snapshot_dirs(&server).is_empty(),
    );
}

#[test]
fn killed_client_leaves_no_snapshot_and_the_next_backup_works() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    small_tree(work.path());
    let spec = format!("root.tar:{}", work.path().display());
    let mut child = server
        .client()
        .env("BACKUP_CLIENT_TEST_FAULT", "stall-after-first-block")
        .args(["backup", &spec, "--backup-id", "killed"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The session has started once its snapshot directory exists.
    server.wait_for(
        Duration::from_secs(20),
        "the backup session to start",
        || !snapshot_dirs(&server).is_empty(),
    );
    child.kill().unwrap();
    child.wait().unwrap();
    server.wait_for(
        Duration::from_secs(10),
        "unfinished snapshot removal",
        || snapshot_dirs(&server).is_empty(),
    );
    assert!(server.snapshots().is_empty());

    // The group is free once the server has ended the killed session: the directory goes
    // just before the group's lock, so the next backup may first hear that one is running.
    let mut summary = None;
    server.wait_for(Duration::from_secs(10), "the next backup to run", || {
        let output = server
            .client()
            .args(["--output-format", "json", "backup", &spec])
            .args(["--backup-id", "killed"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            assert!(stderr.contains("is already running"), "{stderr}");
            return false;
        }
        summary = Some(serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap());
        true
    });
    assert_eq!(server.snapshots().len(), 1, "{summary:?}");
}

#[test]
fn wrong_token_is_refused_and_changes_nothing() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    small_tree(work.path());
    let before = disk_state(&server.store_path);
    let output = server
        .client()
        .env("BACKUP_PASSWORD", "0000")
        .args([
            "backup",
            &format!("root.tar:{}", work.path().display()),
            "--backup-id",
            "x",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("401"), "{stderr}");
    assert_eq!(disk_state(&server.store_path), before);
}

#[test]
fn wrong_fingerprint_is_refused_before_any_request() {
    let server = TestServer::start();
    let wrong = "00:".repeat(31) + "00";
    let requests_before = server.log().matches(" GET ").count();
    let output = server
        .client()
        .env("BACKUP_FINGERPRINT", &wrong)
        .args(["snapshots"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("fingerprint"), "{stderr}");
    assert!(
        stderr.contains(&server.fingerprint),
        "the message names the real fingerprint: {stderr}"
    );
    // The handshake failed, so no HTTP request (and no credential) reached the server.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        server.log().matches(" GET ").count(),
        requests_before,
        "{}",
        server.log()
    );
}

#[test]
fn backup_to_a_missing_directory_is_refused_before_connecting() {
    let server = TestServer::start();
    let before = disk_state(&server.store_path);
    let output = server
        .client()
        .args(["backup", "root.tar:/nonexistent/dir", "--backup-id", "x"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/dir"));
    assert_eq!(disk_state(&server.store_path), before);
}
