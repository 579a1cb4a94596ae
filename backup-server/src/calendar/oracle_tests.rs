//! Differential test against `systemd-analyze calendar`, the reference implementation of
//! this syntax: same normalized form, same next occurrences, in UTC and in Europe/Berlin
//! around the 2026 DST switches. Skipped, with a printed reason, where systemd-analyze is
//! missing or too old for `--base-time` (systemd < 250).

use std::process::Command;

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;

use super::tests::berlin;
use super::{CalendarEvent, next_runs};

/// Expressions both implementations accept and normalize alike.
const EXPRESSIONS: &[&str] = &[
    "minutely",
    "hourly",
    "daily",
    "weekly",
    "monthly",
    "yearly",
    "quarterly",
    "semiannually",
    "mon..fri 02:30",
    "*:0/15",
    "sat *-*-1..7 03:00",
    "*-*-01 00:00",
    "2026-12-24 18:00",
    "mon,wed,fri *:00",
    "*:*:0/5",
    "*-*-31",
    "*-02-29",
    "02:30",
    "Sat,Sun 8..17,22:0/20",
    "2026/2-01-01",
    "*-*-1..7/2 12:00",
    "fri *-*-13",
    "01,03..05:30:15",
    "*-02-28..29 23:59:59",
    "mon..wed,fri 1..3:0/7:0/20",
];

/// Start instants: a plain day, just before the spring-forward and fall-back switches in
/// Berlin, inside the second pass of the fall-back fold, a year end and a leap day.
const STARTS: &[&str] = &[
    "2026-01-01T00:00:00Z",
    "2026-12-31T23:30:00Z",
    "2028-02-28T22:00:00Z",
    "2026-03-29T00:10:00Z",
    "2026-10-24T23:30:00Z",
    "2026-10-25T01:10:00Z",
];

const ITERATIONS: usize = 6;

/// What systemd-analyze said: its normalized form and the next occurrences.
struct Oracle {
    normalized: String,
    runs: Vec<Timestamp>,
}

fn ask_systemd(zone: &str, expression: &str, start: Timestamp) -> Result<Oracle, String> {
    let output = Command::new("systemd-analyze")
        .env("TZ", zone)
        .arg("calendar")
        .arg(format!("--iterations={ITERATIONS}"))
        .arg(format!("--base-time=@{}", start.as_second()))
        .arg(expression)
        .output()
        .map_err(|error| format!("cannot run systemd-analyze: {error}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!(
            "systemd-analyze failed on {expression:?}: {stderr}"
        ));
    }
    let mut normalized = None;
    let (mut local, mut in_utc) = (Vec::new(), Vec::new());
    for line in text.lines().map(str::trim) {
        let Some((label, value)) = line.split_once(": ") else {
            continue;
        };
        if label == "Normalized form" {
            normalized = Some(value.to_owned());
        } else if label == "Next elapse" || label.starts_with("Iter. #") {
            local.push(value);
        } else if label == "(in UTC)" {
            in_utc.push(value);
        }
    }
    // Outside UTC each occurrence has an "(in UTC)" line; in UTC only the main one.
    let lines = if in_utc.is_empty() { local } else { in_utc };
    let runs = lines
        .into_iter()
        .filter(|value| *value != "never")
        .map(parse_utc_line)
        .collect::<Result<_, _>>()?;
    let normalized = normalized.ok_or_else(|| format!("no normalized form in {text:?}"))?;
    Ok(Oracle { normalized, runs })
}

/// `Sun 2026-03-29 01:30:00 UTC` to an instant.
fn parse_utc_line(value: &str) -> Result<Timestamp, String> {
    let fields: Vec<&str> = value.split_whitespace().collect();
    let [_, date, time, "UTC"] = fields[..] else {
        return Err(format!("unexpected systemd-analyze line {value:?}"));
    };
    format!("{date} {time}")
        .parse::<DateTime>()
        .and_then(|dt| dt.to_zoned(TimeZone::UTC))
        .map(|zoned| zoned.timestamp())
        .map_err(|error| format!("{value:?}: {error}"))
}

#[test]
fn agrees_with_systemd_analyze() {
    let probe = Timestamp::UNIX_EPOCH;
    if let Err(reason) = ask_systemd("UTC", "daily", probe) {
        println!("skipping the systemd-analyze comparison: {reason}");
        return;
    }
    let mut compared = 0;
    for (zone_name, zone) in [("UTC", TimeZone::UTC), ("Europe/Berlin", berlin())] {
        for expression in EXPRESSIONS {
            let event: CalendarEvent = expression.parse().expect(expression);
            for start in STARTS {
                let start: Timestamp = start.parse().expect("start instant");
                let oracle = ask_systemd(zone_name, expression, start).expect("systemd-analyze");
                assert_eq!(event.to_string(), oracle.normalized, "{expression:?}");
                let ours = next_runs(&event, start, &zone, ITERATIONS);
                // systemd-analyze stops listing at the first "never", as next_runs does.
                assert_eq!(
                    ours, oracle.runs,
                    "{expression:?} in {zone_name} after {start}"
                );
                compared += 1;
            }
        }
    }
    println!("compared {compared} cases with systemd-analyze");
}
