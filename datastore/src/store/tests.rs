//! Tests of the datastore directory on temp directories.

use super::*;
use crate::manifest::ManifestFile;
use crate::names::{BackupType, Namespace};

fn snap(ns: &str, id: &str, time: i64) -> SnapshotRef {
    let group = BackupGroup::new(ns.parse().unwrap(), BackupType::Host, id).unwrap();
    SnapshotRef::new(group, time).unwrap()
}

fn finish(store: &DataStore, snap: &SnapshotRef) {
    let mut manifest = BackupManifest::new(snap);
    manifest.files.push(ManifestFile {
        filename: "root.tar.didx".into(),
        size: 1,
        csum: "00".repeat(32),
        chunks: 1,
    });
    store.write_manifest(snap, &manifest).unwrap();
}

fn new_store() -> (tempfile::TempDir, DataStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = DataStore::create(&dir.path().join("store")).unwrap();
    (dir, store)
}

#[test]
fn create_then_open() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("nested/store");
    let store = DataStore::create(&base).unwrap();
    assert_eq!(store.base(), base);
    assert!(base.join(".chunks").is_dir());
    let marker: serde_json::Value =
        serde_json::from_slice(&fs::read(base.join(MARKER_NAME)).unwrap()).unwrap();
    assert_eq!(marker, serde_json::json!({"format": 1}));
    DataStore::open(&base).unwrap();
}

#[test]
fn create_in_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    DataStore::create(dir.path()).unwrap();
    DataStore::open(dir.path()).unwrap();
}

#[test]
fn create_refuses_non_empty_dir_and_files() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("something"), b"x").unwrap();
    assert!(matches!(
        DataStore::create(dir.path()),
        Err(StoreError::NotEmpty { .. })
    ));
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        1,
        "left untouched"
    );
    let file = dir.path().join("something");
    assert!(matches!(
        DataStore::create(&file),
        Err(StoreError::NotEmpty { .. })
    ));
    // A store cannot be created twice.
    let base = dir.path().join("s");
    DataStore::create(&base).unwrap();
    assert!(matches!(
        DataStore::create(&base),
        Err(StoreError::NotEmpty { .. })
    ));
}

#[test]
fn open_requires_the_marker() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        DataStore::open(dir.path()),
        Err(StoreError::NotADataStore { .. })
    ));
    assert!(DataStore::open(&dir.path().join("missing")).is_err());
    DataStore::create(&dir.path().join("s")).unwrap();
    fs::write(dir.path().join("s").join(MARKER_NAME), b"{\"format\": 2}").unwrap();
    assert!(matches!(
        DataStore::open(&dir.path().join("s")),
        Err(StoreError::UnsupportedFormat { format: 2, .. })
    ));
    fs::write(dir.path().join("s").join(MARKER_NAME), b"junk").unwrap();
    assert!(matches!(
        DataStore::open(&dir.path().join("s")),
        Err(StoreError::NotADataStore { .. })
    ));
}

#[test]
fn snapshot_dir_is_created_once() {
    let (_dir, store) = new_store();
    let s = snap("a/b", "web1", 1_764_000_000);
    let path = store.create_snapshot_dir(&s).unwrap();
    assert_eq!(
        path,
        store
            .base()
            .join("ns/a/ns/b/host/web1/2025-11-24T16:00:00Z")
    );
    assert!(path.is_dir());
    assert!(matches!(
        store.create_snapshot_dir(&s),
        Err(StoreError::SnapshotExists { .. })
    ));
    let bad_time = SnapshotRef {
        group: s.group.clone(),
        time: -5,
    };
    assert!(matches!(
        store.create_snapshot_dir(&bad_time),
        Err(StoreError::Name(_))
    ));
}

#[test]
fn only_finished_snapshots_are_listed() {
    let (_dir, store) = new_store();
    let root = Namespace::root();
    let done_old = snap("", "web1", 1_000);
    let done_new = snap("", "web1", 2_000);
    let unfinished = snap("", "web1", 3_000);
    let other = snap("", "db", 1_500);
    let child = snap("child", "web1", 1_000);
    for s in [&done_new, &done_old, &unfinished, &other, &child] {
        store.create_snapshot_dir(s).unwrap();
    }
    for s in [&done_new, &done_old, &other, &child] {
        finish(&store, s);
    }
    assert!(store.is_finished(&done_old));
    assert!(!store.is_finished(&unfinished));
    // Junk that must be skipped.
    fs::create_dir_all(store.base().join("host/web1/not-a-time")).unwrap();
    fs::create_dir_all(store.base().join("lxc/1/2025-11-24T16:00:00Z")).unwrap();
    fs::create_dir_all(store.base().join("host/.hidden/2025-11-24T16:00:00Z")).unwrap();
    fs::write(store.base().join("host/web1/1970-01-01T00:00:01Z"), b"file").unwrap();

    let listed: Vec<SnapshotRef> = store
        .list_snapshots(&root)
        .unwrap()
        .into_iter()
        .map(|(s, m)| {
            assert!(m.matches(&s));
            s
        })
        .collect();
    assert_eq!(listed, vec![other.clone(), done_old, done_new]);
    let in_child: Vec<_> = store.list_snapshots(&"child".parse().unwrap()).unwrap();
    assert_eq!(in_child.len(), 1);
    assert_eq!(in_child[0].0, child);
    assert!(
        store
            .list_snapshots(&"nope".parse().unwrap())
            .unwrap()
            .is_empty()
    );

    assert_eq!(
        store.newest_snapshot_time(&unfinished.group).unwrap(),
        Some(3_000)
    );
    assert_eq!(
        store.newest_snapshot_time(&other.group).unwrap(),
        Some(1_500)
    );
    let missing = BackupGroup::new(root, BackupType::Vm, "100").unwrap();
    assert_eq!(store.newest_snapshot_time(&missing).unwrap(), None);
}

#[test]
fn remove_snapshot_dir_removes_everything() {
    let (_dir, store) = new_store();
    let s = snap("", "web1", 1_000);
    let path = store.create_snapshot_dir(&s).unwrap();
    fs::write(path.join("root.tar.didx"), b"index").unwrap();
    finish(&store, &s);
    store.remove_snapshot_dir(&s).unwrap();
    assert!(!path.exists());
    assert!(!store.is_finished(&s));
    store.remove_snapshot_dir(&s).unwrap();
    assert!(store.list_snapshots(&Namespace::root()).unwrap().is_empty());
}

#[test]
fn manifest_round_trip_and_mismatch() {
    let (_dir, store) = new_store();
    let s = snap("", "web1", 1_000);
    store.create_snapshot_dir(&s).unwrap();
    assert!(matches!(
        store.read_manifest(&s),
        Err(StoreError::SnapshotNotFound { .. })
    ));
    finish(&store, &s);
    assert_eq!(store.read_manifest(&s).unwrap().files.len(), 1);

    let elsewhere = snap("", "web1", 2_000);
    store.create_snapshot_dir(&elsewhere).unwrap();
    store
        .write_manifest(&elsewhere, &BackupManifest::new(&s))
        .unwrap();
    assert!(matches!(
        store.read_manifest(&elsewhere),
        Err(StoreError::ManifestMismatch { .. })
    ));
    fs::write(store.snapshot_path(&s).join(MANIFEST_NAME), b"garbage").unwrap();
    assert!(matches!(
        store.read_manifest(&s),
        Err(StoreError::Manifest { .. })
    ));
}

#[test]
fn snapshot_file_paths() {
    let (_dir, store) = new_store();
    let s = snap("", "web1", 1_000);
    let dir = store.snapshot_path(&s);
    for good in [MANIFEST_NAME, "root.tar.didx", "catalog.blob"] {
        assert_eq!(store.snapshot_file_path(&s, good).unwrap(), dir.join(good));
    }
    let bad = [
        "../x",
        "x/y",
        "index.json",
        "",
        ".",
        "..",
        "/etc/passwd",
        "root.tar",
        "a\0.blob",
        ".x.blob",
        "x.didx",
    ];
    for name in bad {
        assert!(
            matches!(store.snapshot_file_path(&s, name), Err(StoreError::Name(_))),
            "{name:?}"
        );
    }
}

#[test]
fn chunk_store_is_shared() {
    let (_dir, store) = new_store();
    let clone = store.clone();
    assert!(Arc::ptr_eq(store.chunk_store(), clone.chunk_store()));
    assert_eq!(
        store.chunk_store().chunk_dir(),
        store.base().join(".chunks")
    );
}

#[test]
fn namespaces_are_listed_recursively() {
    let (_dir, store) = new_store();
    for ns in ["a", "a/b", "a/b/c", "z"] {
        store.create_snapshot_dir(&snap(ns, "x", 1)).unwrap();
    }
    fs::create_dir_all(store.base().join("ns/.bad")).unwrap();
    let all: Vec<String> = store
        .list_all_namespaces()
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(all, ["", "a", "z", "a/b", "a/b/c"]);
}

#[test]
fn unfinished_snapshots_are_removed_at_startup() {
    let (_dir, store) = new_store();
    let finished = snap("", "web1", 1_000);
    let unfinished = snap("", "web1", 2_000);
    let nested = snap("a/b", "db", 3_000);
    for s in [&finished, &unfinished, &nested] {
        store.create_snapshot_dir(s).unwrap();
    }
    finish(&store, &finished);
    fs::write(store.snapshot_path(&nested).join("root.tar.didx"), b"x").unwrap();
    let mut removed = store.remove_unfinished_snapshots().unwrap();
    removed.sort();
    let mut expected = vec![unfinished.clone(), nested.clone()];
    expected.sort();
    assert_eq!(removed, expected);
    assert!(store.is_finished(&finished));
    assert!(!store.snapshot_path(&unfinished).exists());
    assert!(!store.snapshot_path(&nested).exists());
    assert!(store.remove_unfinished_snapshots().unwrap().is_empty());
}

#[test]
fn parent_is_the_newest_finished_snapshot_whose_verify_did_not_fail() {
    use crate::manifest::{VerifyOutcome, VerifyState};
    let (_dir, store) = new_store();
    let group = snap("", "web", 100).group;
    assert!(store.parent_snapshot(&group, 1000).unwrap().is_none());
    for time in [100, 200, 300] {
        let s = snap("", "web", time);
        store.create_snapshot_dir(&s).unwrap();
        finish(&store, &s);
    }
    // Unfinished: never a parent.
    store.create_snapshot_dir(&snap("", "web", 400)).unwrap();
    let parent = |new_time| {
        store
            .parent_snapshot(&group, new_time)
            .unwrap()
            .map(|(s, m)| {
                assert!(m.matches(&s));
                s.time
            })
    };
    assert_eq!(parent(500), Some(300));
    assert_eq!(parent(250), Some(200));
    // The snapshot itself is never its own parent.
    assert_eq!(parent(300), Some(200));
    assert_eq!(parent(50), None);

    let failed = snap("", "web", 300);
    let mut manifest = store.read_manifest(&failed).unwrap();
    manifest.set_verify_state(&VerifyState {
        state: VerifyOutcome::Failed,
        upid: "UPID:x".into(),
        time: 1,
    });
    store.write_manifest(&failed, &manifest).unwrap();
    assert_eq!(parent(500), Some(200));
}
