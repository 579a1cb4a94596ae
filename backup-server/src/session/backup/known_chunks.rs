//! The rules of chunked mode, pure: which digests a session may append (its known-chunk
//! map), how an append batch extends an index, and what a close must match.
//!
//! A client may append only a chunk that it uploaded in this session (the server checked its
//! digest and size) or that the parent index it downloaded holds (the server touched it), and
//! only with that chunk's true size. A batch is checked whole before anything of it is
//! written, so a refused batch changes nothing. No IO here: the session applies a checked
//! [`AppendPlan`] to its index writer.

use std::collections::HashMap;

use datastore::digest::Digest;
use datastore::index::{IndexChecksum, IndexEntry};
use protocol::types::AppendChunk;

/// Where the session learned of a chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ChunkOrigin {
    /// Listed by the parent index the client downloaded (not sent in this session).
    Parent,
    /// Uploaded, checked and stored in this session.
    Uploaded,
}

/// Digests the session accepts in appends, with their plain sizes.
#[derive(Debug, Default)]
pub(super) struct KnownChunks {
    map: HashMap<Digest, (u64, ChunkOrigin)>,
}

impl KnownChunks {
    /// Registers a chunk of the parent index; an upload of the same chunk stays an upload.
    pub(super) fn register_parent(&mut self, digest: Digest, size: u64) {
        self.map
            .entry(digest)
            .or_insert((size, ChunkOrigin::Parent));
    }

    /// Registers a chunk whose upload the server checked.
    pub(super) fn register_upload(&mut self, digest: Digest, size: u64) {
        self.map.insert(digest, (size, ChunkOrigin::Uploaded));
    }

    pub(super) fn get(&self, digest: &Digest) -> Option<(u64, ChunkOrigin)> {
        self.map.get(digest).copied()
    }
}

/// Why an append batch was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum AppendError {
    #[error("chunk {position} of the batch: '{value}' is not a 64-digit hex digest")]
    BadDigest { position: usize, value: String },
    #[error(
        "chunk {digest} was not uploaded in this session and not in the parent index: \
         refusing to append it"
    )]
    Unknown { digest: Digest },
    #[error("chunk {digest} has {known} bytes, the append says {declared}")]
    WrongSize {
        digest: Digest,
        declared: u64,
        known: u64,
    },
    #[error("appending chunk {digest} would make the archive larger than 2^64 bytes")]
    Overflow { digest: Digest },
}

/// A checked batch: the entries to write, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AppendPlan {
    pub(super) entries: Vec<IndexEntry>,
    /// Entries whose chunk came from the parent index (not uploaded in this session).
    pub(super) reused: u64,
}

/// What an index holds so far: running size, entry count and checksum.
#[derive(Clone, Default)]
pub(super) struct AppendState {
    pub(super) size: u64,
    pub(super) chunks: u64,
    pub(super) reused: u64,
    csum: IndexChecksum,
}

/// A close whose numbers differ from what the server appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the close does not match what this session appended: {}", .mismatches.join("; "))]
pub(super) struct CloseMismatch {
    mismatches: Vec<String>,
}

impl AppendState {
    /// Checks a batch against the known chunks: every digest parses, is known, and has its
    /// true size. Nothing changes; [`apply`](Self::apply) commits the plan.
    pub(super) fn plan(
        &self,
        batch: &[AppendChunk],
        known: &KnownChunks,
    ) -> Result<AppendPlan, AppendError> {
        let mut end = self.size;
        let mut plan = AppendPlan {
            entries: Vec::with_capacity(batch.len()),
            reused: 0,
        };
        for (position, chunk) in batch.iter().enumerate() {
            let digest: Digest = chunk.digest.parse().map_err(|_| AppendError::BadDigest {
                position,
                value: shorten(&chunk.digest),
            })?;
            let (known_size, origin) = known.get(&digest).ok_or(AppendError::Unknown { digest })?;
            if known_size != chunk.size {
                return Err(AppendError::WrongSize {
                    digest,
                    declared: chunk.size,
                    known: known_size,
                });
            }
            // Known sizes are never 0 (an upload of an empty chunk is refused, index
            // entries are strictly increasing), so ends keep increasing.
            end = end
                .checked_add(known_size)
                .ok_or(AppendError::Overflow { digest })?;
            if origin == ChunkOrigin::Parent {
                plan.reused += 1;
            }
            plan.entries.push(IndexEntry { end, digest });
        }
        Ok(plan)
    }

    /// Records a plan that was written to the index.
    pub(super) fn apply(&mut self, plan: &AppendPlan) {
        for entry in &plan.entries {
            self.csum.add(entry.end, &entry.digest);
            self.size = entry.end;
            self.chunks += 1;
        }
        self.reused += plan.reused;
    }

    /// The index checksum of the entries so far.
    pub(super) fn csum(&self) -> Digest {
        self.csum.clone().finish()
    }

    /// Compares what the client says it wrote with what the server appended.
    pub(super) fn check_close(
        &self,
        chunk_count: u64,
        size: u64,
        csum: &Digest,
    ) -> Result<(), CloseMismatch> {
        let mut mismatches = Vec::new();
        if chunk_count != self.chunks {
            mismatches.push(format!(
                "chunk-count: client {chunk_count}, server {}",
                self.chunks
            ));
        }
        if size != self.size {
            mismatches.push(format!("size: client {size}, server {}", self.size));
        }
        let ours = self.csum();
        if *csum != ours {
            mismatches.push(format!("csum: client {csum}, server {ours}"));
        }
        if mismatches.is_empty() {
            Ok(())
        } else {
            Err(CloseMismatch { mismatches })
        }
    }
}

/// A client's value quoted in an error, cut to a readable length.
fn shorten(value: &str) -> String {
    if value.chars().count() <= 80 {
        value.to_string()
    } else {
        let head: String = value.chars().take(80).collect();
        format!("{head}...")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u8) -> Digest {
        Digest::of(&[n])
    }

    fn append(digest: &Digest, size: u64) -> AppendChunk {
        AppendChunk {
            digest: digest.to_hex(),
            size,
        }
    }

    fn known() -> KnownChunks {
        let mut known = KnownChunks::default();
        known.register_parent(digest(1), 100);
        known.register_parent(digest(2), 50);
        known.register_upload(digest(3), 70);
        // An upload of a parent chunk makes it an upload; a later parent listing does not
        // turn it back.
        known.register_upload(digest(2), 50);
        known.register_parent(digest(3), 70);
        known
    }

    #[test]
    fn origins_prefer_uploads() {
        let known = known();
        assert_eq!(known.get(&digest(1)), Some((100, ChunkOrigin::Parent)));
        assert_eq!(known.get(&digest(2)), Some((50, ChunkOrigin::Uploaded)));
        assert_eq!(known.get(&digest(3)), Some((70, ChunkOrigin::Uploaded)));
        assert_eq!(known.get(&digest(4)), None);
    }

    #[test]
    fn batches_extend_the_index_and_count_reuse() {
        let known = known();
        let mut state = AppendState::default();
        let plan = state
            .plan(
                &[
                    append(&digest(1), 100),
                    append(&digest(3), 70),
                    append(&digest(1), 100),
                ],
                &known,
            )
            .unwrap();
        let ends: Vec<u64> = plan.entries.iter().map(|e| e.end).collect();
        assert_eq!(ends, vec![100, 170, 270]);
        assert_eq!(plan.reused, 2);
        state.apply(&plan);
        let plan = state.plan(&[append(&digest(2), 50)], &known).unwrap();
        assert_eq!(plan.entries[0].end, 320);
        assert_eq!(plan.reused, 0);
        state.apply(&plan);
        assert_eq!((state.size, state.chunks, state.reused), (320, 4, 2));

        let mut csum = IndexChecksum::new();
        for (end, n) in [(100, 1), (170, 3), (270, 1), (320, 2)] {
            csum.add(end, &digest(n));
        }
        let csum = csum.finish();
        assert_eq!(state.csum(), csum);
        assert!(state.check_close(4, 320, &csum).is_ok());
    }

    #[test]
    fn refused_batches_change_nothing() {
        let known = known();
        let mut state = AppendState::default();
        state.apply(&state.plan(&[append(&digest(1), 100)], &known).unwrap());
        let before = (state.size, state.chunks, state.reused, state.csum());
        let unknown = digest(9);
        let cases: Vec<(Vec<AppendChunk>, AppendError)> = vec![
            (
                vec![append(&digest(3), 70), append(&unknown, 10)],
                AppendError::Unknown { digest: unknown },
            ),
            (
                vec![append(&digest(3), 71)],
                AppendError::WrongSize {
                    digest: digest(3),
                    declared: 71,
                    known: 70,
                },
            ),
            (
                vec![
                    append(&digest(3), 70),
                    AppendChunk {
                        digest: "xyz".into(),
                        size: 1,
                    },
                ],
                AppendError::BadDigest {
                    position: 1,
                    value: "xyz".into(),
                },
            ),
        ];
        for (batch, expected) in cases {
            assert_eq!(state.plan(&batch, &known), Err(expected));
            assert_eq!(
                (state.size, state.chunks, state.reused, state.csum()),
                before
            );
        }
        let message = state
            .plan(&[append(&unknown, 10)], &known)
            .unwrap_err()
            .to_string();
        assert!(message.contains(&unknown.to_hex()), "{message}");
        assert!(
            message.contains("not uploaded in this session"),
            "{message}"
        );
    }

    #[test]
    fn huge_sizes_overflow_cleanly() {
        let mut known = KnownChunks::default();
        known.register_upload(digest(1), u64::MAX - 5);
        let state = AppendState::default();
        assert!(matches!(
            state.plan(
                &[
                    append(&digest(1), u64::MAX - 5),
                    append(&digest(1), u64::MAX - 5)
                ],
                &known
            ),
            Err(AppendError::Overflow { .. })
        ));
    }

    #[test]
    fn long_bad_digests_are_shortened() {
        let state = AppendState::default();
        let err = state
            .plan(
                &[AppendChunk {
                    digest: "a".repeat(10_000),
                    size: 1,
                }],
                &KnownChunks::default(),
            )
            .unwrap_err()
            .to_string();
        assert!(err.len() < 200, "{err}");
    }

    #[test]
    fn close_names_every_mismatch_with_both_values() {
        let mut known = KnownChunks::default();
        known.register_upload(digest(1), 10);
        let mut state = AppendState::default();
        state.apply(&state.plan(&[append(&digest(1), 10)], &known).unwrap());
        let csum = state.csum();
        assert!(state.check_close(1, 10, &csum).is_ok());
        let wrong = digest(7);
        let err = state.check_close(2, 11, &wrong).unwrap_err().to_string();
        assert!(err.contains("chunk-count: client 2, server 1"), "{err}");
        assert!(err.contains("size: client 11, server 10"), "{err}");
        assert!(
            err.contains(&format!("csum: client {wrong}, server {csum}")),
            "{err}"
        );
        let err = state.check_close(1, 10, &wrong).unwrap_err().to_string();
        assert!(
            !err.contains("chunk-count") && err.contains("csum"),
            "{err}"
        );
        // An empty index has the checksum of no entries.
        let empty = AppendState::default();
        assert!(
            empty
                .check_close(0, 0, &IndexChecksum::new().finish())
                .is_ok()
        );
    }
}
