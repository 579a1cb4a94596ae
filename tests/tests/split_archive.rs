//! The split archive layout (metadata + payload streams) against the e2e test tree: the
//! export equals the single layout's stream, restore gives back the tree, GNU tar lists the
//! metadata stream, GNU tar and bsdtar extract the export, and a damaged payload reference
//! is an error naming the entry.

use std::fs;
use std::io::BufReader;
use std::path::PathBuf;
use std::process::Command;

use backup_client::archive::{
    ArchiveError, ArchiveProgress, EncodeOptions, RestoreOptions, SequentialPayload, SplitError,
    encode_tree, encode_tree_split, export_tar, restore_split,
};
use e2e::harness::{run_quiet as run, tool_installed as tool};
use e2e::tree::{TreeInfo, TreeOptions, assert_same_tree, compare_trees, generate_tree};

/// Bytes in front of every file's content in the payload stream.
const PAYLOAD_HEADER: u64 = 24;

struct Fixture {
    _dir: tempfile::TempDir,
    work: PathBuf,
    src: PathBuf,
    info: TreeInfo,
    meta: PathBuf,
    payload: PathBuf,
}

/// The test tree, encoded in the split layout to `meta.tar` and `payload.bin`.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().to_path_buf();
    let src = work.join("src");
    let info = generate_tree(&src, &TreeOptions::small()).unwrap();
    let meta = work.join("meta.tar");
    let payload = work.join("payload.bin");
    let stats = encode_tree_split(
        &src,
        fs::File::create(&meta).unwrap(),
        fs::File::create(&payload).unwrap(),
        &ArchiveProgress::default(),
        &EncodeOptions::default(),
    )
    .unwrap();
    assert!(stats.errors.is_empty(), "{:#?}", stats.errors);
    assert_eq!(
        stats.entries,
        info.entries + 1,
        "every object plus the root"
    );
    let payload_len = fs::metadata(&payload).unwrap().len();
    assert_eq!(payload_len, stats.bytes_read + PAYLOAD_HEADER * stats.files);
    Fixture {
        _dir: dir,
        work,
        src,
        info,
        meta,
        payload,
    }
}

#[test]
fn export_is_the_single_layout_stream_and_restore_gives_the_tree() {
    let f = fixture();
    let mut single = Vec::new();
    encode_tree(&f.src, &mut single, &ArchiveProgress::default()).unwrap();

    let meta = fs::read(&f.meta).unwrap();
    let mut exported = Vec::new();
    let stats = export_tar(
        &meta[..],
        fs::File::open(&f.payload).unwrap(),
        &mut exported,
        None,
    )
    .unwrap();
    assert!(stats.warnings.is_empty(), "{:#?}", stats.warnings);
    assert_eq!(stats.entries, f.info.entries + 1);
    assert!(
        exported == single,
        "export ({} bytes) differs from encode_tree ({} bytes)",
        exported.len(),
        single.len()
    );
    assert!(
        (meta.len() as u64) < f.info.data_bytes / 10,
        "the metadata stream carries no content: {} bytes",
        meta.len()
    );

    // A payload read once, in order (as from a chunk stream), is enough.
    let mut sequential = Vec::new();
    let payload = BufReader::new(fs::File::open(&f.payload).unwrap());
    export_tar(
        &meta[..],
        SequentialPayload::new(payload),
        &mut sequential,
        None,
    )
    .unwrap();
    assert!(sequential == single);

    let target = f.work.join("restored");
    let restored = restore_split(
        &meta[..],
        fs::File::open(&f.payload).unwrap(),
        &target,
        &RestoreOptions::default(),
        &ArchiveProgress::default(),
        None,
    )
    .unwrap();
    assert_eq!(restored.entries, f.info.entries + 1);
    assert!(restored.warnings.is_empty(), "{:#?}", restored.warnings);
    assert_same_tree(&f.src, &target);
}

#[test]
fn gnu_tar_and_bsdtar_list_the_metadata_stream() {
    let f = fixture();
    assert!(tool("tar"), "GNU tar is required");
    // GNU tar warns about keywords it does not know; that is the one thing it may say.
    let listing = run(Command::new("tar")
        .args(["--warning=no-unknown-keyword", "-tvf"])
        .arg(&f.meta));
    assert_eq!(
        listing.lines().count() as u64,
        f.info.entries + 1,
        "one line per member:\n{listing}"
    );
    let large = f.info.large_file.to_str().unwrap();
    let line = listing
        .lines()
        .find(|l| l.ends_with(&format!(" {large}")))
        .unwrap_or_else(|| panic!("{large} not listed:\n{listing}"));
    assert!(line.starts_with('-'), "{line}");
    assert_eq!(
        line.split_whitespace().nth(2),
        Some("0"),
        "files are empty: {line}"
    );
    for sparse in &f.info.sparse_files {
        let name = sparse.to_str().unwrap();
        assert!(
            listing.lines().any(|l| l.ends_with(&format!(" {name}"))),
            "{name} listed under its own name:\n{listing}"
        );
    }
    let plain = Command::new("tar")
        .arg("-tf")
        .arg(&f.meta)
        .output()
        .unwrap();
    assert!(plain.status.success());
    assert!(
        String::from_utf8_lossy(&plain.stderr).contains("BACKUPRS.payload.offset"),
        "without the option GNU tar names the keyword it ignores"
    );
    if tool("bsdtar") {
        let listing = run(Command::new("bsdtar")
            .env("LC_ALL", "C.UTF-8")
            .arg("-tvf")
            .arg(&f.meta));
        assert_eq!(listing.lines().count() as u64, f.info.entries + 1);
    } else {
        println!("skipping bsdtar: not installed (apt-get install libarchive-tools)");
    }
}

#[test]
fn gnu_tar_and_bsdtar_extract_the_export_to_the_same_tree() {
    let f = fixture();
    let file = f.work.join("export.tar");
    export_tar(
        fs::File::open(&f.meta).unwrap(),
        fs::File::open(&f.payload).unwrap(),
        fs::File::create(&file).unwrap(),
        None,
    )
    .unwrap();

    assert!(tool("tar"), "GNU tar is required");
    let by_gnu = f.work.join("gnu");
    fs::create_dir(&by_gnu).unwrap();
    let mut extract = Command::new("tar");
    extract.args([
        "-x",
        "--xattrs",
        "--xattrs-include=*",
        "--acls",
        "--numeric-owner",
        "-p",
        "-f",
    ]);
    run(extract.arg(&file).arg("-C").arg(&by_gnu));
    assert_same_tree(&f.src, &by_gnu);

    if !tool("bsdtar") {
        println!("skipping bsdtar: not installed (apt-get install libarchive-tools)");
        return;
    }
    let by_bsdtar = f.work.join("bsdtar");
    fs::create_dir(&by_bsdtar).unwrap();
    run(Command::new("bsdtar")
        .env("LC_ALL", "C.UTF-8")
        .args(["-x", "-p", "--numeric-owner", "--xattrs", "--acls", "-f"])
        .arg(&file)
        .arg("-C")
        .arg(&by_bsdtar));
    // bsdtar leaves the time of the directory it extracts into ("./") alone; everything
    // else, sparse files, xattrs, ACLs and hard links included, must be equal.
    let diffs = compare_trees(&by_gnu, &by_bsdtar).err().unwrap_or_default();
    let diffs: Vec<&String> = diffs
        .iter()
        .filter(|d| !d.starts_with(".: mtime "))
        .collect();
    assert!(diffs.is_empty(), "GNU tar vs bsdtar: {diffs:#?}");
}

fn split_error(meta: &[u8], payload: &[u8]) -> (String, SplitError) {
    match export_tar(meta, payload, std::io::sink(), None) {
        Err(ArchiveError::Split { path, source }) => (path, source),
        other => panic!("expected a split error, got {other:?}"),
    }
}

#[test]
fn a_damaged_payload_is_an_error_naming_the_entry() {
    let f = fixture();
    let meta = fs::read(&f.meta).unwrap();
    let payload = fs::read(&f.payload).unwrap();
    let large = f.info.large_file.to_str().unwrap().to_string();

    // Find the large file's payload header by its length field.
    let len = (3u64 << 20).to_le_bytes();
    let at = payload
        .windows(PAYLOAD_HEADER as usize)
        .position(|w| w[8..16] == len)
        .expect("payload header of the large file");

    let mut damaged = payload.clone();
    damaged[at] ^= 0xff;
    let (path, e) = split_error(&meta, &damaged);
    assert_eq!(path, large);
    assert!(
        matches!(e, SplitError::BadMagic { offset } if offset == at as u64),
        "{e}"
    );

    let mut damaged = payload.clone();
    damaged[at + 8] ^= 1;
    let (path, e) = split_error(&meta, &damaged);
    assert_eq!(path, large);
    assert!(matches!(e, SplitError::LengthMismatch { .. }), "{e}");

    let (path, e) = split_error(&meta, &payload[..at + 100]);
    assert_eq!(path, large);
    assert!(matches!(e, SplitError::Read { .. }), "{e}");

    // Content damage is not the payload header's business: chunk digests catch it.
    let mut damaged = payload;
    damaged[at + 100] ^= 1;
    export_tar(&meta[..], &damaged[..], std::io::sink(), None).unwrap();
}
