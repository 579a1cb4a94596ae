//! Start-up cleanup: snapshot directories without a manifest were left by sessions that
//! the previous server process never ended (crash, kill). No session runs before the
//! server listens, so every such directory is garbage.

use anyhow::{Context, Result};

use crate::state::ServerState;

pub fn remove_unfinished_snapshots(state: &ServerState) -> Result<()> {
    for config in state.config.datastores()?.datastores {
        let store = match datastore::store::DataStore::open(&config.path) {
            Ok(store) => store,
            Err(err) => {
                tracing::error!("datastore '{}' cannot be opened: {err}", config.name);
                continue;
            }
        };
        let removed = store
            .remove_unfinished_snapshots()
            .with_context(|| format!("cleaning datastore '{}'", config.name))?;
        for snapshot in removed {
            tracing::info!("removed unfinished snapshot {}:{snapshot}", config.name);
        }
    }
    Ok(())
}
