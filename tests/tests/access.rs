//! End to end: users, tokens, roles and ACLs. Every route of the route table is tried with
//! every role; backup tokens see and touch only their own groups and namespaces; auditors
//! list but cannot read; password logins give tickets and are rate-limited.

use std::io::Write;
use std::process::{Command, Stdio};

use api_client::HttpClient;
use backup_server::access::Role;
use backup_server::api::privileges::{ROUTE_REQUIREMENTS, Requirement};
use e2e::harness::{TestServer, run_ok};
use protocol::routes::{Method, fill_path};

/// Creates `user` (optionally with a password), its token `user!t`, and grants both `role`
/// on `path`. Returns the token id and secret.
fn principal(
    server: &TestServer,
    user: &str,
    role: &str,
    path: &str,
    password: Option<&str>,
) -> (String, String) {
    let mut add = server.admin(&["user", "add", user]);
    if let Some(password) = password {
        add.arg("--password-stdin").stdin(Stdio::piped());
        let mut child = add.stdout(Stdio::null()).spawn().unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        assert!(child.wait().unwrap().success());
    } else {
        run_ok(&mut add);
    }
    let token = server.admin_json(&["token", "add", user, "t"]);
    let token_id = token["tokenid"].as_str().unwrap().to_string();
    for auth_id in [user, token_id.as_str()] {
        run_ok(&mut server.admin(&["acl", "set", path, role, "--auth-id", auth_id]));
    }
    (token_id, token["secret"].as_str().unwrap().to_string())
}

fn http_as(server: &TestServer, token_id: &str, secret: &str) -> HttpClient {
    let (host, port) = server.addr.rsplit_once(':').unwrap();
    let address = api_client::http::ServerAddress {
        host: host.into(),
        port: port.parse().unwrap(),
    };
    HttpClient::new(
        address,
        token_id.into(),
        secret.into(),
        Some(server.fingerprint.parse().unwrap()),
    )
    .unwrap()
}

fn client_as(server: &TestServer, token_id: &str, secret: &str) -> Command {
    let mut cmd = server.client();
    cmd.env(
        "BACKUP_REPOSITORY",
        format!("{token_id}@{}:{}", server.addr, TestServer::STORE),
    )
    .env("BACKUP_PASSWORD", secret);
    cmd
}

fn to_hyper(method: Method) -> hyper::Method {
    match method {
        Method::Get => hyper::Method::GET,
        Method::Post => hyper::Method::POST,
        Method::Put => hyper::Method::PUT,
        Method::Delete => hyper::Method::DELETE,
    }
}

#[test]
fn every_route_checks_its_privilege_for_every_role() {
    let server = TestServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut checked = 0;
    for (i, role) in Role::ALL.iter().enumerate() {
        let user = format!("role{i}@local");
        let (token_id, secret) = principal(&server, &user, &role.to_string(), "/", None);
        let http = http_as(&server, &token_id, &secret);
        for (route, requirement) in ROUTE_REQUIREMENTS {
            let needed = match requirement {
                Requirement::Public => continue,
                Requirement::Authenticated => None,
                Requirement::System(p)
                | Requirement::Datastore(p)
                | Requirement::DatastoreBody(p) => Some(*p),
            };
            let path = fill_path(
                route.path,
                &[
                    ("store", TestServer::STORE),
                    ("upid", "UPID:localhost:00000001:00000001:00000001:gc:-:"),
                    ("id", "nojob"),
                    ("userid", &user),
                    ("name", "matrix"),
                ],
            );
            // Session routes name their store in the query.
            let path = match requirement {
                Requirement::Datastore(_) if !route.path.contains("{store}") => {
                    format!("{path}?store={}", TestServer::STORE)
                }
                _ => path,
            };
            let status = rt
                .block_on(http.request(to_hyper(route.method), &path, Some(&serde_json::json!({}))))
                .unwrap()
                .status();
            let forbidden = needed.is_some_and(|p| !role.privs().intersects(p));
            assert_eq!(
                status == 403,
                forbidden,
                "{role} on {:?} {}: got {status}",
                route.method,
                route.path
            );
            checked += 1;
        }
    }
    assert!(checked >= 7 * 25, "{checked} checks");
}

#[test]
fn backup_tokens_stay_in_their_own_groups_and_auditors_cannot_read() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("f"), b"data").unwrap();
    let spec = format!("root.tar:{}", work.path().display());
    let store_path = format!("/datastore/{}", TestServer::STORE);
    let alice = principal(&server, "alice@local", "DatastoreBackup", &store_path, None);
    let bob = principal(&server, "bob@local", "DatastoreBackup", &store_path, None);
    let carol = principal(&server, "carol@local", "Audit", "/", None);

    let json = |cmd: &mut Command| -> serde_json::Value {
        serde_json::from_slice(&run_ok(cmd.arg("--output-format").arg("json")).stdout).unwrap()
    };
    let a =
        json(client_as(&server, &alice.0, &alice.1).args(["backup", &spec, "--backup-id", "a"]));
    let b = json(client_as(&server, &bob.0, &bob.1).args(["backup", &spec, "--backup-id", "b"]));
    let (a_snap, b_snap) = (
        a["snapshot"].as_str().unwrap(),
        b["snapshot"].as_str().unwrap(),
    );

    // Alice lists only her group, and can neither read, overwrite nor forget Bob's.
    let listed = json(client_as(&server, &alice.0, &alice.1).arg("snapshots"));
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["snapshot"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec![a_snap]);
    let refused = |cmd: &mut Command| {
        let output = cmd.output().unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert!(stderr.contains("403"), "{stderr}");
    };
    refused(client_as(&server, &alice.0, &alice.1).args([
        "restore",
        b_snap,
        "root.tar",
        work.path().join("x").to_str().unwrap(),
    ]));
    refused(client_as(&server, &alice.0, &alice.1).args(["backup", &spec, "--backup-id", "b"]));
    refused(client_as(&server, &alice.0, &alice.1).args(["snapshot", "forget", b_snap]));
    let http = http_as(&server, &alice.0, &alice.1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let gc = fill_path(
        protocol::routes::START_GC.path,
        &[("store", TestServer::STORE)],
    );
    let status = rt
        .block_on(http.request(hyper::Method::POST, &gc, None::<&()>))
        .unwrap()
        .status();
    assert_eq!(status, 403);
    // She may restore her own.
    run_ok(client_as(&server, &alice.0, &alice.1).args([
        "restore",
        a_snap,
        "root.tar",
        work.path().join("mine").to_str().unwrap(),
    ]));

    // An admin hands Bob's group to Alice's token: now she may back up into it.
    let owner = format!(
        "{}?backup-type=host&backup-id=b",
        fill_path(
            protocol::routes::GROUP_OWNER.path,
            &[("store", TestServer::STORE)]
        )
    );
    let body = serde_json::json!({ "owner": alice.0 });
    let status = rt
        .block_on(http.request(hyper::Method::PUT, &owner, Some(&body)))
        .unwrap()
        .status();
    assert_eq!(status, 403, "a backup token may not change owners");
    let status = rt
        .block_on(
            server
                .api_client()
                .request(hyper::Method::PUT, &owner, Some(&body)),
        )
        .unwrap()
        .status();
    assert_eq!(status, 200);
    run_ok(client_as(&server, &alice.0, &alice.1).args(["backup", &spec, "--backup-id", "b"]));

    // The auditor lists everything but cannot read archives or chunks.
    let listed = json(client_as(&server, &carol.0, &carol.1).arg("snapshots"));
    assert_eq!(
        listed.as_array().unwrap().len(),
        3,
        "a, b and alice's backup into b"
    );
    refused(client_as(&server, &carol.0, &carol.1).args([
        "restore",
        a_snap,
        "root.tar",
        work.path().join("y").to_str().unwrap(),
    ]));

    // A token limited to one namespace cannot escape it.
    run_ok(&mut server.admin(&["namespace", "create", TestServer::STORE, "teamd"]));
    let dave = principal(
        &server,
        "dave@local",
        "DatastoreBackup",
        &format!("{store_path}/teamd"),
        None,
    );
    refused(client_as(&server, &dave.0, &dave.1).args(["backup", &spec, "--backup-id", "d"]));
    run_ok(client_as(&server, &dave.0, &dave.1).args([
        "backup",
        &spec,
        "--backup-id",
        "d",
        "--ns",
        "teamd",
    ]));
}

#[test]
fn password_logins_give_tickets_and_failures_are_rate_limited() {
    let server = TestServer::start();
    principal(
        &server,
        "erin@local",
        "Audit",
        "/",
        Some("correct horse battery"),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = server.api_client();
    let login = |password: &str| {
        let body = serde_json::json!({"username": "erin@local", "password": password});
        rt.block_on(async {
            let response = http
                .request(
                    hyper::Method::POST,
                    protocol::routes::LOGIN.path,
                    Some(&body),
                )
                .await
                .unwrap();
            let status = response.status();
            let body = api_client::http::read_ok_body(response, 1 << 20).await.ok();
            (status, body)
        })
    };
    let (status, body) = login("correct horse battery");
    assert_eq!(status, 200);
    let body: serde_json::Value = serde_json::from_slice(&body.unwrap()).unwrap();
    let ticket = body["data"]["ticket"].as_str().unwrap().to_string();
    assert!(body["data"]["csrf-token"].is_string());

    // The ticket authenticates the user.
    let output = Command::new("curl")
        .args([
            "-sk",
            "-H",
            &format!("Authorization: BackupAuthTicket {ticket}"),
        ])
        .arg(format!("https://{}/api2/json/version", server.addr))
        .output();
    if let Ok(output) = output {
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(text.contains("erin@local"), "{text}");
    } else {
        println!("curl not installed: ticket use checked by the unit tests only");
    }

    for _ in 0..5 {
        assert_eq!(login("wrong").0, 401);
    }
    assert_eq!(
        login("correct horse battery").0,
        429,
        "the address is locked out after 5 failures"
    );
    assert!(
        server.log().contains("failed login"),
        "failed logins are logged"
    );
}

#[test]
fn bad_input_on_access_endpoints_gets_400_and_changes_nothing() {
    let server = TestServer::start();
    let http = server.api_client();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let before_users = std::fs::read(server.config_dir.join("users.json")).ok();
    let before_acl = std::fs::read(server.config_dir.join("acl.json")).unwrap();
    let long = "x".repeat(300);
    let cases: Vec<(hyper::Method, String, serde_json::Value)> = vec![
        (
            hyper::Method::POST,
            "/api2/json/access/users".into(),
            serde_json::json!({"userid": "../evil@local"}),
        ),
        (
            hyper::Method::POST,
            "/api2/json/access/users".into(),
            serde_json::json!({"userid": format!("{long}@local")}),
        ),
        (
            hyper::Method::POST,
            "/api2/json/access/users".into(),
            serde_json::json!({"userid": "a@local", "bogus": 1}),
        ),
        (
            hyper::Method::POST,
            "/api2/json/access/users".into(),
            serde_json::json!({"userid": 42}),
        ),
        (
            hyper::Method::POST,
            "/api2/json/access/users".into(),
            serde_json::json!({"userid": "a@local", "password": "short"}),
        ),
        (
            hyper::Method::PUT,
            "/api2/json/access/acl".into(),
            serde_json::json!({"path": "/datastore/../x", "role": "Admin", "auth-id": "a@local"}),
        ),
        (
            hyper::Method::PUT,
            "/api2/json/access/acl".into(),
            serde_json::json!({"path": "/", "role": "God", "auth-id": "a@local"}),
        ),
        (
            hyper::Method::PUT,
            "/api2/json/access/acl".into(),
            serde_json::json!({"path": "/", "role": "Admin", "auth-id": "a\u{0}b@local"}),
        ),
        (
            hyper::Method::POST,
            "/api2/json/access/users/a%2F..%40local/token/t".into(),
            serde_json::json!({}),
        ),
    ];
    for (method, path, body) in cases {
        let status = rt
            .block_on(http.request(method.clone(), &path, Some(&body)))
            .unwrap()
            .status();
        assert_eq!(status, 400, "{method} {path} {body}");
    }
    assert_eq!(
        std::fs::read(server.config_dir.join("users.json")).ok(),
        before_users
    );
    assert_eq!(
        std::fs::read(server.config_dir.join("acl.json")).unwrap(),
        before_acl
    );
}

#[test]
fn a_disabled_user_takes_its_tokens_with_it() {
    let server = TestServer::start();
    let (token, secret) = principal(&server, "frank@local", "Audit", "/", None);
    let http = http_as(&server, &token, &secret);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let version = || {
        rt.block_on(http.request(
            hyper::Method::GET,
            protocol::routes::VERSION.path,
            None::<&()>,
        ))
        .unwrap()
        .status()
    };
    assert_eq!(version(), 200);
    run_ok(&mut server.admin(&["user", "update", "frank@local", "--enable", "false"]));
    assert_eq!(version(), 401);
    run_ok(&mut server.admin(&["user", "update", "frank@local", "--enable", "true"]));
    assert_eq!(version(), 200);
    run_ok(&mut server.admin(&["user", "update", "frank@local", "--expire", "1"]));
    assert_eq!(version(), 401, "an expired user's token is refused");
    run_ok(&mut server.admin(&["user", "remove", "frank@local"]));
    run_ok(&mut server.admin(&["user", "add", "frank@local"]));
    assert_eq!(version(), 401, "removing a user removes its tokens");
}
