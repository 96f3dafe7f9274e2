//! Go-style durations (`336h`, `1h30m`, `1.5s`, `250ms`): kaniko's `--cache-ttl` and the
//! Dockerfile's HEALTHCHECK flags both take them, so there is one parser and one formatter.
//!
//! The grammar is Go's `time.ParseDuration`: an optional sign, then one or more decimal numbers
//! (with an optional fraction) each followed by a unit (`ns`, `us`/`µs`/`μs`, `ms`, `s`, `m`,
//! `h`); a bare `0` is allowed; the total fits Go's int64 of nanoseconds.

use std::time::Duration;

/// A string that is not a Go duration, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason}")]
pub struct DurationError {
    pub input: String,
    pub reason: String,
}

const NANOS_PER: [(&str, u128); 9] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60 * 1_000_000_000),
    ("h", 3600 * 1_000_000_000),
    // Go has no day unit; "d" is listed only to give a helpful error below.
    ("d", 0),
];

/// Parses a Go duration string into signed nanoseconds, exactly as Go's `time.ParseDuration`
/// does (HEALTHCHECK flags are checked against this: BuildKit parses them with Go).
pub fn parse_nanos(input: &str) -> Result<i128, DurationError> {
    let err = |reason: &str| DurationError { input: input.to_string(), reason: reason.to_string() };
    let (negative, mut s) = match input.as_bytes().first() {
        Some(b'-') => (true, &input[1..]),
        Some(b'+') => (false, &input[1..]),
        _ => (false, input),
    };
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(err("empty duration"));
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, rest) = s.split_at(int_len);
        let (frac_part, rest) = match rest.strip_prefix('.') {
            Some(r) => {
                let n = r.bytes().take_while(u8::is_ascii_digit).count();
                r.split_at(n)
            }
            None => ("", rest),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(err("expected a number"));
        }
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let (unit, rest) = rest.split_at(unit_len);
        if unit.is_empty() {
            return Err(err("missing unit (one of ns, us, ms, s, m, h)"));
        }
        let per = match NANOS_PER.iter().find(|(u, _)| *u == unit) {
            Some(("d", _)) => return Err(err("unknown unit \"d\" (Go durations have no days: use e.g. 336h)")),
            Some((_, n)) => *n,
            None => return Err(err(&format!("unknown unit {unit:?} (one of ns, us, ms, s, m, h)"))),
        };
        let too_big = || err("duration is too large");
        let whole: u128 = if int_part.is_empty() { 0 } else { int_part.parse().map_err(|_| too_big())? };
        let mut value = whole.checked_mul(per).ok_or_else(too_big)?;
        // Digits past nanosecond precision cannot change the result: 19 digits is plenty.
        let frac = &frac_part[..frac_part.len().min(19)];
        if !frac.is_empty() {
            let digits: u128 = frac.parse().map_err(|_| too_big())?;
            value += digits * per / 10u128.pow(frac.len() as u32);
        }
        total = total.checked_add(value).ok_or_else(too_big)?;
        // Go's durations are an int64 of nanoseconds.
        if total > i64::MAX as u128 {
            return Err(too_big());
        }
        s = rest;
    }
    let total = total as i128;
    Ok(if negative { -total } else { total })
}

/// Parses a Go duration that must not be negative (kaniko's `--cache-ttl`: a negative TTL
/// parses in Go but would silently mean "always expired", so it is refused).
pub fn parse_go_duration(input: &str) -> Result<Duration, DurationError> {
    let nanos = parse_nanos(input)?;
    let nanos = u128::try_from(nanos)
        .map_err(|_| DurationError { input: input.to_string(), reason: "negative durations are not allowed".into() })?;
    Ok(Duration::new((nanos / 1_000_000_000) as u64, (nanos % 1_000_000_000) as u32))
}

/// Formats a duration the way Go prints one: `336h0m0s`, `1h30m0s`, `1m30s`, `1.5s`, `250ms`, `0s`.
pub fn format_go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000_000_000 {
        let (scale, unit) = match nanos {
            n if n < 1_000 => (1, "ns"),
            n if n < 1_000_000 => (1_000, "µs"),
            _ => (1_000_000, "ms"),
        };
        return format!("{}{unit}", decimal(nanos, scale));
    }
    let secs = nanos / 1_000_000_000;
    let (h, m) = (secs / 3600, (secs / 60) % 60);
    let s = decimal(nanos % 60_000_000_000, 1_000_000_000);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m{s}s"),
        (h, m) => format!("{h}h{m}m{s}s"),
    }
}

/// `value / scale` in decimal, trailing fractional zeros trimmed.
fn decimal(value: u128, scale: u128) -> String {
    let (whole, frac) = (value / scale, value % scale);
    if frac == 0 {
        return whole.to_string();
    }
    let width = scale.ilog10() as usize;
    let frac = format!("{frac:0width$}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn parses_go_examples() {
        assert_eq!(parse_go_duration("336h").unwrap(), Duration::from_secs(336 * 3600));
        assert_eq!(parse_go_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_go_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_go_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_go_duration("2h45m10.5s").unwrap(), secs(2.0 * 3600.0 + 45.0 * 60.0 + 10.5));
        assert_eq!(parse_go_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_go_duration("1us").unwrap(), Duration::from_micros(1));
        assert_eq!(parse_go_duration("1µs").unwrap(), Duration::from_micros(1));
        assert_eq!(parse_go_duration("1μs").unwrap(), Duration::from_micros(1));
        assert_eq!(parse_go_duration("7ns").unwrap(), Duration::from_nanos(7));
        assert_eq!(parse_go_duration(".5s").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_go_duration("1.s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_go_duration("+5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_go_duration("0s").unwrap(), Duration::ZERO);
        // Units may repeat, as in Go.
        assert_eq!(parse_go_duration("1m1m").unwrap(), Duration::from_secs(120));
        // Excess fractional digits are truncated at nanosecond precision.
        assert_eq!(parse_go_duration("0.0000000019s").unwrap(), Duration::from_nanos(1));
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in ["", "h", "1", "10", "1x", "1.5", ".s", "1h30", "1 h", "1H", " 1h", "--1h", "1hh"] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?} should be rejected");
        }
        let e = parse_go_duration("14d").unwrap_err();
        assert!(e.to_string().contains("336h") && e.to_string().contains("\"14d\""), "{e}");
        let e = parse_go_duration("-1h").unwrap_err();
        assert!(e.reason.contains("negative"), "{e}");
        assert!(parse_go_duration("99999999999999999999999h").is_err());
        assert!(parse_go_duration(&format!("{}h", u64::MAX)).is_err());
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_go_duration(Duration::from_secs(336 * 3600)), "336h0m0s");
        assert_eq!(format_go_duration(Duration::from_secs(5400)), "1h30m0s");
        assert_eq!(format_go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_go_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_go_duration(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(format_go_duration(Duration::from_nanos(42)), "42ns");
        assert_eq!(format_go_duration(Duration::ZERO), "0s");
        for s in ["336h0m0s", "1h30m0s", "1m30s", "1.5s", "250ms", "2h0m0.000000001s"] {
            assert_eq!(format_go_duration(parse_go_duration(s).unwrap()), s);
        }
    }

    #[test]
    fn signed_nanos_as_go_parses_them() {
        assert_eq!(parse_nanos("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(parse_nanos("500ms").unwrap(), 500_000_000);
        assert_eq!(parse_nanos("1.5h").unwrap(), 5_400_000_000_000);
        assert_eq!(parse_nanos(".5s").unwrap(), 500_000_000);
        assert_eq!(parse_nanos("1h2m3s4ms5us6ns").unwrap(), 3_723_004_005_006);
        assert_eq!(parse_nanos("2µs").unwrap(), 2_000);
        assert_eq!(parse_nanos("0").unwrap(), 0);
        assert_eq!(parse_nanos("-1s").unwrap(), -1_000_000_000);
        assert!(parse_nanos("10").unwrap_err().to_string().contains("missing unit"));
        assert!(parse_nanos("5d").unwrap_err().to_string().contains("unknown unit \"d\""));
        assert!(parse_nanos("").is_err());
        assert!(parse_nanos("s").is_err());
        assert!(parse_nanos("1.s").is_ok());
        assert!(parse_nanos("99999999999999h").is_err());
    }

    #[test]
    fn formats_nanos_like_go() {
        assert_eq!(format_go_duration(Duration::from_nanos(0)), "0s");
        assert_eq!(format_go_duration(Duration::from_nanos(90_000_000_000)), "1m30s");
        assert_eq!(format_go_duration(Duration::from_nanos(500_000_000)), "500ms");
        assert_eq!(format_go_duration(Duration::from_nanos(1_500_000)), "1.5ms");
        assert_eq!(format_go_duration(Duration::from_nanos(999)), "999ns");
        assert_eq!(format_go_duration(Duration::from_nanos(3_600_000_000_000)), "1h0m0s");
        assert_eq!(format_go_duration(Duration::from_nanos(1_500_000_000)), "1.5s");
    }
}
