//! The split layout's `EntrySink`: metadata members go to one stream, file contents (each
//! behind its payload header) to the other, and every file's metadata member records where.
//!
//! The encoder guarantees `entry.data_len()` bytes between `begin` and `end`, so the
//! payload position is known before the content is read: the metadata member can be
//! written first, and neither stream is ever revisited. A file whose content is re-used
//! from the previous payload ([`SplitOut`]) gets a metadata member only; the chunks that
//! hold its content go to the payload writer by digest.
//!
//! When re-using (`SplitSink::deferring`), the content of files that are read is held back
//! in a buffer of at most [`FRESH_LIMIT`] bytes, with every metadata member from the first
//! such file on, and written in one piece when the buffer is full, too many members wait
//! or the archive ends. Re-used chunks thus follow each other in the new payload even when
//! changed files lie between them (the next file's chunk can continue the block), and new
//! content is cut into few large chunks instead of one small chunk per changed file.

use std::io::{self, BufWriter, Write};

use super::super::encode::{EntrySink, SplitOut};
use super::super::entry::{Entry, EntryKind, FileStamp};
use super::super::header::{BLOCK, encode_header, encode_header_with};
use super::format::{PAYLOAD_HEADER_LEN, PayloadHeader, file_records, metadata_entry};
use super::planner::ReusedChunk;

const META_BUFFER: usize = 64 << 10;
const PAYLOAD_BUFFER: usize = 256 << 10;
/// New payload bytes held back while re-using.
pub(crate) const FRESH_LIMIT: usize = 8 << 20;
/// Metadata members that may wait for the held-back bytes.
const MAX_WAITING: usize = 16_384;

/// Where the payload stream goes: bytes, and chunks of the previous payload re-used whole.
/// After `append_chunks` the stream continues behind those chunks.
pub trait PayloadWrite: Write {
    fn append_chunks(&mut self, chunks: &[ReusedChunk]) -> io::Result<()>;
}

impl<T: PayloadWrite + ?Sized> PayloadWrite for &mut T {
    fn append_chunks(&mut self, chunks: &[ReusedChunk]) -> io::Result<()> {
        (**self).append_chunks(chunks)
    }
}

/// A payload writer that takes bytes only (no previous payload to re-use).
pub(crate) struct BytesOnly<W>(pub(crate) W);

impl<W: Write> Write for BytesOnly<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write> PayloadWrite for BytesOnly<W> {
    fn append_chunks(&mut self, _chunks: &[ReusedChunk]) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this payload stream cannot re-use chunks",
        ))
    }
}

pub(crate) struct SplitSink<M: Write, P: PayloadWrite> {
    meta: BufWriter<M>,
    payload: BufWriter<P>,
    /// Bytes written to the payload stream so far (not counting `fresh`).
    payload_pos: u64,
    /// Hold new content back (see the module doc).
    defer: bool,
    /// New payload bytes held back, and the members waiting for them, in archive order.
    fresh: Vec<u8>,
    waiting: Vec<Waiting>,
    /// The open file's content goes to `fresh`.
    filling: bool,
    /// Where the content of the file whose member was written last ends in the payload,
    /// and whether every member so far pointed at or after the one before's end.
    content_end: u64,
    in_order: bool,
}

/// A metadata member waiting for the held-back payload to be written.
enum Waiting {
    Member(Entry),
    File {
        entry: Entry,
        stamp: Option<FileStamp>,
        at: At,
    },
}

/// Where a waiting file's payload header is.
enum At {
    /// At this offset of the held-back bytes.
    Fresh(u64),
    /// At this payload offset (re-used).
    Payload(u64),
}

impl<M: Write, P: PayloadWrite> SplitSink<M, P> {
    pub(crate) fn new(meta: M, payload: P) -> Self {
        SplitSink {
            meta: BufWriter::with_capacity(META_BUFFER, meta),
            payload: BufWriter::with_capacity(PAYLOAD_BUFFER, payload),
            payload_pos: 0,
            defer: false,
            fresh: Vec::new(),
            waiting: Vec::new(),
            filling: false,
            content_end: 0,
            in_order: true,
        }
    }

    /// A sink that holds new content back while re-using a previous payload.
    pub(crate) fn deferring(meta: M, payload: P) -> Self {
        SplitSink {
            defer: true,
            ..SplitSink::new(meta, payload)
        }
    }

    fn file_member(
        &mut self,
        entry: &Entry,
        stamp: Option<&FileStamp>,
        offset: u64,
    ) -> io::Result<()> {
        self.in_order &= offset >= self.content_end;
        self.content_end = offset + PAYLOAD_HEADER_LEN as u64 + entry.data_len();
        let records = file_records(entry, offset, stamp);
        self.meta
            .write_all(&encode_header_with(&metadata_entry(entry), &records))
    }

    /// Writes the held-back bytes, then every waiting member.
    fn release(&mut self) -> io::Result<()> {
        self.filling = false;
        let base = self.payload_pos;
        self.payload.write_all(&self.fresh)?;
        self.payload_pos += self.fresh.len() as u64;
        self.fresh.clear();
        for waiting in std::mem::take(&mut self.waiting) {
            match waiting {
                Waiting::Member(entry) => self.meta.write_all(&encode_header(&entry))?,
                Waiting::File { entry, stamp, at } => {
                    let offset = match at {
                        At::Fresh(offset) => base + offset,
                        At::Payload(offset) => offset,
                    };
                    self.file_member(&entry, stamp.as_ref(), offset)?;
                }
            }
        }
        Ok(())
    }
}

impl<M: Write, P: PayloadWrite> EntrySink for SplitSink<M, P> {
    fn begin(&mut self, entry: &Entry, stamp: Option<&FileStamp>) -> io::Result<()> {
        let is_file = matches!(entry.kind, EntryKind::File { .. });
        if !is_file {
            if self.waiting.is_empty() {
                return self.meta.write_all(&encode_header(entry));
            }
            self.waiting.push(Waiting::Member(entry.clone()));
            return Ok(());
        }
        let header = PayloadHeader::for_entry(entry).encode();
        if self.defer {
            self.waiting.push(Waiting::File {
                entry: entry.clone(),
                stamp: stamp.copied(),
                at: At::Fresh(self.fresh.len() as u64),
            });
            self.fresh.extend_from_slice(&header);
            self.filling = true;
            return Ok(());
        }
        self.file_member(entry, stamp, self.payload_pos)?;
        self.payload.write_all(&header)?;
        self.payload_pos += PAYLOAD_HEADER_LEN as u64;
        Ok(())
    }

    fn data(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.filling {
            self.fresh.extend_from_slice(bytes);
            if self.fresh.len() >= FRESH_LIMIT {
                // The rest of this file follows the released bytes directly.
                self.release()?;
            }
            return Ok(());
        }
        self.payload.write_all(bytes)?;
        self.payload_pos += bytes.len() as u64;
        Ok(())
    }

    /// Metadata members have no data, so there is no padding to write.
    fn end(&mut self, _entry: &Entry) -> io::Result<()> {
        self.filling = false;
        if self.waiting.len() >= MAX_WAITING {
            self.release()?;
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<bool> {
        self.release()?;
        self.meta.write_all(&[0; 2 * BLOCK])?;
        let mut payload = self.payload.into_inner().map_err(|e| e.into_error())?;
        payload.flush()?;
        let mut meta = self.meta.into_inner().map_err(|e| e.into_error())?;
        meta.flush()?;
        Ok(self.in_order)
    }

    fn split_out(&mut self) -> Option<&mut dyn SplitOut> {
        Some(self)
    }
}

impl<M: Write, P: PayloadWrite> SplitOut for SplitSink<M, P> {
    fn payload_pos(&self) -> u64 {
        self.payload_pos
    }

    fn append_chunks(&mut self, chunks: &[ReusedChunk]) -> io::Result<()> {
        if chunks.is_empty() {
            return Ok(());
        }
        self.payload.flush()?;
        self.payload.get_mut().append_chunks(chunks)?;
        self.payload_pos += chunks.iter().map(|c| c.size).sum::<u64>();
        Ok(())
    }

    fn reused_member(&mut self, entry: &Entry, stamp: &FileStamp, offset: u64) -> io::Result<()> {
        if self.waiting.is_empty() {
            return self.file_member(entry, Some(stamp), offset);
        }
        self.waiting.push(Waiting::File {
            entry: entry.clone(),
            stamp: Some(*stamp),
            at: At::Payload(offset),
        });
        if self.waiting.len() >= MAX_WAITING {
            self.release()?;
        }
        Ok(())
    }
}
