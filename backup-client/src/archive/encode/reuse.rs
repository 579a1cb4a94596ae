//! Change detection in the encoder: a regular file whose size, mode, mtime, ctime and inode
//! equal what the previous split archive recorded for the same path is not read; its
//! metadata member points into chunks of the previous payload, appended by digest.
//!
//! Files of a run wait here (with every member after them, to keep the walk order) until
//! the planner decides the run: re-used, or read again as changed files would be. At most
//! [`MAX_HELD`] entries wait; then the run is decided as it stands.

use std::io::Read;
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use super::super::entry::{Entry, EntryKind, FileStamp, Timestamp};
use super::super::restore_meta::lookup_acl_name;
use super::super::source::read_meta;
use super::super::split::planner::{Planner, PreviousPayload, ReuseStats, Verdict};
use super::super::split::previous::{PreviousCatalog, PreviousFile};
use super::{ArchiveError, Encoder, EntrySink, stamp_of};

/// Entries that may wait for a run's verdict.
const MAX_HELD: usize = 4096;

/// The previous split archive: its metadata stream (read along with the walk) and its
/// payload index.
pub(crate) struct Reuse {
    catalog: PreviousCatalog<Box<dyn Read + Send>>,
    planner: Planner,
    held: Vec<Held>,
}

impl Reuse {
    pub(crate) fn new(meta: Box<dyn Read + Send>, payload: PreviousPayload) -> Self {
        Reuse {
            catalog: PreviousCatalog::new(meta, lookup_acl_name),
            planner: Planner::new(payload),
            held: Vec::new(),
        }
    }

    pub(crate) fn stats(&self) -> ReuseStats {
        self.planner.stats()
    }
}

/// An entry waiting for a run's verdict.
enum Held {
    /// An unchanged file: re-used, or read from `fs_path` after all.
    File {
        fs_path: PathBuf,
        entry: Entry,
        stamp: FileStamp,
        range: Range<u64>,
        link_key: Option<(u64, u64)>,
    },
    /// Any other member (no payload).
    Member(Entry),
}

/// Whether the file described by `meta` is the one the previous archive stored.
fn unchanged(previous: &PreviousFile, meta: &std::fs::Metadata) -> bool {
    let EntryKind::File { size, .. } = previous.entry.kind else {
        return false;
    };
    let mtime = Timestamp {
        sec: meta.mtime(),
        nsec: u32::try_from(meta.mtime_nsec()).unwrap_or(u32::MAX),
    };
    size == meta.size()
        && previous.entry.meta.mode == meta.mode() & 0o7777
        && previous.entry.meta.mtime == mtime
        && previous.stamp == stamp_of(meta)
}

impl<S: EntrySink> Encoder<'_, S> {
    /// A regular file: re-used when unchanged, else read.
    pub(super) fn add_regular(
        &mut self,
        fs_path: PathBuf,
        archive_path: Vec<u8>,
        meta: &std::fs::Metadata,
        link_key: Option<(u64, u64)>,
    ) -> Result<(), ArchiveError> {
        let Some(reuse) = &mut self.reuse else {
            return self.add_file(&fs_path, archive_path, link_key);
        };
        let previous = reuse.catalog.lookup(&archive_path);
        if let Some(failure) = reuse.catalog.take_failure() {
            self.stats.errors.push(format!(
                "previous metadata archive unreadable ({failure}); files from here on are read in full"
            ));
        }
        let Some(previous) = previous.filter(|p| {
            unchanged(p, meta) && self.reuse.as_ref().is_some_and(|r| r.planner.in_bounds(&p.range))
        }) else {
            self.close_run()?;
            return self.add_file(&fs_path, archive_path, link_key);
        };
        let mut problems = Vec::new();
        let entry_meta = read_meta(&fs_path, meta, &mut self.names, &mut problems);
        self.report(&archive_path, problems);
        let entry = Entry {
            path: archive_path,
            kind: previous.entry.kind,
            meta: entry_meta,
        };
        if let Some(key) = link_key {
            self.links.insert(key, entry.path.clone());
        }
        let continues = self
            .reuse
            .as_ref()
            .is_some_and(|r| r.planner.continues_run(&previous.range));
        if !continues {
            self.close_run()?;
        }
        let pos = self.payload_pos()?;
        let Some(reuse) = &mut self.reuse else {
            return Ok(());
        };
        if reuse.planner.add(previous.range.clone()) {
            return self.release(&entry, &previous.stamp, &previous.range);
        }
        reuse.held.push(Held::File {
            fs_path,
            entry,
            stamp: previous.stamp,
            range: previous.range,
            link_key,
        });
        if reuse.planner.ready_to_commit(pos) || reuse.held.len() >= MAX_HELD {
            self.decide_held()?;
        }
        Ok(())
    }

    /// A member without payload: written now, or after the held entries before it.
    pub(super) fn emit(&mut self, entry: Entry) -> Result<(), ArchiveError> {
        match &mut self.reuse {
            Some(reuse) if !reuse.held.is_empty() => {
                reuse.held.push(Held::Member(entry));
                if reuse.held.len() >= MAX_HELD {
                    self.decide_held()?;
                }
                Ok(())
            }
            _ => self.write_member(&entry, None, None),
        }
    }

    /// Ends the open run: decides it if it is still undecided.
    pub(super) fn close_run(&mut self) -> Result<(), ArchiveError> {
        if self.reuse.as_ref().is_some_and(|r| r.planner.has_run()) {
            self.decide_held()?;
            if let Some(reuse) = &mut self.reuse {
                reuse.planner.end_run();
            }
        }
        Ok(())
    }

    /// Decides the open run and writes every held entry accordingly.
    fn decide_held(&mut self) -> Result<(), ArchiveError> {
        let pos = self.payload_pos()?;
        let Some(reuse) = &mut self.reuse else {
            return Ok(());
        };
        let verdict = if reuse.planner.run_committed() {
            Verdict::Reuse
        } else {
            reuse.planner.decide(pos)
        };
        let held = std::mem::take(&mut reuse.held);
        for item in held {
            match item {
                Held::Member(entry) => self.write_member(&entry, None, None)?,
                Held::File {
                    entry,
                    stamp,
                    range,
                    ..
                } if verdict == Verdict::Reuse => self.release(&entry, &stamp, &range)?,
                Held::File {
                    fs_path,
                    entry,
                    link_key,
                    ..
                } => self.add_file(&fs_path, entry.path, link_key)?,
            }
        }
        Ok(())
    }

    /// Writes a file of a re-used run: its chunks (those not yet appended), then its
    /// metadata member pointing at its content in them.
    fn release(
        &mut self,
        entry: &Entry,
        stamp: &FileStamp,
        range: &Range<u64>,
    ) -> Result<(), ArchiveError> {
        let output = |source| ArchiveError::Output { source };
        let pos = self.payload_pos()?;
        let Some(reuse) = &mut self.reuse else {
            return Ok(());
        };
        let (offset, chunks) = reuse.planner.place(range, pos);
        let out = split_out(&mut self.sink)?;
        out.append_chunks(&chunks).map_err(output)?;
        out.reused_member(entry, stamp, offset).map_err(output)?;
        self.stats.files += 1;
        self.stats.entries += 1;
        self.progress
            .files
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.progress
            .entries
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn payload_pos(&mut self) -> Result<u64, ArchiveError> {
        Ok(split_out(&mut self.sink)?.payload_pos())
    }
}

fn split_out<S: EntrySink>(sink: &mut S) -> Result<&mut dyn super::SplitOut, ArchiveError> {
    sink.split_out().ok_or_else(|| ArchiveError::Output {
        source: std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "change detection needs the split layout",
        ),
    })
}
