//! Change detection on real trees: a second split archive re-uses the first one's payload
//! chunks for unchanged files, reads the changed ones, and exports to exactly the single
//! layout's stream of the new tree. The "server" here is a payload writer that copies the
//! re-used chunks from the previous payload bytes.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use datastore::chunker::{ChunkerParams, chunk_lengths};
use datastore::digest::Digest;

use crate::archive::{
    ArchiveProgress, EncodeOptions, EncodeStats, PayloadWrite, PreviousPayload, ReusedChunk,
    encode_tree, encode_tree_split, encode_tree_split_reusing, export_tar, previous_entries,
};

/// A payload stream in memory; re-used chunks are copied from the previous payload.
struct CopyingPayload<'a> {
    out: Vec<u8>,
    previous: &'a [u8],
    appended: Vec<ReusedChunk>,
}

impl Write for CopyingPayload<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl PayloadWrite for CopyingPayload<'_> {
    fn append_chunks(&mut self, chunks: &[ReusedChunk]) -> io::Result<()> {
        for c in chunks {
            let start = c.old_start as usize;
            let bytes = &self.previous[start..start + c.size as usize];
            assert_eq!(Digest::of(bytes), c.digest, "the digest names the bytes");
            self.out.extend_from_slice(bytes);
            self.appended.push(*c);
        }
        Ok(())
    }
}

/// The payload's index as the chunker cuts it (4 KiB average).
fn index_of(payload: &[u8]) -> PreviousPayload {
    index_with(payload, 4 << 10)
}

fn index_with(payload: &[u8], avg: usize) -> PreviousPayload {
    let params = ChunkerParams::new(avg).unwrap();
    let mut end = 0u64;
    let mut chunks = Vec::new();
    for len in chunk_lengths(params, payload) {
        let start = end as usize;
        end += len as u64;
        chunks.push((Digest::of(&payload[start..end as usize]), end));
    }
    PreviousPayload::new(chunks).unwrap()
}

struct Generation {
    meta: Vec<u8>,
    payload: Vec<u8>,
    stats: EncodeStats,
    /// Payload bytes that are not re-used chunks.
    fresh: u64,
}

fn first(root: &Path) -> Generation {
    let (mut meta, mut payload) = (Vec::new(), Vec::new());
    let progress = ArchiveProgress::default();
    let stats = encode_tree_split(root, &mut meta, &mut payload, &progress, &opts()).unwrap();
    let fresh = payload.len() as u64;
    Generation {
        meta,
        payload,
        stats,
        fresh,
    }
}

fn opts() -> EncodeOptions {
    EncodeOptions::default()
}

fn next(root: &Path, previous: &Generation) -> Generation {
    next_with(root, previous, index_of(&previous.payload))
}

fn next_with(root: &Path, previous: &Generation, mut index: PreviousPayload) -> Generation {
    // What the next backup gets from the padding record.
    index.set_dead(&previous.stats.dead_chunks);
    let mut meta = Vec::new();
    let mut payload = CopyingPayload {
        out: Vec::new(),
        previous: &previous.payload,
        appended: Vec::new(),
    };
    let progress = ArchiveProgress::default();
    let stats = encode_tree_split_reusing(
        root,
        &mut meta,
        &mut payload,
        Box::new(previous_entries(io::Cursor::new(previous.meta.clone()))),
        index,
        &progress,
        &opts(),
    )
    .unwrap();
    assert!(stats.errors.is_empty(), "{:?}", stats.errors);
    let reused: u64 = payload.appended.iter().map(|c| c.size).sum();
    Generation {
        meta,
        fresh: payload.out.len() as u64 - reused,
        payload: payload.out,
        stats,
    }
}

/// Exports the generation and checks it against the single layout of `root`.
fn assert_exports_tree(generation: &Generation, root: &Path) {
    let mut single = Vec::new();
    encode_tree(root, &mut single, &ArchiveProgress::default()).unwrap();
    let mut exported = Vec::new();
    export_tar(
        &generation.meta[..],
        &generation.payload[..],
        &mut exported,
        None,
    )
    .unwrap();
    assert!(
        exported == single,
        "export differs from the tree's tar stream"
    );
}

/// Whether every file's content lies at or after the end of the previous file's, as the
/// generation's metadata says.
fn payload_in_order(generation: &Generation) -> bool {
    let mut end = 0;
    previous_entries(io::Cursor::new(generation.meta.clone()))
        .filter_map(|entry| entry.unwrap().payload_range())
        .all(|range| {
            let in_order = range.start >= end;
            end = range.end;
            in_order
        })
}

/// The first generation of a new [`tree`] in a directory that lives as long as the handle.
fn first_of_new_tree() -> (tempfile::TempDir, PathBuf, Generation) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("src");
    tree(&root);
    let generation = first(&root);
    (dir, root, generation)
}

/// 300 files of 1-9 KiB in 10 directories, distinct contents.
fn tree(root: &Path) {
    for d in 0..10 {
        fs::create_dir_all(root.join(format!("d{d}"))).unwrap();
        for f in 0..30 {
            let n = d * 30 + f;
            let content: Vec<u8> = (0..(1000 + (n * 37) % 8000))
                .map(|i| (i * 7 + n * 13) as u8 ^ (i >> 8) as u8)
                .collect();
            fs::write(root.join(format!("d{d}/f{f:02}")), content).unwrap();
        }
    }
}

#[test]
fn an_unchanged_tree_reads_no_file_and_reuses_everything() {
    let (_dir, root, gen1) = first_of_new_tree();
    assert_eq!(gen1.stats.files, 300);
    let gen2 = next(&root, &gen1);
    assert_eq!(gen2.stats.bytes_read, 0, "no file content read");
    assert_eq!(gen2.stats.reused_files, 300);
    assert_eq!(gen2.stats.files, 300);
    assert_eq!(gen2.stats.padding_bytes, 0);
    assert!(
        gen2.payload == gen1.payload,
        "the same payload, chunk for chunk"
    );
    assert_exports_tree(&gen2, &root);
    // And again from the second generation.
    let gen3 = next(&root, &gen2);
    assert_eq!((gen3.stats.bytes_read, gen3.stats.reused_files), (0, 300));
    assert_exports_tree(&gen3, &root);
}

#[test]
fn changed_files_are_read_and_the_rest_reused() {
    let (_dir, root, gen1) = first_of_new_tree();
    // Change 3 files (one grows), delete one, add one.
    let mut changed = 0;
    for path in ["d1/f05", "d4/f17", "d8/f29"] {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(root.join(path))
            .unwrap();
        f.write_all(b"one more line\n").unwrap();
        changed += fs::metadata(root.join(path)).unwrap().len();
    }
    fs::remove_file(root.join("d6/f00")).unwrap();
    fs::write(root.join("d6/new"), b"brand new").unwrap();
    changed += 9;
    let gen2 = next(&root, &gen1);
    assert_eq!(
        gen2.stats.bytes_read, changed,
        "only the changed files are read"
    );
    assert_eq!(gen2.stats.files, 300);
    assert_eq!(gen2.stats.reused_files, 296);
    assert_exports_tree(&gen2, &root);
    let padding = gen2.stats.padding_bytes as f64;
    assert!(
        padding <= 0.1 * gen2.payload.len() as f64,
        "padding {padding} of {}",
        gen2.payload.len()
    );
}

#[test]
fn a_new_ctime_alone_makes_a_file_read_again() {
    let (_dir, root, gen1) = first_of_new_tree();
    // Same size, same mtime, new content: only the ctime tells.
    let path = root.join("d3/f10");
    let before = fs::metadata(&path).unwrap();
    let mut content = fs::read(&path).unwrap();
    content[0] ^= 0xff;
    std::thread::sleep(std::time::Duration::from_millis(20));
    fs::write(&path, &content).unwrap();
    let mtime = filetime_of(&before);
    set_mtime(&path, mtime);
    let after = fs::metadata(&path).unwrap();
    assert_eq!(after.len(), before.len());
    assert_eq!(filetime_of(&after), mtime);
    let gen2 = next(&root, &gen1);
    assert_eq!(gen2.stats.bytes_read, after.len());
    assert_eq!(gen2.stats.reused_files, 299);
    assert_exports_tree(&gen2, &root);
}

#[test]
fn many_rounds_of_changes_keep_padding_bounded() {
    let (_dir, root, mut generation) = first_of_new_tree();
    let content_bytes = |root: &Path| -> u64 {
        let mut total = 0;
        for d in fs::read_dir(root).unwrap() {
            for f in fs::read_dir(d.unwrap().path()).unwrap() {
                total += f.unwrap().metadata().unwrap().len() + 24;
            }
        }
        total
    };
    // Chunks here average 4 KiB (max 16 KiB): the planner's bound is 20% padding plus
    // two of the largest chunks.
    let slack = 2 * (16 << 10);
    for round in 0..30u64 {
        // Rewrite 10 files spread over the tree, every round other ones.
        for k in 0..10u64 {
            let n = (round * 37 + k * 29) % 300;
            let path = root.join(format!("d{}/f{:02}", n / 30, n % 30));
            let mut content = fs::read(&path).unwrap();
            content.truncate(content.len() / 2 + 100);
            content.extend(std::iter::repeat_n(round as u8, 50));
            fs::write(&path, content).unwrap();
        }
        generation = next(&root, &generation);
        assert_exports_tree(&generation, &root);
        let live = content_bytes(&root);
        let payload = generation.payload.len() as u64;
        assert!(
            payload * 10 <= live * 12 + slack * 10,
            "round {round}: payload {payload} for {live} bytes of files"
        );
    }
}

fn filetime_of(meta: &fs::Metadata) -> (i64, i64) {
    use std::os::unix::fs::MetadataExt;
    (meta.mtime(), meta.mtime_nsec())
}

fn set_mtime(path: &Path, (sec, nsec): (i64, i64)) {
    let time = std::time::UNIX_EPOCH
        + std::time::Duration::from_secs(sec as u64)
        + std::time::Duration::from_nanos(nsec as u64);
    let file = fs::OpenOptions::new().write(true).open(path).unwrap();
    file.set_times(fs::FileTimes::new().set_modified(time))
        .unwrap();
}

#[test]
fn changes_spread_over_large_chunks_send_little_new_payload() {
    let (_dir, root, gen1) = first_of_new_tree();
    // 64 KiB chunks: about 13 files each, so every change hits a chunk of unchanged files.
    let avg = 64 << 10;
    let mut changed = 0;
    for n in [5u64, 105, 205] {
        let path = root.join(format!("d{}/f{:02}", n / 30, n % 30));
        let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"one more line\n").unwrap();
        changed += fs::metadata(&path).unwrap().len() + 24;
    }
    let gen2 = next_with(&root, &gen1, index_with(&gen1.payload, avg));
    assert_exports_tree(&gen2, &root);
    assert_eq!(gen2.stats.reused_files, 297, "{:?}", gen2.stats);
    assert!(
        gen2.fresh <= 2 * changed,
        "new payload {} for {changed} bytes of changed files",
        gen2.fresh
    );
    assert!(gen2.stats.padding_bytes * 10 <= gen2.payload.len() as u64);
}

#[test]
fn the_archive_says_whether_its_payload_is_in_order() {
    let (_dir, root, gen1) = first_of_new_tree();
    assert!(gen1.stats.payload_in_order && payload_in_order(&gen1));
    // Everything re-used: the previous order.
    let gen2 = next(&root, &gen1);
    assert!(gen2.stats.payload_in_order && payload_in_order(&gen2));
    // A changed file amid unchanged ones: its new content is held back behind the re-used
    // chunks of the files after it, which the reader goes back to.
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(root.join("d2/f10"))
        .unwrap();
    f.write_all(b"one more line\n").unwrap();
    let gen3 = next(&root, &gen2);
    assert_eq!(
        gen3.stats.bytes_read,
        fs::metadata(root.join("d2/f10")).unwrap().len()
    );
    assert!(!payload_in_order(&gen3), "the case this test is about");
    assert!(!gen3.stats.payload_in_order);
    assert_exports_tree(&gen3, &root);
}
