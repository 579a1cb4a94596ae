//! Login tickets and CSRF tokens: short strings the server signs with HMAC-SHA256 under a
//! key only it knows, so it can check them later without keeping sessions.
//!
//! A ticket is `BKP:<userid>:<issue time, hex>::<signature>` and is valid from 5 minutes
//! before its time (clock skew) until [`TICKET_LIFETIME_SECS`] after it. A CSRF token is
//! `<issue time, hex>:<signature>` over the time and the user id, with the same validity;
//! the two are signed over differently prefixed text, so one can never pass for the other.
//! Signatures are URL-safe base64 without padding, so both fit in cookies and headers
//! unescaped. The signature is checked before anything in the text is believed.
//!
//! Pure given the key and the time, apart from [`load_or_create_key`]. A ticket proves who
//! logged in and when; whether that user is still enabled is the caller's check.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;

use super::AccessError;
use super::ids::Userid;

/// How long a ticket (and a CSRF token) is valid after it was issued.
pub const TICKET_LIFETIME_SECS: i64 = 2 * 3600;
/// How far in the future an issue time may lie (the clocks of two servers differ).
pub const MAX_CLOCK_SKEW_SECS: i64 = 5 * 60;
/// Length of the signing key that [`load_or_create_key`] creates, and the least it accepts.
pub const KEY_LEN: usize = 32;

const TICKET_PREFIX: &str = "BKP:";
const CSRF_PREFIX: &str = "CSRF:";
/// Longer inputs are refused before any work: no valid ticket comes near it.
const MAX_TICKET_LEN: usize = 512;

/// A ticket for `userid`, issued at `now`.
pub fn create_ticket(userid: &Userid, now: i64, key: &[u8]) -> String {
    let data = format!("{TICKET_PREFIX}{userid}:{now:08X}");
    let signature = sign(key, data.as_bytes());
    format!("{data}::{signature}")
}

/// The user a ticket was issued to, if the signature is right and it is valid at `now`.
pub fn verify_ticket(ticket: &str, key: &[u8], now: i64) -> Result<Userid, AccessError> {
    if ticket.len() > MAX_TICKET_LEN {
        return Err(AccessError::BadTicket);
    }
    let (data, signature) = ticket.split_once("::").ok_or(AccessError::BadTicket)?;
    check_signature(key, data.as_bytes(), signature, AccessError::BadTicket)?;
    let (userid, time) = data
        .strip_prefix(TICKET_PREFIX)
        .and_then(|rest| rest.rsplit_once(':'))
        .ok_or(AccessError::BadTicket)?;
    check_age(
        parse_time(time, AccessError::BadTicket)?,
        now,
        AccessError::BadTicket,
    )?;
    userid.parse().map_err(|_| AccessError::BadTicket)
}

/// A CSRF token for `userid`, issued at `now`: sent back in a header with every request
/// that changes something, next to the ticket cookie.
pub fn create_csrf_token(userid: &Userid, now: i64, key: &[u8]) -> String {
    let time = format!("{now:08X}");
    let signature = sign(key, csrf_data(&time, userid).as_bytes());
    format!("{time}:{signature}")
}

/// Checks that `token` was issued to `userid` and is valid at `now`.
pub fn verify_csrf_token(
    token: &str,
    userid: &Userid,
    key: &[u8],
    now: i64,
) -> Result<(), AccessError> {
    if token.len() > MAX_TICKET_LEN {
        return Err(AccessError::BadCsrfToken);
    }
    let (time, signature) = token.split_once(':').ok_or(AccessError::BadCsrfToken)?;
    let data = csrf_data(time, userid);
    check_signature(key, data.as_bytes(), signature, AccessError::BadCsrfToken)?;
    check_age(
        parse_time(time, AccessError::BadCsrfToken)?,
        now,
        AccessError::BadCsrfToken,
    )
}

/// Reads the signing key at `path`, or creates it (32 random bytes, mode 0600) if there is
/// none. Two servers starting at once agree on one key: it is linked into place, never
/// overwritten.
pub fn load_or_create_key(path: &Path) -> anyhow::Result<Vec<u8>> {
    match read_key(path) {
        Ok(key) => return Ok(key),
        Err(err) if is_not_found(&err) => {}
        Err(err) => return Err(err),
    }
    let mut key = vec![0u8; KEY_LEN];
    getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness for a key: {e}"))?;
    let (mut file, temp) = datastore::fs_util::create_temp_for(path)
        .with_context(|| format!("creating a temp file for {}", path.display()))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(&key)?;
    file.sync_all()?;
    drop(file);
    match std::fs::hard_link(temp.path(), path) {
        Ok(()) => {
            datastore::fs_util::fsync_dir(datastore::fs_util::parent_dir(path))?;
            Ok(key)
        }
        // Someone else created it first: theirs is the key.
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => read_key(path),
        Err(err) => Err(err).with_context(|| format!("creating {}", path.display())),
    }
}

fn read_key(path: &Path) -> anyhow::Result<Vec<u8>> {
    let key = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if key.len() < KEY_LEN {
        bail!(
            "{} holds {} bytes, less than a key",
            path.display(),
            key.len()
        );
    }
    Ok(key)
}

fn is_not_found(err: &anyhow::Error) -> bool {
    err.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound)
}

fn csrf_data(time: &str, userid: &Userid) -> String {
    format!("{CSRF_PREFIX}{time}:{userid}")
}

fn mac(key: &[u8], data: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(data);
    mac
}

fn sign(key: &[u8], data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(mac(key, data).finalize().into_bytes())
}

fn check_signature(
    key: &[u8],
    data: &[u8],
    signature: &str,
    err: AccessError,
) -> Result<(), AccessError> {
    let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else {
        return Err(err);
    };
    // `verify_slice` compares in constant time.
    mac(key, data).verify_slice(&signature).map_err(|_| err)
}

/// Parses the upper-case hex time that `create_*` writes, and nothing else.
fn parse_time(hex: &str, err: AccessError) -> Result<i64, AccessError> {
    if hex.is_empty()
        || hex.len() > 16
        || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F'))
    {
        return Err(err);
    }
    u64::from_str_radix(hex, 16)
        .ok()
        .and_then(|t| i64::try_from(t).ok())
        .ok_or(err)
}

fn check_age(issued: i64, now: i64, err: AccessError) -> Result<(), AccessError> {
    let age = now.saturating_sub(issued);
    if age < -MAX_CLOCK_SKEW_SECS {
        return Err(err);
    }
    if age > TICKET_LIFETIME_SECS {
        return Err(AccessError::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: i64 = 1_700_000_000;

    fn alice() -> Userid {
        "alice@local".parse().unwrap()
    }

    #[test]
    fn ticket_round_trip_and_lifetime() {
        let ticket = create_ticket(&alice(), NOW, KEY);
        assert!(ticket.starts_with("BKP:alice@local:6553F100::"), "{ticket}");
        assert_eq!(verify_ticket(&ticket, KEY, NOW).unwrap(), alice());
        let end = NOW + TICKET_LIFETIME_SECS;
        assert_eq!(verify_ticket(&ticket, KEY, end).unwrap(), alice());
        assert!(matches!(
            verify_ticket(&ticket, KEY, end + 1),
            Err(AccessError::Expired)
        ));
        // Issued up to 5 minutes "in the future" is clock skew; more is refused.
        let skew = NOW - MAX_CLOCK_SKEW_SECS;
        assert!(verify_ticket(&ticket, KEY, skew).is_ok());
        assert!(matches!(
            verify_ticket(&ticket, KEY, skew - 1),
            Err(AccessError::BadTicket)
        ));
    }

    #[test]
    fn tampered_tickets_are_refused() {
        let ticket = create_ticket(&alice(), NOW, KEY);
        let (data, signature) = ticket.split_once("::").unwrap();
        let other_sig = create_ticket(&alice(), NOW + 1, KEY);
        let mut flipped = signature.as_bytes().to_vec();
        flipped[3] = if flipped[3] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        for bad in [
            ticket.replace("alice", "admin"),
            ticket.replace("alice@local", "root@local"),
            ticket.replace("6553F100", "6553F200"),
            format!("{data}::{flipped}"),
            format!("{data}::{}", other_sig.split_once("::").unwrap().1),
            format!("{data}::"),
            format!("{data}::{signature}="),
            data.to_string(),
            ticket.replace("BKP:", "XYZ:"),
            String::new(),
            format!("{ticket}{}", "A".repeat(600)),
        ] {
            assert!(
                matches!(verify_ticket(&bad, KEY, NOW), Err(AccessError::BadTicket)),
                "{bad}"
            );
        }
        let other_key = b"another key, also thirty-two byt";
        assert!(verify_ticket(&ticket, other_key, NOW).is_err());
        // A well-signed ticket with a malformed time or user is still refused.
        let sign_data = |d: &str| format!("{d}::{}", sign(KEY, d.as_bytes()));
        for data in [
            "BKP:alice@local:6553f100",
            "BKP:alice@local:+6553F10",
            "BKP:alice:6553F100",
        ] {
            assert!(verify_ticket(&sign_data(data), KEY, NOW).is_err(), "{data}");
        }
    }

    #[test]
    fn csrf_tokens() {
        let token = create_csrf_token(&alice(), NOW, KEY);
        assert!(verify_csrf_token(&token, &alice(), KEY, NOW + 60).is_ok());
        let bob: Userid = "bob@local".parse().unwrap();
        assert!(matches!(
            verify_csrf_token(&token, &bob, KEY, NOW),
            Err(AccessError::BadCsrfToken)
        ));
        assert!(matches!(
            verify_csrf_token(&token, &alice(), KEY, NOW + TICKET_LIFETIME_SECS + 1),
            Err(AccessError::Expired)
        ));
        assert!(verify_csrf_token(&token, &alice(), KEY, NOW - MAX_CLOCK_SKEW_SECS - 1).is_err());
        assert!(
            verify_csrf_token(&token.replace("6553F100", "6553F101"), &alice(), KEY, NOW).is_err()
        );
        assert!(verify_csrf_token("", &alice(), KEY, NOW).is_err());
        // A ticket's signature does not make a CSRF token, nor the other way round.
        let ticket = create_ticket(&alice(), NOW, KEY);
        let forged = format!("6553F100:{}", ticket.split_once("::").unwrap().1);
        assert!(verify_csrf_token(&forged, &alice(), KEY, NOW).is_err());
        let forged = format!(
            "BKP:alice@local:6553F100::{}",
            token.split_once(':').unwrap().1
        );
        assert!(verify_ticket(&forged, KEY, NOW).is_err());
    }

    #[test]
    fn key_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ticket.key");
        let key = load_or_create_key(&path).unwrap();
        assert_eq!(key.len(), KEY_LEN);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_or_create_key(&path).unwrap(), key);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
        std::fs::write(&path, b"short").unwrap();
        assert!(load_or_create_key(&path).is_err());
    }
}
