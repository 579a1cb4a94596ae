//! Exclude patterns with gitignore semantics (`ignore::gitignore`), used by the walker as a
//! standalone matcher over archive paths.
//!
//! Every pattern is matched against a path relative to the archive root, as if all the
//! patterns sat in a `.gitignore` at that root: `/x` is anchored there, a pattern with a
//! `/` inside is anchored too, a bare name matches at any depth, `dir/` only matches
//! directories, `**` spans directories, `!pattern` re-includes. The last pattern that
//! matches decides. Nothing is re-included below an excluded directory, because the walker
//! never descends into one; the matcher alone cannot know that (it sees single paths).
//!
//! Building a matcher is pure ([`ExcludeMatcher::parse`]); only
//! [`ExcludeMatcher::read`] touches the file system, to read exclude files.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use thiserror::Error;

/// Where patterns come from, in the order they are given to [`ExcludeMatcher::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExcludeSource {
    /// One pattern, as given by `--exclude`.
    Pattern(String),
    /// The text of an exclude file: one pattern a line, `#` comments and blank lines
    /// skipped, as in a `.gitignore`.
    File { path: PathBuf, text: String },
}

#[derive(Debug, Error)]
pub enum ExcludeError {
    #[error("bad exclude pattern {pattern:?}{}: {reason}", location(origin))]
    Pattern {
        pattern: String,
        /// The exclude file and line number, for patterns from a file.
        origin: Option<(PathBuf, usize)>,
        reason: String,
    },
    // The cause is the error's source: `{:#}` prints it once.
    #[error("reading exclude file {}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("exclude file {} is not UTF-8 text", path.display())]
    NotText { path: PathBuf },
    #[error("building the exclude matcher: {reason}")]
    Build { reason: String },
}

fn location(origin: &Option<(PathBuf, usize)>) -> String {
    match origin {
        Some((path, line)) => format!(" in {} line {line}", path.display()),
        None => String::new(),
    }
}

/// Decides which paths of a tree are left out of its archive. `Default` excludes nothing.
#[derive(Debug, Clone)]
pub struct ExcludeMatcher {
    gitignore: Gitignore,
}

impl Default for ExcludeMatcher {
    fn default() -> Self {
        ExcludeMatcher {
            gitignore: Gitignore::empty(),
        }
    }
}

impl ExcludeMatcher {
    /// Compiles the patterns of `sources` in order; a pattern that is not a valid glob is an
    /// error naming it (and its file and line).
    pub fn parse(sources: &[ExcludeSource]) -> Result<Self, ExcludeError> {
        // "." roots the patterns wherever the archive root is: candidates are always paths
        // relative to it, so one matcher serves every archive of a backup.
        let mut builder = GitignoreBuilder::new(".");
        for source in sources {
            match source {
                ExcludeSource::Pattern(pattern) => add(&mut builder, pattern, None)?,
                ExcludeSource::File { path, text } => {
                    for (i, line) in text.lines().enumerate() {
                        add(&mut builder, line, Some((path, i + 1)))?;
                    }
                }
            }
        }
        let gitignore = builder.build().map_err(|e| ExcludeError::Build {
            reason: e.to_string(),
        })?;
        Ok(ExcludeMatcher { gitignore })
    }

    /// Reads the exclude `files`, then compiles their patterns followed by `patterns`: a
    /// command-line pattern comes after every file's, so it wins where both match.
    pub fn read(files: &[PathBuf], patterns: &[String]) -> Result<Self, ExcludeError> {
        let mut sources = Vec::with_capacity(files.len() + patterns.len());
        for path in files {
            let bytes = std::fs::read(path).map_err(|source| ExcludeError::Read {
                path: path.clone(),
                source,
            })?;
            let text = String::from_utf8(bytes)
                .map_err(|_| ExcludeError::NotText { path: path.clone() })?;
            sources.push(ExcludeSource::File {
                path: path.clone(),
                text,
            });
        }
        sources.extend(patterns.iter().cloned().map(ExcludeSource::Pattern));
        Self::parse(&sources)
    }

    /// True when no pattern was given: nothing is ever excluded.
    pub fn is_empty(&self) -> bool {
        self.gitignore.is_empty()
    }

    /// Whether the last pattern matching `archive_path` (relative to the archive root, no
    /// leading `./`) excludes it. Never true for the root itself, whose path is `"."`.
    pub fn is_excluded(&self, archive_path: &[u8], is_dir: bool) -> bool {
        if self.is_empty() || archive_path == b"." {
            return false;
        }
        let path = Path::new(OsStr::from_bytes(archive_path));
        self.gitignore.matched(path, is_dir).is_ignore()
    }
}

fn add(
    builder: &mut GitignoreBuilder,
    line: &str,
    origin: Option<(&PathBuf, usize)>,
) -> Result<(), ExcludeError> {
    // Exclude files written on Windows still mean their patterns without the CR.
    let line = line.strip_suffix('\r').unwrap_or(line);
    let from = origin.map(|(path, _)| path.clone());
    builder
        .add_line(from, line)
        .map_err(|e| ExcludeError::Pattern {
            pattern: line.to_string(),
            origin: origin.map(|(path, n)| (path.clone(), n)),
            reason: e.to_string(),
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(patterns: &[&str]) -> ExcludeMatcher {
        let sources: Vec<_> = patterns
            .iter()
            .map(|p| ExcludeSource::Pattern(p.to_string()))
            .collect();
        ExcludeMatcher::parse(&sources).unwrap()
    }

    /// A path, whether it is a directory, whether it is excluded.
    type Case = (&'static str, bool, bool);

    /// Each row: patterns, then the cases they decide.
    const TABLE: &[(&[&str], &[Case])] = &[
        // A plain name matches at any depth, files and directories alike.
        (
            &["node_modules"],
            &[
                ("node_modules", true, true),
                ("a/b/node_modules", true, true),
                ("a/node_modules", false, true),
                ("node_modules2", true, false),
                ("a/node_modules.txt", false, false),
            ],
        ),
        // A leading `/` anchors at the archive root.
        (
            &["/tmp"],
            &[
                ("tmp", true, true),
                ("tmp", false, true),
                ("var/tmp", true, false),
            ],
        ),
        // A `/` inside anchors too.
        (
            &["var/cache"],
            &[("var/cache", true, true), ("srv/var/cache", true, false)],
        ),
        // `dir/` only matches directories.
        (
            &["build/"],
            &[
                ("build", true, true),
                ("build", false, false),
                ("src/build", true, true),
                ("src/build", false, false),
            ],
        ),
        // Wildcards do not cross `/`; negation re-includes.
        (
            &["*.log", "!keep.log"],
            &[
                ("a.log", false, true),
                ("x/y/b.log", false, true),
                ("keep.log", false, false),
                ("x/keep.log", false, false),
                ("log", false, false),
                ("a.log.gz", false, false),
            ],
        ),
        // `**/cache/**`: everything inside any `cache`, not the directory itself.
        (
            &["**/cache/**"],
            &[
                ("cache", true, false),
                ("cache/f", false, true),
                ("a/b/cache/d", true, true),
                ("a/b/cache/d/e", false, true),
                ("a/cached/f", false, false),
            ],
        ),
        // `**` in the middle spans any number of directories, none included.
        (
            &["/a/**/z"],
            &[
                ("a/z", false, true),
                ("a/b/c/z", false, true),
                ("b/a/z", false, false),
            ],
        ),
        // The last matching pattern wins, in both directions.
        (
            &["!keep.log", "*.log"],
            &[("keep.log", false, true), ("a.log", false, true)],
        ),
        (
            &["*.log", "!keep.log", "keep.log"],
            &[("keep.log", false, true)],
        ),
        (
            &["*", "!*.rs", "!*/"],
            &[
                ("main.rs", false, false),
                ("src", true, false),
                ("README", false, true),
            ],
        ),
        // Escapes: a literal `#` or `!` at the start, trailing spaces trimmed.
        (
            &["\\#notes", "\\!bang", "spaced   "],
            &[
                ("#notes", false, true),
                ("!bang", false, true),
                ("spaced", false, true),
                ("spaced   ", false, false),
            ],
        ),
    ];

    #[test]
    fn gitignore_semantics_table() {
        for (patterns, cases) in TABLE {
            let m = matcher(patterns);
            for &(path, is_dir, excluded) in *cases {
                assert_eq!(
                    m.is_excluded(path.as_bytes(), is_dir),
                    excluded,
                    "patterns {patterns:?}, path {path:?} (dir: {is_dir})"
                );
            }
        }
    }

    #[test]
    fn the_root_and_an_empty_matcher_exclude_nothing() {
        assert!(!matcher(&["*", "."]).is_excluded(b".", true));
        let empty = ExcludeMatcher::default();
        assert!(empty.is_empty());
        assert!(!empty.is_excluded(b"anything", false));
        assert!(matcher(&["# only a comment", ""]).is_empty());
    }

    #[test]
    fn file_text_skips_comments_and_blank_lines() {
        let text = "# build output\n\n*.o\r\n   \n!main.o\n#*.c\n";
        let m = ExcludeMatcher::parse(&[ExcludeSource::File {
            path: PathBuf::from("excludes"),
            text: text.into(),
        }])
        .unwrap();
        assert!(m.is_excluded(b"x.o", false));
        assert!(!m.is_excluded(b"main.o", false));
        assert!(!m.is_excluded(b"x.c", false));
        assert!(!m.is_excluded(b"#*.c", false));
    }

    #[test]
    fn command_line_patterns_come_after_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("excludes");
        std::fs::write(&file, "*.tmp\n").unwrap();
        let m = ExcludeMatcher::read(&[file], &["!keep.tmp".into()]).unwrap();
        assert!(m.is_excluded(b"a.tmp", false));
        assert!(!m.is_excluded(b"keep.tmp", false));
    }

    #[test]
    fn a_bad_pattern_is_an_error_naming_it() {
        let err = ExcludeMatcher::parse(&[ExcludeSource::Pattern("[z-a]".into())]).unwrap_err();
        assert!(matches!(&err, ExcludeError::Pattern { origin: None, .. }));
        assert!(err.to_string().contains("\"[z-a]\""), "{err}");

        let err = ExcludeMatcher::parse(&[ExcludeSource::File {
            path: PathBuf::from("ex"),
            text: "ok\n\n*.[z-a]\n".into(),
        }])
        .unwrap_err();
        assert!(err.to_string().contains("in ex line 3"), "{err}");
    }

    #[test]
    fn an_unreadable_exclude_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let err = ExcludeMatcher::read(std::slice::from_ref(&missing), &[]).unwrap_err();
        assert!(matches!(&err, ExcludeError::Read { path, .. } if *path == missing));
        let binary = dir.path().join("binary");
        std::fs::write(&binary, [0xff, 0xfe, b'\n']).unwrap();
        let err = ExcludeMatcher::read(&[binary], &[]).unwrap_err();
        assert!(matches!(err, ExcludeError::NotText { .. }));
    }
}
