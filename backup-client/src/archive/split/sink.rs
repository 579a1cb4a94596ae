//! The split layout's `EntrySink`: metadata members go to one stream, file contents (each
//! behind its payload header) to the other, and every file's metadata member records where.
//!
//! The encoder guarantees `entry.data_len()` bytes between `begin` and `end`, so the
//! payload position is known before the content is read: the metadata member can be
//! written first, and neither stream is ever revisited. A file whose content is re-used
//! from the previous payload ([`SplitOut`]) gets a metadata member only; the chunks that
//! hold its content go to the payload writer by digest.

use std::io::{self, BufWriter, Write};

use super::super::encode::{EntrySink, SplitOut};
use super::super::entry::{Entry, EntryKind, FileStamp};
use super::super::header::{BLOCK, encode_header, encode_header_with};
use super::format::{PAYLOAD_HEADER_LEN, PayloadHeader, file_records, metadata_entry};
use super::planner::ReusedChunk;

const META_BUFFER: usize = 64 << 10;
const PAYLOAD_BUFFER: usize = 256 << 10;

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
    /// Bytes written to the payload stream so far: the offset of the next header.
    payload_pos: u64,
}

impl<M: Write, P: PayloadWrite> SplitSink<M, P> {
    pub(crate) fn new(meta: M, payload: P) -> Self {
        SplitSink {
            meta: BufWriter::with_capacity(META_BUFFER, meta),
            payload: BufWriter::with_capacity(PAYLOAD_BUFFER, payload),
            payload_pos: 0,
        }
    }

    fn file_member(&mut self, entry: &Entry, stamp: Option<&FileStamp>, offset: u64) -> io::Result<()> {
        let records = file_records(entry, offset, stamp);
        self.meta
            .write_all(&encode_header_with(&metadata_entry(entry), &records))
    }
}

impl<M: Write, P: PayloadWrite> EntrySink for SplitSink<M, P> {
    fn begin(&mut self, entry: &Entry, stamp: Option<&FileStamp>) -> io::Result<()> {
        if !matches!(entry.kind, EntryKind::File { .. }) {
            return self.meta.write_all(&encode_header(entry));
        }
        self.file_member(entry, stamp, self.payload_pos)?;
        self.payload
            .write_all(&PayloadHeader::for_entry(entry).encode())?;
        self.payload_pos += PAYLOAD_HEADER_LEN as u64;
        Ok(())
    }

    fn data(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.payload.write_all(bytes)?;
        self.payload_pos += bytes.len() as u64;
        Ok(())
    }

    /// Metadata members have no data, so there is no padding to write.
    fn end(&mut self, _entry: &Entry) -> io::Result<()> {
        Ok(())
    }

    fn finish(mut self) -> io::Result<()> {
        self.meta.write_all(&[0; 2 * BLOCK])?;
        let mut payload = self.payload.into_inner().map_err(|e| e.into_error())?;
        payload.flush()?;
        let mut meta = self.meta.into_inner().map_err(|e| e.into_error())?;
        meta.flush()
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
        self.file_member(entry, Some(stamp), offset)
    }
}
