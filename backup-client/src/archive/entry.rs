//! The entry model shared by encoder, stream format and restorer: what one archive member
//! says about a file system object, independent of how it is laid out in the stream (one tar
//! stream today; a split metadata/payload layout later can reuse it unchanged).
//!
//! Pure: no IO. Archive paths are bytes relative to the archive root, `/`-separated, without
//! a leading `./` or trailing `/`; the root itself is `"."` (the stream format adds the
//! trailing `/` of directory names, so the root's member name is `"./"`). `relative_path` is the one gate every path from
//! an archive passes before the restorer touches the file system.

use thiserror::Error;

use super::acl::Acl;
use super::sparse::SparseMap;

/// The archive path of the root directory entry.
pub(crate) const ROOT_PATH: &[u8] = b".";

/// Seconds and nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Timestamp {
    pub(crate) sec: i64,
    pub(crate) nsec: u32,
}

/// What change detection compares besides size, mode and mtime: the file's inode and
/// status-change time, which moves with every write, chmod, chown or xattr change (and
/// which no user can set back, unlike mtime).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct FileStamp {
    pub(crate) ctime: Timestamp,
    pub(crate) ino: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EntryKind {
    Directory,
    /// `size` is the real file size; `sparse` says where its data lies when it has holes.
    File {
        size: u64,
        sparse: Option<SparseMap>,
    },
    Symlink {
        target: Vec<u8>,
    },
    /// A further name of an inode stored earlier under `target` (an archive path).
    HardLink {
        target: Vec<u8>,
    },
    Fifo,
    CharDevice {
        major: u32,
        minor: u32,
    },
    BlockDevice {
        major: u32,
        minor: u32,
    },
    /// A member type this archive layer does not restore (its tar type flag).
    Unsupported(u8),
}

/// Ownership, permissions, time and extended attributes of one entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct EntryMeta {
    /// Permission bits including setuid, setgid and sticky (0o7777), no file type bits.
    pub(crate) mode: u32,
    pub(crate) uid: u64,
    pub(crate) gid: u64,
    pub(crate) uname: Option<Vec<u8>>,
    pub(crate) gname: Option<Vec<u8>>,
    pub(crate) mtime: Timestamp,
    /// (name, value), sorted by name; never the `system.posix_acl_*` names.
    pub(crate) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    pub(crate) acl_access: Option<Acl>,
    pub(crate) acl_default: Option<Acl>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) path: Vec<u8>,
    pub(crate) kind: EntryKind,
    pub(crate) meta: EntryMeta,
}

impl Entry {
    /// Bytes of file data that follow the header in the stream (sparse: data segments only).
    pub(crate) fn data_len(&self) -> u64 {
        match &self.kind {
            EntryKind::File {
                sparse: Some(map), ..
            } => map.data_len(),
            EntryKind::File { size, .. } => *size,
            _ => 0,
        }
    }
}

/// Why an archive path was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub(crate) enum PathError {
    #[error("absolute path")]
    Absolute,
    #[error("path contains a '..' component")]
    ParentComponent,
    #[error("path contains a NUL byte")]
    Nul,
    #[error("empty path")]
    Empty,
}

/// Normalizes an archive path to the form the restorer uses: components joined by `/`,
/// without `.` or empty components; `""` is the root. Refuses absolute paths, `..`
/// anywhere, and NUL bytes.
pub(crate) fn relative_path(path: &[u8]) -> Result<Vec<u8>, PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.starts_with(b"/") {
        return Err(PathError::Absolute);
    }
    if path.contains(&0) {
        return Err(PathError::Nul);
    }
    let mut out = Vec::with_capacity(path.len());
    for component in path.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => return Err(PathError::ParentComponent),
            name => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(name);
            }
        }
    }
    Ok(out)
}

/// The parent of a normalized relative path (`""` for top-level names and the root).
pub(crate) fn parent_of(rel: &[u8]) -> &[u8] {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(slash) => &rel[..slash],
        None => b"",
    }
}

/// A path for messages: lossy UTF-8 with control characters escaped, `.` for the root.
pub(crate) fn display_path(path: &[u8]) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    String::from_utf8_lossy(path)
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() || c == '\\' {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_relative_paths() {
        assert_eq!(relative_path(b".").unwrap(), b"");
        assert_eq!(relative_path(b"./").unwrap(), b"");
        assert_eq!(relative_path(b"./a//b/./c/").unwrap(), b"a/b/c");
        assert_eq!(relative_path(b"-x y\nz").unwrap(), b"-x y\nz");
        assert_eq!(relative_path(b"...").unwrap(), b"...");
    }

    #[test]
    fn refuses_escaping_paths() {
        assert_eq!(relative_path(b"/etc/passwd"), Err(PathError::Absolute));
        assert_eq!(relative_path(b"../x"), Err(PathError::ParentComponent));
        assert_eq!(relative_path(b"a/../../x"), Err(PathError::ParentComponent));
        assert_eq!(relative_path(b"a/.."), Err(PathError::ParentComponent));
        assert_eq!(relative_path(b"a\0b"), Err(PathError::Nul));
        assert_eq!(relative_path(b""), Err(PathError::Empty));
    }

    #[test]
    fn parents_and_display() {
        assert_eq!(parent_of(b"a/b/c"), b"a/b");
        assert_eq!(parent_of(b"a"), b"");
        assert_eq!(display_path(b""), ".");
        assert_eq!(display_path(b"a\nb"), "a\\nb");
        assert_eq!(display_path("ü x".as_bytes()), "ü x");
    }
}
