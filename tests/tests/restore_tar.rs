//! End to end: `restore --format tar` writes the snapshot's archive as one standard tar
//! stream (to a new file, never over an existing one, or to standard output), for both
//! layouts (one tar stream; split metadata + payload) the same bytes, and GNU tar and
//! bsdtar extract it to the source tree.

use e2e::harness::{TestServer, run_ok, u};
use e2e::tree::{TreeOptions, compare_trees, generate_tree};

#[test]
fn restore_as_tar_gives_a_stream_gnu_tar_and_bsdtar_extract() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    generate_tree(
        &source,
        &TreeOptions {
            large_file_size: 3 << 20,
            ..TreeOptions::default()
        },
    )
    .expect("generate tree");
    let mut exports = Vec::new();
    for detection in ["data", "metadata"] {
        let id = format!("export-{detection}");
        let summary = server.backup_with(&source, &id, &["--change-detection", detection]);
        let snapshot = summary["snapshot"].as_str().unwrap();

        // To a file: refused when it exists, written whole otherwise.
        let file = work.path().join(format!("export-{detection}.tar"));
        std::fs::write(&file, b"keep").unwrap();
        let refused = server
            .client()
            .args(["restore", snapshot, "root.tar"])
            .arg(&file)
            .args(["--format", "tar"])
            .output()
            .unwrap();
        assert!(!refused.status.success());
        assert_eq!(std::fs::read(&file).unwrap(), b"keep");
        std::fs::remove_file(&file).unwrap();
        run_ok(
            server
                .client()
                .args(["restore", snapshot, "root.tar"])
                .arg(&file)
                .args(["--format", "tar"]),
        );
        // To standard output: the same bytes, the summary on stderr.
        let stdout = run_ok(
            server
                .client()
                .args(["restore", snapshot, "root.tar", "-", "--format", "tar"]),
        );
        let from_file = std::fs::read(&file).unwrap();
        assert!(stdout.stdout == from_file, "stdout and file exports differ");
        if detection == "data" {
            let listed = server.snapshots();
            let single = listed.iter().find(|s| s["snapshot"] == snapshot).unwrap();
            assert_eq!(
                from_file.len() as u64,
                u(single, "size"),
                "the export is the whole archive"
            );
        }
        exports.push((file, from_file));
    }
    assert!(
        exports[0].1 == exports[1].1,
        "the split layout exports the very bytes of the single tar stream"
    );

    for (tool, (file, _)) in ["tar", "bsdtar"]
        .into_iter()
        .flat_map(|tool| exports.iter().map(move |export| (tool, export)))
    {
        if std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_err()
        {
            println!("skipping {tool}: not installed (apt-get install libarchive-tools)");
            continue;
        }
        let into = work.path().join(format!(
            "{}-by-{tool}",
            file.file_stem().unwrap().to_string_lossy()
        ));
        std::fs::create_dir(&into).unwrap();
        let mut extract = std::process::Command::new(tool);
        extract.arg("-xpf").arg(file).arg("-C").arg(&into);
        if tool == "tar" {
            extract.args([
                "--xattrs",
                "--xattrs-include=*",
                "--acls",
                "--numeric-owner",
            ]);
        } else {
            extract.args(["--xattrs", "--acls", "--numeric-owner"]);
        }
        run_ok(&mut extract);
        let diffs = compare_trees(&source, &into).err().unwrap_or_default();
        // bsdtar leaves the time of the directory it extracts into ("./") alone.
        let diffs: Vec<&String> = diffs
            .iter()
            .filter(|d| !(tool == "bsdtar" && d.starts_with(".: mtime")))
            .collect();
        assert!(
            diffs.is_empty(),
            "{tool} extracted a different tree: {diffs:#?}"
        );
    }
}
