//! The archive upload stream: the tar encoder runs on its own thread and hands its bytes
//! over a bounded channel to an HTTP body that the session streams to the server.
//!
//! A closed channel is never taken as success: when it closes, the body waits for the
//! encoder's final result (a oneshot sent after the encoder returned) and only then ends
//! the stream, cleanly on success and with an error on failure, which resets the HTTP/2
//! stream so that the server discards the archive. This is RELIABILITY.md's
//! notifier-synchronized stream.

use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use datastore::pool::BufferPool;
use hyper::body::{Body, Frame};
use tokio::sync::{mpsc, oneshot};

use crate::archive::{
    ArchiveProgress, EncodeOptions, EncodeStats, PayloadWrite, PreviousEntry, PreviousPayload,
    ReusedChunk,
};
use api_client::http::BoxError;

/// Size of the blocks handed from the encoder to the upload.
const BLOCK_SIZE: usize = 1024 * 1024;
/// Blocks that may wait in the channel: bounds memory to a few MiB.
const CHANNEL_BLOCKS: usize = 4;
/// Idle blocks: a block is read once downstream (cut and copied, or sent) and dropped, so
/// the same few buffers go round instead of a fresh allocation per MiB of archive (page
/// faults, arenas that grow). As many as two streams hold at once (channels, writers, the
/// blocks being cut) and then some: a block freed for want of room costs a fresh one.
static BLOCKS: BufferPool = BufferPool::new(4 * CHANNEL_BLOCKS, BLOCK_SIZE, BLOCK_SIZE);

/// Environment variable of the test-only fault injection. `encoder-fail-after-end` makes
/// the encoder report an error after it has written its last byte; `stall-after-first-block`
/// makes it stop for good after handing over its first block (a client that hangs mid-way,
/// to be killed); `pause-after-first-block:PATH` makes it wait after its first block until
/// PATH exists (a slow client, so that a test can run GC or prune at a known point of a
/// backup). Tests use them to prove that failures leave no snapshot behind and that
/// maintenance never breaks a running backup.
pub const FAULT_ENV: &str = "BACKUP_CLIENT_TEST_FAULT";

/// What the encoder does after handing over its first block (test faults only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pause {
    /// Go on (the normal case).
    None,
    /// Hang until killed.
    Forever,
    /// Wait until this file exists.
    UntilFileExists(PathBuf),
}

impl Pause {
    fn from_fault(fault: Option<&str>) -> Self {
        match fault {
            Some("stall-after-first-block") => Pause::Forever,
            Some(f) => match f.strip_prefix("pause-after-first-block:") {
                Some(path) => Pause::UntilFileExists(PathBuf::from(path)),
                None => Pause::None,
            },
            None => Pause::None,
        }
    }

    fn wait(&self) {
        match self {
            Pause::None => {}
            Pause::Forever => loop {
                std::thread::park();
            },
            Pause::UntilFileExists(path) => {
                while !path.exists() {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
        }
    }
}

/// Where the encoder's final result lands once the body has ended: its statistics, or
/// its error (the HTTP layer reports a failed body only as a reset stream, so the caller
/// reads the real cause here).
pub type StatsSlot = Arc<Mutex<Option<Result<EncodeStats, String>>>>;

/// One stream of the encoder's output: an HTTP body of bytes (`EncoderStream<Bytes>`) or,
/// for the split payload, a stream of [`Piece`]s. Either ends after the encoder's result.
pub struct EncoderStream<T = Bytes> {
    rx: mpsc::Receiver<T>,
    result: oneshot::Receiver<anyhow::Result<EncodeStats>>,
    slot: StatsSlot,
    sent: Arc<AtomicU64>,
    done: bool,
}

/// A piece of a payload stream: bytes, or whole chunks of the previous payload that the
/// stream continues with (the chunker cuts before them and starts afresh after them).
#[derive(Debug, Clone)]
pub enum Piece {
    Data(Bytes),
    Reuse(Vec<ReusedChunk>),
}

/// Bytes an item adds to the `sent` counter.
pub trait ItemLen {
    fn item_len(&self) -> usize;
}

impl ItemLen for Bytes {
    fn item_len(&self) -> usize {
        self.len()
    }
}

impl ItemLen for Piece {
    fn item_len(&self) -> usize {
        match self {
            Piece::Data(data) => data.len(),
            Piece::Reuse(_) => 0,
        }
    }
}

/// Starts encoding `root` with `options` on a new thread. `sent` counts the bytes the
/// body yields.
pub fn spawn_encoder(
    root: PathBuf,
    options: EncodeOptions,
    progress: Arc<ArchiveProgress>,
    sent: Arc<AtomicU64>,
) -> anyhow::Result<(EncoderStream, StatsSlot)> {
    let fault = std::env::var(FAULT_ENV).ok();
    let pause = Pause::from_fault(fault.as_deref());
    let fail_after_end = fault.as_deref() == Some("encoder-fail-after-end");
    spawn_producer(
        move |out| {
            let readahead = crate::prefetch::start(&root, options.excludes.clone());
            // This encoder reads every file.
            readahead.read_content(Arc::clone(&progress));
            let stats = crate::archive::encode_tree_with(&root, &mut *out, &progress, &options)
                .map_err(|e| {
                    anyhow::Error::new(e).context(format!("encoding {}", root.display()))
                })?;
            if fail_after_end {
                out.flush()?;
                anyhow::bail!("injected fault: encoder failed after its last byte");
            }
            Ok(stats)
        },
        pause,
        sent,
    )
}

/// Runs `produce` on a new thread, writing into the returned body. The body ends only
/// after `produce` returned: cleanly with its statistics in the slot, or with its error.
pub fn spawn_producer(
    produce: impl FnOnce(&mut dyn Write) -> anyhow::Result<EncodeStats> + Send + 'static,
    pause: Pause,
    sent: Arc<AtomicU64>,
) -> anyhow::Result<(EncoderStream, StatsSlot)> {
    let (tx, rx) = mpsc::channel(CHANNEL_BLOCKS);
    let (result_tx, result_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("archive-encoder".into())
        .spawn(move || {
            let mut writer = ChannelWriter::new(tx, Some(pause));
            let result = produce(&mut writer).and_then(|stats| {
                writer.flush()?;
                Ok(stats)
            });
            drop(writer);
            // The receiver is gone only when the upload was abandoned; nobody waits then.
            let _ = result_tx.send(result);
        })?;
    let slot: StatsSlot = Arc::new(Mutex::new(None));
    let stream = EncoderStream {
        rx,
        result: result_rx,
        slot: Arc::clone(&slot),
        sent,
        done: false,
    };
    Ok((stream, slot))
}

impl<T: ItemLen> EncoderStream<T> {
    /// The next item; after the last one, the encoder's result (an error ends the stream
    /// with that error). The result also lands in the slot.
    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, String>>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(item)) => {
                self.sent
                    .fetch_add(item.item_len() as u64, Ordering::Relaxed);
                Poll::Ready(Some(Ok(item)))
            }
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                let result = match Pin::new(&mut self.result).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(result) => result,
                };
                self.done = true;
                let result = match result {
                    Ok(Ok(stats)) => Ok(stats),
                    Ok(Err(err)) => Err(format!("{err:#}")),
                    Err(_) => Err("archive encoder ended without a result".to_string()),
                };
                let end = match &result {
                    Ok(_) => None,
                    Err(msg) => Some(Err(msg.clone())),
                };
                *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
                Poll::Ready(end)
            }
        }
    }
}

impl Body for EncoderStream<Bytes> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.poll_item(cx)
            .map(|item| item.map(|r| r.map(Frame::data).map_err(BoxError::from)))
    }
}

impl<T: ItemLen + Unpin> futures_util::Stream for EncoderStream<T> {
    type Item = Result<T, String>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_item(cx)
    }
}

/// Starts encoding `root` in the split layout on a new thread: the metadata stream as an
/// HTTP body, the payload as pieces. With `previous` (the previous split archive's
/// metadata stream and payload index) unchanged files re-use the previous payload.
pub fn spawn_split_encoder(
    root: PathBuf,
    options: EncodeOptions,
    progress: Arc<ArchiveProgress>,
    sent: Arc<AtomicU64>,
    previous: Option<(Box<dyn std::io::Read + Send>, PreviousPayload)>,
) -> anyhow::Result<(EncoderStream<Bytes>, EncoderStream<Piece>, StatsSlot)> {
    let fault = std::env::var(FAULT_ENV).ok();
    let pause = Pause::from_fault(fault.as_deref());
    let fail_after_end = fault.as_deref() == Some("encoder-fail-after-end");
    let (meta_tx, meta_rx) = mpsc::channel(CHANNEL_BLOCKS);
    let (payload_tx, payload_rx) = mpsc::channel(CHANNEL_BLOCKS);
    let (meta_result_tx, meta_result_rx) = oneshot::channel();
    let (payload_result_tx, payload_result_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("archive-encoder".into())
        .spawn(move || {
            let mut meta = ChannelWriter::new(meta_tx, Some(pause));
            let mut payload = ChannelWriter::new(payload_tx, None);
            let encoded = match previous {
                Some((previous_meta, previous_payload)) => {
                    crate::archive::encode_tree_split_reusing(
                        &root,
                        &mut meta,
                        &mut payload,
                        parse_on_thread(previous_meta),
                        previous_payload,
                        &progress,
                        &options,
                    )
                }
                None => crate::archive::encode_tree_split(
                    &root,
                    &mut meta,
                    &mut payload,
                    &progress,
                    &options,
                ),
            };
            let result = encoded
                .map_err(|e| anyhow::Error::new(e).context(format!("encoding {}", root.display())))
                .and_then(|stats| {
                    meta.flush()?;
                    payload.flush()?;
                    if fail_after_end {
                        anyhow::bail!("injected fault: encoder failed after its last byte");
                    }
                    Ok(stats)
                });
            drop((meta, payload));
            let copy = match &result {
                Ok(stats) => Ok(stats.clone()),
                Err(err) => Err(anyhow::anyhow!("{err:#}")),
            };
            // A receiver is gone only when the upload was abandoned; nobody waits then.
            let _ = payload_result_tx.send(copy);
            let _ = meta_result_tx.send(result);
        })?;
    let slot: StatsSlot = Arc::new(Mutex::new(None));
    let meta = EncoderStream {
        rx: meta_rx,
        result: meta_result_rx,
        slot: Arc::clone(&slot),
        sent: Arc::clone(&sent),
        done: false,
    };
    let payload = EncoderStream {
        rx: payload_rx,
        result: payload_result_rx,
        slot: Arc::new(Mutex::new(None)),
        sent,
        done: false,
    };
    Ok((meta, payload, slot))
}

/// Entries parsed per hand-over between the parsing thread and the encoder.
const PARSED_BATCH: usize = 512;
/// Batches that may wait for the encoder.
const PARSED_QUEUE: usize = 8;

/// The previous metadata's entries, parsed on a thread of their own so that parsing runs
/// beside the walk instead of inside it. The thread ends when the stream does (and says
/// so: a thread that dies without saying it is an error entry, not a short stream), or
/// when the encoder stops asking (its channel closes).
fn parse_on_thread(meta: Box<dyn std::io::Read + Send>) -> crate::archive::EntrySource {
    type Batch = Vec<Result<PreviousEntry, String>>;
    // `None` marks the end of the stream.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Option<Batch>>(PARSED_QUEUE);
    let spawned = std::thread::Builder::new()
        .name("previous-meta".into())
        .spawn(move || {
            let mut batch = Vec::with_capacity(PARSED_BATCH);
            for entry in crate::archive::previous_entries(meta) {
                batch.push(entry);
                if batch.len() == PARSED_BATCH {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(PARSED_BATCH));
                    if tx.send(Some(full)).is_err() {
                        return;
                    }
                }
            }
            if tx.send(Some(batch)).is_ok() {
                let _ = tx.send(None);
            }
        });
    if let Err(err) = spawned {
        let failed: Batch = vec![Err(format!("starting the metadata parser: {err}"))];
        return Box::new(failed.into_iter());
    }
    let mut current = Vec::new().into_iter();
    let mut ended = false;
    Box::new(std::iter::from_fn(move || {
        loop {
            if let Some(entry) = current.next() {
                return Some(entry);
            }
            if ended {
                return None;
            }
            match rx.recv() {
                Ok(Some(batch)) => current = batch.into_iter(),
                Ok(None) => ended = true,
                Err(_) => {
                    ended = true;
                    return Some(Err(
                        "the metadata parser stopped before the end of the stream".to_string(),
                    ));
                }
            }
        }
    }))
}

/// `Write` into the channel in blocks; a closed channel is a broken pipe.
struct ChannelWriter<T> {
    tx: mpsc::Sender<T>,
    buf: Vec<u8>,
    /// Applied once, after the first block.
    pause: Option<Pause>,
}

impl<T: From<Bytes>> ChannelWriter<T> {
    fn new(tx: mpsc::Sender<T>, pause: Option<Pause>) -> Self {
        Self {
            tx,
            buf: BLOCKS.take(BLOCK_SIZE),
            pause,
        }
    }

    fn send(&mut self, item: T) -> std::io::Result<()> {
        self.tx.blocking_send(item).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "upload stopped reading the archive",
            )
        })
    }

    fn send_buffer(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let block = std::mem::replace(&mut self.buf, BLOCKS.take(BLOCK_SIZE));
        self.send(T::from(BLOCKS.bytes(block)))?;
        if let Some(pause) = self.pause.take() {
            pause.wait();
        }
        Ok(())
    }
}

impl<T: From<Bytes>> Write for ChannelWriter<T> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let room = BLOCK_SIZE - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= BLOCK_SIZE {
            self.send_buffer()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send_buffer()
    }
}

impl From<Bytes> for Piece {
    fn from(data: Bytes) -> Self {
        Piece::Data(data)
    }
}

impl PayloadWrite for ChannelWriter<Piece> {
    /// The bytes before the chunks go first, then the chunks as one piece.
    fn append_chunks(&mut self, chunks: &[ReusedChunk]) -> std::io::Result<()> {
        self.send_buffer()?;
        self.send(Piece::Reuse(chunks.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn stats() -> EncodeStats {
        EncodeStats {
            entries: 1,
            files: 1,
            ..EncodeStats::default()
        }
    }

    /// Collects the body: the data it yielded and its error, if it ended with one.
    async fn drain(mut body: EncoderStream) -> (usize, Option<String>) {
        let mut len = 0;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => len += frame.into_data().map(|d| d.len()).unwrap_or(0),
                Err(err) => return (len, Some(err.to_string())),
            }
        }
        (len, None)
    }

    #[tokio::test]
    async fn success_ends_the_stream_after_the_result() {
        let sent = Arc::new(AtomicU64::new(0));
        let (body, slot) = spawn_producer(
            |out| {
                out.write_all(&vec![1u8; 3 * BLOCK_SIZE + 17])?;
                Ok(stats())
            },
            Pause::None,
            Arc::clone(&sent),
        )
        .unwrap();
        assert_eq!(drain(body).await, (3 * BLOCK_SIZE + 17, None));
        assert_eq!(sent.load(Ordering::Relaxed), (3 * BLOCK_SIZE + 17) as u64);
        assert!(matches!(*slot.lock().unwrap(), Some(Ok(_))));
    }

    #[tokio::test]
    async fn failure_after_the_last_byte_fails_the_stream() {
        let (body, slot) = spawn_producer(
            |out| {
                out.write_all(&vec![1u8; BLOCK_SIZE + 5])?;
                out.flush()?;
                // Let the consumer see every byte and the closed channel first.
                std::thread::sleep(std::time::Duration::from_millis(100));
                anyhow::bail!("disk went away")
            },
            Pause::None,
            Arc::new(AtomicU64::new(0)),
        )
        .unwrap();
        let (len, err) = drain(body).await;
        assert_eq!(len, BLOCK_SIZE + 5);
        assert!(err.is_some_and(|e| e.contains("disk went away")));
        assert!(matches!(&*slot.lock().unwrap(), Some(Err(e)) if e.contains("disk went away")));
    }

    #[tokio::test]
    async fn a_producer_that_dies_fails_the_stream() {
        let (body, _slot) = spawn_producer(
            |_out| -> anyhow::Result<EncodeStats> { panic!("encoder crashed") },
            Pause::None,
            Arc::new(AtomicU64::new(0)),
        )
        .unwrap();
        let (_, err) = drain(body).await;
        assert!(err.is_some_and(|e| e.contains("without a result")));
    }
}
