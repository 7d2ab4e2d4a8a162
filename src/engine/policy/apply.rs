//! What the policies that select one pod add to its injection, merged in the order they
//! apply: their waits, volumes and steps in that order, their templates and defaults with
//! a later policy's value replacing an earlier one's.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ResourceRequirements;

use super::crd::{PolicyStep, PolicyVolume};
use super::select::Accepted;
use crate::engine::duration;
use crate::engine::target::WaitTarget;

/// The merged contribution of the policies that select a pod.
#[derive(Clone, Debug, Default)]
pub struct Applied<'a> {
    /// The policies that select the pod, in the order they apply.
    pub names: Vec<&'a str>,
    /// Targets to wait for, each once, with the policy that asked first.
    pub waits: Vec<(WaitTarget, &'a str)>,
    /// Volumes, each name once (policies that disagree on one are rejected beforehand).
    pub volumes: Vec<(&'a PolicyVolume, &'a str)>,
    /// Steps for every selected pod, in the order they run.
    pub steps: Vec<(&'a PolicyStep, &'a str)>,
    /// Steps a pod runs when its `P/steps` names them, by name.
    pub templates: BTreeMap<&'a str, (&'a PolicyStep, &'a str)>,
    pub wait_timeout: Option<(Duration, &'a str)>,
    pub wait_interval: Option<(Duration, &'a str)>,
    pub wait_resources: Option<(&'a ResourceRequirements, &'a str)>,
    /// The selecting policies with `enforce: true`.
    pub enforced: Vec<&'a str>,
}

impl<'a> Applied<'a> {
    /// Merges `selected` (in the order they apply).
    pub fn of(selected: &[&'a Accepted]) -> Applied<'a> {
        let mut applied = Applied::default();
        for policy in selected {
            applied.add(policy);
        }
        applied
    }

    fn add(&mut self, policy: &'a Accepted) {
        let name = policy.name.as_str();
        let spec = &policy.spec;
        self.names.push(name);
        if spec.enforce {
            self.enforced.push(name);
        }
        // Validation parsed every value before the policy was accepted.
        for target in spec
            .wait_for
            .iter()
            .filter_map(|t| WaitTarget::parse(t).ok())
        {
            if !self.waits.iter().any(|(seen, _)| *seen == target) {
                self.waits.push((target, name));
            }
        }
        for volume in &spec.volumes {
            if !self
                .volumes
                .iter()
                .any(|(seen, _)| seen.name == volume.name)
            {
                self.volumes.push((volume, name));
            }
        }
        self.steps
            .extend(spec.steps.iter().map(|step| (step, name)));
        for template in &spec.templates {
            self.templates
                .insert(template.name.as_str(), (template, name));
        }
        if let Some(defaults) = &spec.defaults {
            let parse = |value: &Option<String>| {
                value
                    .as_deref()
                    .and_then(|v| duration::parse_positive(v).ok())
                    .map(|d| (d, name))
            };
            self.wait_timeout = parse(&defaults.wait_timeout).or(self.wait_timeout);
            self.wait_interval = parse(&defaults.wait_interval).or(self.wait_interval);
            if let Some(resources) = &defaults.resources {
                self.wait_resources = Some((resources, name));
            }
        }
    }

    /// Whether the policies inject anything by themselves (templates only run when a
    /// pod names them; defaults only shape what is injected anyway).
    pub fn injects(&self) -> bool {
        !self.waits.is_empty() || !self.volumes.is_empty() || !self.steps.is_empty()
    }

    /// The names of the policies as owned strings, for the status.
    pub fn owned_names(&self) -> Vec<String> {
        self.names.iter().map(|name| (*name).to_owned()).collect()
    }
}
