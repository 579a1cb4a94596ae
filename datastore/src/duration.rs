//! Calendar durations for retention rules: `7d`, `36h`, `1y6m`, `2w`, `1y2m3w4d5h`.
//!
//! A duration is a list of `<number><unit>` parts with the units `y` (calendar years), `m`
//! (calendar months, not minutes), `w` (7 days), `d` (days) and `h` (hours), each unit at
//! most once, in any order, with no sign, spaces or fractions. Years and months are kept
//! apart from days because their length depends on the date: [`subtract`] goes back by
//! calendar, in UTC, so that "keep-within 1m" on 31 March reaches back to 28 February.
//!
//! Pure: no IO and no clock; the caller passes `now`. What this module must not do: accept
//! an input it cannot represent exactly (overflow is an error, never a wrap), or guess at
//! ambiguous units.

use std::fmt;
use std::str::FromStr;

use crate::snapshot::{civil_from_days, days_from_civil, days_in_month};

const SECS_PER_DAY: i64 = 86_400;
const SECS_PER_HOUR: i64 = 3_600;
const UNITS: &str = "y, m, w, d or h";

/// A span of calendar time. Weeks are folded into `days` (as `7 * weeks`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CalendarDuration {
    pub years: u32,
    pub months: u32,
    /// Days, including seven per week.
    pub days: u32,
    pub hours: u32,
}

impl CalendarDuration {
    /// True if every part is zero.
    pub fn is_zero(&self) -> bool {
        *self == Self::default()
    }
}

/// A duration string that does not parse. Each variant names the whole input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration: expected parts like 7d, 36h or 1y6m (units {UNITS})")]
    Empty,
    #[error("invalid duration {input:?}: unexpected {found:?} at byte {position}")]
    UnexpectedChar {
        input: String,
        found: char,
        position: usize,
    },
    #[error("invalid duration {input:?}: unknown unit {unit:?} (units are {UNITS})")]
    UnknownUnit { input: String, unit: char },
    #[error("invalid duration {input:?}: unit {unit:?} needs a number before it")]
    MissingNumber { input: String, unit: char },
    #[error("invalid duration {input:?}: the number at the end needs a unit ({UNITS})")]
    MissingUnit { input: String },
    #[error("invalid duration {input:?}: unit {unit:?} is given more than once")]
    RepeatedUnit { input: String, unit: char },
    #[error("invalid duration {input:?}: too large")]
    TooLarge { input: String },
    #[error("invalid duration {input:?}: must not be zero")]
    Zero { input: String },
}

/// Parses a duration (see the module docs). A zero total (`0d`) is rejected: as a retention
/// window it would keep nothing, which is never what was meant.
pub fn parse_duration(s: &str) -> Result<CalendarDuration, DurationError> {
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let input = || s.chars().take(64).collect::<String>();
    // y, m, w, d, h in that order.
    let mut parts: [Option<u32>; 5] = [None; 5];
    let mut number: Option<u32> = None;
    for (position, c) in s.char_indices() {
        if let Some(digit) = c.to_digit(10) {
            let n = number
                .unwrap_or(0)
                .checked_mul(10)
                .and_then(|n| n.checked_add(digit))
                .ok_or_else(|| DurationError::TooLarge { input: input() })?;
            number = Some(n);
            continue;
        }
        let slot = match c {
            'y' => 0,
            'm' => 1,
            'w' => 2,
            'd' => 3,
            'h' => 4,
            c if c.is_ascii_alphabetic() => {
                return Err(DurationError::UnknownUnit {
                    input: input(),
                    unit: c,
                });
            }
            found => {
                return Err(DurationError::UnexpectedChar {
                    input: input(),
                    found,
                    position,
                });
            }
        };
        let Some(n) = number.take() else {
            return Err(DurationError::MissingNumber {
                input: input(),
                unit: c,
            });
        };
        if parts[slot].replace(n).is_some() {
            return Err(DurationError::RepeatedUnit {
                input: input(),
                unit: c,
            });
        }
    }
    if number.is_some() {
        return Err(DurationError::MissingUnit { input: input() });
    }
    let [years, months, weeks, days, hours] = parts.map(|p| p.unwrap_or(0));
    let days = weeks
        .checked_mul(7)
        .and_then(|w| w.checked_add(days))
        .ok_or_else(|| DurationError::TooLarge { input: input() })?;
    let duration = CalendarDuration {
        years,
        months,
        days,
        hours,
    };
    if duration.is_zero() {
        return Err(DurationError::Zero { input: input() });
    }
    Ok(duration)
}

/// The instant `now` minus `d`, by the calendar in UTC: first years and months (a day of
/// month that the target month lacks is clamped to its last day, so 2026-03-31 minus 1m is
/// 2026-02-28, and 2024-02-29 minus 1y is 2023-02-28), then days and hours. The time of
/// day is kept. Saturates at `i64::MIN` instead of overflowing.
pub fn subtract(now: i64, d: &CalendarDuration) -> i64 {
    let days = now.div_euclid(SECS_PER_DAY);
    let secs_of_day = now.rem_euclid(SECS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    // Months counted from year 0; the operands are far from overflowing: |days| < 2^47.
    let months_total =
        year * 12 + i64::from(month - 1) - (i64::from(d.years) * 12 + i64::from(d.months));
    let new_year = months_total.div_euclid(12);
    let new_month = months_total.rem_euclid(12) as u32 + 1;
    let new_day = day.min(days_in_month(new_year, new_month));
    let new_days = days_from_civil(new_year, new_month, new_day) - i64::from(d.days);
    new_days
        .checked_mul(SECS_PER_DAY)
        .and_then(|t| t.checked_add(secs_of_day))
        .and_then(|t| t.checked_sub(i64::from(d.hours) * SECS_PER_HOUR))
        .unwrap_or(i64::MIN)
}

impl FromStr for CalendarDuration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, DurationError> {
        parse_duration(s)
    }
}

impl fmt::Display for CalendarDuration {
    /// The canonical form that [`parse_duration`] reads back: `1y2m10d5h` (weeks as days;
    /// `0h` for a zero duration, which does not parse back).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0h");
        }
        for (n, unit) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if n > 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

impl serde::Serialize for CalendarDuration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for CalendarDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
