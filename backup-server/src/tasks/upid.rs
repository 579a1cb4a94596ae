//! Task ids (UPIDs): `UPID:localhost:{pid:08X}:{start_time:08X}:{seq:08X}:{type}:{store|-}:`.
//!
//! Pure code: formatting, parsing and validation, no IO. A UPID becomes a file name in the task
//! directory, so only ids that [`parse_upid`] accepts may ever reach a path: its type and store
//! are plain `[A-Za-z0-9_.-]+` names, its numbers canonical upper-case hex. Free text (worker
//! ids, auth ids) never goes into a UPID.

use std::fmt;

/// The node name in every UPID: this server only knows itself.
pub const NODE: &str = "localhost";
/// Stands for "no datastore" in the store field.
const NO_STORE: &str = "-";
/// Longest task type or store name in a UPID.
const MAX_NAME_LEN: usize = 64;

/// A task id that was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpidError {
    #[error("invalid task id {upid:?}: {reason}")]
    Malformed { upid: String, reason: &'static str },
    #[error(
        "invalid task {what} {value:?}: expected 1-{MAX_NAME_LEN} characters of A-Z a-z 0-9 _ . -"
    )]
    BadName { what: &'static str, value: String },
}

/// The parts of a UPID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upid {
    pub pid: u32,
    /// Epoch seconds; never negative.
    pub start_time: i64,
    /// Process-wide sequence number: tasks started in the same second differ in it.
    pub seq: u32,
    pub task_type: String,
    pub store: Option<String>,
}

impl Upid {
    /// A UPID from its parts, after checking that the names are safe.
    pub fn new(
        pid: u32,
        start_time: i64,
        seq: u32,
        task_type: &str,
        store: Option<&str>,
    ) -> Result<Self, UpidError> {
        validate_name("type", task_type)?;
        if let Some(store) = store {
            validate_name("store", store)?;
        }
        if start_time < 0 {
            return Err(UpidError::Malformed {
                upid: String::new(),
                reason: "negative start time",
            });
        }
        Ok(Self {
            pid,
            start_time,
            seq,
            task_type: task_type.to_string(),
            store: store.map(str::to_string),
        })
    }
}

impl fmt::Display for Upid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "UPID:{NODE}:{:08X}:{:08X}:{:08X}:{}:{}:",
            self.pid,
            self.start_time,
            self.seq,
            self.task_type,
            self.store.as_deref().unwrap_or(NO_STORE)
        )
    }
}

/// Checks a task type or store name: `[A-Za-z0-9_.-]{1,64}`, and a store is never `-`.
pub fn validate_name(what: &'static str, value: &str) -> Result<(), UpidError> {
    let safe = !value.is_empty()
        && value.len() <= MAX_NAME_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && !(what == "store" && value == NO_STORE);
    if safe {
        Ok(())
    } else {
        Err(UpidError::BadName {
            what,
            value: value.to_string(),
        })
    }
}

/// Parses a UPID; accepts only the canonical form that [`Upid`]'s `Display` writes.
pub fn parse_upid(s: &str) -> Result<Upid, UpidError> {
    let malformed = |reason| UpidError::Malformed {
        upid: s.to_string(),
        reason,
    };
    let fields: Vec<&str> = s.split(':').collect();
    let ["UPID", node, pid, start_time, seq, task_type, store, ""] = fields.as_slice() else {
        return Err(malformed("expected UPID:node:pid:start:seq:type:store:"));
    };
    if *node != NODE {
        return Err(malformed("unknown node"));
    }
    let pid = parse_hex(pid).ok_or_else(|| malformed("bad pid"))?;
    let start_time = parse_hex(start_time).ok_or_else(|| malformed("bad start time"))?;
    let seq = parse_hex(seq).ok_or_else(|| malformed("bad sequence number"))?;
    let pid = u32::try_from(pid).map_err(|_| malformed("bad pid"))?;
    let seq = u32::try_from(seq).map_err(|_| malformed("bad sequence number"))?;
    let start_time = i64::try_from(start_time).map_err(|_| malformed("bad start time"))?;
    let store = (*store != NO_STORE).then_some(*store);
    let upid = Upid::new(pid, start_time, seq, task_type, store)?;
    // Leading zeros beyond eight digits would give a second name for the same task.
    if upid.to_string() != s {
        return Err(malformed("not in canonical form"));
    }
    Ok(upid)
}

/// Checks that `s` is a well-formed UPID.
pub fn validate_upid(s: &str) -> Result<(), UpidError> {
    parse_upid(s).map(|_| ())
}

/// At least 8, at most 16 upper-case hex digits.
fn parse_hex(s: &str) -> Option<u64> {
    let digits_ok = (8..=16).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b));
    digits_ok.then(|| u64::from_str_radix(s, 16).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_pbs_style() {
        let upid = Upid::new(0x1234, 0x6500_0000, 7, "gc", Some("store1")).unwrap();
        assert_eq!(
            upid.to_string(),
            "UPID:localhost:00001234:65000000:00000007:gc:store1:"
        );
        let no_store = Upid::new(1, 2, 3, "reader", None).unwrap();
        assert_eq!(
            no_store.to_string(),
            "UPID:localhost:00000001:00000002:00000003:reader:-:"
        );
    }

    #[test]
    fn round_trips() {
        for upid in [
            Upid::new(u32::MAX, 1_700_000_000, 0, "backup", Some("a.b_c-d")).unwrap(),
            Upid::new(42, 0, u32::MAX, "verify", None).unwrap(),
            // Beyond 2106 the start time needs more than eight digits.
            Upid::new(42, 0x1_0000_0000, 1, "prune", Some("s")).unwrap(),
        ] {
            assert_eq!(parse_upid(&upid.to_string()).unwrap(), upid);
        }
    }

    #[test]
    fn rejects_bad_ids() {
        for bad in [
            "",
            "../x",
            "UPID:localhost:00000001:00000002:00000003:gc:store:extra:",
            "UPID:localhost:00000001:00000002:00000003:gc:store",
            "UPID:otherhost:00000001:00000002:00000003:gc:store:",
            "UPID:localhost:0000001:00000002:00000003:gc:store:",
            "UPID:localhost:0000000g:00000002:00000003:gc:store:",
            "UPID:localhost:0000000a:00000002:00000003:gc:store:",
            "UPID:localhost:000000001:00000002:00000003:gc:store:",
            "UPID:localhost:00000001:00000002:00000003:../gc:store:",
            "UPID:localhost:00000001:00000002:00000003:gc:../../etc:",
            "UPID:localhost:00000001:00000002:00000003:gc:a/b:",
            "UPID:localhost:00000001:00000002:00000003::store:",
            "UPID:localhost:00000001:00000002:00000003:gc::",
            "UPID:localhost:00000001:00000002:00000003:g c:store:",
            "UPID:localhost:00000001:00000002:00000003:gc:st\0re:",
            "UPID:localhost:00000001:FFFFFFFFFFFFFFFF:00000003:gc:store:",
            "upid:localhost:00000001:00000002:00000003:gc:store:",
        ] {
            assert!(parse_upid(bad).is_err(), "accepted {bad:?}");
            assert!(validate_upid(bad).is_err());
        }
    }

    #[test]
    fn rejects_unsafe_names() {
        assert!(Upid::new(1, 1, 1, "gc/x", None).is_err());
        assert!(Upid::new(1, 1, 1, "gc", Some("-")).is_err());
        assert!(Upid::new(1, 1, 1, "gc", Some("")).is_err());
        assert!(Upid::new(1, 1, 1, &"x".repeat(65), None).is_err());
        assert!(Upid::new(1, 1, 1, "host/web1", None).is_err());
        assert!(Upid::new(1, -1, 1, "gc", None).is_err());
        assert!(Upid::new(1, 1, 1, &"x".repeat(64), Some("..")).is_ok());
    }
}
