//! The split archive layout: a metadata stream (a tar stream in which every regular file
//! is an empty member with PAX records pointing into the payload) and a payload stream
//! (each file's content behind a header that names its length and entry). The format is
//! in `docs/FORMATS.md`, "Split archive layout".
//!
//! Both layouts share the walk, the entry model and the header codec: the encoder hands
//! entries to a `SplitSink` instead of a `TarSink`, and the reader turns metadata members
//! back into the same entries, so an exported tar stream equals the single layout's.
//!
//! Like the rest of the archive module: no network IO, no threads. What uploads the two
//! streams, and what re-uses old payload for unchanged files, lives elsewhere.

mod export;
pub(crate) mod format;
mod payload;
pub(crate) mod planner;
pub(crate) mod previous;
mod reader;
mod select;
mod sink;

pub use export::{ExportStats, TarExport};
pub use format::SplitError;
pub use payload::{PayloadSource, SequentialPayload};
pub use planner::{PreviousPayload, ReuseStats, ReusedChunk};
pub use select::Selection;
pub use sink::PayloadWrite;
pub(crate) use sink::{BytesOnly, FRESH_LIMIT, SplitSink};

#[cfg(test)]
#[path = "split/tests.rs"]
mod tests;
