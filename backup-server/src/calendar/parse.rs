//! Text to [`CalendarEvent`]: `[WEEKDAYS] [[YEAR-]MONTH-DAY] [HOUR:MINUTE[:SECOND]]` or one
//! keyword such as `daily`.
//!
//! Every error names the offending token and its 1-based character position in the input.
//! The parser only builds values: it must not look at the clock or at time zones.

use super::field::{self, Bounds, Field, Item, WEEKDAY_NAMES, Weekdays};
use super::{CalendarError, CalendarEvent};

const FULL_WEEKDAY_NAMES: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Parses a whole calendar event.
pub(super) fn parse(input: &str) -> Result<CalendarEvent, CalendarError> {
    let parser = Parser { input };
    let tokens = tokens(input);
    let Some(&(first_at, first)) = tokens.first() else {
        return Err(CalendarError::Empty);
    };
    if let Some(event) = keyword(first) {
        return match tokens.get(1) {
            None => Ok(event),
            Some(&(at, token)) => Err(parser.unexpected(at, token, "nothing after a keyword")),
        };
    }

    let mut event = CalendarEvent::every_day_at_midnight();
    let mut rest = tokens.iter().copied().peekable();
    let mut expected = "a weekday, a date (YYYY-MM-DD) or a time (HH:MM[:SS])";
    if first.starts_with(|c: char| c.is_ascii_alphabetic()) {
        if tokens.len() == 1 && !first.contains([',', '.']) && weekday(first).is_none() {
            return Err(CalendarError::UnknownWord {
                input: input.to_owned(),
                position: parser.position(first_at),
                token: first.to_owned(),
            });
        }
        event.weekdays = parser.weekdays(first_at, first)?;
        rest.next();
        expected = "a date (YYYY-MM-DD) or a time (HH:MM[:SS])";
    }
    if let Some((at, token)) = rest.next_if(|(_, t)| t.contains('-') && !t.contains(':')) {
        let parts = parser.split(at, token, '-', "a date YYYY-MM-DD or MM-DD")?;
        let (year, month, day) = match parts.as_slice() {
            [month, day] => (None, month, day),
            [year, month, day] => (Some(year), month, day),
            _ => unreachable!("split returns two or three parts"),
        };
        if let Some(&(at, text)) = year {
            event.years = parser.field(at, text, field::YEAR)?;
        }
        event.months = parser.field(month.0, month.1, field::MONTH)?;
        event.days = parser.field(day.0, day.1, field::DAY)?;
        expected = "a time (HH:MM[:SS]) or the end of the event";
    }
    if let Some((at, token)) = rest.next_if(|(_, t)| t.contains(':')) {
        let parts = parser.split(at, token, ':', "a time HH:MM or HH:MM:SS")?;
        event.hours = parser.field(parts[0].0, parts[0].1, field::HOUR)?;
        event.minutes = parser.field(parts[1].0, parts[1].1, field::MINUTE)?;
        event.seconds = match parts.get(2) {
            Some(&(at, text)) => parser.field(at, text, field::SECOND)?,
            None => Field::List(vec![Item::value(0)]),
        };
        expected = "the end of the event";
    }
    match rest.next() {
        None => Ok(event),
        Some((at, token)) => Err(parser.unexpected(at, token, expected)),
    }
}

/// Whitespace-separated tokens with their byte offsets.
fn tokens(input: &str) -> Vec<(usize, &str)> {
    let mut tokens = Vec::new();
    let mut start = None;
    for (at, c) in input.char_indices().chain([(input.len(), ' ')]) {
        match (c.is_whitespace(), start) {
            (true, Some(from)) => {
                tokens.push((from, &input[from..at]));
                start = None;
            }
            (false, None) => start = Some(at),
            _ => {}
        }
    }
    tokens
}

fn keyword(word: &str) -> Option<CalendarEvent> {
    let (months, days, hours, minutes): (&[u32], &[u32], &[u32], &[u32]) =
        match word.to_ascii_lowercase().as_str() {
            "minutely" => (&[], &[], &[], &[]),
            "hourly" => (&[], &[], &[], &[0]),
            "daily" | "weekly" => (&[], &[], &[0], &[0]),
            "monthly" => (&[], &[1], &[0], &[0]),
            "quarterly" => (&[1, 4, 7, 10], &[1], &[0], &[0]),
            "semiannually" => (&[1, 7], &[1], &[0], &[0]),
            "yearly" | "annually" => (&[1], &[1], &[0], &[0]),
            _ => return None,
        };
    let list = |values: &[u32], bounds| match values {
        [] => Field::Any,
        _ => Field::new(values.iter().copied().map(Item::value).collect(), bounds),
    };
    let mut event = CalendarEvent::every_day_at_midnight();
    event.months = list(months, field::MONTH);
    event.days = list(days, field::DAY);
    event.hours = list(hours, field::HOUR);
    event.minutes = list(minutes, field::MINUTE);
    if word.eq_ignore_ascii_case("weekly") {
        event.weekdays = Weekdays(1);
    }
    Some(event)
}

/// Weekday index (0 = Monday) of a three-letter or full English name, any case.
fn weekday(name: &str) -> Option<u32> {
    let lower = name.to_ascii_lowercase();
    let index = WEEKDAY_NAMES
        .iter()
        .zip(FULL_WEEKDAY_NAMES)
        .position(|(short, full)| lower.eq_ignore_ascii_case(short) || lower == full)?;
    u32::try_from(index).ok()
}

/// The input, kept to build errors that quote it.
struct Parser<'a> {
    input: &'a str,
}

impl Parser<'_> {
    /// 1-based character column of a byte offset.
    fn position(&self, at: usize) -> usize {
        self.input[..at].chars().count() + 1
    }

    fn unexpected(&self, at: usize, token: &str, expected: &'static str) -> CalendarError {
        CalendarError::Unexpected {
            input: self.input.to_owned(),
            position: self.position(at),
            token: token.to_owned(),
            expected,
        }
    }

    /// Splits a date or time token into its two or three parts, with their offsets.
    fn split<'t>(
        &self,
        at: usize,
        token: &'t str,
        separator: char,
        expected: &'static str,
    ) -> Result<Vec<(usize, &'t str)>, CalendarError> {
        let mut parts = Vec::new();
        let mut from = 0;
        for piece in token.split(separator) {
            parts.push((at + from, piece));
            from += piece.len() + separator.len_utf8();
        }
        match parts.get(3) {
            Some(&(extra_at, _)) => {
                Err(self.unexpected(extra_at - 1, &token[extra_at - 1 - at..], expected))
            }
            None => Ok(parts),
        }
    }

    /// `mon`, `sat,sun`, `mon..fri`, `Monday,wed..fri`.
    fn weekdays(&self, at: usize, token: &str) -> Result<Weekdays, CalendarError> {
        let mut bits = 0u8;
        let mut offset = at;
        for element in token.split(',') {
            let (first, last) = element.split_once("..").unwrap_or((element, element));
            let name = |text: &str, text_at: usize| {
                weekday(text).ok_or_else(|| CalendarError::UnknownWeekday {
                    input: self.input.to_owned(),
                    position: self.position(text_at),
                    token: text.to_owned(),
                })
            };
            let start = name(first, offset)?;
            let end = name(last, offset + element.len() - last.len())?;
            if start > end {
                return Err(self.backward(offset, element));
            }
            for day in start..=end {
                bits |= 1 << day;
            }
            offset += element.len() + 1;
        }
        Ok(Weekdays(bits))
    }

    fn backward(&self, at: usize, token: &str) -> CalendarError {
        CalendarError::BackwardRange {
            input: self.input.to_owned(),
            position: self.position(at),
            token: token.to_owned(),
        }
    }

    /// A comma-separated list of `*`, `N`, `A..B`, each optionally followed by `/STEP`.
    fn field(&self, at: usize, text: &str, bounds: Bounds) -> Result<Field, CalendarError> {
        let mut items = Vec::new();
        let mut offset = at;
        for element in text.split(',') {
            items.push(self.item(offset, element, bounds)?);
            offset += element.len() + 1;
        }
        Ok(Field::new(items, bounds))
    }

    fn item(&self, at: usize, element: &str, bounds: Bounds) -> Result<Item, CalendarError> {
        let (head, step) = match element.split_once('/') {
            Some((head, step)) => {
                let step_at = at + head.len() + 1;
                match self.number(step_at, step)? {
                    0 => {
                        return Err(CalendarError::ZeroStep {
                            input: self.input.to_owned(),
                            position: self.position(at),
                            token: element.to_owned(),
                        });
                    }
                    step => (head, Some(step)),
                }
            }
            None => (element, None),
        };
        let (start, end) = if head == "*" {
            (bounds.min, None)
        } else if let Some((first, last)) = head.split_once("..") {
            let start = self.value(at, first, bounds)?;
            let end = self.value(at + first.len() + 2, last, bounds)?;
            if start > end {
                return Err(self.backward(at, head));
            }
            (start, Some(end))
        } else {
            let start = self.value(at, head, bounds)?;
            (start, step.is_none().then_some(start))
        };
        // A range of one value repeats nothing: keep it a plain value so it prints as one.
        let step = if end == Some(start) {
            1
        } else {
            step.unwrap_or(1)
        };
        Ok(Item { start, end, step })
    }

    fn value(&self, at: usize, text: &str, bounds: Bounds) -> Result<u32, CalendarError> {
        let value = self.number(at, text)?;
        if !(bounds.min..=bounds.max).contains(&value) {
            return Err(CalendarError::OutOfRange {
                input: self.input.to_owned(),
                position: self.position(at),
                field: bounds.name,
                value,
                min: bounds.min,
                max: bounds.max,
            });
        }
        Ok(value)
    }

    fn number(&self, at: usize, text: &str) -> Result<u32, CalendarError> {
        let digits =
            text.len() <= 9 && !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
        match digits.then(|| text.parse().ok()).flatten() {
            Some(value) => Ok(value),
            None => Err(self.unexpected(at, text, "a number, `*`, a range `A..B` or `START/STEP`")),
        }
    }
}
