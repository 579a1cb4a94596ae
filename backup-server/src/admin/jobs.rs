//! `backup-server job add|list|run|remove`: scheduled GC, verify and prune jobs.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use protocol::routes::{self, fill_path};
use protocol::types::TaskStarted;

use super::{AdminTarget, KeepArgs};
use crate::jobs::{JobConfig, JobType};

/// Options of `job add`.
#[derive(Args, Clone)]
pub struct JobAddArgs {
    /// gc, verify or prune.
    pub job_type: JobType,
    /// The job's name.
    #[arg(long)]
    pub id: String,
    #[arg(long)]
    pub store: String,
    /// Calendar event, e.g. "daily", "mon..fri 02:30", "*:0/15" (check with `calendar`).
    #[arg(long)]
    pub schedule: String,
    /// Namespace (verify: it and everything below; prune: the groups directly in it).
    #[arg(long, default_value = "")]
    pub ns: String,
    #[arg(long)]
    pub comment: Option<String>,
    /// Add the job disabled (it runs only with `job run`).
    #[arg(long)]
    pub disabled: bool,
    /// Verify: skip snapshots verified less than this many days ago.
    #[arg(long)]
    pub outdated_after_days: Option<u32>,
    /// Verify: only snapshots never verified.
    #[arg(long)]
    pub only_unverified: bool,
    #[command(flatten)]
    pub keep: KeepArgs,
}

pub async fn add(target: &AdminTarget, args: JobAddArgs) -> Result<ExitCode> {
    let job = JobConfig {
        id: args.id.clone(),
        job_type: args.job_type,
        store: args.store,
        ns: args.ns,
        schedule: args.schedule,
        enabled: !args.disabled,
        comment: args.comment,
        outdated_after_days: args.outdated_after_days,
        only_unverified: args.only_unverified,
        keep: args.keep.to_options(),
    };
    let body = serde_json::json!({ "job": job });
    let answer: serde_json::Value = target
        .http
        .call_json(hyper::Method::POST, routes::ADD_JOB.path, Some(&body))
        .await?;
    target.done(&answer, || println!("added job '{}'", args.id))
}

pub async fn list(target: &AdminTarget) -> Result<ExitCode> {
    let list: serde_json::Value = target.http.get_json(routes::JOBS.path).await?;
    target.done(&list, || {
        let jobs = list["jobs"].as_array().cloned().unwrap_or_default();
        if jobs.is_empty() {
            println!("no jobs");
        }
        for item in jobs {
            let (config, state) = (&item["config"], &item["state"]);
            let time = |v: &serde_json::Value| {
                v.as_i64()
                    .map(datastore::snapshot::format_time)
                    .unwrap_or_else(|| "-".into())
            };
            println!(
                "{:<16} {:<7} {:<12} schedule {:<20} last {} ({}) next {}",
                config["id"].as_str().unwrap_or(""),
                config["job-type"].as_str().unwrap_or(""),
                config["store"].as_str().unwrap_or(""),
                config["schedule"].as_str().unwrap_or(""),
                time(&state["last-run-time"]),
                state["last-run-status"].as_str().unwrap_or("never run"),
                time(&state["next-run"]),
            );
        }
    })
}

pub async fn run(target: &AdminTarget, id: &str) -> Result<ExitCode> {
    let path = fill_path(routes::RUN_JOB.path, &[("id", id)]);
    let started: TaskStarted = target
        .http
        .call_json(hyper::Method::POST, &path, None::<&()>)
        .await?;
    super::follow_task(target, &started.upid).await
}

pub async fn remove(target: &AdminTarget, id: &str) -> Result<ExitCode> {
    let path = fill_path(routes::REMOVE_JOB.path, &[("id", id)]);
    let answer: serde_json::Value = target
        .http
        .call_json(hyper::Method::DELETE, &path, None::<&()>)
        .await?;
    target.done(&answer, || println!("removed job '{id}'"))
}
