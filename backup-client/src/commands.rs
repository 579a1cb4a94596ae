//! One module per subcommand. Each takes parsed options and returns a summary that the
//! CLI prints as text or JSON.

pub mod backup;
pub mod catalog;
pub mod restore;
pub mod snapshot;
pub mod snapshots;
