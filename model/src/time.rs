//! ISO-8601 parsing and formatting for Pinpoint's string-typed dates.
//!
//! Pinpoint's dates are plain strings; AWS emits millisecond UTC
//! (`2019-10-08T18:40:16.581Z`) and clients send whatever their SDK produces.
//! [`parse_iso8601_ms`] accepts (ASCII only):
//!
//! * date: `YYYY-MM-DD` or basic `YYYYMMDD`; a date alone means midnight UTC;
//! * separator: `T`, `t` or a space;
//! * time: `HH:MM`, `HH:MM:SS`, basic `HHMM` / `HHMMSS`; seconds may carry a
//!   fraction of 1..=9 digits after `.` or `,` (truncated to milliseconds);
//!   a leap second `:60` is read as the following second (`23:59:60Z` is the
//!   next day's `00:00:00Z`);
//! * zone: `Z`, `z`, `±HH:MM`, `±HHMM`, `±HH`; no zone means UTC (herald is
//!   lenient here; Pinpoint documents no rule).
//!
//! Years are 0000..=9999. [`format_iso8601_ms`] always produces
//! `YYYY-MM-DDTHH:MM:SS.sssZ`, the form AWS returns, so formatting a parsed
//! value and parsing it again is the identity on milliseconds.

use chrono::{Datelike, NaiveDate, Timelike};

use crate::validate::ValidationError;

/// `0000-01-01T00:00:00.000Z` in Unix milliseconds.
pub const MIN_MS: i64 = -62_167_219_200_000;
/// `9999-12-31T23:59:59.999Z` in Unix milliseconds.
pub const MAX_MS: i64 = 253_402_300_799_999;

/// Milliseconds per minute, hour and day.
pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// Parses an ISO-8601 date or date-time (see the module doc) into Unix
/// milliseconds (UTC).
pub fn parse_iso8601_ms(s: &str) -> Result<i64, ValidationError> {
    parse_inner(s.as_bytes()).ok_or_else(|| {
        ValidationError(format!(
            "{} is not an ISO-8601 date-time such as 2019-10-08T18:40:16.581Z",
            quote_short(s)
        ))
    })
}

/// Formats Unix milliseconds as `YYYY-MM-DDTHH:MM:SS.sssZ`. Values outside
/// years 0000..=9999 are clamped to [`MIN_MS`]..=[`MAX_MS`].
pub fn format_iso8601_ms(ms: i64) -> String {
    let ms = ms.clamp(MIN_MS, MAX_MS);
    // In range by the clamp above, so this cannot fail.
    let dt = chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .naive_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.nanosecond() / 1_000_000
    )
}

/// Parses a quiet-time bound `HH:MM` (24-hour, two digits each) into minutes
/// after midnight, 0..=1439.
pub fn parse_hh_mm(s: &str) -> Result<u16, ValidationError> {
    let b = s.as_bytes();
    let ok = b.len() == 5 && b[2] == b':';
    let hh = if ok { two_digits(b, 0) } else { None };
    let mm = if ok { two_digits(b, 3) } else { None };
    match (hh, mm) {
        (Some(h), Some(m)) if h < 24 && m < 60 => Ok((h * 60 + m) as u16),
        _ => Err(ValidationError(format!(
            "{} is not a 24-hour HH:MM time such as 07:30",
            quote_short(s)
        ))),
    }
}

/// `"text"`, cut to 64 characters so error messages stay short.
pub(crate) fn quote_short(s: &str) -> String {
    const KEEP: usize = 64;
    if s.chars().count() <= KEEP {
        format!("{s:?}")
    } else {
        let cut: String = s.chars().take(KEEP).collect();
        format!("{cut:?}…")
    }
}

fn two_digits(b: &[u8], at: usize) -> Option<u32> {
    let d0 = digit(*b.get(at)?)?;
    let d1 = digit(*b.get(at + 1)?)?;
    Some(d0 * 10 + d1)
}

fn digit(c: u8) -> Option<u32> {
    if c.is_ascii_digit() {
        Some(u32::from(c - b'0'))
    } else {
        None
    }
}

fn parse_inner(b: &[u8]) -> Option<i64> {
    // Date.
    let year = two_digits(b, 0)? * 100 + two_digits(b, 2)?;
    let (month, day, mut i) = if b.get(4) == Some(&b'-') {
        if b.get(7) != Some(&b'-') {
            return None;
        }
        (two_digits(b, 5)?, two_digits(b, 8)?, 10)
    } else {
        (two_digits(b, 4)?, two_digits(b, 6)?, 8)
    };
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)?;
    if i == b.len() {
        return Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis());
    }
    if !matches!(b[i], b'T' | b't' | b' ') {
        return None;
    }
    i += 1;

    // Time: HH[:]MM[[:]SS[(.|,)fraction]].
    let hour = two_digits(b, i)?;
    i += 2;
    let extended = b.get(i) == Some(&b':');
    if extended {
        i += 1;
    }
    let minute = two_digits(b, i)?;
    i += 2;
    let mut second = 0;
    let has_seconds = if extended {
        b.get(i) == Some(&b':')
    } else {
        b.get(i).is_some_and(|c| c.is_ascii_digit())
    };
    if has_seconds {
        if extended {
            i += 1;
        }
        second = two_digits(b, i)?;
        i += 2;
    }
    let mut millis = 0;
    if has_seconds && matches!(b.get(i), Some(b'.' | b',')) {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                millis = millis * 10 + u32::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if !(1..=9).contains(&n) {
            return None;
        }
        for _ in n..3 {
            millis *= 10;
        }
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let leap = second == 60;
    let time_ms = date
        .and_hms_milli_opt(hour, minute, if leap { 59 } else { second }, millis)?
        .and_utc()
        .timestamp_millis()
        + if leap { 1000 } else { 0 };

    // Zone.
    let offset_minutes: i64 = match b.get(i) {
        None => 0,
        Some(b'Z' | b'z') => {
            i += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            i += 1;
            let oh = two_digits(b, i)?;
            i += 2;
            let mut om = 0;
            if b.get(i) == Some(&b':') {
                om = two_digits(b, i + 1)?;
                i += 3;
            } else if b.get(i).is_some_and(|c| c.is_ascii_digit()) {
                om = two_digits(b, i)?;
                i += 2;
            }
            if oh > 23 || om > 59 {
                return None;
            }
            let m = i64::from(oh * 60 + om);
            if sign == b'+' {
                m
            } else {
                -m
            }
        }
        Some(_) => return None,
    };
    if i != b.len() {
        return None;
    }
    let ms = time_ms - offset_minutes * MINUTE_MS;
    (MIN_MS..=MAX_MS).contains(&ms).then_some(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T: i64 = 1_570_560_016_581; // 2019-10-08T18:40:16.581Z

    #[test]
    fn accepts_the_forms_clients_send() {
        let ok = |s: &str| parse_iso8601_ms(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(ok("2019-10-08T18:40:16.581Z"), T);
        assert_eq!(ok("2019-10-08T18:40:16Z"), T - 581);
        assert_eq!(ok("2019-10-08T18:40:16.581000Z"), T); // botocore microseconds
        assert_eq!(ok("2019-10-08T18:40:16.581999999Z"), T); // truncated, not rounded
        assert_eq!(ok("2019-10-08T18:40:16.5Z"), T - 81);
        assert_eq!(ok("2019-10-08T18:40:16,581Z"), T);
        assert_eq!(ok("2019-10-08T20:40:16.581+02:00"), T);
        assert_eq!(ok("2019-10-08T20:40:16.581+0200"), T);
        assert_eq!(ok("2019-10-08T20:40:16.581+02"), T);
        assert_eq!(ok("2019-10-08T13:10:16.581-05:30"), T);
        assert_eq!(ok("2019-10-08t18:40:16.581z"), T);
        assert_eq!(ok("2019-10-08 18:40:16.581Z"), T);
        assert_eq!(ok("2019-10-08T18:40:16.581"), T); // no zone: UTC
        assert_eq!(ok("2019-10-08T18:40Z"), T - 16_581);
        assert_eq!(ok("20191008T184016Z"), T - 581);
        assert_eq!(ok("20191008T184016.581Z"), T);
        assert_eq!(ok("2019-10-08"), 1_570_492_800_000);
        assert_eq!(ok("20191008"), 1_570_492_800_000);
        assert_eq!(ok("1970-01-01T00:00:00Z"), 0);
        assert_eq!(ok("1969-12-31T23:59:59.999Z"), -1);
        assert_eq!(ok("2016-12-31T23:59:60Z"), ok("2017-01-01T00:00:00Z"));
        assert_eq!(ok("0000-01-01T00:00:00Z"), MIN_MS);
        assert_eq!(ok("9999-12-31T23:59:59.999Z"), MAX_MS);
    }

    #[test]
    fn rejects_malformed_input() {
        for s in [
            "",
            "IMMEDIATE",
            "2019",
            "2019-10",
            "2019-1-08",
            "2019-10-8",
            "2019-13-01",
            "2019-02-30",
            "2019-10-08T",
            "2019-10-08T24:00:00Z",
            "2019-10-08T18:60:00Z",
            "2019-10-08T18:40:61Z",
            "2019-10-08T18:40:16.Z",
            "2019-10-08T18:40:16.1234567890Z",
            "2019-10-08T18:40:16ZZ",
            "2019-10-08T18:40:16+24:00",
            "2019-10-08T18:40:16+02:60",
            "2019-10-08T18:40:16 +02:00",
            "2019-10-08X18:40:16Z",
            " 2019-10-08",
            "2019-10-08 ",
            "1570560016581",
            "0000-01-01T00:00:00+00:01",
            "२०१९-10-08",
        ] {
            assert!(parse_iso8601_ms(s).is_err(), "accepted {s:?}");
        }
        let e = parse_iso8601_ms("nope").unwrap_err();
        assert!(e.0.contains("\"nope\""), "{e}");
    }

    #[test]
    fn formats_like_aws() {
        assert_eq!(format_iso8601_ms(T), "2019-10-08T18:40:16.581Z");
        assert_eq!(format_iso8601_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_iso8601_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(format_iso8601_ms(i64::MIN), "0000-01-01T00:00:00.000Z");
        assert_eq!(format_iso8601_ms(i64::MAX), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn hh_mm() {
        assert_eq!(parse_hh_mm("00:00").unwrap(), 0);
        assert_eq!(parse_hh_mm("07:30").unwrap(), 450);
        assert_eq!(parse_hh_mm("23:59").unwrap(), 1439);
        for s in [
            "24:00", "7:30", "07:60", "0730", "07:30:00", "", "ab:cd", "07-30",
        ] {
            assert!(parse_hh_mm(s).is_err(), "accepted {s:?}");
        }
    }

    #[test]
    fn long_input_is_cut_in_messages() {
        let s = "x".repeat(10_000);
        let e = parse_iso8601_ms(&s).unwrap_err();
        assert!(e.0.len() < 200);
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(ms in MIN_MS..=MAX_MS) {
            let s = format_iso8601_ms(ms);
            prop_assert_eq!(s.len(), 24);
            prop_assert_eq!(parse_iso8601_ms(&s).unwrap(), ms);
        }

        #[test]
        fn formatted_strings_sort_like_instants(a in MIN_MS..=MAX_MS, b in MIN_MS..=MAX_MS) {
            prop_assert_eq!(a.cmp(&b), format_iso8601_ms(a).cmp(&format_iso8601_ms(b)));
        }

        #[test]
        fn offsets_shift_the_instant(
            ms in 0i64..4_000_000_000_000,
            off_min in -(23 * 60 + 59)..=(23 * 60 + 59i64),
        ) {
            // Write the same instant in local time at `off_min` and parse it back.
            let local = format_iso8601_ms(ms + off_min * MINUTE_MS);
            let sign = if off_min < 0 { '-' } else { '+' };
            let a = off_min.abs();
            let s = format!("{}{}{:02}:{:02}", &local[..23], sign, a / 60, a % 60);
            prop_assert_eq!(parse_iso8601_ms(&s).unwrap(), ms);
        }

        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = parse_iso8601_ms(&s);
            let _ = parse_hh_mm(&s);
        }

        #[test]
        fn never_panics_on_near_miss(s in "[0-9T:.,+zZ -]{0,32}") {
            if let Ok(ms) = parse_iso8601_ms(&s) {
                prop_assert!((MIN_MS..=MAX_MS).contains(&ms));
            }
        }
    }
}
