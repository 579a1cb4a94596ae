//! Tests of the dynamic index codec and writer.

use super::*;
use proptest::prelude::*;

fn entries_from_lengths(lengths: &[u64]) -> Vec<IndexEntry> {
    let mut end = 0;
    lengths
        .iter()
        .map(|&len| {
            end += len;
            IndexEntry {
                end,
                digest: Digest::of(&end.to_le_bytes()),
            }
        })
        .collect()
}

fn index_of(entries: Vec<IndexEntry>) -> DynamicIndex {
    let mut csum = IndexChecksum::new();
    for e in &entries {
        csum.add(e.end, &e.digest);
    }
    DynamicIndex {
        uuid: [7; 16],
        ctime: 1_764_000_000,
        csum: csum.finish(),
        entries,
    }
}

#[test]
fn empty_index() {
    let index = index_of(Vec::new());
    let bytes = index.encode();
    assert_eq!(bytes.len(), INDEX_HEADER_SIZE);
    assert_eq!(DynamicIndex::decode(&bytes).unwrap(), index);
    assert_eq!(index.size(), 0);
    assert_eq!(index.find(0), None);
}

#[test]
fn layout_is_pinned() {
    let index = index_of(entries_from_lengths(&[10, 20]));
    let bytes = index.encode();
    assert_eq!(bytes.len(), INDEX_HEADER_SIZE + 2 * INDEX_ENTRY_SIZE);
    assert_eq!(&bytes[..8], &DYNAMIC_INDEX_MAGIC);
    assert_eq!(&bytes[8..24], &[7; 16]);
    assert_eq!(&bytes[24..32], &1_764_000_000i64.to_le_bytes());
    assert_eq!(&bytes[32..64], &index.csum.0);
    assert_eq!(&bytes[4096..4104], &10u64.to_le_bytes());
    assert_eq!(&bytes[4136..4144], &30u64.to_le_bytes());
    // The checksum is SHA-256 of the entry bytes exactly as they lie in the file.
    assert_eq!(index.csum, Digest::of(&bytes[INDEX_HEADER_SIZE..]));
}

#[test]
fn find_and_ranges_at_boundaries() {
    let index = index_of(entries_from_lengths(&[10, 5, 1, 100]));
    assert_eq!(index.size(), 116);
    assert_eq!(index.chunk_range(0), 0..10);
    assert_eq!(index.chunk_range(1), 10..15);
    assert_eq!(index.chunk_range(3), 16..116);
    let cases = [
        (0, Some(0)),
        (9, Some(0)),
        (10, Some(1)),
        (14, Some(1)),
        (15, Some(2)),
    ];
    for (offset, expected) in cases {
        assert_eq!(index.find(offset), expected, "offset {offset}");
    }
    assert_eq!(index.find(16), Some(3));
    assert_eq!(index.find(115), Some(3));
    assert_eq!(index.find(116), None);
    assert_eq!(index.find(u64::MAX), None);
}

#[test]
fn header_corruption_is_rejected() {
    let bytes = index_of(entries_from_lengths(&[10, 20])).encode();
    let flip = |at: usize| {
        let mut b = bytes.clone();
        b[at] ^= 0x10;
        DynamicIndex::decode(&b).unwrap_err()
    };
    assert!(matches!(flip(0), IndexError::BadMagic { .. }));
    assert!(matches!(flip(40), IndexError::ChecksumMismatch { .. }));
    assert!(matches!(flip(100), IndexError::BadPadding { offset: 100 }));
    assert!(matches!(flip(4096), IndexError::ChecksumMismatch { .. }));
    assert!(matches!(
        flip(4100),
        IndexError::NotIncreasing { entry: 1, .. }
    ));
    assert!(matches!(
        flip(4096 + 39),
        IndexError::ChecksumMismatch { .. }
    ));
    assert!(matches!(
        DynamicIndex::decode(&bytes[..100]),
        Err(IndexError::TooShort { len: 100 })
    ));
    assert!(matches!(
        DynamicIndex::decode(&bytes[..bytes.len() - 1]),
        Err(IndexError::BadLength { .. })
    ));
}

#[test]
fn non_increasing_ends_are_rejected() {
    for lengths in [&[10, 0, 5][..], &[0][..]] {
        let bytes = index_of(entries_from_lengths(lengths)).encode();
        assert!(matches!(
            DynamicIndex::decode(&bytes),
            Err(IndexError::NotIncreasing { .. })
        ));
    }
    let mut entries = entries_from_lengths(&[10, 20, 30]);
    entries[2].end = 5;
    let bytes = index_of(entries).encode();
    assert!(matches!(
        DynamicIndex::decode(&bytes),
        Err(IndexError::NotIncreasing {
            entry: 2,
            end: 5,
            previous: 30
        })
    ));
}

#[test]
fn writer_then_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("root.tar.didx");
    let mut writer = DynamicIndexWriter::create(&path).unwrap();
    assert!(!path.exists(), "the index must not appear before close");
    let entries = entries_from_lengths(&(1..=5000).collect::<Vec<u64>>());
    for e in &entries {
        writer.push(e.end, &e.digest).unwrap();
    }
    assert_eq!(writer.chunks(), 5000);
    let stats = writer.close().unwrap();
    let index = DynamicIndex::load(&path).unwrap();
    assert_eq!(index.entries, entries);
    assert_eq!(stats.size, index.size());
    assert_eq!(stats.chunks, 5000);
    assert_eq!(stats.csum, index.csum);
    assert!(index.ctime > 1_700_000_000);
    assert_ne!(index.uuid, [0; 16]);
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "no temp file left behind");
}

#[test]
fn writer_rejects_bad_ends_and_cleans_up_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.tar.didx");
    let mut writer = DynamicIndexWriter::create(&path).unwrap();
    let d = Digest::of(b"x");
    assert!(matches!(
        writer.push(0, &d),
        Err(IndexError::NotIncreasing { .. })
    ));
    writer.push(10, &d).unwrap();
    assert!(matches!(
        writer.push(10, &d),
        Err(IndexError::NotIncreasing { .. })
    ));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    drop(writer);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn empty_writer_gives_empty_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.tar.didx");
    let stats = DynamicIndexWriter::create(&path).unwrap().close().unwrap();
    assert_eq!((stats.size, stats.chunks), (0, 0));
    assert_eq!(stats.csum, IndexChecksum::new().finish());
    assert!(DynamicIndex::load(&path).unwrap().entries.is_empty());
}

#[test]
fn load_missing_file_names_the_path() {
    let err = DynamicIndex::load(Path::new("/nonexistent/x.didx")).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/x.didx"), "{err}");
}

proptest! {
    #[test]
    fn round_trip(lengths in proptest::collection::vec(1u64..1 << 40, 0..200), ctime: i64) {
        let mut index = index_of(entries_from_lengths(&lengths));
        index.ctime = ctime;
        let decoded = DynamicIndex::decode(&index.encode()).unwrap();
        prop_assert_eq!(decoded, index);
    }

    #[test]
    fn find_agrees_with_ranges(lengths in proptest::collection::vec(1u64..1000, 1..50), at: u64) {
        let index = index_of(entries_from_lengths(&lengths));
        let offset = at % (index.size() + 10);
        match index.find(offset) {
            Some(i) => prop_assert!(index.chunk_range(i).contains(&offset)),
            None => prop_assert!(offset >= index.size()),
        }
    }

    #[test]
    fn any_bit_flip_is_rejected(
        lengths in proptest::collection::vec(1u64..1000, 1..20),
        bit: prop::sample::Index,
    ) {
        let mut bytes = index_of(entries_from_lengths(&lengths)).encode();
        // Skip the uuid and ctime: they are not covered by any check.
        let bit = bit.index((bytes.len() - CSUM_AT) * 8) + CSUM_AT * 8;
        bytes[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(DynamicIndex::decode(&bytes).is_err());
    }

    #[test]
    fn random_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..5000)) {
        let _ = DynamicIndex::decode(&bytes);
        if bytes.len() >= 8 {
            bytes[..8].copy_from_slice(&DYNAMIC_INDEX_MAGIC);
            let _ = DynamicIndex::decode(&bytes);
        }
    }

    #[test]
    fn truncation_is_rejected(lengths in proptest::collection::vec(1u64..1000, 1..20), cut: prop::sample::Index) {
        let bytes = index_of(entries_from_lengths(&lengths)).encode();
        let keep = cut.index(bytes.len());
        prop_assert!(DynamicIndex::decode(&bytes[..keep]).is_err());
    }
}
