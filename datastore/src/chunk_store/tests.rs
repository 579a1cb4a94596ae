//! Tests of the chunk store on a temp directory.

use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use super::*;

fn new_store() -> (tempfile::TempDir, ChunkStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ChunkStore::create(dir.path()).unwrap();
    (dir, store)
}

fn chunk(n: u32) -> (Digest, Vec<u8>) {
    let data = format!("chunk number {n}").repeat(50).into_bytes();
    (Digest::of(&data), blob::encode(&data, true))
}

fn set_atime(path: &Path, secs: i64) {
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &TimeSpec::new(secs, 0),
        &TimeSpec::UTIME_OMIT,
        UtimensatFlags::FollowSymlink,
    )
    .unwrap();
}

#[test]
fn create_and_open() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        ChunkStore::open(dir.path()),
        Err(ChunkStoreError::NotAChunkStore { .. })
    ));
    ChunkStore::create(dir.path()).unwrap();
    assert!(dir.path().join(".chunks").is_dir());
    assert!(ChunkStore::create(dir.path()).is_err(), "create twice");
    ChunkStore::open(dir.path()).unwrap();
}

#[test]
fn chunk_path_layout() {
    let (dir, store) = new_store();
    let digest: Digest = format!("abcd{}", "0".repeat(60)).parse().unwrap();
    assert_eq!(
        store.chunk_path(&digest),
        dir.path().join(".chunks/abcd").join(digest.to_hex())
    );
}

#[test]
fn insert_contains_read() {
    let (_dir, store) = new_store();
    let (digest, encoded) = chunk(1);
    assert!(!store.contains(&digest));
    assert!(!store.touch(&digest).unwrap());
    assert!(matches!(
        store.read(&digest),
        Err(ChunkStoreError::NotFound { .. })
    ));
    let outcome = store.insert(&digest, &encoded).unwrap();
    assert_eq!(
        outcome,
        InsertOutcome::Inserted {
            stored_bytes: encoded.len() as u64
        }
    );
    assert!(store.contains(&digest));
    assert_eq!(store.read(&digest).unwrap(), encoded);
    store.sync_dirty_dirs().unwrap();
    store.sync_dirty_dirs().unwrap();
    // Only the chunk file itself: no temp file left.
    let prefix_dir = store.chunk_path(&digest).parent().unwrap().to_path_buf();
    assert_eq!(fs::read_dir(prefix_dir).unwrap().count(), 1);
}

#[test]
fn second_insert_only_updates_atime() {
    let (_dir, store) = new_store();
    let (digest, encoded) = chunk(2);
    store.insert(&digest, &encoded).unwrap();
    let path = store.chunk_path(&digest);
    set_atime(&path, 1_000_000);
    let before = fs::metadata(&path).unwrap();
    assert_eq!(before.atime(), 1_000_000);

    assert_eq!(
        store.insert(&digest, &encoded).unwrap(),
        InsertOutcome::Existed
    );
    let after = fs::metadata(&path).unwrap();
    assert!(after.atime() > 1_700_000_000, "atime moved to now");
    assert_eq!(after.mtime(), before.mtime(), "mtime untouched");
    assert_eq!(after.ino(), before.ino(), "file not rewritten");

    set_atime(&path, 1_000_000);
    assert!(store.touch(&digest).unwrap());
    assert!(fs::metadata(&path).unwrap().atime() > 1_700_000_000);
}

#[test]
fn empty_file_is_replaced() {
    let (_dir, store) = new_store();
    let (digest, encoded) = chunk(3);
    let path = store.chunk_path(&digest);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, b"").unwrap();
    assert!(!store.contains(&digest));
    assert!(matches!(
        store.insert(&digest, &encoded).unwrap(),
        InsertOutcome::Inserted { .. }
    ));
    assert_eq!(store.read(&digest).unwrap(), encoded);
}

#[test]
fn invalid_blob_is_refused() {
    let (_dir, store) = new_store();
    let digest = Digest::of(b"x");
    for bad in [&b""[..], b"short", b"not a blob header at all"] {
        assert!(matches!(
            store.insert(&digest, bad),
            Err(ChunkStoreError::InvalidBlob { .. })
        ));
    }
    assert!(!store.chunk_path(&digest).parent().unwrap().exists());
}

#[test]
fn oversized_chunk_file_is_not_read() {
    let (_dir, store) = new_store();
    let (digest, encoded) = chunk(4);
    store.insert(&digest, &encoded).unwrap();
    let file = fs::OpenOptions::new()
        .write(true)
        .open(store.chunk_path(&digest))
        .unwrap();
    file.set_len(MAX_ENCODED_CHUNK_SIZE + 1).unwrap();
    assert!(matches!(
        store.read(&digest),
        Err(ChunkStoreError::TooLarge { .. })
    ));
}

#[test]
fn concurrent_inserts_of_the_same_chunks() {
    let (_dir, store) = new_store();
    let store = Arc::new(store);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for n in 0..50 {
                    let (digest, encoded) = chunk(n);
                    store.insert(&digest, &encoded).unwrap();
                }
                store.sync_dirty_dirs().unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for n in 0..50 {
        let (digest, encoded) = chunk(n);
        assert_eq!(store.read(&digest).unwrap(), encoded);
        let dir = store.chunk_path(&digest).parent().unwrap().to_path_buf();
        for entry in fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(!fs_util::is_temp_name(&name), "temp file {name} left");
        }
    }
}

#[test]
fn store_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<ChunkStore>();
}

#[test]
fn file_kinds() {
    let hex = "0123456789abcdef".repeat(4);
    let cases = [
        (hex.clone(), ChunkFileKind::Chunk),
        (format!("{hex}.0.bad"), ChunkFileKind::Bad),
        (format!("{hex}.12.bad"), ChunkFileKind::Bad),
        (format!(".{hex}.tmp-0123456789abcdef"), ChunkFileKind::Temp),
        (hex.to_uppercase(), ChunkFileKind::Other),
        (hex[..63].to_owned(), ChunkFileKind::Other),
        (format!("{hex}0"), ChunkFileKind::Other),
        (format!("{hex}.bad"), ChunkFileKind::Other),
        (format!("{hex}.x.bad"), ChunkFileKind::Other),
        (format!("{hex}.1234.bad"), ChunkFileKind::Other),
        (format!("{}.1.bad", &hex[..62]), ChunkFileKind::Other),
        ("notes.txt".to_owned(), ChunkFileKind::Other),
    ];
    for (name, kind) in cases {
        assert_eq!(chunk_file_kind(&name), kind, "{name}");
    }
}

#[test]
fn prefix_dirs_are_listed_sorted() {
    let (_dir, store) = new_store();
    assert!(store.prefix_dirs().unwrap().is_empty());
    let mut prefixes = Vec::new();
    for n in 0..20 {
        let (digest, encoded) = chunk(n);
        store.insert(&digest, &encoded).unwrap();
        prefixes.push(format!("{:04x}", digest.prefix()));
    }
    fs::create_dir(store.chunk_dir().join("stray")).unwrap();
    fs::write(store.chunk_dir().join("abcd"), b"file, not a dir").unwrap();
    prefixes.sort();
    prefixes.dedup();
    let listed: Vec<String> = store
        .prefix_dirs()
        .unwrap()
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, prefixes);
}

#[test]
fn remove_if_unused_removes_old_chunks() {
    let (_dir, store) = new_store();
    let (digest, encoded) = chunk(1);
    store.insert(&digest, &encoded).unwrap();
    let path = store.chunk_path(&digest);
    set_atime(&path, 1000);
    let removal = store.remove_if_unused(&path, |atime| atime < 2000).unwrap();
    assert_eq!(
        removal,
        ChunkRemoval::Removed {
            size: encoded.len() as u64
        }
    );
    assert!(!store.contains(&digest));
    let dir = path.parent().unwrap();
    assert_eq!(fs::read_dir(dir).unwrap().count(), 0, "no temp file left");
    assert_eq!(
        store.remove_if_unused(&path, |_| true).unwrap(),
        ChunkRemoval::Vanished
    );
}

#[test]
fn remove_if_unused_keeps_touched_chunks() {
    let (_dir, store) = new_store();
    let (digest, encoded) = chunk(2);
    store.insert(&digest, &encoded).unwrap();
    let path = store.chunk_path(&digest);
    // The chunk was touched after the caller found it old: the check after the move sees it.
    let removal = store.remove_if_unused(&path, |atime| atime < 2000).unwrap();
    let ChunkRemoval::Touched { atime, size } = removal else {
        panic!("{removal:?}");
    };
    assert!(atime >= 2000);
    assert_eq!(size, encoded.len() as u64);
    assert_eq!(store.read(&digest).unwrap(), encoded);
    let dir = path.parent().unwrap();
    assert_eq!(fs::read_dir(dir).unwrap().count(), 1, "no temp file left");
}

#[test]
fn touch_all_reports_missing_chunks_and_marks_the_rest() {
    let (_dir, store) = new_store();
    let (a, a_blob) = chunk(10);
    let (b, _) = chunk(11);
    let (c, c_blob) = chunk(12);
    store.insert(&a, &a_blob).unwrap();
    store.insert(&c, &c_blob).unwrap();
    set_atime(&store.chunk_path(&a), 1_000_000);
    set_atime(&store.chunk_path(&c), 1_000_000);
    assert_eq!(store.touch_all([&a, &b, &c, &b]).unwrap(), vec![b, b]);
    for digest in [a, c] {
        let atime = fs::metadata(store.chunk_path(&digest)).unwrap().atime();
        assert!(atime > 1_700_000_000, "{digest} touched");
    }
    assert!(store.touch_all([]).unwrap().is_empty());
    // An empty file (what a crash can leave) is no chunk: it must not be reused.
    fs::write(store.chunk_path(&c), b"").unwrap();
    assert_eq!(store.touch_all([&a, &c]).unwrap(), vec![c]);
}
