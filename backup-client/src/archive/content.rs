//! How a large file's content is read by the encoder (past the page cache, `O_DIRECT`) and
//! written by a restore (through it), in [`BlockBuf`]s.
//!
//! A file the backup reads once is not worth caching, and copying it out of the page cache
//! is what costs (`datastore::direct_io`): corpus b's first backup (1 GiB in four files,
//! cold cache, alternating runs) took 1.42-1.69 s of client system time buffered and
//! 0.45-0.48 s with `O_DIRECT`, 4.58-5.11 s and 4.10-4.41 s of wall time. Without the
//! kernel's read-ahead a large file is read one [`IO_BLOCK`] at a time, 1.2 GB/s on this
//! disk, four times what the pipeline hashes and compresses; small files stay buffered,
//! where the walk's read-ahead (`crate::prefetch`) keeps many requests in flight.
//!
//! A restore writes through the page cache, as restic and borg do: a file of [`DIRECT_MIN`]
//! or more that is not sparse gets its blocks first (one `fallocate`). `O_DIRECT` writes
//! make the restorer wait for the disk on every block, buffered ones make the kernel find a
//! fresh page for each page written, and which costs more depends on the VM's memory
//! state. `O_DIRECT` was the faster on the day it was chosen (cold restore of corpus b,
//! alternating runs: 1.88-2.58 s against 2.29-3.65 s buffered, with 1.3-2.96 s of client
//! system time buffered); buffered writes were the faster on the two days measured since
//! (1.87-2.30 s against 2.15-2.86 s over nine pairs; 1.75-2.27 s against 2.03-2.91 s over
//! seven pairs, each pair won, with 0.55-0.78 s of client system time against 0.43-0.80 s).
//! Buffered writes that started writeback every 8 MiB and dropped the written pages
//! (`sync_file_range`, `POSIX_FADV_DONTNEED`), to reuse pages, were as slow as `O_DIRECT`
//! (2.46-3.02 s). Writing from a thread of its own, so that the restorer did not wait for
//! the disk, gave the same times as `O_DIRECT` (2.21-2.38 s against 2.24-2.58 s) for 12 MiB
//! more.
//!
//! Only an optimisation: a file system that refuses `O_DIRECT`, or a read that it refuses
//! (alignment), is served buffered instead, so the bytes never depend on it.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use datastore::direct_io::{ALIGN, align_start, set_direct};

/// Bytes per read.
pub(crate) const IO_BLOCK: usize = 1 << 20;
/// Files this large or larger are read with `O_DIRECT` (and not read ahead by the walk),
/// and preallocated by a restore.
pub(crate) const DIRECT_MIN: u64 = 8 << 20;

/// An aligned buffer of [`IO_BLOCK`] bytes: the encoder's `O_DIRECT` reads, the restore's writes.
pub(crate) struct BlockBuf {
    buf: Vec<u8>,
    start: usize,
}

impl BlockBuf {
    pub(crate) fn new() -> Self {
        Self::with_len(IO_BLOCK)
    }

    /// A buffer of `len` bytes at an [`ALIGN`]ed address.
    pub(crate) fn with_len(len: usize) -> Self {
        let mut buf = Vec::new();
        let start = align_start(&mut buf, len);
        buf.resize(start + len, 0);
        Self { buf, start }
    }

    /// The first `len` bytes of the buffer.
    pub(crate) fn get(&self, len: usize) -> &[u8] {
        &self.buf[self.start..self.start + len]
    }

    pub(crate) fn get_mut(&mut self, len: usize) -> &mut [u8] {
        &mut self.buf[self.start..self.start + len]
    }
}

/// Reads one file's content, with `O_DIRECT` while the file and its reads allow it.
pub(crate) struct ContentReader<'f> {
    file: &'f File,
    direct: bool,
}

impl<'f> ContentReader<'f> {
    /// A reader of `file`, whose content is `size` bytes; `whole` when it is read from
    /// start to end (not a sparse file's data segments).
    pub(crate) fn new(file: &'f File, size: u64, whole: bool) -> Self {
        let direct = whole && size >= DIRECT_MIN && set_direct(file, true);
        Self { file, direct }
    }

    /// Reads at most `want` (at most [`IO_BLOCK`]) bytes at `offset` into `buf`; 0 at the
    /// end of the file.
    pub(crate) fn read_at(
        &mut self,
        buf: &mut BlockBuf,
        want: usize,
        offset: u64,
    ) -> io::Result<usize> {
        let want = want.min(IO_BLOCK);
        if self.direct && offset.is_multiple_of(ALIGN as u64) {
            // A whole number of blocks: at the end of the file the read comes back short.
            let len = want.div_ceil(ALIGN) * ALIGN;
            match self.file.read_at(buf.get_mut(len), offset) {
                Ok(n) => return Ok(n.min(want)),
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => self.buffered(),
                Err(e) => return Err(e),
            }
        } else if self.direct {
            self.buffered();
        }
        self.file.read_at(buf.get_mut(want), offset)
    }

    /// Whether reads still bypass the page cache.
    #[cfg(test)]
    fn is_direct(&self) -> bool {
        self.direct
    }

    fn buffered(&mut self) {
        self.direct = false;
        set_direct(self.file, false);
    }
}

impl Drop for ContentReader<'_> {
    fn drop(&mut self) {
        if self.direct {
            set_direct(self.file, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::fcntl::{FcntlArg, OFlag, fcntl};

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 4093) as u8).collect()
    }

    /// A file holding `data`, open for reading, in a directory that lives as long.
    fn file_of(data: &[u8]) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, data).unwrap();
        let file = File::open(&path).unwrap();
        (dir, file)
    }

    /// Reads `size` bytes the way the encoder does.
    fn read_all(reader: &mut ContentReader, size: u64) -> Vec<u8> {
        let mut buf = BlockBuf::new();
        let mut out = Vec::new();
        loop {
            let want = usize::try_from(size - out.len() as u64).unwrap();
            if want == 0 {
                return out;
            }
            let n = reader.read_at(&mut buf, want, out.len() as u64).unwrap();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(buf.get(n));
        }
    }

    #[test]
    fn a_large_file_reads_the_same_with_o_direct() {
        let size = DIRECT_MIN as usize + 3 * IO_BLOCK + 1234;
        let data = pattern(size);
        let (dir, file) = file_of(&data);
        let mut reader = ContentReader::new(&file, size as u64, true);
        let direct = reader.is_direct();
        if !direct {
            println!(
                "O_DIRECT is refused under {}: read buffered",
                dir.path().display()
            );
        }
        assert!(read_all(&mut reader, size as u64) == data);
        assert_eq!(reader.is_direct(), direct, "no read fell back");
        drop(reader);
        let flags = OFlag::from_bits_truncate(fcntl(&file, FcntlArg::F_GETFL).unwrap());
        assert!(
            !flags.contains(OFlag::O_DIRECT),
            "the file is left as it was opened"
        );
    }

    #[test]
    fn small_and_partly_read_files_are_read_buffered() {
        let (_dir, file) = file_of(&pattern(DIRECT_MIN as usize));
        assert!(!ContentReader::new(&file, DIRECT_MIN - 1, true).is_direct());
        assert!(!ContentReader::new(&file, DIRECT_MIN, false).is_direct());
    }

    #[test]
    fn an_unaligned_read_falls_back_to_buffered_reads() {
        let data = pattern(DIRECT_MIN as usize + 100);
        let (_dir, file) = file_of(&data);
        let mut reader = ContentReader::new(&file, data.len() as u64, true);
        let mut buf = BlockBuf::new();
        let n = reader.read_at(&mut buf, 1000, 17).unwrap();
        assert_eq!(buf.get(n), &data[17..1017]);
        assert!(!reader.is_direct());
    }

    #[test]
    fn a_file_that_changed_size_reads_as_the_file_is_now() {
        let data = pattern(DIRECT_MIN as usize + 5000);
        let (_dir, file) = file_of(&data);
        // Grew since it was looked at: no more than the size asked for.
        let asked = DIRECT_MIN + 10;
        let mut reader = ContentReader::new(&file, asked, true);
        assert!(read_all(&mut reader, asked) == data[..asked as usize]);
        // Shrank: the read ends early, as a buffered read would.
        let mut reader = ContentReader::new(&file, data.len() as u64 + 9999, true);
        assert!(read_all(&mut reader, data.len() as u64 + 9999) == data);
    }
}
