//! Where a directive came from: the pod's own annotation, its namespace's annotation, or
//! an `InitPolicy`. Errors name it, `inject --explain` shows it per step.

use std::fmt;

/// Who asked for something.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// The pod's (or pod template's) own annotation.
    #[default]
    Pod,
    /// An annotation of the namespace the pod is created in (a default for its pods).
    Namespace(String),
    /// An `InitPolicy`, by name.
    Policy(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Pod => f.write_str("the pod's annotation"),
            Source::Namespace(name) => write!(f, "an annotation of namespace {name}"),
            Source::Policy(name) => write!(f, "InitPolicy {name}"),
        }
    }
}
