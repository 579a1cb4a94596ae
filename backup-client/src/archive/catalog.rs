//! The catalog of an archive: what each entry is (type, size, mtime, path) read from the
//! member headers alone. For a split archive that is the metadata stream, so no payload
//! is needed; for one tar stream the file contents are read past (not kept).
//!
//! Must not touch the file system.

use std::io::Read;

use serde::Serialize;

use super::entry::{EntryKind, display_path, relative_path};
use super::reader::ArchiveReader;
use super::restore_meta::lookup_acl_name;
use super::split::format::resolve_entry;
use super::{ArchiveError, Selection};

/// One entry as `catalog` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatalogEntry {
    /// file, dir, symlink, hardlink, fifo, char, block or other.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Real size of a regular file; 0 for other entries.
    pub size: u64,
    /// Seconds since the epoch.
    pub mtime: i64,
    /// Relative to the archive root (`.` for the root), escaped for display.
    pub path: String,
    /// Symlink or hard-link target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// Calls `each` for every entry of the archive that `under` covers (all without it).
/// `split`: `input` is a split archive's metadata stream.
pub fn list_entries<R: Read>(
    input: R,
    split: bool,
    under: Option<&Selection>,
    mut each: impl FnMut(CatalogEntry),
) -> Result<(), ArchiveError> {
    let mut reader = ArchiveReader::new(input, lookup_acl_name);
    while let Some(member) = reader.next_member()? {
        let entry = if split {
            let path = member.entry.path.clone();
            resolve_entry(member.entry, &member.private)
                .map_err(|source| ArchiveError::Split {
                    path: display_path(&path),
                    source,
                })?
                .0
        } else {
            member.entry
        };
        if under.is_some_and(|under| !under.covers(&entry.path)) {
            continue;
        }
        // A path the restorer would refuse is listed as it is stored, not as the root.
        let path = relative_path(&entry.path).unwrap_or_else(|_| entry.path.clone());
        let (kind, size, target) = match &entry.kind {
            EntryKind::File { size, .. } => ("file", *size, None),
            EntryKind::Directory => ("dir", 0, None),
            EntryKind::Symlink { target } => ("symlink", 0, Some(display_path(target))),
            EntryKind::HardLink { target } => ("hardlink", 0, Some(display_path(target))),
            EntryKind::Fifo => ("fifo", 0, None),
            EntryKind::CharDevice { .. } => ("char", 0, None),
            EntryKind::BlockDevice { .. } => ("block", 0, None),
            EntryKind::Unsupported(_) => ("other", 0, None),
        };
        each(CatalogEntry {
            kind,
            size,
            mtime: entry.meta.mtime.sec,
            path: display_path(&path),
            target,
        });
    }
    Ok(())
}
