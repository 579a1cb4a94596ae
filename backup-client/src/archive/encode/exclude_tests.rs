//! Excludes seen in the encoded archive: member names are read back with the `tar` crate.
//! (File-system boundaries are tested end to end, with a tmpfs, in tests/tests/excludes.rs.)

use std::fs;
use std::path::{Path, PathBuf};

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
