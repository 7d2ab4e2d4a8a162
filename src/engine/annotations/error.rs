//! [`AnnotationError`]: a mistake in one annotation, worded like a compiler error.

use std::fmt;

/// A mistake in one annotation: the key, the value, what was expected and, where it
/// helps, a suggestion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnotationError {
    /// The full annotation key (`init.example/wait-for`).
    pub key: String,
    /// The offending value, or the key itself when the key is the mistake.
    pub value: String,
    /// What is wrong and what was expected.
    pub message: String,
    /// A likely fix, such as the key that was probably meant.
    pub suggestion: Option<String>,
}

impl AnnotationError {
    pub fn new(
        key: impl Into<String>,
        value: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        AnnotationError {
            key: key.into(),
            value: value.into(),
            message: message.into(),
            suggestion: None,
        }
    }

    pub(super) fn suggest(mut self, suggestion: impl Into<String>) -> Self {
        self.suggestion = Some(suggestion.into());
        self
    }
}

impl fmt::Display for AnnotationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "annotation {}: {}: {}",
            self.key,
            quoted(&self.value, 120),
            self.message
        )?;
        if let Some(suggestion) = &self.suggestion {
            write!(f, " ({suggestion})")?;
        }
        Ok(())
    }
}

/// `text` in quotes, cut to `max` characters so that a huge value cannot flood a message.
pub(super) fn quoted(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(max).collect();
        format!("{head:?}…")
    }
}
