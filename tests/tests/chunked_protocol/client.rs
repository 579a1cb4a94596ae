//! A chunked-mode client spoken by hand, for the tests in `chunked_protocol.rs`: archives,
//! chunks, blobs and index checksums from the datastore crate, requests on a raw session.

use std::collections::BTreeSet;
use std::time::Duration;

use api_client::Session;
use api_client::http::{error_from_response, full_body, read_ok_body};
use datastore::chunker::ChunkerParams;
use datastore::digest::Digest;
use datastore::index::{DynamicIndex, IndexChecksum};
use e2e::harness::{ServerOptions, TestServer};
use hyper::Method;
use protocol::routes::{self, BACKUP_PROTOCOL, encode_query};
use protocol::types::{
    AppendChunk, ArchiveUploadResponse, ChunkerConfig, DataResponse, IndexAppend, IndexCreated,
};

pub(crate) const T0: i64 = 1_700_000_000;

pub(crate) fn server() -> TestServer {
    TestServer::start_with(ServerOptions {
        chunk_size_kib: 16,
        ..ServerOptions::default()
    })
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Deterministic incompressible bytes.
pub(crate) fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A tar archive of two files, as the client would stream it.
pub(crate) fn archive(seed: u64) -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
    let files = vec![
        ("big.bin".to_string(), noise(seed, 150_000)),
        (
            "small.txt".to_string(),
            format!("seed {seed}\n").into_bytes(),
        ),
    ];
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in &files {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_600_000_000);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, name, &data[..]).unwrap();
    }
    (builder.into_inner().unwrap(), files)
}

/// The archive cut with the server's chunker: (digest, data) per chunk.
pub(crate) fn chunks(params: ChunkerParams, data: &[u8]) -> Vec<(Digest, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    for len in datastore::chunker::chunk_lengths(params, data) {
        let chunk = data[at..at + len].to_vec();
        at += len;
        out.push((Digest::of(&chunk), chunk));
    }
    out
}

/// What the client reports at close: count, size and index checksum.
pub(crate) fn close_query(wid: u64, chunks: &[(Digest, Vec<u8>)]) -> String {
    let mut csum = IndexChecksum::new();
    let mut end = 0u64;
    for (digest, data) in chunks {
        end += data.len() as u64;
        csum.add(end, digest);
    }
    encode_query(&[
        ("wid", &wid.to_string()),
        ("chunk-count", &chunks.len().to_string()),
        ("size", &end.to_string()),
        ("csum", &csum.finish().to_hex()),
    ])
}

pub(crate) fn append_body(chunks: &[(Digest, Vec<u8>)]) -> Vec<u8> {
    serde_json::to_vec(&IndexAppend {
        chunks: chunks
            .iter()
            .map(|(digest, data)| AppendChunk {
                digest: digest.to_hex(),
                size: data.len() as u64,
            })
            .collect(),
    })
    .unwrap()
}

/// One answer: status, body (200) or the error message (otherwise), headers.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
    pub(crate) message: String,
    pub(crate) headers: hyper::HeaderMap,
}

impl Reply {
    pub(crate) fn refused(&self, needle: &str) {
        assert_eq!(
            self.status, 400,
            "expected a 400 with {needle:?}: {}",
            self.message
        );
        assert!(
            self.message.contains(needle),
            "{needle:?} not in {}",
            self.message
        );
    }
}

pub(crate) async fn call(
    session: &mut Session,
    method: Method,
    path: &str,
    body: Vec<u8>,
) -> Reply {
    let response = session.send(method, path, full_body(body)).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    if status == 200 {
        let body = read_ok_body(response, 64 << 20).await.unwrap().to_vec();
        Reply {
            status,
            body,
            message: String::new(),
            headers,
        }
    } else {
        let message = format!("{:#}", error_from_response(response).await);
        Reply {
            status,
            body: Vec::new(),
            message,
            headers,
        }
    }
}

pub(crate) async fn open(server: &TestServer, id: &str, time: i64) -> Session {
    let query = encode_query(&[
        ("store", TestServer::STORE),
        ("backup-type", "host"),
        ("backup-id", id),
        ("backup-time", &time.to_string()),
    ]);
    // The group is free once the server has ended the previous session.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match server
            .api_client()
            .open_session(routes::BACKUP.path, &query, BACKUP_PROTOCOL)
            .await
        {
            Ok(session) => return session,
            Err(err)
                if format!("{err:#}").contains("already running")
                    && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!("opening a session of {id} at {time}: {err:#}"),
        }
    }
}

pub(crate) async fn create_index(session: &mut Session) -> u64 {
    let reply = call(
        session,
        Method::POST,
        "/index?archive-name=root.tar",
        vec![],
    )
    .await;
    data!(reply, IndexCreated).wid
}

pub(crate) async fn upload(session: &mut Session, wid: u64, digest: &Digest, data: &[u8]) -> Reply {
    let blob = datastore::blob::encode(data, true);
    let query = encode_query(&[
        ("wid", &wid.to_string()),
        ("digest", &digest.to_hex()),
        ("size", &data.len().to_string()),
        ("encoded-size", &blob.len().to_string()),
    ]);
    call(session, Method::POST, &format!("/chunk?{query}"), blob).await
}

pub(crate) async fn previous(session: &mut Session) -> Reply {
    call(
        session,
        Method::GET,
        "/previous-index?archive-name=root.tar",
        vec![],
    )
    .await
}

pub(crate) async fn finish(session: &mut Session) -> Reply {
    call(
        session,
        Method::POST,
        "/finish",
        br#"{"archives":["root.tar"]}"#.to_vec(),
    )
    .await
}

/// A whole chunked backup: uploads the chunks the parent does not have (all of them
/// concurrently), appends all, closes and finishes. Returns the close answer and snapshot.
pub(crate) async fn chunked_backup(
    server: &TestServer,
    id: &str,
    time: i64,
    chunks: &[(Digest, Vec<u8>)],
) -> (ArchiveUploadResponse, String) {
    let mut session = open(server, id, time).await;
    let reply = previous(&mut session).await;
    let known: BTreeSet<Digest> = if reply.status == 200 {
        let index = DynamicIndex::decode(&reply.body).unwrap();
        index.entries.iter().map(|e| e.digest).collect()
    } else {
        assert_eq!(reply.status, 404, "{}", reply.message);
        BTreeSet::new()
    };
    let wid = create_index(&mut session).await;
    let mut uploads = Vec::new();
    let mut sent = BTreeSet::new();
    for (digest, data) in chunks {
        if known.contains(digest) || !sent.insert(*digest) {
            continue;
        }
        let mut session = session.clone();
        let (digest, data) = (*digest, data.clone());
        uploads.push(tokio::spawn(async move {
            upload(&mut session, wid, &digest, &data).await.status
        }));
    }
    for upload in uploads {
        assert_eq!(upload.await.unwrap(), 200);
    }
    for batch in chunks.chunks(3) {
        let reply = call(
            &mut session,
            Method::PUT,
            &format!("/index?wid={wid}"),
            append_body(batch),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.message);
    }
    let path = format!("/index/close?{}", close_query(wid, chunks));
    let closed = data!(
        call(&mut session, Method::POST, &path, vec![]).await,
        ArchiveUploadResponse
    );
    let snapshot = data!(finish(&mut session).await, serde_json::Value)["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    (closed, snapshot)
}

pub(crate) fn chunker_params(server: &TestServer, rt: &tokio::runtime::Runtime) -> ChunkerParams {
    let path = routes::fill_path(
        routes::DATASTORE_CHUNKER.path,
        &[("store", TestServer::STORE)],
    );
    let config: ChunkerConfig = rt.block_on(server.api_client().get_json(&path)).unwrap();
    let params = ChunkerParams::new(config.avg as usize).unwrap();
    assert_eq!(
        (config.min, config.max),
        (params.min as u64, params.max as u64)
    );
    params
}

/// Names of the files in the chunk store.
pub(crate) fn chunk_files(server: &TestServer) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for prefix in std::fs::read_dir(server.store_path.join(".chunks")).unwrap() {
        for file in std::fs::read_dir(prefix.unwrap().path()).unwrap() {
            out.insert(file.unwrap().file_name().to_string_lossy().into_owned());
        }
    }
    out
}

pub(crate) fn chunk_path(server: &TestServer, digest: &Digest) -> std::path::PathBuf {
    let hex = digest.to_hex();
    server.store_path.join(".chunks").join(&hex[..4]).join(hex)
}

/// The result of the newest backup task of a group, once it ended.
pub(crate) fn backup_task(server: &TestServer, id: &str) -> serde_json::Value {
    let worker = format!("host/{id}");
    let mut found = serde_json::Value::Null;
    server.wait_for(Duration::from_secs(10), "the backup task's end", || {
        let tasks = server.admin_json(&["task", "list", "--type", "backup"]);
        found = tasks
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["worker-id"] == worker.as_str())
            .cloned()
            .unwrap_or_default();
        found["status"].as_str().is_some_and(|s| s != "running")
    });
    found
}

pub(crate) fn snapshot_names(server: &TestServer) -> Vec<String> {
    let mut names: Vec<String> = server
        .snapshots()
        .iter()
        .map(|s| s["snapshot"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

pub(crate) fn set_verify_failed(server: &TestServer, snapshot: &str) {
    use datastore::manifest::{BackupManifest, VerifyOutcome, VerifyState};
    let path = server.store_path.join(snapshot).join("index.json.blob");
    let mut manifest = BackupManifest::from_blob(&std::fs::read(&path).unwrap()).unwrap();
    manifest.set_verify_state(&VerifyState {
        state: VerifyOutcome::Failed,
        upid: "UPID:test".into(),
        time: T0,
    });
    std::fs::write(&path, manifest.to_blob()).unwrap();
}
