//! `needs_verify` as a table, and verify on real stores built with the crate's own API.

use std::fs;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::*;
use crate::blob;
use crate::digest::{Digest, ZeroDigests};
use crate::index::DynamicIndexWriter;
use crate::ingest::store_chunk;
use crate::manifest::{BackupManifest, ManifestFile, VerifyOutcome};
use crate::names::{BackupType, Namespace};
use crate::snapshot::BackupGroup;

const T0: i64 = 1_790_000_000;

#[test]
fn needs_verify_table() {
    let state = |outcome, time| VerifyState {
        state: outcome,
        upid: "UPID:x".into(),
        time,
    };
    let ok_at = |t| Some(state(VerifyOutcome::Ok, t));
    let failed_at = |t| Some(state(VerifyOutcome::Failed, t));
    let opts = |outdated, only| VerifyOptions {
        outdated_after_secs: outdated,
        only_unverified: only,
        now: T0,
    };
    let day = 86_400;
    #[rustfmt::skip]
    let cases = [
        // (last verify, outdated after, only unverified, expected)
        (None, None, false, true),
        (None, None, true, true),
        (None, Some(day), true, true),
        (ok_at(T0 - 10), None, false, true),
        (failed_at(T0 - 10), None, false, true),
        (ok_at(T0 - 10), None, true, false),
        (failed_at(T0 - 10), None, true, false),
        (ok_at(T0 - day + 1), Some(day), true, false),
        (ok_at(T0 - day), Some(day), true, true),
        (ok_at(T0 - 5 * day), Some(day), true, true),
        (failed_at(T0 - day + 1), Some(day), true, false),
        (failed_at(T0 - 2 * day), Some(day), true, true),
        (ok_at(T0 - 10), Some(day), false, false),
        (ok_at(T0 - 2 * day), Some(day), false, true),
        (ok_at(T0 + 100), Some(day), false, false),
        (ok_at(T0), Some(0), true, true),
    ];
    for (i, (last, outdated, only, expected)) in cases.into_iter().enumerate() {
        let got = needs_verify(last.as_ref(), &opts(outdated, only));
        assert_eq!(got, expected, "case {i}: {last:?} {outdated:?} {only}");
    }
}

/// A store in a temp directory with helpers to fill and damage it.
struct Fixture {
    _dir: tempfile::TempDir,
    store: DataStore,
    zeros: ZeroDigests,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = DataStore::create(&dir.path().join("store")).unwrap();
        Self {
            _dir: dir,
            store,
            zeros: ZeroDigests::new(),
        }
    }

    /// Plain data of chunk `n`: distinct per `n`, of varying size.
    fn data(n: u32) -> Vec<u8> {
        let mut data = format!("chunk {n} ")
            .repeat(50 + n as usize * 9)
            .into_bytes();
        data.extend((0..n * 17).map(|i| (i * 7919 % 251) as u8));
        data
    }

    fn chunk_path(&self, n: u32) -> std::path::PathBuf {
        self.store
            .chunk_store()
            .chunk_path(&Digest::of(&Self::data(n)))
    }

    fn store_chunk(&self, n: u32) -> Digest {
        store_chunk(self.store.chunk_store(), &Self::data(n), &self.zeros)
            .unwrap()
            .digest
    }

    /// A finished snapshot of `host/<id>` whose `root.tar.didx` references `chunks`.
    /// `sizes` overrides the size the index records for each chunk (to forge a bad index).
    fn snapshot(&self, id: &str, time: i64, chunks: &[u32], sizes: Option<&[u64]>) -> SnapshotRef {
        let group = BackupGroup::new(Namespace::root(), BackupType::Host, id).unwrap();
        let snap = SnapshotRef::new(group, time).unwrap();
        let dir = self.store.create_snapshot_dir(&snap).unwrap();
        let mut writer = DynamicIndexWriter::create(&dir.join("root.tar.didx")).unwrap();
        for (i, &n) in chunks.iter().enumerate() {
            let digest = self.store_chunk(n);
            let size = sizes.map_or(Self::data(n).len() as u64, |s| s[i]);
            writer.push(writer.size() + size, &digest).unwrap();
        }
        self.store.chunk_store().sync_dirty_dirs().unwrap();
        let stats = writer.close().unwrap();
        let mut manifest = BackupManifest::new(&snap);
        manifest.files.push(ManifestFile {
            filename: "root.tar.didx".into(),
            size: stats.size,
            csum: stats.csum.to_hex(),
            chunks: stats.chunks,
        });
        let raw = format!("config of {id}").into_bytes();
        let encoded = blob::encode(&raw, true);
        fs::write(dir.join("conf.blob"), &encoded).unwrap();
        manifest.files.push(ManifestFile {
            filename: "conf.blob".into(),
            size: raw.len() as u64,
            csum: Digest::of(&encoded).to_hex(),
            chunks: 0,
        });
        self.store.write_manifest(&snap, &manifest).unwrap();
        snap
    }

    fn flip_last_byte(&self, n: u32) {
        let path = self.chunk_path(n);
        let mut bytes = fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() ^= 0x40;
        fs::write(&path, bytes).unwrap();
    }

    fn verify(
        &self,
        snaps: &[SnapshotRef],
        options: &VerifyOptions,
        threads: usize,
    ) -> (Result<VerifyStats, VerifyError>, Vec<String>) {
        let lines = Mutex::new(Vec::new());
        let log = |line: String| lines.lock().unwrap().push(line);
        let result = verify_snapshots(
            &self.store,
            snaps,
            "UPID:test",
            options,
            threads,
            &log,
            &AtomicBool::new(false),
        );
        (result, lines.into_inner().unwrap())
    }

    fn state(&self, snap: &SnapshotRef) -> Option<VerifyState> {
        self.store.read_manifest(snap).unwrap().verify_state()
    }
}

fn all(now: i64) -> VerifyOptions {
    VerifyOptions {
        outdated_after_secs: None,
        only_unverified: false,
        now,
    }
}

fn outcomes(fx: &Fixture, snaps: &[SnapshotRef]) -> Vec<Option<VerifyOutcome>> {
    snaps.iter().map(|s| fx.state(s).map(|v| v.state)).collect()
}

#[test]
fn corrupt_shared_chunk_fails_its_snapshots_and_is_moved_aside() {
    let fx = Fixture::new();
    let snaps = [
        fx.snapshot("a", T0, &[1, 2, 3, 2], None),
        fx.snapshot("b", T0, &[2, 3, 4], None),
        fx.snapshot("c", T0, &[5, 6], None),
    ];
    let file_bytes: u64 = (1..=6)
        .map(|n| fs::metadata(fx.chunk_path(n)).unwrap().len())
        .sum();

    for threads in [1, 3] {
        let (stats, lines) = fx.verify(&snaps, &all(T0 + threads as i64), threads);
        let stats = stats.unwrap();
        assert_eq!(
            (stats.snapshots_ok, stats.snapshots_failed),
            (3, 0),
            "{lines:?}"
        );
        // Six distinct chunks, each read once although a and b share two.
        assert_eq!(stats.chunks_checked, 6);
        assert_eq!(stats.bytes_checked, file_bytes);
        assert!(stats.bad_chunks.is_empty());
        let state = fx.state(&snaps[0]).unwrap();
        assert_eq!(state.upid, "UPID:test");
        assert_eq!(state.time, T0 + threads as i64);
    }

    fx.flip_last_byte(2);
    let bad = Digest::of(&Fixture::data(2));
    let (stats, lines) = fx.verify(&snaps, &all(T0 + 10), 2);
    let stats = stats.unwrap();
    assert_eq!(
        outcomes(&fx, &snaps),
        [
            Some(VerifyOutcome::Failed),
            Some(VerifyOutcome::Failed),
            Some(VerifyOutcome::Ok)
        ]
    );
    assert_eq!((stats.snapshots_ok, stats.snapshots_failed), (1, 2));
    assert_eq!(stats.chunks_checked, 6, "the bad chunk is read once");
    assert_eq!(stats.bad_chunks, [bad.to_hex()]);
    assert_eq!(stats.failed_snapshots.len(), 2);
    assert!(stats.failed_snapshots[0].starts_with("host/a/"));
    let aside = fx.chunk_path(2).with_file_name(format!("{bad}.0.bad"));
    assert!(aside.is_file());
    assert!(!fx.chunk_path(2).exists());
    assert!(!fx.store.chunk_store().contains(&bad));
    let chunk_lines: Vec<_> = lines.iter().filter(|l| l.starts_with("chunk ")).collect();
    assert_eq!(chunk_lines.len(), 1, "{lines:?}");
    assert!(chunk_lines[0].contains("corrupt") && chunk_lines[0].contains(".0.bad"));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("host/a/") && l.contains("FAILED"))
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("host/c/") && l.ends_with(": ok"))
    );

    // A later verify finds it missing, and renames nothing.
    let (stats, lines) = fx.verify(&snaps[..1], &all(T0 + 20), 2);
    assert_eq!(stats.unwrap().snapshots_failed, 1);
    assert!(lines.iter().any(|l| l.contains("missing")), "{lines:?}");

    // The next backup with that data stores a good copy; verify passes again.
    fx.store_chunk(2);
    let (stats, _) = fx.verify(&snaps, &all(T0 + 30), 2);
    assert_eq!(stats.unwrap().snapshots_ok, 3);
    assert_eq!(outcomes(&fx, &snaps), [Some(VerifyOutcome::Ok); 3]);
    assert!(aside.is_file(), "the evidence stays for GC to handle");
}

#[test]
fn bad_index_blob_and_sizes_fail_the_snapshot() {
    let fx = Fixture::new();
    let wrong_size = fx.snapshot("size", T0, &[1, 2], Some(&[5, 7]));
    let bad_index = fx.snapshot("index", T0, &[3], None);
    let bad_blob = fx.snapshot("blob", T0, &[3], None);
    let missing = fx.snapshot("gone", T0, &[4], None);
    let index_path = fx.store.snapshot_path(&bad_index).join("root.tar.didx");
    let mut bytes = fs::read(&index_path).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    fs::write(&index_path, bytes).unwrap();
    let blob_path = fx.store.snapshot_path(&bad_blob).join("conf.blob");
    let mut bytes = fs::read(&blob_path).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    fs::write(&blob_path, bytes).unwrap();
    fs::remove_file(fx.chunk_path(4)).unwrap();

    let snaps = [wrong_size, bad_index, bad_blob, missing];
    let (stats, lines) = fx.verify(&snaps, &all(T0), 2);
    let stats = stats.unwrap();
    assert_eq!(stats.snapshots_failed, 4, "{lines:?}");
    assert_eq!(outcomes(&fx, &snaps), [Some(VerifyOutcome::Failed); 4]);
    let line = |id: &str| lines.iter().find(|l| l.contains(id)).unwrap().clone();
    assert!(line("host/size/").contains("the index says 5"), "{lines:?}");
    assert!(line("host/index/").contains("checksum"), "{lines:?}");
    assert!(line("host/blob/").contains("conf.blob"), "{lines:?}");
    assert!(line("host/gone/").contains("missing"), "{lines:?}");
    // Good chunks referenced with a wrong size are not moved; the missing one is reported.
    assert!(fx.chunk_path(1).is_file() && fx.chunk_path(2).is_file());
    assert_eq!(stats.bad_chunks, [Digest::of(&Fixture::data(4)).to_hex()]);
}

#[test]
fn skips_recently_verified_and_vanished_snapshots() {
    let fx = Fixture::new();
    let first = fx.snapshot("a", T0, &[1, 2], None);
    let (stats, _) = fx.verify(std::slice::from_ref(&first), &all(T0), 1);
    assert_eq!(stats.unwrap().snapshots_ok, 1);
    let second = fx.snapshot("a", T0 + 1, &[2, 3], None);
    let gone = SnapshotRef::new(first.group.clone(), T0 + 2).unwrap();
    let snaps = [first.clone(), second.clone(), gone];

    let only_new = VerifyOptions {
        outdated_after_secs: None,
        only_unverified: true,
        now: T0 + 100,
    };
    let (stats, lines) = fx.verify(&snaps, &only_new, 2);
    let stats = stats.unwrap();
    assert_eq!(
        (stats.snapshots_ok, stats.snapshots_skipped),
        (1, 2),
        "{lines:?}"
    );
    assert_eq!(stats.chunks_checked, 2, "only the new snapshot's chunks");
    assert_eq!(fx.state(&first).unwrap().time, T0);
    assert_eq!(fx.state(&second).unwrap().time, T0 + 100);

    let outdated = |now| VerifyOptions {
        outdated_after_secs: Some(1000),
        only_unverified: true,
        now,
    };
    let (stats, _) = fx.verify(&snaps, &outdated(T0 + 999), 2);
    assert_eq!(stats.unwrap().snapshots_skipped, 3);
    let (stats, _) = fx.verify(&snaps, &outdated(T0 + 1000), 2);
    let stats = stats.unwrap();
    assert_eq!((stats.snapshots_ok, stats.snapshots_skipped), (1, 2));
    assert_eq!(fx.state(&first).unwrap().time, T0 + 1000);
    assert_eq!(fx.state(&second).unwrap().time, T0 + 100);
}

#[test]
fn abort_stops_promptly_and_records_nothing_more() {
    let fx = Fixture::new();
    let chunks: Vec<u32> = (1..40).collect();
    let snaps: Vec<SnapshotRef> = (0..4)
        .map(|i| fx.snapshot(&format!("s{i}"), T0, &chunks[i * 5..], None))
        .collect();

    let aborted = AtomicBool::new(true);
    let result = verify_snapshots(&fx.store, &snaps, "UPID:a", &all(T0), 2, &|_| {}, &aborted);
    assert!(matches!(result, Err(VerifyError::Aborted)));
    assert_eq!(outcomes(&fx, &snaps), [None; 4]);

    // Abort as soon as the first snapshot is done.
    let abort = AtomicBool::new(false);
    let log = |line: String| {
        if line.ends_with(": ok") {
            abort.store(true, Ordering::Relaxed);
        }
    };
    let started = Instant::now();
    let result = verify_snapshots(&fx.store, &snaps, "UPID:b", &all(T0), 3, &log, &abort);
    assert!(matches!(result, Err(VerifyError::Aborted)), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        outcomes(&fx, &snaps),
        [Some(VerifyOutcome::Ok), None, None, None]
    );

    // Abort while the chunks of a snapshot are being checked: its result is not recorded,
    // though its failure is already known.
    fx.flip_last_byte(10);
    let abort = AtomicBool::new(false);
    let log = |line: String| {
        if line.starts_with("chunk ") {
            abort.store(true, Ordering::Relaxed);
        }
    };
    let result = verify_snapshots(&fx.store, &snaps[1..], "UPID:c", &all(T0), 2, &log, &abort);
    assert!(matches!(result, Err(VerifyError::Aborted)), "{result:?}");
    assert_eq!(outcomes(&fx, &snaps[1..]), [None, None, None]);
}

#[test]
fn rename_bad_uses_ten_slots() {
    let fx = Fixture::new();
    let digest = fx.store_chunk(1);
    let chunks = fx.store.chunk_store();
    for n in 0..12u32 {
        fx.store_chunk(1);
        fs::write(chunks.chunk_path(&digest), format!("copy {n}")).unwrap();
        let moved = chunks.rename_bad(&digest).unwrap();
        let slot = n.min(9);
        assert_eq!(
            moved,
            chunks
                .chunk_path(&digest)
                .with_file_name(format!("{digest}.{slot}.bad"))
        );
        assert_eq!(fs::read_to_string(&moved).unwrap(), format!("copy {n}"));
        assert!(!chunks.contains(&digest));
        assert_eq!(
            crate::chunk_store::chunk_file_kind(moved.file_name().unwrap().to_str().unwrap()),
            crate::chunk_store::ChunkFileKind::Bad
        );
    }
    assert!(matches!(
        chunks.rename_bad(&digest),
        Err(crate::chunk_store::ChunkStoreError::NotFound { .. })
    ));
}
