//! One verify call: walks the snapshots, checks their manifests, indexes and blobs here, and
//! hands each chunk that this call has not seen yet to the pool.
//!
//! Chunk verdicts are kept for the whole call; a snapshot waits only for the chunks it
//! references. Problems found are collected per snapshot, a bounded number in full.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest as _, Sha256};

use super::pool::{Checked, ChunkProblem, Pool};
use super::{VerifyError, VerifyOptions, VerifyStats, needs_verify, snapshot_name};
use crate::blob;
use crate::digest::Digest;
use crate::index::DynamicIndex;
use crate::manifest::{ManifestFile, VerifyOutcome, VerifyState};
use crate::names::INDEX_SUFFIX;
use crate::snapshot::{SnapshotRef, format_time};
use crate::store::{DataStore, StoreError};

/// Largest blob file checked: the protocol's blob limit (128 MiB) and its header.
const MAX_BLOB_SIZE: usize = 128 << 20;
/// Problems of one snapshot spelled out in its log line; the rest are counted.
const MAX_REPORTED_PROBLEMS: usize = 5;

/// What this call knows about a chunk.
enum Verdict {
    Pending,
    Good { size: u64 },
    Bad { reason: String },
}

/// A chunk reference whose verdict was pending when its index was read.
struct ChunkRef {
    file: usize,
    digest: Digest,
    size: u64,
}

/// The problems of one snapshot.
#[derive(Default)]
struct Problems {
    shown: Vec<String>,
    more: usize,
}

impl Problems {
    fn add(&mut self, problem: String) {
        if self.shown.len() < MAX_REPORTED_PROBLEMS {
            self.shown.push(problem);
        } else {
            self.more += 1;
        }
    }

    fn is_empty(&self) -> bool {
        self.shown.is_empty()
    }

    fn summary(&self) -> String {
        let mut text = self.shown.join("; ");
        if self.more > 0 {
            text.push_str(&format!("; and {} more", self.more));
        }
        text
    }
}

/// Verdicts, stats and log: what the pool's results update.
struct Ledger<'a> {
    verdicts: HashMap<Digest, Verdict>,
    stats: VerifyStats,
    log: &'a (dyn Fn(String) + Sync),
}

impl Ledger<'_> {
    fn record(&mut self, checked: Checked) {
        self.stats.chunks_checked += 1;
        self.stats.bytes_checked += checked.read_bytes;
        let verdict = match checked.outcome {
            Ok(size) => Verdict::Good { size },
            Err(problem) => {
                let digest = checked.digest;
                let mut line = format!("chunk {digest}: {problem}");
                match &checked.renamed {
                    Some(Ok(path)) => line.push_str(&format!(", moved to {}", path.display())),
                    Some(Err(err)) => line.push_str(&format!(", cannot move it aside: {err}")),
                    None => {}
                }
                (self.log)(line);
                self.stats.bad_chunks.push(digest.to_hex());
                let reason = match problem {
                    ChunkProblem::Corrupt(_) | ChunkProblem::Oversized(_) => "corrupt".into(),
                    other => other.to_string(),
                };
                Verdict::Bad { reason }
            }
        };
        self.verdicts.insert(checked.digest, verdict);
    }
}

pub(super) struct Job<'a> {
    store: &'a DataStore,
    upid: &'a str,
    options: &'a VerifyOptions,
    abort: &'a AtomicBool,
    pool: Pool<'a>,
    ledger: Ledger<'a>,
}

impl<'a> Job<'a> {
    pub(super) fn new(
        store: &'a DataStore,
        upid: &'a str,
        options: &'a VerifyOptions,
        log: &'a (dyn Fn(String) + Sync),
        abort: &'a AtomicBool,
        pool: Pool<'a>,
    ) -> Self {
        let ledger = Ledger {
            verdicts: HashMap::new(),
            stats: VerifyStats::default(),
            log,
        };
        Self {
            store,
            upid,
            options,
            abort,
            pool,
            ledger,
        }
    }

    fn log(&self, line: String) {
        (self.ledger.log)(line);
    }

    pub(super) fn run(mut self, snapshots: &[SnapshotRef]) -> Result<VerifyStats, VerifyError> {
        for snap in snapshots {
            self.snapshot(snap)?;
        }
        let s = &self.ledger.stats;
        self.log(format!(
            "verify done: {} ok, {} failed, {} skipped; {} chunks ({} bytes) checked, {} bad",
            s.snapshots_ok,
            s.snapshots_failed,
            s.snapshots_skipped,
            s.chunks_checked,
            s.bytes_checked,
            s.bad_chunks.len()
        ));
        Ok(self.ledger.stats)
    }

    fn snapshot(&mut self, snap: &SnapshotRef) -> Result<(), VerifyError> {
        if self.abort.load(Ordering::Relaxed) {
            return Err(VerifyError::Aborted);
        }
        let name = snapshot_name(snap);
        let manifest = match self.store.read_manifest(snap) {
            Ok(manifest) => manifest,
            Err(StoreError::SnapshotNotFound { .. }) => {
                self.ledger.stats.snapshots_skipped += 1;
                self.log(format!(
                    "snapshot {name}: skipped, not (or no longer) finished"
                ));
                return Ok(());
            }
            Err(err) => {
                // Nowhere to record the result: the manifest itself is unreadable.
                self.fail(name, &format!("manifest unreadable: {err}"));
                return Ok(());
            }
        };
        if let Some(last) = manifest.verify_state()
            && !needs_verify(Some(&last), self.options)
        {
            self.ledger.stats.snapshots_skipped += 1;
            self.log(format!(
                "snapshot {name}: skipped, verified at {} ({})",
                format_time(last.time),
                last.state
            ));
            return Ok(());
        }
        let mut problems = Problems::default();
        let mut waiting = Vec::new();
        for (i, file) in manifest.files.iter().enumerate() {
            if file.filename.ends_with(INDEX_SUFFIX) {
                self.index(snap, i, file, &mut problems, &mut waiting)?;
            } else {
                self.blob(snap, file, &mut problems);
            }
        }
        let ledger = &mut self.ledger;
        self.pool.drain(&mut |checked| ledger.record(checked))?;
        // An abort that came with the last result still leaves this snapshot unrecorded.
        if self.abort.load(Ordering::Relaxed) {
            return Err(VerifyError::Aborted);
        }
        for r in waiting {
            chunk_problem(&self.ledger, &manifest.files[r.file], &r, &mut problems);
        }

        let outcome = if problems.is_empty() {
            VerifyOutcome::Ok
        } else {
            VerifyOutcome::Failed
        };
        let state = VerifyState {
            state: outcome,
            upid: self.upid.to_owned(),
            time: self.options.now,
        };
        match self.store.update_verify_state(snap, &state) {
            Ok(()) => {}
            Err(StoreError::SnapshotNotFound { .. }) => {
                self.ledger.stats.snapshots_skipped += 1;
                self.log(format!(
                    "snapshot {name}: removed while verified, not recorded"
                ));
                return Ok(());
            }
            Err(source) => {
                return Err(VerifyError::Record {
                    snapshot: name,
                    source: Box::new(source),
                });
            }
        }
        match outcome {
            VerifyOutcome::Ok => {
                self.ledger.stats.snapshots_ok += 1;
                self.log(format!("snapshot {name}: ok"));
            }
            VerifyOutcome::Failed => self.fail(name, &problems.summary()),
        }
        Ok(())
    }

    fn fail(&mut self, name: String, why: &str) {
        self.log(format!("snapshot {name}: FAILED: {why}"));
        self.ledger.stats.snapshots_failed += 1;
        self.ledger.stats.failed_snapshots.push(name);
    }

    /// Checks an index against the manifest, then queues its chunks that this call has not
    /// seen. References to chunks whose verdict is known are judged at once; the others
    /// wait in `waiting` (once per distinct digest and size).
    fn index(
        &mut self,
        snap: &SnapshotRef,
        file_no: usize,
        file: &ManifestFile,
        problems: &mut Problems,
        waiting: &mut Vec<ChunkRef>,
    ) -> Result<(), VerifyError> {
        let name = &file.filename;
        let index = match self.store.snapshot_file_path(snap, name) {
            Ok(path) => DynamicIndex::load(&path).map_err(|e| e.to_string()),
            Err(err) => Err(err.to_string()),
        };
        let index = match index {
            Ok(index) => index,
            Err(err) => {
                problems.add(format!("{name}: {err}"));
                return Ok(());
            }
        };
        let mismatch = if !index.csum.to_hex().eq_ignore_ascii_case(&file.csum) {
            Some(format!(
                "checksum {} is not the manifest's {}",
                index.csum, file.csum
            ))
        } else if index.size() != file.size {
            Some(format!(
                "size {} is not the manifest's {}",
                index.size(),
                file.size
            ))
        } else if index.entries.len() as u64 != file.chunks {
            let n = index.entries.len();
            Some(format!("{n} chunks, the manifest says {}", file.chunks))
        } else {
            None
        };
        if let Some(mismatch) = mismatch {
            // An index that is not the one the backup wrote says nothing about its chunks.
            problems.add(format!("{name}: {mismatch}"));
            return Ok(());
        }
        let mut queued = HashSet::new();
        for i in 0..index.entries.len() {
            let digest = index.entries[i].digest;
            let range = index.chunk_range(i);
            let r = ChunkRef {
                file: file_no,
                digest,
                size: range.end - range.start,
            };
            match self.ledger.verdicts.get(&digest) {
                Some(Verdict::Pending) => {}
                Some(_) => {
                    chunk_problem(&self.ledger, file, &r, problems);
                    continue;
                }
                None => {
                    self.ledger.verdicts.insert(digest, Verdict::Pending);
                    let ledger = &mut self.ledger;
                    self.pool
                        .submit(digest, &mut |checked| ledger.record(checked))?;
                }
            }
            if queued.insert((digest, r.size)) {
                waiting.push(r);
            }
        }
        Ok(())
    }

    /// Checks a blob file: SHA-256 against the manifest, CRC and decoding, size.
    fn blob(&self, snap: &SnapshotRef, file: &ManifestFile, problems: &mut Problems) {
        let name = &file.filename;
        if let Err(err) = check_blob(self.store, snap, file) {
            problems.add(format!("{name}: {err}"));
        }
    }
}

/// Adds the problem of a chunk reference whose verdict is known, if it has one.
fn chunk_problem(ledger: &Ledger<'_>, file: &ManifestFile, r: &ChunkRef, problems: &mut Problems) {
    let name = &file.filename;
    match ledger.verdicts.get(&r.digest) {
        Some(Verdict::Good { size }) if *size == r.size => {}
        Some(Verdict::Good { size }) => problems.add(format!(
            "{name}: chunk {} has {size} bytes, the index says {}",
            r.digest, r.size
        )),
        Some(Verdict::Bad { reason }) => {
            problems.add(format!("{name}: chunk {} {reason}", r.digest));
        }
        Some(Verdict::Pending) | None => {
            problems.add(format!("{name}: chunk {} was not checked", r.digest));
        }
    }
}

fn check_blob(store: &DataStore, snap: &SnapshotRef, file: &ManifestFile) -> Result<(), String> {
    let path = store
        .snapshot_file_path(snap, &file.filename)
        .map_err(|e| e.to_string())?;
    let bytes = read_bounded(&path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => "missing".to_string(),
        _ => format!("unreadable: {e}"),
    })?;
    let csum = hex::encode(Sha256::digest(&bytes));
    if !csum.eq_ignore_ascii_case(&file.csum) {
        return Err(format!(
            "SHA-256 {csum} is not the manifest's {}",
            file.csum
        ));
    }
    let data = blob::decode(&bytes, MAX_BLOB_SIZE).map_err(|e| e.to_string())?;
    // The server records the decoded size; the stored length is accepted too (the checksum
    // above already pins the content).
    let sizes = [data.len() as u64, bytes.len() as u64];
    if !sizes.contains(&file.size) {
        return Err(format!(
            "size {} is not the manifest's {}",
            data.len(),
            file.size
        ));
    }
    Ok(())
}

/// Reads a file of at most a blob's largest size.
fn read_bounded(path: &std::path::Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let limit = (MAX_BLOB_SIZE + crate::file_formats::BLOB_HEADER_SIZE) as u64;
    let mut bytes = Vec::new();
    fs::File::open(path)?
        .take(limit + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::other(format!("larger than {limit} bytes")));
    }
    Ok(bytes)
}
