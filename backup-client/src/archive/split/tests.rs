//! The split layout end to end on a small real tree: encode, export, compare with the
//! single layout; restore; damaged offsets and lengths. The full tree with every entry kind
//! and GNU tar/bsdtar checks is in `tests/tests/split_archive.rs`.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use crate::archive::{
    ArchiveError, ArchiveProgress, EncodeOptions, RestoreOptions, SequentialPayload, SplitError,
    encode_tree, encode_tree_split, export_tar, restore_split,
};

fn small_tree(root: &Path) {
    fs::create_dir_all(root.join("dir/sub")).unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    fs::write(root.join("dir/a"), b"alpha").unwrap();
    fs::write(root.join("dir/sub/b"), vec![7u8; 70_000]).unwrap();
    fs::hard_link(root.join("dir/a"), root.join("link-to-a")).unwrap();
    symlink("dir/a", root.join("sym")).unwrap();
    let sparse = fs::File::create(root.join("sparse")).unwrap();
    sparse.set_len(4 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&sparse, b"data", 1 << 20).unwrap();
}

fn split(root: &Path) -> (Vec<u8>, Vec<u8>) {
    let (mut meta, mut payload) = (Vec::new(), Vec::new());
    let progress = ArchiveProgress::default();
    let stats = encode_tree_split(
        root,
        &mut meta,
        &mut payload,
        &progress,
        &EncodeOptions::default(),
    )
    .unwrap();
    assert!(stats.errors.is_empty(), "{:?}", stats.errors);
    (meta, payload)
}

#[test]
fn export_equals_the_single_layout() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("src");
    small_tree(&root);
    let mut single = Vec::new();
    encode_tree(&root, &mut single, &ArchiveProgress::default()).unwrap();
    let (meta, payload) = split(&root);
    assert!(meta.len() < 16 * 1024, "metadata carries no content");

    let mut exported = Vec::new();
    let stats = export_tar(&meta[..], &payload[..], &mut exported, None).unwrap();
    assert!(exported == single, "export differs from encode_tree");
    assert_eq!(stats.files, 4);
    assert!(stats.warnings.is_empty());
    assert_eq!(
        payload.len() as u64,
        stats.payload_bytes + 24 * stats.files,
        "payload = headers + contents, nothing else"
    );

    let mut sequential = Vec::new();
    let payload_stream = SequentialPayload::new(&payload[..]);
    export_tar(&meta[..], payload_stream, &mut sequential, None).unwrap();
    assert!(sequential == single);
}

/// Small reads pass through the export's buffer, large ones go straight from the payload
/// into the caller's: every mix gives the same stream.
#[test]
fn export_is_the_same_whatever_the_read_sizes() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("src");
    small_tree(&root);
    let big: Vec<u8> = (0..(3 << 20) + 5).map(|i: u32| (i % 251) as u8).collect();
    fs::write(root.join("dir/big"), &big).unwrap();
    let mut single = Vec::new();
    encode_tree(&root, &mut single, &ArchiveProgress::default()).unwrap();
    let (meta, payload) = split(&root);
    let content = export_tar(&meta[..], &payload[..], &mut Vec::new(), None)
        .unwrap()
        .payload_bytes;
    assert!(content > big.len() as u64);
    for sizes in [
        &[1usize][..],
        &[512, 70_001],
        &[1 << 20],
        &[100, 65_536, 3 << 20],
    ] {
        let mut export = crate::archive::split_to_tar(&meta[..], &payload[..]);
        let mut exported = Vec::new();
        let mut buf = vec![0u8; 3 << 20];
        for &size in sizes.iter().cycle() {
            let n = export.read(&mut buf[..size]).unwrap();
            if n == 0 {
                break;
            }
            exported.extend_from_slice(&buf[..n]);
        }
        assert!(exported == single, "read sizes {sizes:?}");
        assert_eq!(export.stats().payload_bytes, content);
    }
}

#[test]
fn restore_from_the_split_layout() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("src");
    small_tree(&root);
    let (meta, payload) = split(&root);
    let target = dir.path().join("restored");
    let stats = restore_split(
        &meta[..],
        &payload[..],
        &target,
        &RestoreOptions::default(),
        &ArchiveProgress::default(),
        None,
    )
    .unwrap();
    assert_eq!(stats.files, 4);
    assert_eq!(fs::read(target.join("dir/a")).unwrap(), b"alpha");
    assert_eq!(
        fs::read(target.join("dir/sub/b")).unwrap(),
        vec![7u8; 70_000]
    );
    assert_eq!(
        fs::read(target.join("sparse")).unwrap(),
        fs::read(root.join("sparse")).unwrap()
    );
    assert_eq!(
        fs::read_link(target.join("sym")).unwrap(),
        Path::new("dir/a")
    );
    // The restored tree encodes to the same payload and the same entries (the metadata
    // differs only in the stamps: new inodes, new ctimes).
    let (meta2, payload2) = split(&target);
    assert!(payload2 == payload);
    let export = |m: &[u8], p: &[u8]| {
        let mut out = Vec::new();
        export_tar(m, p, &mut out, None).unwrap();
        out
    };
    assert!(export(&meta2, &payload2) == export(&meta, &payload));
}

/// Replaces the value of `key` in the first metadata member that has it, keeping the
/// record's length so that the stream stays well-formed (checksums do not cover PAX data).
fn patch_record(meta: &mut [u8], key: &str, old: &str, new: &str) {
    assert_eq!(old.len(), new.len());
    let needle = format!("{key}={old}\n");
    let at = meta
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .expect("record present");
    let value = at + key.len() + 1;
    meta[value..value + new.len()].copy_from_slice(new.as_bytes());
}

fn split_error(meta: &[u8], payload: &[u8]) -> (String, SplitError) {
    match export_tar(meta, payload, std::io::sink(), None) {
        Err(ArchiveError::Split { path, source }) => (path, source),
        other => panic!("expected a split error, got {other:?}"),
    }
}

#[test]
fn wrong_offsets_and_lengths_are_errors_naming_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("src");
    fs::create_dir(&root).unwrap();
    // Same sizes: only the path tag tells their payload headers apart.
    fs::write(root.join("a"), b"1111").unwrap();
    fs::write(root.join("b"), b"2222").unwrap();
    let (meta, payload) = split(&root);
    assert_eq!(payload.len(), 2 * 28);

    let mut m = meta.clone();
    patch_record(&mut m, "BACKUPRS.payload.offset", "28", "00");
    let (path, e) = split_error(&m, &payload);
    assert_eq!(path, "b");
    assert!(matches!(e, SplitError::WrongEntry { offset: 0 }), "{e}");

    let mut m = meta.clone();
    patch_record(&mut m, "BACKUPRS.payload.offset", "28", "29");
    let (path, e) = split_error(&m, &payload);
    assert_eq!(path, "b");
    assert!(matches!(e, SplitError::BadMagic { offset: 29 }), "{e}");

    let mut m = meta.clone();
    patch_record(&mut m, "BACKUPRS.payload.offset", "28", "99");
    let (_, e) = split_error(&m, &payload);
    assert!(matches!(e, SplitError::Read { offset: 99, .. }), "{e}");

    let mut m = meta.clone();
    patch_record(&mut m, "BACKUPRS.payload.size", "4", "5");
    let (path, e) = split_error(&m, &payload);
    assert_eq!(path, "a");
    assert!(
        matches!(
            e,
            SplitError::LengthMismatch {
                found: 4,
                expected: 5,
                ..
            }
        ),
        "{e}"
    );

    let (path, e) = split_error(&meta, &payload[..54]);
    assert_eq!(path, "b");
    assert!(matches!(e, SplitError::Read { offset: 52, .. }), "{e}");

    // restore_split reports the same error, not an IO error of the tar reader.
    let mut m = meta.clone();
    patch_record(&mut m, "BACKUPRS.payload.offset", "28", "00");
    let res = restore_split(
        &m[..],
        &payload[..],
        &dir.path().join("target"),
        &RestoreOptions::default(),
        &ArchiveProgress::default(),
        None,
    );
    assert!(
        matches!(&res, Err(ArchiveError::Split { path, .. }) if path == "b"),
        "{res:?}"
    );
}

mod damage {
    use std::sync::OnceLock;

    use proptest::prelude::*;

    use super::*;

    /// A split archive of `small_tree`, made once.
    fn archive() -> &'static (Vec<u8>, Vec<u8>) {
        static ARCHIVE: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
        ARCHIVE.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            small_tree(dir.path());
            split(dir.path())
        })
    }

    proptest! {
        /// Damage anywhere in either stream is an error or a still-valid export (content
        /// bytes are not checked here), never a panic or a hang.
        #[test]
        fn damaged_streams_never_panic(
            in_meta in any::<bool>(),
            at in any::<prop::sample::Index>(),
            xor in 1u8..,
            cut in any::<Option<prop::sample::Index>>(),
        ) {
            let (meta, payload) = archive();
            let (mut meta, mut payload) = (meta.clone(), payload.clone());
            let stream = if in_meta { &mut meta } else { &mut payload };
            let i = at.index(stream.len());
            stream[i] ^= xor;
            if let Some(cut) = cut {
                let len = cut.index(stream.len());
                stream.truncate(len);
            }
            let _ = export_tar(&meta[..], &payload[..], std::io::sink(), None);
        }
    }
}

#[path = "reuse_tests.rs"]
mod reuse_tests;

/// A payload source that records which bytes were read.
struct Counting<'a> {
    data: &'a [u8],
    read: u64,
}

impl crate::archive::PayloadSource for Counting<'_> {
    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.read += buf.len() as u64;
        let mut data = self.data;
        crate::archive::PayloadSource::read_exact_at(&mut data, offset, buf)
    }
}

#[test]
fn a_selection_restores_only_its_entries_and_reads_only_their_payload() {
    use crate::archive::Selection;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("src");
    small_tree(&root);
    let (meta, payload) = split(&root);
    let target = dir.path().join("restored");
    let mut source = Counting {
        data: &payload,
        read: 0,
    };
    let selection = Selection::new(["dir/sub/"]).unwrap();
    let stats = restore_split(
        &meta[..],
        &mut source,
        &target,
        &RestoreOptions::default(),
        &ArchiveProgress::default(),
        Some(selection),
    )
    .unwrap();
    assert_eq!(stats.files, 1);
    assert_eq!(
        fs::read(target.join("dir/sub/b")).unwrap(),
        vec![7u8; 70_000]
    );
    assert!(!target.join("dir/a").exists() && !target.join("sym").exists());
    assert_eq!(
        source.read,
        24 + 70_000,
        "only b's header and content were read"
    );

    // A hard link whose target is not selected is left out with a warning.
    let mut out = Vec::new();
    let stats = export_tar(
        &meta[..],
        &payload[..],
        &mut out,
        Some(Selection::new(["link-to-a"]).unwrap()),
    )
    .unwrap();
    assert_eq!(stats.entries, 1, "only the root");
    assert!(
        stats.warnings[0].contains("not selected"),
        "{:?}",
        stats.warnings
    );

    let missing = export_tar(
        &meta[..],
        &payload[..],
        std::io::sink(),
        Some(Selection::new(["dir/a", "nothing/here"]).unwrap()),
    );
    assert!(
        matches!(&missing, Err(ArchiveError::NotFound { paths }) if paths == "nothing/here"),
        "{missing:?}"
    );
}
