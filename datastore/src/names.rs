//! Strict validation of every name that becomes a path component in a store.
//!
//! Store names, backup types and ids, namespace components, archive and snapshot file names
//! all come from the network. Each is checked against a narrow pattern: ASCII letters,
//! digits, `_`, `-` and `.`, never a leading `.` or `-`, no `/`, no NUL, bounded length. So
//! no accepted name is `.`, `..`, hidden, an option-like word or a path.
//!
//! Pure: no IO.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// File name of a snapshot's manifest; written last, its presence marks a finished snapshot.
pub const MANIFEST_NAME: &str = "index.json.blob";
/// Deepest namespace nesting.
pub const MAX_NAMESPACE_DEPTH: usize = 7;
/// Longest namespace as written with `/` separators.
pub const MAX_NAMESPACE_LEN: usize = 256;
/// Suffix of the dynamic index file that stores a `.tar` archive.
pub const INDEX_SUFFIX: &str = ".didx";

/// A name that is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {name:?}: {reason}")]
pub struct NameError {
    /// What the name was meant to be ("backup id", "namespace", ...).
    pub what: &'static str,
    /// The rejected input, cut to 128 characters.
    pub name: String,
    pub reason: &'static str,
}

impl NameError {
    pub(crate) fn new(what: &'static str, name: &str, reason: &'static str) -> Self {
        Self {
            what,
            name: name.chars().take(128).collect(),
            reason,
        }
    }
}

/// Checks `[A-Za-z0-9_][A-Za-z0-9._-]*` with a total length in `min..=max`: the one
/// pattern for every name that becomes a path component or an identifier (the server's
/// user and token names too).
pub fn check_safe_name(
    what: &'static str,
    s: &str,
    min: usize,
    max: usize,
) -> Result<(), NameError> {
    let err = |reason| Err(NameError::new(what, s, reason));
    let Some(&first) = s.as_bytes().first() else {
        return err("must not be empty");
    };
    if !(first.is_ascii_alphanumeric() || first == b'_') {
        return err("must start with a letter, a digit or '_'");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return err("may only contain letters, digits, '_', '-' and '.'");
    }
    if s.len() < min {
        return err("is too short");
    }
    if s.len() > max {
        return err("is too long");
    }
    Ok(())
}

/// A datastore name: `[A-Za-z0-9_][A-Za-z0-9._-]{2,31}`.
pub fn validate_store_name(s: &str) -> Result<(), NameError> {
    check_safe_name("store name", s, 3, 32)
}

/// A backup id: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn validate_backup_id(s: &str) -> Result<(), NameError> {
    check_safe_name("backup id", s, 1, 128)
}

/// What a backup group backs up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BackupType {
    Host,
    Vm,
    Ct,
}

impl BackupType {
    /// The name used on the wire and on disk.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::Vm => "vm",
            Self::Ct => "ct",
        }
    }
}

impl fmt::Display for BackupType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BackupType {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, NameError> {
        match s {
            "host" => Ok(Self::Host),
            "vm" => Ok(Self::Vm),
            "ct" => Ok(Self::Ct),
            _ => Err(NameError::new("backup type", s, "must be host, vm or ct")),
        }
    }
}

/// A namespace: up to [`MAX_NAMESPACE_DEPTH`] components, each like a backup id.
/// The root namespace has no components.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace {
    components: Vec<String>,
}

impl Namespace {
    /// The root namespace.
    pub fn root() -> Self {
        Self::default()
    }

    /// Parses `""` (root) or `"a/b"`; no leading, trailing or doubled `/`.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.is_empty() {
            return Ok(Self::root());
        }
        if s.len() > MAX_NAMESPACE_LEN {
            return Err(NameError::new("namespace", s, "is too long"));
        }
        let components: Vec<String> = s.split('/').map(str::to_owned).collect();
        if components.len() > MAX_NAMESPACE_DEPTH {
            return Err(NameError::new("namespace", s, "is nested too deep"));
        }
        for c in &components {
            check_safe_name("namespace", c, 1, 128)
                .map_err(|e| NameError::new("namespace", s, e.reason))?;
        }
        Ok(Self { components })
    }

    /// True for the root namespace.
    pub fn is_root(&self) -> bool {
        self.components.is_empty()
    }

    /// The components, outermost first.
    pub fn components(&self) -> &[String] {
        &self.components
    }

    /// The namespace that holds this one (the root for a top-level namespace and for the
    /// root itself).
    pub fn parent(&self) -> Self {
        let mut components = self.components.clone();
        components.pop();
        Self { components }
    }

    /// The namespace `name` inside this one.
    pub fn child(&self, name: &str) -> Result<Self, NameError> {
        let mut s = self.to_string();
        if !s.is_empty() {
            s.push('/');
        }
        s.push_str(name);
        Self::parse(&s)
    }

    /// The namespace's directory relative to the store: `ns/a/ns/b` (empty for the root).
    pub fn rel_path(&self) -> PathBuf {
        let mut path = PathBuf::new();
        for c in &self.components {
            path.push("ns");
            path.push(c);
        }
        path
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.components.join("/"))
    }
}

impl FromStr for Namespace {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, NameError> {
        Self::parse(s)
    }
}

impl serde::Serialize for Namespace {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Namespace {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// How an archive is stored in a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArchiveKind {
    /// `NAME.tar`: one tar stream, chunked, stored as the dynamic index `NAME.tar.didx`.
    Tar,
    /// `NAME.mtar`: the metadata stream of the split archive `NAME.tar` (`NAME.mtar.didx`).
    MetaTar,
    /// `NAME.ptar`: the payload stream of the split archive `NAME.tar` (`NAME.ptar.didx`).
    PayloadTar,
    /// `NAME.blob`: one blob, stored as is.
    Blob,
}

impl ArchiveKind {
    /// Chunked and stored as a dynamic index.
    pub fn is_index(self) -> bool {
        self != ArchiveKind::Blob
    }
}

/// Archive name suffixes and their kinds.
const ARCHIVE_SUFFIXES: [(&str, ArchiveKind); 4] = [
    (".tar", ArchiveKind::Tar),
    (".mtar", ArchiveKind::MetaTar),
    (".ptar", ArchiveKind::PayloadTar),
    (".blob", ArchiveKind::Blob),
];

/// An archive name: `[A-Za-z0-9_][A-Za-z0-9._-]{0,63}` ending in `.tar`, `.mtar`, `.ptar`
/// or `.blob`, and not the manifest's name.
pub fn validate_archive_name(s: &str) -> Result<ArchiveKind, NameError> {
    const WHAT: &str = "archive name";
    check_safe_name(WHAT, s, 1, 64)?;
    if s == MANIFEST_NAME {
        return Err(NameError::new(WHAT, s, "is reserved for the manifest"));
    }
    ARCHIVE_SUFFIXES
        .iter()
        .find(|(suffix, _)| s.ends_with(suffix))
        .map(|&(_, kind)| kind)
        .ok_or_else(|| NameError::new(WHAT, s, "must end in .tar, .mtar, .ptar or .blob"))
}

/// The two stored archives of the split archive `NAME.tar`: (`NAME.mtar`, `NAME.ptar`).
/// `None` when `archive` does not end in `.tar`.
pub fn split_archive_names(archive: &str) -> Option<(String, String)> {
    let stem = archive.strip_suffix(".tar")?;
    Some((format!("{stem}.mtar"), format!("{stem}.ptar")))
}

/// The blob in which a backup of the split archive `NAME.tar` records its payload's dead
/// bytes for the next backup: `NAME.ptar.padding.blob`. `None` when `archive` does not end
/// in `.tar`.
pub fn padding_blob_name(archive: &str) -> Option<String> {
    let stem = archive.strip_suffix(".tar")?;
    Some(format!("{stem}.ptar.padding.blob"))
}

/// The file that stores an archive: `root.tar` -> `root.tar.didx` (likewise `.mtar`,
/// `.ptar`), `x.blob` -> `x.blob`.
pub fn archive_file_name(archive: &str) -> String {
    let is_index = ARCHIVE_SUFFIXES
        .iter()
        .any(|(suffix, kind)| kind.is_index() && archive.ends_with(suffix));
    if is_index {
        format!("{archive}{INDEX_SUFFIX}")
    } else {
        archive.to_owned()
    }
}

/// A file name inside a snapshot directory: [`MANIFEST_NAME`], `NAME.tar.didx` (likewise
/// `.mtar.didx`, `.ptar.didx`) or `NAME.blob` (with the name before `.didx` a valid
/// archive name).
pub fn validate_snapshot_file_name(s: &str) -> Result<(), NameError> {
    if s == MANIFEST_NAME {
        return Ok(());
    }
    let reject = |reason| Err(NameError::new("snapshot file name", s, reason));
    match s.strip_suffix(INDEX_SUFFIX) {
        Some(archive) if validate_archive_name(archive)?.is_index() => Ok(()),
        Some(_) => reject("only .tar, .mtar and .ptar archives have an index"),
        None if validate_archive_name(s)?.is_index() => {
            reject("a .tar, .mtar or .ptar archive is stored with .didx")
        }
        None => Ok(()),
    }
}

/// Checks the archive names of one snapshot: every split archive is whole (`NAME.mtar`
/// with its `NAME.ptar` and the other way round), and no name is both a single tar
/// (`NAME.tar`) and a split one.
pub fn check_split_pairs<'a>(archives: impl IntoIterator<Item = &'a str>) -> Result<(), String> {
    let names: std::collections::BTreeSet<&str> = archives.into_iter().collect();
    for name in &names {
        let (stem, other, what) = if let Some(stem) = name.strip_suffix(".mtar") {
            (stem, format!("{stem}.ptar"), "its payload")
        } else if let Some(stem) = name.strip_suffix(".ptar") {
            (stem, format!("{stem}.mtar"), "its metadata")
        } else {
            continue;
        };
        if !names.contains(other.as_str()) {
            return Err(format!(
                "split archive {stem}.tar has {name} but not {what} ({other})"
            ));
        }
        if names.contains(format!("{stem}.tar").as_str()) {
            return Err(format!(
                "{stem}.tar is given both as one tar stream and split"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
