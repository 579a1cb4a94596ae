//! The access control list and how privileges are computed from it.
//!
//! An entry grants one role to one auth id on one path; with `propagate` it also applies to
//! every path below. For a given auth id the deepest path on the way from `/` that has
//! entries applying to it decides alone: a deeper `NoAccess` entry cuts off a propagated
//! role. A token never has more than its user. The superuser [`ROOT`](super::ids::ROOT) has
//! every privilege and needs no entries.
//!
//! Pure: the tree is loaded and saved by the facade in `access.rs`; nothing here reads
//! files or knows which users exist.

use serde::{Deserialize, Serialize};

use super::ids::{AclPath, Authid};
use super::privileges::{ALL, NONE, Privs, Role};

/// One grant: `role` for `auth_id` on `path` (and below it, with `propagate`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AclEntry {
    pub path: AclPath,
    pub auth_id: Authid,
    pub role: Role,
    pub propagate: bool,
}

/// Every ACL entry, as stored in `acl.json` (a JSON array).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(transparent)]
pub struct AclTree {
    entries: Vec<AclEntry>,
}

impl AclTree {
    pub fn new(entries: Vec<AclEntry>) -> Self {
        Self { entries }
    }

    /// Privileges of `auth_id` on `path`. See the module doc for the rules.
    pub fn privs(&self, auth_id: &Authid, path: &AclPath) -> Privs {
        self.effective(auth_id, path, false)
    }

    /// Everything `auth_id` may do on `path` or on any path below it, OR-ed: whether to show
    /// `path` in a listing at all (a user with rights on one store may see that it exists).
    pub fn any_privs_below(&self, auth_id: &Authid, path: &AclPath) -> Privs {
        if auth_id.is_root() {
            return ALL;
        }
        // Privileges only change at paths that carry entries for the token or its user; any
        // other path below `path` has the privileges of a child of its deepest such ancestor
        // that carries no entries itself (`below = true`).
        let mut candidates = vec![path];
        candidates.extend(
            self.entries
                .iter()
                .filter(|e| e.path.is_below(path) && self.concerns(e, auth_id))
                .map(|e| &e.path),
        );
        let mut privs = NONE;
        for candidate in candidates {
            privs |= self.effective(auth_id, candidate, false);
            if candidate.can_have_children() {
                privs |= self.effective(auth_id, candidate, true);
            }
        }
        privs
    }

    /// Adds `entry`, or updates `propagate` of the entry with the same path, auth id and role.
    pub fn set(&mut self, entry: AclEntry) {
        match self
            .entries
            .iter_mut()
            .find(|e| e.path == entry.path && e.auth_id == entry.auth_id && e.role == entry.role)
        {
            Some(existing) => existing.propagate = entry.propagate,
            None => self.entries.push(entry),
        }
    }

    /// Removes the entries of `auth_id` on `path` (only those with `role`, if given) and
    /// returns how many there were.
    pub fn remove(&mut self, path: &AclPath, auth_id: &Authid, role: Option<Role>) -> usize {
        let before = self.entries.len();
        self.entries.retain(|e| {
            !(e.path == *path && e.auth_id == *auth_id && role.is_none_or(|r| r == e.role))
        });
        before - self.entries.len()
    }

    pub fn entries(&self) -> &[AclEntry] {
        &self.entries
    }

    /// Forgets a deleted user or token. Deleting a user deletes its tokens, so their entries
    /// go too.
    pub fn remove_auth_id(&mut self, auth_id: &Authid) {
        self.entries.retain(|e| {
            e.auth_id != *auth_id && (auth_id.is_token() || e.auth_id.user() != auth_id.user())
        });
    }

    /// True if `entry` can affect what `auth_id` may do: its own, or its user's for a token.
    fn concerns(&self, entry: &AclEntry, auth_id: &Authid) -> bool {
        entry.auth_id == *auth_id
            || (auth_id.is_token()
                && !entry.auth_id.is_token()
                && entry.auth_id.user() == auth_id.user())
    }

    /// Privileges on `path` or, with `below`, on a path under it that has no entries.
    fn effective(&self, auth_id: &Authid, path: &AclPath, below: bool) -> Privs {
        if auth_id.is_root() {
            return ALL;
        }
        let own = self.own(auth_id, path, below);
        if auth_id.is_token() {
            own & self.effective(&Authid::from(auth_id.user().clone()), path, below)
        } else {
            own
        }
    }

    /// The result of `auth_id`'s own entries alone.
    fn own(&self, auth_id: &Authid, path: &AclPath, below: bool) -> Privs {
        let mut on_path = !below;
        for at in path.ancestors() {
            if let Some(privs) = self.roles_at(auth_id, &at, on_path) {
                return privs;
            }
            on_path = false;
        }
        NONE
    }

    /// OR of the roles `auth_id` has at exactly `at`, or `None` if no entry there applies.
    /// Entries on the evaluated path itself always apply; entries above only if propagated.
    fn roles_at(&self, auth_id: &Authid, at: &AclPath, on_path: bool) -> Option<Privs> {
        let mut applies = false;
        let mut privs = NONE;
        for e in &self.entries {
            if e.auth_id == *auth_id && e.path == *at && (on_path || e.propagate) {
                applies = true;
                privs |= e.role.privs();
            }
        }
        applies.then_some(privs)
    }
}

#[cfg(test)]
pub(super) fn entry(path: &str, auth_id: &str, role: Role, propagate: bool) -> AclEntry {
    AclEntry {
        path: path.parse().unwrap(),
        auth_id: auth_id.parse().unwrap(),
        role,
        propagate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::privileges::*;

    fn id(s: &str) -> Authid {
        s.parse().unwrap()
    }

    fn path(s: &str) -> AclPath {
        s.parse().unwrap()
    }

    /// (auth id, path, expected privileges) against one ACL.
    fn check_table(acl: &AclTree, table: &[(&str, &str, Privs)]) {
        for &(auth_id, at, expected) in table {
            let got = acl.privs(&id(auth_id), &path(at));
            assert_eq!(
                got, expected,
                "{auth_id} on {at}: got {got}, want {expected}"
            );
        }
    }

    #[test]
    fn privilege_evaluation() {
        let backup = DATASTORE_BACKUP;
        let acl = AclTree::new(vec![
            entry("/", "admin@local", Role::Admin, true),
            entry("/datastore/st1", "bk@local", Role::DatastoreBackup, false),
            entry("/datastore/st1", "bkp@local", Role::DatastoreBackup, true),
            entry("/", "boss@local", Role::Admin, true),
            entry("/datastore/st1", "boss@local", Role::NoAccess, true),
            entry("/datastore/st2/secret", "boss@local", Role::NoAccess, false),
            entry("/datastore", "two@local", Role::DatastoreBackup, true),
            entry("/datastore", "two@local", Role::DatastoreReader, true),
            entry("/datastore/st1", "aud@local", Role::Audit, false),
            entry("/datastore/st1", "aud@local", Role::DatastoreReader, true),
            // A token with more than its user, and one without entries of its own.
            entry("/datastore", "bkp@local!big", Role::Admin, true),
            entry("/datastore", "admin@local!ro", Role::DatastoreReader, true),
        ]);
        let reader = Role::DatastoreReader.privs();
        check_table(
            &acl,
            &[
                ("root@local", "/", ALL),
                ("root@local", "/datastore/st9/x", ALL),
                ("admin@local", "/", ALL),
                ("admin@local", "/datastore/st1/ns1", ALL),
                // Without propagate: only the path itself.
                ("bk@local", "/datastore/st1", backup),
                ("bk@local", "/datastore/st1/ns1", NONE),
                ("bk@local", "/datastore/st2", NONE),
                ("bk@local", "/", NONE),
                // With propagate: the path and below.
                ("bkp@local", "/datastore/st1", backup),
                ("bkp@local", "/datastore/st1/ns1", backup),
                ("bkp@local", "/datastore/st1/a/b/c/d/e/f/g", backup),
                ("bkp@local", "/datastore/st2", NONE),
                ("bkp@local", "/datastore", NONE),
                ("bkp@local", "/", NONE),
                // NoAccess below a propagated Admin cuts it off (and below, if propagated).
                ("boss@local", "/datastore", ALL),
                ("boss@local", "/datastore/st1", NONE),
                ("boss@local", "/datastore/st1/ns1", NONE),
                ("boss@local", "/datastore/st2", ALL),
                ("boss@local", "/datastore/st2/secret", NONE),
                ("boss@local", "/datastore/st2/secret/inner", ALL),
                // Two roles at one path are OR-ed.
                ("two@local", "/datastore/st1", backup | reader),
                // Non-propagated roles at the path count there only, next to propagated ones.
                ("aud@local", "/datastore/st1", reader | SYS_AUDIT),
                ("aud@local", "/datastore/st1/ns1", reader),
                // A token: its own result limited by its user's.
                ("bkp@local!big", "/datastore/st1", backup),
                ("bkp@local!big", "/datastore/st1/ns1", backup),
                ("bkp@local!big", "/datastore/st2", NONE),
                ("admin@local!ro", "/datastore/st2", reader),
                ("admin@local!ro", "/", NONE),
                ("admin@local!none", "/datastore/st1", NONE),
                ("root@local!admin", "/", NONE),
                ("nobody@local", "/", NONE),
            ],
        );
    }

    #[test]
    fn root_token_gets_its_own_entries() {
        let acl = AclTree::new(vec![entry("/", "root@local!admin", Role::Admin, true)]);
        check_table(
            &acl,
            &[
                ("root@local!admin", "/datastore/st1", ALL),
                ("root@local!other", "/", NONE),
            ],
        );
    }

    #[test]
    fn any_privs_below() {
        let acl = AclTree::new(vec![
            entry("/datastore/st1", "bk@local", Role::DatastoreBackup, false),
            entry(
                "/datastore/st2/ns",
                "deep@local",
                Role::DatastoreReader,
                true,
            ),
            entry("/datastore", "cut@local", Role::Audit, true),
            entry("/datastore/st1", "cut@local", Role::NoAccess, false),
            // The token may administer st3, its user may only read there.
            entry("/datastore/st3", "tok@local!t", Role::DatastoreAdmin, true),
            entry("/datastore/st3", "tok@local", Role::DatastoreReader, true),
            entry(
                "/datastore/st4/ns",
                "tok@local!t",
                Role::DatastoreReader,
                true,
            ),
            // A token can get its user's privileges on a path its user was cut off from above,
            // but only where both have them.
            entry("/datastore", "mix@local!t", Role::DatastoreAdmin, true),
            entry("/datastore/st1", "mix@local!t", Role::NoAccess, false),
            entry("/datastore/st1", "mix@local", Role::DatastoreReader, true),
        ]);
        let below = |auth_id: &str, at: &str| acl.any_privs_below(&id(auth_id), &path(at));
        let reader = Role::DatastoreReader.privs();
        let audit = Role::Audit.privs();
        assert_eq!(below("root@local", "/datastore/st1"), ALL);
        assert_eq!(below("bk@local", "/"), DATASTORE_BACKUP);
        assert_eq!(below("bk@local", "/datastore"), DATASTORE_BACKUP);
        assert_eq!(below("bk@local", "/datastore/st1"), DATASTORE_BACKUP);
        assert_eq!(below("bk@local", "/datastore/st1/ns"), NONE);
        assert_eq!(below("bk@local", "/datastore/st2"), NONE);
        assert_eq!(below("deep@local", "/datastore"), reader);
        assert_eq!(below("deep@local", "/datastore/st2"), reader);
        assert_eq!(below("deep@local", "/datastore/st1"), NONE);
        // Cut off at st1 itself, but not below it (the NoAccess does not propagate).
        assert_eq!(acl.privs(&id("cut@local"), &path("/datastore/st1")), NONE);
        assert_eq!(below("cut@local", "/datastore/st1"), audit);
        assert_eq!(below("tok@local!t", "/datastore"), reader);
        assert_eq!(
            below("tok@local!t", "/datastore/st4"),
            NONE,
            "its user has nothing there"
        );
        assert_eq!(below("tok@local", "/"), reader);
        assert_eq!(below("mix@local!t", "/datastore/st1"), reader);
        assert_eq!(below("mix@local!t", "/datastore/st2"), NONE);
        assert_eq!(below("nobody@local", "/"), NONE);
    }

    #[test]
    fn set_replaces_and_remove_counts() {
        let mut acl = AclTree::default();
        acl.set(entry(
            "/datastore/st1",
            "bob@local",
            Role::DatastoreBackup,
            false,
        ));
        acl.set(entry(
            "/datastore/st1",
            "bob@local",
            Role::DatastoreBackup,
            true,
        ));
        acl.set(entry(
            "/datastore/st1",
            "bob@local",
            Role::DatastoreReader,
            true,
        ));
        assert_eq!(acl.entries().len(), 2);
        assert!(acl.entries()[0].propagate);
        let (path, bob) = (
            "/datastore/st1".parse().unwrap(),
            "bob@local".parse().unwrap(),
        );
        assert_eq!(acl.remove(&path, &bob, Some(Role::Admin)), 0);
        assert_eq!(acl.remove(&path, &bob, Some(Role::DatastoreReader)), 1);
        acl.set(entry("/", "bob@local", Role::Audit, false));
        assert_eq!(acl.remove(&path, &bob, None), 1);
        assert_eq!(acl.entries().len(), 1);
    }

    #[test]
    fn removing_a_user_removes_its_tokens_entries() {
        let mut acl = AclTree::new(vec![
            entry("/", "bob@local", Role::Audit, true),
            entry("/", "bob@local!t1", Role::Audit, true),
            entry("/", "bob@local!t2", Role::Audit, true),
            entry("/", "bobby@local", Role::Audit, true),
        ]);
        acl.remove_auth_id(&"bob@local!t1".parse().unwrap());
        assert_eq!(acl.entries().len(), 3);
        acl.remove_auth_id(&"bob@local".parse().unwrap());
        assert_eq!(
            acl.entries(),
            [entry("/", "bobby@local", Role::Audit, true)]
        );
    }

    #[test]
    fn serde_is_a_kebab_case_array() {
        let acl = AclTree::new(vec![entry(
            "/datastore",
            "bob@local!t",
            Role::NoAccess,
            true,
        )]);
        let json = serde_json::to_string(&acl).unwrap();
        assert_eq!(
            json,
            r#"[{"path":"/datastore","auth-id":"bob@local!t","role":"NoAccess","propagate":true}]"#
        );
        assert_eq!(serde_json::from_str::<AclTree>(&json).unwrap(), acl);
        let bad = json.replace("/datastore", "/datastore/..");
        assert!(serde_json::from_str::<AclTree>(&bad).is_err());
    }
}
