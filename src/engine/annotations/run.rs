//! `P/run.NAME`, its attributes `P/run.NAME.image` and `P/run.NAME.container`, and
//! `P/steps`, the order of the named steps.

use super::keys::{RunAttribute, did_you_mean};
use super::{AnnotationError, Parser};
use crate::engine::names::is_dns1123_label;

/// `P/run.NAME` and its attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDirective {
    pub name: String,
    /// The command line split into argv, never through a shell.
    pub argv: Vec<String>,
    pub image: Option<String>,
    /// The app container to copy image, env and mounts from.
    pub container: Option<String>,
}

impl Parser<'_> {
    /// `rest` is what follows `P/run.`: `NAME` or `NAME.ATTRIBUTE`.
    pub(super) fn run(&mut self, key: &str, rest: &str, value: &str) {
        let (name, attribute) = match rest.split_once('.') {
            Some((name, attribute)) => (name, Some(attribute)),
            None => (rest, None),
        };
        if !is_dns1123_label(name) {
            self.fail(
                key,
                value,
                format!(
                    "step name {name:?} is not a valid container name; expected lowercase letters, digits and '-', at most 63 characters"
                ),
            );
            return;
        }
        match attribute.map(|a| (a, RunAttribute::from_name(a))) {
            None => self.run_command(key, name, value),
            Some((_, Some(attribute))) => self.run_attribute(key, name, attribute, value),
            Some((other, None)) => {
                let mut error = AnnotationError::new(
                    key,
                    value,
                    format!("{other:?} is not a run step attribute; expected image or container"),
                );
                let names = RunAttribute::ALL.map(RunAttribute::name);
                if let Some(best) = did_you_mean(other, names) {
                    let best = RunAttribute::from_name(best).expect("one of ALL");
                    let fix = self.keys.run_attribute(name, best);
                    error = error.suggest(format!("did you mean {fix}?"));
                }
                self.errors.push(error);
            }
        }
    }

    fn run_command(&mut self, key: &str, name: &str, value: &str) {
        match split_command(value) {
            None => self.fail(
                key,
                value,
                "has an unterminated quote or a trailing backslash",
            ),
            Some(argv) if argv.is_empty() => {
                self.fail(key, value, "is empty; expected a command line")
            }
            Some(argv) => {
                let run = RunDirective {
                    name: name.to_owned(),
                    argv,
                    image: None,
                    container: None,
                };
                self.directives.runs.insert(name.to_owned(), run);
            }
        }
    }

    /// Kept aside until every `run.NAME` is known; [`Parser::attach_run_attributes`]
    /// then sets it on its step.
    fn run_attribute(&mut self, key: &str, name: &str, attribute: RunAttribute, value: &str) {
        let trimmed = value.trim();
        let problem = match attribute {
            RunAttribute::Image
                if trimmed.is_empty() || trimmed.chars().any(char::is_whitespace) =>
            {
                Some("expected an image reference without spaces")
            }
            RunAttribute::Container if trimmed.is_empty() => {
                Some("expected the name of one of the pod's containers")
            }
            _ => None,
        };
        match problem {
            Some(problem) => self.fail(key, value, problem),
            None => {
                let entry = (key.to_owned(), trimmed.to_owned());
                self.run_attributes
                    .insert((attribute, name.to_owned()), entry);
            }
        }
    }

    pub(super) fn steps(&mut self, key: &str, value: &str) {
        let mut order = Vec::new();
        for item in value.split(',').map(str::trim) {
            if item.is_empty() {
                self.fail(
                    key,
                    value,
                    "has an empty step name; expected comma-separated step names",
                );
            } else if order.iter().any(|seen| seen == item) {
                self.fail(key, value, format!("names step {item:?} twice"));
            } else {
                order.push(item.to_owned());
            }
        }
        self.directives.steps = Some(order);
    }

    /// Sets each `run.NAME.ATTRIBUTE` on its step; one without `run.NAME` is a mistake.
    pub(super) fn attach_run_attributes(&mut self) {
        for ((attribute, name), (key, value)) in std::mem::take(&mut self.run_attributes) {
            match self.directives.runs.get_mut(&name) {
                Some(run) if attribute == RunAttribute::Image => run.image = Some(value),
                Some(run) => run.container = Some(value),
                None => {
                    let missing = self.keys.run(&name);
                    self.errors.push(AnnotationError::new(
                        &key,
                        &value,
                        format!("modifies step {name:?}, but {missing} is not set"),
                    ))
                }
            }
        }
    }

    /// `P/steps` must name every run step, and only run steps and the `templates` of the
    /// policies that apply.
    pub(super) fn check_step_order(&mut self) {
        let Some(order) = self.directives.steps.clone() else {
            return;
        };
        let key = self.keys.key(super::Key::Steps);
        let value = order.join(",");
        let templates = self.templates;
        for name in &order {
            if !self.directives.runs.contains_key(name) && !templates.contains(&name.as_str()) {
                let missing = self.keys.run(name);
                let message = if templates.is_empty() {
                    format!("names step {name:?}, which has no {missing} annotation")
                } else {
                    format!(
                        "names step {name:?}, which has no {missing} annotation and is no template of an InitPolicy that applies to the pod"
                    )
                };
                let mut error = AnnotationError::new(&key, &value, message);
                let known = self
                    .directives
                    .runs
                    .keys()
                    .map(String::as_str)
                    .chain(templates.iter().copied());
                if let Some(best) = did_you_mean(name, known) {
                    error = error.suggest(format!("did you mean {best}?"));
                }
                self.errors.push(error);
            }
        }
        for name in self.directives.runs.keys() {
            if !order.contains(name) {
                self.errors.push(AnnotationError::new(
                    &key,
                    &value,
                    format!(
                        "does not list step {name:?}, which {} defines; list every step, in the order to run them",
                        self.keys.run(name)
                    ),
                ));
            }
        }
    }
}

/// `value` split into words as `shlex::split` splits it. A command line without quotes,
/// backslashes or comments, as most are, is split at its blanks here: shlex builds each
/// word a byte at a time, two or three allocations a word.
fn split_command(value: &str) -> Option<Vec<String>> {
    if value.contains(['"', '\'', '\\', '#']) {
        return shlex::split(value);
    }
    let words = value
        .split([' ', '\t', '\n'])
        .filter(|word| !word.is_empty());
    Some(words.map(str::to_owned).collect())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::split_command;

    proptest! {
        /// The blanks-only split is shlex's, whatever the line holds.
        #[test]
        fn splits_as_shlex_splits(line in "[a-c \t\n\r\"'\\\\#=$é-]{0,24}") {
            prop_assert_eq!(split_command(&line), shlex::split(&line));
        }
    }

    #[test]
    fn plain_lines_take_the_blanks_only_split() {
        for line in ["npm run migration:run", "  a\tb\n c  ", "", "x=1 y=$HOME/é"] {
            assert_eq!(split_command(line), shlex::split(line), "{line:?}");
        }
        assert_eq!(
            split_command("fetch-config --out /config/app.yaml").unwrap(),
            ["fetch-config", "--out", "/config/app.yaml"]
        );
    }
}
