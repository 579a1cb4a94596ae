//! One field of a calendar event (year, month, day, hour, minute or second): the values it
//! allows, the smallest allowed value not below a given one, and its normalized text.
//!
//! A field knows nothing about the other fields or about months of different lengths: the
//! search passes the largest value that exists right now (`max`), so the day field never
//! yields 31 in April. It must not grow knowledge of weekdays or time zones.

use std::fmt;

/// The values a field may take and how wide its normalized text is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Bounds {
    pub(super) name: &'static str,
    pub(super) min: u32,
    pub(super) max: u32,
    width: usize,
}

// Jiff's civil dates end at 9999; years before the Unix epoch never come again.
pub(super) const YEAR: Bounds = Bounds::new("year", 1970, 9999, 4);
pub(super) const MONTH: Bounds = Bounds::new("month", 1, 12, 2);
pub(super) const DAY: Bounds = Bounds::new("day", 1, 31, 2);
pub(super) const HOUR: Bounds = Bounds::new("hour", 0, 23, 2);
pub(super) const MINUTE: Bounds = Bounds::new("minute", 0, 59, 2);
pub(super) const SECOND: Bounds = Bounds::new("second", 0, 59, 2);

impl Bounds {
    const fn new(name: &'static str, min: u32, max: u32, width: usize) -> Self {
        Self {
            name,
            min,
            max,
            width,
        }
    }
}

/// `start`, `start + step`, ... up to `end` (inclusive), or up to the field's current
/// maximum when `end` is `None` (the open repetition `start/step`).
///
/// A single value is `start == end` with step 1; a range `a..b` is step 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Item {
    pub(super) start: u32,
    pub(super) end: Option<u32>,
    pub(super) step: u32,
}

impl Item {
    pub(super) fn value(value: u32) -> Self {
        Self {
            start: value,
            end: Some(value),
            step: 1,
        }
    }

    /// The smallest value of this item that is `>= from` and `<= max`.
    fn next_match(self, from: u32, max: u32) -> Option<u32> {
        let end = self.end.map_or(max, |end| end.min(max));
        let value = if from <= self.start {
            self.start
        } else {
            // Round `from` up to the next multiple of `step` above `start`.
            let steps = (from - self.start).div_ceil(self.step);
            self.start.checked_add(steps.checked_mul(self.step)?)?
        };
        (value <= end).then_some(value)
    }

    fn covers(self, bounds: Bounds) -> bool {
        self.start == bounds.min && self.step == 1 && self.end.is_none_or(|end| end == bounds.max)
    }
}

/// The values one field allows: every value (`*`) or a sorted, deduplicated list of items.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Field {
    Any,
    List(Vec<Item>),
}

impl Field {
    /// Builds the normalized field: `*`, `*/1` and `1..31` all become [`Field::Any`], so that
    /// two spellings of one schedule compare equal and print alike.
    pub(super) fn new(mut items: Vec<Item>, bounds: Bounds) -> Self {
        if items.iter().any(|item| item.covers(bounds)) {
            return Self::Any;
        }
        items.sort_unstable();
        items.dedup();
        Self::List(items)
    }

    /// The smallest allowed value that is `>= from` and `<= max`, if any.
    pub(super) fn next_match(&self, from: u32, max: u32) -> Option<u32> {
        match self {
            Self::Any => (from <= max).then_some(from),
            Self::List(items) => items
                .iter()
                .filter_map(|item| item.next_match(from, max))
                .min(),
        }
    }

    /// Writes the normalized text, zero-padded like systemd's normalized form (`01..07/2`).
    pub(super) fn write(&self, f: &mut fmt::Formatter<'_>, bounds: Bounds) -> fmt::Result {
        let Self::List(items) = self else {
            return f.write_str("*");
        };
        let width = bounds.width;
        for (index, item) in items.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            write!(f, "{:0width$}", item.start)?;
            match item.end {
                Some(end) if end != item.start => write!(f, "..{end:0width$}")?,
                _ => {}
            }
            if item.step != 1 || item.end.is_none() {
                write!(f, "/{}", item.step)?;
            }
        }
        Ok(())
    }
}

/// The weekdays an event fires on: bit 0 is Monday, bit 6 Sunday (ISO order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Weekdays(pub(super) u8);

/// Three-letter names in ISO order; the parser also takes the full English names.
pub(super) const WEEKDAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

impl Weekdays {
    pub(super) const ALL: Self = Self(0x7f);

    /// Whether the weekday `index` (0 = Monday) is allowed.
    pub(super) fn contains(self, index: u32) -> bool {
        self.0 & (1 << index) != 0
    }

    /// Writes `Mon..Fri`, `Sat,Sun`, `Mon,Wed,Fri`: runs of three or more days become ranges,
    /// as in systemd's normalized form.
    pub(super) fn write(self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut day = 0;
        while day < 7 {
            if !self.contains(day) {
                day += 1;
                continue;
            }
            let mut last = day;
            while last + 1 < 7 && self.contains(last + 1) {
                last += 1;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            let name = |index: u32| WEEKDAY_NAMES[index as usize];
            match last - day {
                0 => f.write_str(name(day))?,
                1 => write!(f, "{},{}", name(day), name(last))?,
                _ => write!(f, "{}..{}", name(day), name(last))?,
            }
            day = last + 1;
        }
        Ok(())
    }
}
