//! The dynamic index (`.didx`): the ordered list of chunks that make up one archive.
//!
//! Layout (little-endian): a 4096-byte header `magic[8] | uuid[16] | ctime i64 |
//! index_csum[32] | zero padding`, then one 40-byte entry `{end u64, digest[32]}` per chunk.
//! `end` is the archive offset where the chunk ends, so chunk `i` spans
//! `entries[i-1].end..entries[i].end`; ends strictly increase (no empty chunks).
//! `index_csum` is SHA-256 over every entry's bytes in order; it is what the client reports
//! at close and the manifest records.
//!
//! The codec ([`DynamicIndex::encode`]/[`DynamicIndex::decode`]) is pure and never panics on
//! hostile bytes. [`DynamicIndexWriter`] streams entries to a temp file and never holds them
//! all in memory; the index appears under its name only once complete and fsynced.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;
use crate::file_formats::DYNAMIC_INDEX_MAGIC;
use crate::fs_util::{self, TempPath};

/// Size of the header; entries start here.
pub const INDEX_HEADER_SIZE: usize = 4096;
/// Size of one entry: end offset (8) and digest (32).
pub const INDEX_ENTRY_SIZE: usize = 40;

const UUID_AT: usize = 8;
const CTIME_AT: usize = 24;
const CSUM_AT: usize = 32;
const PADDING_AT: usize = 64;

/// One chunk of an archive: where it ends and what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// Archive offset just past the chunk's last byte.
    pub end: u64,
    /// SHA-256 of the chunk's plain data.
    pub digest: Digest,
}

/// A dynamic index that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("index too short: {len} bytes, the header alone is {INDEX_HEADER_SIZE}")]
    TooShort { len: usize },
    #[error("not a dynamic index: magic {magic:02x?}")]
    BadMagic { magic: [u8; 8] },
    #[error("index header padding is not zero at byte {offset}")]
    BadPadding { offset: usize },
    #[error("index length {len} is not {INDEX_HEADER_SIZE} + {INDEX_ENTRY_SIZE} * n")]
    BadLength { len: usize },
    #[error("index entry {entry}: end {end} does not follow the previous end {previous}")]
    NotIncreasing { entry: u64, end: u64, previous: u64 },
    #[error("index checksum mismatch: header says {expected}, entries give {actual}")]
    ChecksumMismatch { expected: Digest, actual: Digest },
}

fn io_error(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> IndexError {
    let path = path.to_path_buf();
    move |source| IndexError::Io { op, path, source }
}

/// Running `index_csum`: SHA-256 over `end LE ‖ digest` of each entry in order.
#[derive(Clone, Default)]
pub struct IndexChecksum {
    hasher: Sha256,
}

impl IndexChecksum {
    /// Checksum of no entries so far.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next entry.
    pub fn add(&mut self, end: u64, digest: &Digest) {
        self.hasher.update(end.to_le_bytes());
        self.hasher.update(digest.0);
    }

    /// The checksum of all entries added.
    pub fn finish(self) -> Digest {
        Digest(self.hasher.finalize().into())
    }
}

/// A decoded dynamic index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DynamicIndex {
    pub uuid: [u8; 16],
    /// Creation time, seconds since the epoch.
    pub ctime: i64,
    pub csum: Digest,
    pub entries: Vec<IndexEntry>,
}

fn encode_header(uuid: &[u8; 16], ctime: i64, csum: &Digest) -> Vec<u8> {
    let mut header = vec![0u8; INDEX_HEADER_SIZE];
    header[..UUID_AT].copy_from_slice(&DYNAMIC_INDEX_MAGIC);
    header[UUID_AT..CTIME_AT].copy_from_slice(uuid);
    header[CTIME_AT..CSUM_AT].copy_from_slice(&ctime.to_le_bytes());
    header[CSUM_AT..PADDING_AT].copy_from_slice(&csum.0);
    header
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

impl DynamicIndex {
    /// Decodes and checks an index: magic, length, zero padding, strictly increasing ends,
    /// checksum.
    pub fn decode(bytes: &[u8]) -> Result<Self, IndexError> {
        if bytes.len() < INDEX_HEADER_SIZE {
            return Err(IndexError::TooShort { len: bytes.len() });
        }
        let (header, body) = bytes.split_at(INDEX_HEADER_SIZE);
        let magic: [u8; 8] = array(header);
        if magic != DYNAMIC_INDEX_MAGIC {
            return Err(IndexError::BadMagic { magic });
        }
        if let Some(pos) = header[PADDING_AT..].iter().position(|&b| b != 0) {
            return Err(IndexError::BadPadding {
                offset: PADDING_AT + pos,
            });
        }
        if body.len() % INDEX_ENTRY_SIZE != 0 {
            return Err(IndexError::BadLength { len: bytes.len() });
        }
        let expected = Digest(array(&header[CSUM_AT..]));
        let mut csum = IndexChecksum::new();
        let mut entries = Vec::with_capacity(body.len() / INDEX_ENTRY_SIZE);
        let mut previous = 0u64;
        for (i, raw) in body.chunks_exact(INDEX_ENTRY_SIZE).enumerate() {
            let end = u64::from_le_bytes(array(raw));
            if end <= previous {
                return Err(IndexError::NotIncreasing {
                    entry: i as u64,
                    end,
                    previous,
                });
            }
            previous = end;
            let digest = Digest(array(&raw[8..]));
            csum.add(end, &digest);
            entries.push(IndexEntry { end, digest });
        }
        let actual = csum.finish();
        if actual != expected {
            return Err(IndexError::ChecksumMismatch { expected, actual });
        }
        Ok(Self {
            uuid: array(&header[UUID_AT..]),
            ctime: i64::from_le_bytes(array(&header[CTIME_AT..])),
            csum: expected,
            entries,
        })
    }

    /// Encodes the index with its stored `csum` (callers building one by hand compute it with
    /// [`IndexChecksum`]).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = encode_header(&self.uuid, self.ctime, &self.csum);
        out.reserve(self.entries.len() * INDEX_ENTRY_SIZE);
        for entry in &self.entries {
            out.extend_from_slice(&entry.end.to_le_bytes());
            out.extend_from_slice(&entry.digest.0);
        }
        out
    }

    /// Size of the archive: the last end, or 0 for an empty index.
    pub fn size(&self) -> u64 {
        self.entries.last().map_or(0, |e| e.end)
    }

    /// Archive byte range of chunk `i`. Panics if `i` is out of range, like slice indexing.
    pub fn chunk_range(&self, i: usize) -> Range<u64> {
        let start = if i == 0 { 0 } else { self.entries[i - 1].end };
        start..self.entries[i].end
    }

    /// Index of the chunk that holds archive byte `offset`, `None` past the end.
    pub fn find(&self, offset: u64) -> Option<usize> {
        let i = self.entries.partition_point(|e| e.end <= offset);
        (i < self.entries.len()).then_some(i)
    }

    /// Reads and decodes the index at `path`.
    pub fn load(path: &Path) -> Result<Self, IndexError> {
        let bytes = std::fs::read(path).map_err(io_error("read index", path))?;
        Self::decode(&bytes)
    }
}

/// What a closed index holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexStats {
    /// Archive size: the last end offset.
    pub size: u64,
    /// Number of entries.
    pub chunks: u64,
    /// The index checksum, as written in the header.
    pub csum: Digest,
}

/// Writes a dynamic index entry by entry. The file appears at its path only on a successful
/// [`close`](Self::close); a writer dropped before that removes its temp file.
pub struct DynamicIndexWriter {
    path: PathBuf,
    out: BufWriter<File>,
    temp: TempPath,
    csum: IndexChecksum,
    size: u64,
    chunks: u64,
}

impl DynamicIndexWriter {
    /// Starts an index that will be renamed to `path` on close. Writes a placeholder header.
    pub fn create(path: &Path) -> Result<Self, IndexError> {
        let (file, temp) =
            fs_util::create_temp_for(path).map_err(io_error("create index", path))?;
        let mut out = BufWriter::with_capacity(256 * 1024, file);
        out.write_all(&[0u8; INDEX_HEADER_SIZE])
            .map_err(io_error("write index", temp.path()))?;
        Ok(Self {
            path: path.to_path_buf(),
            out,
            temp,
            csum: IndexChecksum::new(),
            size: 0,
            chunks: 0,
        })
    }

    /// Appends the chunk that ends at archive offset `end`; ends must strictly increase.
    pub fn push(&mut self, end: u64, digest: &Digest) -> Result<(), IndexError> {
        if end <= self.size {
            return Err(IndexError::NotIncreasing {
                entry: self.chunks,
                end,
                previous: self.size,
            });
        }
        let mut entry = [0u8; INDEX_ENTRY_SIZE];
        entry[..8].copy_from_slice(&end.to_le_bytes());
        entry[8..].copy_from_slice(&digest.0);
        self.out
            .write_all(&entry)
            .map_err(io_error("write index", self.temp.path()))?;
        self.csum.add(end, digest);
        self.size = end;
        self.chunks += 1;
        Ok(())
    }

    /// Archive size so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Entries so far.
    pub fn chunks(&self) -> u64 {
        self.chunks
    }

    /// Writes the real header, fsyncs, renames the temp file to the target path and fsyncs
    /// the directory.
    pub fn close(self) -> Result<IndexStats, IndexError> {
        let Self {
            path,
            out,
            temp,
            csum,
            size,
            chunks,
        } = self;
        let temp_err = |op| io_error(op, temp.path());
        let file = out
            .into_inner()
            .map_err(|e| temp_err("write index")(e.into_error()))?;
        let mut uuid = [0u8; 16];
        getrandom::fill(&mut uuid)
            .map_err(|e| temp_err("make index uuid")(io::Error::other(e.to_string())))?;
        let ctime = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let csum = csum.finish();
        file.write_all_at(&encode_header(&uuid, ctime, &csum), 0)
            .map_err(temp_err("write index header"))?;
        file.sync_all().map_err(temp_err("fsync index"))?;
        drop(file);
        temp.persist(&path)
            .map_err(io_error("rename index to", &path))?;
        fs_util::fsync_dir(fs_util::parent_dir(&path))
            .map_err(io_error("fsync directory of", &path))?;
        Ok(IndexStats { size, chunks, csum })
    }
}

#[cfg(test)]
mod tests;
