//! Which chunks of the previous payload stream unchanged files re-use, and where their
//! content then lies in the new payload stream.
//!
//! Unchanged files that follow each other in the previous payload form a *run*. A run's
//! chunks are appended whole, so they may carry bytes of files that are gone or changed:
//! *padding*. Before a run is re-used the planner checks that its padding is at most
//! [`MAX_PADDING_PERCENT`] of the chunk bytes it appends; a run that fails the check is read
//! and sent again instead (its files get fresh chunks), so the store does not fill up with
//! dead bytes. A run that has grown over [`COMMIT_CHUNKS`] chunks with little padding is
//! *committed* early: the rest of it can only add one chunk of tail padding, and its files
//! need not wait in memory.
//!
//! Pure: offsets and chunk numbers in, offsets and chunk numbers out. The encoder holds the
//! waiting files; the sink writes what this module decides.

use std::ops::Range;

use datastore::digest::Digest;

/// Largest share of padding in the chunks a run appends.
pub(crate) const MAX_PADDING_PERCENT: u64 = 10;
/// A run spanning this many chunks with padding within the limit is re-used at once.
pub(crate) const COMMIT_CHUNKS: usize = 8;

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

/// Whether an open run is re-used or read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Reuse,
    Read,
}

/// Previous chunks `first..=last`, appended one after the other at `new_start`.
#[derive(Debug, Clone, Copy)]
struct Appended {
    first: usize,
    last: usize,
    new_start: u64,
}

#[derive(Debug, Clone)]
struct Run {
    /// Previous payload bytes from the run's first file to the end of its last.
    span: Range<u64>,
    /// Bytes of the run's files (`span` minus gaps).
    used: u64,
    chunks: Range<usize>,
    committed: bool,
}

#[derive(Debug)]
pub(crate) struct Planner {
    previous: PreviousPayload,
    appended: Option<Appended>,
    run: Option<Run>,
    stats: ReuseStats,
}

impl Planner {
    pub(crate) fn new(previous: PreviousPayload) -> Self {
        Planner {
            previous,
            appended: None,
            run: None,
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

    /// Whether the file at `range` continues the open run: it starts at or after the run's
    /// end and at most one chunk further (a gap of whole chunks ends the run).
    pub(crate) fn continues_run(&self, range: &Range<u64>) -> bool {
        self.run.as_ref().is_some_and(|run| {
            range.start >= run.span.end && self.previous.chunk_at(range.start) <= run.chunks.end
        })
    }

    /// Adds a file to the open run (`continues_run` said yes) or opens a run with it (no
    /// run is open). Returns whether the run is committed.
    pub(crate) fn add(&mut self, range: Range<u64>) -> bool {
        let chunks = self.previous.chunks_of(&range);
        let len = range.end - range.start;
        let run = self.run.get_or_insert(Run {
            span: range.start..range.start,
            used: 0,
            chunks: chunks.start..chunks.start,
            committed: false,
        });
        run.span.end = range.end;
        run.used += len;
        run.chunks.end = chunks.end;
        run.committed
    }

    pub(crate) fn has_run(&self) -> bool {
        self.run.is_some()
    }

    pub(crate) fn run_committed(&self) -> bool {
        self.run.as_ref().is_some_and(|run| run.committed)
    }

    /// The open run may be decided before it ends: it is long and its padding so far is
    /// within the limit.
    pub(crate) fn ready_to_commit(&self, payload_pos: u64) -> bool {
        self.run.as_ref().is_some_and(|run| {
            !run.committed && run.chunks.len() >= COMMIT_CHUNKS && self.padding_ok(run, payload_pos)
        })
    }

    /// Decides the open run: `Reuse` commits it (its files are then placed with `place`),
    /// `Read` drops it (its files must be read and written as new data).
    pub(crate) fn decide(&mut self, payload_pos: u64) -> Verdict {
        let Some(run) = &self.run else {
            return Verdict::Read;
        };
        if self.padding_ok(run, payload_pos) {
            if let Some(run) = &mut self.run {
                run.committed = true;
            }
            Verdict::Reuse
        } else {
            self.run = None;
            Verdict::Read
        }
    }

    /// Closes the open run (committed or not).
    pub(crate) fn end_run(&mut self) {
        self.run = None;
    }

    /// A file of a committed run: its header's offset in the new payload, given the new
    /// payload's length so far, and the chunks to append before its metadata is written.
    pub(crate) fn place(&mut self, range: &Range<u64>, payload_pos: u64) -> (u64, Vec<ReusedChunk>) {
        let chunks = self.previous.chunks_of(range);
        let appended = match self.continued(payload_pos) {
            Some(mut a) if (a.first..=a.last + 1).contains(&chunks.start) => {
                let new = a.last + 1..chunks.end.max(a.last + 1);
                a.last = a.last.max(chunks.end - 1);
                (a, new)
            }
            _ => (
                Appended {
                    first: chunks.start,
                    last: chunks.end - 1,
                    new_start: payload_pos,
                },
                chunks,
            ),
        };
        let (a, new) = appended;
        self.appended = Some(a);
        let offset = a.new_start + (range.start - self.previous.start(a.first));
        self.stats.files += 1;
        self.stats.bytes += range.end - range.start;
        self.stats.chunk_bytes += self.previous.bytes(new.clone());
        (offset, self.previous.reused(new))
    }

    /// The appended block, if the new payload ends with it (no new data after it).
    fn continued(&self, payload_pos: u64) -> Option<Appended> {
        self.appended.filter(|a| {
            a.new_start + self.previous.bytes(a.first..a.last + 1) == payload_pos
        })
    }

    /// Padding of `run` if it were re-used now: the chunk bytes it would append (minus a
    /// chunk the new payload already ends with) beyond the bytes of its files.
    fn padding_ok(&self, run: &Run, payload_pos: u64) -> bool {
        let mut chunks = run.chunks.clone();
        if let Some(a) = self.continued(payload_pos)
            && (a.first..=a.last).contains(&chunks.start)
        {
            chunks.start = a.last + 1;
        }
        let appended = self.previous.bytes(chunks.start..chunks.end.max(chunks.start));
        let padding = appended.saturating_sub(run.used);
        padding * 100 <= appended * MAX_PADDING_PERCENT
    }
}

#[cfg(test)]
#[path = "planner/tests.rs"]
mod tests;
