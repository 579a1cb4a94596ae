//! Which chunks of the previous payload stream an unchanged file re-uses, and where its
//! content then lies in the new payload stream.
//!
//! Chunks are re-used whole, so they may carry bytes of files that changed or are gone:
//! *padding*. Every chunk appended is remembered with its new position, so later files in
//! it cost nothing (their metadata may point back into it: payload offsets need not grow
//! in metadata order). A file is read again instead when re-using it would append
//! - chunks that the new payload already holds elsewhere and that outweigh the file, or
//! - chunks that were more than [`MAX_PADDING_PERCENT`] dead already in the previous
//!   archive (bytes no previous file used, as the previous backup recorded them:
//!   [`PreviousPayload::set_dead`]), unless the file outweighs their dead bytes: so
//!   mostly-dead chunks are rewritten compactly instead of being carried on forever;
//! - or when the padding would exceed twice that share of the payload (plus a slack of
//!   two chunks, since a chunk is padding until the files in it have been seen): the
//!   last line of defence.
//!
//! Pure: offsets and chunk numbers in, offsets and chunk numbers out. The encoder asks,
//! the sink appends.

use std::collections::HashMap;
use std::ops::Range;

use datastore::digest::Digest;

/// Largest share of padding in the chunks a run appends.
pub(crate) const MAX_PADDING_PERCENT: u64 = 10;

/// One chunk of the previous payload that the new payload re-uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReusedChunk {
    pub digest: Digest,
    pub size: u64,
    /// Where the chunk starts in the previous payload stream.
    pub old_start: u64,
}

/// The previous payload stream's chunks (its index).
#[derive(Debug, Clone, Default)]
pub struct PreviousPayload {
    digests: Vec<Digest>,
    /// End offset of each chunk, increasing.
    ends: Vec<u64>,
    /// Bytes of each chunk that the previous archive's files use, when it recorded them.
    live: Option<Vec<u64>>,
}

impl PreviousPayload {
    /// From (digest, end offset) pairs in index order; `None` if the ends do not increase.
    pub fn new(chunks: impl IntoIterator<Item = (Digest, u64)>) -> Option<Self> {
        let mut payload = PreviousPayload::default();
        for (digest, end) in chunks {
            if end <= payload.len() {
                return None;
            }
            payload.digests.push(digest);
            payload.ends.push(end);
        }
        Some(payload)
    }

    pub(crate) fn len(&self) -> u64 {
        self.ends.last().copied().unwrap_or(0)
    }

    /// Takes the previous archive's own account of its dead bytes (`ReuseStats`' list:
    /// chunk start offset, dead bytes) instead of measuring: every chunk not listed was
    /// fully used. Entries that name no chunk start are ignored.
    pub fn set_dead(&mut self, dead: &[(u64, u64)]) {
        let mut live: Vec<u64> = (0..self.ends.len()).map(|k| self.bytes(k..k + 1)).collect();
        for &(offset, bytes) in dead {
            let k = self.ends.partition_point(|&e| e <= offset);
            if k < live.len() && self.start(k) == offset {
                live[k] = live[k].saturating_sub(bytes);
            }
        }
        self.live = Some(live);
    }

    /// Bytes of chunk `k` no previous file used (0 when not recorded).
    fn dead(&self, k: usize) -> u64 {
        self.live
            .as_ref()
            .map_or(0, |live| self.bytes(k..k + 1).saturating_sub(live[k]))
    }

    fn start(&self, chunk: usize) -> u64 {
        if chunk == 0 { 0 } else { self.ends[chunk - 1] }
    }

    fn chunk_at(&self, offset: u64) -> usize {
        self.ends.partition_point(|&end| end <= offset)
    }

    /// The chunks holding `range` (non-empty, inside the stream).
    fn chunks_of(&self, range: &Range<u64>) -> Range<usize> {
        self.chunk_at(range.start)..self.chunk_at(range.end - 1) + 1
    }

    fn bytes(&self, chunks: Range<usize>) -> u64 {
        if chunks.is_empty() {
            return 0;
        }
        self.ends[chunks.end - 1] - self.start(chunks.start)
    }

    fn reused(&self, chunks: Range<usize>) -> Vec<ReusedChunk> {
        chunks
            .map(|i| ReusedChunk {
                digest: self.digests[i],
                size: self.ends[i] - self.start(i),
                old_start: self.start(i),
            })
            .collect()
    }
}

/// What re-use saved and cost in one archive.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReuseStats {
    /// Files whose content was not read.
    pub files: u64,
    /// Their payload bytes (headers and content).
    pub bytes: u64,
    /// Bytes of the previous payload's chunks appended for them.
    pub chunk_bytes: u64,
}

impl ReuseStats {
    /// Appended bytes that belong to no file of the new archive.
    pub fn padding(&self) -> u64 {
        self.chunk_bytes.saturating_sub(self.bytes)
    }
}

/// What to do with an unchanged file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Its payload header is at `offset` once `append` (possibly nothing) is appended.
    Reuse {
        offset: u64,
        append: Vec<ReusedChunk>,
    },
    /// Read it like a changed file.
    Read,
}

#[derive(Debug)]
pub(crate) struct Planner {
    previous: PreviousPayload,
    /// Where the latest copy of each previous chunk appended so far starts in the new
    /// payload.
    placed: HashMap<usize, u64>,
    /// Every copy appended, by its start in the new payload: its size and the bytes of
    /// files in it.
    copies: HashMap<u64, (u64, u64)>,
    /// Padding allowed beyond the percentage: two of the largest previous chunks.
    slack: u64,
    stats: ReuseStats,
}

impl Planner {
    pub(crate) fn new(previous: PreviousPayload) -> Self {
        let largest = (0..previous.ends.len())
            .map(|i| previous.bytes(i..i + 1))
            .max()
            .unwrap_or(0);
        Planner {
            previous,
            placed: HashMap::new(),
            copies: HashMap::new(),
            slack: largest.saturating_mul(2),
            stats: ReuseStats::default(),
        }
    }

    pub(crate) fn stats(&self) -> ReuseStats {
        self.stats
    }

    /// Whether a file's previous payload range (header included) lies inside the previous
    /// payload stream; one that does not cannot be re-used.
    pub(crate) fn in_bounds(&self, range: &Range<u64>) -> bool {
        range.start < range.end && range.end <= self.previous.len()
    }

    /// Where the file at previous `range` goes, given the new payload's length so far.
    pub(crate) fn place(&mut self, range: &Range<u64>, payload_pos: u64) -> Placement {
        let chunks = self.previous.chunks_of(range);
        let len = range.end - range.start;
        let into_first = range.start - self.previous.start(chunks.start);
        let consecutive = self.consecutive_prefix(chunks.clone());
        if consecutive == chunks.end {
            let offset = self.placed[&chunks.start] + into_first;
            self.count(len, 0);
            self.cover(range, chunks);
            return Placement::Reuse {
                offset,
                append: Vec::new(),
            };
        }
        // Continue the payload's last block if it ends with the file's first chunks.
        let last_placed = (consecutive > chunks.start).then(|| consecutive - 1);
        let (new, block_start) = match last_placed {
            Some(last) if self.end_of(last) == Some(payload_pos) => {
                (consecutive..chunks.end, self.placed[&chunks.start])
            }
            _ => (chunks.clone(), payload_pos),
        };
        let new_bytes = self.previous.bytes(new.clone());
        let duplicated: u64 = new
            .clone()
            .filter(|k| self.placed.contains_key(k))
            .map(|k| self.previous.bytes(k..k + 1))
            .sum();
        let dead: u64 = new.clone().map(|k| self.previous.dead(k)).sum();
        // Saturating: a hostile previous index may name chunks near u64::MAX.
        let mostly_dead =
            dead.saturating_mul(100) > new_bytes.saturating_mul(MAX_PADDING_PERCENT) && dead > len;
        let padding = (self.stats.chunk_bytes.saturating_add(new_bytes))
            .saturating_sub(self.stats.bytes.saturating_add(len));
        let budget = (payload_pos.saturating_add(new_bytes) / 100)
            .saturating_mul(2 * MAX_PADDING_PERCENT)
            .saturating_add(self.slack);
        if duplicated > len || mostly_dead || padding > budget {
            return Placement::Read;
        }
        let mut at = payload_pos;
        for k in new.clone() {
            let size = self.previous.bytes(k..k + 1);
            self.placed.insert(k, at);
            self.copies.insert(at, (size, 0));
            at += size;
        }
        self.count(len, new_bytes);
        self.cover(range, chunks);
        Placement::Reuse {
            offset: block_start + into_first,
            append: self.previous.reused(new),
        }
    }

    /// The end of `chunks`' longest prefix placed one after the other (`chunks.start` if
    /// the first is not placed).
    fn consecutive_prefix(&self, chunks: Range<usize>) -> usize {
        let mut k = chunks.start;
        let Some(&first) = self.placed.get(&k) else {
            return k;
        };
        let mut expected = first;
        while k < chunks.end && self.placed.get(&k) == Some(&expected) {
            expected += self.previous.bytes(k..k + 1);
            k += 1;
        }
        k
    }

    /// Where the placed copy of chunk `k` ends in the new payload.
    fn end_of(&self, k: usize) -> Option<u64> {
        self.placed
            .get(&k)
            .map(|start| start + self.previous.bytes(k..k + 1))
    }

    /// Counts the file at previous `range` as used in the copies of `chunks` it now lies in.
    fn cover(&mut self, range: &Range<u64>, chunks: Range<usize>) {
        for k in chunks {
            let start = self.previous.start(k).max(range.start);
            let end = self.previous.ends[k].min(range.end);
            if let Some(copy) = self.placed.get(&k).and_then(|at| self.copies.get_mut(at)) {
                copy.1 += end.saturating_sub(start);
            }
        }
    }

    /// The new payload's dead bytes: (start offset, bytes) of every re-used chunk copy
    /// that holds bytes of no file, by offset. What the next backup needs instead of
    /// measuring (`PreviousPayload::set_dead`).
    pub(crate) fn dead_chunks(&self) -> Vec<(u64, u64)> {
        let mut dead: Vec<(u64, u64)> = self
            .copies
            .iter()
            .filter(|(_, (size, used))| used < size)
            .map(|(&at, (size, used))| (at, size - used))
            .collect();
        dead.sort_unstable();
        dead
    }

    fn count(&mut self, file_bytes: u64, chunk_bytes: u64) {
        self.stats.files += 1;
        self.stats.bytes += file_bytes;
        self.stats.chunk_bytes += chunk_bytes;
    }
}

#[cfg(test)]
#[path = "planner/tests.rs"]
mod tests;
