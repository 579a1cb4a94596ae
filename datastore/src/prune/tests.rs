//! Table tests of the retention rules: one row per snapshot, with the decision expected
//! ("-" = removed). Times are UTC. Longer than most files because every row is a line of
//! its own: the tables are the specification, read best in one place.

use super::*;
use crate::duration::parse_duration;
use crate::snapshot::{format_time, parse_time};
use proptest::prelude::*;

fn t(s: &str) -> i64 {
    parse_time(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn d(s: &str) -> Option<CalendarDuration> {
    Some(parse_duration(s).unwrap())
}

struct Case {
    name: &'static str,
    /// `last=3 daily=7 within-daily=3d`, as the options are named without `keep-`.
    rules: &'static str,
    now: &'static str,
    /// (backup time, protected, expected decision)
    rows: &'static [(&'static str, bool, &'static str)],
}

fn check(case: &Case) {
    let candidates: Vec<PruneCandidate> = case
        .rows
        .iter()
        .map(|&(time, protected, _)| PruneCandidate {
            time: t(time),
            protected,
        })
        .collect();
    let got = plan(&candidates, &rules(case.rules), t(case.now));
    assert_eq!(got.len(), candidates.len(), "{}", case.name);
    for (row, decision) in case.rows.iter().zip(&got) {
        let shown = decision.map_or("-".to_string(), |r| r.to_string());
        assert_eq!(shown, row.2, "{}: snapshot {}", case.name, row.0);
    }
}

fn rules(spec: &str) -> KeepRules {
    let mut rules = KeepRules::default();
    for part in spec.split_whitespace() {
        let (key, value) = part.split_once('=').unwrap();
        let n = || Some(value.parse::<u64>().unwrap());
        match key {
            "last" => rules.last = n(),
            "hourly" => rules.hourly = n(),
            "daily" => rules.daily = n(),
            "weekly" => rules.weekly = n(),
            "monthly" => rules.monthly = n(),
            "yearly" => rules.yearly = n(),
            "within" => rules.within = d(value),
            "within-hourly" => rules.within_hourly = d(value),
            "within-daily" => rules.within_daily = d(value),
            "within-weekly" => rules.within_weekly = d(value),
            "within-monthly" => rules.within_monthly = d(value),
            "within-yearly" => rules.within_yearly = d(value),
            _ => panic!("unknown rule {key}"),
        }
    }
    rules
}

const NOW: &str = "2026-06-30T12:00:00Z";

#[test]
fn count_rules() {
    let cases = [
        Case {
            name: "keep-last, input unsorted",
            rules: "last=2",
            now: NOW,
            rows: &[
                ("2026-06-01T00:00:00Z", false, "-"),
                ("2026-06-03T00:00:00Z", false, "keep-last"),
                ("2026-05-01T00:00:00Z", false, "-"),
                ("2026-06-02T00:00:00Z", false, "keep-last"),
            ],
        },
        Case {
            name: "keep-last larger than the group",
            rules: "last=10",
            now: NOW,
            rows: &[
                ("2026-06-01T00:00:00Z", false, "keep-last"),
                ("2026-06-02T00:00:00Z", false, "keep-last"),
            ],
        },
        Case {
            name: "keep-hourly: newest of each hour",
            rules: "hourly=2",
            now: NOW,
            rows: &[
                ("2026-06-30T10:50:00Z", false, "keep-hourly"),
                ("2026-06-30T10:10:00Z", false, "-"),
                ("2026-06-30T09:59:59Z", false, "keep-hourly"),
                ("2026-06-30T09:00:00Z", false, "-"),
                ("2026-06-30T08:00:00Z", false, "-"),
            ],
        },
        Case {
            name: "keep-daily: ties in a day, newest wins; a missing day costs nothing",
            rules: "daily=3",
            now: NOW,
            rows: &[
                ("2026-06-10T08:00:00Z", false, "-"),
                ("2026-06-10T23:59:59Z", false, "keep-daily"),
                ("2026-06-10T12:00:00Z", false, "-"),
                ("2026-06-08T00:00:00Z", false, "keep-daily"),
                ("2026-06-05T01:00:00Z", false, "keep-daily"),
                ("2026-06-05T00:00:00Z", false, "-"),
                ("2026-06-04T00:00:00Z", false, "-"),
            ],
        },
        Case {
            name: "keep-weekly: 2026-12-31 and 2027-01-01 are both in 2026-W53",
            rules: "weekly=3",
            now: "2027-01-10T00:00:00Z",
            rows: &[
                ("2027-01-04T00:00:00Z", false, "keep-weekly"),
                ("2027-01-01T00:00:00Z", false, "keep-weekly"),
                ("2026-12-31T23:00:00Z", false, "-"),
                ("2026-12-28T00:00:00Z", false, "-"),
                ("2026-12-27T23:59:59Z", false, "keep-weekly"),
                ("2026-12-21T00:00:00Z", false, "-"),
            ],
        },
        Case {
            name: "keep-weekly: ISO weeks start on Monday",
            rules: "weekly=2",
            now: NOW,
            rows: &[
                ("2026-06-29T00:00:00Z", false, "keep-weekly"),
                ("2026-06-28T23:59:59Z", false, "keep-weekly"),
                ("2026-06-22T00:00:00Z", false, "-"),
            ],
        },
        Case {
            name: "keep-monthly",
            rules: "monthly=2",
            now: NOW,
            rows: &[
                ("2026-03-31T23:00:00Z", false, "keep-monthly"),
                ("2026-03-01T00:00:00Z", false, "-"),
                ("2026-01-31T00:00:00Z", false, "keep-monthly"),
                ("2025-12-31T00:00:00Z", false, "-"),
            ],
        },
        Case {
            name: "keep-yearly",
            rules: "yearly=2",
            now: "2027-06-30T00:00:00Z",
            rows: &[
                ("2027-01-01T00:00:00Z", false, "keep-yearly"),
                ("2026-12-31T23:59:59Z", false, "keep-yearly"),
                ("2026-06-01T00:00:00Z", false, "-"),
                ("2024-01-01T00:00:00Z", false, "-"),
            ],
        },
        Case {
            name: "a period covered by an earlier rule uses no count",
            rules: "last=3 daily=2",
            now: NOW,
            rows: &[
                ("2026-06-30T03:00:00Z", false, "keep-last"),
                ("2026-06-30T02:00:00Z", false, "keep-last"),
                ("2026-06-30T01:00:00Z", false, "keep-last"),
                ("2026-06-29T02:00:00Z", false, "keep-daily"),
                ("2026-06-29T01:00:00Z", false, "-"),
                ("2026-06-28T01:00:00Z", false, "keep-daily"),
                ("2026-06-27T01:00:00Z", false, "-"),
            ],
        },
        Case {
            name: "the first rule that keeps names the reason",
            rules: "last=1 daily=1 monthly=2",
            now: NOW,
            rows: &[
                ("2026-06-30T03:00:00Z", false, "keep-last"),
                ("2026-06-29T03:00:00Z", false, "keep-daily"),
                ("2026-06-01T03:00:00Z", false, "-"),
                ("2026-05-20T03:00:00Z", false, "keep-monthly"),
            ],
        },
        Case {
            name: "snapshots in the future count for the count rules",
            rules: "last=1 daily=1",
            now: NOW,
            rows: &[
                ("2026-07-02T00:00:00Z", false, "keep-last"),
                ("2026-07-01T00:00:00Z", false, "keep-daily"),
                ("2026-06-30T00:00:00Z", false, "-"),
            ],
        },
    ];
    for case in &cases {
        check(case);
    }
}

#[test]
fn protected_and_empty_rules() {
    let cases = [
        Case {
            name: "protected newest is kept and does not count for keep-last",
            rules: "last=1",
            now: NOW,
            rows: &[
                ("2026-06-03T00:00:00Z", true, "protected"),
                ("2026-06-02T00:00:00Z", false, "keep-last"),
                ("2026-06-01T00:00:00Z", false, "-"),
                ("2026-05-01T00:00:00Z", true, "protected"),
            ],
        },
        Case {
            name: "a protected snapshot does not cover its day",
            rules: "daily=1",
            now: NOW,
            rows: &[
                ("2026-06-30T10:00:00Z", true, "protected"),
                ("2026-06-30T09:00:00Z", false, "keep-daily"),
                ("2026-06-29T09:00:00Z", false, "-"),
            ],
        },
        Case {
            name: "no rules keep everything",
            rules: "",
            now: NOW,
            rows: &[
                ("2026-06-03T00:00:00Z", false, "no-rules"),
                ("2026-06-02T00:00:00Z", true, "protected"),
                ("2027-01-01T00:00:00Z", false, "no-rules"),
            ],
        },
        Case {
            name: "counts of 0 are no rules",
            rules: "last=0 daily=0",
            now: NOW,
            rows: &[
                ("2026-06-03T00:00:00Z", false, "no-rules"),
                ("2026-06-02T00:00:00Z", false, "no-rules"),
            ],
        },
        Case {
            name: "protected survives a policy that keeps nothing else",
            rules: "within=1h",
            now: NOW,
            rows: &[
                ("2026-06-03T00:00:00Z", true, "protected"),
                ("2026-06-02T00:00:00Z", false, "-"),
            ],
        },
    ];
    for case in &cases {
        check(case);
    }
}

#[test]
fn within_rules() {
    let cases = [
        Case {
            name: "keep-within 1m by the calendar: 03-31 reaches back to 02-28, inclusive",
            rules: "within=1m",
            now: "2026-03-31T12:00:00Z",
            rows: &[
                ("2026-03-31T12:00:00Z", false, "keep-within"),
                ("2026-03-01T00:00:00Z", false, "keep-within"),
                ("2026-02-28T12:00:00Z", false, "keep-within"),
                ("2026-02-28T11:59:59Z", false, "-"),
                ("2026-03-31T12:00:01Z", false, "-"),
            ],
        },
        Case {
            name: "keep-within never keeps the future; keep-last can",
            rules: "last=1 within=2d",
            now: NOW,
            rows: &[
                ("2026-07-05T00:00:00Z", false, "keep-last"),
                ("2026-07-01T00:00:00Z", false, "-"),
                ("2026-06-29T00:00:00Z", false, "keep-within"),
                ("2026-06-28T00:00:00Z", false, "-"),
            ],
        },
        Case {
            name: "keep-within-daily: newest of each day in the window, no limit",
            rules: "within-daily=3d",
            now: NOW,
            rows: &[
                ("2026-07-01T00:00:00Z", false, "-"),
                ("2026-06-30T11:00:00Z", false, "keep-within-daily"),
                ("2026-06-30T10:00:00Z", false, "-"),
                ("2026-06-29T10:00:00Z", false, "keep-within-daily"),
                ("2026-06-28T10:00:00Z", false, "keep-within-daily"),
                ("2026-06-27T13:00:00Z", false, "keep-within-daily"),
                ("2026-06-27T11:00:00Z", false, "-"),
                ("2026-06-26T23:00:00Z", false, "-"),
            ],
        },
        Case {
            name: "keep-within-hourly after keep-last",
            rules: "last=1 within-hourly=2h",
            now: NOW,
            rows: &[
                ("2026-06-30T11:30:00Z", false, "keep-last"),
                ("2026-06-30T11:10:00Z", false, "-"),
                ("2026-06-30T10:20:00Z", false, "keep-within-hourly"),
                ("2026-06-30T10:00:00Z", false, "-"),
                ("2026-06-30T09:59:59Z", false, "-"),
            ],
        },
        Case {
            name: "keep-within-weekly, -monthly and -yearly",
            rules: "within-weekly=2w within-monthly=3m within-yearly=3y",
            now: NOW,
            rows: &[
                ("2026-06-29T00:00:00Z", false, "keep-within-weekly"),
                ("2026-06-24T00:00:00Z", false, "keep-within-weekly"),
                ("2026-06-17T00:00:00Z", false, "keep-within-weekly"),
                ("2026-06-15T00:00:00Z", false, "-"),
                ("2026-05-20T00:00:00Z", false, "keep-within-monthly"),
                ("2026-05-10T00:00:00Z", false, "-"),
                ("2026-04-10T00:00:00Z", false, "keep-within-monthly"),
                ("2026-03-29T00:00:00Z", false, "-"),
                ("2025-06-30T00:00:00Z", false, "keep-within-yearly"),
                ("2024-01-01T00:00:00Z", false, "keep-within-yearly"),
                ("2023-06-30T11:00:00Z", false, "-"),
            ],
        },
    ];
    for case in &cases {
        check(case);
    }
}

/// A typical policy over a year of daily backups: the exact set that survives.
#[test]
fn typical_policy_over_a_year() {
    let first = t("2026-01-01T02:00:00Z");
    let candidates: Vec<PruneCandidate> = (0..365)
        .map(|day| PruneCandidate {
            time: first + day * 86_400,
            protected: false,
        })
        .collect();
    let rules = KeepRules {
        last: Some(3),
        daily: Some(7),
        monthly: Some(6),
        ..Default::default()
    };
    let marks = plan(&candidates, &rules, t("2026-12-31T12:00:00Z"));
    let kept: Vec<String> = candidates
        .iter()
        .zip(&marks)
        .filter_map(|(c, m)| m.map(|r| format!("{} {r}", &format_time(c.time)[..10])))
        .collect();
    let expected = [
        "2026-06-30 keep-monthly",
        "2026-07-31 keep-monthly",
        "2026-08-31 keep-monthly",
        "2026-09-30 keep-monthly",
        "2026-10-31 keep-monthly",
        "2026-11-30 keep-monthly",
        "2026-12-22 keep-daily",
        "2026-12-23 keep-daily",
        "2026-12-24 keep-daily",
        "2026-12-25 keep-daily",
        "2026-12-26 keep-daily",
        "2026-12-27 keep-daily",
        "2026-12-28 keep-daily",
        "2026-12-29 keep-last",
        "2026-12-30 keep-last",
        "2026-12-31 keep-last",
    ];
    assert_eq!(kept, expected);
}

#[test]
fn iso_weeks() {
    for (date, expected) in [
        ("2026-01-01", (2026, 1)),
        ("2026-12-28", (2026, 53)),
        ("2026-12-31", (2026, 53)),
        ("2027-01-01", (2026, 53)),
        ("2027-01-03", (2026, 53)),
        ("2027-01-04", (2027, 1)),
        ("2024-12-30", (2025, 1)),
        ("2021-01-03", (2020, 53)),
        ("2020-12-31", (2020, 53)),
        ("1970-01-01", (1970, 1)),
    ] {
        let days = t(&format!("{date}T12:00:00Z")).div_euclid(86_400);
        assert_eq!(iso_week(days), expected, "{date}");
    }
}

#[test]
fn reasons_display_and_serialize_alike() {
    let all = [
        KeepReason::Protected,
        KeepReason::NoRules,
        KeepReason::Last,
        KeepReason::Hourly,
        KeepReason::Daily,
        KeepReason::Weekly,
        KeepReason::Monthly,
        KeepReason::Yearly,
        KeepReason::Within,
        KeepReason::WithinHourly,
        KeepReason::WithinDaily,
        KeepReason::WithinWeekly,
        KeepReason::WithinMonthly,
        KeepReason::WithinYearly,
    ];
    for reason in all {
        let json = serde_json::to_value(reason).unwrap();
        assert_eq!(json, reason.to_string(), "{reason:?}");
    }
    assert_eq!(KeepReason::WithinDaily.to_string(), "keep-within-daily");
    assert!(KeepRules::default().is_empty());
    assert!(
        !KeepRules {
            within: d("1h"),
            ..Default::default()
        }
        .is_empty()
    );
    let zero = Some(CalendarDuration::default());
    assert!(
        KeepRules {
            within: zero,
            last: Some(0),
            ..Default::default()
        }
        .is_empty()
    );
}

fn arb_rules() -> impl Strategy<Value = KeepRules> {
    let count = || proptest::option::of(0u64..5);
    let within = || proptest::option::of((0u32..2, 0u32..3, 0u32..20, 0u32..30));
    (
        (count(), count(), count(), count(), count(), count()),
        (within(), within(), within()),
    )
        .prop_map(
            |((last, hourly, daily, weekly, monthly, yearly), (w, wd, wm))| {
                let dur = |p: Option<(u32, u32, u32, u32)>| {
                    p.map(|(years, months, days, hours)| CalendarDuration {
                        years,
                        months,
                        days,
                        hours,
                    })
                };
                KeepRules {
                    last,
                    hourly,
                    daily,
                    weekly,
                    monthly,
                    yearly,
                    within: dur(w),
                    within_daily: dur(wd),
                    within_monthly: dur(wm),
                    ..Default::default()
                }
            },
        )
}

proptest! {
    #[test]
    fn plan_invariants(
        times in proptest::collection::btree_set(1_700_000_000i64..1_800_000_000, 0..40),
        protected in proptest::collection::vec(any::<bool>(), 40),
        rules in arb_rules(),
        rotate in 0usize..40,
    ) {
        let now = 1_790_000_000;
        let mut candidates: Vec<PruneCandidate> = times
            .iter()
            .zip(&protected)
            .map(|(&time, &protected)| PruneCandidate { time, protected })
            .collect();
        let marks = plan(&candidates, &rules, now);
        prop_assert_eq!(marks.len(), candidates.len());
        for (c, m) in candidates.iter().zip(&marks) {
            prop_assert_eq!(c.protected, *m == Some(KeepReason::Protected));
            if rules.is_empty() {
                prop_assert!(m.is_some());
            }
            if matches!(m, Some(KeepReason::Within)) {
                prop_assert!(c.time <= now);
            }
        }
        if let Some(n) = rules.last.filter(|&n| n > 0) {
            let unprotected = candidates.iter().filter(|c| !c.protected).count() as u64;
            let last = marks.iter().filter(|m| **m == Some(KeepReason::Last)).count() as u64;
            prop_assert_eq!(last, n.min(unprotected));
        }
        // The input order does not matter.
        if !candidates.is_empty() {
            let k = rotate % candidates.len();
            candidates.rotate_left(k);
            let mut rotated = plan(&candidates, &rules, now);
            rotated.rotate_right(k);
            prop_assert_eq!(rotated, marks);
        }
    }
}
