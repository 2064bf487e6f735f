//! Go-style duration strings (`"1h30m"`, `"500ms"`, `"-1.5s"`): parsing into signed nanoseconds
//! or `std::time::Duration`, and formatting back the way Go's `time.Duration.String` does.
//!
//! Accepted grammar (Go's `time.ParseDuration`): an optional sign, then one or more
//! `<number><unit>` pairs where the number may have a fraction (`1.5h`, `.5s`, `3.s`) and the
//! unit is one of `ns`, `us`, `µs`/`μs`, `ms`, `s`, `m`, `h`. The lone string `"0"` needs no unit.
//! Values are limited to what fits an `i64` of nanoseconds (about ±292 years).

use std::fmt;
use std::time::Duration;

/// Nanoseconds in one of each unit, longest unit names first so `ms` wins over `m`.
const UNITS: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000), // U+00B5 MICRO SIGN
    ("μs", 1_000), // U+03BC GREEK SMALL LETTER MU
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60 * 1_000_000_000),
    ("h", 3_600 * 1_000_000_000),
];

const EXAMPLES: &str = "expected a Go duration such as \"30s\", \"5m\", \"1h30m\"";

/// Why a duration string was rejected. Every variant is a user error; none is retryable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseDurationError {
    /// The text does not follow the grammar (spaces, words, missing digits, ...).
    #[error("invalid duration \"{input}\" ({EXAMPLES})")]
    Invalid { input: String },
    /// A number without a unit, such as `"5"` (only `"0"` may omit it).
    #[error("invalid duration \"{input}\" (missing a unit; {EXAMPLES})")]
    MissingUnit { input: String },
    /// A unit Go does not know, such as `"5d"`.
    #[error("invalid duration \"{input}\" (unknown unit \"{unit}\"; valid units are ns, us, µs, ms, s, m, h)")]
    UnknownUnit { input: String, unit: String },
    /// The value does not fit in an `i64` of nanoseconds.
    #[error("duration \"{input}\" is out of range (at most about 2562047h)")]
    OutOfRange { input: String },
    /// A negative value where only non-negative durations make sense.
    #[error("duration \"{input}\" is negative (expected zero or more)")]
    Negative { input: String },
}

/// Parses a Go duration string into signed nanoseconds.
pub fn parse_nanos(input: &str) -> Result<i64, ParseDurationError> {
    let invalid = || ParseDurationError::Invalid { input: input.to_owned() };
    let (negative, mut rest) = match input.as_bytes().first() {
        Some(b'-') => (true, &input[1..]),
        Some(b'+') => (false, &input[1..]),
        _ => (false, input),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let (whole, fraction, after_number) = split_number(rest).ok_or_else(invalid)?;
        let unit_len = after_number
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(after_number.len(), |(i, _)| i);
        let unit = &after_number[..unit_len];
        if unit.is_empty() {
            return Err(ParseDurationError::MissingUnit { input: input.to_owned() });
        }
        let scale = UNITS.iter().find(|(name, _)| *name == unit).map(|(_, scale)| *scale).ok_or_else(|| {
            if unit.chars().all(char::is_alphabetic) {
                ParseDurationError::UnknownUnit { input: input.to_owned(), unit: unit.to_owned() }
            } else {
                invalid()
            }
        })?;
        total = total
            .checked_add(component_nanos(whole, fraction, scale).ok_or_else(invalid)?)
            .ok_or_else(|| ParseDurationError::OutOfRange { input: input.to_owned() })?;
        rest = &after_number[unit_len..];
    }
    let limit = if negative { 1u128 << 63 } else { (1u128 << 63) - 1 };
    if total > limit {
        return Err(ParseDurationError::OutOfRange { input: input.to_owned() });
    }
    // Both branches fit: `total` is at most 2^63 (negative) or 2^63 - 1 (positive).
    let magnitude = total as i128;
    Ok((if negative { -magnitude } else { magnitude }) as i64)
}

/// Parses a Go duration string that must not be negative.
pub fn parse(input: &str) -> Result<Duration, ParseDurationError> {
    let nanos = parse_nanos(input)?;
    u64::try_from(nanos).map(Duration::from_nanos).map_err(|_| ParseDurationError::Negative { input: input.to_owned() })
}

/// Splits the leading `digits[.digits]` off `text`; at least one side of the dot needs digits.
fn split_number(text: &str) -> Option<(&str, &str, &str)> {
    let whole_len = text.bytes().take_while(u8::is_ascii_digit).count();
    let whole = &text[..whole_len];
    let after_whole = &text[whole_len..];
    let (fraction, rest) = match after_whole.strip_prefix('.') {
        Some(after_dot) => {
            let len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            (&after_dot[..len], &after_dot[len..])
        }
        None => ("", after_whole),
    };
    (!whole.is_empty() || !fraction.is_empty()).then_some((whole, fraction, rest))
}

/// `whole.fraction` units in nanoseconds, truncated like Go; `None` when absurdly large.
fn component_nanos(whole: &str, fraction: &str, scale: u128) -> Option<u128> {
    let mut nanos: u128 = 0;
    for digit in whole.bytes() {
        nanos = nanos.checked_mul(10)?.checked_add(u128::from(digit - b'0'))?;
        if nanos > u128::from(u64::MAX) {
            return None;
        }
    }
    let mut nanos = nanos.checked_mul(scale)?;
    // Digits beyond the 18th cannot change a result measured in whole nanoseconds of an hour.
    let mut numerator: u128 = 0;
    let mut denominator: u128 = 1;
    for digit in fraction.bytes().take(18) {
        numerator = numerator * 10 + u128::from(digit - b'0');
        denominator *= 10;
    }
    nanos = nanos.checked_add(numerator * scale / denominator)?;
    Some(nanos)
}

/// Formats signed nanoseconds like Go's `Duration.String`: `"1h30m0s"`, `"500ms"`, `"1.5µs"`, `"0s"`.
pub fn format_nanos(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let magnitude = nanos.unsigned_abs();
    if magnitude == 0 {
        return "0s".to_owned();
    }
    if magnitude < 1_000_000_000 {
        let (scale, unit) = match magnitude {
            0..1_000 => (1, "ns"),
            1_000..1_000_000 => (1_000, "µs"),
            _ => (1_000_000, "ms"),
        };
        return format!("{sign}{}{unit}", decimal(magnitude, scale));
    }
    let hours = magnitude / 3_600_000_000_000;
    let minutes = magnitude / 60_000_000_000 % 60;
    let seconds = decimal(magnitude % 60_000_000_000, 1_000_000_000);
    match (hours, minutes) {
        (0, 0) => format!("{sign}{seconds}s"),
        (0, _) => format!("{sign}{minutes}m{seconds}s"),
        _ => format!("{sign}{hours}h{minutes}m{seconds}s"),
    }
}

/// Formats a `std::time::Duration` like Go (saturating at the `i64` nanosecond range).
pub fn format(duration: Duration) -> String {
    format_nanos(i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX))
}

/// `value / scale` with the remainder as a decimal fraction without trailing zeros.
fn decimal(value: u64, scale: u64) -> String {
    let whole = value / scale;
    let remainder = value % scale;
    if remainder == 0 {
        return whole.to_string();
    }
    let width = scale.ilog10() as usize;
    let fraction = format!("{remainder:0width$}");
    format!("{whole}.{}", fraction.trim_end_matches('0'))
}

/// A duration value in a config: either a Go string or whole milliseconds.
///
/// Kept as a separate wrapper so callers can say which form they accept in error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GoDuration(pub Duration);

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format(self.0))
    }
}

impl std::str::FromStr for GoDuration {
    type Err = ParseDurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s).map(GoDuration)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000_000;

    #[test]
    fn parses_go_examples() {
        let cases = [
            ("0", 0),
            ("-0", 0),
            ("5s", 5 * SECOND),
            ("+5s", 5 * SECOND),
            ("-5s", -5 * SECOND),
            ("1h30m", 5_400 * SECOND),
            ("500ms", SECOND / 2),
            ("1.5s", 3 * SECOND / 2),
            (".5s", SECOND / 2),
            ("3.s", 3 * SECOND),
            ("1.5h", 5_400 * SECOND),
            ("100ns", 100),
            ("7us", 7_000),
            ("7µs", 7_000),
            ("7μs", 7_000),
            ("1h2m3s4ms5us6ns", 3_723_004_005_006),
            ("0.000000001s", 1),
            ("0.1234567891s", 123_456_789),
            ("2562047h47m16.854775807s", i64::MAX),
            ("-2562047h47m16.854775808s", i64::MIN),
        ];
        for (text, nanos) in cases {
            assert_eq!(parse_nanos(text), Ok(nanos), "{text}");
        }
    }

    #[test]
    fn rejects_bad_input_with_a_hint() {
        let err = parse_nanos("5 mins").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid duration "5 mins" (expected a Go duration such as "30s", "5m", "1h30m")"#
        );
        for text in ["", "-", "s", ".s", "1s ", " 1s", "abc", "-+1s"] {
            assert!(matches!(parse_nanos(text), Err(ParseDurationError::Invalid { .. })), "{text:?}");
        }
        assert_eq!(
            parse_nanos("5").unwrap_err().to_string(),
            r#"invalid duration "5" (missing a unit; expected a Go duration such as "30s", "5m", "1h30m")"#
        );
        assert!(matches!(parse_nanos("1s5"), Err(ParseDurationError::MissingUnit { .. })));
        for text in ["1..5s", "1e3s", "1.2.3s"] {
            assert!(parse_nanos(text).is_err(), "{text:?}");
        }
        assert_eq!(
            parse_nanos("3d").unwrap_err().to_string(),
            r#"invalid duration "3d" (unknown unit "d"; valid units are ns, us, µs, ms, s, m, h)"#
        );
        assert!(matches!(parse_nanos("2562048h"), Err(ParseDurationError::OutOfRange { .. })));
        assert!(matches!(
            parse_nanos("99999999999999999999999h"),
            Err(ParseDurationError::Invalid { .. } | ParseDurationError::OutOfRange { .. })
        ));
    }

    #[test]
    fn std_parse_rejects_negative() {
        assert_eq!(parse("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse("-5s").unwrap_err().to_string(), r#"duration "-5s" is negative (expected zero or more)"#);
    }

    #[test]
    fn formats_like_go() {
        let cases = [
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1µs"),
            (2_200_000, "2.2ms"),
            (SECOND / 2, "500ms"),
            (3 * SECOND / 2, "1.5s"),
            (-5 * SECOND, "-5s"),
            (60 * SECOND, "1m0s"),
            (5_400 * SECOND, "1h30m0s"),
            (3_723_004_005_006, "1h2m3.004005006s"),
            (i64::MAX, "2562047h47m16.854775807s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ];
        for (nanos, text) in cases {
            assert_eq!(format_nanos(nanos), text);
            assert_eq!(parse_nanos(text), Ok(nanos), "round trip {text}");
        }
        assert_eq!(format(Duration::from_millis(1500)), "1.5s");
        assert_eq!(GoDuration(Duration::from_secs(90)).to_string(), "1m30s");
        assert_eq!("90s".parse::<GoDuration>(), Ok(GoDuration(Duration::from_secs(90))));
    }
}
