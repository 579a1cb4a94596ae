//! Reusable objects for the blob codec: zstd contexts and chunk buffers, kept between
//! calls instead of being allocated for every chunk.
//!
//! A fresh 4 MiB buffer or compression context per chunk costs page faults every time, and
//! when threads free each other's blocks the allocator's per-thread arenas keep growing. A
//! pool bounds both: at most `keep` objects wait here. Chunk buffers are large enough to be
//! mappings of their own ([`tune_allocator`]), and a buffer given back is shrunk to what
//! it holds, at least [`SMALLEST_BUFFER`]: pages that a larger chunk touched go back to the
//! kernel instead of staying resident while the buffer waits or holds a smaller chunk.
//!
//! These pools are caches, not state: what a call returns never depends on them.

use std::sync::Mutex;

use bytes::Bytes;

/// Idle chunk-sized buffers, shared by every thread of the process: chunk bodies received,
/// chunks being gathered, compressed, decompressed or read from disk. Idle buffers are
/// resident memory, but a buffer that is not kept is a new mapping whose every page faults
/// when it is written (on this VM also in the host). With small blobs in a pool of their
/// own and buffers shrunk when given back, 4 cost little. Corpus b, cold cache, client:
/// its first backup took 116-135 K minor faults and 0.75-0.97 s of system time keeping 2,
/// 53-58 K keeping 4, 40-41 K and 0.51-0.54 s keeping 6 (8 no fewer), for 65-68 against
/// 68-69 MiB peak RSS, and the same wall time (keeping 6: 3.71-4.16 against 3.75-4.26 s,
/// three alternating pairs); its restore 110-133 K faults, 0.71-0.86 s of system time and
/// 2.70-2.72 s keeping 2, 40-42 K, 0.46-0.58 s and 2.20-2.45 s keeping 6, the same time
/// keeping 4 (2.39-2.46 against 2.37-2.45 s). A restore of corpus a peaked at 77-78 MiB
/// keeping 4 and 80-84 keeping 6, with corpus a's memory goal close (docs/BENCHMARKS.md).
static BUFFERS: BufferPool = BufferPool::new(4, SMALLEST_BUFFER, LARGEST_BUFFER);
/// Idle small buffers: blobs of less than [`SMALL_LARGEST`] bytes (a compressed metadata
/// chunk, a small upload). In the chunk pool each pinned a chunk buffer's pages (4 MiB at
/// least): with 1 MiB metadata chunks, 8 downloads in flight took corpus a's unchanged
/// backup to 67 MiB client RSS, against 31 with buffers of their size. Kept here rather
/// than freed, the same few go round instead of growing the allocator's per-thread arenas
/// (server peak RSS over corpus a's backups and restore: 31-38 MiB pooled, 34-39 freed).
static SMALL_BUFFERS: BufferPool = BufferPool::new(8, SMALL_LEAST, SMALL_LARGEST);
/// The capacity a small buffer has at least.
const SMALL_LEAST: usize = 64 << 10;
/// Buffers for fewer bytes are small ones.
const SMALL_LARGEST: usize = SMALLEST_BUFFER / 4;
/// The capacity every chunk buffer has at least, and keeps when it is idle: the default
/// average chunk, so that most chunks fit without a page fault. Each is a mapping of its
/// own ([`MMAP_THRESHOLD`]).
const SMALLEST_BUFFER: usize = 4 << 20;
/// Larger buffers (blobs other than chunks) are freed instead of kept: the largest chunk's
/// blob, and room for its header and an alignment pad ([`crate::direct_io::align_start`]).
const LARGEST_BUFFER: usize = crate::blob::MAX_CHUNK_SIZE + 2 * crate::direct_io::ALIGN;

/// Blocks of this size or larger get a mapping of their own from the C allocator: chunk
/// buffers do; HTTP/2 frames (1 MiB) and the encoder's blocks do not, so the allocator
/// reuses their memory without page faults.
const MMAP_THRESHOLD: usize = SMALLEST_BUFFER;

/// Free memory a glibc arena keeps at its top instead of handing it back to the kernel
/// (default 128 KiB). HTTP/2 frame buffers (up to 1 MiB) and the encoder's blocks come and
/// go at the top of the heap: each time it was trimmed, the next one faulted its pages in
/// again.
const TRIM_THRESHOLD: usize = 4 << 20;
/// How many glibc arenas a program lets its threads allocate from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arenas {
    /// One for all threads: for programs whose threads pass buffers to one another (the
    /// server, a restore). With glibc's arena per thread each kept its own free memory
    /// (and its own [`TRIM_THRESHOLD`] at the top): the server's peak RSS on corpus a's
    /// restore went from 34-36 to 48 MiB. Small blocks still come from per-thread caches.
    One,
    /// glibc's default, an arena per thread (up to 8 per core): for many threads that
    /// allocate small blocks all the time (a backup's walk, read-ahead, encoder and parser),
    /// which would otherwise take turns on one arena's lock.
    PerThread,
}

/// Tunes the C allocator for this workload; called once at the start of each program.
/// Without glibc it does nothing.
///
/// - Every block of [`MMAP_THRESHOLD`] bytes or more gets a mapping of its own, so that a
///   chunk buffer shrunk by [`BufferPool::give`] hands its pages back to the kernel at once.
///   By default glibc raises that threshold to the largest block freed so far, after which
///   chunk-sized buffers come from arenas that keep every page they ever touched. Measured
///   on the bench's corpus b (1 GiB, half random, warm cache, runs side by side), peak RSS
///   of a backup: client 99-103 -> 76 MiB, server 43-44 -> 36-39 MiB; of a restore: client
///   99-106 -> 82-86 MiB, server 52-72 -> 35-43 MiB.
/// - Arenas that keep [`TRIM_THRESHOLD`] bytes at their top. Measured with one arena on a
///   cold restore of corpus b to disk (client minor page faults, system time, peak RSS):
///   226-282 K, 1.16-1.17 s, 67-71 MiB before; 154 K, 0.94 s, 67 MiB after; corpus a's warm
///   restore 215-244 K faults and 93-95 MiB before, 145-147 K and 94-99 MiB after; the
///   server's CPU time on corpus b's first backup 2.04-2.12 s before, 1.79-1.90 s after,
///   its peak RSS on corpus a's restore 28-29 MiB before, 34-36 after.
/// - [`Arenas`] says how many arenas.
pub fn tune_allocator(arenas: Arenas) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[expect(
        unsafe_code,
        reason = "mallopt has no safe wrapper; it only changes tuning values of glibc's malloc"
    )]
    // SAFETY: each value is in its parameter's range (M_MMAP_THRESHOLD takes up to 32 MiB)
    // and only affects how later allocations are served; no memory is touched.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int);
        if arenas == Arenas::One {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = arenas;
}

/// An empty buffer with room for `capacity` bytes, from the process's pools if one is idle.
pub fn take_buffer(capacity: usize) -> Vec<u8> {
    pool_for(capacity).take(capacity)
}

/// Gives a buffer back to the process's pools (or frees it).
pub fn give_buffer(buf: Vec<u8>) {
    pool_for(buf.capacity()).give(buf);
}

/// `buf` as `Bytes` that give the buffer back to the process's pools when the last of them
/// (and of their slices) is dropped.
pub fn into_bytes(buf: Vec<u8>) -> Bytes {
    pool_for(buf.capacity()).bytes(buf)
}

/// Frees the idle buffers and codec contexts of the process and hands the allocator's free
/// memory back to the kernel, for a server that has nothing to do: what an idle daemon keeps
/// is memory no one else can use. Buffers in use go back to the pools as before.
pub fn release_idle() {
    BUFFERS.free.clear();
    SMALL_BUFFERS.free.clear();
    crate::blob::release_idle_contexts();
    trim_allocator();
}

/// Hands the C allocator's free memory back to the kernel: what the arenas keep below
/// their top, which [`TRIM_THRESHOLD`] does not reach.
fn trim_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[expect(
        unsafe_code,
        reason = "malloc_trim has no safe wrapper; it only returns free pages to the kernel"
    )]
    // SAFETY: malloc_trim touches only memory that the allocator holds as free.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The pool for a buffer of `capacity` bytes: small blobs have their own.
fn pool_for(capacity: usize) -> &'static BufferPool {
    if capacity < SMALL_LARGEST {
        &SMALL_BUFFERS
    } else {
        &BUFFERS
    }
}

/// At most `keep` idle buffers, each with room for at least `least` bytes; buffers that
/// hold more than `largest` are not kept.
pub struct BufferPool {
    free: Pool<Vec<u8>>,
    least: usize,
    largest: usize,
}

impl BufferPool {
    pub const fn new(keep: usize, least: usize, largest: usize) -> Self {
        Self {
            free: Pool::new(keep),
            least,
            largest,
        }
    }

    /// An empty buffer with room for `capacity` bytes (and `least`): the smallest idle one
    /// that fits, else the largest idle one grown, else a new one.
    pub fn take(&self, capacity: usize) -> Vec<u8> {
        let capacity = capacity.max(self.least);
        let mut free = self.free.lock();
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

    /// Keeps `buf` for a later `take`, shrunk to the bytes it holds (at least `least`), or
    /// frees it (one holding more than `largest`). A mapped buffer shrinks and grows in
    /// place, without copying.
    pub fn give(&self, mut buf: Vec<u8>) {
        if buf.capacity() > 0 && buf.len() <= self.largest {
            buf.shrink_to(buf.len().max(self.least));
            self.free.give(buf);
        }
    }

    /// `buf` as `Bytes` that give the buffer back to this pool when the last of them (and
    /// of their slices) is dropped.
    pub fn bytes(&'static self, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Pooled { buf, pool: self })
    }
}

/// A pooled buffer inside a `Bytes`.
struct Pooled {
    buf: Vec<u8>,
    pool: &'static BufferPool,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.buf));
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

    /// Frees every idle object.
    pub fn clear(&self) {
        let idle = std::mem::take(&mut *self.lock());
        drop(idle);
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
        let idle = |p| BUFFERS.free.lock().iter().any(|b| b.as_ptr() == p);
        assert!(!idle(ptr));
        drop(slice);
        assert!(idle(ptr));
        // Too large to keep.
        let mut big = take_buffer(LARGEST_BUFFER + 1);
        big.resize(LARGEST_BUFFER + 1, 0);
        let ptr = big.as_ptr();
        drop(into_bytes(big));
        assert!(!idle(ptr));
    }

    #[test]
    fn keeps_at_most_keep_and_picks_the_best_fit() {
        let pool = BufferPool::new(2, 1, 10_000);
        let full = |n: usize| vec![1u8; n];
        pool.give(full(10));
        pool.give(full(100));
        pool.give(full(1000));
        assert_eq!(pool.free.lock().len(), 2);
        let b = pool.take(50);
        assert!(
            b.capacity() >= 100 && b.capacity() < 1000,
            "{}",
            b.capacity()
        );
        assert!(b.is_empty());
        // Nothing fits: the largest idle one is grown.
        let b = pool.take(5000);
        assert!(b.capacity() >= 5000);
        assert!(pool.free.take().is_none());
        // Holding more than `largest`: not kept.
        pool.give(full(10_001));
        assert!(pool.free.take().is_none());
    }

    #[test]
    fn a_buffer_given_back_keeps_only_room_for_what_it_holds() {
        let pool = BufferPool::new(2, 64, 1 << 20);
        let mut small = Vec::with_capacity(1 << 20);
        small.extend_from_slice(&[1u8; 10]);
        pool.give(small);
        let mut large = Vec::with_capacity(1 << 20);
        large.extend_from_slice(&[1u8; 500]);
        pool.give(large);
        let mut kept: Vec<usize> = pool.free.lock().iter().map(Vec::capacity).collect();
        kept.sort();
        // Shrunk to the bytes held, and never below `least`.
        assert_eq!(kept, [64, 500]);
        assert!(pool.take(1).is_empty());
    }

    #[test]
    fn clear_frees_every_idle_object() {
        let pool = Pool::new(3);
        pool.give(1);
        pool.give(2);
        pool.clear();
        assert_eq!(pool.take(), None);
        pool.give(3);
        assert_eq!(pool.take(), Some(3));
    }

    #[test]
    fn small_buffers_have_their_own_pool() {
        assert!(std::ptr::eq(pool_for(0), &SMALL_BUFFERS));
        assert!(std::ptr::eq(pool_for(SMALL_LARGEST - 1), &SMALL_BUFFERS));
        assert!(std::ptr::eq(pool_for(SMALL_LARGEST), &BUFFERS));
        const { assert!(SMALL_LARGEST <= MMAP_THRESHOLD && SMALL_LEAST < SMALL_LARGEST) };
    }
}
