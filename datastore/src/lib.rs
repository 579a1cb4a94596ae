//! The storage engine of the backup system: chunk, blob and index formats, the chunk store,
//! snapshots and their manifests.
//!
//! The pure parts ([`chunker`], [`blob`], [`index`] codec, [`names`], [`snapshot`] times,
//! [`manifest`], [`digest`], the retention policy [`prune`] and its [`duration`]s) do no IO
//! and are tested with unit and property tests. The IO parts ([`fs_util`], [`chunk_store`],
//! [`index::DynamicIndexWriter`], [`ingest`], [`store`], [`store_admin`], [`verify`]) are
//! blocking: async callers run them on worker threads.
//!
//! What this crate must not do: depend on the wire protocol, the server or the client, or on
//! an async runtime, HTTP or TLS; hold global state (every path and option comes from the
//! caller; the only statics are the codec's [`pool`]s of zstd contexts and scratch buffers,
//! caches that no result depends on); use `unsafe`.
//!
//! # Invariants
//!
//! - A chunk is named by the SHA-256 of its plain data, and stored once, as a blob (magic,
//!   CRC32, raw or zstd payload) at `.chunks/<first 4 hex>/<64 hex>`. Compressed only where
//!   smaller. Decoding never trusts sizes from the input.
//! - Chunk boundaries depend only on content and [`chunker::ChunkerParams`]; the golden test
//!   pins them, because a change loses deduplication against every existing store.
//! - Every file is written as temp file + fsync + rename (+ directory fsync where it
//!   matters): a crash leaves the old state or the new, never a torn file. Temp files have
//!   names that [`fs_util::is_temp_name`] recognises and are never read as data.
//! - Inserting a chunk that exists only updates its atime, which is the GC mark; so a chunk
//!   that a running backup reuses always has a recent atime.
//! - A snapshot is finished iff its manifest `index.json.blob` exists. The manifest is
//!   written last and removed first; unfinished snapshots are never listed.
//! - Every name that becomes a path component is validated in [`names`]: no separators,
//!   traversal, NUL, hidden or option-like names.
//! - Indexes are streamed to disk, never held whole in memory while written; their checksum
//!   covers every entry.
//!
//! # Concurrency
//!
//! | Operation                  | Runs concurrently with            | Why it is safe                         |
//! |----------------------------|-----------------------------------|----------------------------------------|
//! | chunk insert               | any insert, read, touch           | own temp file, atomic rename, same bytes |
//! | chunk dir fsync            | inserts                           | serialized; dirty set re-armed on error |
//! | snapshot dir creation      | other snapshots, listing          | `create_dir` is exclusive per snapshot  |
//! | manifest write / removal   | listing, readers                  | atomic rename; readers see none or all  |
//! | index write                | readers of other snapshots        | temp file until close                   |
//!
//! Serializing sessions of one backup group, and GC against backups (GC's cutoff must be
//! older than the oldest running session), is the caller's job: the server holds the locks.

pub mod blob;
pub mod chunk_store;
pub mod chunker;
pub mod digest;
pub mod direct_io;
pub mod duration;
pub mod file_formats;
pub mod fs_util;
pub mod gc;
pub mod index;
pub mod ingest;
pub mod manifest;
pub mod names;
pub mod pool;
pub mod prune;
pub mod snapshot;
pub mod status;
pub mod store;
pub mod store_admin;
pub mod verify;
