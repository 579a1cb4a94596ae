//! Depth-first walk of the tree to archive: the root first, then each directory's names in
//! byte-wise sorted order, each directory's content right after it (pre-order).
//!
//! It only lists and `lstat`s (or takes a directory's listing and `lstat` data from the
//! read-ahead, `listings.rs`): it never follows symlinks, never opens files, and (with
//! `one_file_system`) does not descend into a directory on another device than the root
//! (the mount point itself is still yielded). A path the excludes match is reported as
//! excluded and, if it is a directory, not listed: nothing below it is seen, so nothing
//! below it can be re-included (gitignore's rule). The root is never matched. It keeps an explicit stack instead of recursing, so depth costs heap,
//! not the caller's thread stack. Problems below the root are events, not errors; only a
//! root that cannot be examined or listed fails the walk.

use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::entry::{ROOT_PATH, display_path};
use super::{ArchiveError, EncodeOptions, ExcludeMatcher, Listings};

/// One object of the tree, with the `lstat` data taken when it was listed.
#[derive(Debug)]
pub(crate) struct WalkItem {
    pub(crate) fs_path: PathBuf,
    /// `"."` for the root, else the path relative to the root.
    pub(crate) archive_path: Vec<u8>,
    pub(crate) meta: Metadata,
}

#[derive(Debug)]
pub(crate) enum WalkEvent {
    Item(WalkItem),
    /// Something below the root that could not be examined; the walk goes on without it.
    Problem(String),
    /// A path left out by an exclude pattern (a directory: with all it holds).
    Excluded,
}

struct Level {
    dir: PathBuf,
    /// Archive path of `dir`, `""` for the root (so that children get no `./` prefix).
    prefix: Vec<u8>,
    /// Sorted names, each with its `lstat` data if the read-ahead's listing had it.
    names: std::vec::IntoIter<(OsString, Option<Metadata>)>,
}

pub(crate) struct TreeWalker<'o> {
    root_dev: u64,
    one_file_system: bool,
    excludes: &'o ExcludeMatcher,
    listings: Option<&'o Listings>,
    root: Option<WalkItem>,
    /// A directory just yielded whose names are read on the next call.
    descend: Option<(PathBuf, Vec<u8>)>,
    stack: Vec<Level>,
}

impl<'o> TreeWalker<'o> {
    /// Examines `root`, which must be a directory (a symlink to one is refused).
    pub(crate) fn new(root: &Path, options: &'o EncodeOptions) -> Result<Self, ArchiveError> {
        let meta = fs::symlink_metadata(root).map_err(|source| ArchiveError::Root {
            path: root.to_path_buf(),
            op: "lstat",
            source,
        })?;
        if !meta.is_dir() {
            return Err(ArchiveError::NotADirectory {
                path: root.to_path_buf(),
            });
        }
        Ok(TreeWalker {
            root_dev: meta.dev(),
            one_file_system: options.one_file_system,
            excludes: &options.excludes,
            listings: options.listings.as_deref(),
            root: Some(WalkItem {
                fs_path: root.to_path_buf(),
                archive_path: ROOT_PATH.to_vec(),
                meta,
            }),
            descend: None,
            stack: Vec::new(),
        })
    }

    pub(crate) fn next_event(&mut self) -> Result<Option<WalkEvent>, ArchiveError> {
        if let Some(root) = self.root.take() {
            self.descend = Some((root.fs_path.clone(), Vec::new()));
            return Ok(Some(WalkEvent::Item(root)));
        }
        if let Some((dir, prefix)) = self.descend.take() {
            match self.sorted_entries(&dir, &prefix) {
                Ok(names) => self.stack.push(Level {
                    dir,
                    prefix,
                    names: names.into_iter(),
                }),
                Err(source) if prefix.is_empty() => {
                    return Err(ArchiveError::Root {
                        path: dir,
                        op: "read directory",
                        source,
                    });
                }
                Err(e) => {
                    let msg = format!("{}: cannot list directory: {e}", display_path(&prefix));
                    return Ok(Some(WalkEvent::Problem(msg)));
                }
            }
        }
        while let Some(level) = self.stack.last_mut() {
            let Some((name, listed)) = level.names.next() else {
                self.stack.pop();
                continue;
            };
            let fs_path = level.dir.join(&name);
            let mut archive_path = level.prefix.clone();
            if !archive_path.is_empty() {
                archive_path.push(b'/');
            }
            archive_path.extend_from_slice(name.as_bytes());
            let meta = match listed.map_or_else(|| fs::symlink_metadata(&fs_path), Ok) {
                Ok(meta) => meta,
                // Whatever its type, it would have been left out: not a problem.
                Err(_) if self.excluded_either_way(&archive_path) => {
                    return Ok(Some(WalkEvent::Excluded));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let msg = format!(
                        "{}: vanished before it was read",
                        display_path(&archive_path)
                    );
                    return Ok(Some(WalkEvent::Problem(msg)));
                }
                Err(e) => {
                    let msg = format!("{}: lstat: {e}", display_path(&archive_path));
                    return Ok(Some(WalkEvent::Problem(msg)));
                }
            };
            if self.excludes.is_excluded(&archive_path, meta.is_dir()) {
                return Ok(Some(WalkEvent::Excluded));
            }
            if meta.is_dir() && (!self.one_file_system || meta.dev() == self.root_dev) {
                self.descend = Some((fs_path.clone(), archive_path.clone()));
            }
            return Ok(Some(WalkEvent::Item(WalkItem {
                fs_path,
                archive_path,
                meta,
            })));
        }
        Ok(None)
    }

    /// The names in `dir` (archive path `prefix`), sorted, with their `lstat` data if the
    /// read-ahead listed the directory.
    fn sorted_entries(
        &self,
        dir: &Path,
        prefix: &[u8],
    ) -> io::Result<Vec<(OsString, Option<Metadata>)>> {
        if let Some(listing) = self.listings.and_then(|listings| listings.take(prefix)) {
            let mut entries: Vec<_> = listing
                .into_iter()
                .map(|(name, meta)| (name, Some(meta)))
                .collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            return Ok(entries);
        }
        Ok(sorted_names(dir)?
            .into_iter()
            .map(|name| (name, None))
            .collect())
    }

    fn excluded_either_way(&self, archive_path: &[u8]) -> bool {
        self.excludes.is_excluded(archive_path, false)
            && self.excludes.is_excluded(archive_path, true)
    }
}

fn sorted_names(dir: &Path) -> io::Result<Vec<OsString>> {
    let mut names = fs::read_dir(dir)?
        .map(|entry| entry.map(|e| e.file_name()))
        .collect::<io::Result<Vec<_>>>()?;
    // OsString orders by its bytes on Unix: exactly the byte-wise order we promise.
    names.sort_unstable();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(root: &Path) -> Vec<String> {
        walk_with(root, &EncodeOptions::default())
    }

    fn walk_with(root: &Path, options: &EncodeOptions) -> Vec<String> {
        let mut walker = TreeWalker::new(root, options).unwrap();
        let mut out = Vec::new();
        while let Some(event) = walker.next_event().unwrap() {
            match event {
                WalkEvent::Item(item) => out.push(String::from_utf8(item.archive_path).unwrap()),
                WalkEvent::Problem(p) => out.push(format!("problem {p}")),
                WalkEvent::Excluded => out.push("excluded".into()),
            }
        }
        out
    }

    fn excluding(patterns: &[&str]) -> EncodeOptions {
        let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        EncodeOptions {
            excludes: ExcludeMatcher::read(&[], &patterns).unwrap(),
            ..EncodeOptions::default()
        }
    }

    #[test]
    fn an_excluded_directory_is_not_listed_and_nothing_below_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("build/sub")).unwrap();
        fs::write(root.join("build/keep.txt"), b"").unwrap();
        fs::write(root.join("build/sub/keep.txt"), b"").unwrap();
        fs::write(root.join("keep.txt"), b"").unwrap();
        let options = excluding(&["build/", "!build/keep.txt", "!keep.txt"]);
        assert_eq!(walk_with(root, &options), [".", "excluded", "keep.txt"]);
    }

    #[test]
    fn excludes_match_relative_to_the_root_and_never_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tmp");
        fs::create_dir_all(root.join("a/tmp")).unwrap();
        fs::create_dir_all(root.join("tmp")).unwrap();
        // The root's own name matches "tmp" and "/*" matches everything at the top.
        assert_eq!(
            walk_with(&root, &excluding(&["/tmp"])),
            [".", "a", "a/tmp", "excluded"]
        );
        assert_eq!(
            walk_with(&root, &excluding(&["/*"])),
            [".", "excluded", "excluded"]
        );
    }

    #[test]
    fn pre_order_byte_sorted_without_following_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("b/c")).unwrap();
        fs::write(root.join("B"), b"").unwrap();
        fs::write(root.join("b/c/f"), b"").unwrap();
        fs::write(root.join("a"), b"").unwrap();
        std::os::unix::fs::symlink("b", root.join("link")).unwrap();
        assert_eq!(walk(root), [".", "B", "a", "b", "b/c", "b/c/f", "link"]);
    }

    #[test]
    fn root_must_be_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, b"").unwrap();
        assert!(matches!(
            TreeWalker::new(&file, &EncodeOptions::default()),
            Err(ArchiveError::NotADirectory { .. })
        ));
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        assert!(matches!(
            TreeWalker::new(&link, &EncodeOptions::default()),
            Err(ArchiveError::NotADirectory { .. })
        ));
        let missing = dir.path().join("missing");
        assert!(matches!(
            TreeWalker::new(&missing, &EncodeOptions::default()),
            Err(ArchiveError::Root { .. })
        ));
    }
}
