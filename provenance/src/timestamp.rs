//! RFC 3339 UTC timestamps in the form SLSA metadata uses
//! (`YYYY-MM-DDTHH:MM:SS[.fraction]Z`), parsed and formatted without a date crate.

use std::time::{SystemTime, UNIX_EPOCH};

use thiserror::Error;

/// Why a string is not an RFC 3339 UTC timestamp ending in `Z`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TimestampError {
    /// The text does not have the `YYYY-MM-DDTHH:MM:SS[.f]Z` shape.
    #[error("not of the form YYYY-MM-DDTHH:MM:SS[.fraction]Z (UTC, uppercase T and Z)")]
    Shape,
    /// A field is out of its range (month 13, February 30, hour 24...).
    #[error("{0} is out of range")]
    Range(&'static str),
}

/// A point in time as seconds since the Unix epoch plus nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    /// Whole seconds since 1970-01-01T00:00:00Z (negative before).
    pub unix_seconds: i64,
    /// Nanoseconds within the second (0..1e9).
    pub nanos: u32,
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.1-9 digits]Z`; offsets other than `Z` are refused.
pub fn parse_rfc3339_utc(text: &str) -> Result<Timestamp, TimestampError> {
    let b = text.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(TimestampError::Shape);
    }
    if *b.last().unwrap() != b'Z' {
        return Err(TimestampError::Shape);
    }
    let num = |range: std::ops::Range<usize>| -> Result<u32, TimestampError> {
        let digits = &b[range];
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(TimestampError::Shape);
        }
        Ok(digits
            .iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0')))
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let nanos = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', frac @ ..] if (1..=9).contains(&frac.len()) => {
            // 1 to 9 digits (the guard above): the exponent is 0 to 8.
            let exponent = 9 - u32::try_from(frac.len()).expect("at most 9 digits");
            num(20..20 + frac.len())? * 10u32.pow(exponent)
        }
        _ => return Err(TimestampError::Shape),
    };
    if year == 0 {
        return Err(TimestampError::Range("year"));
    }
    if !(1..=12).contains(&month) {
        return Err(TimestampError::Range("month"));
    }
    if day == 0 || day > days_in_month(year, month) {
        return Err(TimestampError::Range("day"));
    }
    if hour > 23 {
        return Err(TimestampError::Range("hour"));
    }
    if minute > 59 {
        return Err(TimestampError::Range("minute"));
    }
    // Leap seconds (:60) are refused, as protobuf's Timestamp JSON form does.
    if second > 59 {
        return Err(TimestampError::Range("second"));
    }
    let days = days_from_civil(i64::from(year), month, day);
    let unix_seconds = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    Ok(Timestamp {
        unix_seconds,
        nanos,
    })
}

/// Formats whole seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_rfc3339_utc(unix_seconds: i64) -> String {
    let days = unix_seconds.div_euclid(86_400);
    let secs = unix_seconds.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The current time as `YYYY-MM-DDTHH:MM:SSZ` (for startedOn / finishedOn).
pub fn now_rfc3339_utc() -> String {
    let secs = match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    format_rfc3339_utc(secs)
}

fn is_leap(year: u32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Hinnant's algorithm: day is 1..=31 and month 1..=12 for every input.
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).expect("a day of the month");
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).expect("a month");
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(
            parse_rfc3339_utc("1970-01-01T00:00:00Z").unwrap(),
            Timestamp {
                unix_seconds: 0,
                nanos: 0
            }
        );
        // `date -u -d 2024-02-29T12:34:56Z +%s` = 1709210096
        assert_eq!(
            parse_rfc3339_utc("2024-02-29T12:34:56.5Z").unwrap(),
            Timestamp {
                unix_seconds: 1_709_210_096,
                nanos: 500_000_000
            }
        );
        assert_eq!(format_rfc3339_utc(1_709_210_096), "2024-02-29T12:34:56Z");
        assert_eq!(format_rfc3339_utc(-1), "1969-12-31T23:59:59Z");
        assert_eq!(
            parse_rfc3339_utc("1969-12-31T23:59:59Z")
                .unwrap()
                .unix_seconds,
            -1
        );
    }

    #[test]
    fn format_and_parse_round_trip_across_centuries() {
        for secs in (-2_208_988_800i64..=4_102_444_800).step_by(86_400 * 37 + 3_601) {
            let text = format_rfc3339_utc(secs);
            assert_eq!(
                parse_rfc3339_utc(&text).unwrap().unix_seconds,
                secs,
                "{text}"
            );
        }
        assert!(parse_rfc3339_utc(&now_rfc3339_utc()).is_ok());
    }

    #[test]
    fn refuses_non_utc_and_malformed() {
        for bad in [
            "2024-01-01T00:00:00+00:00",
            "2024-01-01T00:00:00z",
            "2024-01-01t00:00:00Z",
            "2024-01-01 00:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00.1234567890Z",
            "2024-1-01T00:00:00Z",
            "2024-01-01T00:00:0aZ",
            "",
        ] {
            assert_eq!(parse_rfc3339_utc(bad), Err(TimestampError::Shape), "{bad}");
        }
        for (out_of_range, field) in [
            ("2023-02-29T00:00:00Z", "day"),
            ("2024-13-01T00:00:00Z", "month"),
            ("2024-01-01T24:00:00Z", "hour"),
            ("2024-01-01T00:00:60Z", "second"),
        ] {
            assert_eq!(
                parse_rfc3339_utc(out_of_range),
                Err(TimestampError::Range(field)),
                "{out_of_range}"
            );
        }
    }
}
