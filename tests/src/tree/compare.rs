//! Entry-by-entry comparison of two trees (original and restored), based on `lstat` and
//! never following symlinks. Reports every difference with its path instead of stopping at
//! the first, so one failing test shows everything a restore got wrong. It only reads:
//! neither tree is changed (files are opened only to hash them).

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use sha2::{Digest, Sha256};

/// Extra allocation a restored sparse file may have over the original's.
const SPARSE_MARGIN: u64 = 1 << 20;

#[derive(Debug)]
struct Node {
    meta: fs::Metadata,
    /// Content digest of regular files.
    digest: Option<[u8; 32]>,
    link_target: Option<Vec<u8>>,
    /// All xattrs, `system.posix_acl_*` included, sorted by name.
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Compares `a` (original) and `b` (copy): set of paths, kind, size, content, mode, owner,
/// mtime (ns), symlink targets, xattrs and ACLs, device numbers, hard-link structure and the
/// allocation of sparse files, the roots included. `Err` lists every difference.
pub fn compare_trees(a: &Path, b: &Path) -> Result<(), Vec<String>> {
    let mut diffs = Vec::new();
    let left = scan(a, &mut diffs);
    let right = scan(b, &mut diffs);
    for path in left.keys().filter(|p| !right.contains_key(*p)) {
        diffs.push(format!("{}: missing in {}", show(path), b.display()));
    }
    for path in right.keys().filter(|p| !left.contains_key(*p)) {
        diffs.push(format!("{}: only in {}", show(path), b.display()));
    }
    for (path, l) in &left {
        if let Some(r) = right.get(path) {
            compare_node(&show(path), l, r, &mut diffs);
        }
    }
    compare_links(&left, &right, &mut diffs);
    compare_links(&right, &left, &mut diffs);
    if diffs.is_empty() { Ok(()) } else { Err(diffs) }
}

fn show(path: &[u8]) -> String {
    if path.is_empty() {
        ".".into()
    } else {
        format!("{:?}", String::from_utf8_lossy(path))
    }
}

fn compare_node(path: &str, l: &Node, r: &Node, diffs: &mut Vec<String>) {
    let (lm, rm) = (&l.meta, &r.meta);
    let mut check = |what: &str, left: String, right: String| {
        if left != right {
            diffs.push(format!("{path}: {what} {left} != {right}"));
        }
    };
    check(
        "kind",
        format!("{:o}", lm.mode() & 0o170000),
        format!("{:o}", rm.mode() & 0o170000),
    );
    if lm.mode() & 0o170000 != rm.mode() & 0o170000 {
        return;
    }
    check(
        "mode",
        format!("{:04o}", lm.mode() & 0o7777),
        format!("{:04o}", rm.mode() & 0o7777),
    );
    check("uid", lm.uid().to_string(), rm.uid().to_string());
    check("gid", lm.gid().to_string(), rm.gid().to_string());
    check(
        "mtime",
        format!("{}.{:09}", lm.mtime(), lm.mtime_nsec()),
        format!("{}.{:09}", rm.mtime(), rm.mtime_nsec()),
    );
    check("xattrs", show_xattrs(&l.xattrs), show_xattrs(&r.xattrs));
    let ft = lm.file_type();
    if ft.is_file() {
        check("size", lm.size().to_string(), rm.size().to_string());
        let hex = |n: &Node| {
            n.digest
                .map(|d| d.iter().map(|b| format!("{b:02x}")).collect::<String>())
        };
        check(
            "content sha256",
            format!("{:?}", hex(l)),
            format!("{:?}", hex(r)),
        );
        let allocated = |m: &fs::Metadata| m.blocks() * 512;
        if allocated(lm) < lm.size()
            && allocated(rm) > allocated(lm) + SPARSE_MARGIN + allocated(lm) / 8
        {
            let original = format!("original {} + margin", allocated(lm));
            check(
                "allocated bytes of sparse file",
                original,
                allocated(rm).to_string(),
            );
        }
    }
    if ft.is_symlink() {
        let target = |n: &Node| {
            format!(
                "{:?}",
                n.link_target.as_deref().map(String::from_utf8_lossy)
            )
        };
        check("symlink target", target(l), target(r));
    }
    if ft.is_block_device() || ft.is_char_device() {
        check(
            "rdev",
            format!("{:#x}", lm.rdev()),
            format!("{:#x}", rm.rdev()),
        );
    }
}

fn show_xattrs(xattrs: &[(Vec<u8>, Vec<u8>)]) -> String {
    let items: Vec<String> = xattrs
        .iter()
        .map(|(name, value)| format!("{}={}", name.escape_ascii(), value.escape_ascii()))
        .collect();
    format!("[{}]", items.join(", "))
}

/// Paths that share an inode in `from` must share one in `to`.
fn compare_links(
    from: &BTreeMap<Vec<u8>, Node>,
    to: &BTreeMap<Vec<u8>, Node>,
    diffs: &mut Vec<String>,
) {
    let mut groups: HashMap<(u64, u64), Vec<&Vec<u8>>> = HashMap::new();
    for (path, node) in from
        .iter()
        .filter(|(_, n)| !n.meta.is_dir() && n.meta.nlink() > 1)
    {
        groups
            .entry((node.meta.dev(), node.meta.ino()))
            .or_default()
            .push(path);
    }
    for paths in groups.values().filter(|p| p.len() > 1) {
        let first = paths[0];
        let Some(first_node) = to.get(first) else {
            continue;
        };
        for other in &paths[1..] {
            match to.get(*other) {
                Some(n)
                    if n.meta.ino() == first_node.meta.ino()
                        && n.meta.dev() == first_node.meta.dev() => {}
                Some(_) => diffs.push(format!(
                    "{}: not hard-linked to {}",
                    show(other),
                    show(first)
                )),
                None => {}
            }
        }
    }
}

/// All objects under `root` by relative path (`""` for the root itself).
fn scan(root: &Path, diffs: &mut Vec<String>) -> BTreeMap<Vec<u8>, Node> {
    let mut nodes = BTreeMap::new();
    let mut stack = vec![Vec::new()];
    while let Some(rel) = stack.pop() {
        let path = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(OsStr::from_bytes(&rel))
        };
        match node(&path) {
            Ok(node) => {
                if node.meta.is_dir() {
                    match fs::read_dir(&path) {
                        Ok(entries) => {
                            for entry in entries.flatten() {
                                let mut child = rel.clone();
                                if !child.is_empty() {
                                    child.push(b'/');
                                }
                                child.extend_from_slice(entry.file_name().as_bytes());
                                stack.push(child);
                            }
                        }
                        Err(e) => diffs.push(format!("{}: cannot list: {e}", path.display())),
                    }
                }
                nodes.insert(rel, node);
            }
            Err(e) => diffs.push(format!("{}: {e}", path.display())),
        }
    }
    nodes
}

fn node(path: &Path) -> io::Result<Node> {
    let meta = fs::symlink_metadata(path)?;
    let digest = if meta.is_file() {
        Some(digest(path)?)
    } else {
        None
    };
    let link_target = if meta.file_type().is_symlink() {
        Some(fs::read_link(path)?.as_os_str().as_bytes().to_vec())
    } else {
        None
    };
    let mut xattrs = Vec::new();
    for name in xattr::list(path)? {
        if let Some(value) = xattr::get(path, &name)? {
            xattrs.push((name.as_bytes().to_vec(), value));
        }
    }
    xattrs.sort();
    Ok(Node {
        meta,
        digest,
        link_target,
        xattrs,
    })
}

fn digest(path: &Path) -> io::Result<[u8; 32]> {
    let mut file: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{TreeOptions, generate_tree};
    use std::os::unix::fs::PermissionsExt;

    fn small() -> TreeOptions {
        TreeOptions {
            large_file_size: 1 << 20,
            sparse_file_size: 4 << 20,
            depth: 3,
            ..TreeOptions::default()
        }
    }

    #[test]
    fn equal_trees_compare_equal_and_every_change_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        generate_tree(&a, &small()).unwrap();
        generate_tree(&b, &small()).unwrap();
        assert_eq!(compare_trees(&a, &b), Ok(()));

        fs::set_permissions(b.join("modes/exec"), fs::Permissions::from_mode(0o700)).unwrap();
        fs::write(b.join("small/text.txt"), b"HELLO, archive\n").unwrap();
        xattr::set(b.join("xattr/file"), "user.comment", b"changed").unwrap();
        fs::remove_file(b.join("hardlinks/second")).unwrap();
        fs::write(b.join("hardlinks/second"), b"shared inode").unwrap();
        fs::remove_file(b.join("links/dangling")).unwrap();
        std::os::unix::fs::symlink("elsewhere", b.join("links/dangling")).unwrap();
        fs::remove_file(b.join("empty")).unwrap();
        fs::write(b.join("extra"), b"").unwrap();
        let sparse = b.join("sparse/only-hole.img");
        let size = fs::metadata(&sparse).unwrap().len();
        fs::write(&sparse, vec![0u8; size as usize]).unwrap();

        let diffs = compare_trees(&a, &b).unwrap_err().join("\n");
        for expected in [
            "\"modes/exec\": mode 0755 != 0700",
            "\"small/text.txt\": content sha256",
            "\"xattr/file\": xattrs",
            "\"hardlinks/second\": not hard-linked to \"hardlinks/first\"",
            "\"links/dangling\": symlink target",
            "\"empty\": missing in",
            "\"extra\": only in",
            "\"sparse/only-hole.img\": allocated bytes of sparse file",
            ".: mtime",
            "\"hardlinks\": mtime",
        ] {
            assert!(diffs.contains(expected), "{expected:?} not in:\n{diffs}");
        }
    }
}
