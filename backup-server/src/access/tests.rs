//! Tests of id and path validation, and of the facade's files (the privilege evaluation
//! table is beside it in `acl.rs`).

use super::acl::entry;
use super::privileges::*;
use super::*;

use datastore::names::Namespace;

fn path(s: &str) -> AclPath {
    s.parse().unwrap()
}

#[test]
fn user_ids() {
    let u: Userid = "backup-1.x@pbs_realm".parse().unwrap();
    assert_eq!((u.name(), u.realm()), ("backup-1.x", "pbs_realm"));
    assert_eq!(u.to_string(), "backup-1.x@pbs_realm");
    assert!(Userid::root().is_root());
    assert_eq!(ROOT.parse::<Userid>().unwrap(), Userid::root());
    let long_name = format!("{}@local", "a".repeat(64));
    assert!(long_name.parse::<Userid>().is_ok());
    let long_realm = format!("a@{}", "r".repeat(32));
    assert!(long_realm.parse::<Userid>().is_ok());
    for bad in [
        "",
        "root",
        "@local",
        "root@",
        "a@b@c",
        ".hidden@local",
        "-opt@local",
        "../x@local",
        "a/b@local",
        "a b@local",
        "a\0@local",
        "a@re.alm",
        "a!t@local",
        "ü@local",
        &format!("{}@local", "a".repeat(65)),
        &format!("a@{}", "r".repeat(33)),
    ] {
        assert!(bad.parse::<Userid>().is_err(), "{bad:?}");
    }
}

#[test]
fn auth_ids() {
    let user: Authid = "alice@local".parse().unwrap();
    assert!(!user.is_token());
    assert_eq!(user.to_string(), "alice@local");
    let token: Authid = "alice@local!backup_job-1".parse().unwrap();
    assert!(token.is_token());
    assert_eq!(token.user(), user.user());
    assert_eq!(token.token_name(), Some("backup_job-1"));
    assert_eq!(token.to_string(), "alice@local!backup_job-1");
    assert!(Authid::from(Userid::root()).is_root());
    assert!(!"root@local!admin".parse::<Authid>().unwrap().is_root());
    for bad in [
        "alice@local!",
        "alice@local!a!b",
        "alice!t",
        "alice@local!.t",
        "a@l!t\0",
    ] {
        assert!(bad.parse::<Authid>().is_err(), "{bad:?}");
    }
    let json = serde_json::to_string(&token).unwrap();
    assert_eq!(json, "\"alice@local!backup_job-1\"");
    assert_eq!(serde_json::from_str::<Authid>(&json).unwrap(), token);
    assert!(serde_json::from_str::<Authid>("\"nope\"").is_err());
}

#[test]
fn acl_paths() {
    for good in [
        "/",
        "/datastore",
        "/datastore/store1",
        "/datastore/store1/a",
        "/datastore/store1/a/b/c/d/e/f/g",
    ] {
        let path: AclPath = good.parse().unwrap();
        assert_eq!(path.to_string(), good);
    }
    let deep: AclPath = "/datastore/s1x/a/b".parse().unwrap();
    assert_eq!(deep.components(), ["datastore", "s1x", "a", "b"]);
    let chain: Vec<String> = deep.ancestors().map(|p| p.to_string()).collect();
    assert_eq!(
        chain,
        [
            "/datastore/s1x/a/b",
            "/datastore/s1x/a",
            "/datastore/s1x",
            "/datastore",
            "/"
        ]
    );
    assert!(deep.is_below(&AclPath::datastores()));
    assert!(!deep.is_below(&deep));
    assert_eq!(deep.parent().unwrap().to_string(), "/datastore/s1x/a");
    assert_eq!(AclPath::root().parent(), None);
    let ns = Namespace::parse("a/b").unwrap();
    assert_eq!(AclPath::datastore("s1x", &ns).unwrap(), deep);
    let max: AclPath = "/datastore/s1x/a/b/c/d/e/f/g".parse().unwrap();
    assert!(!max.can_have_children());
    assert!(deep.can_have_children());
    for bad in [
        "",
        "datastore",
        "//",
        "/datastore/",
        "/datastore//a",
        "/datastore/s1x/",
        "/datastore/..",
        "/datastore/s1x/..",
        "/datastore/s1x/../../etc",
        "/../datastore",
        "/system",
        "/datastore/s1",
        "/datastore/.hidden",
        "/datastore/s1x/a\0b",
        "/datastore/s1x/a/b/c/d/e/f/g/h",
        &format!("/datastore/{}", "s".repeat(33)),
        &format!("/datastore/s1x/{}", "n".repeat(129)),
    ] {
        assert!(bad.parse::<AclPath>().is_err(), "{bad:?}");
    }
}

fn config_dir() -> (tempfile::TempDir, ConfigDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = ConfigDir::new(dir.path());
    (dir, config)
}

#[test]
fn users_and_acl_round_trip_with_digests() {
    let (_dir, config) = config_dir();
    let empty = AccessConfig::load(&config).unwrap();
    assert!(empty.users.data.users.is_empty() && empty.acl.data.entries().is_empty());
    let alice: Userid = "alice@local".parse().unwrap();
    let saved = update_users(&config, Some(&empty.users.digest), |file| {
        let mut user = UserConfig::new(alice.clone());
        user.password_hash = Some(users::hash_password("alice's password").unwrap());
        user.comment = Some("ops".into());
        file.users.push(user);
        Ok(())
    })
    .unwrap();
    update_acl(&config, Some(&empty.acl.digest), |acl| {
        acl.set(entry(
            "/datastore/st1",
            "alice@local",
            Role::DatastoreAdmin,
            true,
        ));
        Ok(())
    })
    .unwrap();
    let loaded = AccessConfig::load(&config).unwrap();
    assert_eq!(loaded.users.digest, saved.digest);
    assert_eq!(
        loaded.users.data.get(&alice).unwrap().comment.as_deref(),
        Some("ops")
    );
    let alice_id = Authid::from(alice.clone());
    assert!(
        loaded
            .check(&alice_id, &path("/datastore/st1/x"), DATASTORE_PRUNE)
            .is_ok()
    );
    let denied = loaded.check(&alice_id, &path("/"), SYS_AUDIT).unwrap_err();
    assert_eq!(
        denied.to_string(),
        "permission denied: alice@local needs Sys.Audit on /"
    );
    let raw = std::fs::read_to_string(config.path(USERS_FILE)).unwrap();
    assert!(raw.contains("\"password-hash\": \"$argon2id$") && !raw.contains("alice's password"));

    // A second admin still holding the first digests conflicts and changes nothing.
    let err = update_users(&config, Some(&empty.users.digest), |file| {
        file.users.clear();
        Ok(())
    })
    .unwrap_err();
    assert!(
        matches!(err, AccessError::Config(ConfigError::Conflict { .. })),
        "{err}"
    );
    let err = update_acl(&config, Some(&empty.acl.digest), |_| Ok(())).unwrap_err();
    assert!(matches!(
        err,
        AccessError::Config(ConfigError::Conflict { .. })
    ));
    assert_eq!(
        AccessConfig::load(&config).unwrap().users.digest,
        saved.digest
    );

    // A change's own error comes back as it was, and the file stays.
    let err = update_users(&config, None, |file| {
        file.users.push(UserConfig::new(alice.clone()));
        Ok(())
    })
    .unwrap_err();
    assert!(matches!(err, AccessError::Conflict(_)), "{err}");
    let err = update_users(&config, None, |file| {
        file.users.push(UserConfig {
            enable: false,
            ..UserConfig::new(Userid::root())
        });
        Ok(())
    })
    .unwrap_err();
    assert!(matches!(err, AccessError::RootProtected));
    assert_eq!(
        AccessConfig::load(&config).unwrap().users.digest,
        saved.digest
    );

    // Deleting the user takes its ACL entries along; root cannot be deleted.
    assert!(matches!(
        delete_user(&config, &Userid::root(), None),
        Err(AccessError::RootProtected)
    ));
    delete_user(&config, &alice, None).unwrap();
    assert!(matches!(
        delete_user(&config, &alice, None),
        Err(AccessError::NotFound { .. })
    ));
    let after = AccessConfig::load(&config).unwrap();
    assert!(after.users.data.users.is_empty() && after.acl.data.entries().is_empty());
}

#[test]
fn password_login_fails_alike_for_every_reason() {
    let (_dir, config) = config_dir();
    let now = 1_000;
    let hash = users::hash_password("good password").unwrap();
    update_users(&config, None, |file| {
        for (name, enable, expire) in [
            ("ok", true, None),
            ("off", false, None),
            ("old", true, Some(now)),
        ] {
            file.users.push(UserConfig {
                password_hash: Some(hash.clone()),
                enable,
                expire,
                ..UserConfig::new(format!("{name}@local").parse().unwrap())
            });
        }
        file.users
            .push(UserConfig::new("nopw@local".parse().unwrap()));
        Ok(())
    })
    .unwrap();
    let login = |user: &str, password: &str| {
        authenticate_password(&config, &user.parse().unwrap(), password, now)
    };
    assert!(login("ok@local", "good password").is_ok());
    let failures = [
        login("ok@local", "bad password"),
        login("off@local", "good password"),
        login("old@local", "good password"),
        login("nopw@local", "good password"),
        login("nopw@local", ""),
        login("ghost@local", "good password"),
    ];
    for failure in failures {
        let err = failure.unwrap_err();
        assert!(matches!(err, AccessError::InvalidCredentials));
        assert_eq!(err.to_string(), "authentication failed");
    }
}

/// `any_privs_below` looks only at paths with entries; compare it with OR-ing `privs` over
/// every path of a small universe that includes children without entries.
#[test]
fn any_privs_below_matches_brute_force() {
    let acl = AclTree::new(vec![
        acl::entry("/datastore", "u@local", Role::Audit, true),
        acl::entry("/datastore/st1", "u@local", Role::NoAccess, false),
        acl::entry("/datastore/st1/ns", "u@local", Role::DatastoreBackup, false),
        acl::entry("/datastore/st2", "u@local", Role::DatastoreReader, true),
        acl::entry("/", "u@local!t", Role::DatastoreAdmin, true),
        acl::entry("/datastore/st2/ns", "u@local!t", Role::NoAccess, true),
        acl::entry("/datastore/st1", "u@local!t", Role::NoAccess, false),
        acl::entry("/datastore/st1/ns", "v@local", Role::Admin, true),
    ]);
    let mut universe = vec![AclPath::root(), AclPath::datastores()];
    for store in ["st1", "st2", "st3"] {
        for ns in ["", "ns", "x", "ns/ns", "ns/x", "x/ns"] {
            universe.push(AclPath::datastore(store, &Namespace::parse(ns).unwrap()).unwrap());
        }
    }
    for auth_id in [
        "u@local",
        "u@local!t",
        "u@local!none",
        "v@local",
        "v@local!t",
    ] {
        let auth_id: Authid = auth_id.parse().unwrap();
        for at in &universe {
            let brute = universe
                .iter()
                .filter(|p| *p == at || p.is_below(at))
                .fold(NONE, |acc, p| acc | acl.privs(&auth_id, p));
            assert_eq!(
                acl.any_privs_below(&auth_id, at),
                brute,
                "{auth_id} below {at}"
            );
        }
    }
}
