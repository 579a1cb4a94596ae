//! Reading what the archive stores about one object from the live file system: `lstat`
//! fields, user and group names (cached), xattrs and POSIX ACLs, opening files for reading
//! (O_NOATIME where permitted) and finding the data segments of sparse files.
//!
//! It must not write anything, follow symlinks, or decide the stream layout (that is
//! `header`); failures that concern one object come back as problem strings or `io::Error`s
//! for the encoder to report.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use nix::errno::Errno;
use nix::unistd::{Gid, Group, Uid, User, Whence, lseek};

use super::acl::Acl;
use super::entry::{EntryMeta, Timestamp};
use super::sparse::SparseSegment;

const ACL_ACCESS_XATTR: &[u8] = b"system.posix_acl_access";
const ACL_DEFAULT_XATTR: &[u8] = b"system.posix_acl_default";

/// uid/gid to name lookups, each id looked up once per archive.
#[derive(Debug, Default)]
pub(crate) struct NameCache {
    users: HashMap<u32, Option<Vec<u8>>>,
    groups: HashMap<u32, Option<Vec<u8>>>,
}

impl NameCache {
    fn user(&mut self, uid: u32) -> Option<Vec<u8>> {
        self.users
            .entry(uid)
            .or_insert_with(|| {
                let user = User::from_uid(Uid::from_raw(uid)).ok().flatten();
                user.map(|u| u.name.into_bytes())
            })
            .clone()
    }

    fn group(&mut self, gid: u32) -> Option<Vec<u8>> {
        self.groups
            .entry(gid)
            .or_insert_with(|| {
                let group = Group::from_gid(Gid::from_raw(gid)).ok().flatten();
                group.map(|g| g.name.into_bytes())
            })
            .clone()
    }
}

/// The `stat` part of an entry's metadata: mode, owner and names, mtime.
pub(crate) fn basic_meta(meta: &Metadata, names: &mut NameCache) -> EntryMeta {
    EntryMeta {
        mode: meta.mode() & 0o7777,
        uid: u64::from(meta.uid()),
        gid: u64::from(meta.gid()),
        uname: names.user(meta.uid()),
        gname: names.group(meta.gid()),
        mtime: Timestamp {
            sec: meta.mtime(),
            nsec: u32::try_from(meta.mtime_nsec()).unwrap_or(0),
        },
        ..EntryMeta::default()
    }
}

/// Metadata of the object at `path` described by `meta` (its `lstat` or, for an open
/// file, `fstat`), with xattrs and ACLs. Problems reading those are pushed to `problems`
/// as text without the path; the rest of the metadata is still returned.
pub(crate) fn read_meta(
    path: &Path,
    meta: &Metadata,
    names: &mut NameCache,
    problems: &mut Vec<String>,
) -> EntryMeta {
    let mut entry = basic_meta(meta, names);
    let listed = match xattr::list(path) {
        Ok(listed) => listed,
        Err(e) if unsupported(&e) => return entry,
        Err(e) => {
            problems.push(format!("listing xattrs: {e}"));
            return entry;
        }
    };
    for name in listed {
        let value = match xattr::get(path, &name) {
            Ok(Some(value)) => value,
            // Removed between list and get: it is simply not there any more.
            Ok(None) => continue,
            Err(e) => {
                problems.push(format!("reading xattr {}: {e}", name.to_string_lossy()));
                continue;
            }
        };
        let name = name.as_bytes();
        if name == ACL_ACCESS_XATTR || name == ACL_DEFAULT_XATTR {
            match Acl::from_xattr(&value) {
                Ok(acl) if name == ACL_ACCESS_XATTR => entry.acl_access = Some(acl),
                Ok(acl) => entry.acl_default = Some(acl),
                Err(e) => problems.push(format!("{}: {e}", OsStr::from_bytes(name).display())),
            }
        } else {
            entry.xattrs.push((name.to_vec(), value));
        }
    }
    entry.xattrs.sort();
    entry
}

fn unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::EOPNOTSUPP | Errno::ENOSYS)
    )
}

/// Opens a regular file for reading without following a symlink, without blocking on a
/// fifo swapped in since the walk, and without updating its atime where we may.
pub(crate) fn open_for_reading(path: &Path) -> io::Result<File> {
    let flags = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
    let open = |extra| {
        OpenOptions::new()
            .read(true)
            .custom_flags(flags | extra)
            .open(path)
    };
    match open(libc::O_NOATIME) {
        // O_NOATIME is only allowed to the file's owner (or with CAP_FOWNER).
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(0),
        other => other,
    }
}

/// Whether a file of this `stat` has fewer allocated blocks than its size needs, so that
/// looking for holes is worth it.
pub(crate) fn may_be_sparse(meta: &Metadata) -> bool {
    meta.size() > 0 && meta.blocks().saturating_mul(512) < meta.size()
}

/// The data segments of `file` within its first `size` bytes (SEEK_DATA/SEEK_HOLE), or
/// `None` when the file system cannot tell or the file turns out to have no hole.
pub(crate) fn data_segments(file: &File, size: u64) -> io::Result<Option<Vec<SparseSegment>>> {
    let mut segments = Vec::new();
    let mut pos: u64 = 0;
    while pos < size {
        let data = match lseek(file, to_off(pos)?, Whence::SeekData) {
            Ok(data) => from_off(data),
            Err(Errno::ENXIO) => break,
            Err(Errno::EINVAL | Errno::EOPNOTSUPP) if segments.is_empty() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if data >= size {
            break;
        }
        let hole = match lseek(file, to_off(data)?, Whence::SeekHole) {
            Ok(hole) => from_off(hole).min(size),
            // Truncated between the two calls: the rest is gone.
            Err(Errno::ENXIO) => break,
            Err(e) => return Err(e.into()),
        };
        if hole <= data {
            break;
        }
        segments.push(SparseSegment {
            offset: data,
            len: hole - data,
        });
        pos = hole;
    }
    let whole = [SparseSegment {
        offset: 0,
        len: size,
    }];
    Ok((segments != whole).then_some(segments))
}

fn to_off(pos: u64) -> io::Result<libc::off_t> {
    libc::off_t::try_from(pos).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn from_off(off: libc::off_t) -> u64 {
    u64::try_from(off).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn finds_data_segments_of_a_sparse_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sparse");
        let file = File::create(&path).unwrap();
        file.set_len(4 << 20).unwrap();
        file.write_all_at(&[1u8; 4096], 1 << 20).unwrap();
        file.sync_all().unwrap();
        let file = open_for_reading(&path).unwrap();
        let meta = file.metadata().unwrap();
        assert!(may_be_sparse(&meta));
        let segments = data_segments(&file, meta.size()).unwrap().unwrap();
        assert_eq!(segments.len(), 1);
        assert!(segments[0].offset <= 1 << 20);
        assert!(segments[0].offset + segments[0].len >= (1 << 20) + 4096);
        assert!(segments[0].len < 1 << 20);

        let only_hole = dir.path().join("hole");
        File::create(&only_hole).unwrap().set_len(1 << 20).unwrap();
        let file = open_for_reading(&only_hole).unwrap();
        assert_eq!(data_segments(&file, 1 << 20).unwrap(), Some(vec![]));
    }

    #[test]
    fn reads_xattrs_sorted_and_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").unwrap();
        xattr::set(&path, "user.z", b"1").unwrap();
        xattr::set(&path, "user.a", b"2").unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mut problems = Vec::new();
        let entry = read_meta(&path, &meta, &mut NameCache::default(), &mut problems);
        assert!(problems.is_empty());
        let names: Vec<&[u8]> = entry.xattrs.iter().map(|(n, _)| n.as_slice()).collect();
        assert_eq!(names, [&b"user.a"[..], b"user.z"]);
        assert_eq!(entry.mode, meta.mode() & 0o7777);
    }
}
