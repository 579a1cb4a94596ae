//! Random access to an archive stored as an index: a `PayloadSource` that fetches the
//! chunk holding each requested offset over a reader session, keeps the last few chunks,
//! and (when reading a whole archive) fetches the following chunks ahead.
//!
//! A split archive's payload needs this: metadata members may point back into chunks that
//! came earlier (re-used chunks after new content), so its payload is not read in one
//! forward pass; and a restore of a few files should fetch only their chunks. Used from a
//! blocking thread: it waits on the runtime through a `Handle`.

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

pub struct IndexedPayload {
    handle: Handle,
    session: Session,
    index: Arc<DynamicIndex>,
    /// Chunk number and plain bytes, least recently used first.
    cache: VecDeque<(usize, Bytes)>,
    /// Plain bytes in `cache`.
    cached_bytes: usize,
    inflight: HashMap<usize, JoinHandle<anyhow::Result<(Bytes, usize)>>>,
    /// Chunks fetched ahead of the one asked for (0: only what is asked for).
    ahead: usize,
    /// Encoded bytes downloaded.
    downloaded: Arc<AtomicU64>,
}

impl IndexedPayload {
    /// `ahead`: chunks to fetch ahead (a whole restore), or 0 (a few files).
    pub fn new(
        handle: Handle,
        session: Session,
        index: DynamicIndex,
        ahead: usize,
        downloaded: Arc<AtomicU64>,
    ) -> Self {
        IndexedPayload {
            handle,
            session,
            index: Arc::new(index),
            cache: VecDeque::new(),
            cached_bytes: 0,
            inflight: HashMap::new(),
            ahead,
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
        if let Some(at) = self.cache.iter().position(|(k, _)| *k == i) {
            let hit = self.cache.remove(at).expect("position is in range");
            let data = hit.1.clone();
            self.cache.push_back(hit);
            return Ok(data);
        }
        self.start(i);
        for k in i + 1..(i + 1 + self.ahead).min(self.index.entries.len()) {
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
        // Keep the newest chunks that cover CACHED_BYTES behind the last one.
        while let Some((_, oldest)) = self.cache.front()
            && self.cache.len() > 2
            && self.cached_bytes - oldest.len() - data.len() >= CACHED_BYTES
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
