//! Backup groups, snapshot references, and the snapshot time format.
//!
//! A snapshot directory is named by its backup time in UTC, `YYYY-MM-DDTHH:MM:SSZ`, which
//! sorts in time order as text. The date arithmetic is written out here (days-from-civil and
//! its inverse) rather than pulled from a date crate: the format is fixed and tiny.
//!
//! Pure: paths are built, never touched.

use std::fmt;
use std::path::PathBuf;

use crate::names::{self, BackupType, NameError, Namespace};

/// Latest time that formats with a 4-digit year: 9999-12-31T23:59:59Z.
pub const MAX_TIME: i64 = 253_402_300_799;

const SECS_PER_DAY: i64 = 86_400;
const TIME_FORMAT_LEN: usize = "YYYY-MM-DDTHH:MM:SSZ".len();

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a (valid) civil date.
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub(crate) fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

/// `2026-11-24T08:00:00Z` for an epoch time. Times outside `0..=MAX_TIME` are formatted too,
/// but [`parse_time`] rejects them.
pub fn format_time(epoch: i64) -> String {
    let days = epoch.div_euclid(SECS_PER_DAY);
    let secs = epoch.rem_euclid(SECS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Parses exactly the format of [`format_time`], for times in `0..=MAX_TIME`.
pub fn parse_time(s: &str) -> Result<i64, NameError> {
    let err = |reason| NameError::new("backup time", s, reason);
    let b = s.as_bytes();
    if b.len() != TIME_FORMAT_LEN {
        return Err(err("expected YYYY-MM-DDTHH:MM:SSZ"));
    }
    for (i, &c) in b.iter().enumerate() {
        let ok = match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'Z',
            _ => c.is_ascii_digit(),
        };
        if !ok {
            return Err(err("expected YYYY-MM-DDTHH:MM:SSZ"));
        }
    }
    let num = |range: std::ops::Range<usize>| {
        b[range]
            .iter()
            .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'))
    };
    let (year, month, day) = (i64::from(num(0..4)), num(5..7), num(8..10));
    let (hour, minute, second) = (num(11..13), num(14..16), num(17..19));
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err(err("no such date"));
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(err("no such time of day"));
    }
    let epoch = days_from_civil(year, month, day) * SECS_PER_DAY
        + i64::from(hour * 3600 + minute * 60 + second);
    validate_time(epoch).map_err(|_| err("before 1970"))?;
    Ok(epoch)
}

/// Checks that a backup time is in `0..=MAX_TIME` (so that its directory name parses back).
pub fn validate_time(epoch: i64) -> Result<(), NameError> {
    if (0..=MAX_TIME).contains(&epoch) {
        Ok(())
    } else {
        Err(NameError::new(
            "backup time",
            &epoch.to_string(),
            "must be from 1970 to 9999",
        ))
    }
}

/// The snapshots of one machine or guest: `<ns>/<type>/<id>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackupGroup {
    pub ns: Namespace,
    pub backup_type: BackupType,
    pub backup_id: String,
}

impl BackupGroup {
    /// A group with a validated id.
    pub fn new(ns: Namespace, backup_type: BackupType, backup_id: &str) -> Result<Self, NameError> {
        names::validate_backup_id(backup_id)?;
        Ok(Self {
            ns,
            backup_type,
            backup_id: backup_id.to_owned(),
        })
    }

    /// The group's directory relative to the store: `<ns rel>/<type>/<id>`.
    pub fn rel_path(&self) -> PathBuf {
        let mut path = self.ns.rel_path();
        path.push(self.backup_type.as_str());
        path.push(&self.backup_id);
        path
    }
}

impl fmt::Display for BackupGroup {
    /// `host/web1` (the namespace is not included).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.backup_type, self.backup_id)
    }
}

/// One snapshot: a group and a backup time (seconds since the epoch, UTC).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SnapshotRef {
    pub group: BackupGroup,
    pub time: i64,
}

impl SnapshotRef {
    /// A snapshot with a validated time.
    pub fn new(group: BackupGroup, time: i64) -> Result<Self, NameError> {
        validate_time(time)?;
        Ok(Self { group, time })
    }

    /// The snapshot's directory relative to the store: `<group rel>/<time>`.
    pub fn rel_path(&self) -> PathBuf {
        let mut path = self.group.rel_path();
        path.push(format_time(self.time));
        path
    }
}

impl fmt::Display for SnapshotRef {
    /// `host/web1/2026-11-24T08:00:00Z` (the namespace is not included).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.group, format_time(self.time))
    }
}

/// Parses `host/web1/2026-11-24T08:00:00Z` as a snapshot in namespace `ns`.
pub fn parse_snapshot(ns: Namespace, s: &str) -> Result<SnapshotRef, NameError> {
    let mut parts = s.split('/');
    let (Some(ty), Some(id), Some(time), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(NameError::new("snapshot", s, "expected TYPE/ID/TIME"));
    };
    let group = BackupGroup::new(ns, ty.parse()?, id)?;
    Ok(SnapshotRef {
        group,
        time: parse_time(time)?,
    })
}

/// A finished snapshot as a candidate parent of a new backup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParentCandidate {
    pub time: i64,
    /// Its last verify failed: its chunks may be damaged, so it is never a parent.
    pub verify_failed: bool,
}

/// The parent of a new snapshot taken at `new_time`: the newest candidate not newer than
/// `new_time` whose verify did not fail. Its chunks are what a chunking client may reuse.
pub fn choose_parent(candidates: &[ParentCandidate], new_time: i64) -> Option<i64> {
    candidates
        .iter()
        .filter(|c| c.time <= new_time && !c.verify_failed)
        .map(|c| c.time)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_is_the_newest_good_snapshot_not_newer_than_the_new_one() {
        let c = |time, verify_failed| ParentCandidate {
            time,
            verify_failed,
        };
        let cases: &[(&[ParentCandidate], i64, Option<i64>)] = &[
            (&[], 100, None),
            (&[c(50, false)], 100, Some(50)),
            (&[c(50, false), c(80, false)], 100, Some(80)),
            (&[c(80, false), c(50, false)], 100, Some(80)),
            (&[c(50, false), c(100, false)], 100, Some(100)),
            (&[c(50, false), c(150, false)], 100, Some(50)),
            (&[c(50, false), c(80, true)], 100, Some(50)),
            (&[c(80, true)], 100, None),
            (&[c(150, false)], 100, None),
        ];
        for (candidates, new_time, expected) in cases {
            assert_eq!(
                choose_parent(candidates, *new_time),
                *expected,
                "{candidates:?} at {new_time}"
            );
        }
    }
    use proptest::prelude::*;

    #[test]
    fn known_times() {
        let cases = [
            (0, "1970-01-01T00:00:00Z"),
            (1_764_000_000, "2025-11-24T16:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_795_507_200, "2026-11-24T08:00:00Z"),
            (MAX_TIME, "9999-12-31T23:59:59Z"),
        ];
        for (epoch, text) in cases {
            assert_eq!(format_time(epoch), text);
            assert_eq!(parse_time(text).unwrap(), epoch);
        }
    }

    #[test]
    fn invalid_times_are_rejected() {
        let bad = [
            "",
            "1970-01-01T00:00:00",
            "1970-01-01 00:00:00Z",
            "1970-01-01T00:00:00z",
            "1970-1-01T00:00:00Z",
            "1970-13-01T00:00:00Z",
            "1970-00-01T00:00:00Z",
            "1970-01-00T00:00:00Z",
            "1970-01-32T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "1970-01-01T24:00:00Z",
            "1970-01-01T00:60:00Z",
            "1970-01-01T00:00:60Z",
            "1969-12-31T23:59:59Z",
            "+970-01-01T00:00:00Z",
            "1970-01-01T00:00:00Z ",
            "197٠-01-01T00:00:00Z",
            "../../etc/passwd....",
        ];
        for s in bad {
            assert!(parse_time(s).is_err(), "{s:?}");
        }
        assert!(parse_time("2024-02-29T00:00:00Z").is_ok());
        assert!(validate_time(-1).is_err());
        assert!(validate_time(MAX_TIME + 1).is_err());
    }

    #[test]
    fn paths_and_display() {
        let ns: Namespace = "dev/eu".parse().unwrap();
        let group = BackupGroup::new(ns.clone(), BackupType::Host, "web1").unwrap();
        assert_eq!(group.rel_path(), PathBuf::from("ns/dev/ns/eu/host/web1"));
        let snap = SnapshotRef::new(group, 1_795_507_200).unwrap();
        assert_eq!(
            snap.rel_path(),
            PathBuf::from("ns/dev/ns/eu/host/web1/2026-11-24T08:00:00Z")
        );
        assert_eq!(snap.to_string(), "host/web1/2026-11-24T08:00:00Z");
        assert_eq!(parse_snapshot(ns, &snap.to_string()).unwrap(), snap);
        assert!(BackupGroup::new(Namespace::root(), BackupType::Vm, "../x").is_err());
    }

    #[test]
    fn bad_snapshot_strings() {
        for s in [
            "",
            "host/web1",
            "host/web1/2026-11-24T08:00:00Z/x",
            "lxc/1/2026-11-24T08:00:00Z",
            "host/../2026-11-24T08:00:00Z",
            "host/web1/now",
            "/host/web1/2026-11-24T08:00:00Z",
        ] {
            assert!(parse_snapshot(Namespace::root(), s).is_err(), "{s:?}");
        }
    }

    proptest! {
        #[test]
        fn time_round_trip(epoch in 0..=MAX_TIME) {
            let text = format_time(epoch);
            prop_assert_eq!(text.len(), TIME_FORMAT_LEN);
            prop_assert_eq!(parse_time(&text).unwrap(), epoch);
        }

        #[test]
        fn text_order_is_time_order(a in 0..=MAX_TIME, b in 0..=MAX_TIME) {
            prop_assert_eq!(format_time(a).cmp(&format_time(b)), a.cmp(&b));
        }

        #[test]
        fn format_never_panics(epoch: i64) {
            let _ = format_time(epoch);
        }
    }
}
