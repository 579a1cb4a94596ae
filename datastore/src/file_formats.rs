//! Every magic number and format seed of the datastore, in one place.
//!
//! Each constant is the first 8 bytes of the SHA-256 of a human-readable label, so that a
//! reader can re-derive it and a new format version gets a new label (never a hand-picked
//! value). The unit test at the bottom recomputes every constant from its label.
//!
//! This module holds constants only: no IO, no logic.

/// Label of [`BLOB_RAW_MAGIC`].
pub const BLOB_RAW_LABEL: &str = "backup-rs blob raw v1";
/// A blob whose payload is stored as is.
pub const BLOB_RAW_MAGIC: [u8; 8] = [62, 2, 170, 168, 33, 78, 153, 146];

/// Label of [`BLOB_ZSTD_MAGIC`].
pub const BLOB_ZSTD_LABEL: &str = "backup-rs blob zstd v1";
/// A blob whose payload is one or more zstd frames.
pub const BLOB_ZSTD_MAGIC: [u8; 8] = [249, 220, 80, 237, 47, 135, 238, 138];

/// Label of [`DYNAMIC_INDEX_MAGIC`].
pub const DYNAMIC_INDEX_LABEL: &str = "backup-rs dynamic index v1";
/// First bytes of a dynamic index (`.didx`) file.
pub const DYNAMIC_INDEX_MAGIC: [u8; 8] = [3, 157, 139, 45, 248, 206, 221, 83];

/// Label of [`GEAR_SEED`].
pub const GEAR_SEED_LABEL: &str = "backup-rs chunker gear v1";
/// Seed of the chunker's gear table: the first 8 bytes of SHA-256(label), read little-endian.
///
/// The table itself is `GEAR[i] = splitmix64(GEAR_SEED + (i + 1) * 0x9e3779b97f4a7c15)`,
/// computed at compile time in [`crate::chunker`]. Changing the seed changes every chunk
/// boundary, which breaks deduplication against existing stores: it is a format constant.
pub const GEAR_SEED: u64 = 0xfa68_c12d_aa1e_3864;

/// Size of the blob header: magic (8) and CRC32 of the payload (4).
pub const BLOB_HEADER_SIZE: usize = 12;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    fn magic_of(label: &str) -> [u8; 8] {
        let digest = Digest::of(label.as_bytes());
        let mut magic = [0u8; 8];
        magic.copy_from_slice(&digest.0[..8]);
        magic
    }

    #[test]
    fn magics_derive_from_their_labels() {
        assert_eq!(BLOB_RAW_MAGIC, magic_of(BLOB_RAW_LABEL));
        assert_eq!(BLOB_ZSTD_MAGIC, magic_of(BLOB_ZSTD_LABEL));
        assert_eq!(DYNAMIC_INDEX_MAGIC, magic_of(DYNAMIC_INDEX_LABEL));
        assert_eq!(GEAR_SEED, u64::from_le_bytes(magic_of(GEAR_SEED_LABEL)));
    }

    #[test]
    fn magics_are_distinct() {
        let all = [BLOB_RAW_MAGIC, BLOB_ZSTD_MAGIC, DYNAMIC_INDEX_MAGIC];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
