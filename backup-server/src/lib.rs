//! `backup-server`: the datastore daemon.
//!
//! It serves one TLS port (rustls). Plain REST requests are HTTP/1.1; a backup or reader
//! session upgrades its connection to HTTP/2 ([`session`]). Archive streams are chunked,
//! hashed, deduplicated, compressed and stored by [`ingest`] through the `datastore` crate.
//! Configuration is a directory of JSON files ([`config`]) made by `init`.
//!
//! Invariants: every request is authenticated before anything else happens; a snapshot gets
//! its manifest only at `finish`, after every archive's index was closed; a session that
//! ends otherwise leaves no snapshot directory behind.

pub mod access;
pub mod admin;
pub mod api;
pub mod auth;
pub mod calendar;
pub mod cleanup;
pub mod cli;
pub mod config;
pub mod config_store;
pub mod error;
pub mod http_util;
pub mod ingest;
pub mod init;
pub mod jobs;
pub mod maintenance;
pub mod openapi;
pub mod server;
pub mod session;
pub mod state;
pub mod tasks;
pub mod tls;
