//! The snapshot manifest, `index.json.blob`: what a finished snapshot contains.
//!
//! JSON (kebab-case keys) inside a blob. The manifest is written last, atomically, and only
//! after every archive was closed and checked: its presence is what makes a snapshot finished.
//! For each file it records the size and checksum that verify and restore check against:
//! the index checksum for a `.didx`, the SHA-256 of the stored blob file for a `.blob`.
//!
//! Pure: serialization only, no IO. Unknown JSON fields are ignored so that newer writers
//! stay readable; the `unprotected` part is free-form (verify state, notes).

use serde::{Deserialize, Serialize};

use crate::blob::{self, BlobError};
use crate::snapshot::SnapshotRef;

/// Largest decoded manifest accepted: far above any real one, small enough to bound memory.
pub const MAX_MANIFEST_SIZE: usize = 16 << 20;

/// The contents of `index.json.blob`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct BackupManifest {
    pub backup_type: String,
    pub backup_id: String,
    pub backup_time: i64,
    pub files: Vec<ManifestFile>,
    #[serde(default)]
    pub unprotected: serde_json::Value,
}

/// One file of a snapshot.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct ManifestFile {
    /// Stored file name (`root.tar.didx`, `catalog.blob`).
    pub filename: String,
    /// Archive size for an index, raw file length for a blob.
    pub size: u64,
    /// Hex: index checksum for `.didx`, SHA-256 of the stored file for `.blob`.
    pub csum: String,
    /// Number of chunks (indexes only).
    #[serde(default)]
    pub chunks: u64,
}

/// Key of the last verify result in the manifest's `unprotected` part.
pub const VERIFY_STATE_KEY: &str = "verify_state";

/// The result of the last verify of a snapshot, kept in the manifest's `unprotected` part as
/// `"verify_state": {"state": "ok", "upid": "...", "time": 1764000000}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VerifyState {
    pub state: VerifyOutcome,
    /// The task that verified.
    pub upid: String,
    /// When the verify job started, seconds since the epoch.
    pub time: i64,
}

/// Whether a verify found the snapshot whole.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum VerifyOutcome {
    Ok,
    Failed,
}

impl VerifyOutcome {
    /// `ok` or `failed`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
        }
    }
}

impl std::fmt::Display for VerifyOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A manifest that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest blob: {0}")]
    Blob(#[from] BlobError),
    #[error("manifest JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl BackupManifest {
    /// An empty manifest for `snap`.
    pub fn new(snap: &SnapshotRef) -> Self {
        Self {
            backup_type: snap.group.backup_type.to_string(),
            backup_id: snap.group.backup_id.clone(),
            backup_time: snap.time,
            files: Vec::new(),
            unprotected: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    /// The entry for `filename`, if any.
    pub fn file(&self, filename: &str) -> Option<&ManifestFile> {
        self.files.iter().find(|f| f.filename == filename)
    }

    /// True if the manifest describes `snap` (type, id and time; the namespace is not in
    /// the manifest).
    pub fn matches(&self, snap: &SnapshotRef) -> bool {
        self.backup_type == snap.group.backup_type.as_str()
            && self.backup_id == snap.group.backup_id
            && self.backup_time == snap.time
    }

    /// The last verify result, if one is recorded. A malformed entry (written by something
    /// else) reads as none, so the snapshot is simply verified again.
    pub fn verify_state(&self) -> Option<VerifyState> {
        let value = self.unprotected.get(VERIFY_STATE_KEY)?;
        VerifyState::deserialize(value).ok()
    }

    /// Records a verify result, keeping the rest of `unprotected`. An `unprotected` part
    /// that is not a JSON object (absent in old manifests) is replaced by one.
    pub fn set_verify_state(&mut self, state: &VerifyState) {
        if !self.unprotected.is_object() {
            self.unprotected = serde_json::Value::Object(serde_json::Map::new());
        }
        if let serde_json::Value::Object(map) = &mut self.unprotected {
            // A string, an enum and an integer: serializing cannot fail.
            let value = serde_json::to_value(state).expect("verify state serializes to JSON");
            map.insert(VERIFY_STATE_KEY.to_owned(), value);
        }
    }

    /// The manifest as a compressed blob.
    pub fn to_blob(&self) -> Vec<u8> {
        // Serializing strings, integers and a `Value` cannot fail: `Value` maps have string
        // keys by construction.
        let json = serde_json::to_vec(self).expect("manifest serializes to JSON");
        blob::encode(&json, true)
    }

    /// Decodes a manifest blob (CRC checked, size bounded by [`MAX_MANIFEST_SIZE`]).
    pub fn from_blob(blob: &[u8]) -> Result<Self, ManifestError> {
        let json = blob::decode(blob, MAX_MANIFEST_SIZE)?;
        Ok(serde_json::from_slice(&json)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{BackupType, Namespace};
    use crate::snapshot::BackupGroup;

    fn sample() -> BackupManifest {
        let group = BackupGroup::new(Namespace::root(), BackupType::Host, "web1").unwrap();
        let mut m = BackupManifest::new(&SnapshotRef::new(group, 1_764_000_000).unwrap());
        m.files.push(ManifestFile {
            filename: "root.tar.didx".into(),
            size: 12345,
            csum: "ab".repeat(32),
            chunks: 3,
        });
        m.unprotected = serde_json::json!({"notes": "first"});
        m
    }

    #[test]
    fn blob_round_trip() {
        let m = sample();
        let back = BackupManifest::from_blob(&m.to_blob()).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.file("root.tar.didx").unwrap().chunks, 3);
        assert!(back.file("other").is_none());
    }

    #[test]
    fn json_field_names_are_kebab_case() {
        let json = serde_json::to_value(sample()).unwrap();
        for key in [
            "backup-type",
            "backup-id",
            "backup-time",
            "files",
            "unprotected",
        ] {
            assert!(json.get(key).is_some(), "{key}");
        }
        assert_eq!(json["backup-type"], "host");
        assert_eq!(json["files"][0]["filename"], "root.tar.didx");
    }

    #[test]
    fn optional_fields_default_and_unknown_fields_are_ignored() {
        let json = br#"{"backup-type":"vm","backup-id":"100","backup-time":5,
            "files":[{"filename":"x.blob","size":1,"csum":"00"}],"signature":"later"}"#;
        let m = BackupManifest::from_blob(&blob::encode(json, false)).unwrap();
        assert_eq!(m.files[0].chunks, 0);
        assert_eq!(m.unprotected, serde_json::Value::Null);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(matches!(
            BackupManifest::from_blob(b"nope"),
            Err(ManifestError::Blob(_))
        ));
        assert!(matches!(
            BackupManifest::from_blob(&blob::encode(b"{}", true)),
            Err(ManifestError::Json(_))
        ));
        let mut b = sample().to_blob();
        let last = b.len() - 1;
        b[last] ^= 1;
        assert!(BackupManifest::from_blob(&b).is_err());
    }

    #[test]
    fn verify_state_round_trips_and_keeps_other_fields() {
        let mut m = sample();
        assert_eq!(m.verify_state(), None);
        let state = VerifyState {
            state: VerifyOutcome::Failed,
            upid: "UPID:verify:1".into(),
            time: 1_764_100_000,
        };
        m.set_verify_state(&state);
        assert_eq!(m.verify_state(), Some(state.clone()));
        assert_eq!(m.unprotected["notes"], "first");
        assert_eq!(
            m.unprotected["verify_state"],
            serde_json::json!({"state": "failed", "upid": "UPID:verify:1", "time": 1_764_100_000})
        );
        let back = BackupManifest::from_blob(&m.to_blob()).unwrap();
        assert_eq!(back.verify_state(), Some(state.clone()));

        let ok = VerifyState {
            state: VerifyOutcome::Ok,
            ..state
        };
        m.set_verify_state(&ok);
        assert_eq!(m.verify_state(), Some(ok.clone()));

        // Old manifests have no `unprotected` object; junk in it reads as "never verified".
        m.unprotected = serde_json::Value::Null;
        assert_eq!(m.verify_state(), None);
        m.set_verify_state(&ok);
        assert_eq!(m.verify_state(), Some(ok));
        m.unprotected = serde_json::json!({"verify_state": {"state": "maybe"}});
        assert_eq!(m.verify_state(), None);
    }

    #[test]
    fn matches_its_snapshot() {
        let m = sample();
        let group = BackupGroup::new(Namespace::root(), BackupType::Host, "web1").unwrap();
        assert!(m.matches(&SnapshotRef::new(group.clone(), 1_764_000_000).unwrap()));
        assert!(!m.matches(&SnapshotRef::new(group, 1_764_000_001).unwrap()));
    }
}
