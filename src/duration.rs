//! Durations as users write them in annotations and flags (`90s`, `5m`, `1h30m`,
//! `500ms`), and the compact form the engine writes into injected argv.

use std::time::Duration;

/// Parses a positive duration. Returns the reason it is not one on failure, in words
/// fit to follow "expected a duration such as 90s or 5m, but …".
pub fn parse_positive(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("the value is empty".to_owned());
    }
    if trimmed.starts_with('-') {
        return Err("it is negative".to_owned());
    }
    if trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("it has no unit (write {trimmed}s for seconds)"));
    }
    let duration = humantime::parse_duration(trimmed).map_err(|err| err.to_string())?;
    if duration.is_zero() {
        return Err("it is zero".to_owned());
    }
    // The engine writes durations into the wait step's argv in whole milliseconds, and
    // `wait` adds them to the clock: a value it cannot carry exactly, or that overflows
    // the clock, would inject a step that cannot start.
    if duration.subsec_nanos() % 1_000_000 != 0 {
        return Err("it is not a whole number of milliseconds".to_owned());
    }
    if duration > MAX {
        return Err(format!("it is longer than {} days", MAX.as_secs() / 86_400));
    }
    Ok(duration)
}

/// The longest duration accepted anywhere: far beyond any sensible wait, far below
/// what the clock can add.
pub const MAX: Duration = Duration::from_secs(366 * 86_400);

/// Writes a duration in the largest whole unit (`5m`, `90s`, `1500ms`), which
/// [`parse_positive`] reads back to the same value.
pub fn format_compact(duration: Duration) -> String {
    let millis = duration.as_millis();
    if !millis.is_multiple_of(1000) {
        return format!("{millis}ms");
    }
    let secs = duration.as_secs();
    match secs {
        s if s > 0 && s.is_multiple_of(3600) => format!("{}h", s / 3600),
        s if s > 0 && s.is_multiple_of(60) => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let cases: &[(&str, Result<u64, &str>)] = &[
            ("90s", Ok(90_000)),
            ("5m", Ok(300_000)),
            ("1h30m", Ok(5_400_000)),
            ("500ms", Ok(500)),
            (" 2s ", Ok(2000)),
            ("", Err("empty")),
            ("-5s", Err("negative")),
            ("0s", Err("zero")),
            ("30", Err("no unit")),
            ("5 parsecs", Err("unknown time unit")),
            ("999us", Err("not a whole number of milliseconds")),
            ("1500us", Err("not a whole number of milliseconds")),
            ("1ns", Err("not a whole number of milliseconds")),
            ("366d", Ok(366 * 86_400_000)),
            ("367d", Err("longer than 366 days")),
            ("300000000000y", Err("longer than 366 days")),
        ];
        for (input, want) in cases {
            let got = parse_positive(input).map(|d| d.as_millis() as u64);
            match (want, &got) {
                (Ok(ms), Ok(got_ms)) => assert_eq!(ms, got_ms, "{input:?}"),
                (Err(fragment), Err(msg)) => {
                    assert!(
                        msg.contains(fragment),
                        "{input:?}: {msg:?} lacks {fragment:?}"
                    )
                }
                _ => panic!("{input:?}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn compact_form_round_trips() {
        for ms in [
            1, 999, 1000, 1500, 60_000, 90_000, 3_600_000, 5_400_000, 7_200_000,
        ] {
            let d = Duration::from_millis(ms);
            let text = format_compact(d);
            assert_eq!(parse_positive(&text), Ok(d), "{text}");
        }
        assert_eq!(format_compact(Duration::from_secs(300)), "5m");
        assert_eq!(format_compact(Duration::from_secs(90)), "90s");
    }
}
