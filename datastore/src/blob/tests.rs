//! Tests of the blob codec: round trips, compression choice, hostile input.

use super::*;
use proptest::prelude::*;

/// Data that compresses well.
pub(super) fn text(len: usize) -> Vec<u8> {
    b"backup data compresses well when it repeats. "
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

/// Incompressible bytes (xorshift), different for each `seed`.
pub(super) fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = (0x2545_f491_4f6c_dd1d ^ seed) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A blob with a valid header around an arbitrary payload.
fn wrap(magic: [u8; 8], payload: &[u8]) -> Vec<u8> {
    let mut blob = magic.to_vec();
    blob.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    blob.extend_from_slice(payload);
    blob
}

#[test]
fn round_trips() {
    for data in [
        Vec::new(),
        vec![0u8; 1],
        text(100_000),
        noise(100_000, 1),
        vec![0; 1 << 20],
    ] {
        for compress in [false, true] {
            let blob = encode(&data, compress);
            assert_eq!(decode(&blob, data.len()).unwrap(), data);
            let digest = Digest::of(&data);
            assert_eq!(
                decode_verified(&blob, &digest, MAX_CHUNK_SIZE).unwrap(),
                data
            );
            assert_eq!(
                verify(&blob, &digest, MAX_CHUNK_SIZE).unwrap(),
                data.len() as u64
            );
            let mut out = b"left over".to_vec();
            decode_verified_into(&blob, &digest, MAX_CHUNK_SIZE, &mut out).unwrap();
            assert_eq!(out, data);
        }
    }
}

#[test]
fn compression_only_when_smaller() {
    assert_eq!(kind(&encode(&text(10_000), true)).unwrap(), BlobKind::Zstd);
    assert!(encode(&text(10_000), true).len() < 1000);
    // Frames record their size, so decoding allocates exactly once.
    let blob = encode(&text(10_000), true);
    assert_eq!(
        zstd::bulk::Decompressor::upper_bound(&blob[BLOB_HEADER_SIZE..]),
        Some(10_000)
    );
    assert_eq!(kind(&encode(&text(10_000), false)).unwrap(), BlobKind::Raw);
    let random = noise(10_000, 1);
    let blob = encode(&random, true);
    assert_eq!(kind(&blob).unwrap(), BlobKind::Raw);
    assert_eq!(blob.len(), BLOB_HEADER_SIZE + random.len());
    assert_eq!(kind(&encode(&[], true)).unwrap(), BlobKind::Raw);
    assert_eq!(kind(&encode(b"a", true)).unwrap(), BlobKind::Raw);
}

#[test]
fn header_errors() {
    assert!(matches!(
        decode(&[], 10),
        Err(BlobError::TooShort { len: 0 })
    ));
    assert!(matches!(
        kind(&BLOB_RAW_MAGIC),
        Err(BlobError::TooShort { len: 8 })
    ));
    let mut blob = encode(b"hello", false);
    blob[0] ^= 1;
    assert!(matches!(decode(&blob, 10), Err(BlobError::BadMagic { .. })));
    let mut blob = encode(b"hello", false);
    blob[9] ^= 1;
    assert!(matches!(
        decode(&blob, 10),
        Err(BlobError::CrcMismatch { .. })
    ));
}

#[test]
fn raw_blob_over_limit() {
    let blob = encode(&noise(1000, 1), false);
    assert!(matches!(
        decode(&blob, 999),
        Err(BlobError::TooLarge { .. })
    ));
    assert_eq!(decode(&blob, 1000).unwrap().len(), 1000);
}

#[test]
fn zstd_bomb_with_declared_size_is_refused() {
    let payload = zstd::bulk::compress(&vec![0u8; 64 << 20], 1).unwrap();
    let blob = wrap(BLOB_ZSTD_MAGIC, &payload);
    let err = decode(&blob, MAX_CHUNK_SIZE).unwrap_err();
    assert!(matches!(err, BlobError::TooLarge { size: Some(s), .. } if s == 64 << 20));
    let digest = Digest::of(&vec![0u8; 64 << 20]);
    let err = verify(&blob, &digest, MAX_CHUNK_SIZE).unwrap_err();
    assert!(matches!(err, BlobError::TooLarge { .. }), "{err}");
}

#[test]
fn zstd_bomb_without_declared_size_is_refused() {
    let payload = zstd::stream::encode_all(&vec![0u8; 64 << 20][..], 1).unwrap();
    assert!(zstd::bulk::Decompressor::upper_bound(&payload).is_none());
    let blob = wrap(BLOB_ZSTD_MAGIC, &payload);
    let err = decode(&blob, MAX_CHUNK_SIZE).unwrap_err();
    assert!(
        matches!(err, BlobError::TooLarge { size: None, .. }),
        "{err}"
    );
    let err = verify(&blob, &Digest::of(&[]), MAX_CHUNK_SIZE).unwrap_err();
    assert!(matches!(err, BlobError::TooLarge { .. }), "{err}");
    // Within the limit, the same kind of payload decodes.
    let payload = zstd::stream::encode_all(&text(5000)[..], 1).unwrap();
    assert_eq!(
        decode(&wrap(BLOB_ZSTD_MAGIC, &payload), 5000).unwrap(),
        text(5000)
    );
}

#[test]
fn forged_zstd_payloads_are_errors() {
    for payload in [
        &b""[..],
        b"not zstd at all",
        &[0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0],
    ] {
        assert!(decode(&wrap(BLOB_ZSTD_MAGIC, payload), 1000).is_err());
        assert!(verify(&wrap(BLOB_ZSTD_MAGIC, payload), &Digest::of(&[]), 1000).is_err());
    }
    // Valid frame followed by garbage, or by the start of another frame.
    let frame = zstd::bulk::compress(&text(1000), 1).unwrap();
    for tail in [&b"trailing"[..], &frame[..frame.len() / 2]] {
        let mut payload = frame.clone();
        payload.extend_from_slice(tail);
        let blob = wrap(BLOB_ZSTD_MAGIC, &payload);
        assert!(decode(&blob, 10_000).is_err());
        assert!(verify(&blob, &Digest::of(&text(1000)), 10_000).is_err());
    }
}

#[test]
fn verify_reads_concatenated_frames_as_decode_does() {
    let mut payload = zstd::bulk::compress(&text(1000), 1).unwrap();
    payload.extend(zstd::stream::encode_all(&noise(300_000, 1)[..], 3).unwrap());
    let blob = wrap(BLOB_ZSTD_MAGIC, &payload);
    let data = decode(&blob, MAX_CHUNK_SIZE).unwrap();
    assert_eq!(data.len(), 301_000);
    assert_eq!(
        verify(&blob, &Digest::of(&data), MAX_CHUNK_SIZE).unwrap(),
        301_000
    );
    assert!(matches!(
        verify(&blob, &Digest::of(&data), 300_999),
        Err(BlobError::TooLarge { .. })
    ));
}

#[test]
fn wrong_digest_is_rejected() {
    let blob = encode(&text(1000), true);
    let err = decode_verified(&blob, &Digest::of(b"other"), MAX_CHUNK_SIZE).unwrap_err();
    assert!(matches!(err, BlobError::DigestMismatch { .. }));
    let err = verify(&blob, &Digest::of(b"other"), MAX_CHUNK_SIZE).unwrap_err();
    assert!(matches!(err, BlobError::DigestMismatch { .. }));
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = kind(&bytes);
        let _ = decode(&bytes, 1 << 16);
    }

    #[test]
    fn random_payload_under_valid_header_never_panics(
        zstd_magic: bool,
        payload in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let magic = if zstd_magic { BLOB_ZSTD_MAGIC } else { BLOB_RAW_MAGIC };
        let blob = wrap(magic, &payload);
        let decoded = decode(&blob, 1 << 16);
        // verify accepts exactly what decode accepts, with the digest of what it decodes.
        let digest = decoded.as_ref().map(|d| Digest::of(d)).unwrap_or(Digest([0; 32]));
        let verified = verify(&blob, &digest, 1 << 16);
        let mut out = Vec::new();
        let into = decode_verified_into(&blob, &digest, 1 << 16, &mut out).map(|()| out);
        prop_assert_eq!(verified.ok(), decoded.as_ref().ok().map(|d| d.len() as u64));
        prop_assert_eq!(into.ok(), decoded.ok());
    }

    #[test]
    fn round_trip_any(data in proptest::collection::vec(0u8..4, 0..5000), compress: bool) {
        let blob = encode(&data, compress);
        prop_assert_eq!(decode(&blob, data.len()).unwrap(), data);
    }

    #[test]
    fn a_chunk_buffer_encodes_as_the_whole(
        data in proptest::collection::vec(0u8..4, 0..20_000),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        noisy: bool,
        compress: bool,
    ) {
        let data = if noisy { noise(data.len(), 1) } else { data };
        let mut at: Vec<usize> = cuts.iter().map(|c| c.index(data.len() + 1)).collect();
        at.push(0);
        at.push(data.len());
        at.sort();
        let mut chunk = ChunkBuf::new(at[1]);
        for w in at.windows(2) {
            chunk.extend_from_slice(&data[w[0]..w[1]]);
        }
        prop_assert_eq!(chunk.data(), &data[..]);
        prop_assert_eq!(chunk.into_blob(compress), encode(&data, compress));
    }

    #[test]
    fn any_bit_flip_is_detected(len in 0usize..3000, repeat: bool, bit: prop::sample::Index) {
        let data = if repeat { text(len) } else { noise(len, 1) };
        let mut blob = encode(&data, true);
        let bit = bit.index(blob.len() * 8);
        blob[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(decode(&blob, MAX_CHUNK_SIZE).is_err());
        prop_assert!(verify(&blob, &Digest::of(&data), MAX_CHUNK_SIZE).is_err());
    }

    #[test]
    fn truncation_is_detected(len in 1usize..3000, repeat: bool, cut: prop::sample::Index) {
        let data = if repeat { text(len) } else { noise(len, 1) };
        let blob = encode(&data, true);
        let keep = cut.index(blob.len());
        prop_assert!(decode(&blob[..keep], MAX_CHUNK_SIZE).is_err());
        prop_assert!(verify(&blob[..keep], &Digest::of(&data), MAX_CHUNK_SIZE).is_err());
    }
}
