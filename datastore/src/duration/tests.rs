use super::*;
use crate::snapshot::{format_time, parse_time};

fn dur(years: u32, months: u32, days: u32, hours: u32) -> CalendarDuration {
    CalendarDuration {
        years,
        months,
        days,
        hours,
    }
}

#[test]
fn good_durations() {
    let cases = [
        ("7d", dur(0, 0, 7, 0)),
        ("36h", dur(0, 0, 0, 36)),
        ("1y6m", dur(1, 6, 0, 0)),
        ("2w", dur(0, 0, 14, 0)),
        ("1y2m3w4d5h", dur(1, 2, 25, 5)),
        ("5h4d3w2m1y", dur(1, 2, 25, 5)),
        ("007d", dur(0, 0, 7, 0)),
        ("0y1m", dur(0, 1, 0, 0)),
        ("1w0d", dur(0, 0, 7, 0)),
        ("4294967295h", dur(0, 0, 0, u32::MAX)),
        ("613566756w3d", dur(0, 0, u32::MAX, 0)),
    ];
    for (input, expected) in cases {
        assert_eq!(parse_duration(input), Ok(expected), "{input:?}");
        assert_eq!(input.parse::<CalendarDuration>(), Ok(expected), "{input:?}");
    }
}

#[test]
fn bad_durations() {
    use DurationError as E;
    let s = |v: &str| v.to_string();
    let cases = [
        ("", E::Empty),
        (
            "d",
            E::MissingNumber {
                input: s("d"),
                unit: 'd',
            },
        ),
        ("7", E::MissingUnit { input: s("7") }),
        ("1d7", E::MissingUnit { input: s("1d7") }),
        (
            "7x",
            E::UnknownUnit {
                input: s("7x"),
                unit: 'x',
            },
        ),
        (
            "7D",
            E::UnknownUnit {
                input: s("7D"),
                unit: 'D',
            },
        ),
        (
            "7min",
            E::UnknownUnit {
                input: s("7min"),
                unit: 'i',
            },
        ),
        (
            "-1d",
            E::UnexpectedChar {
                input: s("-1d"),
                found: '-',
                position: 0,
            },
        ),
        (
            "+1d",
            E::UnexpectedChar {
                input: s("+1d"),
                found: '+',
                position: 0,
            },
        ),
        (
            "1.5d",
            E::UnexpectedChar {
                input: s("1.5d"),
                found: '.',
                position: 1,
            },
        ),
        (
            "1d 2h",
            E::UnexpectedChar {
                input: s("1d 2h"),
                found: ' ',
                position: 2,
            },
        ),
        (
            " 1d",
            E::UnexpectedChar {
                input: s(" 1d"),
                found: ' ',
                position: 0,
            },
        ),
        (
            "1٣d",
            E::UnexpectedChar {
                input: s("1٣d"),
                found: '٣',
                position: 1,
            },
        ),
        (
            "1d1d",
            E::RepeatedUnit {
                input: s("1d1d"),
                unit: 'd',
            },
        ),
        (
            "1y2m1y",
            E::RepeatedUnit {
                input: s("1y2m1y"),
                unit: 'y',
            },
        ),
        (
            "4294967296h",
            E::TooLarge {
                input: s("4294967296h"),
            },
        ),
        (
            "99999999999999999999d",
            E::TooLarge {
                input: s("99999999999999999999d"),
            },
        ),
        (
            "613566757w",
            E::TooLarge {
                input: s("613566757w"),
            },
        ),
        (
            "613566756w4d",
            E::TooLarge {
                input: s("613566756w4d"),
            },
        ),
        ("0d", E::Zero { input: s("0d") }),
        (
            "0y0m0w0d0h",
            E::Zero {
                input: s("0y0m0w0d0h"),
            },
        ),
    ];
    for (input, expected) in cases {
        let err = parse_duration(input).unwrap_err();
        assert_eq!(err, expected, "{input:?}");
        assert!(!err.to_string().is_empty());
    }
    // Messages name the input and what is expected.
    let msg = parse_duration("7x").unwrap_err().to_string();
    assert!(
        msg.contains("\"7x\"") && msg.contains("y, m, w, d or h"),
        "{msg}"
    );
}

#[test]
fn display_round_trips() {
    for input in ["7d", "36h", "1y6m", "1y2m25d5h"] {
        let d = parse_duration(input).unwrap();
        assert_eq!(d.to_string(), input);
        assert_eq!(parse_duration(&d.to_string()), Ok(d));
    }
    assert_eq!(parse_duration("2w").unwrap().to_string(), "14d");
    let json = serde_json::to_string(&parse_duration("1y2w").unwrap()).unwrap();
    assert_eq!(json, "\"1y14d\"");
    let back: CalendarDuration = serde_json::from_str(&json).unwrap();
    assert_eq!(back, dur(1, 0, 14, 0));
    assert!(serde_json::from_str::<CalendarDuration>("\"7x\"").is_err());
}

#[test]
fn subtract_by_calendar() {
    let cases = [
        // Month ends clamp.
        ("2026-03-31T10:00:00Z", "1m", "2026-02-28T10:00:00Z"),
        ("2024-03-31T10:00:00Z", "1m", "2024-02-29T10:00:00Z"),
        ("2026-05-31T00:00:00Z", "1m", "2026-04-30T00:00:00Z"),
        ("2026-03-31T00:00:00Z", "13m", "2025-02-28T00:00:00Z"),
        ("2026-01-15T00:00:00Z", "1m", "2025-12-15T00:00:00Z"),
        ("2026-01-31T23:59:59Z", "2m", "2025-11-30T23:59:59Z"),
        // Leap years.
        ("2024-02-29T12:00:00Z", "1y", "2023-02-28T12:00:00Z"),
        ("2028-02-29T12:00:00Z", "4y", "2024-02-29T12:00:00Z"),
        ("2000-02-29T00:00:00Z", "100y", "1900-02-28T00:00:00Z"),
        ("2024-03-01T00:00:00Z", "1d", "2024-02-29T00:00:00Z"),
        ("2023-03-01T00:00:00Z", "1d", "2023-02-28T00:00:00Z"),
        // Months first, then days and hours.
        ("2026-03-31T00:00:00Z", "1m1d", "2026-02-27T00:00:00Z"),
        ("2026-03-01T01:00:00Z", "2h", "2026-02-28T23:00:00Z"),
        ("2026-01-01T00:00:00Z", "1w", "2025-12-25T00:00:00Z"),
        ("2026-06-15T08:30:00Z", "1y2m3w4d5h", "2025-03-21T03:30:00Z"),
        ("1970-01-01T00:00:00Z", "1d", "1969-12-31T00:00:00Z"),
    ];
    for (now, d, expected) in cases {
        let now_epoch = parse_time(now).unwrap();
        let got = subtract(now_epoch, &parse_duration(d).unwrap());
        assert_eq!(format_time(got), expected, "{now} - {d}");
    }
    assert_eq!(subtract(1_000, &CalendarDuration::default()), 1_000);
}

#[test]
fn subtract_never_overflows() {
    let huge = dur(u32::MAX, u32::MAX, u32::MAX, u32::MAX);
    for now in [i64::MIN, -1, 0, 1_800_000_000, i64::MAX] {
        let back = subtract(now, &huge);
        assert!(back <= now, "{now}");
        let _ = subtract(now, &dur(0, 0, 1, 0));
    }
    assert_eq!(subtract(i64::MIN + 10, &dur(0, 0, 1, 0)), i64::MIN);
}
