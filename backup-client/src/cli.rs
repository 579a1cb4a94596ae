//! Command line of `backup-client`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use crate::archive::ExcludeMatcher;
use crate::commands::{backup, catalog, restore, snapshot, snapshots};
use crate::repository::RepoClient;
use crate::repository::Repository;
use api_client::Fingerprint;

#[derive(Parser)]
#[command(
    name = "backup-client",
    version,
    about = "Back up and restore directory trees"
)]
pub struct Cli {
    /// TOKENID@HOST[:PORT]:STORE
    #[arg(long, global = true, env = "BACKUP_REPOSITORY")]
    pub repository: Option<String>,
    /// SHA-256 fingerprint of the server certificate (32 colon-separated hex pairs).
    #[arg(long, global = true, env = "BACKUP_FINGERPRINT")]
    pub fingerprint: Option<String>,
    /// Output format of the summary.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output_format: OutputFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Back up directories, one archive each, into one new snapshot.
    Backup {
        /// NAME.tar:PATH, one per archive.
        #[arg(required = true)]
        specs: Vec<backup::ArchiveSpec>,
        /// Backup id (default: the host name).
        #[arg(long)]
        backup_id: Option<String>,
        /// Backup type: host, vm or ct.
        #[arg(long, default_value = "host")]
        backup_type: String,
        /// Namespace, e.g. "site1/web".
        #[arg(long, default_value = "")]
        ns: String,
        /// Snapshot time (RFC 3339 UTC like 2026-11-24T08:00:00Z, or epoch seconds);
        /// must be newer than the group's newest snapshot. Default: now.
        #[arg(long, value_parser = parse_backup_time)]
        backup_time: Option<i64>,
        /// Leave out paths matching PATTERN (gitignore syntax, relative to each archive's
        /// root: `/x` anchored, `dir/` directories only, `**`, `!` re-includes; the last
        /// matching pattern wins). Repeatable; applied after the exclude files' patterns.
        #[arg(long = "exclude", value_name = "PATTERN")]
        excludes: Vec<String>,
        /// Read exclude patterns from FILE, one a line (`#` comments, blank lines
        /// skipped). Repeatable; files are applied in the order given.
        #[arg(long = "exclude-file", value_name = "FILE")]
        exclude_files: Vec<PathBuf>,
        /// Stay on each root's file system: other mounts are archived as empty
        /// directories. `false` descends into them.
        #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set, default_value_t = true)]
        one_file_system: bool,
        /// chunked: this client chunks and uploads only chunks the parent snapshot lacks;
        /// stream: the server chunks the archive stream.
        #[arg(long, value_enum, default_value_t = backup::UploadMode::Chunked)]
        upload_mode: backup::UploadMode,
        /// metadata: store each archive split into metadata and payload, and re-use the
        /// previous payload of files whose size, mode, mtime, ctime and inode are
        /// unchanged (not read at all); data: one tar stream, every file read. Default:
        /// metadata in chunked mode, data in stream mode.
        #[arg(long, value_enum)]
        change_detection: Option<backup::ChangeDetection>,
        /// Walk and chunk, report what would be uploaded (files, bytes, new chunks), and
        /// write nothing on the server.
        #[arg(long)]
        dry_run: bool,
    },
    /// List snapshots.
    Snapshots {
        #[arg(long, default_value = "")]
        ns: String,
    },
    /// Manage one snapshot.
    Snapshot {
        #[command(subcommand)]
        command: SnapshotCommand,
    },
    /// Restore an archive of a snapshot into a directory.
    Restore {
        /// Snapshot, e.g. host/web1/2026-11-24T08:00:00Z.
        snapshot: String,
        /// Archive name, e.g. root.tar.
        archive: String,
        /// Directory to restore into (must not exist or be empty); with `--format tar`, a
        /// new file or `-` for standard output.
        target: PathBuf,
        #[arg(long, default_value = "")]
        ns: String,
        /// dir: the tree into a directory; tar: one standard tar stream.
        #[arg(long, value_enum, default_value_t = restore::RestoreFormat::Dir)]
        format: restore::RestoreFormat,
        /// Restore only PATH (relative to the archive root) and what is below it, with the
        /// directories above it; repeatable. Fetches only the chunks those files need
        /// (split archives, the default since change detection).
        #[arg(long = "include", value_name = "PATH")]
        include: Vec<String>,
    },
    /// List an archive's entries (type, size, mtime, path); for a split archive without
    /// downloading any file content.
    Catalog {
        /// Snapshot, e.g. host/web1/2026-11-24T08:00:00Z.
        snapshot: String,
        /// Archive name, e.g. root.tar.
        archive: String,
        /// List only PATH (relative to the archive root) and what is below it.
        path: Option<String>,
        #[arg(long, default_value = "")]
        ns: String,
    },
}

fn parse_backup_time(s: &str) -> Result<i64, String> {
    match s.parse::<i64>() {
        Ok(epoch) => datastore::snapshot::validate_time(epoch)
            .map(|()| epoch)
            .map_err(|e| e.to_string()),
        Err(_) => datastore::snapshot::parse_time(s).map_err(|e| e.to_string()),
    }
}

#[derive(Subcommand)]
pub enum SnapshotCommand {
    /// Remove a snapshot (protected snapshots are refused).
    Forget {
        /// Snapshot, e.g. host/web1/2026-11-24T08:00:00Z.
        snapshot: String,
        #[arg(long, default_value = "")]
        ns: String,
    },
    /// Set (true) or clear (false) a snapshot's protected flag: prune and forget never
    /// remove a protected snapshot.
    Protected {
        snapshot: String,
        #[arg(action = clap::ArgAction::Set)]
        protected: bool,
        #[arg(long, default_value = "")]
        ns: String,
    },
}

impl Command {
    /// The C allocator's arenas for this command ([`datastore::pool::tune_allocator`]). A
    /// backup's walk, read-ahead, encoder and metadata parser threads allocate small blocks
    /// all the time and contend for one arena's lock (corpus a's unchanged backup: 1.49-1.71 s
    /// with one arena, 1.21-1.29 s with one per thread); a restore passes chunk buffers
    /// between threads, and per-thread arenas kept more of them (corpus a's restore: client
    /// 73-77 MiB peak RSS with one arena, 80-83 MiB with one per thread, at the same speed).
    pub fn arenas(&self) -> datastore::pool::Arenas {
        match self {
            Command::Backup { .. } => datastore::pool::Arenas::PerThread,
            _ => datastore::pool::Arenas::One,
        }
    }
}

/// Runs the command; the exit status is non-zero on error or when files were skipped.
pub fn run(cli: Cli) -> Result<std::process::ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(cli))
}

async fn run_async(cli: Cli) -> Result<std::process::ExitCode> {
    let json = cli.output_format == OutputFormat::Json;
    let client = connect(&cli)?;
    match cli.command {
        Command::Backup {
            specs,
            backup_id,
            backup_type,
            ns,
            backup_time,
            excludes,
            exclude_files,
            one_file_system,
            upload_mode,
            change_detection,
            dry_run,
        } => {
            let encode = crate::archive::EncodeOptions {
                excludes: ExcludeMatcher::read(&exclude_files, &excludes)?,
                one_file_system,
                listings: None,
            };
            let backup_id = match backup_id {
                Some(id) => id,
                None => nix::unistd::gethostname()
                    .context("reading the host name")?
                    .into_string()
                    .map_err(|_| anyhow::anyhow!("the host name is not UTF-8; pass --backup-id"))?,
            };
            let options = backup::BackupOptions {
                specs,
                backup_type,
                backup_id,
                ns,
                backup_time,
                quiet: json,
                encode,
                upload_mode,
                change_detection,
                dry_run,
            };
            let summary = backup::run(&client, options).await?;
            print(json, &summary, backup::print_text)?;
            if summary.errors > 0 {
                eprintln!(
                    "backup {} finished, but {} file(s) could not be read completely",
                    summary.snapshot, summary.errors
                );
                return Ok(std::process::ExitCode::from(3));
            }
        }
        Command::Snapshots { ns } => {
            let lines = snapshots::run(&client, &ns).await?;
            print(json, &lines, |l| snapshots::print_text(l))?;
        }
        Command::Snapshot {
            command: SnapshotCommand::Forget { snapshot: name, ns },
        } => {
            snapshot::forget(&client, &ns, &name).await?;
            let summary = serde_json::json!({ "forgotten": name });
            print(json, &summary, |_| println!("removed snapshot {name}"))?;
        }
        Command::Snapshot {
            command:
                SnapshotCommand::Protected {
                    snapshot: name,
                    protected,
                    ns,
                },
        } => {
            snapshot::set_protected(&client, &ns, &name, protected).await?;
            let summary = serde_json::json!({ "snapshot": name, "protected": protected });
            print(json, &summary, |_| {
                println!("snapshot {name}: protected = {protected}")
            })?;
        }
        Command::Restore {
            snapshot,
            archive,
            target,
            ns,
            format,
            include,
        } => {
            // A tar on standard output owns stdout: the summary goes to stderr.
            let to_stdout = format == restore::RestoreFormat::Tar && target == Path::new("-");
            let request = restore::RestoreRequest {
                snapshot,
                archive,
                target,
                ns,
                format,
                include,
                quiet: json || to_stdout,
            };
            let summary = restore::run(&client, request).await?;
            if to_stdout {
                eprintln!("{}", serde_json::to_string(&summary)?);
            } else {
                print(json, &summary, restore::print_text)?;
            }
        }
        Command::Catalog {
            snapshot,
            archive,
            path,
            ns,
        } => {
            let request = catalog::CatalogRequest {
                snapshot,
                archive,
                path,
                ns,
            };
            let listed = catalog::run(&client, request).await?;
            print(json, &listed, catalog::print_text)?;
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn print<T: serde::Serialize + ?Sized>(json: bool, value: &T, text: impl Fn(&T)) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(value)?);
    } else {
        text(value);
    }
    Ok(())
}

fn connect(cli: &Cli) -> Result<RepoClient> {
    let repository: Repository = cli
        .repository
        .as_deref()
        .context(
            "no repository given: use --repository or BACKUP_REPOSITORY (TOKENID@HOST:PORT:STORE)",
        )?
        .parse()?;
    let secret = std::env::var("BACKUP_PASSWORD")
        .context("BACKUP_PASSWORD is not set: it must hold the API token secret")?;
    let fingerprint = cli
        .fingerprint
        .as_deref()
        .map(str::parse::<Fingerprint>)
        .transpose()
        .map_err(|e| anyhow::anyhow!(e))?;
    RepoClient::new(repository, secret, fingerprint)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
