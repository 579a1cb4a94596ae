//! End to end, metadata change detection (the client's default in chunked mode): a
//! re-backup reads only files whose size, mode, mtime, ctime or inode changed and re-uses
//! the previous payload's chunks for the rest, which the SERVER's own counters confirm;
//! both the old and the new snapshot restore byte-exactly; padding stays bounded over many
//! rounds; `restore --include` and `catalog` fetch only what they need.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use datastore::index::DynamicIndex;
use e2e::harness::{ServerOptions, TestServer, u};
use e2e::tree::{TreeOptions, assert_same_tree, generate_tree};

/// 2,000 files of 1-15 KiB in 40 directories (a source tree in miniature).
fn source_tree(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut state = 0x1234_5678_9abc_def1u64;
    for d in 0..40 {
        let dir = root.join(format!("pkg{d:02}/src"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..50 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = 1024 + (state % (14 * 1024)) as usize;
            let content: Vec<u8> = (0..len)
                .map(|i| (state.rotate_left((i % 64) as u32) as u8) ^ (i as u8))
                .collect();
            let path = dir.join(format!("file{f:02}.c"));
            std::fs::write(&path, content).unwrap();
            files.push(path);
        }
    }
    files
}

/// The archive of `snapshot` as one tar file at `file` (`restore --format tar`), read back.
fn export_tar(server: &TestServer, snapshot: &str, file: &Path) -> Vec<u8> {
    e2e::harness::run_ok(
        server
            .client()
            .args(["restore", snapshot, "root.tar"])
            .arg(file)
            .args(["--format", "tar"]),
    );
    std::fs::read(file).unwrap()
}

fn copy_tree(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Appends a line to every 100th file; returns the new sizes' sum (with payload headers).
fn change_one_percent(files: &[PathBuf], round: usize) -> u64 {
    let mut changed = 0;
    for path in files.iter().skip(round % 100).step_by(100) {
        let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        writeln!(f, "/* round {round} */").unwrap();
        changed += std::fs::metadata(path).unwrap().len() + 24;
    }
    changed
}

#[test]
fn unchanged_and_one_percent_changed_rebackups_send_only_what_changed() {
    let server = TestServer::start_with(ServerOptions {
        chunk_size_kib: 256,
        ..Default::default()
    });
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    let files = source_tree(&source);
    let mut seen = HashSet::new();

    let first = server.backup(&source, "cd");
    server.new_backup_task(&mut seen);
    let archive = &first["archives"][0];
    assert_eq!(archive["change_detection"], "metadata", "{first}");
    assert_eq!(u(&archive["split"], "reused_files"), 0);

    // Unchanged: no file content read, nothing but metadata could travel (and even the
    // metadata is the same chunks), all payload chunks re-used.
    let second = server.backup(&source, "cd");
    let task = server.new_backup_task(&mut seen);
    let archive = &second["archives"][0];
    assert_eq!(u(&second, "bytes_read"), 0, "{second}");
    assert_eq!(u(&archive["split"], "reused_files"), 2000, "{second}");
    assert_eq!(u(&archive["split"], "payload_uploaded_plain_bytes"), 0);
    assert_eq!(u(&archive["split"], "padding_bytes"), 0);
    // The server received no chunk; only the payload's padding record (a tiny blob).
    assert_eq!(u(&task, "chunks-uploaded"), 0, "{task}");
    assert!(u(&task, "bytes-received") < 256, "{task}");
    let unchanged = second["snapshot"].as_str().unwrap().to_string();
    let snapshot_copy = work.path().join("before");
    copy_tree(&source, &snapshot_copy);

    // 1% of the files changed, spread over the tree.
    let changed = change_one_percent(&files, 0);
    let third = server.backup(&source, "cd");
    let task = server.new_backup_task(&mut seen);
    let archive = &third["archives"][0];
    let split = &archive["split"];
    assert_eq!(u(split, "reused_files"), 1980, "{third}");
    assert_eq!(
        u(&third, "bytes_read"),
        changed - 20 * 24,
        "only the changed files are read"
    );
    let payload_sent = u(split, "payload_uploaded_plain_bytes");
    assert!(
        payload_sent <= 2 * changed,
        "{payload_sent} payload bytes sent for {changed} bytes of changed files: {third}"
    );
    let received = u(&task, "bytes-received");
    let metadata = u(split, "metadata_size");
    assert!(
        received <= 2 * changed + metadata,
        "server received {received}: {task}"
    );
    assert!(u(split, "padding_bytes") * 10 <= u(split, "payload_size") + (512 << 10));

    // Both states restore byte-exactly.
    let r_old = work.path().join("r-old");
    server.restore(&unchanged, &r_old);
    assert_same_tree(&snapshot_copy, &r_old);
    let r_new = work.path().join("r-new");
    let third_snapshot = third["snapshot"].as_str().unwrap();
    server.restore(third_snapshot, &r_new);
    assert_same_tree(&source, &r_new);
    // Its payload points back and forth into re-used chunks; the tar export is still the
    // very stream a one-tar-stream backup of the same tree exports.
    let single = server.backup_with(&source, "cd-single", &["--change-detection", "data"]);
    let export =
        |snapshot: &str, name: &str| export_tar(&server, snapshot, &work.path().join(name));
    assert!(
        export(third_snapshot, "split.tar")
            == export(single["snapshot"].as_str().unwrap(), "single.tar"),
        "the split export differs from the single layout's"
    );
    server.verify_ok();
}

#[test]
fn a_file_changed_behind_an_unchanged_size_and_mtime_is_read_for_its_new_ctime() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    let files = source_tree(&source);
    server.backup(&source, "ctime");

    let path = &files[777];
    let before = std::fs::metadata(path).unwrap();
    let mut content = std::fs::read(path).unwrap();
    content[10] ^= 0xff;
    std::fs::write(path, &content).unwrap();
    let mtime = std::time::UNIX_EPOCH
        + std::time::Duration::new(before.mtime() as u64, before.mtime_nsec() as u32);
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.set_times(std::fs::FileTimes::new().set_modified(mtime))
        .unwrap();
    drop(file);
    let after = std::fs::metadata(path).unwrap();
    assert_eq!(
        (after.len(), after.mtime(), after.mtime_nsec()),
        (before.len(), before.mtime(), before.mtime_nsec())
    );
    assert_ne!(
        (after.ctime(), after.ctime_nsec()),
        (before.ctime(), before.ctime_nsec())
    );

    let second = server.backup(&source, "ctime");
    assert_eq!(u(&second, "bytes_read"), after.len(), "{second}");
    assert_eq!(u(&second["archives"][0]["split"], "reused_files"), 1999);
    let restored = work.path().join("restored");
    server.restore(second["snapshot"].as_str().unwrap(), &restored);
    assert_same_tree(&source, &restored);
}

/// Plain bytes of the distinct chunks that the given snapshots reference: what the store
/// holds for them before compression.
fn distinct_chunk_bytes(server: &TestServer, snapshots: &[String]) -> u64 {
    let mut sizes: HashMap<String, u64> = HashMap::new();
    for snapshot in snapshots {
        let dir = server.store_path.join(snapshot);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "didx") {
                let index = DynamicIndex::load(&path).unwrap();
                for i in 0..index.entries.len() {
                    let range = index.chunk_range(i);
                    sizes.insert(index.entries[i].digest.to_hex(), range.end - range.start);
                }
            }
        }
    }
    sizes.values().sum()
}

/// The bound this test states: whatever the history, the chunks a snapshot keeps alive
/// (what a store pruned to its last snapshot holds after GC) are at most 120% of its
/// files' payload, plus its metadata stream, plus two of the largest chunks. The planner
/// rewrites chunks that are more than 10% dead and refuses padding beyond 20%.
#[test]
fn many_rounds_of_changes_keep_stored_bytes_bounded() {
    const ROUNDS: usize = 15;
    let max_chunk = 4 * (64u64 << 10);
    let server = TestServer::start_with(ServerOptions {
        chunk_size_kib: 64,
        ..Default::default()
    });
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    let files = source_tree(&source);
    let mut snapshots = Vec::new();
    let first = server.backup(&source, "rounds");
    snapshots.push(first["snapshot"].as_str().unwrap().to_string());
    // A first backup writes the payload in order, so its restore reads it forward only
    // (and fetches further ahead, keeping nothing behind): still each chunk once.
    assert_eq!(payload_record(&server, &snapshots[0])["in_order"], true);
    let summary = server.restore(&snapshots[0], &work.path().join("first"));
    assert_same_tree(&source, &work.path().join("first"));
    let stored = encoded_entry_bytes(&server, &snapshots[0]);
    assert!(u(&summary, "bytes_downloaded") <= stored, "{summary}");
    let first_bytes = distinct_chunk_bytes(&server, &snapshots);
    let mut all_before = first_bytes;
    for round in 1..=ROUNDS {
        // Grow 1% of the files, and shrink another 1% to leave dead bytes behind.
        change_one_percent(&files, round);
        for path in files.iter().skip((round * 7 + 50) % 100).step_by(100) {
            let content = std::fs::read(path).unwrap();
            std::fs::write(path, &content[..content.len() * 2 / 3]).unwrap();
        }
        let summary = server.backup(&source, "rounds");
        let snapshot = summary["snapshot"].as_str().unwrap().to_string();
        snapshots.push(snapshot.clone());
        let split = &summary["archives"][0]["split"];
        let live: u64 = files
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len() + 24)
            .sum();
        let kept = distinct_chunk_bytes(&server, std::slice::from_ref(&snapshot));
        let bound = live * 12 / 10 + u(split, "metadata_size") + 2 * max_chunk;
        let all = distinct_chunk_bytes(&server, &snapshots);
        println!(
            "round {round}: latest snapshot keeps {kept} (bound {bound}, live {live}), \
             all {ROUNDS} rounds {all} (first {first_bytes}), padding {}, read {}",
            u(split, "padding_bytes"),
            u(&summary, "bytes_read"),
        );
        assert!(kept <= bound, "round {round}: {kept} > {bound}");
        // The store grows by what is new only: the content read (files re-read to drop
        // mostly-dead chunks included), their payload headers, the new metadata stream, and
        // the chunks cut where new content meets re-used chunks.
        let growth = all - all_before;
        let growth_bound =
            u(&summary, "bytes_read") * 11 / 10 + u(split, "metadata_size") + 2 * max_chunk;
        assert!(
            growth <= growth_bound,
            "round {round}: the store grew by {growth} > {growth_bound}"
        );
        all_before = all;
        // The snapshot records its payload's dead bytes for the next backup: as many as
        // the client counted as padding.
        let record = payload_record(&server, &snapshot);
        let dead: u64 = record["dead"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d[1].as_u64().unwrap())
            .sum();
        assert_eq!(dead, u(split, "padding_bytes"), "round {round}: {record}");
    }
    let restored = work.path().join("restored");
    let last = snapshots.last().unwrap();
    // Changed files amid unchanged ones: new content held back behind re-used chunks.
    assert_eq!(payload_record(&server, last)["in_order"], false);
    let summary = server.restore(last, &restored);
    assert_same_tree(&source, &restored);
    // Each chunk is downloaded at most once for each place the indexes name it: the
    // restore keeps enough of the payload for members that point back past new content
    // (with 64 KiB chunks, many chunks).
    let stored = encoded_entry_bytes(&server, last);
    assert!(
        u(&summary, "bytes_downloaded") <= stored,
        "downloaded {} of an archive whose index entries hold {stored} bytes",
        u(&summary, "bytes_downloaded")
    );
}

/// The payload record (`root.ptar.padding.blob`) of a snapshot, as JSON.
fn payload_record(server: &TestServer, snapshot: &str) -> serde_json::Value {
    let path = server
        .store_path
        .join(snapshot)
        .join("root.ptar.padding.blob");
    let blob = std::fs::read(path).unwrap();
    serde_json::from_slice(&datastore::blob::decode(&blob, 1 << 20).unwrap()).unwrap()
}

/// Encoded bytes of every entry of a snapshot's indexes (a chunk named twice counts twice).
fn encoded_entry_bytes(server: &TestServer, snapshot: &str) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(server.store_path.join(snapshot)).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "didx") {
            let index = DynamicIndex::load(&path).unwrap();
            for entry in &index.entries {
                let hex = entry.digest.to_hex();
                let chunk = server.store_path.join(".chunks").join(&hex[..4]).join(&hex);
                total += std::fs::metadata(chunk).unwrap().len();
            }
        }
    }
    total
}

#[test]
fn include_restores_chosen_paths_fetching_only_their_chunks_and_catalog_lists_entries() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    let info = generate_tree(&source, &TreeOptions::default()).expect("tree");
    let summary = server.backup(&source, "include");
    let snapshot = summary["snapshot"].as_str().unwrap();
    let archive_bytes = u(&summary, "bytes_uploaded");

    let target = work.path().join("some");
    let restored = server.client_json(&[
        "restore",
        snapshot,
        "root.tar",
        target.to_str().unwrap(),
        "--include",
        "small",
        "--include",
        "./hardlinks/",
        "--include",
        "empty",
    ]);
    assert_same_tree(&source.join("small"), &target.join("small"));
    assert_same_tree(&source.join("hardlinks"), &target.join("hardlinks"));
    assert_eq!(std::fs::read(target.join("empty")).unwrap(), b"");
    assert!(!target.join(&info.large_file).exists());
    let names: Vec<_> = std::fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    let downloaded = u(&restored, "bytes_downloaded");
    assert!(
        downloaded * 5 < archive_bytes,
        "fetched {downloaded} of {archive_bytes} bytes for a few small files"
    );

    // An unchanged re-backup takes xattrs and ACLs from the previous metadata (the ctime
    // says they cannot have changed): its export is the first one's, byte for byte.
    let again = server.backup(&source, "include");
    assert_eq!(u(&again, "bytes_read"), 0, "{again}");
    let export =
        |snapshot: &str, name: &str| export_tar(&server, snapshot, &work.path().join(name));
    assert!(
        export(snapshot, "first.tar") == export(again["snapshot"].as_str().unwrap(), "again.tar"),
        "the re-used archive exports other bytes"
    );

    // A path that is not in the archive is an error.
    let missing = server
        .client()
        .args(["restore", snapshot, "root.tar"])
        .arg(work.path().join("none"))
        .args(["--include", "no/such/path"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no entry no/such/path"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );

    // The catalog: every entry with type, size, mtime, from the metadata alone.
    let catalog = server.client_json(&["catalog", snapshot, "root.tar"]);
    let entries = catalog["entries"].as_array().unwrap();
    let large = entries
        .iter()
        .find(|e| e["path"] == info.large_file.to_str().unwrap())
        .expect("large file listed");
    assert_eq!(large["type"], "file");
    assert_eq!(
        u(large, "size"),
        std::fs::metadata(source.join(&info.large_file))
            .unwrap()
            .len()
    );
    assert!(u(large, "mtime") > 1_600_000_000);
    assert_eq!(entries[0]["path"], ".");
    assert_eq!(entries[0]["type"], "dir");
    assert!(
        u(&catalog, "bytes_downloaded") * 20 < archive_bytes,
        "catalog fetched {} bytes",
        u(&catalog, "bytes_downloaded")
    );
    let under = server.client_json(&["catalog", snapshot, "root.tar", "small"]);
    let paths: Vec<&str> = under["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths[0], "small");
    assert!(paths.iter().all(|p| p.starts_with("small")), "{paths:?}");
    assert_eq!(paths.len(), 10, "{paths:?}");

    // --include on an archive stored as one tar stream is refused with the reason.
    let single = server.backup_with(&source, "single", &["--change-detection", "data"]);
    let refused = server
        .client()
        .args(["restore", single["snapshot"].as_str().unwrap(), "root.tar"])
        .arg(work.path().join("refused"))
        .args(["--include", "small"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("needs a split archive"));
    assert!(!work.path().join("refused").exists());
}
