//! The GNU PAX sparse format 1.0 map: the decimal lines at the start of a sparse member's
//! data (`"<count>\n"` then `"<offset>\n<length>\n"` per data segment, NUL-padded to a
//! 512-byte block), followed in the archive by the segments' bytes back to back.
//!
//! Pure: codec and validation only. Finding segments in a file (SEEK_DATA/SEEK_HOLE) and
//! seeking over holes on restore belong to the encoder and the restorer.

use thiserror::Error;

const BLOCK: usize = 512;
/// Upper bound on segments accepted from an archive, so that a corrupt count cannot make the
/// reader allocate without limit (a real 1 TiB file with 4 KiB extents has 2^28 at most; we
/// never write more than the file has extents).
pub(crate) const MAX_SEGMENTS: u64 = 1 << 24;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SparseMapError {
    #[error("sparse map: line {line} is not a decimal number")]
    BadNumber { line: usize },
    #[error("sparse map: {count} segments is more than the limit")]
    TooManySegments { count: u64 },
    #[error("sparse map: segment at {offset} overlaps the previous one or ends past the real size")]
    BadSegment { offset: u64 },
    #[error("sparse map: data of {stored} bytes does not match the map's {expected}")]
    SizeMismatch { stored: u64, expected: u64 },
}

/// One data region of a sparse file; everything between segments is a hole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SparseSegment {
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

/// Where the data of a sparse file lies, and its real (apparent) size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SparseMap {
    pub(crate) segments: Vec<SparseSegment>,
    pub(crate) real_size: u64,
}

impl SparseMap {
    /// Builds a map from data segments, appending the zero-length segment at `real_size`
    /// that GNU tar writes when the file ends in a hole (or is only a hole).
    pub(crate) fn new(mut segments: Vec<SparseSegment>, real_size: u64) -> Self {
        let end = segments.last().map_or(0, |s| s.offset + s.len);
        if segments.is_empty() || end < real_size {
            segments.push(SparseSegment {
                offset: real_size,
                len: 0,
            });
        }
        SparseMap {
            segments,
            real_size,
        }
    }

    /// Total bytes of data the archive carries for this file.
    pub(crate) fn data_len(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }

    /// The map as it is stored: decimal lines padded to a whole block.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = format!("{}\n", self.segments.len()).into_bytes();
        for s in &self.segments {
            out.extend_from_slice(format!("{}\n{}\n", s.offset, s.len).as_bytes());
        }
        out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
        out
    }

    /// Checks that segments are in order, do not overlap, lie within the real size, and add
    /// up to `stored` bytes of data.
    pub(crate) fn validate(&self, stored: u64) -> Result<(), SparseMapError> {
        let mut end = 0u64;
        for s in &self.segments {
            let seg_end = s.offset.checked_add(s.len);
            match seg_end {
                Some(e) if s.offset >= end && e <= self.real_size => end = e,
                _ => return Err(SparseMapError::BadSegment { offset: s.offset }),
            }
        }
        let expected = self.data_len();
        if expected != stored {
            return Err(SparseMapError::SizeMismatch { stored, expected });
        }
        Ok(())
    }
}

/// Parses the map at the start of `buf` (whole blocks read so far). Returns `Ok(None)` when
/// more blocks are needed, or the segments and how many bytes (whole blocks) the map took.
pub(crate) fn parse_map(buf: &[u8]) -> Result<Option<(Vec<SparseSegment>, usize)>, SparseMapError> {
    let mut lines = Lines {
        buf,
        pos: 0,
        line: 0,
    };
    let Some(count) = lines.next_number()? else {
        return Ok(None);
    };
    if count > MAX_SEGMENTS {
        return Err(SparseMapError::TooManySegments { count });
    }
    let mut segments = Vec::new();
    for _ in 0..count {
        let (Some(offset), Some(len)) = (lines.next_number()?, lines.next_number()?) else {
            return Ok(None);
        };
        segments.push(SparseSegment { offset, len });
    }
    Ok(Some((segments, lines.pos.div_ceil(BLOCK) * BLOCK)))
}

struct Lines<'a> {
    buf: &'a [u8],
    pos: usize,
    line: usize,
}

impl Lines<'_> {
    /// The next `"<decimal>\n"`, or `None` if the buffer ends before its newline.
    fn next_number(&mut self) -> Result<Option<u64>, SparseMapError> {
        let rest = &self.buf[self.pos..];
        let bad = SparseMapError::BadNumber { line: self.line };
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            return if rest.len() > 20 || !rest.iter().all(u8::is_ascii_digit) {
                Err(bad)
            } else {
                Ok(None)
            };
        };
        let value = super::pax::parse_decimal(&rest[..nl]).ok_or(bad)?;
        self.pos += nl + 1;
        self.line += 1;
        Ok(Some(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seg(offset: u64, len: u64) -> SparseSegment {
        SparseSegment { offset, len }
    }

    #[test]
    fn encodes_gnu_layout() {
        let map = SparseMap::new(vec![seg(0, 4096), seg(1 << 20, 10)], 2 << 20);
        let bytes = map.encode();
        assert_eq!(bytes.len(), 512);
        let text = b"3\n0\n4096\n1048576\n10\n2097152\n0\n";
        assert_eq!(&bytes[..text.len()], text);
        assert!(bytes[text.len()..].iter().all(|&b| b == 0));
        assert_eq!(map.data_len(), 4106);
        assert_eq!(map.validate(4106), Ok(()));
    }

    #[test]
    fn only_a_hole_has_one_empty_segment() {
        let map = SparseMap::new(vec![], 64 << 20);
        assert_eq!(map.segments, vec![seg(64 << 20, 0)]);
        assert_eq!(
            parse_map(&map.encode()),
            Ok(Some((map.segments.clone(), 512)))
        );
        assert_eq!(map.validate(0), Ok(()));
    }

    #[test]
    fn needs_more_blocks_for_a_long_map() {
        let segments: Vec<_> = (0..100).map(|i| seg(i * 8192, 4096)).collect();
        let map = SparseMap::new(segments, 100 * 8192);
        let bytes = map.encode();
        assert!(bytes.len() > 512);
        assert_eq!(parse_map(&bytes[..512]), Ok(None));
        assert_eq!(
            parse_map(&bytes),
            Ok(Some((map.segments.clone(), bytes.len())))
        );
    }

    #[test]
    fn rejects_bad_maps() {
        assert_eq!(
            parse_map(b"1\nx\n"),
            Err(SparseMapError::BadNumber { line: 1 })
        );
        assert_eq!(
            parse_map(&[b'7'; 30]),
            Err(SparseMapError::BadNumber { line: 0 })
        );
        assert_eq!(
            parse_map(b"99999999999\n"),
            Err(SparseMapError::TooManySegments { count: 99999999999 })
        );
        let overlap = SparseMap {
            segments: vec![seg(0, 10), seg(5, 10)],
            real_size: 100,
        };
        assert_eq!(
            overlap.validate(20),
            Err(SparseMapError::BadSegment { offset: 5 })
        );
        let past_end = SparseMap {
            segments: vec![seg(90, 20)],
            real_size: 100,
        };
        assert_eq!(
            past_end.validate(20),
            Err(SparseMapError::BadSegment { offset: 90 })
        );
        let ok = SparseMap::new(vec![seg(0, 10)], 100);
        assert_eq!(
            ok.validate(11),
            Err(SparseMapError::SizeMismatch {
                stored: 11,
                expected: 10
            })
        );
    }

    proptest! {
        #[test]
        fn round_trips(gaps in proptest::collection::vec((0u64..1 << 40, 1u64..1 << 30), 0..200), tail in 0u64..1 << 20) {
            let mut segments = Vec::new();
            let mut end = 0;
            for (gap, len) in gaps {
                segments.push(seg(end + gap, len));
                end += gap + len;
            }
            let map = SparseMap::new(segments, end + tail);
            let bytes = map.encode();
            prop_assert_eq!(bytes.len() % 512, 0);
            let (parsed, used) = parse_map(&bytes).unwrap().unwrap();
            prop_assert_eq!(used, bytes.len());
            prop_assert_eq!(&parsed, &map.segments);
            prop_assert_eq!(map.validate(map.data_len()), Ok(()));
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_map(&data);
        }
    }
}
