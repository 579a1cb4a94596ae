//! End to end: the real server and client binaries back up a generated tree with every
//! entry kind, restore it, and the restored tree equals the source in content and
//! metadata; a second backup deduplicates.

use e2e::harness::{TestServer, u};
use e2e::tree::{TreeOptions, assert_same_tree, compare_trees, generate_tree};

#[test]
fn round_trip_restores_every_entry_kind() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    generate_tree(&source, &TreeOptions::default()).expect("generate tree");

    // Both layouts: split (metadata change detection, the default) and one tar stream.
    for (detection, files) in [
        (
            "metadata",
            vec!["root.mtar.didx", "root.ptar.didx", "root.ptar.padding.blob"],
        ),
        ("data", vec!["root.tar.didx"]),
    ] {
        let id = format!("roundtrip-{detection}");
        let summary = server.backup_with(&source, &id, &["--change-detection", detection]);
        let snapshot = summary["snapshot"].as_str().unwrap().to_string();
        assert!(snapshot.starts_with(&format!("host/{id}/")), "{summary}");
        assert_eq!(summary["archives"][0]["change_detection"], detection);
        assert!(u(&summary, "bytes_read") >= 50 << 20, "{summary}");
        let archive = &summary["archives"][0];
        // A first backup sends every chunk.
        assert!(u(&summary, "chunks") > 0, "{summary}");
        assert_eq!(u(archive, "uploaded_chunks"), u(&summary, "chunks"));
        assert_eq!(u(archive, "uploaded_plain_bytes"), u(archive, "size"));
        assert!(u(&summary, "bytes_uploaded") > 0, "{summary}");
        assert!(u(&summary, "bytes_stored") > 0, "{summary}");
        assert!(summary["duration_s"].as_f64().is_some(), "{summary}");

        let listed: Vec<_> = server
            .snapshots()
            .into_iter()
            .filter(|s| s["snapshot"] == snapshot.as_str())
            .collect();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0]["files"], serde_json::json!(files));
        assert!(listed[0]["size"].as_u64().unwrap() >= u(&summary, "bytes_read"));

        let target = work.path().join(format!("restore-{detection}"));
        let restored =
            server.client_json(&["restore", &snapshot, "root.tar", target.to_str().unwrap()]);
        assert_eq!(restored["snapshot"], snapshot.as_str());
        assert_same_tree(&source, &target);
    }
}

#[test]
fn several_archives_make_one_snapshot() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    for (dir, content) in [(&a, "first"), (&b, "second")] {
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/file.txt"), content).unwrap();
    }
    let summary = server.client_json(&[
        "backup",
        &format!("a.tar:{}", a.display()),
        &format!("b.tar:{}", b.display()),
        "--backup-id",
        "multi",
    ]);
    let snapshot = summary["snapshot"].as_str().unwrap();
    let listed = server.snapshots();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0]["files"],
        serde_json::json!([
            "a.mtar.didx",
            "a.ptar.didx",
            "a.ptar.padding.blob",
            "b.mtar.didx",
            "b.ptar.didx",
            "b.ptar.padding.blob"
        ])
    );
    for (name, source) in [("a.tar", &a), ("b.tar", &b)] {
        let target = work.path().join(format!("restore-{name}"));
        server.client_json(&["restore", snapshot, name, target.to_str().unwrap()]);
        compare_trees(source, &target).unwrap_or_else(|d| panic!("{name}: {}", d.join("\n")));
    }
}

#[test]
fn unchanged_backup_stores_nothing_and_small_changes_store_little() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    generate_tree(&source, &TreeOptions::default()).expect("generate tree");

    let first = server.backup(&source, "dedup");
    let second = server.backup(&source, "dedup");
    assert_eq!(u(&second, "chunks"), u(&first, "chunks"), "{second}");
    assert_eq!(u(&second, "new_chunks"), 0, "{second}");
    assert_eq!(u(&second, "bytes_stored"), 0, "{second}");

    // Change two small files: only the chunks that hold them (and their neighbours,
    // where a boundary moved) are new.
    let small: Vec<_> = walk_files(&source)
        .into_iter()
        .filter(|p| {
            std::fs::metadata(p)
                .map(|m| m.len() > 0 && m.len() < 4096)
                .unwrap_or(false)
        })
        .take(2)
        .collect();
    assert_eq!(small.len(), 2, "the generated tree has small files");
    for path in &small {
        let mut data = std::fs::read(path).unwrap();
        data.extend_from_slice(b" changed");
        std::fs::write(path, data).unwrap();
    }
    let third = server.backup(&source, "dedup");
    let new = u(&third, "new_chunks");
    assert!((1..=4).contains(&new), "{third}");
    assert!(
        u(&third, "bytes_stored") < u(&first, "bytes_stored") / 2,
        "first {first}\nthird {third}"
    );
    assert_eq!(server.snapshots().len(), 3);

    let snapshot = third["snapshot"].as_str().unwrap();
    let target = work.path().join("restore");
    server.client_json(&["restore", snapshot, "root.tar", target.to_str().unwrap()]);
    compare_trees(&source, &target).unwrap_or_else(|d| panic!("{}", d.join("\n")));
}

fn walk_files(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        for path in entries {
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}
