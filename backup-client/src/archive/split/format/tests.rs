//! Unit tests of the split layout's codecs: the payload header and its checks, and the
//! payload records of metadata members in both directions.

use super::*;
use crate::archive::entry::EntryMeta;

fn file(path: &str, size: u64, sparse: Option<SparseMap>) -> Entry {
    Entry {
        path: path.as_bytes().to_vec(),
        kind: EntryKind::File { size, sparse },
        meta: EntryMeta {
            mode: 0o640,
            ..EntryMeta::default()
        },
    }
}

fn sparse_map() -> SparseMap {
    SparseMap::new(
        vec![
            SparseSegment {
                offset: 4096,
                len: 10,
            },
            SparseSegment {
                offset: 1 << 20,
                len: 4096,
            },
        ],
        8 << 20,
    )
}

#[test]
fn magic_derives_from_its_label() {
    let digest = Sha256::digest(PAYLOAD_MAGIC_LABEL.as_bytes());
    assert_eq!(PAYLOAD_MAGIC[..], digest[..8]);
}

#[test]
fn payload_header_layout_and_checks() {
    let entry = file("dir/f", 300, None);
    let header = PayloadHeader::for_entry(&entry);
    let bytes = header.encode();
    assert_eq!(bytes[..8], PAYLOAD_MAGIC);
    assert_eq!(bytes[8..16], 300u64.to_le_bytes());
    assert_eq!(bytes[16..], path_tag(b"dir/f"));
    PayloadHeader::check(&bytes, 7, &header).unwrap();

    let mut bad = bytes;
    bad[0] ^= 1;
    assert!(matches!(
        PayloadHeader::check(&bad, 7, &header),
        Err(SplitError::BadMagic { offset: 7 })
    ));
    let other = PayloadHeader::for_entry(&file("dir/g", 300, None));
    assert!(matches!(
        PayloadHeader::check(&bytes, 7, &other),
        Err(SplitError::WrongEntry { offset: 7 })
    ));
    let longer = PayloadHeader::for_entry(&file("dir/f", 301, None));
    assert!(matches!(
        PayloadHeader::check(&bytes, 7, &longer),
        Err(SplitError::LengthMismatch {
            offset: 7,
            found: 300,
            expected: 301
        })
    ));
}

#[test]
fn file_records_resolve_to_the_original_entry() {
    for entry in [
        file("a", 0, None),
        file("b/c", 12345, None),
        file("s", 8 << 20, Some(sparse_map())),
        file("hole", 5000, Some(SparseMap::new(Vec::new(), 5000))),
    ] {
        let records = file_records(&entry, 4242, None);
        let shown = metadata_entry(&entry);
        assert_eq!(
            shown.kind,
            EntryKind::File {
                size: 0,
                sparse: None
            }
        );
        let (resolved, payload) = resolve_entry(shown, &records).unwrap();
        assert_eq!(resolved, entry);
        let payload = payload.unwrap();
        assert_eq!(payload.offset, 4242);
        assert_eq!(payload.header, PayloadHeader::for_entry(&entry));
    }
    let records = file_records(&file("s", 8 << 20, Some(sparse_map())), 0, None);
    let keys: Vec<&[u8]> = records.iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(
        keys,
        [
            KEY_OFFSET.as_bytes(),
            KEY_SIZE.as_bytes(),
            KEY_SPARSE_MAP.as_bytes(),
            KEY_SPARSE_SIZE.as_bytes()
        ]
    );
    assert_eq!(records[1].1, b"4106");
    assert_eq!(records[2].1, b"4096,10,1048576,4096,8388608,0");
}

#[test]
fn other_kinds_pass_through_without_records() {
    let dir = Entry {
        path: b"d".to_vec(),
        kind: EntryKind::Directory,
        meta: EntryMeta::default(),
    };
    assert_eq!(metadata_entry(&dir), dir);
    let (resolved, payload) = resolve_entry(dir.clone(), &[]).unwrap();
    assert_eq!((resolved, payload), (dir.clone(), None));
    let records = file_records(&file("d", 1, None), 0, None);
    assert!(matches!(
        resolve_entry(dir, &records),
        Err(SplitError::NotAFile)
    ));
}

#[test]
fn damaged_records_are_refused() {
    let entry = file("f", 100, None);
    let shown = metadata_entry(&entry);
    let records = file_records(&entry, 0, None);
    let without = |key: &str| -> Vec<Record> {
        records
            .iter()
            .filter(|(k, _)| k != key.as_bytes())
            .cloned()
            .collect()
    };
    assert!(matches!(
        resolve_entry(shown.clone(), &without(KEY_OFFSET)),
        Err(SplitError::MissingRecord { key: KEY_OFFSET })
    ));
    assert!(matches!(
        resolve_entry(shown.clone(), &without(KEY_SIZE)),
        Err(SplitError::MissingRecord { key: KEY_SIZE })
    ));
    let mut bad = records.clone();
    bad[0].1 = b"-1".to_vec();
    assert!(matches!(
        resolve_entry(shown.clone(), &bad),
        Err(SplitError::BadRecord { .. })
    ));
    assert!(matches!(
        resolve_entry(entry.clone(), &records),
        Err(SplitError::InlineData { size: 100 })
    ));

    let sparse = file("s", 8 << 20, Some(sparse_map()));
    let shown = metadata_entry(&sparse);
    let mut records = file_records(&sparse, 0, None);
    records[1].1 = b"4105".to_vec(); // size no longer matches the map
    assert!(matches!(
        resolve_entry(shown.clone(), &records),
        Err(SplitError::SparseMap(SparseMapError::SizeMismatch { .. }))
    ));
    let mut records = file_records(&sparse, 0, None);
    records[2].1 = b"4096,10,1048576".to_vec();
    assert!(matches!(
        resolve_entry(shown.clone(), &records),
        Err(SplitError::BadRecord { .. })
    ));
    let mut records = file_records(&sparse, 0, None);
    records[3].1 = b"4096".to_vec(); // segments beyond the real size
    assert!(matches!(
        resolve_entry(shown.clone(), &records),
        Err(SplitError::SparseMap(SparseMapError::BadSegment { .. }))
    ));
    let records = file_records(&sparse, 0, None);
    assert!(matches!(
        resolve_entry(shown, &records[..3]),
        Err(SplitError::MissingRecord {
            key: KEY_SPARSE_SIZE
        })
    ));
}

#[test]
fn stamps_round_trip_and_bad_ones_are_none() {
    use crate::archive::entry::{FileStamp, Timestamp};
    let stamp = FileStamp {
        ctime: Timestamp {
            sec: 1_700_000_000,
            nsec: 5,
        },
        ino: 987_654,
    };
    let records = file_records(&file("a", 3, None), 0, Some(&stamp));
    assert_eq!(read_stamp(&records), Some(stamp));
    assert_eq!(
        read_stamp(&file_records(&file("a", 3, None), 0, None)),
        None
    );
    let with = |ctime: &str, ino: &str| {
        vec![
            (KEY_CTIME.as_bytes().to_vec(), ctime.as_bytes().to_vec()),
            (KEY_INO.as_bytes().to_vec(), ino.as_bytes().to_vec()),
        ]
    };
    assert!(read_stamp(&with("-5.000000001", "1")).is_some());
    for (ctime, ino) in [
        ("5", "1"),
        ("5.1000000000", "1"),
        ("x.1", "1"),
        ("5.1", "-1"),
    ] {
        assert_eq!(read_stamp(&with(ctime, ino)), None, "{ctime} {ino}");
    }
}
