//! `backup-client`: backs up directory trees to a `backup-server` and restores them.
//!
//! The archive layer ([`archive`]) encodes a tree as tar with PAX headers on a blocking
//! thread and restores one; [`upload`] turns the encoder's output into an HTTP body that
//! ends only after the encoder's final result, which is either streamed to the server as it
//! is (stream mode) or cut, hashed and sent as new chunks only by [`chunked`] (the default);
//! the `api-client` crate holds the TLS
//! connections (the server certificate pinned by fingerprint) and sessions upgraded to
//! HTTP/2; [`download`] fetches and verifies chunks for restores and for change
//! detection; [`commands`] has one module per subcommand.
//!
//! Invariants: no credential is sent before the server's certificate matched the pinned
//! fingerprint; a backup is reported successful only after the server finished the
//! snapshot; restored data is verified chunk by chunk before it is written.

pub mod archive;
pub mod chunked;
pub mod cli;
pub mod commands;
pub mod download;
pub mod payload_record;
pub mod prefetch;
pub mod progress;
pub mod repository;
pub mod upload;
