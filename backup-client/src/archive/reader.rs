//! Reading a tar stream member by member: header blocks, PAX `x` records and GNU long names
//! (collected for the next member), the GNU 1.0 sparse map at the start of a sparse member's
//! data, then exactly the member's data on request.
//!
//! Every read is checked: a stream that ends before a member's data is complete, or before
//! the end-of-archive marker, is `ArchiveError::Truncated`, never a short file. Header
//! checksums are verified. Extension data is bounded in size so that a corrupt length
//! cannot exhaust memory. This module must not touch the file system.

use std::io::{self, Read};

use super::ArchiveError;
use super::acl::NameToId;
use super::entry::{Entry, EntryKind};
use super::header::{
    BLOCK, Extensions, HeaderError, PRIVATE_PREFIX, decode_header, verify_checksum,
};
use super::pax::{Record, parse_records};
use super::sparse::{SparseMap, parse_map};

/// Limit for one PAX header or GNU long name (xattrs are at most 64 KiB each on Linux).
const MAX_EXTENSION: u64 = 16 << 20;
/// Limit for the text of one sparse map (about 2 million segments).
const MAX_SPARSE_MAP: u64 = 64 << 20;

/// A member header as read: the entry (sparse map included) and decoding problems that do
/// not stop the restore.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) entry: Entry,
    pub(crate) problems: Vec<String>,
    /// The member's PAX records under `header::PRIVATE_PREFIX`, in stream order (the split
    /// layout's payload references); the single layout has none.
    pub(crate) private: Vec<Record>,
}

pub(crate) struct ArchiveReader<R> {
    input: R,
    /// Resolves user and group names in ACL text.
    names: NameToId,
    /// Bytes consumed so far: error positions.
    offset: u64,
    /// Data bytes of the current member not yet read.
    data_left: u64,
    /// Zero padding after the current member's data.
    padding: u64,
}

impl<R: Read> ArchiveReader<R> {
    pub(crate) fn new(input: R, names: NameToId) -> Self {
        ArchiveReader {
            input,
            names,
            offset: 0,
            data_left: 0,
            padding: 0,
        }
    }

    /// The next member, after skipping what is left of the current one; `None` at the
    /// end-of-archive marker (whatever follows it is read and discarded).
    pub(crate) fn next_member(&mut self) -> Result<Option<Member>, ArchiveError> {
        self.skip(self.data_left + self.padding, "member data")?;
        self.data_left = 0;
        self.padding = 0;
        let mut ext = Extensions::default();
        loop {
            let start = self.offset;
            let mut block = [0u8; BLOCK];
            self.fill(&mut block, "the end-of-archive marker")?;
            if block.iter().all(|&b| b == 0) {
                if !ext.records.is_empty() || ext.long_name.is_some() || ext.long_link.is_some() {
                    return Err(ArchiveError::Truncated {
                        offset: start,
                        context: "a member after its extended header",
                    });
                }
                self.drain()?;
                return Ok(None);
            }
            let corrupt = |source| ArchiveError::Corrupt {
                offset: start,
                source,
            };
            verify_checksum(&block).map_err(corrupt)?;
            let flag = block[156];
            if matches!(flag, b'x' | b'g' | b'L' | b'K') {
                let size = decode_header(&block, &Extensions::default(), self.names)
                    .map_err(corrupt)?
                    .stored_size;
                let data = self.read_extension(size, start)?;
                match flag {
                    b'x' => ext
                        .records
                        .extend(parse_records(&data).map_err(|e| corrupt(e.into()))?),
                    b'L' => ext.long_name = Some(trim_nul(data)),
                    b'K' => ext.long_link = Some(trim_nul(data)),
                    _ => {} // global PAX records: nothing in them applies to our entries
                }
                continue;
            }
            let decoded = decode_header(&block, &ext, self.names).map_err(corrupt)?;
            let mut entry = decoded.entry;
            self.data_left = decoded.stored_size;
            self.padding = padding(decoded.stored_size);
            if decoded.is_sparse {
                let map = self.read_sparse_map(&entry, start)?;
                entry.kind = EntryKind::File {
                    size: map.real_size,
                    sparse: Some(map),
                };
            }
            let private = ext
                .records
                .into_iter()
                .filter(|(key, _)| key.starts_with(PRIVATE_PREFIX))
                .collect();
            return Ok(Some(Member {
                entry,
                problems: decoded.problems,
                private,
            }));
        }
    }

    /// Reads up to `buf.len()` bytes of the current member's data; 0 only when all of it has
    /// been read.
    pub(crate) fn read_data(&mut self, buf: &mut [u8]) -> Result<usize, ArchiveError> {
        let want = usize::try_from(self.data_left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        if want == 0 {
            return Ok(0);
        }
        self.fill(&mut buf[..want], "member data")?;
        self.data_left -= want as u64;
        Ok(want)
    }

    fn read_sparse_map(&mut self, entry: &Entry, start: u64) -> Result<SparseMap, ArchiveError> {
        let corrupt = |source: HeaderError| ArchiveError::Corrupt {
            offset: start,
            source,
        };
        let real_size = match entry.kind {
            EntryKind::File { size, .. } => size,
            _ => unreachable!("decode_header only marks files sparse"),
        };
        let mut text = Vec::new();
        loop {
            if text.len() as u64 + BLOCK as u64 > self.data_left {
                return Err(corrupt(HeaderError::SparseMapBeyondData));
            }
            if text.len() as u64 >= MAX_SPARSE_MAP {
                return Err(ArchiveError::TooLarge {
                    offset: start,
                    what: "sparse map",
                    size: self.data_left,
                });
            }
            let mut block = [0u8; BLOCK];
            self.fill(&mut block, "a sparse map")?;
            text.extend_from_slice(&block);
            if let Some((segments, used)) = parse_map(&text).map_err(|e| corrupt(e.into()))? {
                debug_assert_eq!(used, text.len());
                self.data_left -= text.len() as u64;
                let map = SparseMap {
                    segments,
                    real_size,
                };
                map.validate(self.data_left)
                    .map_err(|e| corrupt(e.into()))?;
                return Ok(map);
            }
        }
    }

    fn read_extension(&mut self, size: u64, start: u64) -> Result<Vec<u8>, ArchiveError> {
        if size > MAX_EXTENSION {
            return Err(ArchiveError::TooLarge {
                offset: start,
                what: "extended header",
                size,
            });
        }
        let mut data = vec![0; size as usize];
        self.fill(&mut data, "an extended header")?;
        self.skip(padding(size), "an extended header")?;
        Ok(data)
    }

    /// Fills `buf` completely or fails with `Truncated`.
    fn fill(&mut self, buf: &mut [u8], context: &'static str) -> Result<(), ArchiveError> {
        let mut done = 0;
        while done < buf.len() {
            match self.input.read(&mut buf[done..]) {
                Ok(0) => {
                    return Err(ArchiveError::Truncated {
                        offset: self.offset,
                        context,
                    });
                }
                Ok(n) => {
                    done += n;
                    self.offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(ArchiveError::Input {
                        offset: self.offset,
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    fn skip(&mut self, mut len: u64, context: &'static str) -> Result<(), ArchiveError> {
        let mut scratch = [0u8; 8192];
        while len > 0 {
            let n = len.min(scratch.len() as u64) as usize;
            self.fill(&mut scratch[..n], context)?;
            len -= n as u64;
        }
        Ok(())
    }

    /// Reads the rest of the stream (the second zero block, record padding) so that the
    /// producer is not left writing into a closed pipe.
    fn drain(&mut self) -> Result<(), ArchiveError> {
        let offset = self.offset;
        io::copy(&mut self.input, &mut io::sink())
            .map_err(|source| ArchiveError::Input { offset, source })?;
        Ok(())
    }
}

fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// GNU long names are NUL-terminated inside their data.
fn trim_nul(mut data: Vec<u8>) -> Vec<u8> {
    if let Some(nul) = data.iter().position(|&b| b == 0) {
        data.truncate(nul);
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::entry::{EntryMeta, Timestamp};
    use crate::archive::header::encode_header;
    use crate::archive::sparse::SparseSegment;

    fn file(path: &str, content: &[u8]) -> (Entry, Vec<u8>) {
        let entry = Entry {
            path: path.as_bytes().to_vec(),
            kind: EntryKind::File {
                size: content.len() as u64,
                sparse: None,
            },
            meta: EntryMeta {
                mode: 0o644,
                mtime: Timestamp { sec: 5, nsec: 6 },
                ..EntryMeta::default()
            },
        };
        (entry, content.to_vec())
    }

    fn archive(members: &[(Entry, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (entry, data) in members {
            out.extend(encode_header(entry));
            out.extend(data);
            out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
        }
        out.extend([0; 2 * BLOCK]);
        out
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<(Entry, Vec<u8>)>, ArchiveError> {
        let mut reader = ArchiveReader::new(bytes, crate::archive::acl::no_names);
        let mut out = Vec::new();
        while let Some(member) = reader.next_member()? {
            let mut data = Vec::new();
            let mut buf = [0u8; 100];
            loop {
                let n = reader.read_data(&mut buf)?;
                if n == 0 {
                    break;
                }
                data.extend_from_slice(&buf[..n]);
            }
            out.push((member.entry, data));
        }
        Ok(out)
    }

    #[test]
    fn reads_back_what_was_written() {
        let mut sparse = file("s", b"abcdef");
        let map = SparseMap::new(
            vec![SparseSegment {
                offset: 1000,
                len: 6,
            }],
            5000,
        );
        sparse.0.kind = EntryKind::File {
            size: 5000,
            sparse: Some(map),
        };
        let members = vec![
            file("a", b"hello"),
            sparse,
            file("b", &[7; 1500]),
            file("c", b""),
        ];
        assert_eq!(read_all(&archive(&members)).unwrap(), members);
    }

    #[test]
    fn unread_data_is_skipped() {
        let bytes = archive(&[file("a", &[1; 3000]), file("b", b"x")]);
        let mut reader = ArchiveReader::new(&bytes[..], crate::archive::acl::no_names);
        reader.next_member().unwrap().unwrap();
        assert_eq!(reader.next_member().unwrap().unwrap().entry.path, b"b");
        assert!(reader.next_member().unwrap().is_none());
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = archive(&[file("a", &[1; 700]), file("b", b"xyz")]);
        // Everything short of the first end-of-archive block is incomplete.
        for len in 0..bytes.len() - 2 * BLOCK {
            let res = read_all(&bytes[..len]);
            assert!(
                matches!(res, Err(ArchiveError::Truncated { .. })),
                "cut at {len}: {res:?}"
            );
        }
        assert!(read_all(&bytes[..bytes.len() - BLOCK]).is_ok());
    }

    #[test]
    fn corruption_is_an_error() {
        let mut bytes = archive(&[file("a", b"data")]);
        bytes[BLOCK] = b'x'; // length of the first PAX record
        assert!(read_all(&bytes).is_err());
        let mut bytes = archive(&[file("a", b"data")]);
        bytes[0] ^= 1; // header checksum
        assert!(matches!(
            read_all(&bytes),
            Err(ArchiveError::Corrupt { offset: 0, .. })
        ));
    }
}
