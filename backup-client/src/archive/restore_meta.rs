//! Applying an entry's metadata to a restored object, in the order that keeps each step
//! from undoing another: owner (chown clears setuid/setgid and file capabilities), xattrs,
//! ACLs, mode (after the ACL, so the mask matches the stored group bits), then mtime.
//!
//! Regular files are handled through their open descriptor; other objects by path, and it
//! must never follow a final symlink (symlinks get owner, xattrs and mtime of their own). What the current user may not do (chown as non-root, xattrs a
//! file system refuses) becomes a warning; failing to set mode or mtime on an object this
//! restore just created is an error.

use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::fcntl::{AT_FDCWD, AtFlags};
use nix::sys::stat::{FchmodatFlags, Mode, UtimensatFlags, fchmod, fchmodat, futimens, utimensat};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Group, Uid, User, fchown, fchownat};
use xattr::FileExt;

use super::ArchiveError;
use super::acl::Qualifier;
use super::entry::EntryMeta;

const ACL_ACCESS_XATTR: &str = "system.posix_acl_access";
const ACL_DEFAULT_XATTR: &str = "system.posix_acl_default";

/// The restored object that metadata goes to.
#[derive(Clone, Copy)]
pub(crate) enum MetaTarget<'a> {
    File(&'a File),
    Path {
        path: &'a Path,
        is_symlink: bool,
        is_dir: bool,
    },
}

pub(crate) fn apply_meta(
    target: MetaTarget<'_>,
    meta: &EntryMeta,
    display: &str,
    warnings: &mut Vec<String>,
) -> Result<(), ArchiveError> {
    let error = |op: &'static str, errno: nix::errno::Errno| ArchiveError::Restore {
        path: display.to_string(),
        op,
        source: errno.into(),
    };

    match (u32::try_from(meta.uid), u32::try_from(meta.gid)) {
        (Ok(uid), Ok(gid)) => {
            let (uid, gid) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
            let res = match target {
                MetaTarget::File(file) => fchown(file, uid, gid),
                MetaTarget::Path { path, .. } => {
                    fchownat(AT_FDCWD, path, uid, gid, AtFlags::AT_SYMLINK_NOFOLLOW)
                }
            };
            if let Err(errno) = res {
                warnings.push(format!("ownership of {display} not set: {errno:?}"));
            }
        }
        _ => warnings.push(format!(
            "ownership of {display} not set: ids beyond 32 bits"
        )),
    }

    let is_dir = matches!(target, MetaTarget::Path { is_dir: true, .. });
    let acls = [
        (ACL_ACCESS_XATTR, &meta.acl_access),
        (ACL_DEFAULT_XATTR, &meta.acl_default),
    ];
    let acl_xattrs = acls
        .iter()
        .filter_map(|(name, acl)| acl.as_ref().map(|acl| (name.as_bytes(), acl.to_xattr())));
    let plain = meta
        .xattrs
        .iter()
        .map(|(name, value)| (name.as_slice(), value.clone()));
    for (name, value) in plain.chain(acl_xattrs) {
        if name == ACL_DEFAULT_XATTR.as_bytes() && !is_dir {
            warnings.push(format!("default ACL of {display} not set: not a directory"));
            continue;
        }
        let name = OsStr::from_bytes(name);
        let res = match target {
            MetaTarget::File(file) => file.set_xattr(name, &value),
            MetaTarget::Path { path, .. } => xattr::set(path, name, &value),
        };
        if let Err(e) = res {
            warnings.push(format!(
                "xattr {} of {display} not set: {e}",
                name.to_string_lossy()
            ));
        }
    }

    let mode = Mode::from_bits_truncate(meta.mode & 0o7777);
    match target {
        MetaTarget::File(file) => fchmod(file, mode).map_err(|e| error("chmod", e))?,
        // Symlinks have no mode of their own on Linux.
        MetaTarget::Path {
            is_symlink: true, ..
        } => {}
        MetaTarget::Path { path, .. } => {
            fchmodat(AT_FDCWD, path, mode, FchmodatFlags::FollowSymlink)
                .map_err(|e| error("chmod", e))?;
        }
    }

    let mtime = TimeSpec::new(meta.mtime.sec, i64::from(meta.mtime.nsec));
    let atime = TimeSpec::UTIME_OMIT;
    match target {
        MetaTarget::File(file) => futimens(file, &atime, &mtime),
        MetaTarget::Path { path, .. } => utimensat(
            AT_FDCWD,
            path,
            &atime,
            &mtime,
            UtimensatFlags::NoFollowSymlink,
        ),
    }
    .map_err(|e| error("set mtime", e))
}

/// Resolves a user or group name in ACL text (GNU tar writes names) on this system.
pub(crate) fn lookup_acl_name(kind: Qualifier, name: &str) -> Option<u32> {
    match kind {
        Qualifier::User => User::from_name(name).ok().flatten().map(|u| u.uid.as_raw()),
        Qualifier::Group => Group::from_name(name)
            .ok()
            .flatten()
            .map(|g| g.gid.as_raw()),
    }
}
