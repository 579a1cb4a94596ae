//! Reads and writes past the page cache (`O_DIRECT`), for data that is read or written once:
//! the large files a backup reads (`backup-client`'s `archive::content`), the chunks a
//! server stores (`write_all`).
//!
//! Copying into and out of the page cache is what a bulk transfer pays for most after
//! hashing and compression, and with both cores busy the copy of data that has left the
//! CPU caches costs several times what it costs alone. `O_DIRECT` hands the buffer to the
//! device instead. It wants the buffer, the file offset and the length aligned to the
//! device's logical block ([`ALIGN`] covers the sizes in use); whatever is not aligned goes
//! through the page cache as before.
//!
//! Only an optimisation: a file system that refuses `O_DIRECT`, or a request that it
//! refuses (`EINVAL`), is served buffered instead, so what is read or written never depends
//! on it.
//!
//! The server reads chunks buffered: `O_DIRECT` reads of corpus b's chunks for a restore
//! (cold cache, alternating runs) saved 0.05 s of server CPU and took 0.1-0.3 s longer
//! (1.99-2.35 s against 1.90-2.12 s), without the kernel's read-ahead; measured again over
//! six alternating pairs, 0.12 s less server CPU and the same wall time (medians 2.95
//! against 2.96 s).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use nix::fcntl::{FcntlArg, OFlag, fcntl};

/// Alignment of `O_DIRECT` buffers, offsets and lengths: the largest logical block size in
/// common use.
pub const ALIGN: usize = 4096;

/// Turns `O_DIRECT` on or off for `file`; false if the file system refuses.
pub fn set_direct(file: &File, on: bool) -> bool {
    let Ok(flags) = fcntl(file, FcntlArg::F_GETFL) else {
        return false;
    };
    let mut flags = OFlag::from_bits_truncate(flags);
    flags.set(OFlag::O_DIRECT, on);
    fcntl(file, FcntlArg::F_SETFL(flags)).is_ok()
}

/// Whether `file` has `O_DIRECT` on.
pub fn is_direct(file: &File) -> bool {
    fcntl(file, FcntlArg::F_GETFL)
        .is_ok_and(|flags| OFlag::from_bits_truncate(flags).contains(OFlag::O_DIRECT))
}

/// Pads `buf` (empty, with room for `len` more bytes after the padding) so that the bytes
/// pushed next start at an [`ALIGN`]ed address; returns the padding's length. The buffer
/// must not be reallocated afterwards, or the data loses its alignment (it stays correct).
pub fn align_start(buf: &mut Vec<u8>, len: usize) -> usize {
    buf.clear();
    buf.reserve_exact(ALIGN + len);
    let pad = buf.as_ptr().align_offset(ALIGN);
    buf.resize(pad, 0);
    pad
}

/// Writes all of `data` to `file` (new and empty): the whole blocks of an [`ALIGN`]ed
/// `data` with `O_DIRECT`, the rest buffered. `O_DIRECT` is off when it returns.
pub fn write_all(file: &File, data: &[u8]) -> io::Result<()> {
    let whole = if data.as_ptr().align_offset(ALIGN) == 0 {
        data.len() / ALIGN * ALIGN
    } else {
        0
    };
    let mut direct = whole > 0 && set_direct(file, true);
    let written = write_all_at(file, &mut direct, &data[..whole], 0)
        .and_then(|()| write_all_at(file, &mut direct, &data[whole..], whole as u64));
    if direct {
        set_direct(file, false);
    }
    written
}

/// Writes all of `data` at `offset`, with `O_DIRECT` while `direct` says the file has it on
/// and both are whole blocks. Unaligned data, a refusal (`EINVAL`) or a short write that
/// leaves an unaligned rest turn it off (`direct` and the file's flag): the rest, and what
/// follows, goes buffered.
fn write_all_at(file: &File, direct: &mut bool, data: &[u8], offset: u64) -> io::Result<()> {
    let buffered = |direct: &mut bool| {
        *direct = false;
        set_direct(file, false);
    };
    if *direct && !(data.len().is_multiple_of(ALIGN) && offset.is_multiple_of(ALIGN as u64)) {
        buffered(direct);
    }
    let mut done = 0;
    while done < data.len() {
        match file.write_at(&data[done..], offset + done as u64) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if *direct && e.raw_os_error() == Some(libc::EINVAL) => buffered(direct),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 13 + i / 4091) as u8).collect()
    }

    #[test]
    fn aligned_and_unaligned_data_are_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0, 1, ALIGN - 1, ALIGN, ALIGN + 1, 5 * ALIGN + 77, 1 << 20] {
            let data = pattern(len);
            for aligned in [true, false] {
                let mut buf = Vec::new();
                let pad = align_start(&mut buf, len + 1) + usize::from(!aligned);
                buf.resize(pad, 0);
                buf.extend_from_slice(&data);
                let path = dir.path().join(format!("f{len}-{aligned}"));
                let file = File::create(&path).unwrap();
                write_all(&file, &buf[pad..]).unwrap();
                assert!(!is_direct(&file));
                file.sync_all().unwrap();
                drop(file);
                assert!(std::fs::read(&path).unwrap() == data, "{len} {aligned}");
            }
        }
    }

    #[test]
    fn align_start_pads_to_an_aligned_address() {
        let mut buf = vec![1u8; 10];
        let pad = align_start(&mut buf, 3 * ALIGN);
        assert_eq!(buf.len(), pad);
        assert!(pad < ALIGN);
        assert_eq!(buf[pad..].as_ptr().align_offset(ALIGN), 0);
        assert!(buf.capacity() >= pad + 3 * ALIGN);
    }
}
