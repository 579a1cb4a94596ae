//! The blob container that holds every chunk and small file of a store.
//!
//! Layout (little-endian): `MAGIC[8] | CRC32(payload)[4] | payload`, where the magic says
//! whether the payload is the raw data or zstd frames (see [`crate::file_formats`]). The CRC
//! catches bit rot and truncation cheaply; it is not a security check, which is why
//! [`decode_verified`] also compares the SHA-256 of the decoded data with the chunk's name.
//!
//! Pure codec: no IO. Decoding treats its input as hostile: it never panics, and it never
//! allocates more than `max_size` (plus the input) whatever a zstd header claims.

use crate::digest::Digest;
use crate::file_formats::{BLOB_HEADER_SIZE, BLOB_RAW_MAGIC, BLOB_ZSTD_MAGIC};
use crate::pool::Pool;

/// Largest plain chunk the store accepts (the chunker's largest `max`).
pub const MAX_CHUNK_SIZE: usize = 16 << 20;

/// zstd level for chunks and blobs, with smaller match tables than the level's defaults.
/// Measured in 4 MiB blocks of the bench corpora (one core, `blob::tests`-style loop):
///
/// | setting                   | source tree | MB/s | binaries | MB/s |
/// |---------------------------|------------:|-----:|---------:|-----:|
/// | level 1                   | 2.26:1      | 473  | 2.35:1   | 469  |
/// | level 2                   | 2.36:1      | 378  | 2.49:1   | 352  |
/// | level 3, 2^16/2^14 tables | 2.47:1      | 284  | 2.56:1   | 282  |
/// | level 3                   | 2.50:1      | 223  | 2.61:1   | 248  |
/// | level 3, 4 MiB window     | 2.51:1      | 218  | 2.68:1   | 230  |
///
/// restic's default stores the source tree about 6% smaller than level 1: this setting
/// stores it 3% smaller than restic, for 60% more compression time than level 1 where the
/// full level 3 costs 110% more (a backup is CPU-bound on two cores once reads overlap).
const ZSTD_LEVEL: i32 = 3;
const ZSTD_HASH_LOG: u32 = 16;
const ZSTD_CHAIN_LOG: u32 = 14;

/// Idle zstd contexts, one per concurrent call at most: contexts hold match tables or a
/// window (2 MiB), which cost page faults to set up for every chunk.
static COMPRESSORS: Pool<zstd::bulk::Compressor<'static>> = Pool::new(4);
static DECODERS: Pool<zstd::stream::raw::Decoder<'static>> = Pool::new(4);
static DECOMPRESSORS: Pool<zstd::bulk::Decompressor<'static>> = Pool::new(4);

/// Frees the idle zstd contexts ([`crate::pool::release_idle`]).
pub(crate) fn release_idle_contexts() {
    COMPRESSORS.clear();
    DECODERS.clear();
    DECOMPRESSORS.clear();
    probe::release_idle_contexts();
}

/// How the payload of a blob is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobKind {
    /// The data as is.
    Raw,
    /// zstd frames.
    Zstd,
}

/// A blob that cannot be decoded.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob too short: {len} bytes, the header alone is {BLOB_HEADER_SIZE}")]
    TooShort { len: usize },
    #[error("unknown blob magic {magic:02x?}")]
    BadMagic { magic: [u8; 8] },
    #[error("blob CRC mismatch: header says {expected:08x}, payload has {actual:08x}")]
    CrcMismatch { expected: u32, actual: u32 },
    #[error("blob decodes to more than {max} bytes ({size:?} declared)")]
    TooLarge { size: Option<u64>, max: usize },
    #[error("corrupt zstd payload: {source}")]
    Decompress {
        #[source]
        source: std::io::Error,
    },
    #[error("digest mismatch: expected {expected}, data has {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
}

/// Encodes `data` as a blob. With `compress`, the payload is zstd (see [`ZSTD_LEVEL`]) if
/// samples of the data compress ([`probe`]) and the whole is then strictly smaller than the
/// raw data, raw otherwise. The blob's buffer comes from the process's [`crate::pool`].
pub fn encode(data: &[u8], compress: bool) -> Vec<u8> {
    let mut out = crate::pool::take_buffer(BLOB_HEADER_SIZE + data.len());
    if compress && probe::worth_compressing(data) && compress_into(data, &mut out) {
        return out;
    }
    out.clear();
    out.extend_from_slice(&[0; BLOB_HEADER_SIZE]);
    out.extend_from_slice(data);
    seal_raw(&mut out);
    out
}

/// A chunk being gathered, with room for a blob header in front of its bytes: a chunk that
/// does not compress becomes its raw blob in place, without a copy. The buffer comes from
/// the process's [`crate::pool`] with the first bytes (an empty chunk holds none) and goes
/// back to it unless it becomes the blob.
pub struct ChunkBuf {
    buf: Vec<u8>,
    /// Room to take for the bytes.
    capacity: usize,
}

impl ChunkBuf {
    /// An empty chunk with room for `capacity` bytes before it grows.
    pub fn new(capacity: usize) -> Self {
        Self {
            buf: Vec::new(),
            capacity,
        }
    }

    pub fn extend_from_slice(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if self.buf.is_empty() {
            self.buf = crate::pool::take_buffer(BLOB_HEADER_SIZE + self.capacity);
            self.buf.extend_from_slice(&[0; BLOB_HEADER_SIZE]);
        }
        self.buf.extend_from_slice(data);
    }

    /// The chunk's bytes.
    pub fn data(&self) -> &[u8] {
        self.buf.get(BLOB_HEADER_SIZE..).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.data().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The chunk's blob, as [`encode`] makes it: the zstd payload in another pooled buffer
    /// (this one goes back to the pool), or this buffer with the raw blob's header filled in.
    pub fn into_blob(mut self, compress: bool) -> Vec<u8> {
        if compress && !self.is_empty() && probe::worth_compressing(self.data()) {
            let mut out = crate::pool::take_buffer(BLOB_HEADER_SIZE + self.len() - 1);
            if compress_into(self.data(), &mut out) {
                return out;
            }
            crate::pool::give_buffer(out);
        }
        let mut blob = std::mem::take(&mut self.buf);
        if blob.is_empty() {
            blob.extend_from_slice(&[0; BLOB_HEADER_SIZE]);
        }
        seal_raw(&mut blob);
        blob
    }
}

impl Drop for ChunkBuf {
    fn drop(&mut self) {
        if self.buf.capacity() > 0 {
            crate::pool::give_buffer(std::mem::take(&mut self.buf));
        }
    }
}

/// Fills in the header of a raw blob whose payload follows `BLOB_HEADER_SIZE` bytes of room.
fn seal_raw(blob: &mut [u8]) {
    let crc = crc32fast::hash(&blob[BLOB_HEADER_SIZE..]);
    blob[..8].copy_from_slice(&BLOB_RAW_MAGIC);
    blob[8..BLOB_HEADER_SIZE].copy_from_slice(&crc.to_le_bytes());
}

/// Writes the zstd blob of `data` into `out` if its payload is strictly smaller than `data`;
/// false (and `out` left to be overwritten) if not.
fn compress_into(data: &[u8], out: &mut Vec<u8>) -> bool {
    if data.is_empty() {
        return false;
    }
    let mut compressor = match COMPRESSORS.take() {
        Some(compressor) => compressor,
        None => match new_compressor() {
            Ok(compressor) => compressor,
            Err(_) => return false,
        },
    };
    // Room for a payload one byte shorter than the data: zstd stops with "destination too
    // small" as soon as compression does not pay. One-shot compression of the whole chunk:
    // zstd's streaming mode, fed the chunk in pieces, stores 2.6% more on the source-tree
    // corpus even with the size pledged.
    out.clear();
    out.reserve_exact(BLOB_HEADER_SIZE + data.len() - 1);
    out.extend_from_slice(&[0; BLOB_HEADER_SIZE]);
    let mut cursor = std::io::Cursor::new(std::mem::take(out));
    cursor.set_position(BLOB_HEADER_SIZE as u64);
    let written = compressor.compress_to_buffer(data, &mut cursor);
    COMPRESSORS.give(compressor);
    *out = cursor.into_inner();
    match written {
        Ok(written) if written < data.len() && out.len() == BLOB_HEADER_SIZE + written => {}
        _ => return false,
    }
    out[..8].copy_from_slice(&BLOB_ZSTD_MAGIC);
    let crc = crc32fast::hash(&out[BLOB_HEADER_SIZE..]);
    out[8..BLOB_HEADER_SIZE].copy_from_slice(&crc.to_le_bytes());
    true
}

fn new_compressor() -> std::io::Result<zstd::bulk::Compressor<'static>> {
    use zstd::zstd_safe::CParameter;
    let mut compressor = zstd::bulk::Compressor::new(ZSTD_LEVEL)?;
    compressor.set_parameter(CParameter::HashLog(ZSTD_HASH_LOG))?;
    compressor.set_parameter(CParameter::ChainLog(ZSTD_CHAIN_LOG))?;
    Ok(compressor)
}

/// Checks the magic and the CRC, and returns the kind and the payload.
pub fn check(blob: &[u8]) -> Result<(BlobKind, &[u8]), BlobError> {
    let kind = kind(blob)?;
    let (header, payload) = blob.split_at(BLOB_HEADER_SIZE);
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&header[8..]);
    let expected = u32::from_le_bytes(crc);
    let actual = crc32fast::hash(payload);
    if expected != actual {
        return Err(BlobError::CrcMismatch { expected, actual });
    }
    Ok((kind, payload))
}

/// The kind of a blob, from its magic (the CRC is not checked).
pub fn kind(blob: &[u8]) -> Result<BlobKind, BlobError> {
    let Some(magic) = blob.first_chunk::<8>() else {
        return Err(BlobError::TooShort { len: blob.len() });
    };
    if blob.len() < BLOB_HEADER_SIZE {
        return Err(BlobError::TooShort { len: blob.len() });
    }
    match *magic {
        BLOB_RAW_MAGIC => Ok(BlobKind::Raw),
        BLOB_ZSTD_MAGIC => Ok(BlobKind::Zstd),
        magic => Err(BlobError::BadMagic { magic }),
    }
}

/// Decodes a blob: checks magic and CRC, and decompresses to at most `max_size` bytes.
pub fn decode(blob: &[u8], max_size: usize) -> Result<Vec<u8>, BlobError> {
    let mut out = Vec::new();
    decode_into(blob, max_size, &mut out)?;
    Ok(out)
}

/// Like [`decode`], and also checks that the SHA-256 of the data is `expected`.
pub fn decode_verified(
    blob: &[u8],
    expected: &Digest,
    max_size: usize,
) -> Result<Vec<u8>, BlobError> {
    let mut out = Vec::new();
    decode_verified_into(blob, expected, max_size, &mut out)?;
    Ok(out)
}

/// Like [`decode_verified`], into `out` (emptied first, grown as needed), so that the
/// caller can bring a buffer of its own (one of the [`crate::pool`]).
pub fn decode_verified_into(
    blob: &[u8],
    expected: &Digest,
    max_size: usize,
    out: &mut Vec<u8>,
) -> Result<(), BlobError> {
    decode_into(blob, max_size, out)?;
    check_digest(expected, Digest::of(out))
}

/// [`decode`] into `out` (emptied first). Frames that declare their size (all that
/// `encode` writes) are decompressed in one call into a buffer of exactly that size, after
/// checking it against the limit; others piece by piece, stopping past the limit.
fn decode_into(blob: &[u8], max_size: usize, out: &mut Vec<u8>) -> Result<(), BlobError> {
    let (kind, payload) = check(blob)?;
    out.clear();
    match kind {
        BlobKind::Raw if payload.len() > max_size => Err(BlobError::TooLarge {
            size: Some(payload.len() as u64),
            max: max_size,
        }),
        BlobKind::Raw => {
            out.extend_from_slice(payload);
            Ok(())
        }
        BlobKind::Zstd if zstd::bulk::Decompressor::upper_bound(payload).is_some() => {
            decompress_into(payload, max_size, out).map(drop)
        }
        BlobKind::Zstd => {
            decompress_each(payload, max_size, |data| out.extend_from_slice(data)).map(drop)
        }
    }
}

fn check_digest(expected: &Digest, actual: Digest) -> Result<(), BlobError> {
    if actual != *expected {
        return Err(BlobError::DigestMismatch {
            expected: *expected,
            actual,
        });
    }
    Ok(())
}

/// Checks a blob without keeping its data: magic, CRC, and that the data is at most
/// `max_size` bytes with SHA-256 `expected`. Returns the plain size. Compressed data passes
/// through a small buffer into the hash, so this needs the zstd window, not the chunk.
pub fn verify(blob: &[u8], expected: &Digest, max_size: usize) -> Result<u64, BlobError> {
    use sha2::Digest as _;
    let (kind, payload) = check(blob)?;
    let mut hasher = sha2::Sha256::new();
    let size = match kind {
        BlobKind::Raw if payload.len() > max_size => {
            return Err(BlobError::TooLarge {
                size: Some(payload.len() as u64),
                max: max_size,
            });
        }
        BlobKind::Raw => {
            hasher.update(payload);
            payload.len()
        }
        BlobKind::Zstd => decompress_each(payload, max_size, |data| hasher.update(data))?,
    };
    check_digest(expected, Digest(hasher.finalize().into()))?;
    Ok(size as u64)
}

/// Decompresses `payload`, whose frames all declare their size, into `out` (emptied first,
/// grown to the declared size if it has less room); returns the size.
fn decompress_into(payload: &[u8], max_size: usize, out: &mut Vec<u8>) -> Result<usize, BlobError> {
    let io_err = |source| BlobError::Decompress { source };
    if payload.is_empty() {
        // `encode` never writes an empty zstd payload; an empty one is a forged header.
        return Err(io_err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "empty zstd payload",
        )));
    }
    let size = zstd::bulk::Decompressor::upper_bound(payload).ok_or_else(|| {
        io_err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "frames without a declared size",
        ))
    })?;
    if size > max_size {
        return Err(BlobError::TooLarge {
            size: Some(size as u64),
            max: max_size,
        });
    }
    out.clear();
    out.reserve_exact(size);
    let mut decompressor = match DECOMPRESSORS.take() {
        Some(decompressor) => decompressor,
        None => zstd::bulk::Decompressor::new().map_err(io_err)?,
    };
    let decoded = decompressor.decompress_to_buffer(payload, out);
    DECOMPRESSORS.give(decompressor);
    decoded.map_err(io_err)?;
    if out.len() != size {
        return Err(io_err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frames declare {size} bytes, hold {}", out.len()),
        )));
    }
    Ok(size)
}

/// Output buffer of [`decompress_each`].
const STREAM_BUFFER: usize = 256 << 10;

/// Decompresses the zstd frames of `payload` piece by piece into `each`; returns the
/// total size. Stops with an error past `max_size` or on a truncated frame.
fn decompress_each(
    payload: &[u8],
    max_size: usize,
    mut each: impl FnMut(&[u8]),
) -> Result<usize, BlobError> {
    use zstd::stream::raw::{Decoder, Operation};
    let io_err = |source| BlobError::Decompress { source };
    if payload.is_empty() {
        return Err(io_err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "empty zstd payload",
        )));
    }
    let mut decoder = match DECODERS.take() {
        Some(decoder) => decoder,
        None => Decoder::new().map_err(io_err)?,
    };
    // Whatever an earlier call left unfinished is dropped here.
    decoder.reinit().map_err(io_err)?;
    let decoded = decode_frames(&mut decoder, payload, max_size, &mut each);
    DECODERS.give(decoder);
    decoded
}

fn decode_frames(
    decoder: &mut zstd::stream::raw::Decoder<'static>,
    payload: &[u8],
    max_size: usize,
    each: &mut impl FnMut(&[u8]),
) -> Result<usize, BlobError> {
    use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
    let io_err = |source| BlobError::Decompress { source };
    let invalid = |msg: &str| {
        io_err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            msg.to_string(),
        ))
    };
    let mut buf = vec![0u8; STREAM_BUFFER];
    let mut input = InBuffer::around(payload);
    let mut total = 0usize;
    loop {
        let mut output = OutBuffer::around(&mut buf[..]);
        let hint = decoder.run(&mut input, &mut output).map_err(io_err)?;
        let n = output.pos();
        total += n;
        if total > max_size {
            return Err(BlobError::TooLarge {
                size: None,
                max: max_size,
            });
        }
        each(&buf[..n]);
        let input_done = input.pos() == payload.len();
        if hint == 0 {
            // A frame ended, fully flushed: the next one, if any.
            if input_done {
                return Ok(total);
            }
            decoder.reinit().map_err(io_err)?;
        } else if input_done && n < buf.len() {
            return Err(invalid("truncated zstd frame"));
        }
    }
}

mod probe;
#[cfg(test)]
mod tests;
