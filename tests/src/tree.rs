//! Test trees for backup/restore round trips: `generate_tree` builds a directory with every
//! kind of object and metadata an archive must carry; `compare_trees` (in `compare`) checks
//! that a restored tree equals the original, entry by entry.
//!
//! Independent of backup-client on purpose: end-to-end tests run the real binaries and use
//! this to judge their output, so it must not share code (or bugs) with the archive layer.
//! It writes only under the root it is given. Things that need root (devices, foreign
//! owners) are skipped with a printed message when not running as root.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::fcntl::{AT_FDCWD, AtFlags};
use nix::sys::stat::{Mode, SFlag, UtimensatFlags, makedev, mknod, utimensat};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, fchownat, mkfifo};

mod compare;

pub use compare::compare_trees;

/// Panics, listing every difference, unless the trees under `a` and `b` compare equal.
pub fn assert_same_tree(a: &Path, b: &Path) {
    if let Err(diffs) = compare_trees(a, b) {
        panic!("{} differences:\n{}", diffs.len(), diffs.join("\n"));
    }
}

impl TreeOptions {
    /// The default tree with a 3 MiB large file and an 8 MiB sparse file: every entry kind,
    /// quick to encode.
    pub fn small() -> Self {
        Self {
            large_file_size: 3 << 20,
            sparse_file_size: 8 << 20,
            ..Self::default()
        }
    }
}

const MIB: u64 = 1 << 20;

/// What to build; `Default` gives the full-size tree.
#[derive(Debug, Clone)]
pub struct TreeOptions {
    /// Size of `large.bin` (pseudo-random, incompressible).
    pub large_file_size: u64,
    /// Apparent size of the sparse files.
    pub sparse_file_size: u64,
    /// Directory levels under `deep/`.
    pub depth: usize,
    /// Seed of the content generator: same seed, same bytes.
    pub seed: u64,
}

impl Default for TreeOptions {
    fn default() -> Self {
        TreeOptions {
            large_file_size: 50 * MIB,
            sparse_file_size: 64 * MIB,
            depth: 40,
            seed: 0x5eed_ba5e,
        }
    }
}

/// What was built, paths relative to the root.
#[derive(Debug, Clone, Default)]
pub struct TreeInfo {
    /// Objects created below the root (the root not counted).
    pub entries: u64,
    /// Bytes of regular file data written (holes not counted).
    pub data_bytes: u64,
    pub large_file: PathBuf,
    pub sparse_files: Vec<PathBuf>,
    /// Parts left out and why (e.g. devices when not root).
    pub skipped: Vec<String>,
}

/// Builds the test tree under `root` (created if missing; should be empty).
pub fn generate_tree(root: &Path, opts: &TreeOptions) -> Result<TreeInfo> {
    fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    let mut g = Generator {
        root,
        info: TreeInfo::default(),
        rng: Rng(opts.seed),
    };
    let is_root = Uid::effective().is_root();

    g.file("empty", b"")?;
    for (i, len) in [1u64, 100, 511, 512, 513, 4096, 65_537]
        .into_iter()
        .enumerate()
    {
        let data = g.rng.bytes(len);
        g.file(&format!("small/file-{i}-{len}.bin"), &data)?;
    }
    g.file("small/text.txt", b"hello, archive\n")?;
    g.info.large_file = PathBuf::from("large.bin");
    g.random_file("large.bin", opts.large_file_size)?;

    let size = opts.sparse_file_size.max(4 * MIB);
    let regions = [
        (0, 4096),
        (size / 6, 100_000),
        (size / 2, MIB),
        (size - 4096, 4096),
    ];
    g.sparse_file("sparse/regions.img", size, &regions)?;
    g.sparse_file("sparse/hole-at-end.img", size, &[(MIB, 8192)])?;
    g.sparse_file("sparse/only-hole.img", size, &[])?;

    for name in [
        "with space",
        "new\nline",
        "--leading-dashes",
        "-",
        "ünïcödé-名前",
        "back\\slash",
    ] {
        g.file(&format!("names/{name}"), name.as_bytes())?;
    }
    g.file(&format!("names/{}", "long-".repeat(44)), b"220 bytes")?;
    g.file_bytes(b"names/not-utf8-\xff\xfe", b"latin1")?;
    let deep: String = (0..opts.depth).map(|i| format!("level-{i:02}/")).collect();
    g.file(&format!("deep/{deep}leaf.txt"), b"deep")?;

    g.dir("links")?;
    g.symlink("links/relative", "../small/text.txt")?;
    g.symlink("links/absolute", "/etc/hostname")?;
    g.symlink("links/dangling", "does/not/exist")?;
    g.symlink("links/to-dir", "../deep")?;

    g.file("hardlinks/first", b"shared inode")?;
    g.hard_link("hardlinks/first", "hardlinks/second")?;
    g.hard_link("hardlinks/first", "small/third-name")?;

    g.dir("special")?;
    mkfifo(&g.path("special/fifo"), Mode::from_bits_truncate(0o640)).context("mkfifo")?;
    g.info.entries += 1;
    if is_root {
        let null = makedev(1, 3);
        mknod(
            &g.path("special/null"),
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            null,
        )
        .context("mknod")?;
        g.info.entries += 1;
    } else {
        g.skip("special/null: character device needs root");
    }

    g.file("xattr/file", b"with xattrs")?;
    g.dir("xattr/dir")?;
    xattr::set(g.path("xattr/file"), "user.comment", b"hello xattr")
        .context("setting user xattrs")?;
    xattr::set(g.path("xattr/file"), "user.binary", &[0, 1, 2, 255, b'\n'])?;
    xattr::set(g.path("xattr/dir"), "user.dir-attr", b"on a directory")?;

    // Access ACL on a file, default ACL on a directory (inherited by what is made in it).
    g.file("acl/file", b"with an ACL")?;
    let access = [
        (1, 6, u32::MAX),
        (2, 4, 1000),
        (4, 4, u32::MAX),
        (0x10, 4, u32::MAX),
        (0x20, 0, u32::MAX),
    ];
    xattr::set(
        g.path("acl/file"),
        "system.posix_acl_access",
        &acl_xattr(&access),
    )
    .context("setting an access ACL")?;
    g.dir("acl/dir")?;
    let default = [
        (1, 7, u32::MAX),
        (4, 5, u32::MAX),
        (8, 5, 1001),
        (0x10, 5, u32::MAX),
        (0x20, 1, u32::MAX),
    ];
    xattr::set(
        g.path("acl/dir"),
        "system.posix_acl_default",
        &acl_xattr(&default),
    )
    .context("setting a default ACL")?;
    g.file("acl/dir/inherits", b"inherited ACL")?;
    g.dir("acl/dir/subdir")?;

    for (name, mode) in [
        ("modes/private", 0o600),
        ("modes/exec", 0o755),
        ("modes/setuid", 0o4755),
        ("modes/none", 0o000),
    ] {
        g.file(name, name.as_bytes())?;
        fs::set_permissions(g.path(name), fs::Permissions::from_mode(mode))?;
    }
    g.file("modes/read-only-dir/inside", b"in a 0555 directory")?;
    for (name, mode) in [
        ("modes/setgid-dir", 0o2775),
        ("modes/sticky-dir", 0o1777),
        ("modes/read-only-dir", 0o555),
    ] {
        g.dir(name)?;
        fs::set_permissions(g.path(name), fs::Permissions::from_mode(mode))?;
    }

    if is_root {
        g.file("owned/by-other", b"foreign owner")?;
        let (uid, gid) = (Some(Uid::from_raw(1234)), Some(Gid::from_raw(5678)));
        fchownat(
            AT_FDCWD,
            &g.path("owned/by-other"),
            uid,
            gid,
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
        g.symlink("owned/link-by-other", "by-other")?;
        let (uid, gid) = (Some(Uid::from_raw(4321)), Some(Gid::from_raw(8765)));
        fchownat(
            AT_FDCWD,
            &g.path("owned/link-by-other"),
            uid,
            gid,
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
    } else {
        g.skip("owned/: foreign owners need root");
    }

    fs::set_permissions(root, fs::Permissions::from_mode(0o751))?;
    let mut counter = 0;
    set_mtimes(root, &mut counter)?;
    for skipped in &g.info.skipped {
        println!("generate_tree: skipped {skipped}");
    }
    Ok(g.info)
}

struct Generator<'a> {
    root: &'a Path,
    info: TreeInfo,
    rng: Rng,
}

impl Generator<'_> {
    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Creates `rel` and any missing parents (each counted once).
    fn dir(&mut self, rel: &str) -> Result<()> {
        let mut path = self.root.to_path_buf();
        for part in Path::new(rel).components() {
            path.push(part);
            if !path.exists() {
                fs::create_dir(&path).with_context(|| format!("mkdir {}", path.display()))?;
                self.info.entries += 1;
            }
        }
        Ok(())
    }

    fn parent_dir(&mut self, rel: &[u8]) -> Result<()> {
        match rel.iter().rposition(|&b| b == b'/') {
            Some(slash) => self.dir(std::str::from_utf8(&rel[..slash])?),
            None => Ok(()),
        }
    }

    fn file(&mut self, rel: &str, data: &[u8]) -> Result<()> {
        self.file_bytes(rel.as_bytes(), data)
    }

    fn file_bytes(&mut self, rel: &[u8], data: &[u8]) -> Result<()> {
        self.parent_dir(rel)?;
        let path = self.root.join(OsStr::from_bytes(rel));
        fs::write(&path, data).with_context(|| format!("writing {}", path.display()))?;
        self.info.entries += 1;
        self.info.data_bytes += data.len() as u64;
        Ok(())
    }

    fn random_file(&mut self, rel: &str, size: u64) -> Result<()> {
        self.parent_dir(rel.as_bytes())?;
        let mut file = File::create(self.path(rel))?;
        let mut left = size;
        while left > 0 {
            let n = left.min(MIB);
            file.write_all(&self.rng.bytes(n))?;
            left -= n;
        }
        self.info.entries += 1;
        self.info.data_bytes += size;
        Ok(())
    }

    /// A file of apparent size `size` with data only at `regions` (offset, length).
    fn sparse_file(&mut self, rel: &str, size: u64, regions: &[(u64, u64)]) -> Result<()> {
        self.parent_dir(rel.as_bytes())?;
        let file = File::create(self.path(rel))?;
        file.set_len(size)?;
        for &(offset, len) in regions {
            file.write_all_at(&self.rng.bytes(len), offset)?;
            self.info.data_bytes += len;
        }
        file.sync_all()?;
        self.info.entries += 1;
        self.info.sparse_files.push(PathBuf::from(rel));
        Ok(())
    }

    fn symlink(&mut self, rel: &str, target: &str) -> Result<()> {
        self.parent_dir(rel.as_bytes())?;
        symlink(target, self.path(rel)).with_context(|| format!("symlink {rel}"))?;
        self.info.entries += 1;
        Ok(())
    }

    fn hard_link(&mut self, existing: &str, rel: &str) -> Result<()> {
        self.parent_dir(rel.as_bytes())?;
        fs::hard_link(self.path(existing), self.path(rel))
            .with_context(|| format!("link {rel}"))?;
        self.info.entries += 1;
        Ok(())
    }

    fn skip(&mut self, what: &str) {
        self.info.skipped.push(what.to_string());
    }
}

/// The kernel's binary ACL xattr: version 2, then (tag u16, perm u16, id u32) little endian.
fn acl_xattr(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut out = 2u32.to_le_bytes().to_vec();
    for &(tag, perm, id) in entries {
        out.extend(tag.to_le_bytes());
        out.extend(perm.to_le_bytes());
        out.extend(id.to_le_bytes());
    }
    out
}

/// Gives every object a distinct mtime with nanoseconds, contents before their directory,
/// symlinks themselves rather than their targets.
fn set_mtimes(path: &Path, counter: &mut i64) -> Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if meta.is_dir() {
        let mut names: Vec<_> = fs::read_dir(path)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort();
        for name in names {
            set_mtimes(&path.join(name), counter)?;
        }
    }
    *counter += 1;
    let mtime = TimeSpec::new(
        1_600_000_000 + *counter * 3607,
        (*counter * 123_456_791) % 1_000_000_000,
    );
    utimensat(
        AT_FDCWD,
        path,
        &TimeSpec::UTIME_OMIT,
        &mtime,
        UtimensatFlags::NoFollowSymlink,
    )
    .with_context(|| format!("setting mtime of {}", path.display()))?;
    Ok(())
}

/// splitmix64: a small seeded generator, so content is reproducible and incompressible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn bytes(&mut self, len: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(len as usize + 8);
        while (out.len() as u64) < len {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(len as usize);
        out
    }
}
