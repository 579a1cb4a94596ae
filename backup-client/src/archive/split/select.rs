//! Which entries a partial restore takes: the paths asked for, everything below them, and
//! the directories above them (so that they can be created with their metadata).
//!
//! Pure: paths in, yes or no out.

use super::super::entry::{PathError, relative_path};

#[derive(Debug, Clone)]
pub struct Selection {
    /// Normalized archive paths (`""` is the root).
    paths: Vec<Vec<u8>>,
    matched: Vec<bool>,
}

impl Selection {
    /// Paths as given on a command line: relative to the archive root, `./` and a
    /// trailing `/` allowed; `..` and absolute paths refused.
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<[u8]>>(paths: I) -> Result<Self, String> {
        let paths = paths
            .into_iter()
            .map(|p| {
                let p = p.as_ref();
                relative_path(p).map_err(|e: PathError| {
                    format!("include path '{}': {e}", String::from_utf8_lossy(p))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let matched = vec![false; paths.len()];
        Ok(Selection { paths, matched })
    }

    /// Whether the entry at archive path `path` is restored; counts matches.
    pub(crate) fn wants(&mut self, path: &[u8]) -> bool {
        let Ok(path) = relative_path(path) else {
            return false;
        };
        let mut wanted = false;
        for (asked, matched) in self.paths.iter().zip(&mut self.matched) {
            if within(&path, asked) {
                *matched = true;
                wanted = true;
            } else if within(asked, &path) {
                wanted = true;
            }
        }
        wanted
    }

    /// Whether `path` is one of the paths asked for or below one (a path that is not a
    /// valid archive path is not). The directories above them are not covered.
    pub(crate) fn covers(&self, path: &[u8]) -> bool {
        relative_path(path).is_ok_and(|path| self.paths.iter().any(|top| within(&path, top)))
    }

    /// The paths that matched no entry so far.
    pub fn unmatched(&self) -> Vec<String> {
        self.paths
            .iter()
            .zip(&self.matched)
            .filter(|(_, m)| !**m)
            .map(|(p, _)| String::from_utf8_lossy(p).into_owned())
            .collect()
    }
}

/// `path` is `top` or below it.
fn within(path: &[u8], top: &[u8]) -> bool {
    top.is_empty()
        || path == top
        || (path.len() > top.len() && path.starts_with(top) && path[top.len()] == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_paths_what_is_below_and_the_directories_above() {
        let mut s = Selection::new(["etc/hosts", "./var/lib/"]).unwrap();
        for (path, wanted) in [
            (&b"."[..], true),
            (b"etc", true),
            (b"etc/hosts", true),
            (b"etc/hostname", false),
            (b"etc/hosts.allow", false),
            (b"var", true),
            (b"var/lib", true),
            (b"var/lib/x/y", true),
            (b"var/libx", false),
            (b"usr", false),
        ] {
            assert_eq!(s.wants(path), wanted, "{}", String::from_utf8_lossy(path));
        }
        assert!(s.unmatched().is_empty());
        let mut s = Selection::new(["a", "b/c"]).unwrap();
        s.wants(b"a");
        assert_eq!(s.unmatched(), ["b/c"]);
        assert!(s.covers(b"a") && s.covers(b"./a/x") && s.covers(b"b/c/d"));
        assert!(!s.covers(b"b") && !s.covers(b"ab") && !s.covers(b"../a"));
        assert!(Selection::new(["../x"]).is_err());
        assert!(Selection::new(["/etc"]).is_err());
    }
}
