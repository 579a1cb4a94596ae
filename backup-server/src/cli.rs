//! Command line of `backup-server`: setup (`init`, `datastore create`), `serve`, and admin
//! subcommands that call the running server's REST API with the admin token
//! ([`crate::admin`]).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::admin::{self, AdminTarget};
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
    /// Run garbage collection on a datastore and wait for its result.
    Gc {
        store: String,
        #[command(flatten)]
        target: AdminArgs,
    },
    /// Verify snapshots (all of a datastore, a namespace, a group or one snapshot).
    Verify {
        store: String,
        #[command(flatten)]
        options: admin::VerifyArgs,
        #[command(flatten)]
        target: AdminArgs,
    },
    /// Remove snapshots that no keep rule keeps (per group).
    Prune {
        store: String,
        #[command(flatten)]
        options: Box<admin::PruneArgs>,
        #[command(flatten)]
        target: AdminArgs,
    },
    /// Datastore status: disk, chunks, dedup factor, snapshots, last GC.
    Status {
        store: String,
        #[command(flatten)]
        target: AdminArgs,
    },
    /// Print the next run times of a calendar event (a schedule), like
    /// `systemd-analyze calendar`, to check a schedule before saving it.
    Calendar {
        /// e.g. "daily", "mon..fri 02:30", "*:0/15", "sat *-*-1..7 03:00".
        event: String,
        /// Start from this time (RFC 3339, e.g. 2026-11-24T08:00:00Z); default now.
        #[arg(long)]
        from: Option<String>,
        #[arg(long, default_value_t = 5)]
        count: usize,
        /// Time zone (IANA name); default the server's local zone.
        #[arg(long)]
        timezone: Option<String>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output_format: OutputFormat,
    },
    /// Print the OpenAPI document of the REST API (`make docs` writes it to docs/).
    Openapi,
    /// Namespaces of a datastore: create, list, remove.
    Namespace {
        #[command(subcommand)]
        command: NamespaceCommand,
    },
    /// Users with passwords.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Access control list: roles for users and tokens on paths.
    Acl {
        #[command(subcommand)]
        command: AclCommand,
    },
    /// Scheduled GC, verify and prune jobs.
    Job {
        #[command(subcommand)]
        command: JobCommand,
    },
    /// Tasks: list, read logs, abort.
    Task {
        #[command(subcommand)]
        command: TaskCommand,
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
        /// FOR TESTS ONLY: seconds an unreferenced chunk survives GC (default 24h5m).
        #[arg(long, hide = true)]
        gc_grace_seconds: Option<i64>,
    },
}

#[derive(Subcommand)]
pub enum NamespaceCommand {
    /// Create a namespace (its parent must exist), e.g. "site1" then "site1/web".
    Create {
        store: String,
        ns: String,
        #[command(flatten)]
        target: AdminArgs,
    },
    /// List the namespaces below PARENT (default: all).
    List {
        store: String,
        #[arg(default_value = "")]
        parent: String,
        #[command(flatten)]
        target: AdminArgs,
    },
    /// Remove a namespace; with --recursive also its children and every snapshot in them.
    Remove {
        store: String,
        ns: String,
        #[arg(long)]
        recursive: bool,
        #[command(flatten)]
        target: AdminArgs,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a user, e.g. alice@local.
    Add {
        userid: String,
        /// Read the password from the first line of stdin (without it: token-only user).
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        target: AdminArgs,
    },
    /// List users.
    List {
        #[command(flatten)]
        target: AdminArgs,
    },
    /// Enable or disable a user (and with it its tokens), set its expiry or password.
    Update {
        userid: String,
        #[arg(long, action = clap::ArgAction::Set)]
        enable: Option<bool>,
        /// Epoch seconds; 0 removes the expiry.
        #[arg(long)]
        expire: Option<i64>,
        #[arg(long)]
        comment: Option<String>,
        /// Read a new password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        target: AdminArgs,
    },
    /// Remove a user, its tokens and ACL entries.
    Remove {
        userid: String,
        #[command(flatten)]
        target: AdminArgs,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create token USER!NAME; prints its secret once.
    Add {
        userid: String,
        name: String,
        #[command(flatten)]
        target: AdminArgs,
    },
}

#[derive(Subcommand)]
pub enum AclCommand {
    /// Grant ROLE on PATH (/, /datastore, /datastore/STORE, /datastore/STORE/NS...).
    Set {
        path: String,
        /// Admin, Audit, DatastoreAdmin, DatastoreBackup, DatastorePowerUser,
        /// DatastoreReader or NoAccess.
        role: String,
        #[arg(long)]
        auth_id: String,
        /// Also apply below PATH.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        propagate: bool,
        /// Remove the entry instead.
        #[arg(long)]
        delete: bool,
        #[command(flatten)]
        target: AdminArgs,
    },
    /// List every ACL entry.
    List {
        #[command(flatten)]
        target: AdminArgs,
    },
}

#[derive(Subcommand)]
pub enum JobCommand {
    /// Add a job: `job add verify --id nightly --store store1 --schedule 'daily'`.
    Add {
        #[command(flatten)]
        job: Box<admin::jobs::JobAddArgs>,
        #[command(flatten)]
        target: AdminArgs,
    },
    /// List jobs with their last and next run.
    List {
        #[command(flatten)]
        target: AdminArgs,
    },
    /// Run a job now and follow its task.
    Run {
        id: String,
        #[command(flatten)]
        target: AdminArgs,
    },
    /// Remove a job.
    Remove {
        id: String,
        #[command(flatten)]
        target: AdminArgs,
    },
}

#[derive(Subcommand)]
pub enum TaskCommand {
    /// List tasks, newest first.
    List {
        #[command(flatten)]
        filter: admin::TaskListArgs,
        #[command(flatten)]
        target: AdminArgs,
    },
    /// Print a task's log; with --follow, until the task ends.
    Log {
        upid: String,
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        target: AdminArgs,
    },
    /// Ask a running task to stop.
    Abort {
        upid: String,
        #[command(flatten)]
        target: AdminArgs,
    },
}

/// How admin subcommands reach the server.
#[derive(Args, Clone)]
pub struct AdminArgs {
    #[arg(long, env = "BACKUP_SERVER_CONFIG_DIR")]
    pub config_dir: PathBuf,
    /// Server address (default: the address the running server wrote into the config
    /// directory, else 127.0.0.1:8007).
    #[arg(long)]
    pub server: Option<String>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output_format: OutputFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

/// Runs the command and returns the process exit code.
pub fn run(cli: Cli) -> Result<std::process::ExitCode> {
    match cli.command {
        Command::Init { config_dir } => {
            let result = crate::init::init(&config_dir)?;
            println!("fingerprint: {}", result.fingerprint);
            println!(
                "admin token: {} (secret in {})",
                crate::config::ADMIN_TOKEN_ID,
                config_dir.join(crate::config::ADMIN_TOKEN_FILE).display()
            );
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Datastore {
            command:
                DatastoreCommand::Create {
                    name,
                    path,
                    config_dir,
                    chunk_size_kib,
                    gc_grace_seconds,
                },
        } => {
            let bytes = chunk_size_kib
                .checked_mul(1024)
                .ok_or_else(|| anyhow::anyhow!("chunk size {chunk_size_kib} KiB is too large"))?;
            crate::init::create_datastore(&config_dir, &name, &path, bytes, gc_grace_seconds)?;
            println!("created datastore '{name}' at {}", path.display());
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Serve { config_dir, listen } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let state = Arc::new(ServerState::new(ConfigDir::new(&config_dir))?);
            runtime.block_on(crate::server::serve(state, &listen))?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Calendar {
            event,
            from,
            count,
            timezone,
            output_format,
        } => calendar(
            &event,
            from.as_deref(),
            count,
            timezone.as_deref(),
            output_format,
        ),
        Command::Openapi => {
            println!(
                "{}",
                serde_json::to_string_pretty(&crate::openapi::document()?)?
            );
            Ok(std::process::ExitCode::SUCCESS)
        }
        admin_command => run_admin(admin_command),
    }
}

fn calendar(
    event: &str,
    from: Option<&str>,
    count: usize,
    timezone: Option<&str>,
    output: OutputFormat,
) -> Result<std::process::ExitCode> {
    let parsed: crate::calendar::CalendarEvent = event
        .parse()
        .map_err(|e| anyhow::anyhow!("invalid calendar event: {e}"))?;
    let tz = match timezone {
        Some(name) => jiff::tz::TimeZone::get(name)
            .map_err(|e| anyhow::anyhow!("unknown time zone '{name}': {e}"))?,
        None => jiff::tz::TimeZone::system(),
    };
    let from = match from {
        Some(text) => text
            .parse::<jiff::Timestamp>()
            .map_err(|e| anyhow::anyhow!("invalid --from '{text}' (RFC 3339 expected): {e}"))?,
        None => jiff::Timestamp::now(),
    };
    let runs = crate::calendar::next_runs(&parsed, from, &tz, count);
    let shown: Vec<String> = runs
        .iter()
        .map(|t| t.to_zoned(tz.clone()).to_string())
        .collect();
    if output == OutputFormat::Json {
        let epochs: Vec<i64> = runs.iter().map(|t| t.as_second()).collect();
        println!(
            "{}",
            serde_json::json!({ "event": parsed.to_string(), "next": shown, "epochs": epochs })
        );
    } else {
        println!("  normalized form: {parsed}");
        for (i, time) in shown.iter().enumerate() {
            println!("  {:>3}. {time}", i + 1);
        }
        if shown.is_empty() {
            println!("  (no future occurrence)");
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn run_admin(command: Command) -> Result<std::process::ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match command {
            Command::Gc { store, target } => {
                admin::gc(&AdminTarget::connect(&target)?, &store).await
            }
            Command::Verify {
                store,
                options,
                target,
            } => admin::verify(&AdminTarget::connect(&target)?, &store, options).await,
            Command::Prune {
                store,
                options,
                target,
            } => admin::prune(&AdminTarget::connect(&target)?, &store, *options).await,
            Command::Status { store, target } => {
                admin::status(&AdminTarget::connect(&target)?, &store).await
            }
            Command::Task {
                command: TaskCommand::List { filter, target },
            } => admin::task_list(&AdminTarget::connect(&target)?, filter).await,
            Command::Task {
                command:
                    TaskCommand::Log {
                        upid,
                        follow,
                        target,
                    },
            } => admin::task_log(&AdminTarget::connect(&target)?, &upid, follow).await,
            Command::Task {
                command: TaskCommand::Abort { upid, target },
            } => admin::task_abort(&AdminTarget::connect(&target)?, &upid).await,
            Command::Namespace {
                command: NamespaceCommand::Create { store, ns, target },
            } => admin::namespaces::create(&AdminTarget::connect(&target)?, &store, &ns).await,
            Command::Namespace {
                command:
                    NamespaceCommand::List {
                        store,
                        parent,
                        target,
                    },
            } => admin::namespaces::list(&AdminTarget::connect(&target)?, &store, &parent).await,
            Command::Namespace {
                command:
                    NamespaceCommand::Remove {
                        store,
                        ns,
                        recursive,
                        target,
                    },
            } => {
                admin::namespaces::remove(&AdminTarget::connect(&target)?, &store, &ns, recursive)
                    .await
            }
            Command::User {
                command:
                    UserCommand::Add {
                        userid,
                        password_stdin,
                        comment,
                        target,
                    },
            } => {
                let target = AdminTarget::connect(&target)?;
                admin::access::user_add(&target, &userid, password_stdin, comment).await
            }
            Command::User {
                command:
                    UserCommand::Update {
                        userid,
                        enable,
                        expire,
                        comment,
                        password_stdin,
                        target,
                    },
            } => {
                let target = AdminTarget::connect(&target)?;
                let password = password_stdin
                    .then(admin::access::read_password)
                    .transpose()?;
                let body = serde_json::json!({
                    "enable": enable, "expire": expire, "comment": comment, "password": password,
                });
                admin::access::user_update(&target, &userid, &body).await
            }
            Command::User {
                command: UserCommand::List { target },
            } => admin::access::user_list(&AdminTarget::connect(&target)?).await,
            Command::User {
                command: UserCommand::Remove { userid, target },
            } => admin::access::user_remove(&AdminTarget::connect(&target)?, &userid).await,
            Command::Token {
                command:
                    TokenCommand::Add {
                        userid,
                        name,
                        target,
                    },
            } => admin::access::token_add(&AdminTarget::connect(&target)?, &userid, &name).await,
            Command::Acl {
                command:
                    AclCommand::Set {
                        path,
                        role,
                        auth_id,
                        propagate,
                        delete,
                        target,
                    },
            } => {
                let target = AdminTarget::connect(&target)?;
                admin::access::acl_set(&target, &path, &role, &auth_id, propagate, delete).await
            }
            Command::Acl {
                command: AclCommand::List { target },
            } => admin::access::acl_list(&AdminTarget::connect(&target)?).await,
            Command::Job {
                command: JobCommand::Add { job, target },
            } => admin::jobs::add(&AdminTarget::connect(&target)?, *job).await,
            Command::Job {
                command: JobCommand::List { target },
            } => admin::jobs::list(&AdminTarget::connect(&target)?).await,
            Command::Job {
                command: JobCommand::Run { id, target },
            } => admin::jobs::run(&AdminTarget::connect(&target)?, &id).await,
            Command::Job {
                command: JobCommand::Remove { id, target },
            } => admin::jobs::remove(&AdminTarget::connect(&target)?, &id).await,
            Command::Init { .. }
            | Command::Datastore { .. }
            | Command::Serve { .. }
            | Command::Calendar { .. }
            | Command::Openapi => {
                unreachable!("handled by run")
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
