//! Calendar events for job schedules: the systemd-style expressions of `systemd.time(7)`
//! that Proxmox Backup Server accepts (`daily`, `mon..fri 02:30`, `sat *-*-1..7 03:00`,
//! `*:0/15`), parsed into a [`CalendarEvent`], and the search for the next time one fires.
//!
//! Syntax: `[WEEKDAYS] [[YEAR-]MONTH-DAY] [HOUR:MINUTE[:SECOND]]`, at least one part, or one
//! of the keywords `minutely`, `hourly`, `daily`, `weekly` (Monday 00:00), `monthly`,
//! `quarterly`, `semiannually`, `yearly`/`annually`. Weekdays are `mon`, `Monday`, lists
//! `sat,sun` and ranges `mon..fri`. Every numeric field is `*`, a number, a range `1..7`, a
//! repetition `START/STEP` (`0/15`, `*/2`, `1..7/2`) or a comma list of those. A missing
//! date means every day, a missing time 00:00:00, a missing second 0. Not supported: time
//! zone suffixes, `~` (days before the month's end), sub-seconds, `@epoch`.
//!
//! Time zones and DST, as `systemd-analyze calendar` (checked against systemd 252):
//! - the event is matched against the wall clock of the given zone;
//! - a wall-clock time that does not exist (inside a spring-forward gap, e.g. 02:30 on
//!   2026-03-29 in Europe/Berlin) does not fire; the search goes on after the gap, so
//!   `02:30` next fires the following day and `*:0/15` fires at 03:00;
//! - a wall-clock time that exists twice (fall-back fold) fires once, at its first instant;
//!   only when the search starts inside the second pass of the fold (`after` is there) do the
//!   remaining wall-clock times of the fold fire at their second instant.
//!
//! This module is pure: it must not read the clock, the system time zone or any file, nor
//! decide what a scheduler does with a missed run; callers pass the instant and the zone.

mod field;
mod parse;
mod search;

#[cfg(test)]
mod oracle_tests;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use field::{Field, Item, Weekdays};
use search::{Cursor, Resolved};

/// A parsed calendar event: for each field the values it allows.
///
/// Two spellings of the same schedule (`daily`, `*-*-* 00:00:00`) parse to equal values,
/// and [`Display`](fmt::Display) writes that normalized form, which parses back to an equal
/// value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CalendarEvent {
    weekdays: Weekdays,
    years: Field,
    months: Field,
    days: Field,
    hours: Field,
    minutes: Field,
    seconds: Field,
}

/// Why a calendar event did not parse. `position` is the 1-based character column of the
/// offending token in `input`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("empty calendar event: expected e.g. `daily` or `mon..fri 02:30`")]
    Empty,
    #[error(
        "unknown word {token:?} at position {position} in {input:?}: expected a weekday \
         (mon..sun), a date, a time or one of minutely, hourly, daily, weekly, monthly, \
         quarterly, semiannually, yearly, annually"
    )]
    UnknownWord {
        input: String,
        position: usize,
        token: String,
    },
    #[error(
        "unknown weekday {token:?} at position {position} in {input:?}: expected mon, tue, \
         wed, thu, fri, sat or sun (or the full name)"
    )]
    UnknownWeekday {
        input: String,
        position: usize,
        token: String,
    },
    #[error("{field} {value} at position {position} in {input:?} is outside {min}..{max}")]
    OutOfRange {
        input: String,
        position: usize,
        field: &'static str,
        value: u32,
        min: u32,
        max: u32,
    },
    #[error("range {token:?} at position {position} in {input:?} runs backwards")]
    BackwardRange {
        input: String,
        position: usize,
        token: String,
    },
    #[error("repetition {token:?} at position {position} in {input:?} has step 0")]
    ZeroStep {
        input: String,
        position: usize,
        token: String,
    },
    #[error("unexpected {token:?} at position {position} in {input:?}: expected {expected}")]
    Unexpected {
        input: String,
        position: usize,
        token: String,
        expected: &'static str,
    },
}

impl FromStr for CalendarEvent {
    type Err = CalendarError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        parse::parse(input)
    }
}

impl fmt::Display for CalendarEvent {
    /// The normalized form, like systemd's: `Mon..Fri *-*-* 02:30:00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.weekdays != Weekdays::ALL {
            self.weekdays.write(f)?;
            f.write_str(" ")?;
        }
        self.years.write(f, field::YEAR)?;
        f.write_str("-")?;
        self.months.write(f, field::MONTH)?;
        f.write_str("-")?;
        self.days.write(f, field::DAY)?;
        f.write_str(" ")?;
        self.hours.write(f, field::HOUR)?;
        f.write_str(":")?;
        self.minutes.write(f, field::MINUTE)?;
        f.write_str(":")?;
        self.seconds.write(f, field::SECOND)
    }
}

impl CalendarEvent {
    /// `*-*-* 00:00:00`: the parser's starting point, which each part then narrows.
    fn every_day_at_midnight() -> Self {
        let zero = || Field::List(vec![Item::value(0)]);
        Self {
            weekdays: Weekdays::ALL,
            years: Field::Any,
            months: Field::Any,
            days: Field::Any,
            hours: zero(),
            minutes: zero(),
            seconds: zero(),
        }
    }

    /// The first occurrence strictly after `after`, in the given time zone; `None` if there is
    /// none (e.g. `2020-01-01` once 2020 has passed, or `*-02-30`).
    ///
    /// See the module documentation for wall-clock times skipped or repeated by DST.
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let mut from = Cursor::second_after(tz.to_datetime(after))?;
        loop {
            let local = search::next_local(self, from)?;
            match search::resolve(local, after, tz) {
                Resolved::At(instant) => return Some(instant),
                Resolved::SearchFrom(next) => from = next,
                Resolved::End => return None,
            }
        }
    }
}

/// Convenience for the CLI: the next `count` occurrences after `from`, fewer if the event
/// stops firing.
pub fn next_runs(
    event: &CalendarEvent,
    from: Timestamp,
    tz: &TimeZone,
    count: usize,
) -> Vec<Timestamp> {
    let mut runs = Vec::with_capacity(count.min(1024));
    let mut last = from;
    while runs.len() < count {
        let Some(next) = event.next_after(last, tz) else {
            break;
        };
        runs.push(next);
        last = next;
    }
    runs
}
