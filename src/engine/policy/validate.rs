//! Checks a schema-valid `InitPolicy` for what the schema cannot say. A policy with a
//! problem is reported (its status, a metric, a log line) and left out until fixed; it
//! never stops other pods from being admitted.

use std::collections::BTreeMap;

use kube::core::Selector;

use super::crd::{InitPolicySpec, PolicyStep, PolicyVolume};
use crate::engine::annotations::is_quantity;
use crate::engine::duration;
use crate::engine::names::is_dns1123_label;
use crate::engine::target::WaitTarget;

/// Every problem found in one policy, each naming the field and the value.
pub fn problems(spec: &InitPolicySpec) -> Vec<String> {
    let mut found = Vec::new();
    for (field, selector) in [
        ("namespaceSelector", &spec.namespace_selector),
        ("podSelector", &spec.pod_selector),
    ] {
        if let Some(selector) = selector
            && let Err(err) = Selector::try_from(selector.clone())
        {
            found.push(format!("spec.{field}: {err}"));
        }
    }
    for (index, target) in spec.wait_for.iter().enumerate() {
        if let Err(why) = WaitTarget::parse(target) {
            found.push(format!("spec.waitFor[{index}]: {target:?}: {why}"));
        }
    }
    for (index, volume) in spec.volumes.iter().enumerate() {
        volume_problems(&format!("spec.volumes[{index}]"), volume, &mut found);
    }
    for (list, steps) in [("steps", &spec.steps), ("templates", &spec.templates)] {
        for (index, step) in steps.iter().enumerate() {
            step_problems(&format!("spec.{list}[{index}]"), step, &mut found);
        }
    }
    let mut names: BTreeMap<&str, &str> = BTreeMap::new();
    for (list, steps) in [("steps", &spec.steps), ("templates", &spec.templates)] {
        for step in steps {
            if let Some(first) = names.insert(&step.name, list) {
                found.push(format!(
                    "spec.{list}: the name {:?} is used twice (also in spec.{first})",
                    step.name
                ));
            }
        }
    }
    if let Some(defaults) = &spec.defaults {
        for (field, value) in [
            ("waitTimeout", &defaults.wait_timeout),
            ("waitInterval", &defaults.wait_interval),
        ] {
            if let Some(value) = value
                && let Err(why) = duration::parse_positive(value)
            {
                // The duration error says what was expected.
                found.push(format!("spec.defaults.{field}: {value:?}: {why}"));
            }
        }
    }
    found
}

fn volume_problems(at: &str, volume: &PolicyVolume, found: &mut Vec<String>) {
    if !is_dns1123_label(&volume.name) {
        found.push(format!(
            "{at}.name: {:?} is not a DNS-1123 label (lower-case letters, digits and '-', at most 63)",
            volume.name
        ));
    }
    if !volume.mount_path.starts_with('/') {
        found.push(format!(
            "{at}.mountPath: {:?} is not an absolute path",
            volume.mount_path
        ));
    }
    if let Some(medium) = &volume.medium
        && !medium.is_empty()
        && medium != "Memory"
    {
        found.push(format!(
            "{at}.medium: {medium:?}: expected Memory, or no medium for the node's disk"
        ));
    }
    if let Some(size) = &volume.size_limit
        && !is_quantity(size)
    {
        found.push(format!(
            "{at}.sizeLimit: {size:?}: expected a quantity such as 64Mi"
        ));
    }
}

fn step_problems(at: &str, step: &PolicyStep, found: &mut Vec<String>) {
    if !is_dns1123_label(&step.name) {
        found.push(format!(
            "{at}.name: {:?} is not a DNS-1123 label (lower-case letters, digits and '-', at most 63)",
            step.name
        ));
    }
    let has_command = step.command.as_ref().is_some_and(|c| !c.is_empty());
    if !has_command && step.image.is_none() {
        found.push(format!(
            "{at}: step {:?} has neither a command nor an image; give a command (it runs in the app's image) or an image",
            step.name
        ));
    }
}

/// Conflicts between policies that are each valid: a volume name with different
/// settings. The policy that applies later (by priority, then name) is the one reported.
pub fn conflicts<'a>(
    ordered: impl IntoIterator<Item = (&'a str, &'a InitPolicySpec)>,
) -> BTreeMap<String, Vec<String>> {
    let mut volumes: BTreeMap<&str, (&str, &PolicyVolume)> = BTreeMap::new();
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (policy, spec) in ordered {
        for volume in &spec.volumes {
            match volumes.get(volume.name.as_str()) {
                Some((first, theirs)) if *theirs != volume => {
                    found.entry(policy.to_owned()).or_default().push(format!(
                        "spec.volumes: volume {:?} differs from the one InitPolicy {first} defines \
                         (mountPath, medium or sizeLimit); give it another name or the same settings",
                        volume.name
                    ));
                }
                Some(_) => {}
                None => {
                    volumes.insert(&volume.name, (policy, volume));
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::policy::crd::PolicyDefaults;

    fn step(name: &str, command: Option<&[&str]>, image: Option<&str>) -> PolicyStep {
        PolicyStep {
            name: name.into(),
            command: command.map(|c| c.iter().map(|s| s.to_string()).collect()),
            image: image.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn a_good_policy_has_no_problems() {
        let spec = InitPolicySpec {
            wait_for: vec!["vault.security.svc:8200".into()],
            volumes: vec![PolicyVolume {
                name: "secrets".into(),
                mount_path: "/secrets".into(),
                medium: Some("Memory".into()),
                size_limit: Some("16Mi".into()),
            }],
            steps: vec![step("fetch", Some(&["fetch-secrets"]), None)],
            templates: vec![step(
                "verify-deps",
                None,
                Some("registry.example.com/verify:1"),
            )],
            ..Default::default()
        };
        assert_eq!(problems(&spec), Vec::<String>::new());
    }

    #[test]
    fn every_problem_names_its_field_and_value() {
        let spec = InitPolicySpec {
            wait_for: vec!["vault".into()],
            volumes: vec![PolicyVolume {
                name: "Secrets".into(),
                mount_path: "secrets".into(),
                medium: Some("memory".into()),
                size_limit: Some("lots".into()),
            }],
            steps: vec![step("noop", None, None)],
            templates: vec![step("noop", Some(&["true"]), None)],
            defaults: Some(PolicyDefaults {
                wait_timeout: Some("-1m".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let found = problems(&spec);
        let expected = [
            "spec.waitFor[0]: \"vault\"",
            "spec.volumes[0].name: \"Secrets\"",
            "spec.volumes[0].mountPath: \"secrets\" is not an absolute path",
            "spec.volumes[0].medium: \"memory\": expected Memory",
            "spec.volumes[0].sizeLimit: \"lots\"",
            "spec.steps[0]: step \"noop\" has neither a command nor an image",
            "spec.templates: the name \"noop\" is used twice (also in spec.steps)",
            "spec.defaults.waitTimeout: \"-1m\": expected a positive duration such as 90s or 5m, but it is negative",
        ];
        assert_eq!(found.len(), expected.len(), "{found:#?}");
        for (got, want) in found.iter().zip(expected) {
            assert!(
                got.starts_with(want),
                "{got:?} does not start with {want:?}"
            );
        }
    }

    #[test]
    fn the_later_policy_is_blamed_for_a_volume_clash() {
        let volume = |medium: Option<&str>| PolicyVolume {
            name: "cache".into(),
            mount_path: "/cache".into(),
            medium: medium.map(Into::into),
            size_limit: None,
        };
        let a = InitPolicySpec {
            volumes: vec![volume(None)],
            ..Default::default()
        };
        let b = InitPolicySpec {
            volumes: vec![volume(Some("Memory"))],
            ..Default::default()
        };
        let same = InitPolicySpec {
            volumes: vec![volume(None)],
            ..Default::default()
        };
        let found = conflicts([("a", &a), ("b", &b), ("c", &same)]);
        assert_eq!(found.keys().collect::<Vec<_>>(), ["b"]);
        assert!(found["b"][0].contains("differs from the one InitPolicy a defines"));
    }
}
