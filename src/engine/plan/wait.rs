//! Wait steps: one init container per `P/wait-for` target, running `init-injector wait`
//! in the injector's own image with the restricted securityContext.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, SeccompProfile, SecurityContext, VolumeMount,
};

use super::{Origin, Planner, Rule, Step};
use crate::engine::annotations::{AnnotationError, Key};
use crate::engine::config::IMAGE_BINARY_PATH;
use crate::engine::duration::format_compact;
use crate::engine::names::unique_label;
use crate::engine::source::Source;
use crate::engine::target::WaitTarget;

impl Planner<'_> {
    /// Appends the wait steps: the policies' targets in the order the policies apply, then the
    /// pod's in the order they were written.
    pub(super) fn wait_steps(&mut self, mounts: &[VolumeMount], steps: &mut Vec<Step>) {
        let (timeout, timeout_from) = self.timing(
            Key::WaitTimeout,
            self.directives.wait_timeout,
            self.applied.wait_timeout,
            self.config.default_timeout,
        );
        let (interval, interval_from) = self.timing(
            Key::WaitInterval,
            self.directives.wait_interval,
            self.applied.wait_interval,
            self.config.default_interval,
        );
        let timing_from = [timeout_from, interval_from];
        let (timeout_arg, interval_arg) = (format_compact(timeout), format_compact(interval));
        let policy_waits: Vec<(&WaitTarget, Source)> = self
            .applied
            .waits
            .iter()
            .map(|(target, policy)| (target, Source::Policy((*policy).to_owned())))
            .collect();
        let pod_source = self.source_of_key(|| self.keys.key(Key::WaitFor));
        let pod_waits: Vec<(&WaitTarget, Source)> = self
            .pod_waits
            .iter()
            .map(|target| (*target, pod_source.clone()))
            .collect();
        let (policy_count, pod_count) = (policy_waits.len(), pod_waits.len());
        let shared = (policy_count + pod_count > 0).then(|| Arc::new(self.wait_shared(mounts)));
        for (index, (target, source)) in policy_waits.into_iter().chain(pod_waits).enumerate() {
            let rule = match &source {
                Source::Policy(_) => Rule::PolicyWait,
                _ => Rule::PodWait {
                    index: index + 1 - policy_count,
                    of: pod_count,
                    after_policies: policy_count > 0,
                },
            };
            // The target's text names the step too: sanitizing makes `postgres:5432`
            // `postgres-5432` and `https://vault/health` `https-vault-health`.
            let seed = target.to_string();
            let name = unique_label("wait-for", &seed, &seed, |name| {
                self.taken.contains_key(name)
            });
            if self.pod_names.contains(name.as_str()) {
                let message = format!(
                    "the pod already has a container named {name:?}; remove the hand-written wait step or this target"
                );
                match &source {
                    Source::Policy(policy) => self.errors.push(AnnotationError::policy(
                        policy,
                        "spec.waitFor",
                        seed.clone(),
                        message,
                    )),
                    _ => self.annotation_error(self.keys.key(Key::WaitFor), seed.clone(), message),
                }
            }
            self.take(&name, "an injected wait step");
            let args = WaitArgs {
                timeout: &timeout_arg,
                interval: &interval_arg,
                step_label: format!("{}/{}", index + 1, self.total),
                target: seed,
            };
            steps.push(Step {
                container: wait_container(name, args),
                env_of: None,
                shared: shared.clone(),
                origin: Origin::Wait {
                    target: target.clone(),
                    timeout,
                    interval,
                    timing_from: timing_from.clone(),
                },
                source,
                rule,
            });
        }
    }

    /// A wait setting by precedence: the annotation (the pod's, else its namespace's),
    /// then the policies' defaults, then the webhook's; and who set it.
    fn timing(
        &self,
        key: Key,
        annotation: Option<Duration>,
        policy: Option<(Duration, &str)>,
        default: Duration,
    ) -> (Duration, Option<Source>) {
        match (annotation, policy) {
            (Some(value), _) => (value, Some(self.source_of(&self.keys.key(key)))),
            (None, Some((value, policy))) => (value, Some(Source::Policy(policy.to_owned()))),
            (None, None) => (default, None),
        }
    }

    /// What every wait step of a plan has in common ([`Step::shared`]).
    fn wait_shared(&self, mounts: &[VolumeMount]) -> Container {
        Container {
            image: Some(self.config.wait_image.clone()),
            command: Some(vec![IMAGE_BINARY_PATH.to_owned(), "wait".to_owned()]),
            resources: Some(self.wait_resources()),
            security_context: Some(restricted_security_context()),
            volume_mounts: (!mounts.is_empty()).then(|| mounts.to_vec()),
            ..Default::default()
        }
    }
}

/// What is a wait step's own: its name and what `init-injector wait` is told. The rest
/// is [`Planner::wait_shared`].
fn wait_container(name: String, args: WaitArgs<'_>) -> Container {
    Container {
        name,
        args: Some(vec![
            "--timeout".to_owned(),
            args.timeout.to_owned(),
            "--interval".to_owned(),
            args.interval.to_owned(),
            "--step".to_owned(),
            args.step_label,
            args.target,
        ]),
        ..Default::default()
    }
}

/// What one wait step's `init-injector wait` is told.
struct WaitArgs<'a> {
    /// The target as `init-injector wait` reads it.
    target: String,
    /// `--timeout` and `--interval`, the same for every wait step of a plan and
    /// formatted once for all of them.
    timeout: &'a str,
    interval: &'a str,
    /// `I/N`: the step's place in the block.
    step_label: String,
}

/// The securityContext that passes Pod Security "restricted".
pub fn restricted_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            ..Default::default()
        }),
        privileged: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    }
}
