//! Which policies apply to a pod, in which order, and the namespace's defaults: the
//! snapshot the engine is handed (by the webhook's reflectors, or by `inject --policy`).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use kube::core::{Selector, SelectorExt};

use super::crd::{InitPolicy, InitPolicySpec};
use super::validate;
use crate::engine::annotations::{Key, Keys};

/// A policy that passed validation, ready to match pods.
#[derive(Clone, Debug)]
pub struct Accepted {
    pub name: String,
    pub spec: InitPolicySpec,
    namespaces: Option<Selector>,
    pods: Option<Selector>,
}

/// A policy left out until fixed, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    pub name: String,
    pub problems: Vec<String>,
}

/// The policies in force, in the order they apply (priority, then name), and those left
/// out. Built once per change of the policies, read by every review.
#[derive(Clone, Debug, Default)]
pub struct Policies {
    pub accepted: Vec<Accepted>,
    pub rejected: Vec<Rejected>,
}

impl Policies {
    /// Validates and orders `policies`. A policy whose volume clashes with one that
    /// applies earlier is rejected.
    pub fn new<'a>(policies: impl IntoIterator<Item = &'a InitPolicy>) -> Policies {
        let mut valid: Vec<(String, InitPolicySpec)> = Vec::new();
        let mut rejected = Vec::new();
        for policy in policies {
            let name = policy.metadata.name.clone().unwrap_or_default();
            let problems = validate::problems(&policy.spec);
            if problems.is_empty() {
                valid.push((name, policy.spec.clone()));
            } else {
                rejected.push(Rejected { name, problems });
            }
        }
        valid.sort_by(|(a_name, a), (b_name, b)| {
            a.priority.cmp(&b.priority).then_with(|| a_name.cmp(b_name))
        });
        let clashes = validate::conflicts(valid.iter().map(|(name, spec)| (name.as_str(), spec)));
        let mut accepted = Vec::new();
        for (name, spec) in valid {
            if let Some(problems) = clashes.get(&name) {
                rejected.push(Rejected {
                    name,
                    problems: problems.clone(),
                });
                continue;
            }
            let selector =
                |s: &Option<_>| s.clone().map(|s| Selector::try_from(s).expect("validated"));
            accepted.push(Accepted {
                namespaces: selector(&spec.namespace_selector),
                pods: selector(&spec.pod_selector),
                name,
                spec,
            });
        }
        rejected.sort_by(|a, b| a.name.cmp(&b.name));
        Policies { accepted, rejected }
    }

    /// The policies that select a pod with `pod_labels` in a namespace with
    /// `namespace_labels`, in the order they apply.
    pub fn for_pod<'a>(
        &'a self,
        namespace_labels: &BTreeMap<String, String>,
        pod_labels: &BTreeMap<String, String>,
    ) -> Vec<&'a Accepted> {
        self.accepted
            .iter()
            .filter(|policy| {
                policy
                    .namespaces
                    .as_ref()
                    .is_none_or(|s| s.matches(namespace_labels))
                    && policy.pods.as_ref().is_none_or(|s| s.matches(pod_labels))
            })
            .collect()
    }
}

/// The namespace a pod is created in, as far as the engine cares.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// The label the API server puts on every namespace, with its name as the value.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

impl NamespaceInfo {
    /// A namespace known only by name (offline, or not seen by the watch yet), with the
    /// label the API server gives every namespace.
    pub fn unseen(name: String) -> NamespaceInfo {
        NamespaceInfo {
            labels: BTreeMap::from([(NAMESPACE_NAME_LABEL.to_owned(), name.clone())]),
            annotations: BTreeMap::new(),
            name,
        }
    }
}

/// The pod's annotations with the namespace's `P/` annotations as defaults (for every
/// key, the pod's own value wins; `P/status` is the pod's alone), and the keys that came
/// from the namespace. When the namespace adds none, as for most pods, the pod's own
/// annotations are lent, not copied: with `serve --watch-policies` every review of a
/// pod goes through here.
pub fn with_namespace_defaults<'a>(
    pod: &'a BTreeMap<String, String>,
    namespace: &BTreeMap<String, String>,
    prefix: &str,
) -> (Cow<'a, BTreeMap<String, String>>, BTreeSet<String>) {
    let keys = Keys::new(prefix);
    let added: BTreeSet<String> = namespace
        .keys()
        .filter(|key| keys.owns(key) && !keys.is(key, Key::Status) && !pod.contains_key(*key))
        .cloned()
        .collect();
    if added.is_empty() {
        return (Cow::Borrowed(pod), added);
    }
    let mut merged = pod.clone();
    for key in &added {
        merged.insert(key.clone(), namespace[key].clone());
    }
    (Cow::Owned(merged), added)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
    use kube::api::ObjectMeta;

    use super::*;
    use crate::engine::policy::crd::PolicyVolume;

    fn policy(name: &str, priority: i32, spec: InitPolicySpec) -> InitPolicy {
        InitPolicy {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: InitPolicySpec { priority, ..spec },
            status: None,
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn policies_apply_by_priority_then_name_and_select_by_labels() {
        let prod = LabelSelector {
            match_labels: Some(labels(&[("tier", "prod")])),
            ..Default::default()
        };
        let api = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "app.kubernetes.io/component".into(),
                operator: "In".into(),
                values: Some(vec!["api".into()]),
            }]),
            ..Default::default()
        };
        let all = [
            policy("zeta", 0, InitPolicySpec::default()),
            policy("alpha", 0, InitPolicySpec::default()),
            policy("first", -5, InitPolicySpec::default()),
            policy(
                "prod-only",
                10,
                InitPolicySpec {
                    namespace_selector: Some(prod),
                    ..Default::default()
                },
            ),
            policy(
                "api-only",
                10,
                InitPolicySpec {
                    pod_selector: Some(api),
                    ..Default::default()
                },
            ),
        ];
        let policies = Policies::new(&all);
        let names = |ns: &[(&str, &str)], pod: &[(&str, &str)]| -> Vec<String> {
            policies
                .for_pod(&labels(ns), &labels(pod))
                .into_iter()
                .map(|p| p.name.clone())
                .collect()
        };
        assert_eq!(names(&[], &[]), ["first", "alpha", "zeta"]);
        assert_eq!(
            names(
                &[("tier", "prod")],
                &[("app.kubernetes.io/component", "api")]
            ),
            ["first", "alpha", "zeta", "api-only", "prod-only"]
        );
    }

    #[test]
    fn invalid_and_clashing_policies_are_left_out_with_their_reasons() {
        let volume = |medium: Option<&str>| PolicyVolume {
            name: "cache".into(),
            mount_path: "/cache".into(),
            medium: medium.map(Into::into),
            size_limit: None,
        };
        let all = [
            policy(
                "bad-target",
                0,
                InitPolicySpec {
                    wait_for: vec!["nowhere".into()],
                    ..Default::default()
                },
            ),
            policy(
                "disk",
                0,
                InitPolicySpec {
                    volumes: vec![volume(None)],
                    ..Default::default()
                },
            ),
            policy(
                "memory",
                1,
                InitPolicySpec {
                    volumes: vec![volume(Some("Memory"))],
                    ..Default::default()
                },
            ),
        ];
        let policies = Policies::new(&all);
        let accepted: Vec<&str> = policies.accepted.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(accepted, ["disk"]);
        let rejected: Vec<&str> = policies.rejected.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(rejected, ["bad-target", "memory"]);
    }

    #[test]
    fn the_pods_own_annotation_wins_over_the_namespace() {
        let pod = labels(&[("init.example/wait-timeout", "30s"), ("team", "shop")]);
        let namespace = labels(&[
            ("init.example/wait-timeout", "2m"),
            ("init.example/wait-interval", "5s"),
            ("init.example/status", "{}"),
            ("owner", "platform"),
        ]);
        let (merged, added) = with_namespace_defaults(&pod, &namespace, "init.example");
        assert_eq!(
            *merged,
            labels(&[
                ("init.example/wait-interval", "5s"),
                ("init.example/wait-timeout", "30s"),
                ("team", "shop"),
            ])
        );
        assert_eq!(
            added,
            BTreeSet::from(["init.example/wait-interval".to_owned()])
        );
        assert!(matches!(merged, Cow::Owned(_)));
    }

    /// A namespace that adds nothing (no `P/` key, only the status, or only keys the
    /// pod sets itself) lends the pod's own annotations back.
    #[test]
    fn a_namespace_that_adds_nothing_lends_the_pods_annotations() {
        let pod = labels(&[("init.example/wait-timeout", "30s"), ("team", "shop")]);
        for namespace in [
            labels(&[]),
            labels(&[("owner", "platform"), ("other.example/wait-timeout", "1m")]),
            labels(&[("init.example/status", "{}")]),
            labels(&[("init.example/wait-timeout", "2m")]),
        ] {
            let (merged, added) = with_namespace_defaults(&pod, &namespace, "init.example");
            assert!(matches!(merged, Cow::Borrowed(_)), "{namespace:?}");
            assert_eq!(*merged, pod);
            assert!(added.is_empty(), "{namespace:?}");
        }
    }
}
