//! Request and answer bodies. Every answer is `{"data": ...}` ([`DataResponse`]); every
//! error is an HTTP status with `{"error": "message"}` ([`ErrorResponse`]).

use serde::{Deserialize, Serialize};

/// Envelope of every successful answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataResponse<T> {
    pub data: T,
}

/// Body of every error answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorResponse {
    pub error: String,
}

/// Answer of [`crate::routes::VERSION`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct VersionResponse {
    pub version: String,
    pub auth_id: String,
}

/// Query of the backup session upgrade request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct BackupParams {
    pub store: String,
    /// Namespace path such as `a/b`; empty or missing is the root namespace.
    #[serde(default)]
    pub ns: String,
    pub backup_type: String,
    pub backup_id: String,
    /// Unix epoch seconds. When missing the server takes the current time, moved past
    /// the group's newest snapshot so that two quick backups never collide.
    #[serde(default)]
    pub backup_time: Option<i64>,
}

/// Query of the reader session upgrade request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ReaderParams {
    pub store: String,
    #[serde(default)]
    pub ns: String,
    pub backup_type: String,
    pub backup_id: String,
    pub backup_time: i64,
}

/// Answer of the upgrade request's session, sent by `GET /session` would be redundant: the
/// server states the snapshot it is writing in the `101` answer's
/// [`SNAPSHOT_HEADER`] header.
pub const SNAPSHOT_HEADER: &str = "x-backup-snapshot";

/// Query of [`crate::routes::SESSION_ARCHIVE`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ArchiveUploadParams {
    /// Archive name such as `root.tar`; stored as `root.tar.didx`.
    pub archive_name: String,
}

/// Answer of [`crate::routes::SESSION_ARCHIVE`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct ArchiveUploadResponse {
    /// Logical size of the archive in bytes.
    pub size: u64,
    /// Chunks the index references.
    pub chunks: u64,
    /// Chunks that were not in the store before.
    pub new_chunks: u64,
    /// Bytes received over the network for this archive (request body).
    pub bytes_received: u64,
    /// Encoded bytes of new chunks written to disk.
    pub bytes_stored: u64,
    /// Hex SHA-256 index checksum.
    pub csum: String,
}

/// Answer of [`crate::routes::DATASTORE_CHUNKER`]: the content-defined chunker's limits in
/// bytes (`min = avg / 4`, `max = avg * 4`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct ChunkerConfig {
    pub avg: u64,
    pub min: u64,
    pub max: u64,
}

/// Answer of [`crate::routes::SESSION_CREATE_INDEX`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct IndexCreated {
    /// Writer id, named by the appends and the close of this index.
    pub wid: u64,
}

/// Query of [`crate::routes::SESSION_CHUNK`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ChunkUploadParams {
    /// The index this chunk is for (its upload statistics count it).
    pub wid: u64,
    /// Hex SHA-256 of the plain chunk.
    pub digest: String,
    /// Plain size of the chunk.
    pub size: u64,
    /// Size of the body (the encoded blob).
    pub encoded_size: u64,
}

/// Answer of [`crate::routes::SESSION_CHUNK`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct ChunkUploaded {
    /// False when the store had the chunk already (it was only touched).
    pub new: bool,
    /// Bytes written to disk (0 when not new).
    pub bytes_stored: u64,
}

/// Query of [`crate::routes::SESSION_APPEND_INDEX`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct IndexParams {
    pub wid: u64,
}

/// One chunk appended to an index.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AppendChunk {
    /// Hex SHA-256 of the plain chunk.
    pub digest: String,
    /// Plain size of the chunk.
    pub size: u64,
}

/// Body of [`crate::routes::SESSION_APPEND_INDEX`]: the next chunks of the archive, in order.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct IndexAppend {
    pub chunks: Vec<AppendChunk>,
}

/// Query of [`crate::routes::SESSION_CLOSE_INDEX`]: what the client wrote, checked against
/// what the server appended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct IndexCloseParams {
    pub wid: u64,
    pub chunk_count: u64,
    /// Archive size in bytes.
    pub size: u64,
    /// Hex SHA-256 index checksum (see the dynamic index format).
    pub csum: String,
}

/// Statistics of a finished backup session: the backup task's result.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct BackupSessionStats {
    /// Request body bytes received: archive streams, chunk uploads and blobs.
    pub bytes_received: u64,
    /// Chunks uploaded by a chunking client.
    pub chunks_uploaded: u64,
    /// Chunks appended by digest from the parent index (not sent).
    pub chunks_reused: u64,
    /// Chunks that were new to the store.
    pub new_chunks: u64,
    /// Encoded bytes written to the chunk store.
    pub bytes_stored: u64,
}

/// Body of [`crate::routes::SESSION_FINISH`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FinishRequest {
    /// Archives the client uploaded; the server refuses to finish when its own list differs.
    pub archives: Vec<String>,
}

/// Answer of [`crate::routes::SESSION_FINISH`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct FinishResponse {
    /// Snapshot path such as `host/web1/2026-11-24T08:00:00Z` (namespace prefix `ns/a/` if any).
    pub snapshot: String,
}

/// One file of a snapshot in a listing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct SnapshotFile {
    pub filename: String,
    /// Logical size (archive bytes for an index, raw size for a blob).
    pub size: u64,
}

/// One finished snapshot in [`crate::routes::SNAPSHOTS`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct SnapshotListItem {
    pub ns: String,
    pub backup_type: String,
    pub backup_id: String,
    pub backup_time: i64,
    pub files: Vec<SnapshotFile>,
    /// Sum of the files' logical sizes.
    pub size: u64,
    /// The last verify's result, if the snapshot was verified.
    #[serde(default)]
    pub verification: Option<VerifyState>,
    #[serde(default)]
    pub protected: bool,
}

/// Verify state of a snapshot, as listed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct VerifyState {
    /// `ok` or `failed`.
    pub state: String,
    /// When the verify ran (epoch seconds).
    pub time: i64,
    /// The task that verified.
    pub upid: String,
}

/// Query naming one snapshot of a datastore.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SnapshotParams {
    #[serde(default)]
    pub ns: String,
    pub backup_type: String,
    pub backup_id: String,
    pub backup_time: i64,
}

/// Body of [`crate::routes::SNAPSHOT_PROTECTED`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ProtectedRequest {
    pub protected: bool,
}

/// Answer of a route that started a task.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct TaskStarted {
    pub upid: String,
}

/// Query of [`crate::routes::TASKS`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TaskListParams {
    /// Only tasks of this type (`backup`, `reader`, `gc`, `verify`, `prune`).
    #[serde(default)]
    pub task_type: Option<String>,
    /// Only tasks of this datastore.
    #[serde(default)]
    pub store: Option<String>,
    /// Only running tasks.
    #[serde(default)]
    pub running: bool,
    /// At most this many, newest first.
    #[serde(default)]
    pub limit: Option<usize>,
}

/// A task's state: `running`, then one of `ok`, `warnings`, `error`, `aborted`, `unknown`
/// (it was running when the server stopped).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct TaskStatus {
    pub upid: String,
    pub task_type: String,
    pub store: Option<String>,
    pub worker_id: Option<String>,
    pub auth_id: String,
    pub start_time: i64,
    pub end_time: Option<i64>,
    pub status: String,
    /// The error message, or the number of warnings.
    pub message: Option<String>,
    /// Task-specific result (e.g. the GC report), when the task has one.
    #[serde(default)]
    pub result: Option<serde_json::Value>,
}

/// Answer of [`crate::routes::TASK_LOG`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct TaskLog {
    /// Lines from `start` on.
    pub lines: Vec<String>,
    /// The line number to ask for next.
    pub next: usize,
    /// Whether the task still runs (more lines may come).
    pub running: bool,
}

/// Body of [`crate::routes::START_VERIFY`]. Without a snapshot, group or namespace, the whole
/// datastore is verified.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct VerifyRequest {
    /// Namespace (and everything below it).
    #[serde(default)]
    pub ns: Option<String>,
    #[serde(default)]
    pub backup_type: Option<String>,
    #[serde(default)]
    pub backup_id: Option<String>,
    #[serde(default)]
    pub backup_time: Option<i64>,
    /// Skip snapshots whose last verify passed less than this many days ago.
    #[serde(default)]
    pub outdated_after_days: Option<u32>,
    /// Only verify snapshots that were never verified.
    #[serde(default)]
    pub only_unverified: bool,
}

/// Keep options of a prune; every field is optional, none set keeps everything.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct KeepOptions {
    #[serde(default)]
    pub keep_last: Option<u64>,
    #[serde(default)]
    pub keep_hourly: Option<u64>,
    #[serde(default)]
    pub keep_daily: Option<u64>,
    #[serde(default)]
    pub keep_weekly: Option<u64>,
    #[serde(default)]
    pub keep_monthly: Option<u64>,
    #[serde(default)]
    pub keep_yearly: Option<u64>,
    /// Keep every snapshot newer than this duration (e.g. `7d`, `1y6m`, `36h`).
    #[serde(default)]
    pub keep_within: Option<String>,
    #[serde(default)]
    pub keep_within_hourly: Option<String>,
    #[serde(default)]
    pub keep_within_daily: Option<String>,
    #[serde(default)]
    pub keep_within_weekly: Option<String>,
    #[serde(default)]
    pub keep_within_monthly: Option<String>,
    #[serde(default)]
    pub keep_within_yearly: Option<String>,
}

/// Body of [`crate::routes::PRUNE`]: prune every group of a namespace, or one group.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PruneRequest {
    #[serde(default)]
    pub ns: String,
    #[serde(default)]
    pub backup_type: Option<String>,
    #[serde(default)]
    pub backup_id: Option<String>,
    #[serde(flatten)]
    pub keep: KeepOptions,
    /// Only compute and return the plan.
    #[serde(default)]
    pub dry_run: bool,
}

/// One snapshot in a prune plan.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct PrunePlanItem {
    /// `type/id/time`.
    pub snapshot: String,
    pub ns: String,
    pub keep: bool,
    /// The rule that kept it (`keep-last`, `keep-daily`, ..., `protected`), or `null`.
    pub reason: Option<String>,
}

/// Answer of [`crate::routes::PRUNE`]: the plan, and the task that executes it (none for a
/// dry run).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct PruneResponse {
    pub plan: Vec<PrunePlanItem>,
    pub upid: Option<String>,
}

/// Answer of [`crate::routes::DATASTORE_STATUS`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct DatastoreStatus {
    pub store: String,
    /// Filesystem of the datastore: total, used and available bytes.
    pub total: u64,
    pub used: u64,
    pub avail: u64,
    pub chunk_count: u64,
    /// Bytes of chunk files on disk.
    pub bytes_stored: u64,
    /// Logical bytes referenced by all snapshots' indexes.
    pub logical_bytes: u64,
    /// logical_bytes / bytes_stored.
    pub dedup_factor: f64,
    pub snapshot_count: u64,
    pub group_count: u64,
    /// The last garbage collection's report, if one ran.
    pub last_gc: Option<serde_json::Value>,
}

/// Query of [`crate::routes::NAMESPACES`]: the namespaces below `parent` (all levels).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct NamespaceListParams {
    #[serde(default)]
    pub parent: String,
}

/// Body of [`crate::routes::CREATE_NAMESPACE`]; the parent must exist.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct NamespaceCreateRequest {
    pub ns: String,
}

/// Query of [`crate::routes::REMOVE_NAMESPACE`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct NamespaceRemoveParams {
    pub ns: String,
    /// Also remove child namespaces and every snapshot in them.
    #[serde(default)]
    pub recursive: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_params_reject_unknown_fields() {
        let err = serde_json::from_str::<BackupParams>(
            r#"{"store":"s","backup-type":"host","backup-id":"a","bogus":1}"#,
        );
        assert!(err.is_err());
    }
}
