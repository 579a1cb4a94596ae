//! End to end: `backup-client backup` with `--exclude`, `--exclude-file` and
//! `--one-file-system`; the restored tree holds exactly the paths that were not excluded,
//! with their content.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use e2e::harness::TestServer;

/// Creates each file (with its own path as content) and its parent directories.
fn touch(root: &Path, paths: &[&str]) {
    for path in paths {
        let full = root.join(path);
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(&full, path.as_bytes()).unwrap();
    }
}

/// Every path below `root`, relative, directories with a trailing `/`.
fn list(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in fs::read_dir(root.join(&rel)).unwrap() {
            let entry = entry.unwrap();
            let path = rel.join(entry.file_name());
            let name = path.to_str().unwrap().to_string();
            if entry.file_type().unwrap().is_dir() {
                out.insert(format!("{name}/"));
                stack.push(path);
            } else {
                out.insert(name);
            }
        }
    }
    out
}

fn backup_and_restore(server: &TestServer, source: &Path, id: &str, args: &[&str]) -> PathBuf {
    let spec = format!("root.tar:{}", source.display());
    let mut all = vec!["backup", spec.as_str(), "--backup-id", id];
    all.extend_from_slice(args);
    let summary = server.client_json(&all);
    assert_eq!(summary["errors"], 0, "{summary}");
    let snapshot = summary["snapshot"].as_str().unwrap();
    let target = source.with_file_name(format!("restore-{id}"));
    server.client_json(&["restore", snapshot, "root.tar", target.to_str().unwrap()]);
    target
}

#[test]
fn excludes_from_a_file_and_the_command_line_leave_out_exactly_what_they_match() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    touch(
        &source,
        &[
            "a.tmp",
            "important.tmp",
            "sub/b.tmp",
            "sub/important.tmp",
            "build/keep.txt",
            "build/out.o",
            "src/build",
            "src/main.rs",
            "notes.txt",
            "secret/key",
            "sub/secret",
            "logs/app.log",
            "logs/keep",
        ],
    );
    let exclude_file = work.path().join("excludes");
    fs::write(
        &exclude_file,
        "# temporary files\n*.tmp\n!important.tmp\n\n\
         # build output; nothing inside comes back\nbuild/\n!build/keep.txt\n",
    )
    .unwrap();

    let target = backup_and_restore(
        &server,
        &source,
        "excludes",
        &[
            "--exclude-file",
            exclude_file.to_str().unwrap(),
            "--exclude",
            "/secret",
            "--exclude",
            "*.log",
        ],
    );

    let expected: BTreeSet<String> = [
        "important.tmp",
        "logs/",
        "logs/keep",
        "notes.txt",
        "src/",
        "src/build",
        "src/main.rs",
        "sub/",
        "sub/important.tmp",
        "sub/secret",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(list(&target), expected);
    for path in expected.iter().filter(|p| !p.ends_with('/')) {
        assert_eq!(
            fs::read(target.join(path)).unwrap(),
            fs::read(source.join(path)).unwrap(),
            "{path}"
        );
    }
}

#[test]
fn a_bad_pattern_or_an_unreadable_exclude_file_fails_before_anything_is_sent() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    touch(work.path(), &["source/f"]);
    let spec = format!("root.tar:{}", work.path().join("source").display());
    let missing = work.path().join("no-such-file");
    let cases: [(&[&str], &str); 2] = [
        (&["--exclude", "*.[z-a]"], "*.[z-a]"),
        (
            &["--exclude-file", missing.to_str().unwrap()],
            "no-such-file",
        ),
    ];
    for (args, named) in cases {
        let output = server
            .client()
            .args(["backup", &spec, "--backup-id", "bad"])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
    assert!(server.snapshots().is_empty());
}

/// A tmpfs mounted for one test, unmounted when dropped (also when the test fails).
struct TmpfsMount(PathBuf);

impl TmpfsMount {
    /// Mounts a tmpfs on `at`, or says why it cannot.
    fn new(at: &Path) -> Result<Self, String> {
        if !nix::unistd::geteuid().is_root() {
            return Err("not running as root".into());
        }
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("running mount: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(TmpfsMount(at.to_path_buf()))
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn one_file_system_keeps_the_mount_point_and_false_descends_into_it() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    touch(&source, &["a"]);
    fs::create_dir(source.join("mnt")).unwrap();
    let _mount = match TmpfsMount::new(&source.join("mnt")) {
        Ok(mount) => mount,
        Err(reason) => {
            eprintln!("skipping the --one-file-system test: {reason}");
            return;
        }
    };
    touch(&source, &["mnt/inside/f"]);
    let server = TestServer::start();

    let target = backup_and_restore(&server, &source, "one-fs", &[]);
    let expected: BTreeSet<String> = ["a", "mnt/"].into_iter().map(String::from).collect();
    assert_eq!(list(&target), expected);

    let target = backup_and_restore(&server, &source, "all-fs", &["--one-file-system", "false"]);
    let expected: BTreeSet<String> = ["a", "mnt/", "mnt/inside/", "mnt/inside/f"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(list(&target), expected);
    assert_eq!(
        fs::read(target.join("mnt/inside/f")).unwrap(),
        b"mnt/inside/f"
    );
}
