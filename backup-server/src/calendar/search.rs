//! The search for the next matching wall-clock time, and its mapping to an instant.
//!
//! [`next_local`] works on civil (time-zone-free) date and time and moves field by field:
//! it jumps to the next allowed year, month, day, hour, minute and second and carries into the
//! larger field when a smaller one runs out, so a yearly event costs a handful of steps, never
//! one per second. [`resolve`] then asks the time zone which instants that wall-clock time
//! names. Nothing here reads the clock or the system time zone.

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone};

use super::CalendarEvent;
use super::field::{self, Field};

/// A civil date and time to the second. Fields may briefly leave their range while
/// carrying (`second == 60`); [`Cursor::carry`] puts them back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Cursor {
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

impl Cursor {
    /// The wall-clock second that follows `dt` (its fraction of a second dropped).
    pub(super) fn second_after(dt: DateTime) -> Option<Self> {
        if i32::from(dt.year()) < i32::try_from(field::YEAR.min).ok()? {
            return Some(Self {
                year: field::YEAR.min,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0,
            });
        }
        let mut cursor = Self::at(dt)?;
        cursor.second += 1;
        cursor.carry();
        Some(cursor)
    }

    /// `dt` to the second; `None` for years before 0.
    fn at(dt: DateTime) -> Option<Self> {
        let part = |value: i8| u32::try_from(value).ok();
        Some(Self {
            year: u32::try_from(dt.year()).ok()?,
            month: part(dt.month())?,
            day: part(dt.day())?,
            hour: part(dt.hour())?,
            minute: part(dt.minute())?,
            second: part(dt.second())?,
        })
    }

    fn datetime(self) -> Option<DateTime> {
        let part = |value: u32| i8::try_from(value).ok();
        DateTime::new(
            i16::try_from(self.year).ok()?,
            part(self.month)?,
            part(self.day)?,
            part(self.hour)?,
            part(self.minute)?,
            part(self.second)?,
            0,
        )
        .ok()
    }

    /// Moves overflowing fields into the next larger one, and resets the smaller fields
    /// whenever a larger one moved.
    fn carry(&mut self) {
        if self.second > 59 {
            self.minute += 1;
            self.second = 0;
        }
        if self.minute > 59 {
            self.hour += 1;
            self.minute = 0;
        }
        if self.hour > 23 {
            self.day += 1;
            self.hour = 0;
        }
        if self.day > days_in_month(self.year, self.month) {
            self.month += 1;
            self.day = 1;
        }
        if self.month > 12 {
            self.year += 1;
            self.month = 1;
        }
    }

    /// Sets one field to a larger value and the smaller fields to their minimum.
    fn raise(&mut self, level: usize, value: u32) {
        let fields = [
            &mut self.year,
            &mut self.month,
            &mut self.day,
            &mut self.hour,
            &mut self.minute,
            &mut self.second,
        ];
        for (index, slot) in fields.into_iter().enumerate() {
            match index.cmp(&level) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => *slot = value,
                std::cmp::Ordering::Greater => *slot = u32::from(index <= 2),
            }
        }
    }

    /// Moves past the current value of field `level` (0 = year ... 5 = second).
    fn bump(&mut self, level: usize) {
        let current = [
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
        ][level];
        self.raise(level, current + 1);
        self.carry();
    }
}

/// The first wall-clock time at or after `from` that `event` matches, or `None` when there
/// is none up to the end of year 9999.
pub(super) fn next_local(event: &CalendarEvent, from: Cursor) -> Option<Cursor> {
    let mut at = from;
    loop {
        if at.year > field::YEAR.max {
            return None;
        }
        // Each step finds the smallest allowed value not below the cursor's; if the field
        // ran out, the next larger field moves on and the search starts over from there.
        let fields: [(&Field, u32, u32); 6] = [
            (&event.years, at.year, field::YEAR.max),
            (&event.months, at.month, 12),
            (&event.days, at.day, days_in_month(at.year, at.month)),
            (&event.hours, at.hour, 23),
            (&event.minutes, at.minute, 59),
            (&event.seconds, at.second, 59),
        ];
        let mut moved = false;
        for (level, (field, current, max)) in fields.into_iter().enumerate() {
            match field.next_match(current, max) {
                None if level == 0 => return None,
                None => at.bump(level - 1),
                Some(value) if value > current => at.raise(level, value),
                Some(_) => {
                    if level == 2 && !event.weekdays.contains(weekday(at.year, at.month, at.day)) {
                        at.bump(2);
                    } else {
                        continue;
                    }
                }
            }
            moved = true;
            break;
        }
        if !moved {
            return Some(at);
        }
    }
}

/// The first instant after `after` at which the wall clock shows `local`, or where the search
/// goes on when there is none.
pub(super) enum Resolved {
    At(Timestamp),
    SearchFrom(Cursor),
    End,
}

/// Maps a matching wall-clock time to an instant.
///
/// A time in a spring-forward gap does not exist and is skipped: the search goes on from
/// the end of the gap, as systemd does. A time in a fall-back fold exists twice; the earlier
/// instant that is still after `after` is taken. Since the search only walks forward in
/// wall-clock time, each wall-clock time fires once.
pub(super) fn resolve(local: Cursor, after: Timestamp, tz: &TimeZone) -> Resolved {
    let Some(dt) = local.datetime() else {
        return Resolved::End;
    };
    let offsets = match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => [Some(offset), None],
        AmbiguousOffset::Fold {
            before,
            after: later,
        } => [Some(before), Some(later)],
        AmbiguousOffset::Gap { after: later, .. } => {
            // The transition lies between `dt` read with the later offset and `dt` read with
            // the earlier one; the gap ends where the wall clock shows the transition instant.
            let gap_end = later
                .to_timestamp(dt)
                .ok()
                .and_then(|ts| tz.following(ts).next())
                .and_then(|transition| Cursor::at(tz.to_datetime(transition.timestamp())));
            let next = Cursor::second_after(dt);
            // `filter` guards against time zone data that would send the search backwards.
            return match gap_end.filter(|end| Some(*end) > next).or(next) {
                Some(cursor) => Resolved::SearchFrom(cursor),
                None => Resolved::End,
            };
        }
    };
    let instant = offsets
        .into_iter()
        .flatten()
        .filter_map(|offset| offset.to_timestamp(dt).ok())
        .find(|instant| *instant > after);
    match (instant, Cursor::second_after(dt)) {
        (Some(instant), _) => Resolved::At(instant),
        (None, Some(next)) => Resolved::SearchFrom(next),
        (None, None) => Resolved::End,
    }
}

fn is_leap_year(year: u32) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

pub(super) fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// ISO weekday index (0 = Monday) of a valid civil date, by counting days from 1970-01-01
/// (a Thursday) with the usual March-based year.
pub(super) fn weekday(year: u32, month: u32, day: u32) -> u32 {
    let (year, month) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era_days = 365 * year + year / 4 - year / 100 + year / 400;
    let days = era_days + (153 * month + 2) / 5 + day - 1;
    // 0000-03-01 in the proleptic Gregorian calendar was a Wednesday (index 2).
    (days + 2) % 7
}
