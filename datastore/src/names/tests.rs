//! Table tests of name validation.

use super::*;

/// Names that no validator may accept: traversal, separators, NUL, hidden, option-like.
const HOSTILE: &[&str] = &[
    "", ".", "..", "../x", "a/b", "/a", "a\0b", ".hidden", "-rf", "a b", "a\\b", "ä", "a\nb",
];

#[test]
fn store_names() {
    for good in ["abc", "store1", "_x_", "a.b-c", "A23", &"s".repeat(32)] {
        assert!(validate_store_name(good).is_ok(), "{good:?}");
    }
    for bad in HOSTILE.iter().copied().chain(["ab", "a", &"s".repeat(33)]) {
        assert!(validate_store_name(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn backup_ids() {
    for good in [
        "a",
        "web1",
        "_",
        "0",
        "host.example.com",
        "a..b",
        &"i".repeat(128),
    ] {
        assert!(validate_backup_id(good).is_ok(), "{good:?}");
    }
    for bad in HOSTILE.iter().copied().chain([&"i".repeat(129)[..]]) {
        assert!(validate_backup_id(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn backup_types() {
    for (s, t) in [
        ("host", BackupType::Host),
        ("vm", BackupType::Vm),
        ("ct", BackupType::Ct),
    ] {
        assert_eq!(s.parse::<BackupType>().unwrap(), t);
        assert_eq!(t.to_string(), s);
    }
    for bad in ["", "Host", "HOST", "lxc", "host/", "ns"] {
        assert!(bad.parse::<BackupType>().is_err(), "{bad:?}");
    }
}

#[test]
fn namespaces() {
    let root: Namespace = "".parse().unwrap();
    assert!(root.is_root());
    assert_eq!(root, Namespace::root());
    assert_eq!(root.rel_path(), PathBuf::new());
    assert_eq!(root.to_string(), "");

    let ns: Namespace = "a/b".parse().unwrap();
    assert!(!ns.is_root());
    assert_eq!(ns.components(), ["a", "b"]);
    assert_eq!(ns.to_string(), "a/b");
    assert_eq!(ns.rel_path(), PathBuf::from("ns/a/ns/b"));
    assert_eq!(root.child("a").unwrap().child("b").unwrap(), ns);

    let deepest = ["n"; MAX_NAMESPACE_DEPTH].join("/");
    assert!(Namespace::parse(&deepest).is_ok());
    assert!(Namespace::parse(&format!("{deepest}/n")).is_err());
    assert!(Namespace::parse(&deepest).unwrap().child("n").is_err());

    for bad in [
        "/", "a/", "/a", "a//b", "a/../b", "..", ".", "a/.b", "a\0", "a/-b",
    ] {
        assert!(Namespace::parse(bad).is_err(), "{bad:?}");
    }
    let long = ["x".repeat(100), "y".repeat(100), "z".repeat(100)].join("/");
    assert!(Namespace::parse(&long).is_err());
}

#[test]
fn namespace_serde_is_a_string() {
    let ns: Namespace = "a/b".parse().unwrap();
    assert_eq!(serde_json::to_string(&ns).unwrap(), "\"a/b\"");
    assert_eq!(serde_json::from_str::<Namespace>("\"a/b\"").unwrap(), ns);
    assert!(serde_json::from_str::<Namespace>("\"../b\"").is_err());
}

#[test]
fn archive_names() {
    let cases = [
        ("root.tar", ArchiveKind::Tar),
        ("_.tar", ArchiveKind::Tar),
        ("catalog.blob", ArchiveKind::Blob),
        ("client.log.blob", ArchiveKind::Blob),
        ("root.mtar", ArchiveKind::MetaTar),
        ("root.ptar", ArchiveKind::PayloadTar),
    ];
    for (name, kind) in cases {
        assert_eq!(validate_archive_name(name).unwrap(), kind, "{name}");
    }
    let long_ok = format!("{}.tar", "a".repeat(60));
    assert_eq!(validate_archive_name(&long_ok).unwrap(), ArchiveKind::Tar);
    let too_long = format!("{}.tar", "a".repeat(61));
    let bad = [
        MANIFEST_NAME,
        "root",
        "root.pxar",
        ".tar",
        "-x.tar",
        "a/b.tar",
        "../x.blob",
        "x.tar.didx",
        &too_long,
    ];
    for name in HOSTILE.iter().copied().chain(bad) {
        assert!(validate_archive_name(name).is_err(), "{name:?}");
    }
}

#[test]
fn archive_file_names() {
    assert_eq!(archive_file_name("root.tar"), "root.tar.didx");
    assert_eq!(archive_file_name("x.blob"), "x.blob");
    assert_eq!(archive_file_name("root.mtar"), "root.mtar.didx");
    assert_eq!(archive_file_name("root.ptar"), "root.ptar.didx");
    assert_eq!(
        split_archive_names("root.tar"),
        Some(("root.mtar".into(), "root.ptar".into()))
    );
    assert_eq!(split_archive_names("x.blob"), None);
    let padding = padding_blob_name("root.tar").unwrap();
    assert_eq!(padding, "root.ptar.padding.blob");
    assert_eq!(validate_archive_name(&padding).unwrap(), ArchiveKind::Blob);
    assert_eq!(padding_blob_name("x.blob"), None);
}

#[test]
fn split_pairs() {
    let ok: [&[&str]; 4] = [
        &["root.tar", "catalog.blob"],
        &["root.mtar", "root.ptar"],
        &["root.mtar", "root.ptar", "etc.tar"],
        &[],
    ];
    for names in ok {
        assert_eq!(
            check_split_pairs(names.iter().copied()),
            Ok(()),
            "{names:?}"
        );
    }
    let bad: [(&[&str], &str); 3] = [
        (&["root.mtar"], "not its payload (root.ptar)"),
        (
            &["root.ptar", "etc.mtar", "etc.ptar"],
            "not its metadata (root.mtar)",
        ),
        (
            &["root.tar", "root.mtar", "root.ptar"],
            "both as one tar stream and split",
        ),
    ];
    for (names, message) in bad {
        let err = check_split_pairs(names.iter().copied()).unwrap_err();
        assert!(err.contains(message), "{names:?}: {err}");
    }
}

#[test]
fn snapshot_file_names() {
    for good in [
        MANIFEST_NAME,
        "root.tar.didx",
        "root.mtar.didx",
        "root.ptar.didx",
        "x.blob",
        "catalog.blob",
    ] {
        assert!(validate_snapshot_file_name(good).is_ok(), "{good:?}");
    }
    let bad = [
        "root.tar",
        "x.blob.didx",
        "index.json",
        "index.json.blob.didx",
        ".didx",
        "x/y.blob",
        "../x.blob",
        "x.didx",
    ];
    for name in HOSTILE.iter().copied().chain(bad) {
        assert!(validate_snapshot_file_name(name).is_err(), "{name:?}");
    }
}

#[test]
fn error_message_names_the_input() {
    let err = validate_backup_id("a/b").unwrap_err();
    assert_eq!(err.what, "backup id");
    assert!(err.to_string().contains("\"a/b\""), "{err}");
    let err = validate_backup_id(&"x".repeat(10_000)).unwrap_err();
    assert!(err.name.len() <= 128);
}
