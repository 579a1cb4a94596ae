//! Privileges and the roles that bundle them.
//!
//! A privilege is one bit of [`Privs`]; a [`Role`] is a fixed set of privileges that an ACL
//! entry grants on a path. The role names are part of the config format and of the API, so
//! they never change. Pure: no IO, no config.

use std::fmt;
use std::ops::{BitAnd, BitAndAssign, BitOr, BitOrAssign};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::AccessError;

/// A set of privileges.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Privs(u32);

/// See the server's status, task lists and configuration.
pub const SYS_AUDIT: Privs = Privs(1 << 0);
/// Change the server's configuration (datastores, users, tokens).
pub const SYS_MODIFY: Privs = Privs(1 << 1);
/// See a datastore, its namespaces, groups and snapshots.
pub const DATASTORE_AUDIT: Privs = Privs(1 << 2);
/// Read (restore) any backup in a datastore.
pub const DATASTORE_READ: Privs = Privs(1 << 3);
/// Create backups (and read, prune and forget the groups one owns).
pub const DATASTORE_BACKUP: Privs = Privs(1 << 4);
/// Change a datastore: namespaces, owners, any group's snapshots, garbage collection.
pub const DATASTORE_MODIFY: Privs = Privs(1 << 5);
/// Prune and forget any group's snapshots.
pub const DATASTORE_PRUNE: Privs = Privs(1 << 6);
/// Start verification jobs.
pub const DATASTORE_VERIFY: Privs = Privs(1 << 7);
/// Change ACLs.
pub const PERMISSIONS_MODIFY: Privs = Privs(1 << 8);

/// No privilege.
pub const NONE: Privs = Privs(0);
/// Every privilege.
pub const ALL: Privs = Privs((1 << 9) - 1);

/// Every privilege with its name, in bit order.
const NAMES: [(Privs, &str); 9] = [
    (SYS_AUDIT, "Sys.Audit"),
    (SYS_MODIFY, "Sys.Modify"),
    (DATASTORE_AUDIT, "Datastore.Audit"),
    (DATASTORE_READ, "Datastore.Read"),
    (DATASTORE_BACKUP, "Datastore.Backup"),
    (DATASTORE_MODIFY, "Datastore.Modify"),
    (DATASTORE_PRUNE, "Datastore.Prune"),
    (DATASTORE_VERIFY, "Datastore.Verify"),
    (PERMISSIONS_MODIFY, "Permissions.Modify"),
];

impl Privs {
    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// `self | other`, usable in constants.
    pub const fn union(self, other: Privs) -> Privs {
        Privs(self.0 | other.0)
    }

    /// True if every privilege of `other` is in `self` (so always for [`NONE`]).
    pub const fn contains(self, other: Privs) -> bool {
        self.0 & other.0 == other.0
    }

    /// True if `self` and `other` share a privilege.
    pub const fn intersects(self, other: Privs) -> bool {
        self.0 & other.0 != 0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The names of the privileges in the set ("Datastore.Backup", ...), in bit order.
    pub fn names(self) -> Vec<&'static str> {
        NAMES
            .iter()
            .filter(|(p, _)| self.contains(*p))
            .map(|(_, name)| *name)
            .collect()
    }
}

impl fmt::Display for Privs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("(none)");
        }
        f.write_str(&self.names().join(", "))
    }
}

impl BitOr for Privs {
    type Output = Privs;
    fn bitor(self, rhs: Privs) -> Privs {
        Privs(self.0 | rhs.0)
    }
}

impl BitOrAssign for Privs {
    fn bitor_assign(&mut self, rhs: Privs) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for Privs {
    type Output = Privs;
    fn bitand(self, rhs: Privs) -> Privs {
        Privs(self.0 & rhs.0)
    }
}

impl BitAndAssign for Privs {
    fn bitand_assign(&mut self, rhs: Privs) {
        self.0 &= rhs.0;
    }
}

/// A named set of privileges granted by an ACL entry.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
pub enum Role {
    Admin,
    Audit,
    DatastoreAdmin,
    DatastoreBackup,
    DatastorePowerUser,
    DatastoreReader,
    /// Grants nothing: an entry with it below a propagated role cuts that role off there.
    NoAccess,
}

impl Role {
    /// Every role, for listings.
    pub const ALL: [Role; 7] = [
        Role::Admin,
        Role::Audit,
        Role::DatastoreAdmin,
        Role::DatastoreBackup,
        Role::DatastorePowerUser,
        Role::DatastoreReader,
        Role::NoAccess,
    ];

    pub fn privs(self) -> Privs {
        match self {
            Role::Admin => ALL,
            Role::Audit => SYS_AUDIT | DATASTORE_AUDIT,
            Role::DatastoreAdmin => {
                DATASTORE_AUDIT
                    | DATASTORE_READ
                    | DATASTORE_BACKUP
                    | DATASTORE_MODIFY
                    | DATASTORE_PRUNE
                    | DATASTORE_VERIFY
            }
            Role::DatastoreBackup => DATASTORE_BACKUP,
            Role::DatastorePowerUser => DATASTORE_BACKUP | DATASTORE_PRUNE,
            Role::DatastoreReader => DATASTORE_AUDIT | DATASTORE_READ | DATASTORE_VERIFY,
            Role::NoAccess => NONE,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "Admin",
            Role::Audit => "Audit",
            Role::DatastoreAdmin => "DatastoreAdmin",
            Role::DatastoreBackup => "DatastoreBackup",
            Role::DatastorePowerUser => "DatastorePowerUser",
            Role::DatastoreReader => "DatastoreReader",
            Role::NoAccess => "NoAccess",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = AccessError;

    fn from_str(s: &str) -> Result<Self, AccessError> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| AccessError::bad_name("role", s, "is not a known role"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_operations() {
        let p = DATASTORE_BACKUP | DATASTORE_PRUNE;
        assert!(p.contains(DATASTORE_BACKUP));
        assert!(p.contains(NONE));
        assert!(!p.contains(DATASTORE_BACKUP | DATASTORE_READ));
        assert!(p.intersects(DATASTORE_BACKUP | DATASTORE_READ));
        assert_eq!(p & DATASTORE_PRUNE, DATASTORE_PRUNE);
        assert!(ALL.contains(PERMISSIONS_MODIFY | SYS_MODIFY));
        const UNION: Privs = DATASTORE_BACKUP.union(DATASTORE_PRUNE);
        assert_eq!(UNION, p);
        assert_eq!(ALL.names().len(), 9);
        assert_eq!(p.names(), ["Datastore.Backup", "Datastore.Prune"]);
        assert_eq!(NONE.to_string(), "(none)");
        assert_eq!(p.to_string(), "Datastore.Backup, Datastore.Prune");
    }

    #[test]
    fn roles_have_their_documented_privileges() {
        assert_eq!(Role::Admin.privs(), ALL);
        assert_eq!(Role::NoAccess.privs(), NONE);
        assert_eq!(
            Role::Audit.privs().names(),
            ["Sys.Audit", "Datastore.Audit"]
        );
        assert!(
            !Role::DatastoreAdmin
                .privs()
                .intersects(SYS_MODIFY | PERMISSIONS_MODIFY)
        );
        assert_eq!(
            Role::DatastoreReader.privs().names(),
            ["Datastore.Audit", "Datastore.Read", "Datastore.Verify"]
        );
    }

    #[test]
    fn role_names_round_trip_through_str_and_serde() {
        for role in Role::ALL {
            assert_eq!(role.to_string().parse::<Role>().unwrap(), role);
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(json, format!("\"{role}\""));
            assert_eq!(serde_json::from_str::<Role>(&json).unwrap(), role);
        }
        assert!("admin".parse::<Role>().is_err());
        assert!(serde_json::from_str::<Role>("\"Root\"").is_err());
    }
}
