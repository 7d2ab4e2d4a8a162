//! Durations as users write them in annotations and flags (`90s`, `5m`, `1h30m`,
//! `500ms`), and the compact form the engine writes into injected argv.

use std::time::Duration;

/// Why a text is not a positive duration. Each message is a whole sentence that says
/// what was expected.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DurationError {
    /// Nothing but white space.
    #[error("{EXPECTED}, but the value is empty")]
    Empty,
    /// A leading minus sign.
    #[error("{EXPECTED}, but it is negative")]
    Negative,
    /// A bare number, such as `30`.
    #[error("{EXPECTED}, but it has no unit (write {0}s for seconds)")]
    NoUnit(String),
    /// `0s`, `0ms`, …
    #[error("{EXPECTED}, but it is zero")]
    Zero,
    /// humantime's reason, such as an unknown unit; it reads as part of the sentence, so
    /// it is shown rather than chained as a cause.
    #[error("{EXPECTED}, but {0}")]
    Unreadable(humantime::DurationError),
    /// A fraction of a millisecond, such as `1500us`: the wait step's argv carries whole
    /// milliseconds.
    #[error("{EXPECTED}, but it is not a whole number of milliseconds")]
    Fraction,
    /// Longer than [`MAX`].
    #[error("{EXPECTED}, but it is longer than 366 days")]
    TooLong,
}

const EXPECTED: &str = "expected a positive duration such as 90s or 5m";

/// Parses a positive duration.
pub fn parse_positive(text: &str) -> Result<Duration, DurationError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(DurationError::Empty);
    }
    if trimmed.starts_with('-') {
        return Err(DurationError::Negative);
    }
    if trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DurationError::NoUnit(trimmed.to_owned()));
    }
    let duration = humantime::parse_duration(trimmed).map_err(DurationError::Unreadable)?;
    if duration.is_zero() {
        return Err(DurationError::Zero);
    }
    // The engine writes durations into the wait step's argv in whole milliseconds, and
    // `wait` adds them to the clock: a value it cannot carry exactly, or that overflows
    // the clock, would inject a step that cannot start.
    if duration.subsec_nanos() % 1_000_000 != 0 {
        return Err(DurationError::Fraction);
    }
    if duration > MAX {
        return Err(DurationError::TooLong);
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
            let got = parse_positive(input)
                .map(|d| d.as_millis() as u64)
                .map_err(|e| e.to_string());
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
