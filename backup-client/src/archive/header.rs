//! Tar member headers for an `Entry`: the PAX extended header (`x`) plus the ustar header
//! (and, for sparse files, the GNU 1.0 sparse map) on the way out; the ustar block plus
//! collected PAX records and GNU long names back to an `Entry` on the way in.
//!
//! Pure: builds and reads 512-byte blocks in memory; the stream reader (`reader`) and the
//! encoder do the IO. Output is a deterministic function of the entry (fixed names and times
//! in the `x` header, records in a fixed order), which is what makes unchanged trees encode
//! to identical bytes. Mode and device numbers travel in the ustar fields only (they always
//! fit; GNU tar warns about a `mode` PAX keyword), everything else also in PAX records.

use tar::{EntryType, Header};
use thiserror::Error;

use super::entry::{Entry, EntryKind};
use super::pax::{self, PaxError};
use super::sparse::SparseMapError;

mod decode;

pub(crate) use decode::{Extensions, decode_header, verify_checksum};

pub(crate) const BLOCK: usize = 512;
/// Name of every `x` header: fixed so that output does not depend on the entry's name.
const PAX_HEADER_NAME: &[u8] = b"././@PaxHeader";
const XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";
/// Namespace of this project's own PAX keywords (the split layout's payload references).
/// The decoder leaves them to the caller: see `reader::Member::private`.
pub(crate) const PRIVATE_PREFIX: &[u8] = b"BACKUPRS.";
/// Largest value of the 8-byte octal ustar fields (7 digits + NUL).
const OCTAL7_MAX: u64 = 0o7777777;

#[derive(Debug, Error)]
pub enum HeaderError {
    #[error("header checksum mismatch")]
    Checksum,
    #[error("header field {field} is malformed")]
    Field { field: &'static str },
    #[error(transparent)]
    Pax(#[from] PaxError),
    #[error(transparent)]
    SparseMap(#[from] SparseMapError),
    #[error("sparse map runs past the member's data")]
    SparseMapBeyondData,
    #[error("unsupported GNU sparse format {0}")]
    UnsupportedSparse(String),
}

/// Header blocks for `entry`, ready to be followed by its data (`Entry::data_len` bytes)
/// and zero padding to the next block.
pub(crate) fn encode_header(entry: &Entry) -> Vec<u8> {
    encode_header_with(entry, &[])
}

/// `encode_header` with `extra` PAX records (keys under [`PRIVATE_PREFIX`]) after the
/// standard ones; with none, the bytes are exactly `encode_header`'s.
pub(crate) fn encode_header_with(entry: &Entry, extra: &[pax::Record]) -> Vec<u8> {
    let meta = &entry.meta;
    let sparse_map = match &entry.kind {
        EntryKind::File {
            sparse: Some(map), ..
        } => Some(map.encode()),
        _ => None,
    };
    let stored = entry.data_len() + sparse_map.as_ref().map_or(0, |m| m.len() as u64);
    let name = match (&sparse_map, &entry.kind) {
        (Some(_), _) => sparse_member_name(&entry.path),
        // Directory names end in '/' in tar streams (the root is "./").
        (None, EntryKind::Directory) if !entry.path.ends_with(b"/") => {
            [&entry.path[..], b"/"].concat()
        }
        (None, _) => entry.path.clone(),
    };
    let link = match &entry.kind {
        EntryKind::Symlink { target } | EntryKind::HardLink { target } => Some(target.as_slice()),
        _ => None,
    };

    // Names that are not UTF-8 go in the ustar fields where they fit: GNU tar does not know
    // `hdrcharset`, and without it bsdtar fails on them. Only longer ones need PAX + BINARY.
    let in_pax = |value: &[u8], field_len: usize| is_utf8(value) || value.len() > field_len;
    let path_in_pax = in_pax(&name, 100);
    let link_in_pax = link.is_some_and(|l| in_pax(l, 100));
    let uname = meta.uname.as_deref().filter(|u| in_pax(u, 32));
    let gname = meta.gname.as_deref().filter(|g| in_pax(g, 32));
    let sparse_name = matches!(
        entry.kind,
        EntryKind::File {
            sparse: Some(_),
            ..
        }
    )
    .then_some(&entry.path);
    let pax_texts = [
        path_in_pax.then_some(&name[..]),
        link.filter(|_| link_in_pax),
        uname,
        gname,
        sparse_name.map(|n| &n[..]),
    ];
    let mut records = Vec::new();
    if pax_texts.iter().flatten().any(|v| !is_utf8(v)) {
        pax::encode_record(&mut records, b"hdrcharset", b"BINARY");
    }
    if path_in_pax {
        pax::encode_record(&mut records, b"path", &name);
    }
    if let Some(link) = link.filter(|_| link_in_pax) {
        pax::encode_record(&mut records, b"linkpath", link);
    }
    let decimal = |records: &mut Vec<u8>, key: &[u8], n: u64| {
        pax::encode_record(records, key, n.to_string().as_bytes());
    };
    decimal(&mut records, b"size", stored);
    decimal(&mut records, b"uid", meta.uid);
    decimal(&mut records, b"gid", meta.gid);
    if let Some(uname) = uname {
        pax::encode_record(&mut records, b"uname", uname);
    }
    if let Some(gname) = gname {
        pax::encode_record(&mut records, b"gname", gname);
    }
    let mtime = pax::format_time(meta.mtime.sec, meta.mtime.nsec);
    pax::encode_record(&mut records, b"mtime", mtime.as_bytes());
    let device = match entry.kind {
        EntryKind::CharDevice { major, minor } | EntryKind::BlockDevice { major, minor } => {
            Some((u64::from(major), u64::from(minor)))
        }
        _ => None,
    };
    if let Some((major, minor)) = device.filter(|&(a, b)| a > OCTAL7_MAX || b > OCTAL7_MAX) {
        decimal(&mut records, b"SCHILY.devmajor", major);
        decimal(&mut records, b"SCHILY.devminor", minor);
    }
    if let EntryKind::File {
        size,
        sparse: Some(_),
    } = &entry.kind
    {
        decimal(&mut records, b"GNU.sparse.major", 1);
        decimal(&mut records, b"GNU.sparse.minor", 0);
        pax::encode_record(&mut records, b"GNU.sparse.name", &entry.path);
        decimal(&mut records, b"GNU.sparse.realsize", *size);
    }
    for (key, acl) in [
        (&b"SCHILY.acl.access"[..], &meta.acl_access),
        (b"SCHILY.acl.default", &meta.acl_default),
    ] {
        if let Some(acl) = acl {
            pax::encode_record(&mut records, key, acl.to_text().as_bytes());
        }
    }
    for (name, value) in &meta.xattrs {
        let mut key = XATTR_PREFIX.to_vec();
        key.extend(pax::escape_xattr_name(name));
        pax::encode_record(&mut records, &key, value);
    }
    for (key, value) in extra {
        debug_assert!(key.starts_with(PRIVATE_PREFIX));
        pax::encode_record(&mut records, key, value);
    }

    let mut pax_header = Header::new_ustar();
    set_bytes(
        &mut pax_header.as_ustar_mut().expect("ustar").name,
        PAX_HEADER_NAME,
    );
    pax_header.set_mode(0o644);
    pax_header.set_uid(0);
    pax_header.set_gid(0);
    pax_header.set_size(records.len() as u64);
    pax_header.set_entry_type(EntryType::XHeader);
    pax_header.set_cksum();

    let mut header = Header::new_ustar();
    header.set_entry_type(type_flag(&entry.kind));
    header.set_mode(meta.mode & 0o7777);
    header.set_uid(meta.uid);
    header.set_gid(meta.gid);
    header.set_size(stored);
    header.set_mtime(u64::try_from(meta.mtime.sec).unwrap_or(0));
    let ustar = header.as_ustar_mut().expect("ustar");
    set_bytes(&mut ustar.name, &name);
    if let Some(link) = link {
        set_bytes(&mut ustar.linkname, link);
    }
    for (field, value) in [
        (&mut ustar.uname, &meta.uname),
        (&mut ustar.gname, &meta.gname),
    ] {
        if let Some(value) = value.as_deref().filter(|v| v.len() <= field.len()) {
            set_bytes(field, value);
        }
    }
    let (major, minor) = device.unwrap_or((0, 0));
    ustar.set_device_major(u32::try_from(major.min(OCTAL7_MAX)).expect("fits"));
    ustar.set_device_minor(u32::try_from(minor.min(OCTAL7_MAX)).expect("fits"));
    header.set_cksum();

    let mut out = Vec::with_capacity(3 * BLOCK + records.len());
    out.extend_from_slice(pax_header.as_bytes());
    out.extend_from_slice(&records);
    out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
    out.extend_from_slice(header.as_bytes());
    out.extend(sparse_map.unwrap_or_default());
    out
}

fn is_utf8(value: &[u8]) -> bool {
    std::str::from_utf8(value).is_ok()
}

/// `dir/GNUSparseFile.0/name`, the name GNU tar gives sparse members so that readers that
/// do not know the format extract the raw member under a different name.
fn sparse_member_name(path: &[u8]) -> Vec<u8> {
    let (dir, base) = match path.iter().rposition(|&b| b == b'/') {
        Some(slash) => (&path[..=slash], &path[slash + 1..]),
        None => (&b""[..], path),
    };
    [dir, b"GNUSparseFile.0/", base].concat()
}

/// Copies as much of `value` as fits; the PAX record carries the full value.
fn set_bytes(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

fn type_flag(kind: &EntryKind) -> EntryType {
    match kind {
        EntryKind::Directory => EntryType::Directory,
        EntryKind::File { .. } => EntryType::Regular,
        EntryKind::Symlink { .. } => EntryType::Symlink,
        EntryKind::HardLink { .. } => EntryType::Link,
        EntryKind::Fifo => EntryType::Fifo,
        EntryKind::CharDevice { .. } => EntryType::Char,
        EntryKind::BlockDevice { .. } => EntryType::Block,
        EntryKind::Unsupported(flag) => EntryType::new(*flag),
    }
}

#[cfg(test)]
#[path = "header/tests.rs"]
mod tests;
