//! Admin subcommands: calls to the running server's REST API with the admin token of the
//! config directory. Long operations start a task, print its log as it grows and end with
//! the task's result; the exit status is non-zero when the task failed.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use api_client::HttpClient;
use api_client::http::ServerAddress;
use clap::Args;
use protocol::routes::{self, encode_query, fill_path};
use protocol::types::{
    DatastoreStatus, KeepOptions, PruneRequest, PruneResponse, TaskListParams, TaskLog,
    TaskStarted, TaskStatus, VerifyRequest,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::cli::{AdminArgs, OutputFormat};
use crate::config::{ADMIN_TOKEN_FILE, ADMIN_TOKEN_ID, CERT_FILE, ConfigDir, LISTEN_FILE};

pub mod access;
pub mod jobs;
pub mod namespaces;

/// A connection to the running server as the admin token.
pub struct AdminTarget {
    http: HttpClient,
    json: bool,
}

impl AdminTarget {
    pub fn connect(args: &AdminArgs) -> Result<Self> {
        let config = ConfigDir::new(&args.config_dir);
        config.check_initialized()?;
        let secret = std::fs::read_to_string(config.path(ADMIN_TOKEN_FILE))
            .with_context(|| format!("reading {}", config.path(ADMIN_TOKEN_FILE).display()))?;
        let cert = CertificateDer::from_pem_file(config.path(CERT_FILE))
            .with_context(|| format!("reading {}", config.path(CERT_FILE).display()))?;
        let fingerprint = crate::init::fingerprint(&cert)
            .parse()
            .map_err(anyhow::Error::msg)?;
        let address = match &args.server {
            Some(server) => server.clone(),
            None => std::fs::read_to_string(config.path(LISTEN_FILE))
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| format!("127.0.0.1:{}", protocol::limits::DEFAULT_PORT)),
        };
        let server = parse_address(&address)?;
        let http = HttpClient::new(server, ADMIN_TOKEN_ID.into(), secret, Some(fingerprint))?;
        Ok(Self {
            http,
            json: args.output_format == OutputFormat::Json,
        })
    }
}

impl AdminTarget {
    /// Prints `value` as JSON or runs `text`, and reports success.
    pub fn done<T: serde::Serialize + ?Sized>(
        &self,
        value: &T,
        text: impl FnOnce(),
    ) -> Result<ExitCode> {
        if self.json {
            println!("{}", serde_json::to_string(value)?);
        } else {
            text();
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn parse_address(address: &str) -> Result<ServerAddress> {
    let (host, port) = address
        .rsplit_once(':')
        .with_context(|| format!("server address '{address}' is not HOST:PORT"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = port
        .parse()
        .with_context(|| format!("bad port in '{address}'"))?;
    Ok(ServerAddress { host, port })
}

fn store_path(template: &str, store: &str) -> String {
    fill_path(template, &[("store", store)])
}

pub async fn gc(target: &AdminTarget, store: &str) -> Result<ExitCode> {
    let started: TaskStarted = target
        .http
        .call_json(
            hyper::Method::POST,
            &store_path(routes::START_GC.path, store),
            None::<&()>,
        )
        .await?;
    follow_task(target, &started.upid).await
}

/// Options of `verify`.
#[derive(Args, Clone, Default)]
pub struct VerifyArgs {
    /// One snapshot, e.g. host/web1/2026-11-24T08:00:00Z.
    #[arg(long)]
    pub snapshot: Option<String>,
    /// Namespace to verify (with everything below it), or the snapshot's namespace.
    #[arg(long)]
    pub ns: Option<String>,
    /// Verify one group: backup type (with --backup-id).
    #[arg(long)]
    pub backup_type: Option<String>,
    /// Verify one group: backup id.
    #[arg(long)]
    pub backup_id: Option<String>,
    /// Skip snapshots verified less than this many days ago.
    #[arg(long)]
    pub outdated_after_days: Option<u32>,
    /// Only verify snapshots that were never verified.
    #[arg(long)]
    pub only_unverified: bool,
}

pub async fn verify(target: &AdminTarget, store: &str, args: VerifyArgs) -> Result<ExitCode> {
    let mut request = VerifyRequest {
        ns: args.ns.clone(),
        backup_type: args.backup_type,
        backup_id: args.backup_id,
        backup_time: None,
        outdated_after_days: args.outdated_after_days,
        only_unverified: args.only_unverified,
    };
    if let Some(snapshot) = &args.snapshot {
        let ns: datastore::names::Namespace = args.ns.as_deref().unwrap_or("").parse()?;
        let snap = datastore::snapshot::parse_snapshot(ns, snapshot)?;
        request.backup_type = Some(snap.group.backup_type.to_string());
        request.backup_id = Some(snap.group.backup_id.clone());
        request.backup_time = Some(snap.time);
    }
    let started: TaskStarted = target
        .http
        .call_json(
            hyper::Method::POST,
            &store_path(routes::START_VERIFY.path, store),
            Some(&request),
        )
        .await?;
    follow_task(target, &started.upid).await
}

/// The keep rules of `prune` and of prune jobs.
#[derive(Args, Clone, Default)]
pub struct KeepArgs {
    #[arg(long)]
    pub keep_last: Option<u64>,
    #[arg(long)]
    pub keep_hourly: Option<u64>,
    #[arg(long)]
    pub keep_daily: Option<u64>,
    #[arg(long)]
    pub keep_weekly: Option<u64>,
    #[arg(long)]
    pub keep_monthly: Option<u64>,
    #[arg(long)]
    pub keep_yearly: Option<u64>,
    /// Keep every snapshot newer than this (e.g. 7d, 36h, 1y6m).
    #[arg(long)]
    pub keep_within: Option<String>,
    #[arg(long)]
    pub keep_within_hourly: Option<String>,
    #[arg(long)]
    pub keep_within_daily: Option<String>,
    #[arg(long)]
    pub keep_within_weekly: Option<String>,
    #[arg(long)]
    pub keep_within_monthly: Option<String>,
    #[arg(long)]
    pub keep_within_yearly: Option<String>,
}

impl KeepArgs {
    pub fn to_options(&self) -> KeepOptions {
        KeepOptions {
            keep_last: self.keep_last,
            keep_hourly: self.keep_hourly,
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            keep_monthly: self.keep_monthly,
            keep_yearly: self.keep_yearly,
            keep_within: self.keep_within.clone(),
            keep_within_hourly: self.keep_within_hourly.clone(),
            keep_within_daily: self.keep_within_daily.clone(),
            keep_within_weekly: self.keep_within_weekly.clone(),
            keep_within_monthly: self.keep_within_monthly.clone(),
            keep_within_yearly: self.keep_within_yearly.clone(),
        }
    }
}

/// Options of `prune`.
#[derive(Args, Clone, Default)]
pub struct PruneArgs {
    #[arg(long, default_value = "")]
    pub ns: String,
    #[arg(long)]
    pub backup_type: Option<String>,
    /// Prune only this group (default: every group of the namespace).
    #[arg(long)]
    pub backup_id: Option<String>,
    #[command(flatten)]
    pub keep: KeepArgs,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub async fn prune(target: &AdminTarget, store: &str, args: PruneArgs) -> Result<ExitCode> {
    let request = PruneRequest {
        ns: args.ns,
        backup_type: args
            .backup_type
            .or_else(|| args.backup_id.as_ref().map(|_| "host".into())),
        backup_id: args.backup_id,
        keep: args.keep.to_options(),
        dry_run: args.dry_run,
    };
    let response: PruneResponse = target
        .http
        .call_json(
            hyper::Method::POST,
            &store_path(routes::PRUNE.path, store),
            Some(&request),
        )
        .await?;
    match &response.upid {
        None if target.json => println!("{}", serde_json::to_string(&response)?),
        None => print_plan(&response),
        Some(upid) => {
            if !target.json {
                print_plan(&response);
            }
            return follow_task(target, upid).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_plan(response: &PruneResponse) {
    let dry = if response.upid.is_none() {
        " (dry run: nothing removed)"
    } else {
        ""
    };
    println!("prune plan{dry}:");
    for item in &response.plan {
        let ns = if item.ns.is_empty() {
            String::new()
        } else {
            format!("[{}] ", item.ns)
        };
        match &item.reason {
            Some(reason) => println!("  keep   {ns}{}  ({reason})", item.snapshot),
            None => println!("  remove {ns}{}", item.snapshot),
        }
    }
}

pub async fn status(target: &AdminTarget, store: &str) -> Result<ExitCode> {
    let status: DatastoreStatus = target
        .http
        .get_json(&store_path(routes::DATASTORE_STATUS.path, store))
        .await?;
    if target.json {
        println!("{}", serde_json::to_string(&status)?);
        return Ok(ExitCode::SUCCESS);
    }
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    println!("datastore {}", status.store);
    println!(
        "  disk: {:.2} GiB total, {:.2} GiB used, {:.2} GiB available",
        gib(status.total),
        gib(status.used),
        gib(status.avail)
    );
    println!(
        "  chunks: {} ({:.3} GiB stored, {:.3} GiB referenced, dedup factor {:.2})",
        status.chunk_count,
        gib(status.bytes_stored),
        gib(status.logical_bytes),
        status.dedup_factor
    );
    println!(
        "  snapshots: {} in {} groups",
        status.snapshot_count, status.group_count
    );
    match &status.last_gc {
        Some(gc) => println!("  last GC: {gc}"),
        None => println!("  last GC: never"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Filters of `task list`.
#[derive(Args, Clone, Default)]
pub struct TaskListArgs {
    /// Only tasks of this type (backup, reader, gc, verify, prune).
    #[arg(long = "type")]
    pub task_type: Option<String>,
    #[arg(long)]
    pub store: Option<String>,
    /// Only running tasks.
    #[arg(long)]
    pub running: bool,
    #[arg(long)]
    pub limit: Option<usize>,
}

pub async fn task_list(target: &AdminTarget, args: TaskListArgs) -> Result<ExitCode> {
    let params = TaskListParams {
        task_type: args.task_type,
        store: args.store,
        running: args.running,
        limit: args.limit,
    };
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if let Some(t) = &params.task_type {
        pairs.push(("task-type", t.clone()));
    }
    if let Some(s) = &params.store {
        pairs.push(("store", s.clone()));
    }
    if params.running {
        pairs.push(("running", "true".into()));
    }
    if let Some(l) = params.limit {
        pairs.push(("limit", l.to_string()));
    }
    let query: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let tasks: Vec<TaskStatus> = target
        .http
        .get_json(&format!("{}?{}", routes::TASKS.path, encode_query(&query)))
        .await?;
    if target.json {
        println!("{}", serde_json::to_string(&tasks)?);
        return Ok(ExitCode::SUCCESS);
    }
    for task in &tasks {
        println!(
            "{}  {:<8} {:<10} {}  {}",
            datastore::snapshot::format_time(task.start_time),
            task.task_type,
            task.status,
            task.store.as_deref().unwrap_or("-"),
            task.upid
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn task_log(target: &AdminTarget, upid: &str, follow: bool) -> Result<ExitCode> {
    let mut next = 0;
    loop {
        let log = read_log(target, upid, next).await?;
        for line in &log.lines {
            println!("{line}");
        }
        next = log.next;
        if !follow || !log.running {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

pub async fn task_abort(target: &AdminTarget, upid: &str) -> Result<ExitCode> {
    let path = fill_path(routes::TASK_ABORT.path, &[("upid", upid)]);
    let _: serde_json::Value = target
        .http
        .call_json(hyper::Method::DELETE, &path, None::<&()>)
        .await?;
    if !target.json {
        println!("abort requested for {upid}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn read_log(target: &AdminTarget, upid: &str, start: usize) -> Result<TaskLog> {
    let path = fill_path(routes::TASK_LOG.path, &[("upid", upid)]);
    target
        .http
        .get_json(&format!(
            "{path}?{}",
            encode_query(&[("start", &start.to_string())])
        ))
        .await
}

/// Prints a task's log to stderr as it grows, then its result; the exit status says
/// whether it failed.
pub(crate) async fn follow_task(target: &AdminTarget, upid: &str) -> Result<ExitCode> {
    if !target.json {
        eprintln!("task {upid}");
    }
    let mut next = 0;
    loop {
        let log = read_log(target, upid, next).await?;
        if !target.json {
            for line in &log.lines {
                eprintln!("{line}");
            }
        }
        next = log.next;
        if !log.running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let path = fill_path(routes::TASK_STATUS.path, &[("upid", upid)]);
    let status: TaskStatus = target.http.get_json(&path).await?;
    if target.json {
        println!("{}", serde_json::to_string(&status)?);
    } else {
        if let Some(result) = &status.result {
            println!("{}", serde_json::to_string_pretty(result)?);
        }
        println!(
            "task {}: {}",
            status.status,
            status.message.as_deref().unwrap_or("")
        );
    }
    match status.status.as_str() {
        "ok" | "warnings" => Ok(ExitCode::SUCCESS),
        "running" => bail!("task {upid} is still running"),
        _ => Ok(ExitCode::FAILURE),
    }
}
