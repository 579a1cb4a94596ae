//! End to end at the protocol level: malformed session requests get 400 with a message,
//! and leave the datastore exactly as it was.

use std::time::Duration;

use api_client::HttpClient;
use api_client::http::full_body;
use e2e::harness::{TestServer, disk_state};
use protocol::routes::{self, BACKUP_PROTOCOL, encode_query};

fn client(server: &TestServer) -> HttpClient {
    server.api_client()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn bad_names_get_400_and_change_nothing() {
    let server = TestServer::start();
    let client = client(&server);
    let before = disk_state(&server.store_path);
    let cases: &[&[(&str, &str)]] = &[
        &[("backup-type", "host"), ("backup-id", "../evil")],
        &[("backup-type", "host"), ("backup-id", "a/b")],
        &[("backup-type", "host"), ("backup-id", "a\0b")],
        &[("backup-type", "host"), ("backup-id", "")],
        &[("backup-type", "../host"), ("backup-id", "ok")],
        &[
            ("backup-type", "host"),
            ("backup-id", "ok"),
            ("ns", "../up"),
        ],
        &[("backup-type", "host"), ("backup-id", "ok"), ("ns", "/abs")],
        &[("backup-type", "host"), ("backup-id", "ok"), ("ns", "a\0b")],
        &[
            ("backup-type", "host"),
            ("backup-id", "ok"),
            ("unknown-field", "1"),
        ],
        &[
            ("backup-type", "host"),
            ("backup-id", "ok"),
            ("backup-time", "yesterday"),
        ],
    ];
    let rt = runtime();
    for case in cases {
        let mut pairs = vec![("store", TestServer::STORE)];
        pairs.extend_from_slice(case);
        let query = encode_query(&pairs);
        let err = rt
            .block_on(client.open_session(routes::BACKUP.path, &query, BACKUP_PROTOCOL))
            .err()
            .unwrap_or_else(|| panic!("{case:?} was accepted"));
        let msg = format!("{err:#}");
        assert!(msg.contains("400"), "{case:?}: {msg}");
    }
    let err = rt
        .block_on(client.open_session(
            routes::BACKUP.path,
            &encode_query(&[
                ("store", "../x"),
                ("backup-type", "host"),
                ("backup-id", "ok"),
            ]),
            BACKUP_PROTOCOL,
        ))
        .err()
        .expect("bad store accepted");
    assert!(format!("{err:#}").contains("400"), "{err:#}");
    assert_eq!(disk_state(&server.store_path), before);
}

#[test]
fn malformed_session_requests_get_400_and_change_nothing() {
    let server = TestServer::start();
    let client = client(&server);
    let before = disk_state(&server.store_path);
    let rt = runtime();
    rt.block_on(async {
        let query = encode_query(&[
            ("store", TestServer::STORE),
            ("backup-type", "host"),
            ("backup-id", "bad"),
        ]);
        let mut session = client
            .open_session(routes::BACKUP.path, &query, BACKUP_PROTOCOL)
            .await
            .unwrap();
        let post = hyper::Method::POST;
        let cases: Vec<(&str, &[u8])> = vec![
            ("/finish", b"not json"),
            ("/finish", br#"{"archives":["root.tar"],"extra":1}"#),
            ("/finish", br#"{"archives":[]}"#),
            ("/archive?archive-name=..%2Fx.tar", b"data"),
            ("/archive?archive-name=index.json.blob", b"data"),
            ("/archive", b"data"),
            ("/blob?file-name=log.blob", b"not a blob"),
            ("/blob?file-name=..%2Flog.blob", b"x"),
            ("/nonsense", b""),
        ];
        for (path, body) in cases {
            let response = session
                .send(post.clone(), path, full_body(body.to_vec()))
                .await
                .unwrap();
            let status = response.status();
            let text = api_client::http::read_ok_body(response, 1 << 20)
                .await
                .err()
                .map(|e| format!("{e:#}"));
            assert!(
                status == 400 || (path == "/nonsense" && status == 404),
                "{path}: got {status} {text:?}"
            );
            assert!(
                text.as_deref().is_some_and(|t| t.len() > 20),
                "{path}: no message: {text:?}"
            );
        }
    });
    drop(rt);
    server.wait_for(
        Duration::from_secs(10),
        "the abandoned session's cleanup",
        || disk_state(&server.store_path) == before,
    );
}
