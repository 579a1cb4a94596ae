//! The encoder: turns walk events into tar members on the output stream, streaming file
//! content in 1 MiB blocks. It must never hold a whole file in memory, and never ignore an
//! error from the output.
//!
//! Errors writing the output abort at once: the consumer must learn that the archive is not
//! whole. Problems with one file (vanished, unreadable, shrank) are recorded in
//! `EncodeStats::errors` and the archive goes on; a member whose header is out always gets
//! exactly the data it declared (zero-padded if the file shrank), so the stream stays valid.
//!
//! The walk and the entries it makes are the same for every layout; where the bytes go is
//! an [`EntrySink`]: [`TarSink`] writes the single tar stream, the split layout
//! (`super::split`) a metadata and a payload stream. With a previous split archive the
//! encoder re-uses the payload of unchanged files instead of reading them ([`reuse`]).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;

use super::content::{BlockBuf, ContentReader, IO_BLOCK};
use super::entry::{Entry, EntryKind, FileStamp, Timestamp, display_path};
use super::header::{BLOCK, encode_header};
use super::source::{
    NameCache, basic_meta, data_segments, may_be_sparse, open_for_reading, read_meta,
};
use super::sparse::{SparseMap, SparseSegment};
use super::split::ReusedChunk;
use super::walk::{TreeWalker, WalkEvent, WalkItem};
use super::{ArchiveError, ArchiveProgress, EncodeOptions, EncodeStats};

const OUTPUT_BUFFER: usize = 256 << 10;

/// Where the encoder puts an archive: one member at a time, `begin` with the entry, then
/// exactly `entry.data_len()` bytes through `data`, then `end`; `finish` after the last.
/// `stamp` comes with every regular file whose content follows.
pub(crate) trait EntrySink {
    fn begin(&mut self, entry: &Entry, stamp: Option<&FileStamp>) -> io::Result<()>;
    fn data(&mut self, bytes: &[u8]) -> io::Result<()>;
    fn end(&mut self, entry: &Entry) -> io::Result<()>;
    /// Writes what closes the archive and flushes everything to the consumer; whether every
    /// file's content lies after the previous file's ([`EncodeStats::payload_in_order`]).
    fn finish(self) -> io::Result<bool>;
    /// The split layout's extra operations, for re-using a previous payload.
    fn split_out(&mut self) -> Option<&mut dyn SplitOut> {
        None
    }
}

/// A sink that writes a payload stream apart from the metadata and can re-use chunks of
/// the previous payload.
pub(crate) trait SplitOut {
    /// Payload bytes so far.
    fn payload_pos(&self) -> u64;
    /// Appends whole chunks of the previous payload to the payload stream.
    fn append_chunks(&mut self, chunks: &[ReusedChunk]) -> io::Result<()>;
    /// The metadata member of a file whose payload header is already at `offset`.
    fn reused_member(&mut self, entry: &Entry, stamp: &FileStamp, offset: u64) -> io::Result<()>;
}

/// The single layout: one tar stream with file contents inline.
pub(crate) struct TarSink<W: Write> {
    out: BufWriter<W>,
}

impl<W: Write> TarSink<W> {
    pub(crate) fn new(out: W) -> Self {
        TarSink {
            out: BufWriter::with_capacity(OUTPUT_BUFFER, out),
        }
    }
}

impl<W: Write> EntrySink for TarSink<W> {
    fn begin(&mut self, entry: &Entry, _stamp: Option<&FileStamp>) -> io::Result<()> {
        self.out.write_all(&encode_header(entry))
    }

    fn data(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)
    }

    fn end(&mut self, entry: &Entry) -> io::Result<()> {
        let padding = (BLOCK - (entry.data_len() % BLOCK as u64) as usize) % BLOCK;
        self.out.write_all(&[0; BLOCK][..padding])
    }

    fn finish(mut self) -> io::Result<bool> {
        self.out.write_all(&[0; 2 * BLOCK])?;
        let mut out = self.out.into_inner().map_err(|e| e.into_error())?;
        out.flush()?;
        // Contents are inline, one file after the other.
        Ok(true)
    }
}

pub(crate) fn encode<W: Write>(
    root: &Path,
    out: W,
    progress: &ArchiveProgress,
    options: &EncodeOptions,
) -> Result<EncodeStats, ArchiveError> {
    encode_to(root, TarSink::new(out), progress, options)
}

/// Walks `root` and hands every entry to `sink`.
pub(crate) fn encode_to<S: EntrySink>(
    root: &Path,
    sink: S,
    progress: &ArchiveProgress,
    options: &EncodeOptions,
) -> Result<EncodeStats, ArchiveError> {
    encode_with_reuse(root, sink, progress, options, None)
}

/// `encode_to`, re-using the previous payload for unchanged files when `reuse` is given
/// (the sink must then be a split one).
pub(crate) fn encode_with_reuse<S: EntrySink>(
    root: &Path,
    sink: S,
    progress: &ArchiveProgress,
    options: &EncodeOptions,
    reuse: Option<Reuse>,
) -> Result<EncodeStats, ArchiveError> {
    let mut walker = TreeWalker::new(root, options)?;
    let mut encoder = Encoder {
        sink,
        progress,
        stats: EncodeStats::default(),
        names: NameCache::default(),
        links: HashMap::new(),
        buf: BlockBuf::new(),
        reuse,
    };
    while let Some(event) = walker.next_event()? {
        match event {
            WalkEvent::Item(item) => encoder.add(item)?,
            WalkEvent::Problem(problem) => encoder.stats.errors.push(problem),
            WalkEvent::Excluded => encoder.stats.excluded += 1,
        }
    }
    encoder.finish()
}

struct Encoder<'p, S: EntrySink> {
    sink: S,
    progress: &'p ArchiveProgress,
    stats: EncodeStats,
    names: NameCache,
    /// First archive path of every multiply-linked inode seen so far.
    links: HashMap<(u64, u64), Vec<u8>>,
    buf: BlockBuf,
    /// Change detection against a previous split archive.
    reuse: Option<Reuse>,
}

impl<S: EntrySink> Encoder<'_, S> {
    fn add(&mut self, item: WalkItem) -> Result<(), ArchiveError> {
        let WalkItem {
            fs_path,
            archive_path,
            meta,
        } = item;
        let ft = meta.file_type();
        let link_key = (!ft.is_dir() && meta.nlink() > 1).then_some((meta.dev(), meta.ino()));
        if let Some(first) = link_key.and_then(|key| self.links.get(&key)) {
            let kind = EntryKind::HardLink {
                target: first.clone(),
            };
            // The inode's xattrs and ACLs were stored with its first path; a link has none.
            let entry_meta = basic_meta(&meta, &mut self.names);
            return self.write_member(
                &Entry {
                    path: archive_path,
                    kind,
                    meta: entry_meta,
                },
                None,
                None,
            );
        }
        let kind = if ft.is_dir() {
            EntryKind::Directory
        } else if ft.is_symlink() {
            match std::fs::read_link(&fs_path) {
                Ok(target) => EntryKind::Symlink {
                    target: target.as_os_str().as_bytes().to_vec(),
                },
                Err(e) => return self.problem(&archive_path, format!("reading symlink: {e}")),
            }
        } else if ft.is_fifo() {
            EntryKind::Fifo
        } else if ft.is_char_device() || ft.is_block_device() {
            let rdev = meta.rdev();
            let major = u32::try_from(nix::sys::stat::major(rdev)).unwrap_or(u32::MAX);
            let minor = u32::try_from(nix::sys::stat::minor(rdev)).unwrap_or(u32::MAX);
            if ft.is_char_device() {
                EntryKind::CharDevice { major, minor }
            } else {
                EntryKind::BlockDevice { major, minor }
            }
        } else if ft.is_file() {
            return self.add_regular(fs_path, archive_path, &meta, link_key);
        } else {
            // Sockets cannot be archived (nor can tar restore them); like tar, skip quietly.
            return Ok(());
        };
        let mut problems = Vec::new();
        let entry_meta = read_meta(&fs_path, &meta, &mut self.names, &mut problems);
        self.report(&archive_path, problems);
        let entry = Entry {
            path: archive_path,
            kind,
            meta: entry_meta,
        };
        self.write_member(&entry, None, None)?;
        if let Some(key) = link_key {
            self.links.insert(key, entry.path);
        }
        Ok(())
    }

    fn add_file(
        &mut self,
        fs_path: &Path,
        archive_path: Vec<u8>,
        link_key: Option<(u64, u64)>,
    ) -> Result<(), ArchiveError> {
        let file = match open_for_reading(fs_path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return self.problem(&archive_path, "vanished before it was read".into());
            }
            Err(e) => return self.problem(&archive_path, format!("open: {e}")),
        };
        let meta = match file.metadata() {
            Ok(meta) => meta,
            Err(e) => return self.problem(&archive_path, format!("fstat: {e}")),
        };
        if !meta.is_file() || link_key.is_some_and(|key| key != (meta.dev(), meta.ino())) {
            return self.problem(
                &archive_path,
                "replaced while being archived; left out".into(),
            );
        }
        let size = meta.size();
        let sparse = match may_be_sparse(&meta).then(|| data_segments(&file, size)) {
            Some(Ok(Some(segments))) => Some(SparseMap::new(segments, size)),
            Some(Err(e)) => return self.problem(&archive_path, format!("finding holes: {e}")),
            _ => None,
        };
        let mut problems = Vec::new();
        let entry_meta = read_meta(fs_path, &meta, &mut self.names, &mut problems);
        self.report(&archive_path, problems);
        let entry = Entry {
            path: archive_path,
            kind: EntryKind::File { size, sparse },
            meta: entry_meta,
        };
        self.write_member(&entry, Some(&file), Some(&stamp_of(&meta)))?;
        self.stats.files += 1;
        self.progress.files.fetch_add(1, Relaxed);
        if let Some(key) = link_key {
            self.links.insert(key, entry.path);
        }
        Ok(())
    }

    /// Writes the header and, for a file, exactly `entry.data_len()` bytes of content plus
    /// padding to a whole block.
    fn write_member(
        &mut self,
        entry: &Entry,
        file: Option<&File>,
        stamp: Option<&FileStamp>,
    ) -> Result<(), ArchiveError> {
        let output = |source| ArchiveError::Output { source };
        self.sink.begin(entry, stamp).map_err(output)?;
        let segments = match &entry.kind {
            EntryKind::File {
                sparse: Some(map), ..
            } => map.segments.clone(),
            EntryKind::File { size, .. } => vec![SparseSegment {
                offset: 0,
                len: *size,
            }],
            _ => Vec::new(),
        };
        let mut failure: Option<String> = None;
        let whole = matches!(entry.kind, EntryKind::File { sparse: None, .. });
        let mut reader = file.map(|file| ContentReader::new(file, entry.data_len(), whole));
        for segment in segments {
            let mut done = 0;
            while done < segment.len {
                let want = usize::try_from(segment.len - done)
                    .unwrap_or(usize::MAX)
                    .min(IO_BLOCK);
                let read = match (&mut reader, &failure) {
                    (Some(reader), None) => {
                        reader.read_at(&mut self.buf, want, segment.offset + done)
                    }
                    _ => Ok(0),
                };
                let n = match read {
                    Ok(0) => {
                        failure.get_or_insert_with(|| {
                            format!("shrank to {} bytes while being read", segment.offset + done)
                        });
                        self.buf.get_mut(want).fill(0);
                        want
                    }
                    Ok(n) => {
                        self.stats.bytes_read += n as u64;
                        self.progress.bytes.fetch_add(n as u64, Relaxed);
                        n
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        failure =
                            Some(format!("read error at byte {}: {e}", segment.offset + done));
                        continue;
                    }
                };
                self.sink.data(self.buf.get(n)).map_err(output)?;
                done += n as u64;
            }
        }
        self.sink.end(entry).map_err(output)?;
        if let Some(failure) = failure {
            let size = entry.data_len();
            self.problem(
                &entry.path,
                format!("{failure}; stored zero-padded to {size} bytes"),
            )?;
        }
        self.stats.entries += 1;
        self.progress.entries.fetch_add(1, Relaxed);
        Ok(())
    }

    fn problem(&mut self, path: &[u8], what: String) -> Result<(), ArchiveError> {
        self.stats
            .errors
            .push(format!("{}: {what}", display_path(path)));
        Ok(())
    }

    fn report(&mut self, path: &[u8], problems: Vec<String>) {
        for p in problems {
            self.stats
                .errors
                .push(format!("{}: {p}", display_path(path)));
        }
    }

    /// Closes the archive (for tar: the end-of-archive marker) and flushes it.
    fn finish(mut self) -> Result<EncodeStats, ArchiveError> {
        if let Some(reuse) = &self.reuse {
            let stats = reuse.stats();
            self.stats.reused_files = stats.files;
            self.stats.reused_bytes = stats.bytes;
            self.stats.padding_bytes = stats.padding();
            self.stats.dead_chunks = reuse.dead_chunks();
        }
        self.stats.payload_in_order = self
            .sink
            .finish()
            .map_err(|source| ArchiveError::Output { source })?;
        Ok(self.stats)
    }
}

/// The stamp change detection compares, from a file's `stat`.
pub(crate) fn stamp_of(meta: &std::fs::Metadata) -> FileStamp {
    FileStamp {
        ctime: Timestamp {
            sec: meta.ctime(),
            nsec: u32::try_from(meta.ctime_nsec()).unwrap_or(0),
        },
        ino: meta.ino(),
    }
}

mod reuse;
pub(crate) use reuse::Reuse;

#[cfg(test)]
mod exclude_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::entry::EntryMeta;

    fn encoder(progress: &ArchiveProgress) -> Encoder<'_, TarSink<Vec<u8>>> {
        Encoder {
            sink: TarSink::new(Vec::new()),
            progress,
            stats: EncodeStats::default(),
            names: NameCache::default(),
            links: HashMap::new(),
            buf: BlockBuf::new(),
            reuse: None,
        }
    }

    fn file_entry(size: u64) -> Entry {
        Entry {
            path: b"f".to_vec(),
            kind: EntryKind::File { size, sparse: None },
            meta: EntryMeta::default(),
        }
    }

    /// Data area of the single member in `out` (after the `x` header, its records and the
    /// ustar header).
    fn member_data(out: &[u8], header_len: usize) -> &[u8] {
        &out[header_len..]
    }

    #[test]
    fn a_file_that_shrank_is_zero_padded_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, [9u8; 1000]).unwrap();
        let file = File::open(&path).unwrap();
        let progress = ArchiveProgress::default();
        let mut enc = encoder(&progress);
        let entry = file_entry(10_000);
        enc.write_member(&entry, Some(&file), None).unwrap();
        let header_len = encode_header(&entry).len();
        let out = enc.sink.out.into_inner().unwrap();
        let data = member_data(&out, header_len);
        assert_eq!(data.len(), 10_240);
        assert!(data[..1000].iter().all(|&b| b == 9));
        assert!(data[1000..].iter().all(|&b| b == 0));
        assert_eq!(enc.stats.bytes_read, 1000);
        assert_eq!(enc.stats.errors.len(), 1);
        assert!(
            enc.stats.errors[0].starts_with("f: shrank to 1000 bytes"),
            "{:?}",
            enc.stats.errors
        );
    }

    #[test]
    fn a_file_that_grew_is_stored_at_its_declared_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, [9u8; 10_000]).unwrap();
        let file = File::open(&path).unwrap();
        let progress = ArchiveProgress::default();
        let mut enc = encoder(&progress);
        let entry = file_entry(600);
        enc.write_member(&entry, Some(&file), None).unwrap();
        let header_len = encode_header(&entry).len();
        let out = enc.sink.out.into_inner().unwrap();
        let data = member_data(&out, header_len);
        assert_eq!(data.len(), 1024);
        assert!(data[..600].iter().all(|&b| b == 9) && data[600..].iter().all(|&b| b == 0));
        assert!(enc.stats.errors.is_empty());
        assert_eq!(progress.bytes.load(Relaxed), 600);
    }
}
