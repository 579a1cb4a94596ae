//! One standard tar stream from a split archive: every entry with the header the single
//! layout gives it (`encode_header`) and, for files, the content from the payload.
//!
//! `TarExport` is a `Read`, so the same bytes feed `restore_tree`, an HTTP response or a
//! file without a thread or a buffer of the whole archive. For an archive written by
//! `encode_tree_split`, the export is byte for byte what `encode_tree` writes for the same
//! tree: both layouts build the same entries, and the header of an entry read back is the
//! header it was written with.

use std::io::{self, Read};

use super::super::ArchiveError;
use super::super::acl::NameToId;
use super::super::entry::{EntryKind, display_path};
use super::super::header::{BLOCK, encode_header};
use super::payload::PayloadSource;
use super::reader::SplitReader;
use super::select::Selection;

/// File content that passes through `out` at a time.
const COPY_BLOCK: u64 = 1 << 20;
/// Reads of file content at least this large bypass `out`. A restore reads 1 MiB blocks: the
/// copy through `out` was 12% of the client's CPU samples on corpus b's restore, and
/// skipping it took that restore (chunks in the server's page cache, five alternating
/// pairs) from 2.03-3.18 s (median 2.29) to 1.96-2.23 s (2.03), client CPU 2.33-3.02 s
/// to 2.24-2.71 s.
const BYPASS_OUT_MIN: usize = 64 << 10;

/// Counts of an export so far.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExportStats {
    /// Members exported, the root and hard links included.
    pub entries: u64,
    /// Regular files (their content came from the payload).
    pub files: u64,
    /// Content bytes copied from the payload.
    pub payload_bytes: u64,
    /// Metadata that could not be carried over, each naming its path (an ACL whose text
    /// could not be parsed).
    pub warnings: Vec<String>,
}

/// The tar stream of a split archive, produced as it is read. Errors (a damaged metadata
/// stream, a payload header that does not match) come out of `read` as `io::Error`s that
/// wrap the `ArchiveError`; see [`TarExport::into_archive_error`].
pub struct TarExport<M, P> {
    reader: SplitReader<M, P>,
    /// Bytes ready to be read, from `pos` on.
    out: Vec<u8>,
    pos: usize,
    /// Content of the current file not yet read, then its padding (which goes through
    /// `out`).
    data_left: u64,
    padding: usize,
    done: bool,
    stats: ExportStats,
}

impl<M: Read, P: PayloadSource> TarExport<M, P> {
    pub(crate) fn new(meta: M, payload: P, names: NameToId) -> Self {
        TarExport {
            reader: SplitReader::new(meta, payload, names),
            out: Vec::new(),
            pos: 0,
            data_left: 0,
            padding: 0,
            done: false,
            stats: ExportStats::default(),
        }
    }

    /// Exports only the selected entries, reading only their payload.
    pub fn select(mut self, selection: Selection) -> Self {
        self.reader.select(selection);
        self
    }

    /// Selected paths that matched no entry (read to the end first).
    pub fn unmatched(&self) -> Vec<String> {
        self.reader
            .selection()
            .map(Selection::unmatched)
            .unwrap_or_default()
    }

    pub fn stats(&self) -> &ExportStats {
        &self.stats
    }

    /// The `ArchiveError` inside an error that `read` returned, if it holds one.
    pub fn into_archive_error(error: io::Error) -> Result<ArchiveError, io::Error> {
        if error.get_ref().is_some_and(|e| e.is::<ArchiveError>()) {
            let inner = error.into_inner().expect("checked");
            Ok(*inner.downcast::<ArchiveError>().expect("checked"))
        } else {
            Err(error)
        }
    }

    /// Puts the next piece of the stream in `out`; false at the end.
    fn refill(&mut self) -> Result<bool, ArchiveError> {
        self.out.clear();
        self.pos = 0;
        if self.data_left > 0 {
            let mut block = std::mem::take(&mut self.out);
            block.resize(self.data_left.min(COPY_BLOCK) as usize, 0);
            let mut done = 0;
            while done < block.len() {
                done += self.read_content(&mut block[done..])?;
            }
            self.out = block;
            return Ok(true);
        }
        if self.padding > 0 {
            self.out.resize(self.padding, 0);
            self.padding = 0;
            return Ok(true);
        }
        if self.done {
            return Ok(false);
        }
        match self.reader.next_member()? {
            Some(member) => {
                let entry = member.entry;
                // A hard link's target comes earlier in the stream: it was exported if
                // the selection covers it.
                if let EntryKind::HardLink { target } = &entry.kind
                    && self.reader.selection().is_some_and(|s| !s.covers(target))
                {
                    self.stats.warnings.push(format!(
                        "{}: hard link to {}, which is not selected; left out",
                        display_path(&entry.path),
                        display_path(target)
                    ));
                    return Ok(true);
                }
                for problem in member.problems {
                    let path = display_path(&entry.path);
                    self.stats.warnings.push(format!("{path}: {problem}"));
                }
                self.out = encode_header(&entry);
                self.data_left = entry.data_len();
                self.padding = (BLOCK - (self.data_left % BLOCK as u64) as usize) % BLOCK;
                self.stats.entries += 1;
                if matches!(entry.kind, EntryKind::File { .. }) {
                    self.stats.files += 1;
                }
            }
            None => {
                self.out.resize(2 * BLOCK, 0);
                self.done = true;
            }
        }
        Ok(true)
    }

    /// Moves up to `buf.len()` bytes of the current file's content from the payload into
    /// `buf`; returns how many (at least one).
    fn read_content(&mut self, buf: &mut [u8]) -> Result<usize, ArchiveError> {
        let want = self.data_left.min(buf.len() as u64) as usize;
        let read = self.reader.read_data(&mut buf[..want])?;
        if read == 0 {
            return Err(ArchiveError::Input {
                offset: self.stats.payload_bytes,
                source: io::ErrorKind::UnexpectedEof.into(),
            });
        }
        self.data_left -= read as u64;
        self.stats.payload_bytes += read as u64;
        Ok(read)
    }
}

impl<M: Read, P: PayloadSource> Read for TarExport<M, P> {
    /// A large read of file content goes from the payload straight into `buf`; the rest
    /// passes through `out`.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.out.len() {
            if self.data_left > 0 && buf.len() >= BYPASS_OUT_MIN {
                return self.read_content(buf).map_err(io::Error::other);
            }
            if !self.refill().map_err(io::Error::other)? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
