//! The archive layer of backup-client against the e2e test tree: encode, restore, compare;
//! stable output; GNU tar and bsdtar compatibility; hostile and damaged archives.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use backup_client::archive::{
    ArchiveError, ArchiveProgress, RestoreOptions, encode_tree, restore_tree,
};
use e2e::harness::{run_quiet as run, tool_installed as tool};
use e2e::tree::{TreeOptions, assert_same_tree, generate_tree};
use tar::{EntryType, Header};

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

fn encode(root: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    let stats = encode_tree(root, &mut out, &ArchiveProgress::default()).expect("encode");
    assert!(
        stats.errors.is_empty(),
        "encode errors: {:#?}",
        stats.errors
    );
    out
}

#[test]
fn full_tree_round_trips_and_encodes_stably() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let info = generate_tree(&src, &TreeOptions::default()).unwrap();

    let progress = ArchiveProgress::default();
    let mut archive = Vec::new();
    let stats = encode_tree(&src, &mut archive, &progress).unwrap();
    assert!(stats.errors.is_empty(), "{:#?}", stats.errors);
    assert_eq!(
        stats.entries,
        info.entries + 1,
        "every object plus the root"
    );
    // Sparse data segments are whole file system blocks, so a little more than was written.
    assert!(stats.bytes_read >= info.data_bytes && stats.bytes_read < info.data_bytes + (1 << 20));
    assert_eq!(
        progress.bytes.load(std::sync::atomic::Ordering::Relaxed),
        stats.bytes_read
    );
    assert!(archive.len() as u64 >= info.data_bytes);
    assert!(
        (archive.len() as u64) < info.data_bytes + (4 << 20),
        "holes must not be stored: {} bytes for {} of data",
        archive.len(),
        info.data_bytes
    );

    assert!(
        encode(&src) == archive,
        "an unchanged tree must encode to identical bytes"
    );

    let target = dir.path().join("restored");
    let restored = restore_tree(
        &archive[..],
        &target,
        &RestoreOptions::default(),
        &ArchiveProgress::default(),
    )
    .unwrap();
    println!("restore warnings: {:#?}", restored.warnings);
    assert_eq!(restored.entries, stats.entries);
    assert_eq!(restored.bytes_written, stats.bytes_read);
    if is_root() {
        assert!(restored.warnings.is_empty(), "{:#?}", restored.warnings);
    }
    assert_same_tree(&src, &target);

    let again = dir.path().join("again");
    fs::create_dir(&again).unwrap();
    restore_tree(
        &archive[..],
        &again,
        &RestoreOptions::default(),
        &ArchiveProgress::default(),
    )
    .unwrap();
    assert!(
        encode(&again) == archive,
        "a restored tree encodes like its original"
    );
}

#[test]
fn gnu_tar_and_bsdtar_read_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let info = generate_tree(&src, &TreeOptions::small()).unwrap();
    let file = dir.path().join("tree.tar");
    fs::write(&file, encode(&src)).unwrap();

    assert!(tool("tar"), "GNU tar is required");
    let listing = run(Command::new("tar").arg("-tvf").arg(&file));
    assert_eq!(
        listing.lines().count() as u64,
        info.entries + 1,
        "one line per member:\n{listing}"
    );
    assert!(listing.contains("sparse/only-hole.img"), "{listing}");
    // bsdtar converts names to the locale's charset and fails on non-ASCII ones in the C
    // locale (with GNU tar's own pax archives too), so it gets a UTF-8 locale.
    if tool("bsdtar") {
        run(Command::new("bsdtar")
            .env("LC_ALL", "C.UTF-8")
            .arg("-tvf")
            .arg(&file));
    } else {
        println!("skipping bsdtar checks: bsdtar not installed (apt-get install libarchive-tools)");
    }

    // GNU tar restores the whole tree, sparse files and metadata included.
    let extracted = dir.path().join("gnu");
    fs::create_dir(&extracted).unwrap();
    let mut extract = Command::new("tar");
    extract.args([
        "-x",
        "--xattrs",
        "--xattrs-include=*",
        "--acls",
        "--numeric-owner",
        "-p",
        "-f",
    ]);
    run(extract.arg(&file).arg("-C").arg(&extracted));
    assert_same_tree(&src, &extracted);
    for sparse in &info.sparse_files {
        let meta = fs::metadata(extracted.join(sparse)).unwrap();
        assert!(
            std::os::unix::fs::MetadataExt::blocks(&meta) * 512 < meta.len(),
            "{sparse:?} not sparse"
        );
    }

    if tool("bsdtar") {
        let by_bsdtar = dir.path().join("bsdtar");
        fs::create_dir(&by_bsdtar).unwrap();
        run(Command::new("bsdtar")
            .env("LC_ALL", "C.UTF-8")
            .arg("-xpf")
            .arg(&file)
            .arg("-C")
            .arg(&by_bsdtar));
        for sparse in &info.sparse_files {
            let original = fs::read(src.join(sparse)).unwrap();
            assert!(
                fs::read(by_bsdtar.join(sparse)).unwrap() == original,
                "bsdtar: {sparse:?}"
            );
        }
    }
}

#[test]
fn restores_what_gnu_tar_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    generate_tree(&src, &TreeOptions::small()).unwrap();
    let file = dir.path().join("gnu.tar");
    let mut create = Command::new("tar");
    create.args([
        "-c",
        "--format=pax",
        "--xattrs",
        "--xattrs-include=*",
        "--acls",
    ]);
    create.args(["--sparse", "--sparse-version=1.0", "-f"]);
    run(create.arg(&file).arg("-C").arg(&src).arg("."));
    let target = dir.path().join("restored");
    let archive = fs::File::open(&file).unwrap();
    let stats = restore_tree(
        io::BufReader::new(archive),
        &target,
        &RestoreOptions::default(),
        &ArchiveProgress::default(),
    )
    .unwrap();
    if is_root() {
        assert!(stats.warnings.is_empty(), "{:#?}", stats.warnings);
    }
    assert_same_tree(&src, &target);
}

/// A member with raw name and link bytes, bypassing the tar crate's path checks.
fn raw_member(out: &mut Vec<u8>, kind: EntryType, name: &[u8], link: &[u8], data: &[u8]) {
    let mut header = Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(0o644);
    header.set_size(data.len() as u64);
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    header.set_cksum();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

/// An `x` header whose `path` record overrides the next member's name.
fn pax_path(out: &mut Vec<u8>, path: &[u8]) {
    let body = " path=".len() + path.len() + 1;
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut record = format!("{len} path=").into_bytes();
    record.extend_from_slice(path);
    record.push(b'\n');
    raw_member(out, EntryType::XHeader, b"pax", b"", &record);
}

#[test]
fn hostile_archives_never_write_outside_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("victim"), b"keep me").unwrap();
    let work = dir.path().join("work");
    fs::create_dir(&work).unwrap();
    let target = work.join("target");
    let outside_bytes = outside.as_os_str().as_encoded_bytes();

    let mut archive = Vec::new();
    raw_member(
        &mut archive,
        EntryType::Symlink,
        b"escape",
        outside_bytes,
        b"",
    );
    raw_member(&mut archive, EntryType::Regular, b"escape/pwned", b"", b"x");
    raw_member(&mut archive, EntryType::Directory, b"escape", b"", b"");
    raw_member(
        &mut archive,
        EntryType::Regular,
        b"escape/sub/pwned",
        b"",
        b"x",
    );
    raw_member(&mut archive, EntryType::Symlink, b"up", b"../..", b"");
    raw_member(&mut archive, EntryType::Regular, b"up/pwned", b"", b"x");
    raw_member(
        &mut archive,
        EntryType::Regular,
        b"../dotdot-pwned",
        b"",
        b"x",
    );
    raw_member(
        &mut archive,
        EntryType::Regular,
        b"ok/../../dotdot-pwned",
        b"",
        b"x",
    );
    let absolute = [outside_bytes, b"/abs-pwned"].concat();
    raw_member(&mut archive, EntryType::Regular, &absolute, b"", b"x");
    raw_member(
        &mut archive,
        EntryType::Link,
        b"hard-abs",
        &[outside_bytes, b"/victim"].concat(),
        b"",
    );
    raw_member(
        &mut archive,
        EntryType::Link,
        b"hard-via-symlink",
        b"escape/victim",
        b"",
    );
    raw_member(
        &mut archive,
        EntryType::Link,
        b"hard-dotdot",
        b"../outside/victim",
        b"",
    );
    pax_path(&mut archive, b"../pax-pwned");
    raw_member(
        &mut archive,
        EntryType::Regular,
        b"innocent-name",
        b"",
        b"x",
    );
    raw_member(&mut archive, EntryType::Regular, b"fine", b"", b"safe");
    archive.extend([0u8; 1024]);

    let result = restore_tree(
        &archive[..],
        &target,
        &RestoreOptions::default(),
        &ArchiveProgress::default(),
    );
    let stats = result.expect("unsafe members are skipped, not fatal");
    println!("warnings: {:#?}", stats.warnings);
    assert!(stats.warnings.len() >= 10, "{:#?}", stats.warnings);

    let mut outside_names: Vec<_> = fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    outside_names.sort();
    assert_eq!(outside_names, ["victim"]);
    assert_eq!(fs::read(outside.join("victim")).unwrap(), b"keep me");
    let mut work_names: Vec<_> = fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    work_names.sort();
    assert_eq!(work_names, ["target"]);
    assert!(!dir.path().join("dotdot-pwned").exists() && !dir.path().join("pax-pwned").exists());
    assert_eq!(fs::read(target.join("fine")).unwrap(), b"safe");
    for name in [
        "hard-abs",
        "hard-via-symlink",
        "hard-dotdot",
        "innocent-name",
    ] {
        assert!(
            fs::symlink_metadata(target.join(name)).is_err(),
            "{name} was created"
        );
    }
}

#[test]
fn truncated_or_corrupt_streams_fail() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a"), vec![7u8; 10_000]).unwrap();
    fs::write(src.join("b"), b"tail").unwrap();
    let archive = encode(&src);
    let restore = |bytes: &[u8], name: &str| {
        let target = dir.path().join(name);
        restore_tree(
            bytes,
            &target,
            &RestoreOptions::default(),
            &ArchiveProgress::default(),
        )
    };
    let end = archive.len() - 1024;
    for (i, cut) in [0, 100, 512, 1500, 3000, 6000, end - 512, end]
        .into_iter()
        .enumerate()
    {
        match restore(&archive[..cut], &format!("cut-{i}")) {
            Err(ArchiveError::Truncated { .. }) => {}
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    let mut corrupt = archive.clone();
    corrupt[1024 + 20] ^= 0x40; // inside the header of the root directory
    assert!(matches!(
        restore(&corrupt, "corrupt"),
        Err(ArchiveError::Corrupt { .. })
    ));
    assert!(restore(&archive, "whole").is_ok());
}

#[test]
fn target_must_be_empty() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("new"), b"x").unwrap();
    let target = dir.path().join("target");
    fs::create_dir(&target).unwrap();
    fs::write(target.join("existing"), b"y").unwrap();
    let res = restore_tree(
        &encode(&src)[..],
        &target,
        &RestoreOptions::default(),
        &ArchiveProgress::default(),
    );
    assert!(
        matches!(res, Err(ArchiveError::TargetNotEmpty { .. })),
        "{res:?}"
    );
    assert!(!target.join("new").exists());
}

/// Unmounts on drop, so a failing assertion does not leave a mount behind.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn does_not_cross_into_other_file_systems() {
    let dir = tempfile::tempdir().unwrap();
    let mount_point = dir.path().join("mnt");
    fs::create_dir(&mount_point).unwrap();
    fs::write(dir.path().join("before"), b"x").unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "archive-test"])
        .arg(&mount_point)
        .output();
    if !mounted.is_ok_and(|o| o.status.success()) {
        println!("skipping: cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)");
        return;
    }
    let _mount = Mount(mount_point.clone());
    fs::write(mount_point.join("inside"), b"on another file system").unwrap();
    let restored = tempfile::tempdir().unwrap();
    restore_tree(
        &encode(dir.path())[..],
        restored.path(),
        &RestoreOptions::default(),
        &ArchiveProgress::default(),
    )
    .unwrap();
    assert!(restored.path().join("before").is_file());
    assert!(
        restored.path().join("mnt").is_dir(),
        "the mount point itself is stored"
    );
    assert_eq!(
        fs::read_dir(restored.path().join("mnt")).unwrap().count(),
        0,
        "but not its content"
    );
}

/// Accepts `limit` bytes, then fails like a consumer that went away.
struct FailingWriter {
    limit: usize,
}

impl Write for FailingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.limit == 0 {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "consumer gone"));
        }
        let n = buf.len().min(self.limit);
        self.limit -= n;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn output_errors_abort_encoding() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("big"), vec![1u8; 3 << 20]).unwrap();
    for limit in [0, 1000, 2 << 20] {
        let res = encode_tree(
            dir.path(),
            FailingWriter { limit },
            &ArchiveProgress::default(),
        );
        assert!(
            matches!(res, Err(ArchiveError::Output { .. })),
            "limit {limit}: {res:?}"
        );
    }
    let file = dir.path().join("big");
    assert!(matches!(
        encode_tree(&file, io::sink(), &ArchiveProgress::default()),
        Err(ArchiveError::NotADirectory { .. })
    ));
}

const CHILD_ENV: &str = "ARCHIVE_ROUNDTRIP_CHILD";
const NOBODY: u32 = 65534;

/// The unprivileged half of `restore_as_non_root_warns_and_goes_on`: restores the archive
/// named in `CHILD_ENV`, prints the warnings, then encodes the result again.
#[test]
#[ignore = "run as an unprivileged child by restore_as_non_root_warns_and_goes_on"]
fn non_root_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (archive, target) = spec.split_once('\n').unwrap();
    let bytes = fs::read(archive).unwrap();
    let target = Path::new(target);
    let stats = restore_tree(
        &bytes[..],
        target,
        &RestoreOptions::default(),
        &ArchiveProgress::default(),
    )
    .unwrap();
    for warning in &stats.warnings {
        println!("WARNING {}", warning.replace('\n', "\\n"));
    }
    // Files of other owners are opened without O_NOATIME (EPERM fallback).
    let encoded = encode_tree(target, io::sink(), &ArchiveProgress::default()).unwrap();
    println!(
        "RE-ENCODED {} entries, {} errors",
        encoded.entries,
        encoded.errors.len()
    );
}

#[test]
fn restore_as_non_root_warns_and_goes_on() {
    if !is_root() {
        println!("skipping: needs root to run a restore as an unprivileged user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let src = dir.path().join("src");
    let info = generate_tree(&src, &TreeOptions::small()).unwrap();
    let archive = dir.path().join("tree.tar");
    fs::write(&archive, encode(&src)).unwrap();
    let work = dir.path().join("work");
    fs::create_dir(&work).unwrap();
    std::os::unix::fs::chown(&work, Some(NOBODY), Some(NOBODY)).unwrap();
    let target = work.join("target");

    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "non_root_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            CHILD_ENV,
            format!("{}\n{}", archive.display(), target.display()),
        )
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{stdout}");
    assert!(
        stdout.contains("WARNING ownership of owned/by-other not set: EPERM"),
        "{stdout}"
    );
    assert!(
        stdout.contains("WARNING special/null: skipped: create device: EPERM"),
        "{stdout}"
    );
    // Minus the device; the mode 0000 file cannot be read by its (unprivileged) owner.
    let re_encoded = format!("RE-ENCODED {} entries, 1 errors", info.entries - 1);
    assert!(stdout.contains(&re_encoded), "{stdout}");
    for file in [
        info.large_file.as_path(),
        &info.sparse_files[0],
        Path::new("acl/file"),
    ] {
        assert!(
            fs::read(src.join(file)).unwrap() == fs::read(target.join(file)).unwrap(),
            "{file:?}"
        );
    }
    let acl = xattr::get(target.join("acl/file"), "system.posix_acl_access").unwrap();
    assert_eq!(
        acl,
        xattr::get(src.join("acl/file"), "system.posix_acl_access").unwrap()
    );
    let mode = |p: &Path| fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
    for dir in ["modes/read-only-dir", "modes/sticky-dir", "."] {
        assert_eq!(mode(&target.join(dir)), mode(&src.join(dir)), "{dir}");
    }
}
