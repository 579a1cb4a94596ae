//! The owner of a backup group: the first line of `<group>/owner`, the auth id that made the
//! group's first finished snapshot. Access control (who may add to or read a group) is the
//! server's business; this module only stores the name.

use std::fs;
use std::io;

use super::{DataStore, StoreError, io_error};
use crate::fs_util;
use crate::snapshot::BackupGroup;

/// File name of a group's owner.
pub const OWNER_FILE: &str = "owner";

impl DataStore {
    /// The group's owner, if it has one.
    pub fn group_owner(&self, group: &BackupGroup) -> Result<Option<String>, StoreError> {
        let path = self.group_path(group).join(OWNER_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(text
                .lines()
                .next()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(io_error("read owner", &path)(err)),
        }
    }

    /// Sets the group's owner (atomically); the group directory must exist.
    pub fn set_group_owner(&self, group: &BackupGroup, owner: &str) -> Result<(), StoreError> {
        if owner.is_empty() || owner.contains(['\n', '\0']) {
            return Err(crate::names::NameError::new(
                "owner",
                owner,
                "is empty or has a line break",
            )
            .into());
        }
        let path = self.group_path(group).join(OWNER_FILE);
        fs_util::replace_file(&path, format!("{owner}\n").as_bytes())
            .map_err(io_error("write owner", &path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{BackupType, Namespace};
    use crate::snapshot::SnapshotRef;

    #[test]
    fn owner_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = DataStore::create(&dir.path().join("s")).unwrap();
        let group = BackupGroup::new(Namespace::root(), BackupType::Host, "h").unwrap();
        store
            .create_snapshot_dir(&SnapshotRef::new(group.clone(), 1_700_000_000).unwrap())
            .unwrap();
        assert_eq!(store.group_owner(&group).unwrap(), None);
        store.set_group_owner(&group, "alice@local!backup").unwrap();
        assert_eq!(
            store.group_owner(&group).unwrap().as_deref(),
            Some("alice@local!backup")
        );
        assert!(store.set_group_owner(&group, "a\nb").is_err());
    }
}
