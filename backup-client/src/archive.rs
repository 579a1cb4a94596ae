//! The client archive: a directory tree as a tar stream with PAX extended headers, and back.
//!
//! `encode_tree` walks a tree (sorted by name bytes, never following symlinks, by default
//! staying on the root's file system, leaving out what the excludes match; see
//! [`EncodeOptions`]) and writes one member per object: files (sparse ones in GNU PAX
//! sparse format 1.0), directories, symlinks, hard links, fifos and devices, with mode,
//! ownership and names, nanosecond mtimes, xattrs (`SCHILY.xattr.*`) and POSIX ACLs
//! (`SCHILY.acl.access`/`default`). The root directory is the first member, named `"./"`;
//! every other member's name is its path relative to the root without a leading `./`,
//! directories with a trailing `/` (`"etc/"`, `"etc/hosts"`).
//! GNU tar and bsdtar read the stream.
//!
//! `restore_tree` reads such a stream (or one from GNU tar or bsdtar) into an empty target
//! directory. It never writes outside the target: absolute and `..` paths are refused, and
//! an entry is only created inside directories that this restore created itself, so a
//! symlink in the archive can never redirect a later entry.
//!
//! This module must not do network IO or spawn threads: callers run it on a blocking thread
//! and connect `Write`/`Read` to their transport. Pure parts (PAX records, ACL text, sparse
//! maps, headers, paths) live in their own modules, apart from the IO.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;

use thiserror::Error;

mod acl;
mod encode;
mod entry;
mod exclude;
mod header;
mod pax;
mod reader;
mod restore;
mod restore_meta;
mod source;
mod sparse;
mod walk;

pub use exclude::{ExcludeError, ExcludeMatcher, ExcludeSource};
pub use header::HeaderError;
pub use pax::PaxError;
pub use sparse::SparseMapError;

/// Live counters for a progress display, updated with `Relaxed` stores while encoding
/// (`bytes`: file content read) or restoring (`bytes`: file content written).
#[derive(Debug, Default)]
pub struct ArchiveProgress {
    pub entries: AtomicU64,
    pub files: AtomicU64,
    pub bytes: AtomicU64,
}

/// Options of `encode_tree_with`.
#[derive(Debug, Clone)]
pub struct EncodeOptions {
    /// Paths left out (gitignore semantics, relative to the root). An excluded directory
    /// is not listed at all, so nothing below it can be re-included.
    pub excludes: ExcludeMatcher,
    /// Stay on the root's file system: a mount point below the root is archived as an
    /// empty directory. `false` descends into every file system.
    pub one_file_system: bool,
}

impl Default for EncodeOptions {
    /// No excludes, one file system.
    fn default() -> Self {
        EncodeOptions {
            excludes: ExcludeMatcher::default(),
            one_file_system: true,
        }
    }
}

/// Result of `encode_tree`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EncodeStats {
    /// Members written, the root and hard links included.
    pub entries: u64,
    /// Entries left out by an exclude pattern; an excluded directory counts once, whatever
    /// it holds.
    pub excluded: u64,
    /// Regular files whose content was written.
    pub files: u64,
    pub bytes_read: u64,
    /// Per-file problems that did not stop the archive, each naming its path: a file that
    /// vanished or could not be opened (left out), one that shrank or failed while being
    /// read (zero-padded to its declared size), a directory that could not be listed.
    pub errors: Vec<String>,
}

/// Options of `restore_tree`; none yet, `Default` gives the behaviour described there.
#[derive(Debug, Default, Clone)]
#[non_exhaustive]
pub struct RestoreOptions {}

/// Result of `restore_tree`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RestoreStats {
    /// Members restored (created, or for the root: metadata applied).
    pub entries: u64,
    /// Regular files whose content was written (hard links not counted).
    pub files: u64,
    pub bytes_written: u64,
    /// What could not be restored and was skipped or left as it was, each naming its path:
    /// ownership as non-root, xattrs and ACLs the file system refused, devices without
    /// privilege, members with unsafe paths.
    pub warnings: Vec<String>,
}

#[derive(Debug, Error)]
pub enum ArchiveError {
    #[error("{}: not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("{}: {op}: {source}", path.display())]
    Root {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    #[error("writing the archive stream: {source}")]
    Output { source: io::Error },
    #[error("reading the archive stream at byte {offset}: {source}")]
    Input { offset: u64, source: io::Error },
    #[error("archive is truncated: stream ends at byte {offset} inside {context}")]
    Truncated { offset: u64, context: &'static str },
    #[error("archive is corrupt at byte {offset}: {source}")]
    Corrupt { offset: u64, source: HeaderError },
    #[error("archive member at byte {offset}: {what} of {size} bytes exceeds the limit")]
    TooLarge {
        offset: u64,
        what: &'static str,
        size: u64,
    },
    #[error("restore target {} exists and is not an empty directory", path.display())]
    TargetNotEmpty { path: PathBuf },
    #[error("restore target {}: {source}", path.display())]
    Target { path: PathBuf, source: io::Error },
    #[error("restoring {path}: {op}: {source}")]
    Restore {
        path: String,
        op: &'static str,
        source: io::Error,
    },
}

/// `encode_tree_with` with the default options: everything on the root's file system.
pub fn encode_tree<W: Write>(
    root: &Path,
    out: W,
    progress: &ArchiveProgress,
) -> Result<EncodeStats, ArchiveError> {
    encode_tree_with(root, out, progress, &EncodeOptions::default())
}

/// Writes the tree under `root` (a directory) to `out` as a tar/PAX stream and flushes it.
///
/// Unchanged trees (with unchanged options) give identical bytes. Errors writing `out` and
/// IO errors on `root` itself abort; problems with single files are collected in
/// `EncodeStats::errors`. The root is always archived, whatever the excludes say.
pub fn encode_tree_with<W: Write>(
    root: &Path,
    out: W,
    progress: &ArchiveProgress,
    options: &EncodeOptions,
) -> Result<EncodeStats, ArchiveError> {
    encode::encode(root, out, progress, options)
}

/// Restores the tar stream `input` into `target`, which is created if missing and must be
/// empty if it exists (checked before anything is written).
///
/// Directory modes and times are set after their contents. A truncated or corrupt stream
/// is an error; what the restore may not do as the current user goes to
/// `RestoreStats::warnings`.
pub fn restore_tree<R: Read>(
    input: R,
    target: &Path,
    options: &RestoreOptions,
    progress: &ArchiveProgress,
) -> Result<RestoreStats, ArchiveError> {
    restore::restore(input, target, options, progress)
}
