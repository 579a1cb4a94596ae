//! POSIX ACLs: conversion between the kernel's binary xattr form (`system.posix_acl_access`,
//! `system.posix_acl_default`) and the short text form stored in `SCHILY.acl.*` PAX records
//! (`"user::rw-,user:1000:r--,group::r--,mask::r--,other::r--"`, numeric ids).
//!
//! Pure: no IO, no user or group name lookups. Both directions validate: exactly one
//! `user::`, `group::` and `other::` entry, a `mask::` when named entries exist, no duplicate
//! ids. Text with user or group names (as GNU tar writes) needs a `NameToId` from the
//! caller, who may do the lookup, or star's numeric fourth field (`user:lisa:rwx:1001`).

use thiserror::Error;

/// Version field of the kernel's `posix_acl_xattr_header`.
const XATTR_VERSION: u32 = 2;
/// `e_id` of entries that have no qualifier.
const UNDEFINED_ID: u32 = u32::MAX;
const TAG_USER_OBJ: u16 = 0x01;
const TAG_USER: u16 = 0x02;
const TAG_GROUP_OBJ: u16 = 0x04;
const TAG_GROUP: u16 = 0x08;
const TAG_MASK: u16 = 0x10;
const TAG_OTHER: u16 = 0x20;

#[derive(Debug, Error, PartialEq, Eq)]
pub(crate) enum AclError {
    #[error("ACL xattr of {len} bytes is not a 4-byte header plus 8-byte entries")]
    BadLength { len: usize },
    #[error("ACL xattr version {0}, expected 2")]
    BadVersion(u32),
    #[error("ACL entry with unknown tag {0:#x}")]
    BadTag(u16),
    #[error("ACL entry with permission bits {0:#o} beyond rwx")]
    BadPerm(u16),
    #[error("ACL text entry {0:?} is malformed")]
    BadText(String),
    #[error("ACL is incomplete or ambiguous: {0}")]
    Invalid(&'static str),
}

/// Whether a named qualifier in ACL text is a user or a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Qualifier {
    User,
    Group,
}

/// Resolves a user or group name in ACL text to its id (`None`: unknown).
pub(crate) type NameToId = fn(Qualifier, &str) -> Option<u32>;

/// A `NameToId` that knows no names: only numeric qualifiers are accepted.
#[cfg(test)]
pub(crate) fn no_names(_: Qualifier, _: &str) -> Option<u32> {
    None
}

/// Who an ACL entry applies to. The derived order is the kernel's entry order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum AclTag {
    UserObj,
    User(u32),
    GroupObj,
    Group(u32),
    Mask,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AclEntry {
    pub(crate) tag: AclTag,
    /// rwx bits: 4 = read, 2 = write, 1 = execute.
    pub(crate) perm: u8,
}

/// A validated ACL, entries in kernel order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Acl {
    entries: Vec<AclEntry>,
}

impl Acl {
    /// Sorts and validates `entries`.
    pub(crate) fn new(mut entries: Vec<AclEntry>) -> Result<Self, AclError> {
        entries.sort_by_key(|e| e.tag);
        let count = |wanted: fn(&AclTag) -> bool| entries.iter().filter(|e| wanted(&e.tag)).count();
        if count(|t| *t == AclTag::UserObj) != 1
            || count(|t| *t == AclTag::GroupObj) != 1
            || count(|t| *t == AclTag::Other) != 1
        {
            return Err(AclError::Invalid(
                "needs exactly one user::, group:: and other::",
            ));
        }
        let named = count(|t| matches!(t, AclTag::User(_) | AclTag::Group(_)));
        let masks = count(|t| *t == AclTag::Mask);
        if masks > 1 || (named > 0 && masks == 0) {
            return Err(AclError::Invalid("named entries need exactly one mask::"));
        }
        if entries.windows(2).any(|w| w[0].tag == w[1].tag) {
            return Err(AclError::Invalid("duplicate entry"));
        }
        if let Some(e) = entries.iter().find(|e| e.perm > 7) {
            return Err(AclError::BadPerm(u16::from(e.perm)));
        }
        Ok(Acl { entries })
    }

    /// Decodes the kernel's binary form.
    pub(crate) fn from_xattr(data: &[u8]) -> Result<Self, AclError> {
        if data.len() < 4 || !(data.len() - 4).is_multiple_of(8) {
            return Err(AclError::BadLength { len: data.len() });
        }
        let version = u32::from_le_bytes(data[..4].try_into().expect("4 bytes"));
        if version != XATTR_VERSION {
            return Err(AclError::BadVersion(version));
        }
        let mut entries = Vec::with_capacity((data.len() - 4) / 8);
        for raw in data[4..].chunks_exact(8) {
            let tag = u16::from_le_bytes([raw[0], raw[1]]);
            let perm = u16::from_le_bytes([raw[2], raw[3]]);
            let id = u32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]);
            let tag = match tag {
                TAG_USER_OBJ => AclTag::UserObj,
                TAG_USER => AclTag::User(id),
                TAG_GROUP_OBJ => AclTag::GroupObj,
                TAG_GROUP => AclTag::Group(id),
                TAG_MASK => AclTag::Mask,
                TAG_OTHER => AclTag::Other,
                other => return Err(AclError::BadTag(other)),
            };
            if perm > 7 {
                return Err(AclError::BadPerm(perm));
            }
            entries.push(AclEntry {
                tag,
                perm: perm as u8,
            });
        }
        Acl::new(entries)
    }

    /// Encodes the kernel's binary form (entries in kernel order).
    pub(crate) fn to_xattr(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 8 * self.entries.len());
        out.extend_from_slice(&XATTR_VERSION.to_le_bytes());
        for entry in &self.entries {
            let (tag, id) = match entry.tag {
                AclTag::UserObj => (TAG_USER_OBJ, UNDEFINED_ID),
                AclTag::User(id) => (TAG_USER, id),
                AclTag::GroupObj => (TAG_GROUP_OBJ, UNDEFINED_ID),
                AclTag::Group(id) => (TAG_GROUP, id),
                AclTag::Mask => (TAG_MASK, UNDEFINED_ID),
                AclTag::Other => (TAG_OTHER, UNDEFINED_ID),
            };
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&u16::from(entry.perm).to_le_bytes());
            out.extend_from_slice(&id.to_le_bytes());
        }
        out
    }

    /// The short text form with numeric ids, entries separated by commas.
    pub(crate) fn to_text(&self) -> String {
        let parts: Vec<String> = self
            .entries
            .iter()
            .map(|e| {
                let (tag, qualifier) = match e.tag {
                    AclTag::UserObj => ("user", String::new()),
                    AclTag::User(id) => ("user", id.to_string()),
                    AclTag::GroupObj => ("group", String::new()),
                    AclTag::Group(id) => ("group", id.to_string()),
                    AclTag::Mask => ("mask", String::new()),
                    AclTag::Other => ("other", String::new()),
                };
                let bit = |mask: u8, c: char| if e.perm & mask != 0 { c } else { '-' };
                format!(
                    "{tag}:{qualifier}:{}{}{}",
                    bit(4, 'r'),
                    bit(2, 'w'),
                    bit(1, 'x')
                )
            })
            .collect();
        parts.join(",")
    }

    /// Parses the text form with numeric qualifiers only.
    #[cfg(test)]
    pub(crate) fn from_text(text: &str) -> Result<Self, AclError> {
        Acl::from_text_with_names(text, no_names)
    }

    /// Parses the text form: entries separated by `,` or newlines, long or one-letter tags,
    /// numeric qualifiers or names that `names` resolves, `#` comments ignored.
    pub(crate) fn from_text_with_names(text: &str, names: NameToId) -> Result<Self, AclError> {
        let mut entries = Vec::new();
        for raw in text.split([',', '\n']) {
            let item = raw.split('#').next().unwrap_or("").trim();
            if item.is_empty() {
                continue;
            }
            entries.push(parse_text_entry(item, names)?);
        }
        Acl::new(entries)
    }
}

fn parse_text_entry(item: &str, names: NameToId) -> Result<AclEntry, AclError> {
    let bad = || AclError::BadText(item.to_string());
    let fields: Vec<&str> = item.split(':').map(str::trim).collect();
    let (tag, qualifier, perm, numeric) = match fields.as_slice() {
        [tag, perm] => (*tag, "", *perm, None),
        [tag, qualifier, perm] => (*tag, *qualifier, *perm, None),
        [tag, qualifier, perm, numeric] => (*tag, *qualifier, *perm, Some(*numeric)),
        _ => return Err(bad()),
    };
    let kind = match tag {
        "group" | "g" => Qualifier::Group,
        _ => Qualifier::User,
    };
    let id = match (qualifier, numeric) {
        ("", _) => None,
        (_, Some(n)) if !n.is_empty() => Some(n.parse::<u32>().map_err(|_| bad())?),
        (q, _) => match q.parse::<u32>() {
            Ok(id) => Some(id),
            Err(_) => Some(names(kind, q).ok_or_else(bad)?),
        },
    };
    let tag = match (tag, id) {
        ("user" | "u", None) => AclTag::UserObj,
        ("user" | "u", Some(id)) => AclTag::User(id),
        ("group" | "g", None) => AclTag::GroupObj,
        ("group" | "g", Some(id)) => AclTag::Group(id),
        ("mask" | "m", None) => AclTag::Mask,
        ("other" | "o", None) => AclTag::Other,
        _ => return Err(bad()),
    };
    if perm.is_empty() || perm.len() > 3 {
        return Err(bad());
    }
    let mut bits = 0u8;
    for c in perm.chars() {
        let bit = match c {
            'r' => 4,
            'w' => 2,
            'x' => 1,
            '-' => 0,
            _ => return Err(bad()),
        };
        if bits & bit != 0 {
            return Err(bad());
        }
        bits |= bit;
    }
    Ok(AclEntry { tag, perm: bits })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SAMPLE: &str = "user::rw-,user:1000:r--,group::r--,mask::r--,other::r--";

    fn sample_xattr() -> Vec<u8> {
        let mut v = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in [
            (1u16, 6u16, u32::MAX),
            (2, 4, 1000),
            (4, 4, u32::MAX),
            (0x10, 4, u32::MAX),
            (0x20, 4, u32::MAX),
        ] {
            v.extend(tag.to_le_bytes());
            v.extend(perm.to_le_bytes());
            v.extend(id.to_le_bytes());
        }
        v
    }

    #[test]
    fn binary_and_text_convert_both_ways() {
        let acl = Acl::from_xattr(&sample_xattr()).unwrap();
        assert_eq!(acl.to_text(), SAMPLE);
        let back = Acl::from_text(SAMPLE).unwrap();
        assert_eq!(back.to_xattr(), sample_xattr());
    }

    #[test]
    fn text_accepts_short_tags_order_newlines_and_star_ids() {
        let acl = Acl::from_text("o::r\nm::r--\ng::r\nu:1000:r\nu::rw # effective\n").unwrap();
        assert_eq!(acl.to_text(), SAMPLE);
        let star = Acl::from_text("user::rw-,user:lisa:r--:1000,group::r--,mask::r--,other::r--");
        assert_eq!(star.unwrap().to_text(), SAMPLE);
    }

    #[test]
    fn names_are_resolved_by_the_caller() {
        fn names(kind: Qualifier, name: &str) -> Option<u32> {
            match (kind, name) {
                (Qualifier::User, "lisa") => Some(1000),
                (Qualifier::Group, "staff") => Some(50),
                _ => None,
            }
        }
        let text = "user::rw-\nuser:lisa:r--\ngroup::r--\ngroup:staff:r--\nmask::r--\nother::r--\n";
        let acl = Acl::from_text_with_names(text, names).unwrap();
        assert_eq!(
            acl.to_text(),
            "user::rw-,user:1000:r--,group::r--,group:50:r--,mask::r--,other::r--"
        );
        let unknown = "user::rw-,user:nobody-here:r--,group::r--,mask::r--,other::r--";
        assert!(Acl::from_text_with_names(unknown, names).is_err());
        assert!(
            Acl::from_text_with_names(
                "user::rw-,user:staff:r--,group::r--,mask::r,other::r",
                names
            )
            .is_err()
        );
    }

    #[test]
    fn rejects_bad_binary() {
        assert_eq!(
            Acl::from_xattr(&[2, 0, 0]),
            Err(AclError::BadLength { len: 3 })
        );
        let mut v1 = sample_xattr();
        v1[0] = 1;
        assert_eq!(Acl::from_xattr(&v1), Err(AclError::BadVersion(1)));
        let mut bad_tag = sample_xattr();
        bad_tag[4] = 0x40;
        assert_eq!(Acl::from_xattr(&bad_tag), Err(AclError::BadTag(0x40)));
        let mut bad_perm = sample_xattr();
        bad_perm[6] = 8;
        assert_eq!(Acl::from_xattr(&bad_perm), Err(AclError::BadPerm(8)));
        let header_only = 2u32.to_le_bytes();
        assert!(matches!(
            Acl::from_xattr(&header_only),
            Err(AclError::Invalid(_))
        ));
    }

    #[test]
    fn rejects_bad_text() {
        for text in [
            "user::rw-,group::r--",                                        // no other
            "user::rw-,user::r--,group::r--,other::r--",                   // two user::
            "user::rw-,user:5:r--,group::r--,other::r--",                  // no mask
            "user::rw-,user:5:r--,user:5:r--,group::r--,mask::r,other::r", // duplicate id
            "user::rwz,group::r--,other::r--",
            "user::rrw,group::r--,other::r--",
            "user:bob:rw-,group::r--,other::r--,user::r,mask::r",
            "mask:1:r--,user::r,group::r,other::r",
            "bogus::r--",
            "user",
        ] {
            assert!(Acl::from_text(text).is_err(), "{text}");
        }
    }

    fn arb_acl() -> impl Strategy<Value = Acl> {
        (
            proptest::collection::btree_map(any::<u32>(), 0u8..8, 0..5),
            proptest::collection::btree_map(any::<u32>(), 0u8..8, 0..5),
            proptest::array::uniform4(0u8..8),
        )
            .prop_map(|(users, groups, [u, g, m, o])| {
                let mut entries = vec![
                    AclEntry {
                        tag: AclTag::UserObj,
                        perm: u,
                    },
                    AclEntry {
                        tag: AclTag::GroupObj,
                        perm: g,
                    },
                    AclEntry {
                        tag: AclTag::Other,
                        perm: o,
                    },
                ];
                entries.extend(users.iter().map(|(&id, &perm)| AclEntry {
                    tag: AclTag::User(id),
                    perm,
                }));
                entries.extend(groups.iter().map(|(&id, &perm)| AclEntry {
                    tag: AclTag::Group(id),
                    perm,
                }));
                if !users.is_empty() || !groups.is_empty() {
                    entries.push(AclEntry {
                        tag: AclTag::Mask,
                        perm: m,
                    });
                }
                Acl::new(entries).unwrap()
            })
    }

    proptest! {
        #[test]
        fn round_trips(acl in arb_acl()) {
            prop_assert_eq!(Acl::from_xattr(&acl.to_xattr()).unwrap(), acl.clone());
            prop_assert_eq!(Acl::from_text(&acl.to_text()).unwrap(), acl);
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..100), text in ".{0,60}") {
            let _ = Acl::from_xattr(&data);
            let _ = Acl::from_text(&text);
        }
    }
}
