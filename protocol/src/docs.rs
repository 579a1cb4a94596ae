//! What each REST route does, takes and answers, for the generated OpenAPI document. The
//! server adds each route's privilege from its own table; a test there fails when a route
//! has no entry here.

use crate::routes::{self, Route};

/// One parameter: name, JSON type, required, description.
pub type Param = (&'static str, &'static str, bool, &'static str);

/// The documentation of one route.
pub struct RouteDoc {
    pub route: Route,
    pub summary: &'static str,
    /// Query parameters (path parameters are the `{name}` segments of the route).
    pub query: &'static [Param],
    /// JSON body fields, if the route takes a JSON body.
    pub body: &'static [Param],
    /// What `data` holds in a 200 answer.
    pub answer: &'static str,
}

const NS: Param = (
    "ns",
    "string",
    false,
    "namespace, e.g. a/b (default: the root namespace)",
);
const SNAPSHOT: &[Param] = &[
    NS,
    ("backup-type", "string", true, "host, vm or ct"),
    ("backup-id", "string", true, "backup id"),
    (
        "backup-time",
        "integer",
        true,
        "snapshot time, Unix epoch seconds",
    ),
];
const KEEP: &[Param] = &[
    ("ns", "string", false, "namespace whose groups are pruned"),
    ("backup-type", "string", false, "one group: its type"),
    ("backup-id", "string", false, "one group: its id"),
    ("keep-last", "integer", false, "keep the N newest"),
    (
        "keep-hourly",
        "integer",
        false,
        "keep the newest of N hours",
    ),
    ("keep-daily", "integer", false, "keep the newest of N days"),
    (
        "keep-weekly",
        "integer",
        false,
        "keep the newest of N ISO weeks",
    ),
    (
        "keep-monthly",
        "integer",
        false,
        "keep the newest of N months",
    ),
    (
        "keep-yearly",
        "integer",
        false,
        "keep the newest of N years",
    ),
    (
        "keep-within",
        "string",
        false,
        "keep all newer than this duration (7d, 1y6m)",
    ),
    (
        "keep-within-daily",
        "string",
        false,
        "newest per day within this duration (also -hourly, -weekly, -monthly, -yearly)",
    ),
    ("dry-run", "boolean", false, "only return the plan"),
];
const JOB_BODY: &[Param] = &[
    (
        "job",
        "object",
        true,
        "{id, job-type (gc|verify|prune), store, ns, schedule, enabled, comment, outdated-after-days, only-unverified, keep-*}",
    ),
    (
        "digest",
        "string",
        false,
        "digest of the jobs config the change is based on (409 if stale)",
    ),
];

/// Every REST route's documentation.
pub const ROUTE_DOCS: &[RouteDoc] = &[
    RouteDoc {
        route: routes::OPENAPI,
        summary: "This API as an OpenAPI 3.1 document",
        query: &[],
        body: &[],
        answer: "the OpenAPI document (not wrapped in data)",
    },
    RouteDoc {
        route: routes::VERSION,
        summary: "Server version and the caller's auth id",
        query: &[],
        body: &[],
        answer: "{version, auth-id}",
    },
    RouteDoc {
        route: routes::LOGIN,
        summary: "Password login (no authentication); failures are rate-limited per address",
        query: &[],
        body: &[
            ("username", "string", true, "user@realm"),
            ("password", "string", true, "password"),
        ],
        answer: "{username, ticket, csrf-token}; use the ticket as 'Authorization: BackupAuthTicket TICKET'",
    },
    RouteDoc {
        route: routes::USERS,
        summary: "List users (never password hashes)",
        query: &[],
        body: &[],
        answer: "[{userid, enable, expire, comment}]",
    },
    RouteDoc {
        route: routes::ADD_USER,
        summary: "Add a user",
        query: &[],
        body: &[
            ("userid", "string", true, "name@realm"),
            (
                "password",
                "string",
                false,
                "at least 8 characters; stored as an argon2id hash",
            ),
            ("comment", "string", false, "free text"),
            ("expire", "integer", false, "epoch seconds"),
            (
                "digest",
                "string",
                false,
                "digest of users.json the change is based on",
            ),
        ],
        answer: "{}",
    },
    RouteDoc {
        route: routes::UPDATE_USER,
        summary: "Enable or disable a user, set its expiry, comment or password",
        query: &[],
        body: &[
            (
                "enable",
                "boolean",
                false,
                "a disabled user and its tokens cannot log in",
            ),
            (
                "expire",
                "integer",
                false,
                "epoch seconds; 0 removes the expiry",
            ),
            ("comment", "string", false, "free text"),
            ("password", "string", false, "new password"),
            (
                "digest",
                "string",
                false,
                "digest of users.json the change is based on",
            ),
        ],
        answer: "{}",
    },
    RouteDoc {
        route: routes::REMOVE_USER,
        summary: "Remove a user with its tokens and ACL entries",
        query: &[],
        body: &[],
        answer: "{}",
    },
    RouteDoc {
        route: routes::ADD_TOKEN,
        summary: "Create an API token for a user (the user itself, or with Permissions.Modify)",
        query: &[],
        body: &[
            ("comment", "string", false, "free text"),
            ("expire", "integer", false, "epoch seconds"),
        ],
        answer: "{tokenid, secret}: the secret is shown only here",
    },
    RouteDoc {
        route: routes::ACL,
        summary: "List ACL entries",
        query: &[],
        body: &[],
        answer: "{entries: [{path, auth-id, role, propagate}], digest}",
    },
    RouteDoc {
        route: routes::SET_ACL,
        summary: "Set or delete an ACL entry",
        query: &[],
        body: &[
            (
                "path",
                "string",
                true,
                "/, /datastore, /datastore/STORE[/NS...]",
            ),
            (
                "role",
                "string",
                true,
                "Admin, Audit, DatastoreAdmin, DatastoreBackup, DatastorePowerUser, DatastoreReader, NoAccess",
            ),
            ("auth-id", "string", true, "user@realm or user@realm!token"),
            (
                "propagate",
                "boolean",
                false,
                "also below the path (default true)",
            ),
            ("delete", "boolean", false, "remove the entry"),
            (
                "digest",
                "string",
                false,
                "digest of acl.json the change is based on",
            ),
        ],
        answer: "{digest}",
    },
    RouteDoc {
        route: routes::SNAPSHOTS,
        summary: "List finished snapshots of a namespace (backup-only callers: their own groups)",
        query: &[NS],
        body: &[],
        answer: "[{ns, backup-type, backup-id, backup-time, files, size, verification, protected}]",
    },
    RouteDoc {
        route: routes::FORGET_SNAPSHOT,
        summary: "Remove a finished, unprotected snapshot",
        query: SNAPSHOT,
        body: &[],
        answer: "{}",
    },
    RouteDoc {
        route: routes::SNAPSHOT_PROTECTED,
        summary: "Set or clear a snapshot's protected flag",
        query: SNAPSHOT,
        body: &[("protected", "boolean", true, "the new flag")],
        answer: "{}",
    },
    RouteDoc {
        route: routes::GROUP_OWNER,
        summary: "Change the owner of a backup group",
        query: &[
            NS,
            ("backup-type", "string", true, "host, vm or ct"),
            ("backup-id", "string", true, "backup id"),
        ],
        body: &[("owner", "string", true, "user@realm or user@realm!token")],
        answer: "{}",
    },
    RouteDoc {
        route: routes::DATASTORE_CHUNKER,
        summary: "The datastore's chunker parameters, which a chunking (chunked-mode) client must cut with",
        query: &[NS],
        body: &[],
        answer: "{avg, min, max} in bytes",
    },
    RouteDoc {
        route: routes::DATASTORE_STATUS,
        summary: "Disk, chunks, dedup factor, snapshot and group counts, last GC",
        query: &[],
        body: &[],
        answer: "{store, total, used, avail, chunk-count, bytes-stored, logical-bytes, dedup-factor, snapshot-count, group-count, last-gc}",
    },
    RouteDoc {
        route: routes::START_GC,
        summary: "Start garbage collection (409 while one runs)",
        query: &[],
        body: &[],
        answer: "{upid}",
    },
    RouteDoc {
        route: routes::START_VERIFY,
        summary: "Start a verify of a snapshot, group, namespace or the whole datastore",
        query: &[],
        body: &[
            ("ns", "string", false, "namespace (and below)"),
            ("backup-type", "string", false, "group type"),
            ("backup-id", "string", false, "group id"),
            ("backup-time", "integer", false, "one snapshot"),
            (
                "outdated-after-days",
                "integer",
                false,
                "skip snapshots verified more recently",
            ),
            (
                "only-unverified",
                "boolean",
                false,
                "only never-verified snapshots",
            ),
        ],
        answer: "{upid}",
    },
    RouteDoc {
        route: routes::PRUNE,
        summary: "Prune: plan per group, then a task removes what no rule keeps",
        query: &[],
        body: KEEP,
        answer: "{plan: [{snapshot, ns, keep, reason}], upid (null for a dry run)}",
    },
    RouteDoc {
        route: routes::NAMESPACES,
        summary: "List namespaces below a parent",
        query: &[("parent", "string", false, "default: the root")],
        body: &[],
        answer: "[\"a\", \"a/b\"]",
    },
    RouteDoc {
        route: routes::CREATE_NAMESPACE,
        summary: "Create a namespace (its parent must exist)",
        query: &[],
        body: &[("ns", "string", true, "e.g. a/b")],
        answer: "{}",
    },
    RouteDoc {
        route: routes::REMOVE_NAMESPACE,
        summary: "Remove a namespace",
        query: &[
            ("ns", "string", true, "namespace"),
            (
                "recursive",
                "boolean",
                false,
                "also children and every snapshot in them",
            ),
        ],
        body: &[],
        answer: "{}",
    },
    RouteDoc {
        route: routes::JOBS,
        summary: "List scheduled jobs with their state",
        query: &[],
        body: &[],
        answer: "{jobs: [{config, state: {last-run-time, last-run-upid, last-run-status, next-run}}], digest}",
    },
    RouteDoc {
        route: routes::ADD_JOB,
        summary: "Add a GC, verify or prune job",
        query: &[],
        body: JOB_BODY,
        answer: "{digest}",
    },
    RouteDoc {
        route: routes::UPDATE_JOB,
        summary: "Replace a job's settings",
        query: &[],
        body: JOB_BODY,
        answer: "{digest}",
    },
    RouteDoc {
        route: routes::REMOVE_JOB,
        summary: "Remove a job and its state",
        query: &[("digest", "string", false, "digest the change is based on")],
        body: &[],
        answer: "{digest}",
    },
    RouteDoc {
        route: routes::RUN_JOB,
        summary: "Run a job now (409 while it runs)",
        query: &[],
        body: &[],
        answer: "{upid}",
    },
    RouteDoc {
        route: routes::TASKS,
        summary: "List tasks, newest first (own tasks; all with Sys.Audit)",
        query: &[
            ("task-type", "string", false, "backup, gc, verify, prune"),
            ("store", "string", false, "datastore"),
            ("running", "boolean", false, "only running"),
            ("limit", "integer", false, "at most N"),
        ],
        body: &[],
        answer: "[TaskStatus]",
    },
    RouteDoc {
        route: routes::TASK_STATUS,
        summary: "A task's status and result",
        query: &[],
        body: &[],
        answer: "{upid, task-type, store, worker-id, auth-id, start-time, end-time, status, message, result}",
    },
    RouteDoc {
        route: routes::TASK_LOG,
        summary: "A task's log from a line on (also while it runs)",
        query: &[("start", "integer", false, "first line, 0-based")],
        body: &[],
        answer: "{lines, next, running}",
    },
    RouteDoc {
        route: routes::TASK_ABORT,
        summary: "Abort a running task",
        query: &[],
        body: &[],
        answer: "{}",
    },
    RouteDoc {
        route: routes::BACKUP,
        summary: "Open a backup session (Upgrade: backup-protocol-v1, then HTTP/2)",
        query: &[
            ("store", "string", true, "datastore"),
            NS,
            ("backup-type", "string", true, "host, vm or ct"),
            ("backup-id", "string", true, "backup id"),
            ("backup-time", "integer", false, "default: now"),
        ],
        body: &[],
        answer: "101 Switching Protocols",
    },
    RouteDoc {
        route: routes::READER,
        summary: "Open a reader session (Upgrade: backup-reader-protocol-v1, then HTTP/2)",
        query: &[
            ("store", "string", true, "datastore"),
            NS,
            ("backup-type", "string", true, "host, vm or ct"),
            ("backup-id", "string", true, "backup id"),
            ("backup-time", "integer", true, "snapshot time"),
        ],
        body: &[],
        answer: "101 Switching Protocols",
    },
];

/// The documentation of a route.
pub fn route_doc(route: Route) -> Option<&'static RouteDoc> {
    ROUTE_DOCS.iter().find(|d| d.route == route)
}
