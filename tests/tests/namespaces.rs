//! End to end: namespaces are created, used by backups, listed and removed.

use e2e::harness::{TestServer, run_ok};

#[test]
fn namespaces_hold_backups_and_are_removed_only_when_asked() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("f"), b"data").unwrap();
    let spec = format!("root.tar:{}", work.path().display());

    // A backup into a namespace that does not exist is refused.
    let output = server
        .client()
        .args(["backup", &spec, "--backup-id", "h", "--ns", "site1/web"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("does not exist"));

    // The parent must exist first.
    let output = server
        .admin(&["namespace", "create", TestServer::STORE, "site1/web"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    run_ok(&mut server.admin(&["namespace", "create", TestServer::STORE, "site1"]));
    run_ok(&mut server.admin(&["namespace", "create", TestServer::STORE, "site1/web"]));
    let listed = server.admin_json(&["namespace", "list", TestServer::STORE]);
    assert_eq!(listed, serde_json::json!(["site1", "site1/web"]));

    let summary = server.client_json(&["backup", &spec, "--backup-id", "h", "--ns", "site1/web"]);
    let snapshot = summary["snapshot"].as_str().unwrap().to_string();
    assert!(
        server.snapshots().is_empty(),
        "the root namespace holds nothing"
    );
    let in_ns = server.client_json(&["snapshots", "--ns", "site1/web"]);
    assert_eq!(in_ns[0]["snapshot"], snapshot.as_str());
    assert_eq!(in_ns[0]["ns"], "site1/web");
    let target = work.path().join("restore");
    server.client_json(&[
        "restore",
        &snapshot,
        "root.tar",
        target.to_str().unwrap(),
        "--ns",
        "site1/web",
    ]);
    assert_eq!(std::fs::read(target.join("f")).unwrap(), b"data");

    // Removing a namespace with content needs --recursive.
    let output = server
        .admin(&["namespace", "remove", TestServer::STORE, "site1"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not empty"));
    run_ok(&mut server.admin(&[
        "namespace",
        "remove",
        TestServer::STORE,
        "site1",
        "--recursive",
    ]));
    let listed = server.admin_json(&["namespace", "list", TestServer::STORE]);
    assert_eq!(listed, serde_json::json!([]));
}
