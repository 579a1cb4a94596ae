//! End to end at the protocol level: a client that speaks chunked mode by hand (chunker,
//! blobs, digests and index checksums from the datastore crate) against the real server.
//! An honest client's snapshot restores and equals what stream mode stores; a lying client
//! is refused with 400 and leaves no snapshot and no chunk behind; the parent index is chosen,
//! checked and touched as the protocol says.

use std::time::Duration;

use api_client::Session;
use datastore::digest::Digest;
use datastore::index::DynamicIndex;
use e2e::harness::{TestServer, run_ok};
use hyper::Method;
use protocol::routes::{self, PREVIOUS_SNAPSHOT_HEADER, encode_query};
use protocol::types::{ArchiveUploadResponse, ChunkUploaded, DataResponse};

/// The `data` of a 200 answer, as `$ty`.
macro_rules! data {
    ($reply:expr, $ty:ty) => {{
        let reply: Reply = $reply;
        assert_eq!(reply.status, 200, "{}", reply.message);
        serde_json::from_slice::<DataResponse<$ty>>(&reply.body)
            .unwrap()
            .data
    }};
}

#[path = "chunked_protocol/client.rs"]
mod client;

use client::{
    Reply, T0, append_body, archive, backup_task, call, chunk_files, chunk_path, chunked_backup,
    chunker_params, chunks, close_query, create_index, finish, open, previous, runtime, server,
    set_verify_failed, snapshot_names, upload,
};

#[test]
fn chunked_upload_restores_and_matches_stream_mode() {
    let server = server();
    let rt = runtime();
    let params = chunker_params(&server, &rt);
    assert_eq!(params.avg, 16 << 10);
    let (tar, files) = archive(1);
    let chunks = chunks(params, &tar);
    assert!(chunks.len() >= 2, "{} chunks", chunks.len());
    let encoded: u64 = chunks
        .iter()
        .map(|(_, d)| datastore::blob::encode(d, true).len() as u64)
        .sum();

    let (closed, snapshot) = rt.block_on(chunked_backup(&server, "chunked", T0, &chunks));
    assert_eq!(closed.size, tar.len() as u64);
    assert_eq!(closed.chunks, chunks.len() as u64);
    assert_eq!(closed.new_chunks, chunks.len() as u64);
    assert_eq!(closed.bytes_received, encoded);

    // Stream mode stores the same archive with the same index entries and manifest entry.
    let streamed: ArchiveUploadResponse = rt.block_on(async {
        let mut session = open(&server, "streamed", T0).await;
        let path = "/archive?archive-name=root.tar";
        let reply = call(&mut session, Method::POST, path, tar.clone()).await;
        data!(finish(&mut session).await, serde_json::Value);
        data!(reply, ArchiveUploadResponse)
    });
    assert_eq!(
        (streamed.size, streamed.chunks, &streamed.csum),
        (closed.size, closed.chunks, &closed.csum)
    );
    assert_eq!(
        streamed.new_chunks, 0,
        "stream mode found every chunk stored"
    );
    let entries = |snap: &str| {
        DynamicIndex::load(&server.store_path.join(snap).join("root.tar.didx"))
            .unwrap()
            .entries
    };
    let stream_snapshot = format!("host/streamed/{}", datastore::snapshot::format_time(T0));
    assert_eq!(entries(&snapshot), entries(&stream_snapshot));
    let manifest_files = |snap: &str| {
        let blob = std::fs::read(server.store_path.join(snap).join("index.json.blob")).unwrap();
        datastore::manifest::BackupManifest::from_blob(&blob)
            .unwrap()
            .files
    };
    assert_eq!(manifest_files(&snapshot), manifest_files(&stream_snapshot));

    // The snapshot restores and verifies.
    let target = server.dir.path().join("restore");
    server.client_json(&["restore", &snapshot, "root.tar", target.to_str().unwrap()]);
    for (name, data) in &files {
        assert_eq!(&std::fs::read(target.join(name)).unwrap(), data, "{name}");
    }
    server.verify_ok();

    // The backup task's result holds the session's statistics.
    let task = backup_task(&server, "chunked");
    assert_eq!(task["status"], "ok", "{task}");
    let stats = &task["result"];
    assert_eq!(stats["bytes-received"], encoded, "{task}");
    assert_eq!(stats["chunks-uploaded"], chunks.len(), "{task}");
    assert_eq!(stats["chunks-reused"], 0, "{task}");
    assert_eq!(stats["new-chunks"], chunks.len(), "{task}");
    assert!(
        stats["bytes-stored"].as_u64().unwrap() >= encoded / 2,
        "{task}"
    );
    let stream_task = backup_task(&server, "streamed");
    assert_eq!(
        stream_task["result"]["bytes-received"],
        tar.len(),
        "{stream_task}"
    );
    let upid = task["upid"].as_str().unwrap();
    let log = run_ok(&mut server.admin(&["task", "log", upid]));
    let log = String::from_utf8_lossy(&log.stdout);
    assert!(log.contains("session stats:"), "{log}");
}

#[test]
fn previous_index_is_the_parents_index_and_protects_its_chunks() {
    let server = server();
    let rt = runtime();
    let params = chunker_params(&server, &rt);
    let (tar, _) = archive(2);
    let chunks = chunks(params, &tar);
    let (_, first) = rt.block_on(chunked_backup(&server, "web", T0, &chunks));
    let parent_index = std::fs::read(server.store_path.join(&first).join("root.tar.didx")).unwrap();

    // Old atimes, as GC would see chunks that nothing touched for days.
    for (digest, _) in &chunks {
        let old = nix::sys::time::TimeSpec::new(1_000_000, 0);
        nix::sys::stat::utimensat(
            nix::fcntl::AT_FDCWD,
            &chunk_path(&server, digest),
            &old,
            &nix::sys::time::TimeSpec::UTIME_OMIT,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .unwrap();
    }
    let (closed, second) = rt.block_on(async {
        let mut session = open(&server, "web", T0 + 100).await;
        let reply = previous(&mut session).await;
        assert_eq!(reply.status, 200, "{}", reply.message);
        assert_eq!(reply.body, parent_index);
        assert_eq!(reply.headers[PREVIOUS_SNAPSHOT_HEADER], first.as_str());
        use std::os::unix::fs::MetadataExt;
        for (digest, _) in &chunks {
            let atime = std::fs::metadata(chunk_path(&server, digest))
                .unwrap()
                .atime();
            assert!(atime > T0, "chunk {digest} touched");
        }
        drop(session);
        // Nothing is uploaded: every chunk comes from the parent.
        chunked_backup(&server, "web", T0 + 200, &chunks).await
    });
    assert_eq!(closed.chunks, chunks.len() as u64);
    assert_eq!((closed.new_chunks, closed.bytes_received), (0, 0));
    let task = backup_task(&server, "web");
    assert_eq!(task["result"]["chunks-reused"], chunks.len(), "{task}");
    assert_eq!(task["result"]["chunks-uploaded"], 0, "{task}");
    assert_eq!(task["result"]["bytes-received"], 0, "{task}");
    let target = server.dir.path().join("restore");
    server.client_json(&["restore", &second, "root.tar", target.to_str().unwrap()]);
    server.verify_ok();
}

#[test]
fn parents_that_failed_verify_or_lost_a_chunk_are_not_used() {
    let server = server();
    let rt = runtime();
    let params = chunker_params(&server, &rt);
    let (tar, _) = archive(3);
    let chunks = chunks(params, &tar);
    rt.block_on(async {
        // A first backup has no parent.
        let mut session = open(&server, "p", T0).await;
        let reply = previous(&mut session).await;
        assert_eq!(reply.status, 404, "{}", reply.message);
        assert!(
            reply.message.contains("no finished snapshot"),
            "{}",
            reply.message
        );
    });
    server.wait_for(
        Duration::from_secs(10),
        "the first session's cleanup",
        || !server.store_path.join("host/p").exists(),
    );
    let (_, s1) = rt.block_on(chunked_backup(&server, "p", T0, &chunks));
    let (_, s2) = rt.block_on(chunked_backup(&server, "p", T0 + 10, &chunks));
    let parent_of = |time: i64| {
        rt.block_on(async {
            let mut session = open(&server, "p", time).await;
            previous(&mut session).await
        })
    };
    let reply = parent_of(T0 + 20);
    assert_eq!(reply.headers[PREVIOUS_SNAPSHOT_HEADER], s2.as_str());
    set_verify_failed(&server, &s2);
    let reply = parent_of(T0 + 21);
    assert_eq!(reply.status, 200, "{}", reply.message);
    assert_eq!(reply.headers[PREVIOUS_SNAPSHOT_HEADER], s1.as_str());
    set_verify_failed(&server, &s1);
    let reply = parent_of(T0 + 22);
    assert_eq!(reply.status, 404, "{}", reply.message);

    // Another group: a parent with a missing chunk is refused, and uploading everything
    // heals the store.
    let (_, q1) = rt.block_on(chunked_backup(&server, "q", T0, &chunks));
    let lost = chunk_path(&server, &chunks[chunks.len() / 2].0);
    std::fs::remove_file(&lost).unwrap();
    let reply = rt.block_on(async {
        let mut session = open(&server, "q", T0 + 30).await;
        previous(&mut session).await
    });
    assert_eq!(reply.status, 404, "{}", reply.message);
    assert!(reply.message.contains("missing"), "{}", reply.message);
    assert!(reply.message.contains(&q1), "{}", reply.message);
    server.wait_for(
        Duration::from_secs(10),
        "the refused session's task",
        || backup_task(&server, "q")["status"] == "error",
    );
    let (closed, q2) = rt.block_on(chunked_backup(&server, "q", T0 + 40, &chunks));
    assert!(closed.new_chunks >= 1, "{closed:?}");
    assert!(lost.exists(), "the lost chunk was uploaded again");
    let target = server.dir.path().join("restore");
    server.client_json(&["restore", &q2, "root.tar", target.to_str().unwrap()]);
}

/// Runs a lying session: `lie` does its worst, the session ends without `finish`.
fn lying_session(server: &TestServer, id: &str, lie: impl AsyncFnOnce(&mut Session)) {
    let chunks_before = chunk_files(server);
    let snapshots_before = snapshot_names(server);
    runtime().block_on(async {
        let mut session = open(server, id, T0).await;
        lie(&mut session).await;
        let reply = finish(&mut session).await;
        assert_eq!(reply.status, 400, "finish after a lie: {}", reply.message);
    });
    let group = server.store_path.join("host").join(id);
    server.wait_for(
        Duration::from_secs(10),
        "the lying session's cleanup",
        || !group.exists(),
    );
    assert_eq!(snapshot_names(server), snapshots_before);
    assert_eq!(
        chunk_files(server),
        chunks_before,
        "the chunk store changed"
    );
}

#[test]
fn lying_clients_get_400_and_leave_nothing() {
    let server = server();
    let rt = runtime();
    let params = chunker_params(&server, &rt);
    let (tar, _) = archive(4);
    let stored = chunks(params, &tar);
    rt.block_on(chunked_backup(&server, "other", T0, &stored));
    let (fresh_tar, _) = archive(5);
    let fresh = chunks(params, &fresh_tar);

    // (a) A chunk whose body is not what its digest names, or not its declared size.
    lying_session(&server, "liar-a", async |session| {
        let wid = create_index(session).await;
        let (digest, _) = &fresh[0];
        let (_, other_data) = &fresh[1];
        upload(session, wid, digest, other_data)
            .await
            .refused("chunk refused");
        let (digest, data) = &fresh[0];
        let blob = datastore::blob::encode(data, true);
        let query = |size: usize, encoded: usize| {
            let q = encode_query(&[
                ("wid", &wid.to_string()),
                ("digest", &digest.to_hex()),
                ("size", &size.to_string()),
                ("encoded-size", &encoded.to_string()),
            ]);
            format!("/chunk?{q}")
        };
        let wrong_size = query(data.len() + 1, blob.len());
        call(session, Method::POST, &wrong_size, blob.clone())
            .await
            .refused("declared");
        let short = query(data.len(), blob.len() + 10);
        call(session, Method::POST, &short, blob.clone())
            .await
            .refused("were declared");
        let long = query(data.len(), blob.len() - 10);
        call(session, Method::POST, &long, blob.clone())
            .await
            .refused("longer than");
        assert!(!chunk_path(&server, digest).exists());
    });
    assert!(!chunk_path(&server, &fresh[0].0).exists());

    // (b) Appending a chunk it never uploaded, though another group's backup stored it.
    lying_session(&server, "liar-b", async |session| {
        let wid = create_index(session).await;
        let (digest, data) = &fresh[0];
        assert_eq!(
            upload(session, wid, &stored[0].0, &stored[0].1)
                .await
                .status,
            200
        );
        let batch = [stored[0].clone(), stored[1].clone()];
        let reply = call(
            session,
            Method::PUT,
            &format!("/index?wid={wid}"),
            append_body(&batch),
        )
        .await;
        reply.refused("not uploaded in this session and not in the parent index");
        assert!(
            reply.message.contains(&stored[1].0.to_hex()),
            "{}",
            reply.message
        );
        // Nothing of the refused batch was appended: closing as if it had been fails,
        // closing as empty passes.
        let path = format!("/index/close?{}", close_query(wid, &batch[..1]));
        call(session, Method::POST, &path, vec![])
            .await
            .refused("chunk-count: client 1, server 0");
        let wrong = [(*digest, data.clone())];
        let path = format!("/index?wid={wid}");
        call(session, Method::PUT, &path, append_body(&wrong))
            .await
            .refused(&digest.to_hex());
    });

    // (c) Closes whose count, size or checksum differ from what was appended.
    lying_session(&server, "liar-c", async |session| {
        let wid = create_index(session).await;
        for (digest, data) in &stored[..2] {
            let uploaded = data!(upload(session, wid, digest, data).await, ChunkUploaded);
            assert!(!uploaded.new);
        }
        let two = &stored[..2];
        let path = format!("/index?wid={wid}");
        assert_eq!(
            call(session, Method::PUT, &path, append_body(two))
                .await
                .status,
            200
        );
        let good = close_query(wid, two);
        let lies = [
            (
                close_query(wid, &stored[..1]),
                "chunk-count: client 1, server 2",
            ),
            (
                close_query(wid, &[stored[1].clone(), stored[0].clone()]),
                "csum: client",
            ),
            (
                good.replace("chunk-count=2", "chunk-count=3"),
                "chunk-count: client 3",
            ),
            (good.replace("size=", "size=1"), "size: client 1"),
        ];
        for (query, needle) in lies {
            let path = format!("/index/close?{query}");
            call(session, Method::POST, &path, vec![])
                .await
                .refused(needle);
        }
        let reply = finish(session).await;
        reply.refused("still open");
    });
    assert_eq!(snapshot_names(&server).len(), 1);
}

#[test]
fn bad_input_on_chunked_routes_gets_400_and_changes_nothing() {
    let server = server();
    let before = e2e::harness::disk_state(&server.store_path);
    let digest = Digest::of(b"x").to_hex();
    let long = "a".repeat(5000);
    runtime().block_on(async {
        let mut session = open(&server, "bad", T0).await;
        let wid = create_index(&mut session).await;
        let cases: Vec<(Method, String, Vec<u8>)> = vec![
            (Method::GET, "/previous-index".into(), vec![]),
            (
                Method::GET,
                "/previous-index?archive-name=root.tar&x=1".into(),
                vec![],
            ),
            (
                Method::GET,
                "/previous-index?archive-name=..%2Froot.tar".into(),
                vec![],
            ),
            (
                Method::GET,
                format!("/previous-index?archive-name={long}.tar"),
                vec![],
            ),
            (Method::POST, "/index?archive-name=root.tar".into(), vec![]),
            (Method::POST, "/index?archive-name=x.blob".into(), vec![]),
            (
                Method::POST,
                "/index?archive-name=a.tar&wid=1".into(),
                vec![],
            ),
            (
                Method::POST,
                format!("/chunk?wid={wid}&digest=zz&size=1&encoded-size=20"),
                vec![0; 20],
            ),
            (
                Method::POST,
                format!("/chunk?wid={wid}&digest={digest}&size=1"),
                vec![0; 20],
            ),
            (
                Method::POST,
                format!("/chunk?wid=99&digest={digest}&size=1&encoded-size=20"),
                vec![0; 20],
            ),
            (
                Method::POST,
                format!("/chunk?wid={wid}&digest={digest}&size=0&encoded-size=20"),
                vec![0; 20],
            ),
            (
                Method::POST,
                format!("/chunk?wid={wid}&digest={digest}&size=99999999&encoded-size=20"),
                vec![0; 20],
            ),
            (
                Method::POST,
                format!("/chunk?wid={wid}&digest={digest}&size=1&encoded-size=99999999"),
                vec![0; 20],
            ),
            (
                Method::POST,
                format!("/chunk?wid={wid}&digest={digest}&size=1&encoded-size=20&x=1"),
                vec![0; 20],
            ),
            (
                Method::POST,
                format!("/chunk?wid={wid}&digest={digest}&size=1&encoded-size=20"),
                vec![0; 20],
            ),
            (
                Method::POST,
                format!("/chunk?wid=-1&digest={digest}&size=1&encoded-size=20"),
                vec![0; 20],
            ),
            (
                Method::PUT,
                format!("/index?wid={wid}"),
                b"not json".to_vec(),
            ),
            (
                Method::PUT,
                format!("/index?wid={wid}"),
                br#"{"chunks":[],"x":1}"#.to_vec(),
            ),
            (
                Method::PUT,
                format!("/index?wid={wid}"),
                format!(r#"{{"chunks":[{{"digest":"{digest}","size":1,"x":1}}]}}"#).into_bytes(),
            ),
            (
                Method::PUT,
                format!("/index?wid={wid}"),
                format!(r#"{{"chunks":[{{"digest":"{long}","size":1}}]}}"#).into_bytes(),
            ),
            (
                Method::PUT,
                "/index?wid=77".into(),
                br#"{"chunks":[]}"#.to_vec(),
            ),
            (
                Method::POST,
                format!("/index/close?wid={wid}&chunk-count=0&size=0&csum=xyz"),
                vec![],
            ),
            (
                Method::POST,
                format!("/index/close?wid={wid}&chunk-count=0&size=0"),
                vec![],
            ),
            (
                Method::POST,
                format!("/index/close?wid=5&chunk-count=0&size=0&csum={digest}"),
                vec![],
            ),
            (
                Method::POST,
                format!("/index/close?wid={wid}&chunk-count=0&size=0&csum={long}"),
                vec![],
            ),
        ];
        for (method, path, body) in cases {
            let reply = call(&mut session, method.clone(), &path, body).await;
            assert_eq!(reply.status, 400, "{method} {path}: {}", reply.message);
            assert!(
                reply.message.len() > 20,
                "{method} {path}: {}",
                reply.message
            );
            assert!(
                reply.message.len() < 1000,
                "{method} {path}: {}",
                reply.message
            );
        }
        // The index is still open and empty: an honest close of nothing passes.
        let path = format!("/index/close?{}", close_query(wid, &[]));
        let closed = data!(
            call(&mut session, Method::POST, &path, vec![]).await,
            ArchiveUploadResponse
        );
        assert_eq!((closed.size, closed.chunks), (0, 0));
    });
    // The chunker route: unknown fields and bad namespaces are refused, a known store answers.
    let rt = runtime();
    let http = server.api_client();
    let chunker = routes::fill_path(
        routes::DATASTORE_CHUNKER.path,
        &[("store", TestServer::STORE)],
    );
    for (query, status) in [("", 200), ("ns=", 200), ("x=1", 400), ("ns=..%2Fx", 400)] {
        let path = format!("{chunker}?{query}");
        let got = rt
            .block_on(http.request(Method::GET, &path, None::<&()>))
            .unwrap()
            .status();
        assert_eq!(got, status, "{path}");
    }
    let missing = routes::fill_path(routes::DATASTORE_CHUNKER.path, &[("store", "nostore")]);
    let got = rt
        .block_on(http.request(Method::GET, &missing, None::<&()>))
        .unwrap()
        .status();
    assert_eq!(got, 404);
    server.wait_for(
        Duration::from_secs(10),
        "the abandoned session's cleanup",
        || e2e::harness::disk_state(&server.store_path) == before,
    );
}

#[test]
fn a_session_opens_at_most_64_indexes_even_when_asked_at_once() {
    let server = server();
    runtime().block_on(async {
        let mut session = open(&server, "many", T0).await;
        // 70 requests on the one connection at once: the bound is checked and taken in one
        // step, so exactly 64 succeed whatever their order.
        let mut requests = tokio::task::JoinSet::new();
        for i in 0..70 {
            let mut session = session.clone();
            requests.spawn(async move {
                let path = format!("/index?archive-name=a{i}.tar");
                call(&mut session, Method::POST, &path, vec![]).await
            });
        }
        let replies = requests.join_all().await;
        let opened: Vec<u64> = replies
            .iter()
            .filter(|r| r.status == 200)
            .map(|r| {
                let created: DataResponse<protocol::types::IndexCreated> =
                    serde_json::from_slice(&r.body).unwrap();
                created.data.wid
            })
            .collect();
        assert_eq!(opened.len(), 64);
        for reply in replies.iter().filter(|r| r.status != 200) {
            reply.refused("64 open indexes already");
        }
        call(
            &mut session,
            Method::POST,
            "/index?archive-name=b.tar",
            vec![],
        )
        .await
        .refused("64 open indexes already");
        // Closing one frees its place.
        let closed = call(
            &mut session,
            Method::POST,
            &format!("/index/close?{}", close_query(opened[0], &[])),
            vec![],
        )
        .await;
        assert_eq!(closed.status, 200, "{}", closed.message);
        let reopened = call(
            &mut session,
            Method::POST,
            "/index?archive-name=b.tar",
            vec![],
        )
        .await;
        assert_eq!(reopened.status, 200, "{}", reopened.message);
    });
}
