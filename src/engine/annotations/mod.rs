//! The annotation contract: turns a pod's annotations into typed [`Directives`], or into
//! [`AnnotationError`]s that name the key, the value and what was expected.
//!
//! One file per concern: [`keys`] (the known keys, full key names, "did you mean"),
//! `wait.rs`, `run.rs` (run steps and `P/steps`), `volumes.rs`, `position.rs` and
//! `error.rs`. Parsing knows nothing of the pod's containers; checks that need them (an
//! unknown container, a clashing name) belong to planning.

mod error;
pub mod keys;
mod position;
mod run;
mod volumes;
mod wait;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

pub use error::AnnotationError;
pub use keys::{Key, Keys, RunAttribute};
pub use position::Position;
pub use run::RunDirective;
pub use volumes::{VolumeDirective, VolumeError, is_quantity, normalized_mount_path};

use crate::engine::status::Status;
use crate::engine::target::WaitTarget;
use keys::{RUN_PREFIX, did_you_mean, known_suffixes};

/// Everything a pod asked for through annotations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Directives {
    /// Targets in written order, duplicates removed.
    pub waits: Vec<WaitTarget>,
    pub wait_timeout: Option<Duration>,
    pub wait_interval: Option<Duration>,
    /// Run steps keyed by NAME (so iteration is lexical order).
    pub runs: BTreeMap<String, RunDirective>,
    /// `P/steps`, when given.
    pub steps: Option<Vec<String>>,
    pub volumes: Vec<VolumeDirective>,
    pub position: Position,
    /// `P/inject: "false"`.
    pub opted_out: bool,
    /// What an earlier pass injected.
    pub status: Option<Status>,
    /// Things worth telling the user that do not stop injection.
    pub warnings: Vec<String>,
}

impl Directives {
    /// Whether the pod asks for anything to be injected (`P/steps` alone may name
    /// policy templates).
    pub fn requests_injection(&self) -> bool {
        !self.waits.is_empty()
            || !self.runs.is_empty()
            || !self.volumes.is_empty()
            || self.steps.is_some()
    }

    /// The run steps in execution order: `P/steps` order, else lexical order of NAME.
    pub fn ordered_runs(&self) -> Vec<&RunDirective> {
        match &self.steps {
            Some(order) => order
                .iter()
                .filter_map(|name| self.runs.get(name))
                .collect(),
            None => self.runs.values().collect(),
        }
    }
}

/// Parses every annotation under `prefix/`. All mistakes are reported, not just the first.
pub fn parse(
    annotations: &BTreeMap<String, String>,
    prefix: &str,
) -> Result<Directives, Vec<AnnotationError>> {
    parse_with(annotations, prefix, &[])
}

/// [`parse`], where `P/steps` may also name these policy templates.
pub fn parse_with(
    annotations: &BTreeMap<String, String>,
    prefix: &str,
    templates: &[&str],
) -> Result<Directives, Vec<AnnotationError>> {
    let mut parser = Parser {
        keys: Keys::new(prefix),
        templates,
        directives: Directives::default(),
        errors: Vec::new(),
        run_attributes: BTreeMap::new(),
    };
    for (key, value) in annotations {
        match key.split_once('/') {
            Some((p, suffix)) if p == prefix => parser.entry(key, suffix, value),
            Some((p, suffix)) => parser.check_near_miss_prefix(key, p, suffix, value),
            None => {}
        }
    }
    parser.finish()
}

/// The parse in progress; each concern's file adds its methods.
struct Parser<'a> {
    keys: Keys<'a>,
    /// The templates of the policies that apply, which `P/steps` may name.
    templates: &'a [&'a str],
    directives: Directives,
    errors: Vec<AnnotationError>,
    /// `run.NAME.ATTRIBUTE` → (key, value), kept until every `run.NAME` is known.
    run_attributes: BTreeMap<(RunAttribute, String), (String, String)>,
}

impl Parser<'_> {
    fn fail(&mut self, key: &str, value: &str, message: impl Into<String>) {
        self.errors.push(AnnotationError::new(key, value, message));
    }

    fn entry(&mut self, key: &str, suffix: &str, value: &str) {
        if let Some(rest) = suffix.strip_prefix(RUN_PREFIX) {
            return self.run(key, rest, value);
        }
        let Some(known) = Key::from_suffix(suffix) else {
            return self.unknown_key(key, suffix, value);
        };
        match known {
            Key::WaitFor => self.wait_for(key, value),
            Key::WaitTimeout => self.directives.wait_timeout = self.duration(key, value),
            Key::WaitInterval => self.directives.wait_interval = self.duration(key, value),
            Key::Steps => self.steps(key, value),
            Key::Volumes => self.volumes(key, value),
            Key::Position => self.position(key, value),
            Key::Inject => match value.trim() {
                "false" => self.directives.opted_out = true,
                "true" => {}
                _ => self.fail(key, value, "expected \"true\" or \"false\""),
            },
            Key::Status => match Status::parse(value) {
                Ok(status) => self.directives.status = Some(status),
                Err(err) => self.errors.push(
                    AnnotationError::new(
                        key,
                        value,
                        format!("is not a status written by init-injector ({err})"),
                    )
                    .suggest("this key is written by the webhook; remove it from the manifest"),
                ),
            },
        }
    }

    fn unknown_key(&mut self, key: &str, suffix: &str, value: &str) {
        let error = AnnotationError::new(key, value, "is not an init-injector annotation");
        let known = known_suffixes();
        let suggestion = match did_you_mean(suffix, known.iter().map(String::as_str)) {
            Some(candidate) => format!("did you mean {}?", self.keys.suffixed(candidate)),
            None => format!("known keys: {}", known.join(", ")),
        };
        self.errors.push(error.suggest(suggestion));
    }

    /// A key under a prefix one or two typos away from ours, whose rest is one of our
    /// keys, is almost certainly meant for us: ignoring it would inject nothing silently.
    fn check_near_miss_prefix(&mut self, key: &str, prefix: &str, suffix: &str, value: &str) {
        let ours = Key::from_suffix(suffix).is_some() || suffix.starts_with(RUN_PREFIX);
        if ours && did_you_mean(prefix, [self.keys.prefix()]).is_some() {
            self.errors.push(
                AnnotationError::new(
                    key,
                    value,
                    format!(
                        "the prefix {prefix:?} looks like a misspelling of {:?}",
                        self.keys.prefix()
                    ),
                )
                .suggest(format!("did you mean {}?", self.keys.suffixed(suffix))),
            );
        }
    }

    fn finish(mut self) -> Result<Directives, Vec<AnnotationError>> {
        self.attach_run_attributes();
        self.check_step_order();
        if self.errors.is_empty() {
            Ok(self.directives)
        } else {
            Err(self.errors)
        }
    }
}
