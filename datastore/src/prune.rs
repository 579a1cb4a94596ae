//! Which snapshots of a group a prune keeps, and why: the retention policy as a pure
//! function from (snapshot times, protection, rules, now) to one decision per snapshot.
//!
//! The rules, applied in this order (a snapshot's reason is the first rule that keeps it):
//!
//! - `keep-last N`: the N newest snapshots.
//! - `keep-{hourly,daily,weekly,monthly,yearly} N`: walking newest first, the newest
//!   snapshot of each hour / day / ISO 8601 week / month / year is kept, for up to N such
//!   periods. Periods without a snapshot cost nothing. A period that already holds a
//!   snapshot kept by an earlier rule is covered: that snapshot serves it, and it does not
//!   use one of the N (so `keep-last 3 keep-daily 2` on three snapshots today keeps today's
//!   three and the newest of yesterday and of the day before).
//! - `keep-within D`: every snapshot with `now - D <= time <= now` (calendar arithmetic, see
//!   [`crate::duration::subtract`]).
//! - `keep-within-{hourly,...,yearly} D`: like the count rules with no limit, among the
//!   snapshots with `now - D <= time <= now`.
//!
//! Protected snapshots are always kept (reason [`KeepReason::Protected`]) and are invisible
//! to the rules: they neither use up a count nor cover a period. A snapshot newer than `now`
//! (clock skew) is never "within" a window; only the count rules can keep it. With no rule
//! at all (counts unset or 0, durations unset or zero) everything is kept
//! ([`KeepReason::NoRules`]), so an empty policy can never delete a group.
//!
//! Periods are computed in UTC. One difference from PBS: a rule here only ever keeps; the
//! older snapshots of a period it took stay available to the later rules (PBS marks them
//! for removal at once, so e.g. `keep-monthly` after `keep-weekly` can miss the newest
//! snapshot of a month whose last week straddles the month end).
//!
//! Pure: no IO and no clock. What this module must not do: look at anything but the
//! candidates it is given (listing, locking and removal belong to the caller, which shows
//! this plan for a dry run and executes it otherwise).

use std::collections::HashSet;
use std::fmt;
use std::ops::RangeInclusive;

use serde::Serialize;

use crate::duration::{self, CalendarDuration};
use crate::snapshot::{civil_from_days, days_from_civil};

const SECS_PER_HOUR: i64 = 3_600;
const SECS_PER_DAY: i64 = 86_400;

/// A retention policy. A count of 0 or a zero duration is the same as an unset rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeepRules {
    pub last: Option<u64>,
    pub hourly: Option<u64>,
    pub daily: Option<u64>,
    pub weekly: Option<u64>,
    pub monthly: Option<u64>,
    pub yearly: Option<u64>,
    pub within: Option<CalendarDuration>,
    pub within_hourly: Option<CalendarDuration>,
    pub within_daily: Option<CalendarDuration>,
    pub within_weekly: Option<CalendarDuration>,
    pub within_monthly: Option<CalendarDuration>,
    pub within_yearly: Option<CalendarDuration>,
}

impl KeepRules {
    /// True if no rule is set (or every one is 0 / zero): then [`plan`] keeps everything.
    pub fn is_empty(&self) -> bool {
        let counts = [
            self.last,
            self.hourly,
            self.daily,
            self.weekly,
            self.monthly,
            self.yearly,
        ];
        let windows = [
            self.within,
            self.within_hourly,
            self.within_daily,
            self.within_weekly,
            self.within_monthly,
            self.within_yearly,
        ];
        counts.iter().all(|c| c.unwrap_or(0) == 0)
            && windows.iter().all(|w| w.is_none_or(|w| w.is_zero()))
    }
}

/// Why a snapshot is kept. `Display` and `Serialize` give the option name
/// (`keep-daily`, `keep-within-daily`), `protected` or `no-rules`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum KeepReason {
    #[serde(rename = "protected")]
    Protected,
    /// No rule is set: everything is kept.
    #[serde(rename = "no-rules")]
    NoRules,
    #[serde(rename = "keep-last")]
    Last,
    #[serde(rename = "keep-hourly")]
    Hourly,
    #[serde(rename = "keep-daily")]
    Daily,
    #[serde(rename = "keep-weekly")]
    Weekly,
    #[serde(rename = "keep-monthly")]
    Monthly,
    #[serde(rename = "keep-yearly")]
    Yearly,
    #[serde(rename = "keep-within")]
    Within,
    #[serde(rename = "keep-within-hourly")]
    WithinHourly,
    #[serde(rename = "keep-within-daily")]
    WithinDaily,
    #[serde(rename = "keep-within-weekly")]
    WithinWeekly,
    #[serde(rename = "keep-within-monthly")]
    WithinMonthly,
    #[serde(rename = "keep-within-yearly")]
    WithinYearly,
}

impl KeepReason {
    /// The name shown to users, as in `Display`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Protected => "protected",
            Self::NoRules => "no-rules",
            Self::Last => "keep-last",
            Self::Hourly => "keep-hourly",
            Self::Daily => "keep-daily",
            Self::Weekly => "keep-weekly",
            Self::Monthly => "keep-monthly",
            Self::Yearly => "keep-yearly",
            Self::Within => "keep-within",
            Self::WithinHourly => "keep-within-hourly",
            Self::WithinDaily => "keep-within-daily",
            Self::WithinWeekly => "keep-within-weekly",
            Self::WithinMonthly => "keep-within-monthly",
            Self::WithinYearly => "keep-within-yearly",
        }
    }
}

impl fmt::Display for KeepReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One snapshot of the group being pruned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneCandidate {
    /// Backup time, seconds since the epoch.
    pub time: i64,
    /// Marked protected: never removed.
    pub protected: bool,
}

/// The calendar period that a count rule groups snapshots by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Period {
    Hour,
    Day,
    /// ISO 8601 week: Monday to Sunday, numbered within the ISO week-year.
    Week,
    Month,
    Year,
}

/// A number that is equal for two times iff they fall in the same `period` (UTC).
fn period_key(period: Period, time: i64) -> i64 {
    let days = time.div_euclid(SECS_PER_DAY);
    match period {
        Period::Hour => time.div_euclid(SECS_PER_HOUR),
        Period::Day => days,
        Period::Week => {
            let (year, week) = iso_week(days);
            year * 100 + i64::from(week)
        }
        Period::Month => {
            let (year, month, _) = civil_from_days(days);
            year * 12 + i64::from(month)
        }
        Period::Year => civil_from_days(days).0,
    }
}

/// (ISO week-year, week 1..=53) of a day count since 1970-01-01. The week belongs to the
/// year that holds its Thursday.
fn iso_week(days: i64) -> (i64, u32) {
    // 1970-01-01 was a Thursday; weekday 0 is Monday.
    let weekday = (days + 3).rem_euclid(7);
    let thursday = days - weekday + 3;
    let year = civil_from_days(thursday).0;
    let week = (thursday - days_from_civil(year, 1, 1)) / 7 + 1;
    (year, week as u32)
}

/// Decides, for each candidate (in input order, which need not be sorted), whether it is
/// kept (`Some(reason)`) or removed (`None`). See the module docs for the rules.
pub fn plan(candidates: &[PruneCandidate], rules: &KeepRules, now: i64) -> Vec<Option<KeepReason>> {
    let mut marks: Vec<Option<KeepReason>> = candidates
        .iter()
        .map(|c| c.protected.then_some(KeepReason::Protected))
        .collect();
    if rules.is_empty() {
        return marks
            .into_iter()
            .map(|m| m.or(Some(KeepReason::NoRules)))
            .collect();
    }
    // Newest first; equal times in input order, so the result is deterministic.
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(candidates[i].time), i));
    let mut pass = Pass {
        candidates,
        order: &order,
        marks: &mut marks,
    };

    if let Some(n) = rules.last.filter(|&n| n > 0) {
        pass.keep_newest(n, KeepReason::Last);
    }
    let counts = [
        (rules.hourly, Period::Hour, KeepReason::Hourly),
        (rules.daily, Period::Day, KeepReason::Daily),
        (rules.weekly, Period::Week, KeepReason::Weekly),
        (rules.monthly, Period::Month, KeepReason::Monthly),
        (rules.yearly, Period::Year, KeepReason::Yearly),
    ];
    for (count, period, reason) in counts {
        if let Some(n) = count.filter(|&n| n > 0) {
            pass.keep_per_period(period, Some(n), None, reason);
        }
    }
    let window = |d: Option<CalendarDuration>| {
        d.filter(|d| !d.is_zero())
            .map(|d| duration::subtract(now, &d)..=now)
    };
    if let Some(within) = window(rules.within) {
        pass.keep_all_in(&within, KeepReason::Within);
    }
    let windows = [
        (rules.within_hourly, Period::Hour, KeepReason::WithinHourly),
        (rules.within_daily, Period::Day, KeepReason::WithinDaily),
        (rules.within_weekly, Period::Week, KeepReason::WithinWeekly),
        (
            rules.within_monthly,
            Period::Month,
            KeepReason::WithinMonthly,
        ),
        (rules.within_yearly, Period::Year, KeepReason::WithinYearly),
    ];
    for (d, period, reason) in windows {
        if let Some(within) = window(d) {
            pass.keep_per_period(period, None, Some(&within), reason);
        }
    }
    marks
}

/// The state of one [`plan`]: candidates newest first, and the marks so far.
struct Pass<'a> {
    candidates: &'a [PruneCandidate],
    order: &'a [usize],
    marks: &'a mut [Option<KeepReason>],
}

impl Pass<'_> {
    /// Indexes of the unmarked candidates, newest first.
    fn unmarked(&self) -> Vec<usize> {
        self.order
            .iter()
            .copied()
            .filter(|&i| self.marks[i].is_none())
            .collect()
    }

    fn keep_newest(&mut self, n: u64, reason: KeepReason) {
        for i in self
            .unmarked()
            .into_iter()
            .take(usize::try_from(n).unwrap_or(usize::MAX))
        {
            self.marks[i] = Some(reason);
        }
    }

    fn keep_all_in(&mut self, window: &RangeInclusive<i64>, reason: KeepReason) {
        for i in self.unmarked() {
            if window.contains(&self.candidates[i].time) {
                self.marks[i] = Some(reason);
            }
        }
    }

    /// Keeps the newest unmarked snapshot of each period not yet covered by a kept one, up
    /// to `limit` periods, considering only snapshots inside `window` if one is given.
    fn keep_per_period(
        &mut self,
        period: Period,
        limit: Option<u64>,
        window: Option<&RangeInclusive<i64>>,
        reason: KeepReason,
    ) {
        let candidates = self.candidates;
        let key = |i: usize| period_key(period, candidates[i].time);
        let mut covered: HashSet<i64> = self
            .order
            .iter()
            .filter(|&&i| !matches!(self.marks[i], None | Some(KeepReason::Protected)))
            .map(|&i| key(i))
            .collect();
        let mut taken = 0u64;
        for i in self.unmarked() {
            if limit.is_some_and(|limit| taken >= limit) {
                break;
            }
            if window.is_some_and(|w| !w.contains(&candidates[i].time)) {
                continue;
            }
            if covered.insert(key(i)) {
                self.marks[i] = Some(reason);
                taken += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests;
