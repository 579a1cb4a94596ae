//! HTTPS client of the backup server's API, shared by `backup-client` and the admin
//! subcommands of `backup-server`.
//!
//! [`tls`] pins the server certificate by its SHA-256 fingerprint inside the handshake, so
//! no request (and no credential) ever reaches a server with another certificate.
//! [`http`] makes REST calls over HTTP/1.1 and opens sessions that upgrade a connection to
//! HTTP/2. This crate knows the wire contract (`protocol`) but nothing of datastores,
//! archives or commands.

pub mod http;
pub mod tls;

pub use http::{HttpClient, Session};
pub use tls::Fingerprint;
