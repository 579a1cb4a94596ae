//! The restorer: recreates the members of a tar stream under a target directory.
//!
//! Safety rules, checked for every member before anything is created: its path passes
//! `relative_path` (no absolute path, no `..`), and its parent is a directory that this
//! restore created (or the target itself). Missing parents are created as plain
//! directories; a name that exists already is only ever replaced if it is not a directory.
//! So a symlink restored from the archive can never redirect a later member, and nothing is
//! written outside the target. Hard links only point at non-directories inside such
//! directories. Unsafe members are skipped with a warning; IO errors on the target abort.
//!
//! Directory metadata (owner, xattrs, ACLs, mode, mtime) is applied at the end, innermost
//! first, so that read-only directories and mtimes survive the creation of their content
//! and default ACLs do not leak onto restored files.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;

use nix::errno::Errno;
use nix::sys::stat::{Mode, SFlag, makedev, mknod};
use nix::unistd::mkfifo;

use super::content::{BlockBuf, DIRECT_MIN, IO_BLOCK};
use super::entry::{EntryKind, EntryMeta, display_path, parent_of, relative_path};
use super::reader::{ArchiveReader, Member};
use super::restore_meta::{MetaTarget, apply_meta, lookup_acl_name};
use super::sparse::{SparseMap, SparseSegment};
use super::{ArchiveError, ArchiveProgress, RestoreOptions, RestoreStats};

pub(crate) fn restore<R: Read>(
    input: R,
    target: &Path,
    _options: &RestoreOptions,
    progress: &ArchiveProgress,
) -> Result<RestoreStats, ArchiveError> {
    prepare_target(target)?;
    let mut restorer = Restorer {
        target: target.to_path_buf(),
        dirs: HashMap::from([(Vec::new(), None)]),
        deferred: Vec::new(),
        stats: RestoreStats::default(),
        progress,
        buf: BlockBuf::new(),
    };
    let mut reader = ArchiveReader::new(input, lookup_acl_name);
    while let Some(member) = reader.next_member()? {
        restorer.member(member, &mut reader)?;
    }
    restorer.finish()
}

/// Creates `target` if missing; refuses one that exists and is not an empty directory.
fn prepare_target(target: &Path) -> Result<(), ArchiveError> {
    let err = |source| ArchiveError::Target {
        path: target.to_path_buf(),
        source,
    };
    match fs::metadata(target) {
        Ok(meta) if meta.is_dir() => {
            if fs::read_dir(target).map_err(err)?.next().is_some() {
                return Err(ArchiveError::TargetNotEmpty {
                    path: target.to_path_buf(),
                });
            }
            Ok(())
        }
        Ok(_) => Err(ArchiveError::TargetNotEmpty {
            path: target.to_path_buf(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir_all(target).map_err(err),
        Err(e) => Err(err(e)),
    }
}

struct Restorer<'p> {
    target: PathBuf,
    /// Directories this restore created (relative paths, `""` for the target), with the
    /// index of their deferred metadata in `deferred` if the archive had a member for them.
    dirs: HashMap<Vec<u8>, Option<usize>>,
    deferred: Vec<(Vec<u8>, EntryMeta)>,
    stats: RestoreStats,
    progress: &'p ArchiveProgress,
    /// Content on its way from the archive to a file.
    buf: BlockBuf,
}

impl Restorer<'_> {
    fn member<R: Read>(
        &mut self,
        member: Member,
        reader: &mut ArchiveReader<R>,
    ) -> Result<(), ArchiveError> {
        let Member {
            entry, problems, ..
        } = member;
        for problem in problems {
            self.warn(format!("{}: {problem}", display_path(&entry.path)));
        }
        let rel = match relative_path(&entry.path) {
            Ok(rel) => rel,
            Err(e) => return self.skip(&display_path(&entry.path), &e.to_string()),
        };
        let display = display_path(&rel);
        if rel.is_empty() {
            if entry.kind != EntryKind::Directory {
                return self.skip(&display, "the archive root is not a directory");
            }
            self.defer(rel, entry.meta);
            return self.restored();
        }
        if let Err(why) = self.ensure_parent(parent_of(&rel))? {
            return self.skip(&display, &why);
        }
        let path = self.target.join(OsStr::from_bytes(&rel));
        let meta = &entry.meta;
        let at_path = |is_symlink| MetaTarget::Path {
            path: &path,
            is_symlink,
            is_dir: false,
        };
        let mut warnings = Vec::new();
        match &entry.kind {
            EntryKind::Directory => match DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {
                    self.dirs.insert(rel.clone(), None);
                    self.defer(rel, entry.meta);
                }
                Err(e)
                    if e.kind() == io::ErrorKind::AlreadyExists && self.dirs.contains_key(&rel) =>
                {
                    self.defer(rel, entry.meta);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return self.skip(&display, "exists and is not a directory of this restore");
                }
                Err(e) => return Err(fail(&display, "create directory", e)),
            },
            EntryKind::File { size, sparse } => {
                let open = || {
                    let mut options = OpenOptions::new();
                    options.write(true).create_new(true).mode(0o600);
                    options
                        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                        .open(&path)
                };
                let file = match replace_non_dir(&path, open) {
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        return self.skip(&display, "a directory of that name exists");
                    }
                    other => other.map_err(|e| fail(&display, "create file", e))?,
                };
                self.write_content(&file, *size, sparse.as_ref(), reader, &display)?;
                apply_meta(MetaTarget::File(&file), meta, &display, &mut warnings)?;
                nix::unistd::close(file).map_err(|e| fail(&display, "close", e.into()))?;
                self.stats.files += 1;
                self.progress.files.fetch_add(1, Relaxed);
            }
            EntryKind::Symlink { target } => {
                let make = || std::os::unix::fs::symlink(OsStr::from_bytes(target), &path);
                if let Err(e) = replace_non_dir(&path, make) {
                    return self.skip_or_fail(&display, "create symlink", e);
                }
                apply_meta(at_path(true), meta, &display, &mut warnings)?;
            }
            EntryKind::HardLink { target } => {
                let Some(target_path) = self.link_target(target) else {
                    let why = format!("hard link target {} was not restored", display_path(target));
                    return self.skip(&display, &why);
                };
                if let Err(e) = replace_non_dir(&path, || fs::hard_link(&target_path, &path)) {
                    return self.skip_or_fail(&display, "create hard link", e);
                }
            }
            EntryKind::Fifo => {
                let make = || mkfifo(&path, Mode::S_IRUSR | Mode::S_IWUSR).map_err(io::Error::from);
                if let Err(e) = replace_non_dir(&path, make) {
                    return self.skip_or_fail(&display, "create fifo", e);
                }
                apply_meta(at_path(false), meta, &display, &mut warnings)?;
            }
            EntryKind::CharDevice { major, minor } | EntryKind::BlockDevice { major, minor } => {
                let kind = match entry.kind {
                    EntryKind::CharDevice { .. } => SFlag::S_IFCHR,
                    _ => SFlag::S_IFBLK,
                };
                let dev = makedev(u64::from(*major), u64::from(*minor));
                let make = || {
                    mknod(&path, kind, Mode::S_IRUSR | Mode::S_IWUSR, dev).map_err(io::Error::from)
                };
                if let Err(e) = replace_non_dir(&path, make) {
                    return self.skip_or_fail(&display, "create device", e);
                }
                apply_meta(at_path(false), meta, &display, &mut warnings)?;
            }
            EntryKind::Unsupported(flag) => {
                return self.skip(
                    &display,
                    &format!("unsupported member type {:?}", char::from(*flag)),
                );
            }
        }
        self.stats.warnings.append(&mut warnings);
        self.restored()
    }

    /// Checks that `parent` is a directory of this restore, creating missing ones. The inner
    /// `Err` says why the member must be skipped.
    fn ensure_parent(&mut self, parent: &[u8]) -> Result<Result<(), String>, ArchiveError> {
        if self.dirs.contains_key(parent) {
            return Ok(Ok(()));
        }
        let ends = parent
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'/')
            .map(|(i, _)| i);
        for end in ends.chain([parent.len()]) {
            let prefix = &parent[..end];
            if self.dirs.contains_key(prefix) {
                continue;
            }
            let path = self.target.join(OsStr::from_bytes(prefix));
            match DirBuilder::new().mode(0o777).create(&path) {
                Ok(()) => {
                    self.dirs.insert(prefix.to_vec(), None);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let why = format!(
                        "{} is not a directory of this restore",
                        display_path(prefix)
                    );
                    return Ok(Err(why));
                }
                Err(e) => return Err(fail(&display_path(prefix), "create directory", e)),
            }
        }
        Ok(Ok(()))
    }

    /// The restored path a hard link may point at: a non-directory in a directory of this
    /// restore.
    fn link_target(&self, target: &[u8]) -> Option<PathBuf> {
        let rel = relative_path(target).ok().filter(|rel| !rel.is_empty())?;
        if !self.dirs.contains_key(parent_of(&rel)) {
            return None;
        }
        let path = self.target.join(OsStr::from_bytes(&rel));
        let meta = fs::symlink_metadata(&path).ok()?;
        (!meta.is_dir()).then_some(path)
    }

    fn write_content<R: Read>(
        &mut self,
        file: &File,
        size: u64,
        sparse: Option<&SparseMap>,
        reader: &mut ArchiveReader<R>,
        display: &str,
    ) -> Result<(), ArchiveError> {
        let whole = [SparseSegment {
            offset: 0,
            len: size,
        }];
        let segments = sparse.map_or(&whole[..], |map| &map.segments);
        // A large file gets its blocks first, then is written through the page cache
        // (`archive::content` says why not with O_DIRECT).
        if sparse.is_none() && size >= DIRECT_MIN {
            preallocate(file, size).map_err(|e| fail(display, "allocate", e))?;
        }
        for segment in segments {
            let mut pos = segment.offset;
            let end = segment.offset + segment.len;
            while pos < end {
                let want = usize::try_from(end - pos)
                    .unwrap_or(usize::MAX)
                    .min(IO_BLOCK);
                let n = reader.read_data(self.buf.get_mut(want))?;
                if n == 0 {
                    return Err(fail(
                        display,
                        "read data",
                        io::ErrorKind::UnexpectedEof.into(),
                    ));
                }
                file.write_all_at(self.buf.get(n), pos)
                    .map_err(|e| fail(display, "write", e))?;
                pos += n as u64;
                self.stats.bytes_written += n as u64;
                self.progress.bytes.fetch_add(n as u64, Relaxed);
            }
        }
        if sparse.is_some() {
            // Holes are never written: extending the length leaves them unallocated.
            file.set_len(size)
                .map_err(|e| fail(display, "set length", e))?;
        }
        Ok(())
    }

    /// Applies the deferred directory metadata, innermost (latest) first.
    fn finish(mut self) -> Result<RestoreStats, ArchiveError> {
        for (rel, meta) in self.deferred.iter().rev() {
            let path = self.target.join(OsStr::from_bytes(rel));
            let target = MetaTarget::Path {
                path: &path,
                is_symlink: false,
                is_dir: true,
            };
            apply_meta(target, meta, &display_path(rel), &mut self.stats.warnings)?;
        }
        Ok(self.stats)
    }

    fn defer(&mut self, rel: Vec<u8>, meta: EntryMeta) {
        match self.dirs.get(&rel) {
            Some(Some(index)) => self.deferred[*index].1 = meta,
            _ => {
                self.dirs.insert(rel.clone(), Some(self.deferred.len()));
                self.deferred.push((rel, meta));
            }
        }
    }

    fn restored(&mut self) -> Result<(), ArchiveError> {
        self.stats.entries += 1;
        self.progress.entries.fetch_add(1, Relaxed);
        Ok(())
    }

    fn warn(&mut self, warning: String) {
        self.stats.warnings.push(warning);
    }

    fn skip(&mut self, display: &str, why: &str) -> Result<(), ArchiveError> {
        self.warn(format!("{display}: skipped: {why}"));
        Ok(())
    }

    /// Storage failures abort; anything else (no privilege for a device, a directory in
    /// the way, a file system without hard links) skips the member with a warning.
    fn skip_or_fail(
        &mut self,
        display: &str,
        op: &'static str,
        e: io::Error,
    ) -> Result<(), ArchiveError> {
        let fatal = [Errno::ENOSPC, Errno::EIO, Errno::EDQUOT, Errno::EROFS];
        if e.raw_os_error()
            .is_some_and(|raw| fatal.contains(&Errno::from_raw(raw)))
        {
            return Err(fail(display, op, e));
        }
        let reason = match e.raw_os_error() {
            Some(raw) if e.kind() != io::ErrorKind::AlreadyExists => {
                format!("{op}: {:?}", Errno::from_raw(raw))
            }
            _ if e.kind() == io::ErrorKind::AlreadyExists => {
                "a directory of that name exists".into()
            }
            _ => format!("{op}: {e}"),
        };
        self.skip(display, &reason)
    }
}

/// Runs `make`; if the name is taken by a non-directory (an earlier member of the same
/// name), removes that and runs it once more. A directory in the way is `AlreadyExists`.
fn replace_non_dir<T>(path: &Path, make: impl Fn() -> io::Result<T>) -> io::Result<T> {
    match make() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if fs::symlink_metadata(path)?.is_dir() {
                return Err(e);
            }
            fs::remove_file(path)?;
            make()
        }
        other => other,
    }
}

/// Allocates `size` bytes of disk for `file` at once (`fallocate`), so that the writes that
/// follow fill blocks that exist instead of reserving them page by page (ext4's delayed
/// allocation). A file system that cannot is written as before.
fn preallocate(file: &File, size: u64) -> io::Result<()> {
    let len = i64::try_from(size).map_err(|_| io::Error::from(io::ErrorKind::FileTooLarge))?;
    match nix::fcntl::fallocate(file, nix::fcntl::FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok(()),
        Err(Errno::EOPNOTSUPP | Errno::ENOSYS | Errno::EINVAL) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn fail(display: &str, op: &'static str, source: io::Error) -> ArchiveError {
    ArchiveError::Restore {
        path: display.to_string(),
        op,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file is created private to the restoring user and gets its owner, then its mode
    /// (setuid and setgid after the chown, which clears them), whatever the bits.
    #[test]
    fn files_get_their_mode_and_owner_whatever_the_bits() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir(&src).unwrap();
        let modes = [0o644, 0o600, 0o444, 0o666, 0o664, 0o4755, 0o2711, 0o000];
        for mode in modes {
            let path = src.join(format!("{mode:o}"));
            fs::write(&path, b"x").unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        }
        let root = nix::unistd::geteuid().is_root();
        if root {
            fs::write(src.join("foreign"), b"y").unwrap();
            nix::unistd::chown(&src.join("foreign"), Some(1234.into()), Some(5678.into())).unwrap();
        } else {
            println!("foreign owner not checked: needs root");
        }
        let mut archive = Vec::new();
        let progress = ArchiveProgress::default();
        crate::archive::encode_tree(&src, &mut archive, &progress).unwrap();
        let target = dir.path().join("target");
        restore(&archive[..], &target, &RestoreOptions::default(), &progress).unwrap();
        for mode in modes {
            let meta = fs::metadata(target.join(format!("{mode:o}"))).unwrap();
            assert_eq!(meta.mode() & 0o7777, mode, "{mode:o}");
        }
        if root {
            let meta = fs::metadata(target.join("foreign")).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (1234, 5678));
            assert_eq!(meta.mode() & 0o7777, 0o644);
        }
    }

    #[test]
    fn large_files_restore_whole_whatever_their_tail() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir(&src).unwrap();
        let sizes = [
            DIRECT_MIN,
            DIRECT_MIN + 4096,
            DIRECT_MIN + 3 * IO_BLOCK as u64 + 17,
        ];
        let content =
            |size: u64| -> Vec<u8> { (0..size).map(|i| (i * 31 + i / 4093) as u8).collect() };
        for size in sizes {
            fs::write(src.join(size.to_string()), content(size)).unwrap();
        }
        let mut archive = Vec::new();
        let progress = ArchiveProgress::default();
        crate::archive::encode_tree(&src, &mut archive, &progress).unwrap();
        let target = dir.path().join("target");
        let stats = restore(&archive[..], &target, &RestoreOptions::default(), &progress).unwrap();
        assert_eq!(stats.bytes_written, sizes.iter().sum::<u64>());
        for size in sizes {
            let restored = fs::read(target.join(size.to_string())).unwrap();
            assert!(restored == content(size), "{size} bytes restore as written");
        }
    }

    #[test]
    fn preallocated_files_have_their_size_and_keep_what_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::create(&path).unwrap();
        let size = DIRECT_MIN + 12345;
        preallocate(&file, size).unwrap();
        let meta = file.metadata().unwrap();
        assert_eq!(meta.len(), size);
        file.write_all_at(b"head", 0).unwrap();
        file.write_all_at(b"tail", size - 4).unwrap();
        drop(file);
        let data = fs::read(&path).unwrap();
        assert_eq!(data.len() as u64, size);
        assert_eq!(&data[..4], b"head");
        assert_eq!(&data[data.len() - 4..], b"tail");
        assert!(data[4..data.len() - 4].iter().all(|&b| b == 0));
    }
}
