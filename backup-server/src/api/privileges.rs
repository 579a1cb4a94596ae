//! What every REST route requires, in one table. `dispatch` refuses a route that is not in
//! it, and checks the requirement before the handler runs; handlers that also let a
//! group's owner through (backup-only callers on their own groups) check that themselves.
//! The role x route test walks this table, so a new route without an entry fails it.

use protocol::routes::{self, Route};

use crate::access::privileges::{
    DATASTORE_AUDIT, DATASTORE_BACKUP, DATASTORE_MODIFY, DATASTORE_PRUNE, DATASTORE_READ,
    DATASTORE_VERIFY, PERMISSIONS_MODIFY, Privs, SYS_AUDIT, SYS_MODIFY,
};

/// The privilege check of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// No authentication (password login only).
    Public,
    /// Any authenticated caller (the handler limits what it shows to the caller's own).
    Authenticated,
    /// Any of these privileges on `/`.
    System(Privs),
    /// Any of these privileges on `/datastore/{store}` or, when the request names a
    /// namespace (query `ns`), on `/datastore/{store}/{ns}`.
    Datastore(Privs),
    /// Like `Datastore`, but the namespace is in the JSON body: the handler checks it
    /// (with [`super::require_store_privs`]) once it has read the body.
    DatastoreBody(Privs),
}

/// Every REST route and its requirement.
pub const ROUTE_REQUIREMENTS: &[(Route, Requirement)] = &[
    (routes::VERSION, Requirement::Authenticated),
    (routes::OPENAPI, Requirement::Authenticated),
    (routes::LOGIN, Requirement::Public),
    (
        routes::USERS,
        Requirement::System(SYS_AUDIT.union(PERMISSIONS_MODIFY)),
    ),
    (routes::ADD_USER, Requirement::System(PERMISSIONS_MODIFY)),
    (routes::UPDATE_USER, Requirement::System(PERMISSIONS_MODIFY)),
    (routes::REMOVE_USER, Requirement::System(PERMISSIONS_MODIFY)),
    (routes::ADD_TOKEN, Requirement::Authenticated),
    (
        routes::ACL,
        Requirement::System(SYS_AUDIT.union(PERMISSIONS_MODIFY)),
    ),
    (routes::SET_ACL, Requirement::System(PERMISSIONS_MODIFY)),
    (
        routes::SNAPSHOTS,
        Requirement::Datastore(DATASTORE_AUDIT.union(DATASTORE_BACKUP)),
    ),
    (
        routes::FORGET_SNAPSHOT,
        Requirement::Datastore(DATASTORE_MODIFY.union(DATASTORE_PRUNE)),
    ),
    (
        routes::SNAPSHOT_PROTECTED,
        Requirement::Datastore(DATASTORE_MODIFY.union(DATASTORE_BACKUP)),
    ),
    (
        routes::GROUP_OWNER,
        Requirement::Datastore(DATASTORE_MODIFY),
    ),
    (
        routes::DATASTORE_CHUNKER,
        Requirement::Datastore(
            DATASTORE_AUDIT
                .union(DATASTORE_BACKUP)
                .union(DATASTORE_READ),
        ),
    ),
    (
        routes::DATASTORE_STATUS,
        Requirement::Datastore(DATASTORE_AUDIT),
    ),
    (routes::START_GC, Requirement::Datastore(DATASTORE_MODIFY)),
    (
        routes::START_VERIFY,
        Requirement::DatastoreBody(DATASTORE_VERIFY),
    ),
    (
        routes::PRUNE,
        Requirement::DatastoreBody(DATASTORE_MODIFY.union(DATASTORE_PRUNE)),
    ),
    (
        routes::NAMESPACES,
        Requirement::Datastore(DATASTORE_AUDIT.union(DATASTORE_BACKUP)),
    ),
    (
        routes::CREATE_NAMESPACE,
        Requirement::Datastore(DATASTORE_MODIFY),
    ),
    (
        routes::REMOVE_NAMESPACE,
        Requirement::Datastore(DATASTORE_MODIFY),
    ),
    (routes::JOBS, Requirement::System(SYS_AUDIT)),
    (routes::ADD_JOB, Requirement::System(SYS_MODIFY)),
    (routes::UPDATE_JOB, Requirement::System(SYS_MODIFY)),
    (routes::REMOVE_JOB, Requirement::System(SYS_MODIFY)),
    (routes::RUN_JOB, Requirement::System(SYS_MODIFY)),
    (routes::TASKS, Requirement::Authenticated),
    (routes::TASK_STATUS, Requirement::Authenticated),
    (routes::TASK_LOG, Requirement::Authenticated),
    (routes::TASK_ABORT, Requirement::Authenticated),
    (routes::BACKUP, Requirement::Datastore(DATASTORE_BACKUP)),
    (
        routes::READER,
        Requirement::Datastore(DATASTORE_READ.union(DATASTORE_BACKUP)),
    ),
];

/// Privileges that let a caller see every task, not only its own.
pub const TASK_AUDIT: Privs = SYS_AUDIT;
/// Privileges that let a caller abort other callers' tasks.
pub const TASK_ABORT_ANY: Privs = SYS_MODIFY;

/// The requirement of a route; `None` means the route is missing from the table, which
/// `dispatch` answers with a 500 and the route-matrix test reports.
pub fn requirement(route: Route) -> Option<Requirement> {
    ROUTE_REQUIREMENTS
        .iter()
        .find(|(r, _)| *r == route)
        .map(|(_, req)| *req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rest_route_has_a_requirement() {
        for route in routes::REST_ROUTES {
            assert!(
                requirement(*route).is_some(),
                "{route:?} has no privilege requirement"
            );
        }
    }
}
