//! End to end: `backup-server calendar` prints the next runs of a schedule and refuses bad
//! expressions with a message that says what is wrong.

use std::process::Command;

use e2e::harness::{bin, run_ok};

#[test]
fn calendar_prints_the_next_runs() {
    let output = run_ok(Command::new(bin("backup-server")).args([
        "calendar",
        "sat *-*-1..7 03:00",
        "--from",
        "2026-11-24T08:00:00Z",
        "--count",
        "3",
        "--timezone",
        "UTC",
        "--output-format",
        "json",
    ]));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        value["next"],
        serde_json::json!([
            "2026-12-05T03:00:00+00:00[UTC]",
            "2027-01-02T03:00:00+00:00[UTC]",
            "2027-02-06T03:00:00+00:00[UTC]"
        ])
    );

    // Across the DST change in Berlin: 02:30 does not exist on 2026-03-29.
    let output = run_ok(Command::new(bin("backup-server")).args([
        "calendar",
        "02:30",
        "--from",
        "2026-03-27T12:00:00Z",
        "--count",
        "3",
        "--timezone",
        "Europe/Berlin",
        "--output-format",
        "json",
    ]));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let next: Vec<&str> = value["next"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(next[0], "2026-03-28T02:30:00+01:00[Europe/Berlin]");
    assert_eq!(
        next[1], "2026-03-30T02:30:00+02:00[Europe/Berlin]",
        "{next:?}"
    );
}

#[test]
fn calendar_refuses_bad_expressions() {
    for bad in ["", "25:00", "mon..fri 02:61", "*-13-01", "tuesday-ish"] {
        let output = Command::new(bin("backup-server"))
            .args(["calendar", bad])
            .output()
            .unwrap();
        assert!(!output.status.success(), "{bad:?} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("invalid calendar event"),
            "{bad:?}: {stderr}"
        );
    }
}
