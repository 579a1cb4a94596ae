//! The split layout's own bytes: the payload header in front of every file's content, and
//! the PAX records by which a metadata member points at it (see `docs/FORMATS.md`, "Split
//! archive layout").
//!
//! Pure: codecs and checks on bytes and entries, no IO. The magic is derived like the
//! datastore's (`datastore/src/file_formats.rs`): the first 8 bytes of SHA-256 of a label,
//! recomputed by a unit test.

use sha2::{Digest as _, Sha256};
use thiserror::Error;

use super::super::entry::{Entry, EntryKind, FileStamp, Timestamp};
use super::super::pax::{self, Record};
use super::super::sparse::{MAX_SEGMENTS, SparseMap, SparseMapError, SparseSegment};

/// Label of [`PAYLOAD_MAGIC`].
#[cfg_attr(
    not(test),
    expect(dead_code, reason = "documents PAYLOAD_MAGIC; a test derives it")
)]
pub(crate) const PAYLOAD_MAGIC_LABEL: &str = "backup-rs split payload entry v1";
/// First bytes of every payload header.
pub(crate) const PAYLOAD_MAGIC: [u8; 8] = [190, 41, 54, 193, 108, 158, 51, 240];
/// Magic, content length (u64 little-endian), path tag.
pub(crate) const PAYLOAD_HEADER_LEN: usize = 24;

/// Where in the payload stream the file's header starts (decimal).
pub(crate) const KEY_OFFSET: &str = "BACKUPRS.payload.offset";
/// Content bytes after that header (decimal; sparse files: the data segments only).
pub(crate) const KEY_SIZE: &str = "BACKUPRS.payload.size";
/// Sparse files: the data segments as `offset,length[,offset,length...]` (decimal).
pub(crate) const KEY_SPARSE_MAP: &str = "BACKUPRS.sparse.map";
/// Sparse files: the real (apparent) size (decimal).
pub(crate) const KEY_SPARSE_SIZE: &str = "BACKUPRS.sparse.realsize";

/// The file's status-change time as `SECONDS.NANOSECONDS` (change detection).
pub(crate) const KEY_CTIME: &str = "BACKUPRS.ctime";
/// The file's inode number (decimal; change detection).
pub(crate) const KEY_INO: &str = "BACKUPRS.ino";

/// What is wrong with a split archive; the caller names the entry (`ArchiveError::Split`).
#[derive(Debug, Error)]
pub enum SplitError {
    #[error("file member without a {key} record")]
    MissingRecord { key: &'static str },
    #[error("record {key} is malformed")]
    BadRecord { key: String },
    #[error("payload records on a member that is not a regular file")]
    NotAFile,
    #[error("file member carries {size} bytes inline; the split layout stores none")]
    InlineData { size: u64 },
    #[error(transparent)]
    SparseMap(#[from] SparseMapError),
    #[error("no payload header at payload offset {offset} (wrong offset?)")]
    BadMagic { offset: u64 },
    #[error("payload header at offset {offset} belongs to another entry (wrong offset?)")]
    WrongEntry { offset: u64 },
    #[error("payload header at offset {offset} says {found} bytes, the metadata {expected}")]
    LengthMismatch {
        offset: u64,
        found: u64,
        expected: u64,
    },
    #[error("reading the payload at offset {offset}: {source}")]
    Read { offset: u64, source: std::io::Error },
}

/// The first 8 bytes of SHA-256 of an archive path: ties a payload header to its entry, so
/// that an offset pointing at another file's header is caught even when the lengths agree.
pub(crate) fn path_tag(path: &[u8]) -> [u8; 8] {
    let digest = Sha256::digest(path);
    let mut tag = [0; 8];
    tag.copy_from_slice(&digest[..8]);
    tag
}

/// The header written in front of a file's content in the payload stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PayloadHeader {
    pub(crate) len: u64,
    pub(crate) tag: [u8; 8],
}

impl PayloadHeader {
    pub(crate) fn for_entry(entry: &Entry) -> Self {
        PayloadHeader {
            len: entry.data_len(),
            tag: path_tag(&entry.path),
        }
    }

    pub(crate) fn encode(&self) -> [u8; PAYLOAD_HEADER_LEN] {
        let mut out = [0; PAYLOAD_HEADER_LEN];
        out[..8].copy_from_slice(&PAYLOAD_MAGIC);
        out[8..16].copy_from_slice(&self.len.to_le_bytes());
        out[16..].copy_from_slice(&self.tag);
        out
    }

    /// Checks the header read at `offset` against what the metadata expects.
    pub(crate) fn check(
        bytes: &[u8; PAYLOAD_HEADER_LEN],
        offset: u64,
        expected: &PayloadHeader,
    ) -> Result<(), SplitError> {
        if bytes[..8] != PAYLOAD_MAGIC {
            return Err(SplitError::BadMagic { offset });
        }
        if bytes[16..] != expected.tag {
            return Err(SplitError::WrongEntry { offset });
        }
        let found = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
        if found != expected.len {
            return Err(SplitError::LengthMismatch {
                offset,
                found,
                expected: expected.len,
            });
        }
        Ok(())
    }
}

/// The entry as its metadata member shows it: a regular file becomes an empty one (its
/// content and sparse map move to the payload and to [`file_records`]); others unchanged.
pub(crate) fn metadata_entry(entry: &Entry) -> Entry {
    match entry.kind {
        EntryKind::File { .. } => Entry {
            kind: EntryKind::File {
                size: 0,
                sparse: None,
            },
            ..entry.clone()
        },
        _ => entry.clone(),
    }
}

/// The private PAX records of a file whose payload header is at `offset`, with the
/// file's stamp when the encoder has one.
pub(crate) fn file_records(entry: &Entry, offset: u64, stamp: Option<&FileStamp>) -> Vec<Record> {
    let record = |key: &str, value: String| (key.as_bytes().to_vec(), value.into_bytes());
    let mut records = vec![
        record(KEY_OFFSET, offset.to_string()),
        record(KEY_SIZE, entry.data_len().to_string()),
    ];
    if let Some(stamp) = stamp {
        let FileStamp { ctime, ino } = stamp;
        records.push(record(
            KEY_CTIME,
            format!("{}.{:09}", ctime.sec, ctime.nsec),
        ));
        records.push(record(KEY_INO, ino.to_string()));
    }
    if let EntryKind::File {
        sparse: Some(map), ..
    } = &entry.kind
    {
        let numbers: Vec<String> = map
            .segments
            .iter()
            .flat_map(|s| [s.offset.to_string(), s.len.to_string()])
            .collect();
        records.push(record(KEY_SPARSE_MAP, numbers.join(",")));
        records.push(record(KEY_SPARSE_SIZE, map.real_size.to_string()));
    }
    records
}

/// Where a file's content lies in the payload stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PayloadRef {
    /// Offset of the payload header.
    pub(crate) offset: u64,
    pub(crate) header: PayloadHeader,
}

/// Turns a metadata member back into the entry the encoder saw, with the reference to its
/// content: `None` for members that are not regular files (which must have no payload
/// records).
pub(crate) fn resolve_entry(
    mut entry: Entry,
    private: &[Record],
) -> Result<(Entry, Option<PayloadRef>), SplitError> {
    let find = |key: &'static str| {
        private
            .iter()
            .rev()
            .find(|(k, _)| k == key.as_bytes())
            .map(|(_, v)| v.as_slice())
    };
    let number = |key: &'static str| -> Result<Option<u64>, SplitError> {
        find(key)
            .map(|v| pax::parse_decimal(v).ok_or_else(|| bad(key)))
            .transpose()
    };
    let inline = match entry.kind {
        EntryKind::File { size, ref sparse } => size.saturating_add(u64::from(sparse.is_some())),
        _ if private.is_empty() => return Ok((entry, None)),
        _ => return Err(SplitError::NotAFile),
    };
    if inline != 0 {
        return Err(SplitError::InlineData { size: inline });
    }
    let missing = |key| SplitError::MissingRecord { key };
    let offset = number(KEY_OFFSET)?.ok_or(missing(KEY_OFFSET))?;
    let size = number(KEY_SIZE)?.ok_or(missing(KEY_SIZE))?;
    let sparse = match (find(KEY_SPARSE_MAP), number(KEY_SPARSE_SIZE)?) {
        (None, None) => None,
        (Some(text), Some(real_size)) => {
            let map = SparseMap {
                segments: parse_segments(text)?,
                real_size,
            };
            map.validate(size)?;
            Some(map)
        }
        (None, Some(_)) => return Err(missing(KEY_SPARSE_MAP)),
        (Some(_), None) => return Err(missing(KEY_SPARSE_SIZE)),
    };
    let real_size = sparse.as_ref().map_or(size, |m| m.real_size);
    entry.kind = EntryKind::File {
        size: real_size,
        sparse,
    };
    let header = PayloadHeader::for_entry(&entry);
    Ok((entry, Some(PayloadRef { offset, header })))
}

/// The stamp a file member was written with; `None` when it has none or it is malformed
/// (the file then counts as changed: a stamp only ever saves work, never decides content).
pub(crate) fn read_stamp(private: &[Record]) -> Option<FileStamp> {
    let find = |key: &str| {
        private
            .iter()
            .rev()
            .find(|(k, _)| k == key.as_bytes())
            .map(|(_, v)| v.as_slice())
    };
    let ino = pax::parse_decimal(find(KEY_INO)?)?;
    let ctime = std::str::from_utf8(find(KEY_CTIME)?).ok()?;
    let (sec, nsec) = ctime.split_once('.')?;
    let nsec: u32 = nsec.parse().ok().filter(|n| *n < 1_000_000_000)?;
    Some(FileStamp {
        ctime: Timestamp {
            sec: sec.parse().ok()?,
            nsec,
        },
        ino,
    })
}

fn bad(key: &str) -> SplitError {
    SplitError::BadRecord {
        key: key.to_string(),
    }
}

fn parse_segments(text: &[u8]) -> Result<Vec<SparseSegment>, SplitError> {
    let numbers = text
        .split(|&b| b == b',')
        .map(pax::parse_decimal)
        .collect::<Option<Vec<u64>>>()
        .ok_or_else(|| bad(KEY_SPARSE_MAP))?;
    if numbers.len() % 2 != 0 {
        return Err(bad(KEY_SPARSE_MAP));
    }
    let count = numbers.len() as u64 / 2;
    if count > MAX_SEGMENTS {
        return Err(SparseMapError::TooManySegments { count }.into());
    }
    Ok(numbers
        .chunks(2)
        .map(|pair| SparseSegment {
            offset: pair[0],
            len: pair[1],
        })
        .collect())
}

#[cfg(test)]
#[path = "format/tests.rs"]
mod tests;
