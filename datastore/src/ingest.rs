//! One chunk from raw bytes into the chunk store: name it, skip it if known, else encode and
//! insert it.
//!
//! Blocking (hashing, compression and file IO): callers run it on worker threads, one chunk
//! per call, with a bound on how many are in flight. It keeps no state between calls.

use crate::blob::{self, BlobError, MAX_CHUNK_SIZE};
use crate::chunk_store::{ChunkStore, ChunkStoreError, InsertOutcome};
use crate::digest::{Digest, ZeroDigests, is_all_zero};

/// The result of storing one chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredChunk {
    pub digest: Digest,
    /// Plain size of the chunk.
    pub size: u64,
    /// True if this call wrote the chunk; false if the store had it.
    pub new: bool,
    /// Bytes written to disk (the encoded size) for a new chunk, 0 otherwise.
    pub stored_bytes: u64,
}

/// Stores the plain chunk `data`. An all-zero chunk takes its digest from `zeros` instead of
/// being hashed. A known chunk is only touched (the GC mark); a new one is compressed where
/// that pays and inserted.
pub fn store_chunk(
    store: &ChunkStore,
    data: &[u8],
    zeros: &ZeroDigests,
) -> Result<StoredChunk, ChunkStoreError> {
    let digest = if is_all_zero(data) {
        zeros.digest(data.len())
    } else {
        Digest::of(data)
    };
    let size = data.len() as u64;
    let known = |digest| StoredChunk {
        digest,
        size,
        new: false,
        stored_bytes: 0,
    };
    if store.contains(&digest) && store.touch(&digest)? {
        return Ok(known(digest));
    }
    let encoded = blob::encode(data, true);
    match store.insert(&digest, &encoded)? {
        InsertOutcome::Inserted { stored_bytes } => Ok(StoredChunk {
            digest,
            size,
            new: true,
            stored_bytes,
        }),
        InsertOutcome::Existed => Ok(known(digest)),
    }
}

/// An uploaded (already encoded) chunk that cannot be stored.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("uploaded chunk {digest}: {source}")]
    Blob {
        digest: Digest,
        #[source]
        source: BlobError,
    },
    #[error("uploaded chunk {digest} is {actual} bytes, the client declared {declared}")]
    SizeMismatch {
        digest: Digest,
        declared: u64,
        actual: u64,
    },
    #[error(transparent)]
    Store(#[from] ChunkStoreError),
}

/// Stores a chunk that a client uploaded already encoded (chunked mode). The blob is decoded
/// (through a small buffer, not kept) and its SHA-256 and plain size are checked against what
/// the client declared before anything is written; a known chunk is only touched.
pub fn store_uploaded_chunk(
    store: &ChunkStore,
    digest: &Digest,
    declared_size: u64,
    encoded: &[u8],
) -> Result<StoredChunk, UploadError> {
    let size =
        blob::verify(encoded, digest, MAX_CHUNK_SIZE).map_err(|source| UploadError::Blob {
            digest: *digest,
            source,
        })?;
    if size != declared_size {
        return Err(UploadError::SizeMismatch {
            digest: *digest,
            declared: declared_size,
            actual: size,
        });
    }
    let (new, stored_bytes) = match store.insert(digest, encoded)? {
        InsertOutcome::Inserted { stored_bytes } => (true, stored_bytes),
        InsertOutcome::Existed => (false, 0),
    };
    Ok(StoredChunk {
        digest: *digest,
        size,
        new,
        stored_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, ChunkStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::create(dir.path()).unwrap();
        (dir, store)
    }

    #[test]
    fn zero_chunk_uses_cached_digest() {
        let (_dir, store) = store();
        let zeros = ZeroDigests::new();
        let data = vec![0u8; 1 << 20];
        let first = store_chunk(&store, &data, &zeros).unwrap();
        assert_eq!(first.digest, Digest::of(&data));
        assert_eq!(first.digest, zeros.digest(data.len()));
        assert!(first.new);
        assert!(first.stored_bytes < 1000, "zeros compress");
        let again = store_chunk(&store, &data, &zeros).unwrap();
        assert_eq!(again.digest, first.digest);
        assert!(!again.new);
        assert_eq!(again.stored_bytes, 0);
    }

    #[test]
    fn stored_chunk_reads_back() {
        let (_dir, store) = store();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let stored = store_chunk(&store, &data, &ZeroDigests::new()).unwrap();
        assert_eq!((stored.size, stored.new), (100_000, true));
        let encoded = store.read(&stored.digest).unwrap();
        assert_eq!(encoded.len() as u64, stored.stored_bytes);
        assert_eq!(
            blob::decode_verified(&encoded, &stored.digest, MAX_CHUNK_SIZE).unwrap(),
            data
        );
    }

    #[test]
    fn uploaded_chunk_is_checked() {
        let (_dir, store) = store();
        let data = b"uploaded chunk data".repeat(100);
        let digest = Digest::of(&data);
        let encoded = blob::encode(&data, true);
        let wrong = Digest::of(b"other");
        let err = store_uploaded_chunk(&store, &wrong, data.len() as u64, &encoded).unwrap_err();
        assert!(matches!(err, UploadError::Blob { .. }));
        assert!(!store.contains(&wrong));
        let err = store_uploaded_chunk(&store, &digest, 5, &encoded).unwrap_err();
        assert!(matches!(err, UploadError::SizeMismatch { .. }));
        assert!(!store.contains(&digest));
        let ok = store_uploaded_chunk(&store, &digest, data.len() as u64, &encoded).unwrap();
        assert!(ok.new);
        let again = store_uploaded_chunk(&store, &digest, data.len() as u64, &encoded).unwrap();
        assert!(!again.new);
    }
}
