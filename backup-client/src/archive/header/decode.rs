//! Reading a member header back into an `Entry`: checksum verification, numeric ustar
//! fields (octal or GNU base-256), and the PAX records and GNU long names that override
//! them. Unknown PAX records are ignored; of the GNU sparse formats only 1.0 is accepted.
//!
//! Pure like its parent: the stream reader hands it blocks and collected extensions.

use tar::{EntryType, Header};

use super::super::acl::{Acl, AclError, NameToId};
use super::super::entry::{Entry, EntryKind, EntryMeta, Timestamp};
use super::super::pax;
use super::{BLOCK, HeaderError, XATTR_PREFIX};

/// Checks the header checksum (unsigned sum, or the signed sum some old writers used).
pub(crate) fn verify_checksum(block: &[u8; BLOCK]) -> Result<(), HeaderError> {
    let stored = Header::from_byte_slice(block)
        .cksum()
        .map_err(|_| HeaderError::Checksum)?;
    let field = 148..156;
    let (mut unsigned, mut signed) = (0u32, 0i32);
    for (i, &b) in block.iter().enumerate() {
        let b = if field.contains(&i) { b' ' } else { b };
        unsigned += u32::from(b);
        signed += i32::from(b as i8);
    }
    if stored == unsigned || i64::from(stored) == i64::from(signed) {
        Ok(())
    } else {
        Err(HeaderError::Checksum)
    }
}

/// What precedes a member: PAX records of its `x` headers and GNU `L`/`K` long names.
#[derive(Debug, Default)]
pub(crate) struct Extensions {
    pub(crate) records: Vec<pax::Record>,
    pub(crate) long_name: Option<Vec<u8>>,
    pub(crate) long_link: Option<Vec<u8>>,
}

/// A member header read back: the entry (a sparse file's map is still in the data, so
/// `sparse` is `None` and `is_sparse` is set), how many data bytes follow, and problems that
/// do not stop the restore (an ACL that cannot be parsed).
#[derive(Debug)]
pub(crate) struct DecodedHeader {
    pub(crate) entry: Entry,
    pub(crate) stored_size: u64,
    pub(crate) is_sparse: bool,
    pub(crate) problems: Vec<String>,
}

/// Decodes the member header `block` with the extensions that preceded it; `names`
/// resolves user and group names in ACL text.
pub(crate) fn decode_header(
    block: &[u8; BLOCK],
    ext: &Extensions,
    names: NameToId,
) -> Result<DecodedHeader, HeaderError> {
    let header = Header::from_byte_slice(block);
    let old = header.as_old();
    let mut path = ext
        .long_name
        .clone()
        .unwrap_or_else(|| header.path_bytes().into_owned());
    let mut link = ext
        .long_link
        .clone()
        .or_else(|| header.link_name_bytes().map(|l| l.into_owned()));
    let mut stored_size = numeric(&old.size, "size")?;
    let mut meta = EntryMeta {
        mode: u32::try_from(numeric(&old.mode, "mode")? & 0o7777).expect("masked"),
        uid: numeric(&old.uid, "uid")?,
        gid: numeric(&old.gid, "gid")?,
        uname: header
            .username_bytes()
            .filter(|u| !u.is_empty())
            .map(<[u8]>::to_vec),
        gname: header
            .groupname_bytes()
            .filter(|g| !g.is_empty())
            .map(<[u8]>::to_vec),
        mtime: Timestamp {
            sec: i64::try_from(numeric(&old.mtime, "mtime")?).unwrap_or(i64::MAX),
            nsec: 0,
        },
        ..EntryMeta::default()
    };
    let (mut major, mut minor) = match header.as_ustar() {
        Some(ustar) => (
            numeric(&ustar.dev_major, "devmajor")?,
            numeric(&ustar.dev_minor, "devminor")?,
        ),
        None => match header.as_gnu() {
            Some(gnu) => (
                numeric(&gnu.dev_major, "devmajor")?,
                numeric(&gnu.dev_minor, "devminor")?,
            ),
            None => (0, 0),
        },
    };
    let mut sparse = SparseRecords::default();
    let mut problems = Vec::new();
    for (key, value) in &ext.records {
        match key.as_slice() {
            b"path" => path = value.clone(),
            b"linkpath" => link = Some(value.clone()),
            b"size" => stored_size = pax::parse_u64(key, value)?,
            b"uid" => meta.uid = pax::parse_u64(key, value)?,
            b"gid" => meta.gid = pax::parse_u64(key, value)?,
            b"uname" => meta.uname = Some(value.clone()),
            b"gname" => meta.gname = Some(value.clone()),
            b"mtime" => {
                let (sec, nsec) = pax::parse_time(key, value)?;
                meta.mtime = Timestamp { sec, nsec };
            }
            b"SCHILY.devmajor" => major = pax::parse_u64(key, value)?,
            b"SCHILY.devminor" => minor = pax::parse_u64(key, value)?,
            b"SCHILY.acl.access" => {
                meta.acl_access = parse_acl(value, "access", names, &mut problems)
            }
            b"SCHILY.acl.default" => {
                meta.acl_default = parse_acl(value, "default", names, &mut problems)
            }
            _ if key.starts_with(XATTR_PREFIX) => {
                let name = pax::unescape_xattr_name(&key[XATTR_PREFIX.len()..]);
                meta.xattrs.retain(|(n, _)| *n != name);
                meta.xattrs.push((name, value.clone()));
            }
            _ if key.starts_with(b"GNU.sparse.") => sparse.record(key, value)?,
            _ => {}
        }
    }
    meta.xattrs.sort();
    if let Some(name) = sparse.name.clone() {
        path = name;
    }
    let dev =
        |n: u64, field: &'static str| u32::try_from(n).map_err(|_| HeaderError::Field { field });
    let kind = match header.entry_type() {
        EntryType::Regular | EntryType::Continuous if path.ends_with(b"/") => EntryKind::Directory,
        EntryType::Regular | EntryType::Continuous => EntryKind::File {
            size: sparse.real_size(stored_size)?,
            sparse: None,
        },
        EntryType::Directory => EntryKind::Directory,
        EntryType::Symlink => EntryKind::Symlink {
            target: link.unwrap_or_default(),
        },
        EntryType::Link => EntryKind::HardLink {
            target: link.unwrap_or_default(),
        },
        EntryType::Fifo => EntryKind::Fifo,
        EntryType::Char => EntryKind::CharDevice {
            major: dev(major, "devmajor")?,
            minor: dev(minor, "devminor")?,
        },
        EntryType::Block => EntryKind::BlockDevice {
            major: dev(major, "devmajor")?,
            minor: dev(minor, "devminor")?,
        },
        other => EntryKind::Unsupported(other.as_byte()),
    };
    let is_sparse = sparse.major.is_some() && matches!(kind, EntryKind::File { .. });
    if kind == EntryKind::Directory {
        while path.len() > 1 && path.ends_with(b"/") {
            path.pop();
        }
    }
    Ok(DecodedHeader {
        entry: Entry { path, kind, meta },
        stored_size,
        is_sparse,
        problems,
    })
}

/// A numeric header field: octal text (NUL- or space-terminated, empty means 0) or the
/// GNU base-256 form (high bit set; negative values are refused).
fn numeric(raw: &[u8], field: &'static str) -> Result<u64, HeaderError> {
    let bad = HeaderError::Field { field };
    if raw[0] & 0x80 != 0 {
        if raw[0] & 0x40 != 0 {
            return Err(bad);
        }
        let mut bytes = raw.to_vec();
        bytes[0] &= 0x7f;
        let (head, tail) = bytes.split_at(bytes.len().saturating_sub(8));
        if head.iter().any(|&b| b != 0) {
            return Err(bad);
        }
        return Ok(tail.iter().fold(0, |acc, &b| (acc << 8) | u64::from(b)));
    }
    let text = raw.split(|&b| b == 0).next().unwrap_or_default();
    let text = std::str::from_utf8(text)
        .map_err(|_| HeaderError::Field { field })?
        .trim();
    if text.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(text, 8).map_err(|_| bad)
}

fn parse_acl(
    value: &[u8],
    which: &str,
    names: NameToId,
    problems: &mut Vec<String>,
) -> Option<Acl> {
    let parsed = std::str::from_utf8(value)
        .map_err(|_| AclError::BadText(String::from_utf8_lossy(value).into_owned()))
        .and_then(|text| Acl::from_text_with_names(text, names));
    parsed
        .map_err(|e| problems.push(format!("{which} ACL not restored: {e}")))
        .ok()
}

/// The `GNU.sparse.*` records of one member; only format 1.0 is supported.
#[derive(Debug, Default)]
struct SparseRecords {
    major: Option<u64>,
    minor: Option<u64>,
    name: Option<Vec<u8>>,
    real_size: Option<u64>,
}

impl SparseRecords {
    fn record(&mut self, key: &[u8], value: &[u8]) -> Result<(), HeaderError> {
        match key {
            b"GNU.sparse.major" => self.major = Some(pax::parse_u64(key, value)?),
            b"GNU.sparse.minor" => self.minor = Some(pax::parse_u64(key, value)?),
            b"GNU.sparse.name" => self.name = Some(value.to_vec()),
            b"GNU.sparse.realsize" | b"GNU.sparse.size" => {
                self.real_size = Some(pax::parse_u64(key, value)?);
            }
            other => {
                let key = String::from_utf8_lossy(other).into_owned();
                return Err(HeaderError::UnsupportedSparse(format!("0.x ({key})")));
            }
        }
        Ok(())
    }

    /// The real size of a regular member whose stored size is `stored`.
    fn real_size(&self, stored: u64) -> Result<u64, HeaderError> {
        match (self.major, self.minor) {
            (None, None) => Ok(stored),
            (Some(1), Some(0)) => self
                .real_size
                .ok_or_else(|| HeaderError::UnsupportedSparse("1.0 without realsize".into())),
            (major, minor) => Err(HeaderError::UnsupportedSparse(format!(
                "{major:?}.{minor:?}"
            ))),
        }
    }
}
