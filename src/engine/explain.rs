//! `--explain`: the ordered plan in words, with the rule behind each place.

use std::fmt::Write;

use k8s_openapi::api::core::v1::PodSpec;

use crate::engine::annotations::{Key, Keys};
use crate::engine::duration::format_compact;
use crate::engine::plan::{Origin, Step};
use crate::engine::source::Source;
use crate::engine::{Injection, Outcome, Skip};

/// Describes what the engine decided for one pod template.
/// `spec` is the pod spec the engine read.
pub fn describe(owner: &str, outcome: &Outcome, spec: &PodSpec, prefix: &str) -> String {
    let mut out = String::new();
    match outcome {
        Outcome::Skipped(Skip::NotAnnotated) => {
            let _ = writeln!(out, "{owner}: nothing to inject (no {prefix}/ annotations)");
        }
        Outcome::Skipped(Skip::OptedOut) => {
            let key = Keys::new(prefix).key(Key::Inject);
            let _ = writeln!(out, "{owner}: nothing to inject ({key} is \"false\")");
        }
        Outcome::Injected(injection) => {
            describe_injection(&mut out, owner, injection, spec, prefix)
        }
    }
    out
}

fn describe_injection(
    out: &mut String,
    owner: &str,
    injection: &Injection,
    spec: &PodSpec,
    prefix: &str,
) {
    let plan = &injection.plan;
    let _ = writeln!(
        out,
        "{owner}: {} injected init container(s), {} shared volume(s)",
        plan.steps.len(),
        plan.volumes.len()
    );
    if injection.is_already_injected() {
        let _ = writeln!(
            out,
            "  already injected: the pod matches the plan, the patch is empty"
        );
    }
    if !plan.steps.is_empty() {
        let _ = writeln!(
            out,
            "  block placed at index {}: {}",
            plan.insert_at, plan.placement
        );
    }
    for (index, step) in plan.steps.iter().enumerate() {
        let c = &step.container;
        let what = what_it_does(step);
        let _ = writeln!(out, "  {}. {}: {what}", index + 1, c.name);
        let _ = writeln!(out, "     from: {}", from(step, prefix));
        let _ = writeln!(out, "     why here: {}", step.reason(&Keys::new(prefix)));
    }
    if !plan.policies.is_empty() {
        let _ = writeln!(out, "  policies applied: {}", plan.policies.join(", "));
    }
    for volume in &plan.volumes {
        let mount = plan
            .mounts
            .iter()
            .find(|m| m.name == volume.name)
            .map_or("", |m| m.mount_path.as_str());
        let empty_dir = volume.empty_dir.as_ref();
        let medium = empty_dir
            .and_then(|e| e.medium.as_deref())
            .unwrap_or("disk");
        let limit = empty_dir
            .and_then(|e| e.size_limit.as_ref())
            .map(|q| format!(", limit {}", q.0))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  volume {}: emptyDir ({medium}{limit}) at {mount} in every injected step and app container",
            volume.name
        );
    }
    let _ = writeln!(
        out,
        "  init containers after injection: {}",
        init_order(&injection.mutated_spec(spec))
    );
    for warning in &plan.warnings {
        let _ = writeln!(out, "  warning: {warning}");
    }
}

/// What one step does, in words.
fn what_it_does(step: &Step) -> String {
    let c = &step.container;
    match &step.origin {
        Origin::Wait {
            target,
            timeout,
            interval,
            timing_from: [timeout_from, interval_from],
        } => format!(
            "wait for {target} (timeout {}{}, interval {}{})",
            format_compact(*timeout),
            set_by(timeout_from.as_ref()),
            format_compact(*interval),
            set_by(interval_from.as_ref()),
        ),
        Origin::Run { source_container }
        | Origin::Policy {
            source_container: Some(source_container),
            ..
        } => format!(
            "run `{}` in {} (env and mounts of container {source_container:?})",
            shell_words(&argv(c)),
            c.image.as_deref().unwrap_or("(no image)"),
        ),
        Origin::Policy {
            source_container: None,
            ..
        } => format!(
            "run {} in {}",
            match argv(c) {
                words if words.is_empty() => "the image's entrypoint".to_owned(),
                words => format!("`{}`", shell_words(&words)),
            },
            c.image.as_deref().unwrap_or("(no image)"),
        ),
    }
}

/// The annotation, namespace annotation or policy that asked for `step`.
fn from(step: &Step, prefix: &str) -> String {
    let keys = Keys::new(prefix);
    let key = match &step.origin {
        Origin::Wait { .. } => keys.key(Key::WaitFor),
        Origin::Run { .. } => keys.run(&step.container.name),
        Origin::Policy { template: true, .. } => {
            format!("spec.templates, named by {}", keys.key(Key::Steps))
        }
        Origin::Policy { .. } => "spec.steps".to_owned(),
    };
    match &step.source {
        Source::Pod => format!("annotation {key}"),
        Source::Namespace(name) => format!("annotation {key} of namespace {name}"),
        Source::Policy(name) if matches!(step.origin, Origin::Wait { .. }) => {
            format!("InitPolicy {name}, spec.waitFor")
        }
        Source::Policy(name) => format!("InitPolicy {name}, {key}"),
    }
}

/// Who set a wait's timing, when it is not the pod itself or the webhook's default.
fn set_by(source: Option<&Source>) -> String {
    match source {
        Some(Source::Namespace(name)) => format!(" from namespace {name}"),
        Some(Source::Policy(name)) => format!(" from the defaults of InitPolicy {name}"),
        Some(Source::Pod) | None => String::new(),
    }
}

/// The command and its arguments.
fn argv(c: &k8s_openapi::api::core::v1::Container) -> Vec<String> {
    c.command
        .iter()
        .flatten()
        .chain(c.args.iter().flatten())
        .cloned()
        .collect()
}

/// argv as a shell would need it written, so the user sees how their words were split.
fn shell_words(argv: &[String]) -> String {
    shlex::try_join(argv.iter().map(String::as_str)).unwrap_or_else(|_| format!("{argv:?}"))
}

fn init_order(spec: &PodSpec) -> String {
    let names: Vec<&str> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    if names.is_empty() {
        "(none)".to_owned()
    } else {
        names.join(", ")
    }
}
