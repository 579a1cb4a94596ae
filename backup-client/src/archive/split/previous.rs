//! The previous snapshot's metadata stream, read alongside the walk: for each path the
//! encoder asks about, the file the previous archive stored there, with its stamp and
//! where its content lies in the previous payload.
//!
//! Both archives list entries in walk order (pre-order, names sorted by bytes), so one
//! forward pass over the previous metadata answers every question in order, in constant
//! memory. A previous stream that cannot be read is no reason to fail a backup: the
//! catalog says why once and answers "not known" from then on, so every file is read.
//! Must not touch the file system.

use std::cmp::Ordering;
use std::io::Read;
use std::ops::Range;

use super::super::acl::NameToId;
use super::super::entry::{Entry, EntryKind, FileStamp, relative_path};
use super::super::reader::ArchiveReader;
use super::format::{PAYLOAD_HEADER_LEN, read_stamp, resolve_entry};

/// A regular file of the previous archive.
#[derive(Debug, Clone)]
pub(crate) struct PreviousFile {
    /// As the encoder wrote it (real size, sparse map).
    pub(crate) entry: Entry,
    pub(crate) stamp: FileStamp,
    /// Its payload header and content in the previous payload stream.
    pub(crate) range: Range<u64>,
}

/// One entry of the previous metadata stream, parsed: its normalized path and, for a file
/// with a stamp, what change detection needs of it. Opaque outside the archive module.
pub struct PreviousEntry {
    key: Vec<u8>,
    file: Option<PreviousFile>,
}

/// The entries of a previous metadata stream, in stream order; an error ends them. An
/// iterator, so that a caller may parse on another thread than the walk's.
pub struct PreviousEntries<R> {
    reader: ArchiveReader<R>,
    done: bool,
}

impl<R: Read> PreviousEntries<R> {
    pub(crate) fn new(meta: R, names: NameToId) -> Self {
        PreviousEntries {
            reader: ArchiveReader::new(meta, names),
            done: false,
        }
    }

    fn read_next(&mut self) -> Result<Option<PreviousEntry>, String> {
        let Some(member) = self.reader.next_member().map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let key = relative_path(&member.entry.path).map_err(|e| e.to_string())?;
        let stamp = read_stamp(&member.private);
        let (entry, payload) =
            resolve_entry(member.entry, &member.private).map_err(|e| e.to_string())?;
        let file = match (payload, stamp, &entry.kind) {
            (Some(payload), Some(stamp), EntryKind::File { .. }) => {
                let start = payload.offset;
                let end = start
                    .checked_add(PAYLOAD_HEADER_LEN as u64)
                    .and_then(|s| s.checked_add(payload.header.len))
                    .ok_or("payload offset out of range")?;
                Some(PreviousFile {
                    entry,
                    stamp,
                    range: start..end,
                })
            }
            _ => None,
        };
        Ok(Some(PreviousEntry { key, file }))
    }
}

impl<R: Read> Iterator for PreviousEntries<R> {
    type Item = Result<PreviousEntry, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.read_next().transpose();
        if !matches!(next, Some(Ok(_))) {
            self.done = true;
        }
        next
    }
}

#[cfg(test)]
impl PreviousEntry {
    /// Where the file's payload header and content lie, for a file.
    pub(crate) fn payload_range(&self) -> Option<Range<u64>> {
        self.file.as_ref().map(|f| f.range.clone())
    }
}

/// Where the catalog's entries come from.
pub type EntrySource = Box<dyn Iterator<Item = Result<PreviousEntry, String>> + Send>;

pub(crate) struct PreviousCatalog {
    entries: EntrySource,
    /// The next previous entry not yet passed.
    next: Option<PreviousEntry>,
    started: bool,
    /// Why the previous metadata is no longer read.
    failure: Option<String>,
}

impl PreviousCatalog {
    pub(crate) fn new(entries: EntrySource) -> Self {
        PreviousCatalog {
            entries,
            next: None,
            started: false,
            failure: None,
        }
    }

    /// Why the catalog stopped answering, once: the encoder reports it.
    pub(crate) fn take_failure(&mut self) -> Option<String> {
        self.failure.take()
    }

    /// The previous file at archive path `path`, if the previous archive has a regular file
    /// there. Paths must be asked for in walk order.
    pub(crate) fn lookup(&mut self, path: &[u8]) -> Option<PreviousFile> {
        let key = relative_path(path).ok()?;
        loop {
            if !self.started {
                self.started = true;
                self.advance();
            }
            let next = self.next.as_ref()?;
            match walk_order(&next.key, &key) {
                Ordering::Less => self.advance(),
                Ordering::Equal => {
                    let file = self.next.take()?.file;
                    self.advance();
                    return file;
                }
                Ordering::Greater => return None,
            }
        }
    }

    fn advance(&mut self) {
        self.next = match self.entries.next() {
            Some(Ok(next)) => Some(next),
            Some(Err(message)) => {
                self.failure = Some(message);
                None
            }
            None => None,
        };
    }
}

/// Walk order of normalized archive paths: component by component, bytes within a
/// component, a directory before what it holds.
pub(crate) fn walk_order(a: &[u8], b: &[u8]) -> Ordering {
    fn components(p: &[u8]) -> impl Iterator<Item = &[u8]> {
        p.split(|&c| c == b'/').filter(|c| !c.is_empty())
    }
    components(a).cmp(components(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_order_is_pre_order_by_component() {
        let sorted: [&[u8]; 7] = [b"", b"a", b"a/c", b"a/c/x", b"a/c-d", b"a/d", b"b"];
        for (i, a) in sorted.iter().enumerate() {
            for (j, b) in sorted.iter().enumerate() {
                assert_eq!(walk_order(a, b), i.cmp(&j), "{a:?} {b:?}");
            }
        }
    }
}
