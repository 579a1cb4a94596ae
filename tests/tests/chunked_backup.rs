//! End to end, chunked upload mode (the client's default): the real client chunks and
//! uploads only what the parent snapshot lacks, which the SERVER's own counters confirm;
//! both upload modes give the same index; a dry run writes nothing; a refused chunk or a
//! vanished server fails the backup cleanly.

use std::collections::HashSet;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use datastore::index::DynamicIndex;
use e2e::harness::{TestServer, disk_state, run_ok, u};
use e2e::tree::{TreeOptions, assert_same_tree, generate_tree};

const MAX_CHUNK: u64 = 16 << 20;

fn pseudo_random_file(path: &Path, size: u64, seed: u64) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..size / block.len() as u64 {
        for b in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            b.copy_from_slice(&state.to_le_bytes()[..b.len()]);
        }
        file.write_all(&block).unwrap();
    }
    file.flush().unwrap();
}

#[test]
fn second_backup_sends_only_what_changed() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    std::fs::create_dir_all(source.join("etc")).unwrap();
    std::fs::write(source.join("etc/hosts"), b"127.0.0.1 localhost\n").unwrap();
    let big = source.join("big.img");
    pseudo_random_file(&big, 200 << 20, 7);
    let mut seen = HashSet::new();
    // Chunk-level dedup of a re-read tree (metadata change detection has its own tests in
    // change_detection.rs): one tar stream, every file read.
    let backup = || server.backup_with(&source, "inc", &["--change-detection", "data"]);

    let first = backup();
    let first_task = server.new_backup_task(&mut seen);
    assert!(
        u(&first_task, "bytes-received") >= 200 << 20,
        "{first_task}"
    );
    assert_eq!(first["archives"][0]["upload_mode"], "chunked", "{first}");

    // Unchanged: the server receives no chunk at all.
    let second = backup();
    let second_task = server.new_backup_task(&mut seen);
    assert_eq!(u(&second_task, "chunks-uploaded"), 0, "{second_task}");
    assert_eq!(u(&second_task, "bytes-received"), 0, "{second_task}");
    assert_eq!(u(&second, "bytes_uploaded"), 0, "{second}");
    assert_eq!(
        u(&second["archives"][0], "reused_chunks"),
        u(&second, "chunks"),
        "{second}"
    );

    // 1 MiB overwritten in the middle: only the chunks around it travel.
    let middle = {
        let mut file = std::fs::OpenOptions::new().write(true).open(&big).unwrap();
        file.seek(SeekFrom::Start(100 << 20)).unwrap();
        file.write_all(&vec![0x5a; 1 << 20]).unwrap();
        file.sync_all().unwrap();
        std::fs::read(&big).unwrap()
    };
    let third = backup();
    let third_task = server.new_backup_task(&mut seen);
    let received = u(&third_task, "bytes-received");
    assert!(
        received > 0 && received <= 3 * MAX_CHUNK,
        "a 1 MiB change made the server receive {received} bytes: {third_task}"
    );
    assert!(
        u(&third_task, "chunks-uploaded") <= 4,
        "{third_task} / {third}"
    );

    // Both the old and the new state restore byte-exactly.
    let restored_second = work.path().join("r2");
    server.restore(second["snapshot"].as_str().unwrap(), &restored_second);
    pseudo_random_file(&work.path().join("original.img"), 200 << 20, 7);
    assert!(
        std::fs::read(restored_second.join("big.img")).unwrap()
            == std::fs::read(work.path().join("original.img")).unwrap(),
        "the second snapshot's file differs from the original"
    );
    let restored_third = work.path().join("r3");
    server.restore(third["snapshot"].as_str().unwrap(), &restored_third);
    assert!(std::fs::read(restored_third.join("big.img")).unwrap() == middle);
    assert_same_tree(&source, &restored_third);
    server.verify_ok();
}

#[test]
fn stream_and_chunked_modes_write_the_same_index() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    generate_tree(&source, &TreeOptions::default()).expect("generate tree");
    let spec = format!("root.tar:{}", source.display());
    // One tar stream in both: stream mode cannot split an archive.
    let backup = |id: &str, mode: &str| {
        server.client_json(&[
            "backup",
            &spec,
            "--backup-id",
            id,
            "--upload-mode",
            mode,
            "--change-detection",
            "data",
        ])
    };
    let stream = backup("s", "stream");
    let chunked = backup("c", "chunked");
    assert_eq!(stream["archives"][0]["upload_mode"], "stream");
    assert_eq!(chunked["archives"][0]["upload_mode"], "chunked");
    let load = |summary: &serde_json::Value| {
        let path = server
            .store_path
            .join(summary["snapshot"].as_str().unwrap())
            .join("root.tar.didx");
        let bytes = std::fs::read(&path).unwrap();
        (DynamicIndex::decode(&bytes).unwrap(), bytes)
    };
    let ((s_index, s_bytes), (c_index, c_bytes)) = (load(&stream), load(&chunked));
    assert!(s_index.entries.len() > 3, "{stream}");
    assert_eq!(s_index.entries, c_index.entries);
    assert_eq!(s_index.csum, c_index.csum);
    // Everything but the header's identity fields (uuid, ctime) is the same bytes.
    assert_eq!(s_bytes.len(), c_bytes.len());
    assert_eq!(s_bytes[32..], c_bytes[32..]);
    assert_eq!(
        u(&chunked, "new_chunks"),
        0,
        "the stream backup stored every chunk already: {chunked}"
    );
}

#[test]
fn dry_run_reports_what_a_backup_would_send_and_writes_nothing() {
    let server = TestServer::start_with(e2e::harness::ServerOptions {
        chunk_size_kib: 64,
        ..Default::default()
    });
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    std::fs::create_dir_all(&source).unwrap();
    pseudo_random_file(&source.join("a.bin"), 4 << 20, 1);
    pseudo_random_file(&source.join("b.bin"), 4 << 20, 2);
    server.backup(&source, "dry");
    pseudo_random_file(&source.join("b.bin"), 4 << 20, 3);

    let before_store = disk_state(&server.store_path);
    let before_tasks = server.admin_json(&["task", "list"]);
    let spec = format!("root.tar:{}", source.display());
    let dry = server.client_json(&["backup", &spec, "--backup-id", "dry", "--dry-run"]);
    assert_eq!(dry["dry_run"], true, "{dry}");
    let archive = &dry["archives"][0];
    assert!(archive["parent"].as_str().unwrap().starts_with("host/dry/"));
    assert_eq!(u(archive, "files"), 2, "{dry}");
    let would = u(archive, "uploaded_chunks");
    assert!(would > 0 && u(archive, "reused_chunks") > 0, "{dry}");
    assert!(
        u(archive, "uploaded_plain_bytes") >= 4 << 20,
        "b.bin changed completely: {dry}"
    );
    assert_eq!(disk_state(&server.store_path), before_store);
    assert_eq!(server.admin_json(&["task", "list"]), before_tasks);
    assert_eq!(server.snapshots().len(), 1);

    // The real backup sends exactly what the dry run announced.
    let real = server.backup(&source, "dry");
    assert_eq!(u(&real["archives"][0], "uploaded_chunks"), would, "{real}");
}

#[test]
fn a_chunk_the_server_refuses_fails_the_backup() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("file"), b"some content".repeat(1000)).unwrap();
    let chunks_before = disk_state(&server.store_path.join(".chunks"));
    let output = server
        .client()
        .env("BACKUP_CLIENT_TEST_FAULT", "corrupt-chunk-upload")
        .args(["backup", &format!("root.tar:{}", source.display())])
        .args(["--backup-id", "liar"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("400"), "{stderr}");
    assert!(server.snapshots().is_empty());
    assert_eq!(
        disk_state(&server.store_path.join(".chunks")),
        chunks_before
    );
}

#[test]
fn a_server_that_goes_away_fails_the_backup_cleanly() {
    let mut server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    std::fs::create_dir_all(&source).unwrap();
    pseudo_random_file(&source.join("data"), 8 << 20, 5);
    let release = work.path().join("release");
    let child = server
        .client()
        .env(
            "BACKUP_CLIENT_TEST_FAULT",
            format!("pause-after-first-block:{}", release.display()),
        )
        .args(["backup", &format!("root.tar:{}", source.display())])
        .args(["--backup-id", "gone"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    server.wait_for(Duration::from_secs(20), "the backup to start", || {
        let tasks = server.admin_json(&["task", "list", "--type", "backup", "--running"]);
        tasks.as_array().is_some_and(|t| t.len() == 1)
    });
    server.kill();
    std::fs::write(&release, b"go").unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("connect") || stderr.contains("connection"),
        "the message should say the server is gone: {stderr}"
    );

    server.restart();
    assert!(server.snapshots().is_empty());
    let summary = server.backup(&source, "gone");
    let target = work.path().join("restore");
    server.restore(summary["snapshot"].as_str().unwrap(), &target);
    assert_same_tree(&source, &target);
    run_ok(&mut server.admin(&["verify", TestServer::STORE]));
}

#[test]
fn chunk_uploads_whose_streams_are_reset_are_retried() {
    let server = TestServer::start_with(e2e::harness::ServerOptions {
        chunk_size_kib: 64,
        env: vec![(
            "BACKUP_SERVER_TEST_FAULT".into(),
            "reset-chunk-uploads:3".into(),
        )],
        ..Default::default()
    });
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    std::fs::create_dir_all(&source).unwrap();
    pseudo_random_file(&source.join("data"), 2 << 20, 11);
    let summary = server.backup(&source, "retry");
    assert!(
        u(&summary["archives"][0], "uploaded_chunks") > 3,
        "{summary}"
    );
    assert_eq!(
        server
            .log()
            .matches("test fault: resetting a chunk upload")
            .count(),
        3,
        "{}",
        server.log()
    );
    let target = work.path().join("restore");
    server.restore(summary["snapshot"].as_str().unwrap(), &target);
    assert_same_tree(&source, &target);
}
