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
