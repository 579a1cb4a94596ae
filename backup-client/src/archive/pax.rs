//! PAX extended header records (POSIX.1-2001 `"<len> <key>=<value>\n"`): encoding, parsing,
//! and the value syntaxes the archive uses (decimal numbers, times with nanoseconds, escaped
//! xattr keys).
//!
//! Pure: bytes in, bytes out. It must not know which keys an entry needs (that is `header`)
//! and must not do IO. Values are arbitrary bytes (xattr values are binary); only the key may
//! not contain `=` or NUL, which `escape_xattr_name` guarantees for xattr keys.

use thiserror::Error;

/// A malformed PAX record or value; `offset` is relative to the start of the record data.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PaxError {
    #[error("PAX record at byte {offset}: bad length field")]
    BadLength { offset: usize },
    #[error("PAX record at byte {offset}: does not end with a newline")]
    MissingNewline { offset: usize },
    #[error("PAX record at byte {offset}: no '=' between key and value")]
    MissingEquals { offset: usize },
    #[error("PAX value of {key}: not a valid {expected}")]
    BadValue { key: String, expected: &'static str },
}

/// One record: key and value, both raw bytes.
pub(crate) type Record = (Vec<u8>, Vec<u8>);

/// Appends one record `"<len> <key>=<value>\n"` to `out`; `<len>` counts the whole record,
/// its own digits included.
pub(crate) fn encode_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let base = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = base + decimal_digits(base);
    if decimal_digits(len) > decimal_digits(base) {
        len += 1;
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn decimal_digits(mut n: usize) -> usize {
    let mut digits = 1;
    while n >= 10 {
        n /= 10;
        digits += 1;
    }
    digits
}

/// Parses the data of a PAX header into (key, value) pairs in stream order. Trailing NUL
/// bytes (block padding some writers include in the size) are accepted.
pub(crate) fn parse_records(data: &[u8]) -> Result<Vec<Record>, PaxError> {
    let mut records = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        if data[pos..].iter().all(|&b| b == 0) {
            break;
        }
        let rest = &data[pos..];
        let space = rest
            .iter()
            .take(21)
            .position(|&b| b == b' ')
            .ok_or(PaxError::BadLength { offset: pos })?;
        let len = parse_decimal(&rest[..space]).ok_or(PaxError::BadLength { offset: pos })?;
        let len = usize::try_from(len).map_err(|_| PaxError::BadLength { offset: pos })?;
        if len <= space + 1 || len > rest.len() {
            return Err(PaxError::BadLength { offset: pos });
        }
        let record = &rest[space + 1..len];
        let (body, newline) = record.split_at(record.len() - 1);
        if newline != b"\n" {
            return Err(PaxError::MissingNewline { offset: pos });
        }
        let eq = body
            .iter()
            .position(|&b| b == b'=')
            .ok_or(PaxError::MissingEquals { offset: pos })?;
        records.push((body[..eq].to_vec(), body[eq + 1..].to_vec()));
        pos += len;
    }
    Ok(records)
}

/// Strict unsigned decimal: at least one digit, nothing else, no overflow.
pub(crate) fn parse_decimal(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 20 {
        return None;
    }
    text.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// Parses a decimal value of `key`, naming the key in the error.
pub(crate) fn parse_u64(key: &[u8], value: &[u8]) -> Result<u64, PaxError> {
    parse_decimal(value).ok_or_else(|| bad_value(key, "decimal number"))
}

fn bad_value(key: &[u8], expected: &'static str) -> PaxError {
    PaxError::BadValue {
        key: String::from_utf8_lossy(key).into_owned(),
        expected,
    }
}

/// Formats seconds and nanoseconds since the epoch as `"<sec>.<9 digits>"`; times before the
/// epoch are written as the negative decimal they are (`-1.5` for sec -2, nsec 500000000).
pub(crate) fn format_time(sec: i64, nsec: u32) -> String {
    if sec < 0 && nsec > 0 {
        let whole = (sec + 1).unsigned_abs();
        format!("-{whole}.{:09}", 1_000_000_000 - nsec)
    } else {
        format!("{sec}.{nsec:09}")
    }
}

/// Parses a PAX time (`"1700000000"`, `"1700000000.5"`, `"-1.25"`) into seconds and
/// nanoseconds (0..1e9); digits past nanoseconds are truncated.
pub(crate) fn parse_time(key: &[u8], value: &[u8]) -> Result<(i64, u32), PaxError> {
    let err = || bad_value(key, "time");
    let (negative, text) = match value.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    let (whole, frac) = match text.iter().position(|&b| b == b'.') {
        Some(dot) => (&text[..dot], &text[dot + 1..]),
        None => (text, &b""[..]),
    };
    let whole = parse_decimal(whole).ok_or_else(err)?;
    let whole = i64::try_from(whole).map_err(|_| err())?;
    if !frac.iter().all(u8::is_ascii_digit) {
        return Err(err());
    }
    let mut nsec: u32 = 0;
    for i in 0..9 {
        nsec = nsec * 10 + frac.get(i).map_or(0, |&d| u32::from(d - b'0'));
    }
    if !negative {
        return Ok((whole, nsec));
    }
    if nsec == 0 {
        Ok((-whole, 0))
    } else {
        Ok((-whole - 1, 1_000_000_000 - nsec))
    }
}

/// Makes an xattr name safe as the tail of a `SCHILY.xattr.` key, as GNU tar does:
/// `%` becomes `%25` and `=` becomes `%3D`.
pub(crate) fn escape_xattr_name(name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len());
    for &b in name {
        match b {
            b'%' => out.extend_from_slice(b"%25"),
            b'=' => out.extend_from_slice(b"%3D"),
            _ => out.push(b),
        }
    }
    out
}

/// Reverses `escape_xattr_name`; unknown `%` sequences are kept as they are.
pub(crate) fn unescape_xattr_name(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len());
    let mut i = 0;
    while i < key.len() {
        match &key[i..] {
            [b'%', b'2', b'5', ..] => {
                out.push(b'%');
                i += 3;
            }
            [b'%', b'3', b'D' | b'd', ..] => {
                out.push(b'=');
                i += 3;
            }
            _ => {
                out.push(key[i]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(key: &[u8], value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_record(&mut out, key, value);
        out
    }

    #[test]
    fn encodes_known_records() {
        assert_eq!(record(b"path", b"a"), b"9 path=a\n");
        assert_eq!(record(b"mtime", b"1.5"), b"13 mtime=1.5\n");
    }

    #[test]
    fn lengths_crossing_a_digit_boundary_are_self_consistent() {
        // Records of 9, 10, 11, 99, 100, 101, 999, 1000, 1001 bytes and around them.
        for value_len in 0..1100 {
            let value = vec![b'v'; value_len];
            let rec = record(b"k", &value);
            let space = rec.iter().position(|&b| b == b' ').unwrap();
            let declared: usize = std::str::from_utf8(&rec[..space]).unwrap().parse().unwrap();
            assert_eq!(declared, rec.len(), "value length {value_len}");
            assert_eq!(parse_records(&rec).unwrap(), vec![(b"k".to_vec(), value)]);
        }
        // With key "k" no record can be 10 or 100 bytes long: the length's own digit
        // pushes it to 11 or 101.
        assert_eq!(record(b"k", b"1234"), b"9 k=1234\n");
        assert_eq!(record(b"k", b"12345"), b"11 k=12345\n");
        assert_eq!(record(b"k", &[b'x'; 93]).len(), 99);
        assert_eq!(record(b"k", &[b'x'; 94]).len(), 101);
    }

    #[test]
    fn parses_binary_values_and_padding() {
        let mut data = record(b"SCHILY.xattr.user.bin", b"a\n=b\0c");
        data.extend(record(b"path", b"x y"));
        data.extend([0u8; 30]);
        let recs = parse_records(&data).unwrap();
        assert_eq!(recs[0].1, b"a\n=b\0c");
        assert_eq!(recs[1], (b"path".to_vec(), b"x y".to_vec()));
    }

    #[test]
    fn rejects_malformed_records() {
        assert_eq!(
            parse_records(b"x path=a\n"),
            Err(PaxError::BadLength { offset: 0 })
        );
        assert_eq!(
            parse_records(b"90 path=a\n"),
            Err(PaxError::BadLength { offset: 0 })
        );
        assert_eq!(
            parse_records(b"9 path=ab"),
            Err(PaxError::MissingNewline { offset: 0 })
        );
        assert_eq!(
            parse_records(b"9 pathxa\n"),
            Err(PaxError::MissingEquals { offset: 0 })
        );
        assert_eq!(parse_records(b"1 "), Err(PaxError::BadLength { offset: 0 }));
    }

    #[test]
    fn times_round_trip_including_before_the_epoch() {
        assert_eq!(
            format_time(1_700_000_000, 123_456_789),
            "1700000000.123456789"
        );
        assert_eq!(format_time(-2, 500_000_000), "-1.500000000");
        assert_eq!(format_time(-3, 0), "-3.000000000");
        assert_eq!(parse_time(b"t", b"1.5"), Ok((1, 500_000_000)));
        assert_eq!(parse_time(b"t", b"-1.25"), Ok((-2, 750_000_000)));
        assert_eq!(parse_time(b"t", b"7"), Ok((7, 0)));
        assert_eq!(parse_time(b"t", b"1.0000000019"), Ok((1, 1)));
        assert!(parse_time(b"t", b"1.x").is_err());
        assert!(parse_time(b"t", b"").is_err());
        assert!(parse_time(b"t", b"99999999999999999999").is_err());
    }

    #[test]
    fn xattr_names_escape_equals_and_percent() {
        assert_eq!(escape_xattr_name(b"user.a=b%c"), b"user.a%3Db%25c");
        assert_eq!(unescape_xattr_name(b"user.a%3Db%25c"), b"user.a=b%c");
        assert_eq!(unescape_xattr_name(b"user.%41"), b"user.%41");
    }

    proptest! {
        #[test]
        fn records_round_trip(pairs in proptest::collection::vec(
            ("[a-zA-Z.]{1,20}", proptest::collection::vec(any::<u8>(), 0..300)), 0..8)) {
            let mut data = Vec::new();
            for (k, v) in &pairs {
                encode_record(&mut data, k.as_bytes(), v);
            }
            let parsed = parse_records(&data).unwrap();
            let expected: Vec<_> = pairs.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.clone())).collect();
            prop_assert_eq!(parsed, expected);
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_records(&data);
        }

        #[test]
        fn time_round_trips(sec in -10_000_000_000i64..10_000_000_000, nsec in 0u32..1_000_000_000) {
            let text = format_time(sec, nsec);
            prop_assert_eq!(parse_time(b"t", text.as_bytes()), Ok((sec, nsec)));
        }

        #[test]
        fn xattr_name_escape_round_trips(name in proptest::collection::vec(1u8..=255, 0..40)) {
            let escaped = escape_xattr_name(&name);
            prop_assert!(!escaped.contains(&b'='));
            prop_assert_eq!(unescape_xattr_name(&escaped), name);
        }
    }
}
