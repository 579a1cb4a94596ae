//! Access to a payload stream: random (`PayloadSource` on a file or bytes) or forward-only
//! (`SequentialPayload` on any `Read`, for a stream arriving in order).

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

/// Bytes of a payload stream by offset. A source that ends before `buf` is full fails
/// with `UnexpectedEof`, never with a short read.
pub trait PayloadSource {
    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
}

impl<T: PayloadSource + ?Sized> PayloadSource for &mut T {
    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        (**self).read_exact_at(offset, buf)
    }
}

impl PayloadSource for &[u8] {
    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        match start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
        {
            Some(bytes) => {
                buf.copy_from_slice(bytes);
                Ok(())
            }
            None => Err(io::ErrorKind::UnexpectedEof.into()),
        }
    }
}

impl PayloadSource for File {
    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }
}

/// A payload read in one pass: offsets must not go backwards (gaps are read and dropped),
/// which is what a reader of the metadata in stream order asks for.
#[derive(Debug)]
pub struct SequentialPayload<R> {
    input: R,
    pos: u64,
}

impl<R: Read> SequentialPayload<R> {
    pub fn new(input: R) -> Self {
        SequentialPayload { input, pos: 0 }
    }
}

impl<R: Read> PayloadSource for SequentialPayload<R> {
    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        if offset < self.pos {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "payload offset {offset} is behind the stream position {}",
                    self.pos
                ),
            ));
        }
        let gap = offset - self.pos;
        let skipped = io::copy(&mut (&mut self.input).take(gap), &mut io::sink())?;
        self.pos += skipped;
        if skipped < gap {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.input.read_exact(buf)?;
        self.pos += buf.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_read_exactly_or_fail() {
        let mut data: &[u8] = b"0123456789";
        let mut buf = [0; 3];
        data.read_exact_at(7, &mut buf).unwrap();
        assert_eq!(&buf, b"789");
        let err = data.read_exact_at(8, &mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(data.read_exact_at(u64::MAX, &mut buf).is_err());
    }

    #[test]
    fn sequential_skips_forward_and_refuses_backwards() {
        let mut seq = SequentialPayload::new(&b"0123456789"[..]);
        let mut buf = [0; 2];
        seq.read_exact_at(1, &mut buf).unwrap();
        assert_eq!(&buf, b"12");
        seq.read_exact_at(3, &mut buf).unwrap();
        assert_eq!(&buf, b"34");
        seq.read_exact_at(8, &mut buf).unwrap();
        assert_eq!(&buf, b"89");
        let back = seq.read_exact_at(0, &mut buf).unwrap_err();
        assert_eq!(back.kind(), io::ErrorKind::InvalidInput);
        let mut seq = SequentialPayload::new(&b"0123"[..]);
        let eof = seq.read_exact_at(3, &mut buf).unwrap_err();
        assert_eq!(eof.kind(), io::ErrorKind::UnexpectedEof);
    }
}
