//! Unit tests of the header codec: every entry kind round-trips, the layout is what GNU tar
//! and bsdtar expect, and damaged or foreign headers are handled.

use super::decode::DecodedHeader;
use super::*;
use crate::archive::acl::Acl;
use crate::archive::entry::{EntryMeta, Timestamp};
use crate::archive::sparse::{SparseMap, SparseSegment, parse_map};

fn entry(path: &[u8], kind: EntryKind) -> Entry {
    Entry {
        path: path.to_vec(),
        kind,
        meta: EntryMeta {
            mode: 0o4755,
            uid: 1000,
            gid: 3_000_000,
            uname: Some(b"alice".to_vec()),
            gname: Some(b"a-group-name-longer-than-32-bytes-x".to_vec()),
            mtime: Timestamp {
                sec: 1_700_000_000,
                nsec: 123_456_789,
            },
            xattrs: vec![(b"user.a=b".to_vec(), b"\0bin\nary".to_vec())],
            acl_access: Some(Acl::from_text("u::rw,u:1000:r,g::r,m::r,o::-").unwrap()),
            acl_default: None,
        },
    }
}

/// Splits encoder output into (PAX records, ustar block, rest) and checks both checksums.
fn split(bytes: &[u8]) -> (Vec<pax::Record>, [u8; BLOCK], Vec<u8>) {
    let x: [u8; BLOCK] = bytes[..BLOCK].try_into().unwrap();
    verify_checksum(&x).unwrap();
    let xh = Header::from_byte_slice(&x);
    assert_eq!(xh.entry_type(), EntryType::XHeader);
    let len = xh.entry_size().unwrap() as usize;
    let records = pax::parse_records(&bytes[BLOCK..BLOCK + len]).unwrap();
    let start = BLOCK + len.div_ceil(BLOCK) * BLOCK;
    let block: [u8; BLOCK] = bytes[start..start + BLOCK].try_into().unwrap();
    verify_checksum(&block).unwrap();
    (records, block, bytes[start + BLOCK..].to_vec())
}

fn decode(block: &[u8; BLOCK], ext: &Extensions) -> Result<DecodedHeader, HeaderError> {
    decode_header(block, ext, crate::archive::acl::no_names)
}

fn round_trip(e: &Entry) -> DecodedHeader {
    let bytes = encode_header(e);
    assert_eq!(bytes.len() % BLOCK, 0);
    let (records, block, _) = split(&bytes);
    let ext = Extensions {
        records,
        ..Extensions::default()
    };
    decode(&block, &ext).unwrap()
}

#[test]
fn every_kind_round_trips() {
    let long = vec![b'n'; 300];
    for kind in [
        EntryKind::Directory,
        EntryKind::File {
            size: 12345,
            sparse: None,
        },
        EntryKind::Symlink {
            target: long.clone(),
        },
        EntryKind::HardLink {
            target: b"first/name".to_vec(),
        },
        EntryKind::Fifo,
        EntryKind::CharDevice { major: 1, minor: 3 },
        EntryKind::BlockDevice {
            major: 4095,
            minor: 0xfffff,
        },
    ] {
        let e = entry(&[&long[..], b"/-x \n\xc3\xbc"].concat(), kind);
        let decoded = round_trip(&e);
        assert_eq!(decoded.entry, e);
        assert_eq!(decoded.stored_size, e.data_len());
        assert!(!decoded.is_sparse);
        assert!(decoded.problems.is_empty());
    }
}

#[test]
fn records_are_standard_and_ordered() {
    let mut e = entry(
        b"dir/file",
        EntryKind::File {
            size: 5,
            sparse: None,
        },
    );
    e.meta.xattrs.clear();
    e.meta.acl_access = None;
    let (records, block, _) = split(&encode_header(&e));
    let keys: Vec<&[u8]> = records.iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(
        keys,
        [
            &b"path"[..],
            b"size",
            b"uid",
            b"gid",
            b"uname",
            b"gname",
            b"mtime"
        ]
    );
    assert_eq!(records[6].1, b"1700000000.123456789");
    let h = Header::from_byte_slice(&block);
    assert_eq!(&*h.path_bytes(), b"dir/file");
    assert_eq!(h.mode().unwrap(), 0o4755);
    assert_eq!(h.username_bytes(), Some(&b"alice"[..]));
    assert_eq!(h.groupname_bytes(), Some(&b""[..]));
}

#[test]
fn non_utf8_names_use_ustar_fields_or_binary_pax() {
    let short = entry(
        b"bad\xff",
        EntryKind::Symlink {
            target: b"t\xfe".to_vec(),
        },
    );
    let (records, block, _) = split(&encode_header(&short));
    assert!(
        records
            .iter()
            .all(|(k, _)| k != b"path" && k != b"linkpath" && k != b"hdrcharset")
    );
    assert_eq!(&*Header::from_byte_slice(&block).path_bytes(), b"bad\xff");
    assert_eq!(round_trip(&short).entry, short);

    let long = entry(&[&[b'l'; 120][..], b"\xff"].concat(), EntryKind::Fifo);
    let (records, _, _) = split(&encode_header(&long));
    assert_eq!(records[0], (b"hdrcharset".to_vec(), b"BINARY".to_vec()));
    assert_eq!(records[1], (b"path".to_vec(), long.path.clone()));
    assert_eq!(round_trip(&long).entry, long);
}

#[test]
fn sparse_files_use_gnu_1_0() {
    let map = SparseMap::new(
        vec![SparseSegment {
            offset: 8192,
            len: 4096,
        }],
        1 << 20,
    );
    let e = entry(
        b"d/sparse",
        EntryKind::File {
            size: 1 << 20,
            sparse: Some(map.clone()),
        },
    );
    let bytes = encode_header(&e);
    let (records, block, rest) = split(&bytes);
    assert_eq!(
        &*Header::from_byte_slice(&block).path_bytes(),
        b"d/GNUSparseFile.0/sparse"
    );
    assert!(records.contains(&(b"GNU.sparse.realsize".to_vec(), b"1048576".to_vec())));
    assert!(records.contains(&(b"size".to_vec(), b"4608".to_vec())));
    let (segments, used) = parse_map(&rest).unwrap().unwrap();
    assert_eq!((segments, used), (map.segments.clone(), 512));
    let decoded = decode(
        &block,
        &Extensions {
            records,
            ..Extensions::default()
        },
    )
    .unwrap();
    assert!(decoded.is_sparse);
    assert_eq!(decoded.stored_size, 4608);
    assert_eq!(decoded.entry.path, b"d/sparse");
    assert_eq!(
        decoded.entry.kind,
        EntryKind::File {
            size: 1 << 20,
            sparse: None
        }
    );
}

#[test]
fn times_before_the_epoch_survive() {
    let mut e = entry(b"old", EntryKind::Directory);
    e.meta.mtime = Timestamp {
        sec: -2,
        nsec: 500_000_000,
    };
    assert_eq!(round_trip(&e).entry.meta.mtime, e.meta.mtime);
}

#[test]
fn corrupt_checksum_is_detected() {
    let bytes = encode_header(&entry(b"f", EntryKind::Fifo));
    let mut block: [u8; BLOCK] = bytes[bytes.len() - BLOCK..].try_into().unwrap();
    block[0] ^= 1;
    assert!(matches!(
        verify_checksum(&block),
        Err(HeaderError::Checksum)
    ));
}

#[test]
fn reads_gnu_long_names_and_plain_ustar() {
    let mut h = Header::new_ustar();
    h.set_entry_type(EntryType::Regular);
    h.set_path("short/name").unwrap();
    h.set_size(7);
    h.set_mode(0o100644);
    h.set_cksum();
    let block: [u8; BLOCK] = *h.as_bytes();
    let plain = decode(&block, &Extensions::default()).unwrap();
    assert_eq!(plain.entry.path, b"short/name");
    assert_eq!(plain.entry.meta.mode, 0o644);
    assert_eq!(
        plain.entry.kind,
        EntryKind::File {
            size: 7,
            sparse: None
        }
    );
    let ext = Extensions {
        long_name: Some(b"a/very/long/name".to_vec()),
        ..Extensions::default()
    };
    assert_eq!(
        decode(&block, &ext).unwrap().entry.path,
        b"a/very/long/name"
    );
}

#[test]
fn unparsable_acl_is_a_problem_not_an_error() {
    let mut h = Header::new_ustar();
    h.set_entry_type(EntryType::Directory);
    h.set_cksum();
    let block: [u8; BLOCK] = *h.as_bytes();
    let records = vec![(b"SCHILY.acl.access".to_vec(), b"user:bob:rwx".to_vec())];
    let decoded = decode(
        &block,
        &Extensions {
            records,
            ..Extensions::default()
        },
    )
    .unwrap();
    assert_eq!(decoded.problems.len(), 1);
    assert!(decoded.entry.meta.acl_access.is_none());
}

#[test]
fn old_sparse_formats_are_refused() {
    let block: [u8; BLOCK] = *Header::new_ustar().as_bytes();
    let records = vec![(b"GNU.sparse.map".to_vec(), b"0,1".to_vec())];
    let res = decode(
        &block,
        &Extensions {
            records,
            ..Extensions::default()
        },
    );
    assert!(matches!(res, Err(HeaderError::UnsupportedSparse(_))));
}
