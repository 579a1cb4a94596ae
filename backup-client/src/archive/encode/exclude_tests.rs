//! Excludes and file-system boundaries seen in the encoded archive: member names are read
//! back with the `tar` crate.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::archive::{ArchiveProgress, EncodeOptions, EncodeStats, ExcludeMatcher, ExcludeSource};

fn encode_names(root: &Path, options: &EncodeOptions) -> (Vec<String>, EncodeStats) {
    let mut out = Vec::new();
    let stats = super::encode(root, &mut out, &ArchiveProgress::default(), options).unwrap();
    let mut archive = tar::Archive::new(&out[..]);
    let names = archive
        .entries()
        .unwrap()
        .map(|entry| String::from_utf8(entry.unwrap().path_bytes().into_owned()).unwrap())
        .collect();
    (names, stats)
}

fn touch(root: &Path, paths: &[&str]) {
    for path in paths {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, path.to_string_lossy().as_bytes()).unwrap();
    }
}

#[test]
fn excluded_paths_are_not_members_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    touch(
        root,
        &[
            "a.log",
            "keep.log",
            "build/keep.txt",
            "build/out.o",
            "docs/build",
            "cache/f",
            "sub/cache/deep/g",
            "src/main.rs",
            "src/x.log",
            "src/target/t",
            "target/t",
        ],
    );
    let file_text = "# logs, but not keep.log\n*.log\n!keep.log\n\nbuild/\n!build/keep.txt\n";
    let options = EncodeOptions {
        excludes: ExcludeMatcher::parse(&[
            ExcludeSource::File {
                path: PathBuf::from("excludes"),
                text: file_text.into(),
            },
            ExcludeSource::Pattern("**/cache/**".into()),
            ExcludeSource::Pattern("/target".into()),
        ])
        .unwrap(),
        ..EncodeOptions::default()
    };
    let (names, stats) = encode_names(root, &options);
    assert_eq!(
        names,
        [
            "./",
            "cache/",
            "docs/",
            "docs/build",
            "keep.log",
            "src/",
            "src/main.rs",
            "src/target/",
            "src/target/t",
            "sub/",
            "sub/cache/",
        ]
    );
    // a.log, build/, cache/f, src/x.log, sub/cache/deep/, target/
    assert_eq!(stats.excluded, 6);
    assert!(stats.errors.is_empty(), "{:?}", stats.errors);
    assert_eq!(stats.entries, names.len() as u64);

    let (all, stats) = encode_names(root, &EncodeOptions::default());
    assert_eq!(all.len(), 21);
    assert_eq!(stats.excluded, 0);
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
fn one_file_system_archives_a_mount_point_but_not_its_content() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    touch(root, &["a", "z"]);
    fs::create_dir(root.join("mnt")).unwrap();
    let _mount = match TmpfsMount::new(&root.join("mnt")) {
        Ok(mount) => mount,
        Err(reason) => {
            eprintln!("skipping the --one-file-system test: {reason}");
            return;
        }
    };
    touch(root, &["mnt/inside/f"]);

    let (names, _) = encode_names(root, &EncodeOptions::default());
    assert_eq!(names, ["./", "a", "mnt/", "z"]);

    let across = EncodeOptions {
        one_file_system: false,
        ..EncodeOptions::default()
    };
    let (names, _) = encode_names(root, &across);
    assert_eq!(
        names,
        ["./", "a", "mnt/", "mnt/inside/", "mnt/inside/f", "z"]
    );
}
