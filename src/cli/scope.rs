//! `inject --policy/--namespace/--namespace-label/--namespace-annotation`: the InitPolicy
//! documents and the namespace that `inject` hands the engine, so that a pipeline
//! previews exactly what the webhook decides in the cluster (one code path decides for
//! both: [`crate::engine::plan_injection`] with a [`Scope`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use clap::Args;
use serde::Deserialize;
use serde_json::Value;

use super::input::{InputError, read_inputs, split_documents};
use crate::engine::Scope;
use crate::engine::policy::crd::InitPolicy;
use crate::engine::policy::select::{NAMESPACE_NAME_LABEL, NamespaceInfo, Policies};
use crate::webhook::admission::PolicySource;

/// The namespace a manifest without `metadata.namespace` lands in, as with kubectl.
pub const DEFAULT_NAMESPACE: &str = "default";

#[derive(Debug, Clone, Default, Args)]
pub struct ScopeArgs {
    /// InitPolicy documents (YAML, multi-document) to apply as the webhook would
    /// (repeatable; - for standard input). A policy the webhook would leave out is an
    /// error here.
    #[arg(long = "policy", value_name = "FILE")]
    pub policies: Vec<String>,
    /// The namespace of objects without metadata.namespace [default: default]; the
    /// --namespace-label and --namespace-annotation flags describe this namespace.
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// A label of that namespace, as policy namespaceSelectors see it (repeatable).
    /// kubernetes.io/metadata.name=NS is always there, as the API server sets it.
    #[arg(long = "namespace-label", value_name = "KEY=VALUE", value_parser = parse_pair)]
    pub namespace_labels: Vec<(String, String)>,
    /// An annotation of that namespace: its PREFIX/ annotations are defaults for its
    /// pods, the pod's own annotation winning (repeatable).
    #[arg(long = "namespace-annotation", value_name = "KEY=VALUE", value_parser = parse_pair)]
    pub namespace_annotations: Vec<(String, String)>,
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!("{text:?}: expected KEY=VALUE")),
    }
}

/// What the engine is handed offline: the policies, and the namespace the flags describe.
#[derive(Debug, Default)]
pub struct Offline {
    pub policies: Arc<Policies>,
    /// The namespace --namespace names (or `default`), with the flags' labels and
    /// annotations.
    pub namespace: NamespaceInfo,
    /// Whether the flags said anything about the namespace beyond its name.
    described: bool,
}

impl Offline {
    /// No policies, the `default` namespace as the API server would show it.
    pub fn none() -> Offline {
        Offline {
            namespace: NamespaceInfo::unseen(DEFAULT_NAMESPACE.to_owned()),
            ..Offline::default()
        }
    }

    /// The namespace an object in `namespace` (`None`: not set) is created in, and a
    /// warning when the flags describe another one.
    pub fn namespace_of(&self, namespace: Option<&str>) -> (NamespaceInfo, Option<String>) {
        match namespace {
            Some(name) if name != self.namespace.name => {
                let warning = self.described.then(|| {
                    format!(
                        "the object is in namespace {name}, not {}: the --namespace-label and --namespace-annotation flags do not apply to it",
                        self.namespace.name
                    )
                });
                (NamespaceInfo::unseen(name.to_owned()), warning)
            }
            _ => (self.namespace.clone(), None),
        }
    }

    pub fn scope<'a>(&'a self, namespace: &'a NamespaceInfo) -> Scope<'a> {
        Scope {
            namespace,
            policies: &self.policies,
        }
    }
}

/// The flags' policies and namespace as the webhook's reflectors would hand them to a
/// review: for `examples/review_loop.rs`, which answers reviews as `serve` does.
impl PolicySource for Offline {
    fn policies(&self) -> Arc<Policies> {
        self.policies.clone()
    }

    fn namespace(&self, name: &str) -> Option<NamespaceInfo> {
        (name == self.namespace.name).then(|| self.namespace.clone())
    }
}

impl ScopeArgs {
    /// Reads the policy files and checks each policy; every problem is returned, each
    /// naming the file, the document and the policy.
    pub fn load(self) -> Result<Offline, Vec<String>> {
        let inputs = read_inputs(&self.policies)
            .map_err(|err: InputError| vec![format!("--policy: {}", crate::error::chain(&err))])?;
        let (documents, mut errors) = policy_documents(&inputs);
        let policies = Policies::new(&documents);
        for rejected in &policies.rejected {
            for problem in &rejected.problems {
                errors.push(format!(
                    "InitPolicy {}: {problem} (the webhook would leave this policy out until it is fixed)",
                    rejected.name
                ));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let name = self
            .namespace
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        let described = !self.namespace_labels.is_empty() || !self.namespace_annotations.is_empty();
        let mut namespace = NamespaceInfo::unseen(name);
        namespace.labels.extend(self.namespace_labels);
        namespace
            .labels
            .insert(NAMESPACE_NAME_LABEL.to_owned(), namespace.name.clone());
        namespace.annotations = BTreeMap::from_iter(self.namespace_annotations);
        Ok(Offline {
            policies: Arc::new(policies),
            namespace,
            described,
        })
    }
}

/// Every InitPolicy in the inputs; anything else is an error naming where it is.
fn policy_documents(inputs: &[(String, String)]) -> (Vec<InitPolicy>, Vec<String>) {
    let mut policies = Vec::new();
    let mut errors = Vec::new();
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for (source, text) in inputs {
        for (index, document) in split_documents(text).into_iter().enumerate() {
            let place = format!(
                "--policy {source}: document {} (line {})",
                index + 1,
                document.first_line
            );
            let value: Value = match serde_yaml_ng::from_str(document.text) {
                Ok(Value::Null) => continue,
                Ok(value) => value,
                Err(err) => {
                    errors.push(format!("{place}: not YAML: {err}"));
                    continue;
                }
            };
            let api_version = value.get("apiVersion").and_then(Value::as_str);
            let kind = value.get("kind").and_then(Value::as_str);
            if (api_version, kind) != (Some("init.example/v1alpha1"), Some("InitPolicy")) {
                errors.push(format!(
                    "{place}: expected apiVersion init.example/v1alpha1 and kind InitPolicy, got {} {}",
                    api_version.unwrap_or("(none)"),
                    kind.unwrap_or("(none)")
                ));
                continue;
            }
            match InitPolicy::deserialize(&value) {
                Ok(policy) => {
                    let Some(name) = policy.metadata.name.clone().filter(|n| !n.is_empty()) else {
                        errors.push(format!("{place}: the InitPolicy has no metadata.name"));
                        continue;
                    };
                    if let Some(first) = names.insert(name.clone(), place.clone()) {
                        errors.push(format!(
                            "{place}: InitPolicy {name} is defined twice (first in {first})"
                        ));
                        continue;
                    }
                    policies.push(policy);
                }
                Err(err) => errors.push(format!("{place}: not a valid InitPolicy: {err}")),
            }
        }
    }
    (policies, errors)
}
