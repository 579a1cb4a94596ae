//! Change detection in the encoder: a regular file whose size, mode, mtime, ctime and inode
//! equal what the previous split archive recorded for the same path is not read (nor are
//! its xattrs and ACLs, which cannot change without changing the ctime); its
//! metadata member points into chunks of the previous payload, appended by digest
//! (the planner says which, or that the file is better read again).

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use super::super::entry::{Entry, EntryKind, EntryMeta, Timestamp};
use super::super::source::basic_meta;
use super::super::split::planner::{Placement, Planner, PreviousPayload, ReuseStats};
use super::super::split::previous::{EntrySource, PreviousCatalog, PreviousFile};
use super::{ArchiveError, Encoder, EntrySink, SplitOut, stamp_of};

/// The previous split archive: its metadata stream (read along with the walk) and its
/// payload index.
pub(crate) struct Reuse {
    catalog: PreviousCatalog,
    planner: Planner,
}

impl Reuse {
    pub(crate) fn new(entries: EntrySource, payload: PreviousPayload) -> Self {
        Reuse {
            catalog: PreviousCatalog::new(entries),
            planner: Planner::new(payload),
        }
    }

    pub(crate) fn stats(&self) -> ReuseStats {
        self.planner.stats()
    }

    pub(crate) fn dead_chunks(&self) -> Vec<(u64, u64)> {
        self.planner.dead_chunks()
    }
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
    /// A regular file: re-used when unchanged (and the planner agrees), else read.
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
            self.stats.notes.push(format!(
                "previous metadata archive unreadable ({failure}); files from here on are read in full"
            ));
        }
        // The same path bytes too (not only the same normalized path): the payload header's
        // tag hashes them.
        let Some(previous) =
            previous.filter(|p| p.entry.path == archive_path && unchanged(p, meta))
        else {
            return self.add_file(&fs_path, archive_path, link_key);
        };
        let output = |source| ArchiveError::Output { source };
        let out = split_out(&mut self.sink)?;
        let placement = match &mut self.reuse {
            Some(reuse) if reuse.planner.in_bounds(&previous.range) => {
                reuse.planner.place(&previous.range, out.payload_pos())
            }
            _ => Placement::Read,
        };
        let Placement::Reuse { offset, append } = placement else {
            return self.add_file(&fs_path, archive_path, link_key);
        };
        // Owner, mode and times from the stat; xattrs and ACLs as the previous archive
        // stored them: setting either changes the ctime, which is unchanged.
        let PreviousFile {
            entry: previous_entry,
            stamp,
            ..
        } = previous;
        let entry = Entry {
            path: archive_path,
            kind: previous_entry.kind,
            meta: EntryMeta {
                xattrs: previous_entry.meta.xattrs,
                acl_access: previous_entry.meta.acl_access,
                acl_default: previous_entry.meta.acl_default,
                ..basic_meta(meta, &mut self.names)
            },
        };
        let out = split_out(&mut self.sink)?;
        out.append_chunks(&append).map_err(output)?;
        out.reused_member(&entry, &stamp, offset).map_err(output)?;
        if let Some(key) = link_key {
            self.links.insert(key, entry.path);
        }
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
}

fn split_out<S: EntrySink>(sink: &mut S) -> Result<&mut dyn SplitOut, ArchiveError> {
    sink.split_out().ok_or_else(|| ArchiveError::Output {
        source: std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "change detection needs the split layout",
        ),
    })
}
