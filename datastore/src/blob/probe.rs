//! Guesses from samples whether a chunk is worth compressing, so that random, encrypted and
//! already-compressed data skips zstd: zstd at the store's level still scans such data at
//! only ~1.7 GB/s to find that nothing matches, where a few samples at level 1 cost 3% of
//! that.
//!
//! The guess errs on the side of compressing: a chunk is stored raw only when every sample
//! (one every [`SAMPLE_EVERY`] bytes) fails to shrink by [`MIN_SAVING`]. A compressible
//! stretch shorter than the gap between samples can be missed; it then costs at most that
//! gap's compression. Pure: no IO, and the answer depends only on the data.

use crate::pool::Pool;

/// Bytes per sample.
const SAMPLE: usize = 16 << 10;
/// Distance between the starts of two samples.
const SAMPLE_EVERY: usize = 512 << 10;
/// Data shorter than this is not probed: compressing it whole costs little.
const SMALLEST_PROBED: usize = 4 * SAMPLE;
/// A sample that does not shrink by at least 1/`MIN_SAVING` of its size counts as
/// incompressible.
const MIN_SAVING: usize = 64;

/// Idle level-1 contexts for the samples.
static SAMPLERS: Pool<zstd::bulk::Compressor<'static>> = Pool::new(4);

/// Frees the idle sampling contexts.
pub(super) fn release_idle_contexts() {
    SAMPLERS.clear();
}

/// Whether `data` should be given to zstd: false only when it is long enough to probe and
/// none of its samples compresses.
pub(super) fn worth_compressing(data: &[u8]) -> bool {
    if data.len() < SMALLEST_PROBED {
        return true;
    }
    let Some(mut sampler) = SAMPLERS
        .take()
        .or_else(|| zstd::bulk::Compressor::new(1).ok())
    else {
        return true;
    };
    let mut out = [0u8; SAMPLE - SAMPLE / MIN_SAVING];
    let worth = sample_starts(data.len()).any(|start| {
        let sample = &data[start..(start + SAMPLE).min(data.len())];
        // Too little room makes zstd fail with "destination too small": the sample did
        // not shrink enough.
        let room = sample.len() - sample.len() / MIN_SAVING;
        sampler.compress_to_buffer(sample, &mut out[..room]).is_ok()
    });
    SAMPLERS.give(sampler);
    worth
}

/// Where the samples of `len` bytes start: every [`SAMPLE_EVERY`] bytes, and one at the
/// end, so the last stretch is sampled too.
fn sample_starts(len: usize) -> impl Iterator<Item = usize> {
    let last = len.saturating_sub(SAMPLE);
    (0..last).step_by(SAMPLE_EVERY).chain(std::iter::once(last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::tests::{noise, text};

    #[test]
    fn random_data_is_not_worth_compressing() {
        for len in [SMALLEST_PROBED, 1 << 20, 4 << 20, (16 << 20) - 5] {
            assert!(!worth_compressing(&noise(len, len as u64)), "{len}");
        }
    }

    #[test]
    fn short_data_is_always_compressed() {
        assert!(worth_compressing(&noise(SMALLEST_PROBED - 1, 3)));
        assert!(worth_compressing(&[]));
    }

    #[test]
    fn text_is_worth_compressing() {
        assert!(worth_compressing(&text(4 << 20)));
    }

    #[test]
    fn a_compressible_stretch_anywhere_is_found() {
        // Random data with one stretch of text as long as the gap between samples, at
        // every offset: the stretch holds at least one whole sample wherever it lies.
        let len = 4 << 20;
        for at in (0..=len - SAMPLE_EVERY - SAMPLE).step_by(97 << 10) {
            let mut data = noise(len, at as u64);
            data[at..at + SAMPLE_EVERY + SAMPLE].copy_from_slice(&text(SAMPLE_EVERY + SAMPLE));
            assert!(worth_compressing(&data), "text at {at}");
        }
        // A compressible tail shorter than the gap is caught by the last sample.
        let mut data = noise(len, 9);
        data[len - SAMPLE..].copy_from_slice(&text(SAMPLE));
        assert!(worth_compressing(&data));
    }

    #[test]
    fn samples_cover_the_data_to_its_end() {
        for len in [
            SMALLEST_PROBED,
            SAMPLE_EVERY + 1,
            4 << 20,
            (4 << 20) + 12345,
        ] {
            let starts: Vec<usize> = sample_starts(len).collect();
            assert_eq!(starts[0], 0);
            assert_eq!(*starts.last().unwrap(), len - SAMPLE);
            assert!(
                starts
                    .windows(2)
                    .all(|w| w[1] > w[0] && w[1] - w[0] <= SAMPLE_EVERY)
            );
        }
    }
}
