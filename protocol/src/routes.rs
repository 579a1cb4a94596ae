//! Route paths. Both sides use these constants; paths with parameters are templates whose
//! `{name}` segments are filled by [`fill_path`] on the client and matched by the server's
//! router.

/// HTTP method of a route, as the contract states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
}

/// One route of the REST API or of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: Method,
    pub path: &'static str,
}

/// Server version and a cheap authenticated ping.
pub const VERSION: Route = Route {
    method: Method::Get,
    path: "/api2/json/version",
};
/// List the finished snapshots of a datastore (query: optional `ns`).
pub const SNAPSHOTS: Route = Route {
    method: Method::Get,
    path: "/api2/json/admin/datastore/{store}/snapshots",
};
/// Open a backup session: HTTP/1.1 request upgraded to HTTP/2 (query: [`crate::types::BackupParams`]).
pub const BACKUP: Route = Route {
    method: Method::Get,
    path: "/api2/json/backup",
};
/// Open a reader session: HTTP/1.1 request upgraded to HTTP/2 (query: [`crate::types::ReaderParams`]).
pub const READER: Route = Route {
    method: Method::Get,
    path: "/api2/json/reader",
};

/// Forget (remove) one snapshot (query: [`crate::types::SnapshotParams`]).
pub const FORGET_SNAPSHOT: Route = Route {
    method: Method::Delete,
    path: "/api2/json/admin/datastore/{store}/snapshots",
};
/// Set or clear a snapshot's protected flag (query: [`crate::types::SnapshotParams`];
/// body: [`crate::types::ProtectedRequest`]).
pub const SNAPSHOT_PROTECTED: Route = Route {
    method: Method::Put,
    path: "/api2/json/admin/datastore/{store}/protected",
};
/// Change a group's owner (query: `ns`, `backup-type`, `backup-id`; body: `{"owner": AUTHID}`).
pub const GROUP_OWNER: Route = Route {
    method: Method::Put,
    path: "/api2/json/admin/datastore/{store}/owner",
};
/// The datastore's chunker parameters, which a chunking client must cut with (answer:
/// [`crate::types::ChunkerConfig`]).
pub const DATASTORE_CHUNKER: Route = Route {
    method: Method::Get,
    path: "/api2/json/admin/datastore/{store}/chunker",
};
/// Datastore status (answer: [`crate::types::DatastoreStatus`]).
pub const DATASTORE_STATUS: Route = Route {
    method: Method::Get,
    path: "/api2/json/admin/datastore/{store}/status",
};
/// Start garbage collection (answer: [`crate::types::TaskStarted`]).
pub const START_GC: Route = Route {
    method: Method::Post,
    path: "/api2/json/admin/datastore/{store}/gc",
};
/// Start a verify job (body: [`crate::types::VerifyRequest`]; answer: [`crate::types::TaskStarted`]).
pub const START_VERIFY: Route = Route {
    method: Method::Post,
    path: "/api2/json/admin/datastore/{store}/verify",
};
/// Prune (body: [`crate::types::PruneRequest`]; answer: [`crate::types::PruneResponse`]).
pub const PRUNE: Route = Route {
    method: Method::Post,
    path: "/api2/json/admin/datastore/{store}/prune",
};
/// List tasks (query: [`crate::types::TaskListParams`]; answer: list of [`crate::types::TaskStatus`]).
pub const TASKS: Route = Route {
    method: Method::Get,
    path: "/api2/json/nodes/localhost/tasks",
};
/// One task's status.
pub const TASK_STATUS: Route = Route {
    method: Method::Get,
    path: "/api2/json/nodes/localhost/tasks/{upid}/status",
};
/// One task's log from a line on (query: `start`; answer: [`crate::types::TaskLog`]).
pub const TASK_LOG: Route = Route {
    method: Method::Get,
    path: "/api2/json/nodes/localhost/tasks/{upid}/log",
};
/// Abort a running task.
pub const TASK_ABORT: Route = Route {
    method: Method::Delete,
    path: "/api2/json/nodes/localhost/tasks/{upid}",
};

/// List namespaces (query: [`crate::types::NamespaceListParams`]; answer: list of names).
pub const NAMESPACES: Route = Route {
    method: Method::Get,
    path: "/api2/json/admin/datastore/{store}/namespace",
};
/// Create a namespace (body: [`crate::types::NamespaceCreateRequest`]).
pub const CREATE_NAMESPACE: Route = Route {
    method: Method::Post,
    path: "/api2/json/admin/datastore/{store}/namespace",
};
/// Remove a namespace (query: [`crate::types::NamespaceRemoveParams`]).
pub const REMOVE_NAMESPACE: Route = Route {
    method: Method::Delete,
    path: "/api2/json/admin/datastore/{store}/namespace",
};

/// Scheduled jobs with their state and the config digest.
pub const JOBS: Route = Route {
    method: Method::Get,
    path: "/api2/json/config/jobs",
};
/// Add a job (body: `{"job": {...}, "digest": optional}`).
pub const ADD_JOB: Route = Route {
    method: Method::Post,
    path: "/api2/json/config/jobs",
};
/// Replace a job's settings (body: `{"job": {...}, "digest": optional}`).
pub const UPDATE_JOB: Route = Route {
    method: Method::Put,
    path: "/api2/json/config/jobs/{id}",
};
/// Remove a job (query: optional `digest`).
pub const REMOVE_JOB: Route = Route {
    method: Method::Delete,
    path: "/api2/json/config/jobs/{id}",
};
/// Run a job now (answer: [`crate::types::TaskStarted`]).
pub const RUN_JOB: Route = Route {
    method: Method::Post,
    path: "/api2/json/config/jobs/{id}/run",
};

/// Log in with a password (no authentication; body: `{username, password}`; answer:
/// `{username, ticket, csrf-token}`).
pub const LOGIN: Route = Route {
    method: Method::Post,
    path: "/api2/json/access/ticket",
};
/// Users (answer: list of `{userid, enable, expire, comment}`; never password hashes).
pub const USERS: Route = Route {
    method: Method::Get,
    path: "/api2/json/access/users",
};
/// Add a user (body: `{userid, password?, comment?, expire?, digest?}`).
pub const ADD_USER: Route = Route {
    method: Method::Post,
    path: "/api2/json/access/users",
};
/// Change a user (body: `{enable?, expire?, comment?, password?, digest?}`).
pub const UPDATE_USER: Route = Route {
    method: Method::Put,
    path: "/api2/json/access/users/{userid}",
};
/// Remove a user with its ACL entries and tokens.
pub const REMOVE_USER: Route = Route {
    method: Method::Delete,
    path: "/api2/json/access/users/{userid}",
};
/// Create an API token for a user (body: `{comment?, expire?}`; answer: `{tokenid, secret}`,
/// the secret shown only this once).
pub const ADD_TOKEN: Route = Route {
    method: Method::Post,
    path: "/api2/json/access/users/{userid}/token/{name}",
};
/// The ACL (answer: `{entries, digest}`).
pub const ACL: Route = Route {
    method: Method::Get,
    path: "/api2/json/access/acl",
};
/// Set or delete an ACL entry (body: `{path, role, auth-id, propagate?, delete?, digest?}`).
pub const SET_ACL: Route = Route {
    method: Method::Put,
    path: "/api2/json/access/acl",
};

/// The OpenAPI document of this API, generated from the route and privilege tables.
pub const OPENAPI: Route = Route {
    method: Method::Get,
    path: "/api2/json/openapi.json",
};

/// Every REST route (outside sessions). The server's router is built from this list.
pub const REST_ROUTES: &[Route] = &[
    VERSION,
    OPENAPI,
    LOGIN,
    USERS,
    ADD_USER,
    UPDATE_USER,
    REMOVE_USER,
    ADD_TOKEN,
    ACL,
    SET_ACL,
    SNAPSHOTS,
    FORGET_SNAPSHOT,
    SNAPSHOT_PROTECTED,
    GROUP_OWNER,
    DATASTORE_CHUNKER,
    DATASTORE_STATUS,
    START_GC,
    START_VERIFY,
    PRUNE,
    NAMESPACES,
    CREATE_NAMESPACE,
    REMOVE_NAMESPACE,
    JOBS,
    ADD_JOB,
    UPDATE_JOB,
    REMOVE_JOB,
    RUN_JOB,
    TASKS,
    TASK_STATUS,
    TASK_LOG,
    TASK_ABORT,
    BACKUP,
    READER,
];

/// Inside a backup session: stream one archive as the request body; the server chunks it
/// (query: [`crate::types::ArchiveUploadParams`]; answer: [`crate::types::ArchiveUploadResponse`]).
pub const SESSION_ARCHIVE: Route = Route {
    method: Method::Post,
    path: "/archive",
};
/// Inside a backup session (chunked mode): the index of the same archive in the parent
/// snapshot, as stored (`.didx` bytes), chosen by the server: the newest finished snapshot of
/// the group not newer than this one whose verify did not fail (query:
/// [`crate::types::ArchiveUploadParams`]). The server touches those chunks so that GC keeps
/// them while the session runs, and from then on accepts their digests in appends. The
/// answer's [`PREVIOUS_SNAPSHOT_HEADER`] names the parent; `404` means there is none, it lacks
/// the archive, its index is damaged or one of its chunks is missing from the store (no older
/// snapshot is tried then), and every chunk must be uploaded.
pub const SESSION_PREVIOUS_INDEX: Route = Route {
    method: Method::Get,
    path: "/previous-index",
};
/// Inside a backup session (chunked mode): open a dynamic index writer for an archive
/// (query: [`crate::types::ArchiveUploadParams`]; answer: [`crate::types::IndexCreated`]).
pub const SESSION_CREATE_INDEX: Route = Route {
    method: Method::Post,
    path: "/index",
};
/// Inside a backup session (chunked mode): upload one chunk, encoded as a chunk blob
/// (query: [`crate::types::ChunkUploadParams`]; body: the blob; answer:
/// [`crate::types::ChunkUploaded`]). The server decodes it, re-hashes it and refuses it
/// (`400`, nothing stored) when the digest or the size differ from the query.
pub const SESSION_CHUNK: Route = Route {
    method: Method::Post,
    path: "/chunk",
};
/// Inside a backup session (chunked mode): append chunks to an open index in archive
/// order (query: [`crate::types::IndexParams`]; body: [`crate::types::IndexAppend`]). Only
/// digests that this session uploaded, or that the parent index it downloaded holds, are
/// accepted, each with its true size.
pub const SESSION_APPEND_INDEX: Route = Route {
    method: Method::Put,
    path: "/index",
};
/// Inside a backup session (chunked mode): close an index (query:
/// [`crate::types::IndexCloseParams`]; answer: [`crate::types::ArchiveUploadResponse`]).
/// The chunk count, size and checksum must equal what the server appended.
pub const SESSION_CLOSE_INDEX: Route = Route {
    method: Method::Post,
    path: "/index/close",
};
/// Inside a backup session: upload a small file stored as one blob (query: `file-name`).
pub const SESSION_BLOB: Route = Route {
    method: Method::Post,
    path: "/blob",
};
/// Inside a backup session: end it; the server writes the manifest last (body:
/// [`crate::types::FinishRequest`]).
pub const SESSION_FINISH: Route = Route {
    method: Method::Post,
    path: "/finish",
};

/// Inside a reader session: download a stored file (manifest, index, blob) as stored
/// (query: `file-name`).
pub const READER_DOWNLOAD: Route = Route {
    method: Method::Get,
    path: "/download",
};
/// Inside a reader session: download one chunk blob (query: `digest`). Only digests of an
/// index that this session downloaded are served.
pub const READER_CHUNK: Route = Route {
    method: Method::Get,
    path: "/chunk",
};

/// Header of [`SESSION_PREVIOUS_INDEX`]'s answer: the parent snapshot's path.
pub const PREVIOUS_SNAPSHOT_HEADER: &str = "x-backup-previous";

/// Protocol token of the backup session upgrade.
pub const BACKUP_PROTOCOL: &str = "backup-protocol-v1";
/// Protocol token of the reader session upgrade.
pub const READER_PROTOCOL: &str = "backup-reader-protocol-v1";
/// Authorization scheme: `Authorization: BackupAPIToken TOKENID:SECRET`.
pub const AUTH_SCHEME: &str = "BackupAPIToken";

/// Fills the `{name}` segments of a route template. Values are percent-encoded, so a value
/// can never add a path segment.
pub fn fill_path(template: &str, params: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .map(|e| start + e)
            .unwrap_or(rest.len() - 1);
        let name = &rest[start + 1..end];
        let value = params
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
            .unwrap_or("");
        out.push_str(&percent_encode(value));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Percent-encodes everything except RFC 3986 unreserved characters.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes (and `+` as space, as in query strings). Invalid escapes and
/// invalid UTF-8 give `None`.
pub fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = value.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Encodes `key=value` pairs as a query string.
pub fn encode_query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_path_encodes_values() {
        assert_eq!(
            fill_path(SNAPSHOTS.path, &[("store", "a/../b")]),
            "/api2/json/admin/datastore/a%2F..%2Fb/snapshots"
        );
    }

    #[test]
    fn percent_round_trip() {
        for s in ["plain", "with space", "ns/a", "ünï", "%%", "a+b"] {
            assert_eq!(percent_decode(&percent_encode(s)).as_deref(), Some(s));
        }
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
    }
}
