//! The registry's pure decisions: how a task ended (status, message, last log line) and which
//! task ids a listing shows in which order. No IO and no clock here; the registry and the
//! task context only call these.

use protocol::types::TaskListParams;

use super::TaskOutcome;
use super::upid::Upid;

/// Status of a task that has not ended.
pub const RUNNING: &str = "running";
pub const OK: &str = "ok";
pub const WARNINGS: &str = "warnings";
pub const ERROR: &str = "error";
pub const ABORTED: &str = "aborted";
/// A task that was running when its server process died.
pub const UNKNOWN: &str = "unknown";
/// The message of an [`UNKNOWN`] task.
pub const STOPPED_MESSAGE: &str = "the server stopped while the task was running";

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndState {
    pub status: &'static str,
    /// The error message, or the number of warnings.
    pub message: Option<String>,
    /// The last line of the log: `TASK OK`, `TASK WARNINGS: n`, `TASK ERROR: msg`,
    /// `TASK ABORTED`.
    pub log_line: String,
}

/// Decides a task's end from its work's result, whether an abort was requested and how many
/// warnings it logged. An error counts as an abort only when the abort flag was set: work
/// that finished despite an abort request ended normally.
pub fn end_state(result: &anyhow::Result<TaskOutcome>, aborted: bool, warnings: u64) -> EndState {
    match result {
        Err(err) => {
            // One log line, however many lines the error chain has.
            let message = format!("{err:#}").replace(['\n', '\r'], " ");
            if aborted {
                EndState {
                    status: ABORTED,
                    message: Some(message),
                    log_line: "TASK ABORTED".to_string(),
                }
            } else {
                EndState {
                    status: ERROR,
                    log_line: format!("TASK ERROR: {message}"),
                    message: Some(message),
                }
            }
        }
        Ok(_) if warnings > 0 => EndState {
            status: WARNINGS,
            message: Some(warnings.to_string()),
            log_line: format!("TASK WARNINGS: {warnings}"),
        },
        Ok(_) => EndState {
            status: OK,
            message: None,
            log_line: "TASK OK".to_string(),
        },
    }
}

/// Whether a task id passes the type and store filters of a listing.
pub fn id_matches(upid: &Upid, params: &TaskListParams) -> bool {
    params
        .task_type
        .as_deref()
        .is_none_or(|t| t == upid.task_type)
        && params
            .store
            .as_deref()
            .is_none_or(|s| upid.store.as_deref() == Some(s))
}

/// The ids a listing shows, newest first (by start time, then sequence number). The
/// `running` filter and the limit are applied by the caller, which knows the statuses.
pub fn select(ids: impl IntoIterator<Item = Upid>, params: &TaskListParams) -> Vec<Upid> {
    let mut ids: Vec<Upid> = ids.into_iter().filter(|u| id_matches(u, params)).collect();
    ids.sort_by_key(|u| std::cmp::Reverse((u.start_time, u.seq, u.pid)));
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> anyhow::Result<TaskOutcome> {
        Ok(TaskOutcome { result: None })
    }

    /// One row of the end-state table: inputs, then the expected status, message, line.
    struct Case {
        result: anyhow::Result<TaskOutcome>,
        aborted: bool,
        warnings: u64,
        expect: (&'static str, Option<&'static str>, &'static str),
    }

    #[test]
    fn end_states() {
        let failed = || Err(anyhow::anyhow!("disk full").context("writing chunk"));
        let chain = "writing chunk: disk full";
        let table = [
            Case {
                result: ok(),
                aborted: false,
                warnings: 0,
                expect: (OK, None, "TASK OK"),
            },
            Case {
                result: ok(),
                aborted: true,
                warnings: 0,
                expect: (OK, None, "TASK OK"),
            },
            Case {
                result: ok(),
                aborted: false,
                warnings: 3,
                expect: (WARNINGS, Some("3"), "TASK WARNINGS: 3"),
            },
            Case {
                result: failed(),
                aborted: false,
                warnings: 2,
                expect: (ERROR, Some(chain), "TASK ERROR: writing chunk: disk full"),
            },
            Case {
                result: failed(),
                aborted: true,
                warnings: 0,
                expect: (ABORTED, Some(chain), "TASK ABORTED"),
            },
            Case {
                result: Err(anyhow::anyhow!("two\nlines")),
                aborted: false,
                warnings: 0,
                expect: (ERROR, Some("two lines"), "TASK ERROR: two lines"),
            },
        ];
        for case in table {
            let end = end_state(&case.result, case.aborted, case.warnings);
            let got = (end.status, end.message.as_deref(), end.log_line.as_str());
            assert_eq!(got, case.expect);
        }
    }

    fn id(start_time: i64, seq: u32, task_type: &str, store: Option<&str>) -> Upid {
        Upid::new(1, start_time, seq, task_type, store).unwrap()
    }

    #[test]
    fn selects_newest_first_with_filters() {
        let ids = vec![
            id(10, 0, "gc", Some("a")),
            id(30, 2, "backup", Some("a")),
            id(30, 1, "backup", Some("b")),
            id(20, 3, "reader", None),
        ];
        let all = select(ids.clone(), &TaskListParams::default());
        let order: Vec<(i64, u32)> = all.iter().map(|u| (u.start_time, u.seq)).collect();
        assert_eq!(order, [(30, 2), (30, 1), (20, 3), (10, 0)]);

        let params = TaskListParams {
            task_type: Some("backup".into()),
            ..Default::default()
        };
        assert_eq!(select(ids.clone(), &params).len(), 2);

        let params = TaskListParams {
            store: Some("a".into()),
            ..Default::default()
        };
        let stores: Vec<_> = select(ids.clone(), &params)
            .into_iter()
            .map(|u| u.task_type)
            .collect();
        assert_eq!(stores, ["backup", "gc"]);

        let params = TaskListParams {
            task_type: Some("gc".into()),
            store: Some("b".into()),
            ..Default::default()
        };
        assert!(select(ids, &params).is_empty());
    }
}
