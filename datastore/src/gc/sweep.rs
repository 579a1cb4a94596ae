//! GC phase 2: walk `.chunks` one prefix directory at a time and remove what
//! [`chunk_fate`] calls garbage, and temp files that [`temp_is_stale`] calls leftovers.
//!
//! Nothing is kept per chunk: each directory entry is stat'ed, decided, counted and
//! forgotten. Removal goes through [`ChunkStore::remove_if_unused`], which re-checks the
//! atime once the chunk has left its name, so a backup that touches the chunk meanwhile
//! keeps it. Removals are not fsynced: a removed chunk that comes back after a crash is
//! merely garbage again for the next GC (a per-directory fsync cost 2.7x the sweep time
//! in the GC benchmark); a chunk put back under its name is made durable by
//! `remove_if_unused` itself.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{ChunkFate, GcError, chunk_fate, io_error, progress_step, temp_is_stale};
use crate::chunk_store::{ChunkFileKind, ChunkRemoval, ChunkStore, chunk_file_kind};

/// What the sweep counted.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct SweepTally {
    pub(super) removed_chunks: u64,
    pub(super) removed_bytes: u64,
    pub(super) kept_chunks: u64,
    pub(super) kept_bytes: u64,
    pub(super) pending_chunks: u64,
    pub(super) pending_bytes: u64,
    pub(super) bad_chunks: u64,
    pub(super) bad_bytes: u64,
    pub(super) removed_temp_files: u64,
}

impl SweepTally {
    fn count(&mut self, fate: ChunkFate, size: u64) {
        let (chunks, bytes) = match fate {
            ChunkFate::Remove => (&mut self.removed_chunks, &mut self.removed_bytes),
            ChunkFate::Pending => (&mut self.pending_chunks, &mut self.pending_bytes),
            ChunkFate::Keep => (&mut self.kept_chunks, &mut self.kept_bytes),
        };
        *chunks += 1;
        *bytes += size;
    }

    /// Bytes of the chunk files (`.bad` included) that were there when the sweep saw them.
    pub(super) fn disk_bytes_before(&self) -> u64 {
        self.disk_bytes_after() + self.removed_bytes
    }

    /// Bytes of the chunk files that are left.
    pub(super) fn disk_bytes_after(&self) -> u64 {
        self.kept_bytes + self.pending_bytes + self.bad_bytes
    }
}

/// Sweeps every prefix directory. `marked_since` is the line between kept and pending.
pub(super) fn sweep(
    chunks: &ChunkStore,
    marked_since: i64,
    cutoff: i64,
    log: &(dyn Fn(String) + Sync),
    abort: &AtomicBool,
) -> Result<SweepTally, GcError> {
    let dirs = chunks.prefix_dirs()?;
    let mut tally = SweepTally::default();
    for (i, dir) in dirs.iter().enumerate() {
        if abort.load(Ordering::Relaxed) {
            return Err(GcError::Aborted);
        }
        sweep_dir(chunks, dir, marked_since, cutoff, &mut tally)?;
        if let Some(percent) = progress_step(i + 1, dirs.len()) {
            log(format!(
                "swept {percent}% ({} of {} chunk directories), {} chunks removed so far",
                i + 1,
                dirs.len(),
                tally.removed_chunks
            ));
        }
    }
    Ok(tally)
}

fn sweep_dir(
    chunks: &ChunkStore,
    dir: &Path,
    marked_since: i64,
    cutoff: i64,
    tally: &mut SweepTally,
) -> Result<(), GcError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(io_error("list chunk directory", dir)(err)),
    };
    let fate = |atime| chunk_fate(atime, marked_since, cutoff);
    for entry in entries {
        let entry = entry.map_err(io_error("list chunk directory", dir))?;
        let kind = entry
            .file_name()
            .to_str()
            .map_or(ChunkFileKind::Other, chunk_file_kind);
        if kind == ChunkFileKind::Other {
            continue;
        }
        let meta = match entry.metadata() {
            Ok(meta) if meta.is_file() => meta,
            Ok(_) => continue,
            // Removed meanwhile: our own move-aside names, or a finished insert's temp file.
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(io_error("stat", &entry.path())(err)),
        };
        match kind {
            ChunkFileKind::Chunk => match fate(meta.atime()) {
                ChunkFate::Remove => {
                    let path = entry.path();
                    match chunks
                        .remove_if_unused(&path, |atime| fate(atime) == ChunkFate::Remove)?
                    {
                        ChunkRemoval::Removed { size } => {
                            tally.count(ChunkFate::Remove, size);
                        }
                        ChunkRemoval::Touched { atime, size } => tally.count(fate(atime), size),
                        ChunkRemoval::Vanished => {}
                    }
                }
                other => tally.count(other, meta.len()),
            },
            ChunkFileKind::Bad => {
                tally.bad_chunks += 1;
                tally.bad_bytes += meta.len();
            }
            ChunkFileKind::Temp => {
                if temp_is_stale(meta.atime(), meta.mtime(), cutoff) {
                    let path = entry.path();
                    match fs::remove_file(&path) {
                        Ok(()) => {
                            tally.removed_temp_files += 1;
                        }
                        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                        Err(err) => return Err(io_error("remove", &path)(err)),
                    }
                }
            }
            ChunkFileKind::Other => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_by_fate() {
        let mut tally = SweepTally::default();
        tally.count(ChunkFate::Remove, 10);
        tally.count(ChunkFate::Keep, 20);
        tally.count(ChunkFate::Keep, 1);
        tally.count(ChunkFate::Pending, 5);
        tally.bad_bytes = 7;
        assert_eq!(
            (
                tally.removed_chunks,
                tally.kept_chunks,
                tally.pending_chunks
            ),
            (1, 2, 1)
        );
        assert_eq!(tally.disk_bytes_after(), 20 + 1 + 5 + 7);
        assert_eq!(tally.disk_bytes_before(), 10 + 20 + 1 + 5 + 7);
    }
}
