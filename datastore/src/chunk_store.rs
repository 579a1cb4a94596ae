//! The chunk store: one file per chunk blob at `<base>/.chunks/<4 hex prefix>/<64 hex>`.
//!
//! Inserts are crash-safe and race-free without locks: each writer writes its own temp file
//! (unique name, same prefix directory), fsyncs it and renames it into place. Two sessions
//! inserting the same chunk write identical content, so whichever rename lands last is fine.
//! Inserting a chunk that exists only sets its access time: garbage collection marks chunks
//! by atime, so a chunk that a running backup reuses is never swept.
//!
//! Renames become durable only when their directory is fsynced. Rather than one directory
//! fsync per chunk, inserts record their prefix as dirty and the caller runs
//! [`ChunkStore::sync_dirty_dirs`] once before it commits anything that references them (at
//! index close). This module decides nothing about which chunks are garbage: it only lists
//! and classifies the files, and removes one when GC asks, without racing with `touch`.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;

use crate::blob::{self, BlobError, MAX_CHUNK_SIZE};
use crate::digest::Digest;
use crate::file_formats::BLOB_HEADER_SIZE;
use crate::{direct_io, fs_util};

/// Name of the chunk directory inside a store.
pub const CHUNK_DIR: &str = ".chunks";
/// Largest chunk file read back: a raw blob of the largest chunk. zstd is kept only when
/// smaller, so no valid chunk file is larger.
pub const MAX_ENCODED_CHUNK_SIZE: u64 = (MAX_CHUNK_SIZE + BLOB_HEADER_SIZE) as u64;

/// A chunk store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum ChunkStoreError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("chunk {digest} not found")]
    NotFound { digest: Digest },
    #[error("chunk file {path} is {size} bytes, larger than any valid chunk")]
    TooLarge { path: PathBuf, size: u64 },
    #[error("refusing to store chunk {digest}: {source}")]
    InvalidBlob {
        digest: Digest,
        #[source]
        source: BlobError,
    },
    #[error("{path} is not a chunk store (no {CHUNK_DIR} directory)")]
    NotAChunkStore { path: PathBuf },
}

fn io_error(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ChunkStoreError {
    let path = path.to_path_buf();
    move |source| ChunkStoreError::Io { op, path, source }
}

/// What [`ChunkStore::insert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertOutcome {
    /// A new chunk file of `stored_bytes` bytes was written.
    Inserted { stored_bytes: u64 },
    /// The chunk was there already; its atime was updated.
    Existed,
}

/// Directories with renames that are not yet durable.
#[derive(Debug, Default)]
struct DirtyDirs {
    prefixes: BTreeSet<u16>,
    /// A prefix directory was created: its entry in `.chunks` needs an fsync too.
    chunk_dir: bool,
}

/// The chunk files of one datastore. `Send + Sync`; share it with an `Arc`.
#[derive(Debug)]
pub struct ChunkStore {
    chunk_dir: PathBuf,
    dirty: Mutex<DirtyDirs>,
    /// Serializes `sync_dirty_dirs`, so that a caller never returns while another caller is
    /// still fsyncing a directory that holds the first caller's chunks.
    sync: Mutex<()>,
}

impl ChunkStore {
    /// Creates `<base>/.chunks` (which must not exist); prefix directories come lazily.
    pub fn create(base: &Path) -> Result<Self, ChunkStoreError> {
        let chunk_dir = base.join(CHUNK_DIR);
        fs::create_dir(&chunk_dir).map_err(io_error("create chunk directory", &chunk_dir))?;
        fs_util::fsync_dir(base).map_err(io_error("fsync", base))?;
        Ok(Self::at(chunk_dir))
    }

    /// Opens the chunk store of the datastore at `base`.
    pub fn open(base: &Path) -> Result<Self, ChunkStoreError> {
        let chunk_dir = base.join(CHUNK_DIR);
        match fs::metadata(&chunk_dir) {
            Ok(meta) if meta.is_dir() => Ok(Self::at(chunk_dir)),
            Ok(_) => Err(ChunkStoreError::NotAChunkStore {
                path: base.to_path_buf(),
            }),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                Err(ChunkStoreError::NotAChunkStore {
                    path: base.to_path_buf(),
                })
            }
            Err(err) => Err(io_error("open chunk directory", &chunk_dir)(err)),
        }
    }

    fn at(chunk_dir: PathBuf) -> Self {
        Self {
            chunk_dir,
            dirty: Mutex::new(DirtyDirs::default()),
            sync: Mutex::new(()),
        }
    }

    /// `<base>/.chunks`.
    pub fn chunk_dir(&self) -> &Path {
        &self.chunk_dir
    }

    fn prefix_dir(&self, prefix: u16) -> PathBuf {
        self.chunk_dir.join(format!("{prefix:04x}"))
    }

    /// Where the chunk `digest` is (or would be) stored.
    pub fn chunk_path(&self, digest: &Digest) -> PathBuf {
        let mut path = self.prefix_dir(digest.prefix());
        path.push(digest.to_hex());
        path
    }

    /// True if the chunk is stored (as a non-empty file).
    pub fn contains(&self, digest: &Digest) -> bool {
        fs::metadata(self.chunk_path(digest)).is_ok_and(|m| m.is_file() && m.len() > 0)
    }

    /// Sets the chunk's atime to now (mtime unchanged): the GC mark. `Ok(false)` if missing.
    pub fn touch(&self, digest: &Digest) -> Result<bool, ChunkStoreError> {
        let path = self.chunk_path(digest);
        match utimensat(
            nix::fcntl::AT_FDCWD,
            &path,
            &TimeSpec::UTIME_NOW,
            &TimeSpec::UTIME_OMIT,
            UtimensatFlags::NoFollowSymlink,
        ) {
            Ok(()) => Ok(true),
            Err(nix::errno::Errno::ENOENT) => Ok(false),
            Err(errno) => Err(io_error("touch chunk", &path)(errno.into())),
        }
    }

    /// Touches every chunk of `digests` (see [`touch`](Self::touch)) and returns the ones
    /// that are missing or empty (what a crash can leave; [`insert`](Self::insert)
    /// overwrites such a file), in the order given. A backup that reuses an old index's
    /// chunks touches them first: from then on GC keeps them for as long as the backup runs.
    pub fn touch_all<'a>(
        &self,
        digests: impl IntoIterator<Item = &'a Digest>,
    ) -> Result<Vec<Digest>, ChunkStoreError> {
        let mut missing = Vec::new();
        for digest in digests {
            if !(self.touch(digest)? && self.contains(digest)) {
                missing.push(*digest);
            }
        }
        Ok(missing)
    }

    /// Stores an encoded chunk blob under `digest` unless a non-empty copy exists (then only
    /// its atime is updated). The caller has checked that `encoded` decodes to data whose
    /// SHA-256 is `digest`; here only the blob header is checked.
    pub fn insert(
        &self,
        digest: &Digest,
        encoded: &[u8],
    ) -> Result<InsertOutcome, ChunkStoreError> {
        blob::kind(encoded).map_err(|source| ChunkStoreError::InvalidBlob {
            digest: *digest,
            source,
        })?;
        // An empty file is what a crash may leave on filesystems that reorder metadata and
        // data; it is overwritten rather than trusted.
        if self.contains(digest) && self.touch(digest)? {
            return Ok(InsertOutcome::Existed);
        }
        let prefix = digest.prefix();
        let dir = self.prefix_dir(prefix);
        match fs::create_dir(&dir) {
            Ok(()) => self.lock_dirty().chunk_dir = true,
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(io_error("create chunk prefix directory", &dir)(err)),
        }
        let path = self.chunk_path(digest);
        let (file, temp) =
            fs_util::create_temp_for(&path).map_err(io_error("create temp chunk in", &dir))?;
        // Past the page cache when the caller's buffer allows: a stored chunk is read again
        // by a restore or a verify much later, if ever.
        direct_io::write_all(&file, encoded).map_err(io_error("write chunk", temp.path()))?;
        file.sync_all()
            .map_err(io_error("fsync chunk", temp.path()))?;
        drop(file);
        temp.persist(&path)
            .map_err(io_error("rename chunk to", &path))?;
        self.lock_dirty().prefixes.insert(prefix);
        Ok(InsertOutcome::Inserted {
            stored_bytes: encoded.len() as u64,
        })
    }

    fn lock_dirty(&self) -> std::sync::MutexGuard<'_, DirtyDirs> {
        // Plain data: a panic elsewhere cannot leave it half-updated.
        self.dirty.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// fsyncs every prefix directory that received a chunk since the last call (and `.chunks`
    /// if a prefix directory was created), making those renames durable. On error the
    /// directories not yet synced stay dirty for the next call.
    pub fn sync_dirty_dirs(&self) -> Result<(), ChunkStoreError> {
        let _serial = self.sync.lock().unwrap_or_else(|e| e.into_inner());
        let dirty = std::mem::take(&mut *self.lock_dirty());
        let mut pending: Vec<u16> = dirty.prefixes.into_iter().collect();
        let result = (|| {
            // Prefix directories first, then the directory that lists them.
            while let Some(&prefix) = pending.last() {
                let dir = self.prefix_dir(prefix);
                fs_util::fsync_dir(&dir).map_err(io_error("fsync", &dir))?;
                pending.pop();
            }
            if dirty.chunk_dir {
                fs_util::fsync_dir(&self.chunk_dir).map_err(io_error("fsync", &self.chunk_dir))?;
            }
            Ok(())
        })();
        if result.is_err() {
            let mut again = self.lock_dirty();
            again.prefixes.extend(pending);
            again.chunk_dir |= dirty.chunk_dir;
        }
        result
    }

    /// The prefix directories that exist (`.chunks/<4 hex>`), sorted. Other entries of
    /// `.chunks` are skipped.
    pub fn prefix_dirs(&self) -> Result<Vec<PathBuf>, ChunkStoreError> {
        let dir = &self.chunk_dir;
        let mut out = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_error("list", dir))? {
            let entry = entry.map_err(io_error("list", dir))?;
            let file_type = entry.file_type().map_err(io_error("stat entry in", dir))?;
            if file_type.is_dir() && entry.file_name().to_str().is_some_and(is_prefix_name) {
                out.push(entry.path());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes the chunk file at `path` if `is_garbage(atime)` still holds when the file
    /// leaves its name. GC calls this for a chunk whose atime it found old.
    ///
    /// A plain stat-then-unlink races with [`touch`](Self::touch): an insert that touches
    /// the chunk in between believes it stored, and a snapshot would reference a chunk that
    /// is gone. So the file is first renamed to a temp name in its directory (from then on
    /// `touch` sees it missing and an insert writes a new copy) and its atime is read again:
    /// a touch that reached it did so before the rename and shows. A touched file is renamed
    /// back (over a new copy, if an insert made one: same content) and its directory fsynced;
    /// otherwise it is unlinked. No lock, so this holds across threads, store instances and
    /// processes. What remains is a crash between the two renames of a chunk touched in
    /// that window of a few syscalls: the chunk is then left under the temp name.
    pub fn remove_if_unused(
        &self,
        path: &Path,
        is_garbage: impl Fn(i64) -> bool,
    ) -> Result<ChunkRemoval, ChunkStoreError> {
        let doomed = doomed_path(path).map_err(io_error("name temp file for", path))?;
        match fs::rename(path, &doomed) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(ChunkRemoval::Vanished),
            Err(err) => return Err(io_error("move aside", path)(err)),
        }
        let meta = match fs::symlink_metadata(&doomed) {
            Ok(meta) => meta,
            Err(err) => {
                // Put it back rather than leave a live chunk under a temp name.
                let _ = fs::rename(&doomed, path);
                return Err(io_error("stat", &doomed)(err));
            }
        };
        if is_garbage(meta.atime()) {
            fs::remove_file(&doomed).map_err(io_error("remove", &doomed))?;
            return Ok(ChunkRemoval::Removed { size: meta.len() });
        }
        fs::rename(&doomed, path).map_err(io_error("move back", path))?;
        let dir = fs_util::parent_dir(path);
        fs_util::fsync_dir(dir).map_err(io_error("fsync", dir))?;
        Ok(ChunkRemoval::Touched {
            atime: meta.atime(),
            size: meta.len(),
        })
    }

    /// Reads the encoded blob of a chunk.
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>, ChunkStoreError> {
        let mut data = Vec::new();
        self.read_into(digest, &mut data)?;
        Ok(data)
    }

    /// [`Self::read`] into `data` (emptied first; replaced by a buffer of the
    /// [`crate::pool`] if it has no room for the file), so that the caller can bring a
    /// buffer of its own.
    pub fn read_into(&self, digest: &Digest, data: &mut Vec<u8>) -> Result<(), ChunkStoreError> {
        let path = self.chunk_path(digest);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(ChunkStoreError::NotFound { digest: *digest });
            }
            Err(err) => return Err(io_error("open chunk", &path)(err)),
        };
        let size = file
            .metadata()
            .map_err(io_error("stat chunk", &path))?
            .len();
        if size > MAX_ENCODED_CHUNK_SIZE {
            return Err(ChunkStoreError::TooLarge { path, size });
        }
        data.clear();
        if data.capacity() < size as usize {
            // A buffer of the process's pool with room for the whole file.
            crate::pool::give_buffer(std::mem::replace(
                data,
                crate::pool::take_buffer(size as usize),
            ));
        }
        // The bound also covers a file that grew after the stat.
        file.take(MAX_ENCODED_CHUNK_SIZE + 1)
            .read_to_end(data)
            .map_err(io_error("read chunk", &path))?;
        if data.len() as u64 > MAX_ENCODED_CHUNK_SIZE {
            return Err(ChunkStoreError::TooLarge {
                path,
                size: data.len() as u64,
            });
        }
        Ok(())
    }
}

/// What [`ChunkStore::remove_if_unused`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkRemoval {
    /// The file was removed; it had `size` bytes.
    Removed { size: u64 },
    /// The chunk was touched after the caller looked at it, and stays; its new atime.
    Touched { atime: i64, size: u64 },
    /// The file was gone already.
    Vanished,
}

/// What a file in a chunk prefix directory is, by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkFileKind {
    /// `<64 hex>`: a chunk.
    Chunk,
    /// `<64 hex>.<n>.bad`: a chunk that verify found corrupt and moved aside.
    Bad,
    /// A temp file of an insert in progress, or one that a crash left.
    Temp,
    /// Anything else: left alone.
    Other,
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_prefix_name(name: &str) -> bool {
    is_lower_hex(name, 4)
}

/// Classifies a file name found in a prefix directory. Pure.
pub fn chunk_file_kind(name: &str) -> ChunkFileKind {
    if is_lower_hex(name, 64) {
        return ChunkFileKind::Chunk;
    }
    if fs_util::is_temp_name(name) {
        return ChunkFileKind::Temp;
    }
    let bad = name
        .strip_suffix(".bad")
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(digest, n)| {
            is_lower_hex(digest, 64)
                && (1..=3).contains(&n.len())
                && n.bytes().all(|b| b.is_ascii_digit())
        });
    if bad {
        ChunkFileKind::Bad
    } else {
        ChunkFileKind::Other
    }
}

/// A temp name next to `path` (`.<name>.tmp-<16 hex>`) to move a chunk aside under.
fn doomed_path(path: &Path) -> io::Result<PathBuf> {
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(|e| io::Error::other(format!("getrandom: {e}")))?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let mut doomed = std::ffi::OsString::from(".");
    doomed.push(name);
    doomed.push(".tmp-");
    doomed.push(hex::encode(random));
    Ok(path.with_file_name(doomed))
}

/// How many `.bad` copies of one chunk are kept: `<digest>.0.bad` to `<digest>.9.bad`.
const MAX_BAD_COPIES: u32 = 10;

impl ChunkStore {
    /// Renames a corrupt chunk aside to `<digest>.<n>.bad`, with `n` the first free number
    /// in `0..=9` (when all are taken, `.9.bad` is replaced, so the evidence stays bounded),
    /// and fsyncs the directory. From then on the chunk counts as missing, so the next backup
    /// that has the data stores a good copy instead of touching the bad one. Returns the new
    /// path; [`ChunkStoreError::NotFound`] if the chunk is not there (any more).
    pub fn rename_bad(&self, digest: &Digest) -> Result<PathBuf, ChunkStoreError> {
        let path = self.chunk_path(digest);
        let mut target = PathBuf::new();
        for n in 0..MAX_BAD_COPIES {
            target = path.with_file_name(format!("{}.{n}.bad", digest.to_hex()));
            match fs::symlink_metadata(&target) {
                Ok(_) => continue,
                Err(err) if err.kind() == io::ErrorKind::NotFound => break,
                Err(err) => return Err(io_error("stat", &target)(err)),
            }
        }
        match fs::rename(&path, &target) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(ChunkStoreError::NotFound { digest: *digest });
            }
            Err(err) => return Err(io_error("rename corrupt chunk", &path)(err)),
        }
        let dir = fs_util::parent_dir(&path);
        fs_util::fsync_dir(dir).map_err(io_error("fsync", dir))?;
        Ok(target)
    }
}

#[cfg(test)]
mod tests;
