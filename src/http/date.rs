//! Dates in HTTP headers, sans-IO: every form RFC 7231 requires a recipient to accept
//! (IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`, RFC 850 `Sunday, 06-Nov-94 08:49:37 GMT`,
//! asctime `Sun Nov  6 08:49:37 1994`) and RFC 2822's date-time, which is what clients
//! that format dates with e-mail libraries send (botocore signs with
//! `Mon, 07 Dec 2026 20:09:21 -0000`): an optional weekday, a one- or two-digit day,
//! optional seconds, numeric zones (`+0100`, `-0000`) and the named ones (`GMT`, `UT`,
//! `UTC`, the US zones, military letters as `-0000`).
//!
//! Two-digit years follow RFC 2822 (00–49 are 20xx, 50–99 are 19xx), three-digit ones add
//! 1900. Names are matched without regard to case; a weekday, when given, is checked to be
//! a weekday name but not against the date. Comments (RFC 2822 CFWS) are not accepted.

use time::{Date, Month, PrimitiveDateTime, Time, UtcOffset};

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Seconds since the Unix epoch of a date in any of the forms above; `None` otherwise.
pub fn parse_http_date(value: &str) -> Option<i64> {
    let cleaned = value.trim().replace(',', " ");
    let mut tokens: Vec<&str> = cleaned.split_ascii_whitespace().collect();
    if tokens.len() > 6 {
        return None;
    }
    if tokens.first().is_some_and(|t| is_weekday(t)) {
        tokens.remove(0);
    }
    match tokens.as_slice() {
        // asctime: `Nov  6 08:49:37 1994`, always GMT.
        [month, day, clock, year] if month_of(month).is_some() => {
            at(year, month, day, clock, Some("GMT"))
        }
        // RFC 850: `06-Nov-94 08:49:37 GMT`.
        [dmy, clock, zone] => {
            let mut parts = dmy.split('-');
            let (day, month, year) = (parts.next()?, parts.next()?, parts.next()?);
            if parts.next().is_some() {
                return None;
            }
            at(year, month, day, clock, Some(zone))
        }
        // IMF-fixdate and RFC 2822: `06 Nov 1994 08:49:37 GMT`.
        [day, month, year, clock, zone] => at(year, month, day, clock, Some(zone)),
        _ => None,
    }
}

fn is_weekday(token: &str) -> bool {
    let t = token.to_ascii_lowercase();
    WEEKDAYS
        .iter()
        .any(|w| t == *w || (t.len() == 3 && w.starts_with(t.as_str())))
}

fn month_of(token: &str) -> Option<Month> {
    let t = token.to_ascii_lowercase();
    let index = MONTHS.iter().position(|m| *m == t)?;
    Month::try_from(index as u8 + 1).ok()
}

fn digits(token: &str, lengths: std::ops::RangeInclusive<usize>) -> Option<u32> {
    if !lengths.contains(&token.len()) || !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    token.parse().ok()
}

fn year_of(token: &str) -> Option<i32> {
    let y = digits(token, 2..=4)? as i32;
    Some(match token.len() {
        2 if y < 50 => 2000 + y,
        2 | 3 => 1900 + y,
        _ => y,
    })
}

/// `hh:mm` or `hh:mm:ss`. A leap second (`:60`) counts as the second before it.
fn time_of(token: &str) -> Option<Time> {
    let mut parts = token.split(':');
    let hour = digits(parts.next()?, 2..=2)?;
    let minute = digits(parts.next()?, 2..=2)?;
    let second = match parts.next() {
        Some(s) => digits(s, 2..=2)?.min(59),
        None => 0,
    };
    if parts.next().is_some() {
        return None;
    }
    Time::from_hms(hour as u8, minute as u8, second as u8).ok()
}

/// The zone's offset east of UTC, in seconds.
fn offset_of(token: &str) -> Option<i32> {
    let hours = match token.to_ascii_uppercase().as_str() {
        "GMT" | "UT" | "UTC" | "Z" => 0,
        "EDT" => -4,
        "EST" | "CDT" => -5,
        "CST" | "MDT" => -6,
        "MST" | "PDT" => -7,
        "PST" => -8,
        // Military zones: RFC 2822 says to read them as -0000 (unknown).
        t if t.len() == 1 && t.as_bytes()[0].is_ascii_alphabetic() && t != "J" => 0,
        _ => {
            let (sign, rest) = match token.as_bytes().first()? {
                b'+' => (1, &token[1..]),
                b'-' => (-1, &token[1..]),
                _ => return None,
            };
            let hhmm = digits(rest, 4..=4)? as i32;
            let (h, m) = (hhmm / 100, hhmm % 100);
            if m > 59 {
                return None;
            }
            return Some(sign * (h * 3600 + m * 60));
        }
    };
    Some(hours * 3600)
}

fn at(year: &str, month: &str, day: &str, clock: &str, zone: Option<&str>) -> Option<i64> {
    let date =
        Date::from_calendar_date(year_of(year)?, month_of(month)?, digits(day, 1..=2)? as u8)
            .ok()?;
    let offset = UtcOffset::from_whole_seconds(offset_of(zone?)?).ok()?;
    let local = PrimitiveDateTime::new(date, time_of(clock)?);
    Some(local.assume_offset(offset).unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1994-11-06T08:49:37Z, the example of RFC 7231.
    const T: i64 = 784_111_777;

    #[test]
    fn rfc_7231_forms() {
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(T));
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), Some(T));
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), Some(T));
        assert_eq!(parse_http_date("  sun, 06 NOV 1994 08:49:37 gmt "), Some(T));
    }

    #[test]
    fn rfc_2822_forms() {
        // What botocore sends when it signs with `Date` (email.utils.formatdate).
        let botocore = parse_http_date("Mon, 07 Dec 2026 20:09:21 -0000").unwrap();
        assert_eq!(botocore, 1_796_674_161);
        for (text, shift) in [
            ("Sun, 06 Nov 1994 08:49:37 +0000", 0),
            ("Sun, 06 Nov 1994 08:49:37 UT", 0),
            ("Sun, 06 Nov 1994 08:49:37 UTC", 0),
            ("06 Nov 1994 08:49:37 GMT", 0),
            ("Sun, 6 Nov 1994 08:49:37 GMT", 0),
            ("Sun, 06 Nov 1994 08:49 GMT", -37),
            ("Sun, 06 Nov 1994 09:49:37 +0100", 0),
            ("Sun, 06 Nov 1994 03:49:37 EST", 0),
            ("Sun, 06 Nov 1994 00:49:37 PST", 0),
            ("Sun, 06 Nov 1994 08:19:37 -0030", 0),
            ("Sun, 06 Nov 94 08:49:37 GMT", 0),
            ("Sun, 06 Nov 094 08:49:37 GMT", 0),
            ("Sun, 06 Nov 1994 08:49:37 Z", 0),
            ("Sun, 06 Nov 1994 08:49:37 A", 0),
            ("Sun,06 Nov 1994 08:49:37 GMT", 0),
        ] {
            assert_eq!(parse_http_date(text), Some(T + shift), "{text}");
        }
        assert_eq!(
            parse_http_date("Sat, 07 Dec 2002 20:09:21 +0000"),
            Some(1_039_291_761)
        );
        assert!(parse_http_date("Tue, 07 Dec 2049 20:09:21 -0000").is_some());
    }

    #[test]
    fn refused() {
        for bad in [
            "",
            "nope",
            "20130524T000000Z",
            "Sun, 06 Nov 1994 08:49:37",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:49:37 GMT",
            "Sun, 06 Nov 1994 08:60:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 +2",
            "Sun, 06 Nov 1994 08:49:37 +0160",
            "Sun, 06 Nov 1994 08:49:37 J",
            "Sun, 06 Nov 1994 08:49:37 XYZ",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 006 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 8:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37:00 GMT",
            "Funday, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94-1 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994 GMT extra",
            "Sun, 06 Nov 1994 08:49:37 GMT (comment)",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad:?}");
        }
    }
}
