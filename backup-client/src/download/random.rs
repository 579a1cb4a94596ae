//! Random access to an archive stored as an index: a `PayloadSource` that fetches the
//! chunk holding each requested offset over a reader session, keeps the last few chunks,
//! and (when reading a whole archive) fetches the following chunks ahead.
//!
//! A split archive's payload needs this: metadata members may point back into chunks that
//! came earlier (re-used chunks after new content), so its payload is not read in one
//! forward pass; and a restore of a few files should fetch only their chunks. Used from a
//! blocking thread: it waits on the runtime through a `Handle`.
//!
//! Most payloads are read forward only (every first backup's, and any re-use that kept
//! the old order): chunks behind the one being read are never asked for again. The backup
//! says so in the payload record (`crate::payload_record`); for such a payload the memory
//! that chunks kept behind would take fetches further ahead instead ([`Window`]).

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use api_client::http::Session;
use bytes::Bytes;
use datastore::index::DynamicIndex;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::archive::{FRESH_LIMIT, PayloadSource};

/// Plain bytes of payload kept behind the chunk read last, besides that chunk. New content
/// is held back at most [`FRESH_LIMIT`] before re-used chunks, so a member points back at
/// most that far past the chunk it starts in; one more average chunk covers that chunk.
/// Fewer (2 chunks of 4 MiB) made a restore after a 1% change download 40% more than
/// the archive holds, and take more memory, not less, with the extra downloads.
const CACHED_BYTES: usize = FRESH_LIMIT + (4 << 20);
/// Chunks fetched ahead of the one asked for in a whole-archive read that may go back.
const AHEAD_READING_BACK: usize = 2;
/// Chunks fetched ahead while a whole archive whose payload is in order is read, in the
/// memory that [`CACHED_BYTES`] would take: what the client waits for there is the server's
/// cold reads of chunk files. Corpus b's cold restore (four 256 MiB files) took 1.55-2.13 s
/// against 1.86-2.25 s with 2 ahead and the chunks kept behind (ten alternating pairs, eight
/// won), for 68-73 MiB client RSS against 70-73 (four pairs); 6 ahead took 1.83-2.01 s and
/// 74-85 MiB.
const AHEAD_READING_FORWARD: usize = 4;

/// How far ahead a payload is fetched and how much is kept behind, from how it has been read
/// so far. Pure logic.
#[derive(Debug)]
struct Window {
    /// A whole archive is read (else a few files: nothing is fetched ahead).
    whole: bool,
    /// The highest chunk asked for so far.
    newest: Option<usize>,
    /// Reads may go back: the payload is not known to be in order, or a read asked for a
    /// chunk before `newest`.
    reads_back: bool,
}

impl Window {
    /// `forward_only`: the payload's backup wrote every file's content after the previous
    /// one's. Should a read go back all the same, the window turns to reading back.
    fn new(whole: bool, forward_only: bool) -> Self {
        Self {
            whole,
            newest: None,
            reads_back: !forward_only,
        }
    }

    /// Notes that chunk `i` is asked for.
    fn ask(&mut self, i: usize) {
        match self.newest {
            Some(newest) if i < newest => self.reads_back = true,
            _ => self.newest = Some(i),
        }
    }

    /// The chunks to fetch ahead of chunk `i` of `chunks`. Ahead of the chunk asked for,
    /// not of the newest: a member after fresh content held back points back to the chunks
    /// that follow the previous one, which the reads then go through in order.
    fn ahead(&self, i: usize, chunks: usize) -> std::ops::Range<usize> {
        let count = match (self.whole, self.reads_back) {
            (false, _) => 0,
            (true, false) => AHEAD_READING_FORWARD,
            (true, true) => AHEAD_READING_BACK,
        };
        (i + 1).min(chunks)..(i + 1 + count).min(chunks)
    }

    /// Plain bytes kept behind the chunk fetched last (the chunk before it is kept anyway).
    fn keep_behind(&self) -> usize {
        if self.reads_back { CACHED_BYTES } else { 0 }
    }
}

pub struct IndexedPayload {
    handle: Handle,
    session: Session,
    index: Arc<DynamicIndex>,
    /// Chunk number and plain bytes, least recently used first.
    cache: VecDeque<(usize, Bytes)>,
    /// Plain bytes in `cache`.
    cached_bytes: usize,
    inflight: HashMap<usize, JoinHandle<anyhow::Result<(Bytes, usize)>>>,
    window: Window,
    /// Encoded bytes downloaded.
    downloaded: Arc<AtomicU64>,
}

impl IndexedPayload {
    /// `whole`: the whole archive is read (chunks are fetched ahead), not a few files;
    /// `forward_only`: its backup wrote the payload in order ([`Window::new`]).
    pub fn new(
        handle: Handle,
        session: Session,
        index: DynamicIndex,
        whole: bool,
        forward_only: bool,
        downloaded: Arc<AtomicU64>,
    ) -> Self {
        IndexedPayload {
            handle,
            session,
            index: Arc::new(index),
            cache: VecDeque::new(),
            cached_bytes: 0,
            inflight: HashMap::new(),
            window: Window::new(whole, forward_only),
            downloaded,
        }
    }

    fn start(&mut self, i: usize) {
        if self.inflight.contains_key(&i) || self.cache.iter().any(|(k, _)| *k == i) {
            return;
        }
        let entry = self.index.entries[i];
        let range = self.index.chunk_range(i);
        let sender = self.session.sender.clone();
        let job = self.handle.spawn(super::fetch_chunk(
            sender,
            entry.digest,
            (range.end - range.start) as usize,
        ));
        self.inflight.insert(i, job);
    }

    /// Chunk `i`'s verified bytes.
    fn chunk(&mut self, i: usize) -> io::Result<Bytes> {
        self.window.ask(i);
        if let Some(at) = self.cache.iter().position(|(k, _)| *k == i) {
            let hit = self.cache.remove(at).expect("position is in range");
            let data = hit.1.clone();
            self.cache.push_back(hit);
            return Ok(data);
        }
        self.start(i);
        for k in self.window.ahead(i, self.index.entries.len()) {
            self.start(k);
        }
        let job = self.inflight.remove(&i).expect("started above");
        let (data, encoded) = self
            .handle
            .block_on(job)
            .map_err(io::Error::other)?
            .map_err(|e| io::Error::other(format!("{e:#}")))?;
        self.downloaded.fetch_add(encoded as u64, Ordering::Relaxed);
        self.cached_bytes += data.len();
        self.cache.push_back((i, data.clone()));
        // Keep the newest chunks that cover what the window keeps behind the last one.
        let behind = self.window.keep_behind();
        while let Some((_, oldest)) = self.cache.front()
            && self.cache.len() > 2
            && self.cached_bytes - oldest.len() - data.len() >= behind
        {
            self.cached_bytes -= oldest.len();
            self.cache.pop_front();
        }
        Ok(data)
    }
}

impl PayloadSource for IndexedPayload {
    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let pos = offset + done as u64;
            let i = self.index.find(pos).ok_or(io::ErrorKind::UnexpectedEof)?;
            let chunk = self.chunk(i)?;
            let within = (pos - self.index.chunk_range(i).start) as usize;
            let n = (buf.len() - done).min(chunk.len() - within);
            buf[done..done + n].copy_from_slice(&chunk[within..within + n]);
            done += n;
        }
        Ok(())
    }
}

impl Drop for IndexedPayload {
    /// Fetches ahead that nobody will read are stopped.
    fn drop(&mut self) {
        for job in self.inflight.values() {
            job.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forward_read_fetches_further_ahead_and_keeps_nothing_behind() {
        let mut window = Window::new(true, true);
        for i in [0, 0, 1, 3, 3, 4] {
            window.ask(i);
            assert_eq!(window.ahead(i, 100), i + 1..i + 1 + AHEAD_READING_FORWARD);
        }
        assert_eq!(window.keep_behind(), 0);
        // Not past the last chunk.
        window.ask(98);
        assert_eq!(window.ahead(98, 100), 99..100);
        window.ask(99);
        assert_eq!(window.ahead(99, 100), 100..100);
        assert_eq!(window.keep_behind(), 0);
    }

    #[test]
    fn a_read_back_keeps_chunks_behind_and_fetches_less_ahead() {
        let mut window = Window::new(true, true);
        // A member whose fresh content was held back, then the members after it.
        for i in [0, 5, 6] {
            window.ask(i);
        }
        assert_eq!(window.keep_behind(), 0);
        window.ask(1);
        assert_eq!(window.keep_behind(), CACHED_BYTES);
        assert_eq!(window.ahead(1, 100), 2..2 + AHEAD_READING_BACK);
        // It stays so when the reads go forward again.
        for i in [2, 7, 8] {
            window.ask(i);
            assert_eq!(window.keep_behind(), CACHED_BYTES);
            assert_eq!(window.ahead(i, 100), i + 1..i + 1 + AHEAD_READING_BACK);
        }
    }

    #[test]
    fn a_payload_not_known_to_be_in_order_is_read_as_one_that_goes_back() {
        let mut window = Window::new(true, false);
        window.ask(0);
        assert_eq!(window.keep_behind(), CACHED_BYTES);
        assert_eq!(window.ahead(0, 100), 1..1 + AHEAD_READING_BACK);
    }

    #[test]
    fn a_read_of_a_few_files_fetches_nothing_ahead() {
        let mut window = Window::new(false, true);
        window.ask(3);
        assert!(window.ahead(3, 100).is_empty());
        window.ask(1);
        assert!(window.ahead(1, 100).is_empty());
        assert_eq!(window.keep_behind(), CACHED_BYTES);
    }
}
