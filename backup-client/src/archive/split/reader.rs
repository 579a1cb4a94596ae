//! Reading a split archive: the metadata stream member by member (through the tar reader),
//! each regular file joined with its content from the payload.
//!
//! Every file's payload header is read and checked before any of its content is handed
//! out: magic, path tag and length must match what the metadata says, so a wrong offset
//! or length is an error naming the entry, never someone else's bytes. Must not touch the
//! file system.

use std::io::Read;

use super::super::ArchiveError;
use super::super::acl::NameToId;
use super::super::entry::display_path;
use super::super::reader::{ArchiveReader, Member};
use super::format::{
    KEY_OFFSET, PAYLOAD_HEADER_LEN, PayloadHeader, PayloadRef, SplitError, resolve_entry,
};
use super::payload::PayloadSource;
use super::select::Selection;

pub(crate) struct SplitReader<M, P> {
    meta: ArchiveReader<M>,
    payload: P,
    /// Only these entries are returned (their payload only is read).
    selection: Option<Selection>,
    /// The current file: its path (for errors), next payload offset, bytes left.
    current: Option<(Vec<u8>, u64, u64)>,
}

impl<M: Read, P: PayloadSource> SplitReader<M, P> {
    pub(crate) fn new(meta: M, payload: P, names: NameToId) -> Self {
        SplitReader {
            meta: ArchiveReader::new(meta, names),
            payload,
            selection: None,
            current: None,
        }
    }

    pub(crate) fn select(&mut self, selection: Selection) {
        self.selection = Some(selection);
    }

    pub(crate) fn selection(&self) -> Option<&Selection> {
        self.selection.as_ref()
    }

    /// The next entry as the encoder saw it (a file with its real size and sparse map),
    /// its payload header already checked; `None` at the end of the metadata.
    pub(crate) fn next_member(&mut self) -> Result<Option<Member>, ArchiveError> {
        self.current = None;
        let member = loop {
            let Some(member) = self.meta.next_member()? else {
                return Ok(None);
            };
            let path = &member.entry.path;
            if self.selection.as_mut().is_none_or(|s| s.wants(path)) {
                break member;
            }
        };
        let Member {
            entry,
            problems,
            private,
        } = member;
        let path = entry.path.clone();
        let (entry, payload_ref) = resolve_entry(entry, &private).map_err(|e| split(&path, e))?;
        if let Some(PayloadRef { offset, header }) = payload_ref {
            let mut bytes = [0; PAYLOAD_HEADER_LEN];
            self.payload
                .read_exact_at(offset, &mut bytes)
                .map_err(|source| split(&path, SplitError::Read { offset, source }))?;
            PayloadHeader::check(&bytes, offset, &header).map_err(|e| split(&path, e))?;
            let start = offset.checked_add(PAYLOAD_HEADER_LEN as u64);
            let start = start.ok_or_else(|| {
                let key = KEY_OFFSET.to_string();
                split(&path, SplitError::BadRecord { key })
            })?;
            self.current = Some((path, start, header.len));
        }
        Ok(Some(Member {
            entry,
            problems,
            private: Vec::new(),
        }))
    }

    /// Reads up to `buf.len()` bytes of the current file's content; 0 only when all of it
    /// has been read (or the entry is not a file).
    pub(crate) fn read_data(&mut self, buf: &mut [u8]) -> Result<usize, ArchiveError> {
        let Some((path, offset, left)) = &mut self.current else {
            return Ok(0);
        };
        let want = usize::try_from(*left).unwrap_or(usize::MAX).min(buf.len());
        if want == 0 {
            return Ok(0);
        }
        let at = *offset;
        self.payload
            .read_exact_at(at, &mut buf[..want])
            .map_err(|source| split(path, SplitError::Read { offset: at, source }))?;
        *offset += want as u64;
        *left -= want as u64;
        Ok(want)
    }
}

fn split(path: &[u8], source: SplitError) -> ArchiveError {
    ArchiveError::Split {
        path: display_path(path),
        source,
    }
}
