//! The split layout's `EntrySink`: metadata members go to one stream, file contents (each
//! behind its payload header) to the other, and every file's metadata member records where.
//!
//! The encoder guarantees `entry.data_len()` bytes between `begin` and `end`, so the
//! payload position is known before the content is read: the metadata member can be
//! written first, and neither stream is ever revisited.

use std::io::{self, BufWriter, Write};

use super::super::encode::EntrySink;
use super::super::entry::{Entry, EntryKind};
use super::super::header::{BLOCK, encode_header, encode_header_with};
use super::format::{PAYLOAD_HEADER_LEN, PayloadHeader, file_records, metadata_entry};

const META_BUFFER: usize = 64 << 10;
const PAYLOAD_BUFFER: usize = 256 << 10;

pub(crate) struct SplitSink<M: Write, P: Write> {
    meta: BufWriter<M>,
    payload: BufWriter<P>,
    /// Bytes written to the payload stream so far: the offset of the next header.
    payload_pos: u64,
}

impl<M: Write, P: Write> SplitSink<M, P> {
    pub(crate) fn new(meta: M, payload: P) -> Self {
        SplitSink {
            meta: BufWriter::with_capacity(META_BUFFER, meta),
            payload: BufWriter::with_capacity(PAYLOAD_BUFFER, payload),
            payload_pos: 0,
        }
    }
}

impl<M: Write, P: Write> EntrySink for SplitSink<M, P> {
    fn begin(&mut self, entry: &Entry) -> io::Result<()> {
        if !matches!(entry.kind, EntryKind::File { .. }) {
            return self.meta.write_all(&encode_header(entry));
        }
        let records = file_records(entry, self.payload_pos);
        self.meta
            .write_all(&encode_header_with(&metadata_entry(entry), &records))?;
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
}
