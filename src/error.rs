//! How an error is shown to a person: its message, then each `#[source]` in turn,
//! joined by `": "`. Error types in this crate keep their causes as sources and do not
//! repeat them in their own message, so this is the one place that spells out a chain.

use std::error::Error;

/// `err` and all its sources, as one line.
pub fn chain(err: &dyn Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read config.yaml")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn joins_every_cause() {
        let err = Outer(std::io::Error::other("disk on fire"));
        assert_eq!(chain(&err), "cannot read config.yaml: disk on fire");
    }
}
