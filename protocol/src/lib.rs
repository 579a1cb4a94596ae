//! The wire contract between `backup-client` and `backup-server`.
//!
//! This crate holds route paths, header names, protocol tokens, limits and the serde types
//! of requests and answers, so that both sides use one definition. It does no IO and knows
//! nothing of HTTP libraries, TLS or the datastore: names are plain strings and times are
//! Unix epoch seconds here; the server validates and converts them into datastore types.

pub mod docs;
pub mod limits;
pub mod routes;
pub mod types;

pub use routes::{Method, Route, fill_path};
