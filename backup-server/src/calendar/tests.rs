//! Table-driven tests of the calendar parser and of `next_after`, in UTC and in
//! Europe/Berlin across the 2026 DST switches (2026-03-29 and 2026-10-25).

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::search::{days_in_month, weekday};
use super::{CalendarError, CalendarEvent, next_runs};

/// Europe/Berlin from the system database; the POSIX rule (identical for 2026) keeps the
/// tests meaningful on a machine without tzdata.
pub(super) fn berlin() -> TimeZone {
    TimeZone::get("Europe/Berlin")
        .or_else(|_| TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3"))
        .expect("Europe/Berlin time zone")
}

fn event(text: &str) -> CalendarEvent {
    text.parse()
        .unwrap_or_else(|error| panic!("{text:?}: {error}"))
}

fn instant(text: &str) -> Timestamp {
    text.parse()
        .unwrap_or_else(|error| panic!("{text:?}: {error}"))
}

#[test]
fn parses_and_normalizes() {
    let table = [
        ("daily", "*-*-* 00:00:00"),
        ("hourly", "*-*-* *:00:00"),
        ("minutely", "*-*-* *:*:00"),
        ("weekly", "Mon *-*-* 00:00:00"),
        ("monthly", "*-*-01 00:00:00"),
        ("yearly", "*-01-01 00:00:00"),
        ("Annually", "*-01-01 00:00:00"),
        ("quarterly", "*-01,04,07,10-01 00:00:00"),
        ("semiannually", "*-01,07-01 00:00:00"),
        ("mon..fri 02:30", "Mon..Fri *-*-* 02:30:00"),
        ("*:0/15", "*-*-* *:00/15:00"),
        ("sat *-*-1..7 03:00", "Sat *-*-01..07 03:00:00"),
        ("SAT *-1..7 15:00", "Sat *-*-01..07 15:00:00"),
        ("*-*-01 00:00", "*-*-01 00:00:00"),
        ("2026-12-24 18:00", "2026-12-24 18:00:00"),
        ("mon,wed,fri *:00", "Mon,Wed,Fri *-*-* *:00:00"),
        ("*:*:0/5", "*-*-* *:*:00/5"),
        ("Monday", "Mon *-*-* 00:00:00"),
        ("sat,sun", "Sat,Sun *-*-* 00:00:00"),
        ("sun,mon", "Mon,Sun *-*-* 00:00:00"),
        ("mon,tue,wed,fri", "Mon..Wed,Fri *-*-* 00:00:00"),
        ("mon..sun", "*-*-* 00:00:00"),
        ("*-*-* 8..17,22:0/15", "*-*-* 08..17,22:00/15:00"),
        ("5,1,3,3:00", "*-*-* 01,03,05:00:00"),
        ("*-*/2-01", "*-01/2-01 00:00:00"),
        ("2026/2-01-01", "2026/2-01-01 00:00:00"),
        ("*-*-1..7/2 12:00", "*-*-01..07/2 12:00:00"),
        ("*-*-01..31/1", "*-*-* 00:00:00"),
        ("5..5/3:00", "*-*-* 05:00:00"),
        ("Wednesday 1:2:3", "Wed *-*-* 01:02:03"),
        ("  mon \t 02:30 ", "Mon *-*-* 02:30:00"),
    ];
    for (input, normalized) in table {
        let parsed = event(input);
        assert_eq!(parsed.to_string(), normalized, "{input:?}");
        assert_eq!(event(normalized), parsed, "{input:?} round trip");
    }
    assert_eq!(event("daily"), event("*-*-* 00:00"));
    assert_eq!(event("weekly"), event("mon"));
}

#[test]
fn rejects_bad_input_naming_the_token() {
    let table: &[(&str, usize, &str)] = &[
        ("", 0, ""),
        ("   ", 0, ""),
        ("dialy", 1, "dialy"),
        ("24:00", 1, "24"),
        ("*:60", 3, "60"),
        ("00:00:60", 7, "60"),
        ("*-13-01", 3, "13"),
        ("*-*-32", 5, "32"),
        ("1969-01-01", 1, "1969"),
        ("10..5:00", 1, "10..5"),
        ("fri..mon", 1, "fri..mon"),
        ("*:0/0", 3, "0/0"),
        ("02:30 x", 7, "x"),
        ("02:30x", 4, "30x"),
        ("mon..fir 02:30", 6, "fir"),
        ("mnday 02:30", 1, "mnday"),
        ("mon,", 5, ""),
        ("daily 02:30", 7, "02:30"),
        ("1,:00", 3, ""),
        ("1:2:3:4", 6, ":4"),
        ("1-2-3-4", 6, "-4"),
        ("02:30 mon", 7, "mon"),
        ("5", 1, "5"),
        ("*-*-1..x", 8, "x"),
        ("mon ä", 5, "ä"),
        ("ä 02:30", 1, "ä"),
        ("*:99999999999", 3, "99999999999"),
    ];
    for &(input, position, token) in table {
        let error = input.parse::<CalendarEvent>().expect_err(input);
        let (got_position, got_token) = match &error {
            CalendarError::Empty => (0, ""),
            CalendarError::UnknownWord {
                position, token, ..
            }
            | CalendarError::UnknownWeekday {
                position, token, ..
            }
            | CalendarError::BackwardRange {
                position, token, ..
            }
            | CalendarError::ZeroStep {
                position, token, ..
            }
            | CalendarError::Unexpected {
                position, token, ..
            } => (*position, token.as_str()),
            CalendarError::OutOfRange {
                position, value, ..
            } => {
                assert!(input.contains(&value.to_string()), "{input:?}: {error}");
                (*position, &input[position - 1..][..value.to_string().len()])
            }
        };
        assert_eq!(
            (got_position, got_token),
            (position, token),
            "{input:?}: {error}"
        );
    }
}

#[test]
fn error_messages_are_clear() {
    #[rustfmt::skip]
    let table = [
        ("", "empty calendar event: expected e.g. `daily` or `mon..fri 02:30`"),
        ("24:00", r#"hour 24 at position 1 in "24:00" is outside 0..23"#),
        ("*-*-32", r#"day 32 at position 5 in "*-*-32" is outside 1..31"#),
        ("*-13-01", r#"month 13 at position 3 in "*-13-01" is outside 1..12"#),
        ("*:0/0", r#"repetition "0/0" at position 3 in "*:0/0" has step 0"#),
        ("3..1:00", r#"range "3..1" at position 1 in "3..1:00" runs backwards"#),
        ("02:30 junk", r#"unexpected "junk" at position 7 in "02:30 junk": expected the end of the event"#),
        ("mon..fir", r#"unknown weekday "fir" at position 6 in "mon..fir": expected mon, tue, wed, thu, fri, sat or sun (or the full name)"#),
    ];
    for (input, message) in table {
        let error = input.parse::<CalendarEvent>().expect_err(input);
        assert_eq!(error.to_string(), message, "{input:?}");
    }
    let unknown = "dialy"
        .parse::<CalendarEvent>()
        .expect_err("dialy")
        .to_string();
    assert!(
        unknown.starts_with(r#"unknown word "dialy" at position 1"#),
        "{unknown}"
    );
    assert!(unknown.contains("daily, weekly"), "{unknown}");
}

/// Ends a list of expected occurrences: the event fires no more.
const NEVER: &str = "never";

/// (expression, time zone, start, the next occurrences, [`NEVER`] last if there are no more).
type Case = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

#[rustfmt::skip]
const UTC_CASES: &[Case] = &[
    ("daily", "UTC", "2026-01-01T00:00:00Z", &["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"]),
    ("hourly", "UTC", "2026-01-01T00:59:59.9Z", &["2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"]),
    ("weekly", "UTC", "2026-01-01T00:00:00Z", &["2026-01-05T00:00:00Z", "2026-01-12T00:00:00Z"]),
    ("mon..fri 02:30", "UTC", "2026-01-01T00:00:00Z", &[
        "2026-01-01T02:30:00Z", "2026-01-02T02:30:00Z", "2026-01-05T02:30:00Z",
    ]),
    ("*:0/15", "UTC", "2026-01-01T00:40:00Z", &[
        "2026-01-01T00:45:00Z", "2026-01-01T01:00:00Z", "2026-01-01T01:15:00Z",
    ]),
    ("sat *-*-1..7 03:00", "UTC", "2026-01-01T00:00:00Z", &[
        "2026-01-03T03:00:00Z", "2026-02-07T03:00:00Z", "2026-03-07T03:00:00Z",
        "2026-04-04T03:00:00Z", "2026-05-02T03:00:00Z",
    ]),
    ("*-*-01 00:00", "UTC", "2026-01-01T00:00:00Z", &[
        "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z",
    ]),
    ("2026-12-24 18:00", "UTC", "2026-01-01T00:00:00Z", &["2026-12-24T18:00:00Z", NEVER]),
    ("2026-12-24 18:00", "UTC", "2026-12-24T18:00:00Z", &[NEVER]),
    ("2020-01-01", "UTC", "2026-01-01T00:00:00Z", &[NEVER]),
    ("mon,wed,fri *:00", "UTC", "2026-01-02T22:30:00Z", &[
        "2026-01-02T23:00:00Z", "2026-01-05T00:00:00Z", "2026-01-05T01:00:00Z",
    ]),
    ("*:*:0/5", "UTC", "2026-01-01T00:00:58.5Z", &["2026-01-01T00:01:00Z", "2026-01-01T00:01:05Z"]),
    ("*-*-31", "UTC", "2026-01-31T00:00:00Z", &[
        "2026-03-31T00:00:00Z", "2026-05-31T00:00:00Z", "2026-07-31T00:00:00Z",
        "2026-08-31T00:00:00Z", "2026-10-31T00:00:00Z",
    ]),
    ("*-02-29", "UTC", "2026-01-01T00:00:00Z", &["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"]),
    ("*-02-29", "UTC", "2097-01-01T00:00:00Z", &["2104-02-29T00:00:00Z"]),
    ("*-02-30", "UTC", "2026-01-01T00:00:00Z", &[NEVER]),
    ("mon 2026-12-24", "UTC", "2026-01-01T00:00:00Z", &[NEVER]),
    ("daily", "UTC", "2026-12-31T12:00:00Z", &["2027-01-01T00:00:00Z"]),
    ("*-12-31 23:59:59", "UTC", "2026-12-31T23:59:59Z", &["2027-12-31T23:59:59Z"]),
    ("yearly", "UTC", "2026-06-01T00:00:00Z", &["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"]),
    ("quarterly", "UTC", "2026-11-15T00:00:00Z", &["2027-01-01T00:00:00Z", "2027-04-01T00:00:00Z"]),
    ("monthly", "UTC", "2026-12-15T00:00:00Z", &["2027-01-01T00:00:00Z"]),
    // Past jiff's last instant (9999-12-30T22:00Z) nothing fires, and nothing panics.
    ("9999-12-31 23:59:59", "UTC", "9999-01-01T00:00:00Z", &[NEVER]),
    ("daily", "UTC", "1960-01-01T00:00:00Z", &["1970-01-01T00:00:00Z"]),
];

#[rustfmt::skip]
const BERLIN_CASES: &[Case] = &[
    // 02:30 does not exist on the spring-forward day: the daily run skips that day.
    ("*-*-* 02:30", "Europe/Berlin", "2026-03-28T12:00:00+01:00", &[
        "2026-03-30T02:30:00+02:00", "2026-03-31T02:30:00+02:00",
    ]),
    ("2026-03-29 02:30", "Europe/Berlin", "2026-03-01T00:00:00+01:00", &[NEVER]),
    // On the fall-back day it fires once, at the first 02:30.
    ("02:30", "Europe/Berlin", "2026-10-24T12:00:00+02:00", &[
        "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00",
    ]),
    ("*:0/15", "Europe/Berlin", "2026-03-29T01:20:00+01:00", &[
        "2026-03-29T01:30:00+01:00", "2026-03-29T01:45:00+01:00", "2026-03-29T03:00:00+02:00",
        "2026-03-29T03:15:00+02:00",
    ]),
    ("*:0/15", "Europe/Berlin", "2026-10-25T01:40:00+02:00", &[
        "2026-10-25T01:45:00+02:00", "2026-10-25T02:00:00+02:00", "2026-10-25T02:15:00+02:00",
        "2026-10-25T02:30:00+02:00", "2026-10-25T02:45:00+02:00", "2026-10-25T03:00:00+01:00",
        "2026-10-25T03:15:00+01:00",
    ]),
    // Starting inside the second pass of the fold, the rest of that pass fires.
    ("*:0/15", "Europe/Berlin", "2026-10-25T02:10:00+01:00", &[
        "2026-10-25T02:15:00+01:00", "2026-10-25T02:30:00+01:00",
    ]),
    ("hourly", "Europe/Berlin", "2026-10-25T01:30:00+02:00", &[
        "2026-10-25T02:00:00+02:00", "2026-10-25T03:00:00+01:00",
    ]),
    ("*:*:0/5", "Europe/Berlin", "2026-03-29T01:59:50+01:00", &[
        "2026-03-29T01:59:55+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:00:05+02:00",
    ]),
    ("daily", "Europe/Berlin", "2026-03-28T12:00:00+01:00", &[
        "2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00",
    ]),
    ("mon..fri 02:30", "Europe/Berlin", "2026-03-27T03:00:00+01:00", &[
        "2026-03-30T02:30:00+02:00",
    ]),
    ("sat *-*-1..7 03:00", "Europe/Berlin", "2026-01-01T00:00:00+01:00", &[
        "2026-01-03T03:00:00+01:00", "2026-02-07T03:00:00+01:00", "2026-03-07T03:00:00+01:00",
        "2026-04-04T03:00:00+02:00",
    ]),
    ("*-*-01 00:00", "Europe/Berlin", "2026-10-15T00:00:00+02:00", &["2026-11-01T00:00:00+01:00"]),
];

#[test]
fn next_after_follows_the_tables() {
    for &(expression, zone, start, expected) in UTC_CASES.iter().chain(BERLIN_CASES) {
        let tz = if zone == "UTC" {
            TimeZone::UTC
        } else {
            berlin()
        };
        let ends = expected.last() == Some(&NEVER);
        let expected: Vec<Timestamp> = expected
            .iter()
            .filter(|text| **text != NEVER)
            .map(|text| instant(text))
            .collect();
        let count = expected.len() + usize::from(ends);
        let runs = next_runs(&event(expression), instant(start), &tz, count);
        assert_eq!(runs, expected, "{expression:?} in {zone} after {start}");
    }
}

/// A slow reference: walk every minute, fire when the wall clock shows a matching time it
/// has not shown before (so gap times never fire and fold times fire once).
fn brute_force(
    event: &CalendarEvent,
    start: Timestamp,
    tz: &TimeZone,
    minutes: i64,
) -> Vec<Timestamp> {
    let mut runs = Vec::new();
    let mut latest_wall = tz.to_datetime(start);
    for minute in 1..=minutes {
        let instant = Timestamp::from_second(start.as_second() + minute * 60).expect("in range");
        let wall = tz.to_datetime(instant);
        if wall <= latest_wall {
            continue;
        }
        latest_wall = wall;
        let value = |field: &super::Field, value: i8, max: u32| {
            let value = u32::try_from(value).expect("positive");
            field.next_match(value, max) == Some(value)
        };
        let (year, month, day) = (wall.year() as u32, wall.month() as u32, wall.day() as u32);
        let matched = event.weekdays.contains(weekday(year, month, day))
            && event.years.next_match(year, 9999) == Some(year)
            && value(&event.months, wall.month(), 12)
            && value(&event.days, wall.day(), 31)
            && value(&event.hours, wall.hour(), 23)
            && value(&event.minutes, wall.minute(), 59)
            && value(&event.seconds, wall.second(), 59);
        if matched {
            runs.push(instant);
        }
    }
    runs
}

#[test]
fn next_after_agrees_with_a_minute_by_minute_walk() {
    let expressions = [
        "*:0/15",
        "02:30",
        "hourly",
        "02,03:00/20",
        "mon..sun 1..3:*",
        "daily",
        "*-*-25..31 02:59",
    ];
    let starts = [
        "2026-03-27T22:13:00Z",
        "2026-10-23T21:47:00Z",
        "2026-12-30T00:00:00Z",
    ];
    for zone in [TimeZone::UTC, berlin()] {
        for expression in expressions {
            let event = event(expression);
            for start in starts {
                let start = instant(start);
                let slow = brute_force(&event, start, &zone, 3 * 24 * 60);
                let fast = next_runs(&event, start, &zone, slow.len() + 1);
                let window_end =
                    Timestamp::from_second(start.as_second() + 3 * 24 * 3600).expect("in range");
                let fast: Vec<_> = fast.into_iter().filter(|t| *t <= window_end).collect();
                assert_eq!(fast, slow, "{expression:?} from {start} in {zone:?}");
            }
        }
    }
}

#[test]
fn calendar_helpers_agree_with_jiff() {
    for year in [1970, 2000, 2024, 2026, 2100, 9999] {
        for month in 1..=12u32 {
            let date = jiff::civil::Date::new(year as i16, month as i8, 1).expect("valid");
            assert_eq!(days_in_month(year, month), date.days_in_month() as u32);
            for day in 1..=days_in_month(year, month) {
                let date =
                    jiff::civil::Date::new(year as i16, month as i8, day as i8).expect("valid");
                let expected = date.weekday().to_monday_zero_offset() as u32;
                assert_eq!(weekday(year, month, day), expected, "{date}");
            }
        }
    }
}

#[test]
fn impossible_events_end_quickly() {
    // Field-by-field search: thousands of years are a few thousand steps, not billions.
    let started = std::time::Instant::now();
    for expression in ["*-02-30", "mon *-02-30 *:*:*", "mon 2026-02-13"] {
        assert_eq!(
            event(expression).next_after(Timestamp::UNIX_EPOCH, &berlin()),
            None
        );
    }
    let runs = next_runs(
        &event("*:*:*"),
        instant("2026-03-29T00:00:00Z"),
        &berlin(),
        10_000,
    );
    assert_eq!(runs.len(), 10_000);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
