//! Chunk digests (SHA-256 of the plain chunk data) and the fast all-zero path.
//!
//! A [`Digest`] names a chunk in the store and in every index. This module is pure: no IO,
//! no global state. [`ZeroDigests`] is a cache owned by the caller (the server keeps one per
//! process and shares it with an `Arc`), not a process-wide map.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use sha2::{Digest as _, Sha256};

/// SHA-256 of the plain (uncompressed, unencrypted) data of a chunk.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Digest(pub [u8; 32]);

/// A string that is not exactly 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid digest {input:?}: expected 64 hex digits")]
pub struct DigestParseError {
    /// The rejected input, cut to 80 characters.
    pub input: String,
}

impl Digest {
    /// SHA-256 of `data`.
    pub fn of(data: &[u8]) -> Digest {
        Digest(Sha256::digest(data).into())
    }

    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first two bytes, big-endian: the chunk store's prefix directory.
    pub fn prefix(&self) -> u16 {
        u16::from_be_bytes([self.0[0], self.0[1]])
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(self, f)
    }
}

impl fmt::LowerHex for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 64];
        // Cannot fail: the buffer is exactly twice the input length.
        hex::encode_to_slice(self.0, &mut buf).map_err(|_| fmt::Error)?;
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl FromStr for Digest {
    type Err = DigestParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || DigestParseError {
            input: s.chars().take(80).collect(),
        };
        if s.len() != 64 {
            return Err(err());
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| err())?;
        Ok(Digest(out))
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HexVisitor;
        impl serde::de::Visitor<'_> for HexVisitor {
            type Value = Digest;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a SHA-256 digest as 64 hex digits")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Digest, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(HexVisitor)
    }
}

/// True if every byte of `data` is zero.
///
/// Written so that the compiler vectorises it: each 256-byte block is OR-folded as u64 words
/// and tested once, so the loop runs at memory bandwidth, and a non-zero block ends it early.
pub fn is_all_zero(data: &[u8]) -> bool {
    const BLOCK: usize = 256;
    let mut blocks = data.chunks_exact(BLOCK);
    for block in &mut blocks {
        let mut acc = 0u64;
        for word in block.chunks_exact(8) {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(word);
            acc |= u64::from_ne_bytes(bytes);
        }
        if acc != 0 {
            return false;
        }
    }
    blocks.remainder().iter().all(|&b| b == 0)
}

/// Thread-safe cache of the SHA-256 of all-zero buffers, by length.
///
/// Sparse files and VM images contain long zero runs; their chunks are recognised with
/// [`is_all_zero`] and named from this cache instead of being hashed again.
#[derive(Debug, Default)]
pub struct ZeroDigests {
    cache: Mutex<HashMap<usize, Digest>>,
}

impl ZeroDigests {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// SHA-256 of `len` zero bytes, computed once per length.
    pub fn digest(&self, len: usize) -> Digest {
        if let Some(d) = self.lock().get(&len) {
            return *d;
        }
        // Hash outside the lock: other lengths need not wait for this one.
        let digest = zero_digest(len);
        self.lock().insert(len, digest);
        digest
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<usize, Digest>> {
        // The map holds plain values, so a panic elsewhere cannot leave it inconsistent.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// SHA-256 of `len` zero bytes without allocating `len` bytes.
fn zero_digest(len: usize) -> Digest {
    static ZEROS: [u8; 64 * 1024] = [0u8; 64 * 1024];
    let mut hasher = Sha256::new();
    let mut left = len;
    while left > 0 {
        let n = left.min(ZEROS.len());
        hasher.update(&ZEROS[..n]);
        left -= n;
    }
    Digest(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_digest() {
        // SHA-256 of the empty string.
        assert_eq!(
            Digest::of(b"").to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn display_parse_and_prefix() {
        let d = Digest::of(b"abc");
        let s = d.to_string();
        assert_eq!(s.len(), 64);
        assert_eq!(format!("{d:x}"), s);
        assert_eq!(s.parse::<Digest>().unwrap(), d);
        assert_eq!(s.to_uppercase().parse::<Digest>().unwrap(), d);
        assert_eq!(d.prefix(), 0xba78);
    }

    #[test]
    fn parse_rejects_bad_input() {
        let good = Digest::of(b"x").to_hex();
        for bad in [
            "",
            "00",
            &good[..63],
            &format!("{good}0"),
            &format!("{}g", &good[..63]),
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad:?}");
        }
        // Multi-byte characters whose byte length happens to be 64.
        assert!("é".repeat(32).parse::<Digest>().is_err());
    }

    #[test]
    fn serde_as_hex_string() {
        let d = Digest::of(b"abc");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{d}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        assert!(serde_json::from_str::<Digest>("\"abc\"").is_err());
        assert!(serde_json::from_str::<Digest>("12").is_err());
    }

    #[test]
    fn zero_digests_match_hashing() {
        let zeros = ZeroDigests::new();
        for len in [0, 1, 4095, 65536, 65537, 1 << 20] {
            assert_eq!(zeros.digest(len), Digest::of(&vec![0u8; len]));
            assert_eq!(zeros.digest(len), Digest::of(&vec![0u8; len]));
        }
    }

    #[test]
    fn all_zero_edges() {
        assert!(is_all_zero(&[]));
        for len in [1, 7, 8, 255, 256, 257, 1000, 4096] {
            let mut v = vec![0u8; len];
            assert!(is_all_zero(&v));
            for pos in [0, len / 2, len - 1] {
                v[pos] = 1;
                assert!(!is_all_zero(&v), "len {len} pos {pos}");
                v[pos] = 0;
            }
        }
    }

    proptest! {
        #[test]
        fn all_zero_matches_naive(data in proptest::collection::vec(0u8..3, 0..2000)) {
            prop_assert_eq!(is_all_zero(&data), data.iter().all(|&b| b == 0));
        }
    }
}
