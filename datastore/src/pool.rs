//! Reusable objects for the blob codec: zstd contexts and scratch buffers, kept between
//! calls instead of being allocated for every chunk.
//!
//! A fresh 4 MiB buffer or compression context per chunk costs page faults every time
//! (the allocator hands large blocks back to the kernel), and when threads free each
//! other's blocks the allocator's per-thread arenas keep growing. A pool bounds both: at
//! most `keep` objects wait here, each at most as large as the largest use so far.
//!
//! These pools are caches, not state: what a call returns never depends on them.

use std::sync::Mutex;

use bytes::Bytes;

/// Idle chunk-sized buffers, shared by every thread of the process: chunk bodies received,
/// chunks decompressed or read from disk. Buffers larger than [`KEPT_BUFFER_CAPACITY`] are
/// freed instead of kept, so that the rare 16 MiB chunk does not pin 16 MiB per buffer.
static BUFFERS: Pool<Vec<u8>> = Pool::new(4);
/// Largest buffer kept idle: an average chunk (4 MiB) and then some, plus a blob header.
const KEPT_BUFFER_CAPACITY: usize = (8 << 20) + 64;

/// An empty buffer with room for `capacity` bytes, from the process's pool if one is idle.
pub fn take_buffer(capacity: usize) -> Vec<u8> {
    BUFFERS.take_buffer(capacity)
}

/// Gives a buffer back to the process's pool (or frees it).
pub fn give_buffer(buf: Vec<u8>) {
    if buf.capacity() <= KEPT_BUFFER_CAPACITY {
        BUFFERS.give(buf);
    }
}

/// `buf` as `Bytes` that give the buffer back to the pool when the last of them (and of
/// their slices) is dropped.
pub fn into_bytes(buf: Vec<u8>) -> Bytes {
    Bytes::from_owner(Pooled(buf))
}

/// A pooled buffer inside a `Bytes`.
struct Pooled(Vec<u8>);

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        give_buffer(std::mem::take(&mut self.0));
    }
}

/// At most `keep` idle objects of type `T`.
pub struct Pool<T> {
    free: Mutex<Vec<T>>,
    keep: usize,
}

impl<T> Pool<T> {
    pub const fn new(keep: usize) -> Self {
        Self {
            free: Mutex::new(Vec::new()),
            keep,
        }
    }

    /// An idle object, if any.
    pub fn take(&self) -> Option<T> {
        self.lock().pop()
    }

    /// Keeps `item` for a later `take`, or drops it if enough are kept.
    pub fn give(&self, item: T) {
        let mut free = self.lock();
        if free.len() < self.keep {
            free.push(item);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<T>> {
        // A panic while the lock was held cannot leave the list inconsistent.
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Pool<Vec<u8>> {
    /// An empty buffer with room for `capacity` bytes: the smallest idle one that fits,
    /// else the largest idle one grown, else a new one.
    pub fn take_buffer(&self, capacity: usize) -> Vec<u8> {
        let mut free = self.lock();
        let fits = free
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= capacity)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i);
        let largest = || {
            free.iter()
                .enumerate()
                .max_by_key(|(_, b)| b.capacity())
                .map(|(i, _)| i)
        };
        let mut buf = match fits.or_else(largest) {
            Some(i) => free.swap_remove(i),
            None => Vec::new(),
        };
        drop(free);
        buf.clear();
        buf.reserve_exact(capacity);
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_bytes_give_their_buffer_back_when_the_last_slice_drops() {
        // Another test may use the process's pool at the same time: look for this buffer
        // by its address.
        let mut buf = take_buffer(1 << 20);
        buf.extend_from_slice(&[7u8; 1000]);
        let ptr = buf.as_ptr();
        let bytes = into_bytes(buf);
        let slice = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(&slice[..], &[7u8; 10]);
        let idle = |p| BUFFERS.lock().iter().any(|b| b.as_ptr() == p);
        assert!(!idle(ptr));
        drop(slice);
        assert!(idle(ptr));
        // Too large to keep.
        let big = take_buffer(KEPT_BUFFER_CAPACITY + 1);
        let ptr = big.as_ptr();
        drop(into_bytes(big));
        assert!(!idle(ptr));
    }

    #[test]
    fn keeps_at_most_keep_and_picks_the_best_fit() {
        let pool: Pool<Vec<u8>> = Pool::new(2);
        pool.give(Vec::with_capacity(10));
        pool.give(Vec::with_capacity(100));
        pool.give(Vec::with_capacity(1000));
        assert_eq!(pool.lock().len(), 2);
        let b = pool.take_buffer(50);
        assert!(
            b.capacity() >= 100 && b.capacity() < 1000,
            "{}",
            b.capacity()
        );
        assert!(b.is_empty());
        // Nothing fits: the largest idle one is grown.
        let b = pool.take_buffer(500);
        assert!(b.capacity() >= 500);
        assert!(pool.take().is_none());
        let mut used = pool.take_buffer(5);
        used.extend_from_slice(b"left over");
        pool.give(used);
        assert!(pool.take_buffer(1).is_empty());
    }
}
