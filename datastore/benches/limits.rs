//! Single-core throughput of the datastore's hot paths on realistic data.
//!
//! Run with `cargo bench -p datastore --bench limits`. Loads up to 256 MiB of real files from
//! system directories (generated mixed data fills any shortfall), then times the chunker,
//! SHA-256, the all-zero test, and blob encode/decode (the store's zstd settings) per
//! 4 MiB-average chunk.
//! Each figure is the best of a few runs after a warm-up, printed as a markdown table.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use datastore::blob;
use datastore::chunker::{ChunkerParams, chunk_lengths};
use datastore::digest::{Digest, is_all_zero};

const TARGET: usize = 256 << 20;
const MAX_FILE: u64 = 32 << 20;
const RUNS: usize = 3;
const SOURCES: [&str; 3] = ["/usr/lib/x86_64-linux-gnu", "/usr/share", "/usr/bin"];

/// Appends regular files under `dir` (sorted, depth first, symlinks skipped) to `out`.
fn collect_files(dir: &Path, out: &mut Vec<u8>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if out.len() >= TARGET {
            return;
        }
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            collect_files(&path, out);
        } else if meta.is_file()
            && meta.len() <= MAX_FILE
            && let Ok(data) = std::fs::read(&path)
        {
            let room = TARGET - out.len();
            out.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
}

/// Random, text-like and zero runs, for machines without enough system files.
fn fill_generated(out: &mut Vec<u8>) {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let words: [&[u8]; 8] = [
        b"backup ", b"chunk ", b"store ", b"index ", b"the ", b"of ", b"data\n", b"fn ",
    ];
    while out.len() < TARGET {
        let run = (next() % (256 << 10)) as usize + 1;
        match next() % 3 {
            0 => (0..run / 8).for_each(|_| out.extend_from_slice(&next().to_le_bytes())),
            1 => (0..run / 5).for_each(|_| out.extend_from_slice(words[(next() % 8) as usize])),
            _ => out.resize(out.len() + run / 4, 0),
        }
    }
    out.truncate(TARGET);
}

/// Best time of `RUNS` runs after one warm-up.
fn best_of(mut f: impl FnMut()) -> Duration {
    f();
    (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn mb_per_s(bytes: usize, time: Duration) -> f64 {
    bytes as f64 / 1e6 / time.as_secs_f64()
}

fn main() {
    let load = Instant::now();
    let mut data = Vec::with_capacity(TARGET);
    for dir in SOURCES {
        collect_files(Path::new(dir), &mut data);
    }
    let real = data.len();
    fill_generated(&mut data);
    println!(
        "data: {} MiB ({} MiB from {}, rest generated), loaded in {:.1}s\n",
        data.len() >> 20,
        real >> 20,
        SOURCES.join(", "),
        load.elapsed().as_secs_f64()
    );

    let params = ChunkerParams::default();
    let mut rows: Vec<(String, f64, String)> = Vec::new();

    let mut lengths = Vec::new();
    let t = best_of(|| lengths = black_box(chunk_lengths(params, black_box(&data))));
    let avg = data.len() / lengths.len().max(1);
    rows.push((
        "chunker (FastCDC, 4 MiB avg)".into(),
        mb_per_s(data.len(), t),
        format!(
            "{} chunks, mean {:.2} MiB",
            lengths.len(),
            avg as f64 / (1 << 20) as f64
        ),
    ));

    let mut chunks: Vec<&[u8]> = Vec::with_capacity(lengths.len());
    let mut rest = &data[..];
    for &len in &lengths {
        let (chunk, tail) = rest.split_at(len);
        chunks.push(chunk);
        rest = tail;
    }

    let t = best_of(|| {
        for c in &chunks {
            black_box(Digest::of(black_box(c)));
        }
    });
    rows.push((
        "SHA-256".into(),
        mb_per_s(data.len(), t),
        "per chunk".into(),
    ));

    // Real pages: an opaque fill value keeps the compiler from turning this into calloc, whose
    // untouched pages all map one shared zero page that stays in cache.
    let mut zeros = vec![1u8; TARGET];
    zeros.fill(black_box(0));
    let t = best_of(|| assert!(is_all_zero(black_box(&zeros))));
    rows.push((
        "is_all_zero".into(),
        mb_per_s(zeros.len(), t),
        "all-zero buffer, full scan".into(),
    ));
    drop(zeros);

    let mut encoded: Vec<Vec<u8>> = Vec::new();
    let t = best_of(|| encoded = chunks.iter().map(|c| blob::encode(c, true)).collect());
    let stored: usize = encoded.iter().map(Vec::len).sum();
    rows.push((
        "zstd compress (blob::encode)".into(),
        mb_per_s(data.len(), t),
        format!(
            "stored {:.1}% of input",
            100.0 * stored as f64 / data.len() as f64
        ),
    ));

    let t = best_of(|| {
        for e in &encoded {
            black_box(blob::decode(black_box(e), blob::MAX_CHUNK_SIZE).unwrap());
        }
    });
    rows.push((
        "zstd decompress (blob::decode)".into(),
        mb_per_s(data.len(), t),
        "MB/s of plain output, CRC checked".into(),
    ));

    println!("| operation (1 core) | MB/s | notes |");
    println!("|---|---:|---|");
    for (name, rate, note) in rows {
        println!("| {name} | {rate:.0} | {note} |");
    }
    println!("\nMB = 10^6 bytes; best of {RUNS} runs after a warm-up.");
}
