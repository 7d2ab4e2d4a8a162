//! `P/position`: where the injected block goes among the pod's own init containers.

use std::fmt;

use super::Parser;

/// Where the injected block goes among the pod's own init containers.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Position {
    /// After the last native sidecar, or at the front.
    #[default]
    First,
    Last,
    Before(String),
    After(String),
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::First => f.write_str("first"),
            Position::Last => f.write_str("last"),
            Position::Before(name) => write!(f, "before:{name}"),
            Position::After(name) => write!(f, "after:{name}"),
        }
    }
}

impl Position {
    /// `first`, `last`, `before:NAME` or `after:NAME`, with white space around the parts.
    pub fn parse(value: &str) -> Option<Position> {
        let trimmed = value.trim();
        let anchored = |rest: &str| -> Option<String> {
            let rest = rest.trim();
            (!rest.is_empty()).then(|| rest.to_owned())
        };
        match trimmed {
            "first" => Some(Position::First),
            "last" => Some(Position::Last),
            _ => match trimmed.split_once(':') {
                Some(("before", rest)) => anchored(rest).map(Position::Before),
                Some(("after", rest)) => anchored(rest).map(Position::After),
                _ => None,
            },
        }
    }
}

impl Parser<'_> {
    pub(super) fn position(&mut self, key: &str, value: &str) {
        match Position::parse(value) {
            Some(position) => self.directives.position = position,
            None => self.fail(
                key,
                value,
                "expected first, last, before:NAME or after:NAME (NAME: one of the pod's own init containers)",
            ),
        }
    }
}
