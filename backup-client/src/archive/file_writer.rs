//! Writes a restored file's content: a large file past the page cache (`O_DIRECT`) from a
//! thread of its own, the rest buffered by the caller.
//!
//! A write with `O_DIRECT` returns when the device has the data, so the restorer would
//! wait for the disk between blocks; a thread per large file writes one block while the
//! restorer fills the next (two [`BlockBuf`]s go round). Only whole blocks go direct: the
//! last, partial one is written buffered, as is everything on a file system that refuses
//! `O_DIRECT`, so the bytes written never depend on it. See `super::content` for why and
//! for the numbers.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use datastore::direct_io::{ALIGN, set_direct};

use super::content::{BlockBuf, DIRECT_MIN};

/// Writes one file's content at the offsets it is given.
pub(crate) struct FileWriter<'f> {
    file: &'f File,
    /// For a large file: the thread that writes its blocks.
    background: Option<Background>,
}

struct Background {
    /// Filled blocks, with their length and file offset.
    blocks: SyncSender<(BlockBuf, usize, u64)>,
    /// Blocks written, to be filled again.
    free: Receiver<BlockBuf>,
    thread: JoinHandle<io::Result<()>>,
}

impl<'f> FileWriter<'f> {
    /// A writer of `file` (new and empty), whose content is `size` bytes; `whole` when it
    /// is written from start to end (not a sparse file's data segments).
    pub(crate) fn new(file: &'f File, size: u64, whole: bool) -> io::Result<Self> {
        let background = if whole && size >= DIRECT_MIN && set_direct(file, true) {
            Some(Background::start(file)?)
        } else {
            None
        };
        Ok(Self { file, background })
    }

    /// Writes the first `len` bytes of `buf` at `offset`. A large file's block goes to its
    /// thread, and `buf` is swapped for one that thread has written.
    pub(crate) fn write_at(
        &mut self,
        buf: &mut BlockBuf,
        len: usize,
        offset: u64,
    ) -> io::Result<()> {
        let Some(background) = &self.background else {
            return self.file.write_all_at(buf.get(len), offset);
        };
        let sent = background.free.recv().ok().and_then(|free| {
            let full = std::mem::replace(buf, free);
            background.blocks.send((full, len, offset)).ok()
        });
        match sent {
            Some(()) => Ok(()),
            // The thread stopped: its error says why.
            None => self.finish(),
        }
    }

    /// Waits until every block is written; the first write error, if any.
    pub(crate) fn finish(&mut self) -> io::Result<()> {
        let Some(Background {
            blocks,
            free,
            thread,
        }) = self.background.take()
        else {
            return Ok(());
        };
        drop(blocks);
        drop(free);
        let written = thread
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the file writer thread panicked")));
        set_direct(self.file, false);
        written
    }
}

impl Drop for FileWriter<'_> {
    /// A writer dropped without `finish` (an error elsewhere, already on its way) still
    /// waits for its thread, so that nothing writes to the file afterwards.
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

impl Background {
    fn start(file: &File) -> io::Result<Self> {
        let file = file.try_clone()?;
        let (blocks, filled) = sync_channel::<(BlockBuf, usize, u64)>(1);
        let (give, free) = sync_channel(2);
        // The second buffer: one is filled while the other is written.
        let _ = give.send(BlockBuf::new());
        let thread = std::thread::Builder::new()
            .name("restore-writer".into())
            .spawn(move || {
                let mut direct = true;
                for (buf, len, offset) in filled {
                    write_block(&file, &mut direct, buf.get(len), offset)?;
                    // The restorer may have stopped taking blocks back: it stops sending.
                    let _ = give.send(buf);
                }
                Ok(())
            })?;
        Ok(Self {
            blocks,
            free,
            thread,
        })
    }
}

/// Writes `data` at `offset`: with `O_DIRECT` while `direct` and both are whole blocks, else
/// (and from then on) buffered.
fn write_block(file: &File, direct: &mut bool, data: &[u8], offset: u64) -> io::Result<()> {
    let aligned = data.len().is_multiple_of(ALIGN) && offset.is_multiple_of(ALIGN as u64);
    let buffered = |direct: &mut bool| {
        *direct = false;
        set_direct(file, false);
    };
    if *direct && !aligned {
        buffered(direct);
    }
    let mut done = 0;
    while done < data.len() {
        match file.write_at(&data[done..], offset + done as u64) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Refused, or a short write left the rest unaligned: the rest goes buffered.
            Err(e) if *direct && e.raw_os_error() == Some(libc::EINVAL) => buffered(direct),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::content::IO_BLOCK;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 4093) as u8).collect()
    }

    fn write_file(path: &std::path::Path, data: &[u8], whole: bool) -> bool {
        let file = File::create(path).unwrap();
        let mut writer = FileWriter::new(&file, data.len() as u64, whole).unwrap();
        let threaded = writer.background.is_some();
        let mut buf = BlockBuf::new();
        for (i, block) in data.chunks(IO_BLOCK).enumerate() {
            buf.get_mut(block.len()).copy_from_slice(block);
            writer
                .write_at(&mut buf, block.len(), (i * IO_BLOCK) as u64)
                .unwrap();
        }
        writer.finish().unwrap();
        let flags = nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_GETFL).unwrap();
        let flags = nix::fcntl::OFlag::from_bits_truncate(flags);
        assert!(
            !flags.contains(nix::fcntl::OFlag::O_DIRECT),
            "left as it was opened"
        );
        threaded
    }

    #[test]
    fn a_large_file_is_written_whole_by_its_thread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        let data = pattern(DIRECT_MIN as usize + 2 * IO_BLOCK + 777);
        if !write_file(&path, &data, true) {
            println!(
                "O_DIRECT is refused under {}: written buffered",
                dir.path().display()
            );
        }
        assert!(std::fs::read(&path).unwrap() == data);
    }

    #[test]
    fn small_and_sparse_files_are_written_buffered_by_the_caller() {
        let dir = tempfile::tempdir().unwrap();
        for (len, whole) in [
            (DIRECT_MIN as usize - 1, true),
            (DIRECT_MIN as usize, false),
        ] {
            let path = dir.path().join(format!("f{len}"));
            let data = pattern(len);
            assert!(!write_file(&path, &data, whole));
            assert!(std::fs::read(&path).unwrap() == data);
        }
    }

    #[test]
    fn a_write_error_of_the_thread_reaches_the_caller() {
        // A file opened read-only: the thread's first write fails.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ro");
        std::fs::write(&path, b"").unwrap();
        let file = File::open(&path).unwrap();
        let mut writer = FileWriter::new(&file, DIRECT_MIN, true).unwrap();
        if writer.background.is_none() {
            println!(
                "O_DIRECT is refused under {}: nothing to check",
                dir.path().display()
            );
            return;
        }
        let mut buf = BlockBuf::new();
        let mut result = Ok(());
        for i in 0..4 {
            result = writer.write_at(&mut buf, IO_BLOCK, (i * IO_BLOCK) as u64);
            if result.is_err() {
                break;
            }
        }
        let err = result.and_then(|()| writer.finish()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{err}");
    }
}
