//! Garbage collection of a store with 200,000 chunks, 150,000 of them referenced.
//!
//! Run with `cargo bench -p datastore --bench gc`. Builds the store in a temp directory under
//! /var/tmp (small random chunks inserted with `ChunkStore::insert`, four overlapping
//! snapshots whose indexes reference 150,000 of them), ages every chunk by two days, then
//! times one `run_gc` with the default grace and prints wall time, chunks per second and
//! the process's peak RSS before and during the GC as a markdown table. The page cache is
//! warm (the store was just written), so this measures GC's own cost, not the disk's.

use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use datastore::blob;
use datastore::digest::Digest;
use datastore::gc::{DEFAULT_GRACE_SECS, GcOptions, run_gc};
use datastore::index::DynamicIndexWriter;
use datastore::manifest::{BackupManifest, ManifestFile};
use datastore::names::{BackupType, Namespace};
use datastore::snapshot::{BackupGroup, SnapshotRef};
use datastore::store::DataStore;
use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;

const CHUNKS: u32 = 200_000;
const REFERENCED: u32 = 150_000;
const SNAPSHOTS: u32 = 4;
/// Chunks per snapshot; consecutive snapshots overlap, like daily backups.
const PER_SNAPSHOT: u32 = 50_000;
const CHUNK_SIZE: usize = 256;
const INSERT_THREADS: u32 = 8;

/// Deterministic random data of chunk `n`.
fn chunk_data(n: u32) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(n).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    (0..CHUNK_SIZE / 8)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()
        })
        .collect()
}

/// A field of /proc/self/status in kB.
fn proc_status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn build(store: &DataStore) -> Vec<Digest> {
    let chunks = store.chunk_store();
    let digests = Mutex::new(vec![Digest([0; 32]); CHUNKS as usize]);
    std::thread::scope(|scope| {
        for t in 0..INSERT_THREADS {
            let digests = &digests;
            scope.spawn(move || {
                for n in (t..CHUNKS).step_by(INSERT_THREADS as usize) {
                    let data = chunk_data(n);
                    let digest = Digest::of(&data);
                    chunks.insert(&digest, &blob::encode(&data, true)).unwrap();
                    digests.lock().unwrap()[n as usize] = digest;
                }
            });
        }
    });
    chunks.sync_dirty_dirs().unwrap();
    let digests = digests.into_inner().unwrap();
    let group = BackupGroup::new(Namespace::root(), BackupType::Host, "bench").unwrap();
    for s in 0..SNAPSHOTS {
        let snap = SnapshotRef::new(group.clone(), 1_700_000_000 + i64::from(s) * 86_400).unwrap();
        let dir = store.create_snapshot_dir(&snap).unwrap();
        let mut writer = DynamicIndexWriter::create(&dir.join("root.tar.didx")).unwrap();
        let first = s * (REFERENCED - PER_SNAPSHOT) / (SNAPSHOTS - 1);
        for n in first..first + PER_SNAPSHOT {
            writer
                .push(writer.size() + CHUNK_SIZE as u64, &digests[n as usize])
                .unwrap();
        }
        let stats = writer.close().unwrap();
        let mut manifest = BackupManifest::new(&snap);
        manifest.files.push(ManifestFile {
            filename: "root.tar.didx".into(),
            size: stats.size,
            csum: stats.csum.to_hex(),
            chunks: stats.chunks,
        });
        store.write_manifest(&snap, &manifest).unwrap();
    }
    digests
}

/// Sets every chunk file's atime `age` seconds back.
fn age_chunks(store: &DataStore, age: i64) -> u64 {
    let when = TimeSpec::new(now() - age, 0);
    let mut count = 0;
    for dir in store.chunk_store().prefix_dirs().unwrap() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            utimensat(
                nix::fcntl::AT_FDCWD,
                &path,
                &when,
                &TimeSpec::UTIME_OMIT,
                UtimensatFlags::NoFollowSymlink,
            )
            .unwrap();
            count += 1;
        }
    }
    count
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn main() {
    let tmp = tempfile::Builder::new()
        .prefix("gc-bench-")
        .tempdir_in("/var/tmp")
        .expect("temp dir under /var/tmp");
    let store = DataStore::create(&tmp.path().join("store")).unwrap();

    let started = Instant::now();
    let digests = build(&store);
    let build_time = started.elapsed();
    let sample = store.chunk_store().chunk_path(&digests[0]);
    drop(digests);
    let aged = age_chunks(&store, 2 * 86_400);
    assert_eq!(aged, u64::from(CHUNKS));
    let atime_before = std::fs::metadata(&sample).unwrap().atime();

    let hwm_before = proc_status_kb("VmHWM:");
    // Writing 5 resets VmHWM to the current RSS, so the next reading is GC's own peak.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let rss_start = proc_status_kb("VmRSS:");

    let mark_done = Mutex::new(None);
    let log = |line: String| {
        if line.starts_with("phase 2") {
            *mark_done.lock().unwrap() = Some(Instant::now());
        }
    };
    let options = GcOptions {
        grace_secs: DEFAULT_GRACE_SECS,
        oldest_writer_start: None,
        now: now(),
    };
    let gc_start = Instant::now();
    let stats = run_gc(&store, &options, &log, &AtomicBool::new(false)).unwrap();
    let wall = gc_start.elapsed();
    let hwm_after = proc_status_kb("VmHWM:");
    let mark_time = mark_done
        .into_inner()
        .unwrap()
        .map_or(Duration::ZERO, |t| t - gc_start);

    assert_eq!(stats.removed_chunks, u64::from(CHUNKS - REFERENCED));
    assert_eq!(stats.kept_chunks, u64::from(REFERENCED));
    assert_eq!(stats.missing_chunks, 0);
    assert!(std::fs::metadata(&sample).unwrap().atime() > atime_before);

    let kb = |v: Option<u64>| {
        v.map_or("n/a".to_owned(), |kb| {
            format!("{:.1} MiB", kb as f64 / 1024.0)
        })
    };
    let total = f64::from(CHUNKS);
    println!("| GC of {CHUNKS} chunks ({REFERENCED} referenced by {SNAPSHOTS} indexes) | |");
    println!("|---|---|");
    println!(
        "| build (insert + fsync, {INSERT_THREADS} threads) | {} |",
        secs(build_time)
    );
    println!("| GC wall time | {} |", secs(wall));
    println!(
        "| of which mark ({} references) | {} |",
        stats.marked_chunks,
        secs(mark_time)
    );
    println!("| of which sweep | {} |", secs(wall - mark_time));
    println!(
        "| chunks/s (all chunks / wall) | {:.0} |",
        total / wall.as_secs_f64()
    );
    println!(
        "| removed / kept | {} / {} |",
        stats.removed_chunks, stats.kept_chunks
    );
    println!(
        "| peak RSS before GC (VmHWM, build included) | {} |",
        kb(hwm_before)
    );
    println!("| RSS at GC start | {} |", kb(rss_start));
    println!(
        "| peak RSS during GC (VmHWM{}) | {} |",
        if reset {
            ", reset at start"
        } else {
            ", not resettable here"
        },
        kb(hwm_after)
    );
}
