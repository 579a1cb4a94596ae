//! Content-defined chunking: a FastCDC-style gear hash with normalized chunking.
//!
//! The chunker is push-style: the caller feeds it slices and it answers where the current
//! chunk ends. It never reads, allocates or hashes chunk contents, and the boundaries it finds
//! depend only on the bytes, never on how they were split into `scan` calls (the client and
//! the server must cut identical chunks from the same stream, or deduplication is lost).
//!
//! Algorithm, per chunk:
//! - the first `min` bytes are skipped without hashing (no cut can fall there anyway);
//! - from then on `h = (h << 1) + GEAR[byte]`; bit 63 of `h` depends on the last 64 bytes,
//!   lower bits on fewer, so the cut masks test the HIGH bits;
//! - up to `avg` bytes a cut needs `log2(avg) + 2` zero high bits (harder), after it only
//!   `log2(avg) - 2` (easier): this normalization pulls chunk sizes towards `avg`;
//! - at `max` bytes the chunk is cut regardless of content.
//!
//! The hash is one long dependency chain, so long stretches are scanned by four lanes at once
//! (each lane re-derives its starting hash from the 64 bytes before it, which is exact because
//! older bytes are shifted out); a stretch where a lane sees a cut is scanned again byte by
//! byte. This doubles the throughput and changes no boundary.
//!
//! The gear table is 256 splitmix64 outputs from [`GEAR_SEED`], computed at compile time.
//! Changing the seed, the masks or the rules above moves every boundary: the golden test pins
//! them.

use crate::file_formats::GEAR_SEED;

/// Chunk size limits. `avg` is a power of two; `min = avg / 4`, `max = avg * 4`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkerParams {
    /// No chunk but the last of a stream is shorter.
    pub min: usize,
    /// Target average (a power of two).
    pub avg: usize,
    /// No chunk is longer: it is cut here whatever the content.
    pub max: usize,
}

/// Invalid chunker parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkerError {
    #[error(
        "invalid average chunk size {avg}: must be a power of two from {} to {} bytes",
        ChunkerParams::MIN_AVG,
        ChunkerParams::MAX_AVG
    )]
    InvalidAverage { avg: usize },
}

impl ChunkerParams {
    /// 4 MiB: large chunks keep a store fast on real disks (fewer files, seeks and requests).
    pub const DEFAULT_AVG: usize = 4 << 20;
    /// Smallest accepted average (small values are for tests).
    pub const MIN_AVG: usize = 4 << 10;
    /// Largest accepted average: its `max` (16 MiB) equals [`crate::blob::MAX_CHUNK_SIZE`].
    pub const MAX_AVG: usize = 4 << 20;

    /// Parameters for an average chunk size `avg`.
    pub fn new(avg: usize) -> Result<Self, ChunkerError> {
        if !avg.is_power_of_two() || !(Self::MIN_AVG..=Self::MAX_AVG).contains(&avg) {
            return Err(ChunkerError::InvalidAverage { avg });
        }
        Ok(Self {
            min: avg / 4,
            avg,
            max: avg * 4,
        })
    }

    /// The parameters of a split archive's metadata stream: a quarter of the store's
    /// average (at least [`Self::MIN_AVG`]).
    pub fn for_metadata(&self) -> Self {
        Self::new((self.avg / 4).max(Self::MIN_AVG)).unwrap_or(*self)
    }
}

impl Default for ChunkerParams {
    fn default() -> Self {
        Self {
            min: Self::DEFAULT_AVG / 4,
            avg: Self::DEFAULT_AVG,
            max: Self::DEFAULT_AVG * 4,
        }
    }
}

const fn splitmix64(state: u64) -> u64 {
    let mut z = state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const fn gear_table(seed: u64) -> [u64; 256] {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        table[i] =
            splitmix64(seed.wrapping_add((i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)));
        i += 1;
    }
    table
}

/// The gear table: one random 64-bit value per byte value.
static GEAR: [u64; 256] = gear_table(GEAR_SEED);

/// A mask of the `bits` highest bits of a u64.
const fn high_mask(bits: u32) -> u64 {
    !0u64 << (64 - bits)
}

/// Streaming chunk boundary finder. See the module doc for the algorithm.
#[derive(Clone, Debug)]
pub struct Chunker {
    params: ChunkerParams,
    /// Cut mask before `avg` bytes (more bits, so cuts are rarer).
    mask_hard: u64,
    /// Cut mask from `avg` bytes on (fewer bits).
    mask_easy: u64,
    /// Bytes of the current chunk scanned so far.
    pos: usize,
    /// Gear hash of the current chunk (0 until `min` bytes were skipped).
    hash: u64,
}

impl Chunker {
    /// A chunker at the start of a stream.
    pub fn new(params: ChunkerParams) -> Self {
        let bits = params.avg.trailing_zeros();
        Self {
            params,
            mask_hard: high_mask(bits + 2),
            mask_easy: high_mask(bits - 2),
            pos: 0,
            hash: 0,
        }
    }

    /// The parameters this chunker cuts with.
    pub fn params(&self) -> ChunkerParams {
        self.params
    }

    /// Scans `data`, the bytes that follow everything scanned so far. Returns `Some(n)` when a
    /// chunk boundary lies after `data[..n]` (the current chunk ends there; the state resets
    /// and the caller calls `scan` again with `data[n..]`); `None` when `data` holds no
    /// boundary (all of it belongs to the current chunk).
    pub fn scan(&mut self, data: &[u8]) -> Option<usize> {
        let ChunkerParams { min, avg, max } = self.params;
        let mut i = 0;

        if self.pos < min {
            let skip = (min - self.pos).min(data.len());
            self.pos += skip;
            i = skip;
        }
        if self.pos < avg && i < data.len() {
            let n = (avg - self.pos).min(data.len() - i);
            if let Some(k) = self.find_cut(&data[i..i + n], self.mask_hard) {
                return Some(self.cut(i + k));
            }
            self.pos += n;
            i += n;
        }
        if self.pos < max && i < data.len() {
            let n = (max - self.pos).min(data.len() - i);
            if let Some(k) = self.find_cut(&data[i..i + n], self.mask_easy) {
                return Some(self.cut(i + k));
            }
            self.pos += n;
            i += n;
        }
        if self.pos == max {
            return Some(self.cut(i));
        }
        None
    }

    /// Hashes `data` into the state; `Some(k)` if a cut falls after `data[..k]`.
    ///
    /// Whole groups of [`LANES`] × [`LANE_SPAN`] bytes are scanned by independent lanes (see
    /// [`scan_group`]); a group in which any lane sees a cut, and the rest after the last
    /// whole group, are scanned one byte after the other, so the first cut is found exactly
    /// where the plain loop finds it.
    #[inline(always)]
    fn find_cut(&mut self, data: &[u8], mask: u64) -> Option<usize> {
        let mut done = 0;
        while data.len() - done >= GROUP {
            match scan_group(self.hash, &data[done..done + GROUP], mask) {
                Some(hash) => {
                    self.hash = hash;
                    done += GROUP;
                }
                None => break,
            }
        }
        let mut h = self.hash;
        for (k, &b) in data[done..].iter().enumerate() {
            h = gear_step(h, b);
            if h & mask == 0 {
                return Some(done + k + 1);
            }
        }
        self.hash = h;
        None
    }

    fn cut(&mut self, n: usize) -> usize {
        self.pos = 0;
        self.hash = 0;
        n
    }
}

/// Independent lanes of a group scan (see [`scan_group`]).
const LANES: usize = 4;
/// Bytes each lane covers in a group.
const LANE_SPAN: usize = 8 << 10;
/// Bytes of one group scan.
const GROUP: usize = LANES * LANE_SPAN;
/// The gear hash after any byte depends only on that byte and the 63 before it: older bytes
/// are shifted out of the 64-bit state.
const WINDOW: usize = 64;

#[inline(always)]
fn gear_step(h: u64, b: u8) -> u64 {
    (h << 1).wrapping_add(GEAR[b as usize])
}

/// Scans one group in [`LANES`] interleaved lanes, for instruction-level parallelism: the
/// plain loop is one long dependency chain through the hash. Lane 0 continues from `hash`;
/// every other lane first hashes the [`WINDOW`] bytes before its span, which gives it exactly
/// the hash the plain loop has there (the caller guarantees the plain loop has hashed at least
/// [`WINDOW`] bytes by then: a group's later spans start [`LANE_SPAN`] bytes in). Returns the
/// hash after the group if no byte of it is a cut; `None` if some lane saw a cut, and the
/// caller rescans the group byte by byte to find the first one.
#[inline(always)]
fn scan_group(hash: u64, group: &[u8], mask: u64) -> Option<u64> {
    const _: () = assert!(LANE_SPAN >= WINDOW);
    let lanes: [&[u8]; LANES] = std::array::from_fn(|l| &group[l * LANE_SPAN..][..LANE_SPAN]);
    let mut h = [hash; LANES];
    for l in 1..LANES {
        h[l] = group[l * LANE_SPAN - WINDOW..l * LANE_SPAN]
            .iter()
            .fold(0, |h, &b| gear_step(h, b));
    }
    // The lanes advance in lockstep through one index: that is the point of the loop.
    #[allow(clippy::needless_range_loop)]
    for k in 0..LANE_SPAN {
        let mut hit = false;
        for l in 0..LANES {
            h[l] = gear_step(h[l], lanes[l][k]);
            hit |= h[l] & mask == 0;
        }
        if hit {
            return None;
        }
    }
    Some(h[LANES - 1])
}

/// Lengths of all chunks of `data`, the last one possibly short. For tests and tools.
pub fn chunk_lengths(params: ChunkerParams, data: &[u8]) -> Vec<usize> {
    let mut chunker = Chunker::new(params);
    let mut lengths = Vec::new();
    let mut rest = data;
    while let Some(n) = chunker.scan(rest) {
        lengths.push(n);
        rest = &rest[n..];
    }
    if !rest.is_empty() {
        lengths.push(rest.len());
    }
    lengths
}

#[cfg(test)]
mod tests;
