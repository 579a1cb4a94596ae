//! The pipeline against a dry-run target: what it appends must be exactly what the
//! datastore's chunker cuts from the same bytes, in order, whatever is known.

use std::collections::HashSet;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use datastore::chunker::{ChunkerParams, chunk_lengths};
use datastore::digest::{Digest, ZeroDigests};
use datastore::index::IndexChecksum;

use super::{ChunkedOutcome, ChunkedPlan, Limits, Target, upload_archive};
use crate::archive::EncodeStats;
use crate::upload::{Pause, spawn_producer};

fn params() -> ChunkerParams {
    ChunkerParams::new(16 << 10).unwrap()
}

/// Pseudo-random bytes with a repeated block and a zero run, so that the chunk list holds
/// repeats and an all-zero chunk.
fn data() -> Vec<u8> {
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut out: Vec<u8> = (0..600_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let block = out[..200_000].to_vec();
    out.extend_from_slice(&block);
    out.extend(std::iter::repeat_n(0u8, 300_000));
    out.extend_from_slice(&block);
    out
}

/// (digest, size) of every chunk, as the datastore's chunker cuts `data`.
fn expected_chunks(data: &[u8]) -> Vec<(Digest, u64)> {
    let mut at = 0;
    chunk_lengths(params(), data)
        .into_iter()
        .map(|len| {
            let chunk = &data[at..at + len];
            at += len;
            (Digest::of(chunk), len as u64)
        })
        .collect()
}

async fn run(data: Vec<u8>, parent: HashSet<Digest>) -> ChunkedOutcome {
    let (body, _slot) = spawn_producer(
        move |out: &mut dyn Write| {
            // Odd write sizes: boundaries must not depend on how the stream was split.
            for piece in data.chunks(77_777) {
                out.write_all(piece)?;
            }
            Ok(EncodeStats::default())
        },
        Pause::None,
        Arc::new(AtomicU64::new(0)),
    )
    .unwrap();
    let plan = ChunkedPlan {
        params: params(),
        parent,
        zeros: Arc::new(ZeroDigests::new()),
        limits: Limits::new(),
    };
    upload_archive(body, plan, Target::DryRun).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_what_the_chunker_cuts_and_sends_each_new_chunk_once() {
    let data = data();
    let expected = expected_chunks(&data);
    let outcome = run(data.clone(), HashSet::new()).await;

    let mut csum = IndexChecksum::new();
    let mut end = 0;
    for (digest, size) in &expected {
        end += size;
        csum.add(end, digest);
    }
    let distinct: HashSet<Digest> = expected.iter().map(|(d, _)| *d).collect();
    assert_eq!(outcome.size, data.len() as u64);
    assert_eq!(outcome.chunks, expected.len() as u64);
    assert_eq!(outcome.csum, csum.finish());
    assert_eq!(outcome.uploaded_chunks, distinct.len() as u64);
    assert!(outcome.repeated_chunks > 0, "{outcome:?}");
    assert_eq!(
        outcome.uploaded_chunks + outcome.repeated_chunks,
        outcome.chunks
    );
    assert_eq!(outcome.reused_chunks, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parent_chunks_are_not_sent() {
    let data = data();
    let expected = expected_chunks(&data);
    let parent: HashSet<Digest> = expected.iter().map(|(d, _)| *d).collect();
    let outcome = run(data.clone(), parent).await;
    assert_eq!(outcome.uploaded_chunks, 0);
    assert_eq!(outcome.uploaded_plain, 0);
    assert_eq!(outcome.reused_chunks, expected.len() as u64);

    // Change the middle: only the chunks around the change are new.
    let mut changed = data.clone();
    for b in &mut changed[300_000..301_000] {
        *b ^= 0xff;
    }
    let parent: HashSet<Digest> = expected.iter().map(|(d, _)| *d).collect();
    let outcome = run(changed, parent).await;
    assert!(
        (1..=3).contains(&outcome.uploaded_chunks),
        "a 1000-byte change sent {} chunks",
        outcome.uploaded_chunks
    );
}

#[tokio::test]
async fn a_failed_encoder_fails_the_pipeline() {
    let (body, _slot) = spawn_producer(
        |out: &mut dyn Write| {
            out.write_all(&[7u8; 100_000])?;
            anyhow::bail!("disk went away")
        },
        Pause::None,
        Arc::new(AtomicU64::new(0)),
    )
    .unwrap();
    let plan = ChunkedPlan {
        params: params(),
        parent: HashSet::new(),
        zeros: Arc::new(ZeroDigests::new()),
        limits: Limits::new(),
    };
    let err = upload_archive(body, plan, Target::DryRun)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("disk went away"), "{err:#}");
}
