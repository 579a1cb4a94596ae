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
//! The split layout (`encode_tree_split`, `export_tar`, `restore_split`; see [`split`]'s
//! module doc) writes the same entries as two streams, metadata and payload, so that a
//! later backup can re-use the payload of unchanged files.
//!
//! This module must not do network IO or spawn threads: callers run it on a blocking thread
//! and connect `Write`/`Read` to their transport. Pure parts (PAX records, ACL text, sparse
//! maps, headers, paths) live in their own modules, apart from the IO.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use thiserror::Error;

mod acl;
mod catalog;
mod content;
mod encode;
mod entry;
mod exclude;
mod header;
mod listings;
mod pax;
mod reader;
mod restore;
mod restore_meta;
mod source;
mod sparse;
mod split;
mod walk;

pub use catalog::{CatalogEntry, list_entries};
pub(crate) use content::DIRECT_MIN;
pub use exclude::{ExcludeError, ExcludeMatcher, ExcludeSource};
pub use header::HeaderError;
pub(crate) use listings::MAX_ENTRIES as MAX_LISTED_ENTRIES;
pub use listings::{Listing, Listings};
pub use pax::PaxError;
pub use sparse::SparseMapError;
pub(crate) use split::FRESH_LIMIT;
pub use split::previous::{EntrySource, PreviousEntries, PreviousEntry};
pub use split::{
    ExportStats, PayloadSource, PayloadWrite, PreviousPayload, ReuseStats, ReusedChunk, Selection,
    SequentialPayload, SplitError, TarExport,
};

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
    /// Directory listings the read-ahead made, for the walk to take instead of listing and
    /// `lstat`ing again (`listings.rs`).
    pub listings: Option<Arc<Listings>>,
}

impl Default for EncodeOptions {
    /// No excludes, one file system.
    fn default() -> Self {
        EncodeOptions {
            excludes: ExcludeMatcher::default(),
            one_file_system: true,
            listings: None,
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
    /// Split layout with a previous archive: files whose content was re-used, not read,
    /// their payload bytes, and the bytes of re-used chunks that belong to no file.
    pub reused_files: u64,
    pub reused_bytes: u64,
    pub padding_bytes: u64,
    /// The payload's dead bytes: (start offset, bytes) of each re-used chunk that holds
    /// bytes of no file; the next backup's `PreviousPayload::set_dead`.
    pub dead_chunks: Vec<(u64, u64)>,
    /// Every file's content lies after the previous file's in the payload (always so for
    /// a single stream): a reader of the whole archive never goes back. Re-use breaks it
    /// where new content is held back behind re-used chunks, or a re-used file's content
    /// lies in a chunk appended for an earlier file.
    pub payload_in_order: bool,
    /// What cost work but lost nothing (the previous metadata became unreadable, so the
    /// rest of the files were read in full).
    pub notes: Vec<String>,
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
    #[error("the archive has no entry {paths}")]
    NotFound { paths: String },
    #[error("split archive, entry {path}: {source}")]
    Split { path: String, source: SplitError },
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

/// Writes the tree under `root` in the split layout: `meta_out` gets a tar stream in which
/// every regular file is an empty member with PAX records pointing into `payload_out`,
/// which gets the files' contents, each behind a payload header. Both are flushed.
///
/// Same walk, entries, stability and error handling as `encode_tree_with`; an error
/// writing either stream aborts.
pub fn encode_tree_split<M: Write, P: Write>(
    root: &Path,
    meta_out: M,
    payload_out: P,
    progress: &ArchiveProgress,
    options: &EncodeOptions,
) -> Result<EncodeStats, ArchiveError> {
    encode::encode_to(
        root,
        split::SplitSink::new(meta_out, split::BytesOnly(payload_out)),
        progress,
        options,
    )
}

/// The entries of a previous split archive's metadata stream, parsed, for
/// `encode_tree_split_reusing` (which may take them from another thread).
pub fn previous_entries<R: Read>(previous_meta: R) -> PreviousEntries<R> {
    PreviousEntries::new(previous_meta, restore_meta::lookup_acl_name)
}

/// `encode_tree_split` against the previous split archive of the same tree: the entries
/// of its metadata stream (`previous_entries`, consumed along with the walk) and its
/// payload index `previous_payload`. A regular file whose size, mode, mtime, ctime and inode are
/// unchanged is not read: the payload chunks holding it are handed to
/// `payload_out.append_chunks` and its metadata points into them. `EncodeStats` says how
/// many files were re-used and how many padding bytes that cost.
pub fn encode_tree_split_reusing<M: Write, P: PayloadWrite>(
    root: &Path,
    meta_out: M,
    payload_out: P,
    previous_meta: EntrySource,
    previous_payload: PreviousPayload,
    progress: &ArchiveProgress,
    options: &EncodeOptions,
) -> Result<EncodeStats, ArchiveError> {
    encode::encode_with_reuse(
        root,
        split::SplitSink::deferring(meta_out, payload_out),
        progress,
        options,
        Some(encode::Reuse::new(previous_meta, previous_payload)),
    )
}

/// The split archive (`meta`, `payload`) as one standard tar stream, read as it goes.
pub fn split_to_tar<M: Read, P: PayloadSource>(meta: M, payload: P) -> TarExport<M, P> {
    TarExport::new(meta, payload, restore_meta::lookup_acl_name)
}

/// Writes the split archive (`meta`, `payload`) to `out` as one standard tar stream (for
/// an archive of `encode_tree_split`, the bytes `encode_tree` writes for the same tree)
/// and flushes it. A payload header that does not match its entry is
/// `ArchiveError::Split` naming the entry. With a `selection`, only the selected entries
/// (and the directories above them) are written and only their payload is read; a
/// selected path that matches nothing is `ArchiveError::NotFound`.
pub fn export_tar<M: Read, P: PayloadSource, W: Write>(
    meta: M,
    payload: P,
    mut out: W,
    selection: Option<Selection>,
) -> Result<ExportStats, ArchiveError> {
    let mut export = split_to_tar(meta, payload);
    if let Some(selection) = selection {
        export = export.select(selection);
    }
    let mut buf = vec![0; 256 << 10];
    loop {
        let n = match export.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(TarExport::<M, P>::into_archive_error(e)
                    .unwrap_or_else(|source| ArchiveError::Input { offset: 0, source }));
            }
        };
        out.write_all(&buf[..n])
            .map_err(|source| ArchiveError::Output { source })?;
    }
    out.flush()
        .map_err(|source| ArchiveError::Output { source })?;
    check_matched(&export)?;
    Ok(export.stats().clone())
}

fn check_matched<M: Read, P: PayloadSource>(export: &TarExport<M, P>) -> Result<(), ArchiveError> {
    let unmatched = export.unmatched();
    if unmatched.is_empty() {
        return Ok(());
    }
    Err(ArchiveError::NotFound {
        paths: unmatched.join(", "),
    })
}

/// `restore_tree` for a split archive: restores the entries of `meta` with their contents
/// from `payload` into `target`, with the same rules. Errors of the split layout come back
/// as `ArchiveError::Split`. A `selection` restores only some entries, as in `export_tar`.
pub fn restore_split<M: Read, P: PayloadSource>(
    meta: M,
    payload: P,
    target: &Path,
    options: &RestoreOptions,
    progress: &ArchiveProgress,
    selection: Option<Selection>,
) -> Result<RestoreStats, ArchiveError> {
    let mut export = split_to_tar(meta, payload);
    if let Some(selection) = selection {
        export = export.select(selection);
    }
    let mut stats =
        restore::restore(&mut export, target, options, progress).map_err(|e| match e {
            ArchiveError::Input { offset, source } => TarExport::<M, P>::into_archive_error(source)
                .unwrap_or_else(|source| ArchiveError::Input { offset, source }),
            other => other,
        })?;
    check_matched(&export)?;
    stats
        .warnings
        .extend(export.stats().warnings.iter().cloned());
    Ok(stats)
}
