//! Command line of `backup-server`: one subcommand per admin action.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::config::ConfigDir;
use crate::state::ServerState;

#[derive(Parser)]
#[command(name = "backup-server", version, about = "Backup datastore server")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create a config directory: TLS key and self-signed certificate, admin API token.
    Init {
        #[arg(long, env = "BACKUP_SERVER_CONFIG_DIR")]
        config_dir: PathBuf,
    },
    /// Manage datastores.
    Datastore {
        #[command(subcommand)]
        command: DatastoreCommand,
    },
    /// Serve the API and backup sessions over TLS.
    Serve {
        #[arg(long, env = "BACKUP_SERVER_CONFIG_DIR")]
        config_dir: PathBuf,
        /// Address to listen on (port 0 picks a free port; the bound address is printed).
        #[arg(long, default_value = "127.0.0.1:8007")]
        listen: String,
    },
}

#[derive(Subcommand)]
pub enum DatastoreCommand {
    /// Create an empty datastore at PATH and add it to the config.
    Create {
        name: String,
        path: PathBuf,
        #[arg(long, env = "BACKUP_SERVER_CONFIG_DIR")]
        config_dir: PathBuf,
        /// Average chunk size in KiB (a power of two).
        #[arg(long, default_value_t = 4096)]
        chunk_size_kib: usize,
    },
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Init { config_dir } => {
            let result = crate::init::init(&config_dir)?;
            println!("fingerprint: {}", result.fingerprint);
            println!(
                "admin token: {} (secret in {})",
                crate::config::ADMIN_TOKEN_ID,
                config_dir.join(crate::config::ADMIN_TOKEN_FILE).display()
            );
            Ok(())
        }
        Command::Datastore {
            command:
                DatastoreCommand::Create {
                    name,
                    path,
                    config_dir,
                    chunk_size_kib,
                },
        } => {
            let bytes = chunk_size_kib
                .checked_mul(1024)
                .ok_or_else(|| anyhow::anyhow!("chunk size {chunk_size_kib} KiB is too large"))?;
            crate::init::create_datastore(&config_dir, &name, &path, bytes)?;
            println!("created datastore '{name}' at {}", path.display());
            Ok(())
        }
        Command::Serve { config_dir, listen } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let state = Arc::new(ServerState::new(ConfigDir::new(&config_dir)));
            runtime.block_on(crate::server::serve(state, &listen))
        }
    }
}
