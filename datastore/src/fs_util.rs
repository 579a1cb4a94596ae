//! Crash-safe file writes: temp file in the target's directory, fsync, rename, fsync dir.
//!
//! A crash at any point leaves either the old file or the new one, never a torn one, plus at
//! worst a temp file whose name [`is_temp_name`] recognises so that cleanup can remove it.
//! Every `write`, `fsync` and `rename` result is checked; nothing here is best-effort except
//! removing a temp file after an earlier error (the earlier error is the one reported).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Marker between the target name and the random suffix of a temp file.
const TEMP_MARKER: &str = ".tmp-";

/// A temp file path that is removed on drop unless it was renamed to its target.
#[derive(Debug)]
pub struct TempPath {
    path: Option<PathBuf>,
}

impl TempPath {
    /// Where the temp file is.
    pub fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    /// Renames the temp file to `target` (same directory, so the rename is atomic). On error
    /// the temp file is removed.
    pub fn persist(mut self, target: &Path) -> io::Result<()> {
        let Some(path) = self.path.take() else {
            return Err(io::Error::other("temp file already persisted"));
        };
        match std::fs::rename(&path, target) {
            Ok(()) => Ok(()),
            Err(err) => {
                let _ = std::fs::remove_file(&path);
                Err(err)
            }
        }
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            // Nothing to report to: the error that made us drop it is already on its way.
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Creates a new, empty temp file next to `target`, named `.<target name>.tmp-<random>`.
pub fn create_temp_for(target: &Path) -> io::Result<(File, TempPath)> {
    let dir = parent_dir(target);
    let name = target
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "target has no file name"))?;
    loop {
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).map_err(|e| io::Error::other(format!("getrandom: {e}")))?;
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(TEMP_MARKER);
        temp_name.push(hex::encode(random));
        let path = dir.join(temp_name);
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => return Ok((file, TempPath { path: Some(path) })),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(err),
        }
    }
}

/// True for names that [`create_temp_for`] makes: leftovers of interrupted writes.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.')
        && name
            .rsplit_once(TEMP_MARKER)
            .is_some_and(|(_, suffix)| suffix.len() == 16)
}

/// Atomically replaces (or creates) `path` with `data`: temp file in the same directory,
/// write, fsync, rename, fsync of the directory. The temp file is removed on error.
pub fn replace_file(path: &Path, data: &[u8]) -> io::Result<()> {
    let (mut file, temp) = create_temp_for(path)?;
    file.write_all(data)?;
    file.sync_all()?;
    drop(file);
    temp.persist(path)?;
    fsync_dir(parent_dir(path))
}

/// fsyncs a directory, which makes the creations, renames and removals in it durable.
pub fn fsync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// The directory that holds `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replace_creates_and_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file.json");
        replace_file(&path, b"one").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        replace_file(&path, b"two, longer").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two, longer");
        assert_eq!(names_in(dir.path()), vec!["file.json"]);
    }

    #[test]
    fn failed_rename_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        // Renaming a file over a non-empty directory fails.
        let target = dir.path().join("target");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("inner"), b"x").unwrap();
        assert!(replace_file(&target, b"data").is_err());
        assert_eq!(names_in(dir.path()), vec!["target"]);
    }

    #[test]
    fn missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(replace_file(&dir.path().join("no/such/file"), b"x").is_err());
    }

    #[test]
    fn dropped_temp_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut file, temp) = create_temp_for(&dir.path().join("x")).unwrap();
        file.write_all(b"partial").unwrap();
        let name = temp
            .path()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(is_temp_name(&name), "{name}");
        assert!(name.starts_with(".x.tmp-"));
        drop(temp);
        assert!(names_in(dir.path()).is_empty());
    }

    #[test]
    fn temp_names() {
        assert!(is_temp_name(".root.tar.didx.tmp-0123456789abcdef"));
        assert!(!is_temp_name("root.tar.didx"));
        assert!(!is_temp_name(".root.tmp-12"));
        assert!(!is_temp_name("x.tmp-0123456789abcdef"));
    }

    #[test]
    fn parent_of_bare_name() {
        assert_eq!(parent_dir(Path::new("file")), Path::new("."));
        assert_eq!(parent_dir(Path::new("/a/b")), Path::new("/a"));
    }
}
