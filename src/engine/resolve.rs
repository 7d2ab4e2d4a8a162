//! What applies to one pod before planning: its annotations with its namespace's as
//! defaults, the policies that select it, and the opt-out against enforced policies.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use crate::engine::annotations::{self, AnnotationError, Directives, Key, Keys};
use crate::engine::policy::apply::Applied;
use crate::engine::policy::select::with_namespace_defaults;
use crate::engine::source::Source;
use crate::engine::{Invalid, PodContext, Skip};

/// The directives and policy contributions one plan is built from.
pub(super) struct Resolved<'a> {
    /// The pod's annotations, with the namespace's `P/` annotations as defaults.
    pub annotations: Cow<'a, BTreeMap<String, String>>,
    /// The keys of `annotations` that came from the namespace.
    pub namespace_keys: BTreeSet<String>,
    pub namespace: &'a str,
    pub directives: Directives,
    pub applied: Applied<'a>,
}

impl Resolved<'_> {
    /// The errors, each with the namespace as its source when the key came from there.
    pub fn blame(&self, errors: Vec<AnnotationError>) -> Invalid {
        blame(errors, &self.namespace_keys, self.namespace)
    }
}

fn blame(errors: Vec<AnnotationError>, keys: &BTreeSet<String>, namespace: &str) -> Invalid {
    Invalid(
        errors
            .into_iter()
            .map(|error| {
                if error.source == Source::Pod && keys.contains(&error.key) {
                    error.from_source(Source::Namespace(namespace.to_owned()))
                } else {
                    error
                }
            })
            .collect(),
    )
}

/// Resolves what applies to `pod`, or why nothing does.
pub(super) fn resolve<'a>(pod: &PodContext<'a>) -> Result<Result<Resolved<'a>, Skip>, Invalid> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    let own = pod.meta.annotations.as_ref().unwrap_or(&EMPTY);
    let prefix = &pod.config.prefix;
    // The namespace's `P/` annotations are defaults: the pod's own key wins.
    let (annotations, namespace_keys) = match pod.scope {
        Some(scope) => with_namespace_defaults(own, &scope.namespace.annotations, prefix),
        None => (Cow::Borrowed(own), BTreeSet::new()),
    };
    let namespace = pod.scope.map_or("", |scope| scope.namespace.name.as_str());
    let selected = match pod.scope {
        Some(scope) => {
            let pod_labels = pod.meta.labels.as_ref().unwrap_or(&EMPTY);
            scope.policies.for_pod(&scope.namespace.labels, pod_labels)
        }
        None => Vec::new(),
    };
    let mut applied = Applied::of(&selected);
    let templates: Vec<&str> = applied.templates.keys().copied().collect();
    let mut directives = annotations::parse_with(&annotations, prefix, &templates)
        .map_err(|errors| blame(errors, &namespace_keys, namespace))?;
    if directives.opted_out {
        if applied.enforced.is_empty() {
            return Ok(Err(Skip::OptedOut));
        }
        // Only the enforced policies apply; the pod's own requests go with its opt-out.
        let enforced: Vec<_> = selected.into_iter().filter(|p| p.spec.enforce).collect();
        applied = Applied::of(&enforced);
        let key = Keys::new(prefix).key(Key::Inject);
        let warning = format!(
            "annotation {key} is \"false\", but InitPolicy {} is enforced: its steps are injected, and the pod's own annotations are not",
            applied.enforced.join(", ")
        );
        directives = Directives {
            status: directives.status.take(),
            warnings: vec![warning],
            ..Directives::default()
        };
    }
    if !directives.requests_injection() && !applied.injects() && directives.status.is_none() {
        return Ok(Err(Skip::NotAnnotated));
    }
    Ok(Ok(Resolved {
        annotations,
        namespace_keys,
        namespace,
        directives,
        applied,
    }))
}
