//! `init-injector inject`: the engine over multi-document YAML, offline. Documents that
//! the engine leaves alone come out byte for byte as they went in; mutated ones are
//! re-serialized with their field order kept. Any error means nothing on stdout.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

use clap::Args;
use serde_json::Value;

use crate::engine::Outcome;
use crate::engine::annotations::Keys;
use crate::engine::config::EngineConfig;
use crate::engine::explain;
use crate::engine::workload::{self, TemplateError};

use super::input::{Document, read_inputs, split_documents};
use super::scope::{Offline, ScopeArgs};
use super::{EXIT_USAGE, EngineArgs, fail};

#[derive(Debug, Args)]
pub struct InjectArgs {
    /// Manifest file to read, or - for standard input (repeatable).
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    pub files: Vec<String>,
    /// Print the ordered plan with the reason for each step instead of YAML.
    #[arg(long)]
    pub explain: bool,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub scope: ScopeArgs,
}

impl InjectArgs {
    /// Reads the inputs and prints the result, or every problem found and nothing on
    /// stdout. Exit 0 on success, 1 when a document is wrong, 2 when an input cannot be
    /// read.
    pub fn execute(self) -> ExitCode {
        let inputs = match read_inputs(&self.files) {
            Ok(inputs) => inputs,
            Err(err) => return fail(EXIT_USAGE, &err),
        };
        let config = self.engine.into_config();
        let offline = match self.scope.load() {
            Ok(offline) => offline,
            Err(errors) => {
                for error in &errors {
                    eprintln!("error: {error}");
                }
                eprintln!(
                    "error: {} problem(s) found in the policies; nothing was written",
                    errors.len()
                );
                return ExitCode::FAILURE;
            }
        };
        let report = run_in(&inputs, self.explain, &config, &offline);
        for warning in &report.warnings {
            eprintln!("warning: {warning}");
        }
        if !report.errors.is_empty() {
            for error in &report.errors {
                eprintln!("error: {error}");
            }
            eprintln!(
                "error: {} problem(s) found; nothing was written",
                report.errors.len()
            );
            return ExitCode::FAILURE;
        }
        let mut stdout = std::io::stdout().lock();
        if let Err(err) = stdout
            .write_all(report.stdout.as_bytes())
            .and_then(|()| stdout.flush())
        {
            eprintln!("error: cannot write output: {err}");
            return ExitCode::FAILURE;
        }
        ExitCode::SUCCESS
    }
}

/// The outcome of one `inject` run: what goes to stdout, what goes to stderr.
#[derive(Debug, Default)]
pub struct Report {
    pub stdout: String,
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
}

/// Processes named inputs with no policies, in the `default` namespace. Pure apart from
/// what `inputs` already holds.
pub fn run(inputs: &[(String, String)], explain: bool, config: &EngineConfig) -> Report {
    run_in(inputs, explain, config, &Offline::none())
}

/// Processes named inputs with the policies and namespace of `offline`.
pub fn run_in(
    inputs: &[(String, String)],
    explain: bool,
    config: &EngineConfig,
    offline: &Offline,
) -> Report {
    let mut report = Report::default();
    let mut outputs: Vec<String> = Vec::new();
    let mut index = 0;
    for (source, text) in inputs {
        for document in split_documents(text) {
            index += 1;
            let place = format!("{source}: document {index} (line {})", document.first_line);
            let context = Context {
                place: &place,
                explain,
                config,
                offline,
            };
            match process(&document, &context, &mut report) {
                Some(out) => outputs.push(out),
                None => continue,
            }
        }
    }
    if report.errors.is_empty() {
        report.stdout = if explain {
            outputs.concat()
        } else {
            let mut joined = String::new();
            for (i, out) in outputs.iter().enumerate() {
                if i > 0 {
                    joined.push_str("---\n");
                }
                joined.push_str(out);
                if !out.ends_with('\n') {
                    joined.push('\n');
                }
            }
            joined
        };
    }
    report
}

/// What one document is processed with.
struct Context<'a> {
    place: &'a str,
    explain: bool,
    config: &'a EngineConfig,
    offline: &'a Offline,
}

fn process(document: &Document<'_>, context: &Context<'_>, report: &mut Report) -> Option<String> {
    let Context {
        place,
        explain,
        config,
        ..
    } = *context;
    let verbatim = || {
        Some(if explain {
            String::new()
        } else {
            document.text.to_owned()
        })
    };
    let mut value: Value = match serde_yaml_ng::from_str(document.text) {
        Ok(value) => value,
        Err(err) => {
            report.errors.push(yaml_error(place, document, &err));
            return None;
        }
    };
    let templates = workload::templates(&value);
    warn_unhandled(&value, place, &config.prefix, report);
    let mut ops = Vec::new();
    let mut described = String::new();
    for template in &templates {
        plan_one(&value, template, context, report, &mut ops, &mut described);
    }
    if explain {
        return Some(described);
    }
    if ops.is_empty() {
        return verbatim();
    }
    if let Err(err) = json_patch::patch(&mut value, &ops) {
        report.errors.push(format!(
            "{place}: internal error: the engine's patch does not apply ({err})"
        ));
        return None;
    }
    match serde_yaml_ng::to_string(&value) {
        Ok(text) => Some(text),
        Err(err) => {
            report
                .errors
                .push(format!("{place}: cannot write YAML: {err}"));
            None
        }
    }
}

/// Plans one pod template of `value`: its patch goes to `ops`, its explanation to
/// `described`, its warnings and errors to `report`.
fn plan_one(
    value: &Value,
    template: &workload::Template,
    context: &Context<'_>,
    report: &mut Report,
    ops: &mut Vec<json_patch::PatchOperation>,
    described: &mut String,
) {
    let Context {
        place,
        explain,
        config,
        offline,
    } = *context;
    let (namespace, warning) = offline.namespace_of(template.namespace.as_deref());
    if let Some(warning) = warning {
        report
            .warnings
            .push(format!("{place}: {}: {warning}", template.owner));
    }
    let scope = offline.scope(&namespace);
    match workload::plan_template(value, template, config, Some(scope)) {
        Ok((outcome, spec)) => {
            if explain {
                let owner = format!("{place}: {}", template.owner);
                described.push_str(&explain::describe(&owner, &outcome, &spec, &config.prefix));
            }
            if let Outcome::Injected(injection) = outcome {
                for warning in injection.warnings() {
                    report
                        .warnings
                        .push(format!("{place}: {}: {warning}", template.owner));
                }
                ops.extend(injection.patch);
            }
        }
        Err(TemplateError::Invalid(invalid)) => {
            for error in invalid.0 {
                report
                    .errors
                    .push(format!("{place}: {}: {error}", template.owner));
            }
        }
        Err(err @ (TemplateError::Malformed { .. } | TemplateError::NoSpec { .. })) => {
            report.errors.push(format!(
                "{place}: {}: {}",
                template.owner,
                crate::error::chain(&err)
            ));
        }
    }
}

/// Objects that carry our annotations in a kind `inject` does not know are written
/// unchanged, and said so on stderr.
fn warn_unhandled(value: &Value, place: &str, prefix: &str, report: &mut Report) {
    for skipped in workload::unhandled(value, &Keys::new(prefix)) {
        report.warnings.push(format!(
            "{place}: {}: has {prefix}/ annotations at {}, but inject only knows the pod templates of \
             v1 Pod and ReplicationController, apps/v1 Deployment, StatefulSet, DaemonSet and \
             ReplicaSet, and batch/v1 Job and CronJob; written unchanged",
            skipped.object, skipped.at
        ));
    }
}

fn yaml_error(place: &str, document: &Document<'_>, err: &serde_yaml_ng::Error) -> String {
    let mut message = err.to_string();
    if let Some(cut) = message.find(" at line ") {
        message.truncate(cut);
    }
    let mut out = format!("{place}: YAML syntax error");
    if let Some(location) = err.location() {
        let _ = write!(
            out,
            " at line {}, column {}",
            document.first_line + location.line() - 1,
            location.column()
        );
    }
    let _ = write!(out, ": {message}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_errors_name_the_file_line() {
        let input = "a: 1\n---\nkind: Pod\nmetadata: [\n";
        let report = run(
            &[("x.yaml".into(), input.into())],
            false,
            &EngineConfig::default(),
        );
        assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
        let error = &report.errors[0];
        assert!(
            error.starts_with("x.yaml: document 2 (line 3): YAML syntax error at line "),
            "{error}"
        );
        assert!(report.stdout.is_empty());
    }
}
