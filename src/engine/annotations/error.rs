//! [`AnnotationError`]: a mistake in one annotation, worded like a compiler error.

use std::fmt;

use crate::engine::source::Source;

/// A mistake in one annotation: the key, the value, what was expected and, where it
/// helps, a suggestion. A namespace's annotation and an `InitPolicy`'s field are reported
/// the same way, with their [`Source`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnotationError {
    /// The full annotation key (`init.example/wait-for`), or the policy's field
    /// (`spec.volumes[0]`).
    pub key: String,
    /// The offending value, or the key itself when the key is the mistake.
    pub value: String,
    /// What is wrong and what was expected.
    pub message: String,
    /// A likely fix, such as the key that was probably meant.
    pub suggestion: Option<String>,
    /// Whose annotation or field it is.
    pub source: Source,
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
            source: Source::Pod,
        }
    }

    /// A mistake in a field of an `InitPolicy` (`field` as in `spec.volumes[0]`).
    pub fn policy(
        policy: &str,
        field: impl Into<String>,
        value: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        AnnotationError {
            source: Source::Policy(policy.to_owned()),
            ..AnnotationError::new(field, value, message)
        }
    }

    /// The same mistake, in an annotation that came from `source`.
    pub fn from_source(self, source: Source) -> Self {
        AnnotationError { source, ..self }
    }

    pub(super) fn suggest(mut self, suggestion: impl Into<String>) -> Self {
        self.suggestion = Some(suggestion.into());
        self
    }
}

impl fmt::Display for AnnotationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Source::Pod => write!(f, "annotation {}", self.key)?,
            Source::Namespace(name) => write!(f, "annotation {} of namespace {name}", self.key)?,
            Source::Policy(name) => write!(f, "InitPolicy {name}, {}", self.key)?,
        }
        write!(f, ": {}: {}", quoted(&self.value, 120), self.message)?;
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
