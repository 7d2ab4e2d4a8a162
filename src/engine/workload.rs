//! Where pods live inside Kubernetes objects: a Pod itself, the pod template of a
//! workload, the job template of a CronJob, and every item of a List. Works on untyped
//! JSON so that objects keep fields and field order this version does not know.

use jsonptr::PointerBuf;
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde_json::Value;

use crate::engine::annotations::Keys;
use crate::engine::config::EngineConfig;
use crate::engine::names::object_name;
use crate::engine::{self, Invalid, Outcome, PodContext, Scope};

/// One pod template inside a document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    /// Where the template's `metadata` and `spec` are.
    pub root: PointerBuf,
    /// `Kind namespace/name` of the object that holds it, for messages.
    pub owner: String,
    /// The `metadata.namespace` of that object, when set.
    pub namespace: Option<String>,
}

/// Why a template could not be mutated.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The annotations are wrong.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The object is not a valid pod template.
    #[error("{field} is not valid")]
    Malformed {
        field: String,
        #[source]
        source: serde_json::Error,
    },
    /// The template carries annotations that ask for injection but has no `spec`: there
    /// is nothing to add the steps to (the webhook refuses such a pod the same way).
    #[error(
        "{field} is missing: a pod template with init-injector annotations needs a spec with its containers"
    )]
    NoSpec { field: String },
}

/// The path from an object's root to its pod template, by API group/version and kind.
fn template_path(api_version: &str, kind: &str) -> Option<&'static [&'static str]> {
    match (api_version, kind) {
        ("v1", "Pod") => Some(&[]),
        ("v1", "ReplicationController")
        | ("apps/v1", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        | ("batch/v1", "Job") => Some(&["spec", "template"]),
        ("batch/v1", "CronJob") => Some(&["spec", "jobTemplate", "spec", "template"]),
        _ => None,
    }
}

/// Every pod template in `doc`, in document order.
pub fn templates(doc: &Value) -> Vec<Template> {
    objects(doc)
        .into_iter()
        .filter_map(|(at, object)| template_of(object, at))
        .collect()
}

/// Every object in `doc`, with where it sits: the items of a list in their place.
fn objects(doc: &Value) -> Vec<(PointerBuf, &Value)> {
    fn walk<'a>(doc: &'a Value, at: PointerBuf, found: &mut Vec<(PointerBuf, &'a Value)>) {
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
        if kind == "List"
            || (kind.ends_with("List") && doc.get("items").is_some_and(Value::is_array))
        {
            for (index, item) in doc["items"].as_array().into_iter().flatten().enumerate() {
                let mut path = at.clone();
                path.push_back("items");
                path.push_back(index.to_string());
                walk(item, path, found);
            }
        } else {
            found.push((at, doc));
        }
    }
    let mut found = Vec::new();
    walk(doc, PointerBuf::new(), &mut found);
    found
}

fn text<'a>(object: &'a Value, pointer: &str) -> Option<&'a str> {
    object.pointer(pointer).and_then(Value::as_str)
}

/// The pod template of `object` at `at`, if its kind has one.
fn template_of(object: &Value, at: PointerBuf) -> Option<Template> {
    let kind = text(object, "/kind").unwrap_or_default();
    let path = template_path(text(object, "/apiVersion").unwrap_or_default(), kind)?;
    let name = object_name(
        text(object, "/metadata/name"),
        text(object, "/metadata/generateName"),
    )
    .unwrap_or_else(|| "(unnamed)".to_owned());
    let owner = match text(object, "/metadata/namespace") {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    };
    let mut root = at;
    for token in path {
        root.push_back(*token);
    }
    let namespace = text(object, "/metadata/namespace").map(str::to_owned);
    Some(Template {
        root,
        owner,
        namespace,
    })
}

/// An object that carries annotations under the prefix in a kind (or an API version)
/// that has no known pod template, so `inject` leaves it as it is and says so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unhandled {
    /// `Kind name (apiVersion)`.
    pub object: String,
    /// Where the annotations are, as a JSON pointer.
    pub at: String,
}

/// Objects in `doc` (and in the items of its lists) that `templates` skips although they
/// carry annotations under the prefix of `keys`.
pub fn unhandled(doc: &Value, keys: &Keys<'_>) -> Vec<Unhandled> {
    objects(doc)
        .into_iter()
        .filter(|(_, object)| template_of(object, PointerBuf::new()).is_none())
        .filter_map(|(_, object)| {
            let at = annotated_at(object, keys, &mut PointerBuf::new())?;
            let name = object_name(
                text(object, "/metadata/name"),
                text(object, "/metadata/generateName"),
            )
            .unwrap_or_else(|| "(unnamed)".to_owned());
            Some(Unhandled {
                object: format!(
                    "{} {name} ({})",
                    text(object, "/kind").unwrap_or_default(),
                    text(object, "/apiVersion").unwrap_or_default()
                ),
                at: at.to_string(),
            })
        })
        .collect()
}

/// The first `annotations` map below `value` with a key under the prefix of `keys`.
fn annotated_at(value: &Value, keys: &Keys<'_>, at: &mut PointerBuf) -> Option<PointerBuf> {
    match value {
        Value::Object(fields) => {
            for (key, child) in fields {
                at.push_back(key);
                let hit = key == "annotations"
                    && child
                        .as_object()
                        .is_some_and(|map| map.keys().any(|key| keys.owns(key)));
                let found = if hit {
                    Some(at.clone())
                } else {
                    annotated_at(child, keys, at)
                };
                at.pop_back();
                if found.is_some() {
                    return found;
                }
            }
            None
        }
        Value::Array(items) => items.iter().enumerate().find_map(|(index, item)| {
            at.push_back(index.to_string());
            let found = annotated_at(item, keys, at);
            at.pop_back();
            found
        }),
        _ => None,
    }
}

/// Runs the engine on the template at `template.root` in `doc`, with the namespace and
/// policies of `scope` when given.
pub fn plan_template(
    doc: &Value,
    template: &Template,
    config: &EngineConfig,
    scope: Option<Scope<'_>>,
) -> Result<(Outcome, PodSpec), TemplateError> {
    let node = template.root.resolve(doc).ok();
    let field = |name: &str| node.and_then(|n| n.get(name));
    let malformed = |name: &str, source| TemplateError::Malformed {
        field: format!("{}/{name}", template.root),
        source,
    };
    let meta = match field("metadata") {
        Some(value) => ObjectMeta::deserialize(value).map_err(|e| malformed("metadata", e))?,
        None => ObjectMeta::default(),
    };
    let spec = match field("spec") {
        Some(value) => PodSpec::deserialize(value).map_err(|e| malformed("spec", e))?,
        None => PodSpec::default(),
    };
    let mut pod = PodContext::new(&meta, &spec, config).at(&template.root);
    if let Some(scope) = scope {
        pod = pod.in_scope(scope.namespace, scope.policies);
    }
    let outcome = engine::plan_injection(&pod)?;
    if field("spec").is_none() && matches!(outcome, Outcome::Injected(_)) {
        return Err(TemplateError::NoSpec {
            field: format!("{}/spec", template.root),
        });
    }
    Ok((outcome, spec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_templates_by_kind() {
        let doc = json!({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"}},
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}},
            {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"generateName": "c-"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}},
            {"apiVersion": "example.com/v1", "kind": "Deployment", "metadata": {"name": "crd"}},
            {"apiVersion": "v1", "kind": "PodList", "items": [{"apiVersion": "v1", "kind": "Pod"}]},
        ]});
        let found: Vec<(String, String)> = templates(&doc)
            .into_iter()
            .map(|t| (t.root.to_string(), t.owner))
            .collect();
        assert_eq!(
            found,
            [
                ("/items/0".to_owned(), "Pod ns/p".to_owned()),
                (
                    "/items/1/spec/template".to_owned(),
                    "Deployment d".to_owned()
                ),
                (
                    "/items/2/spec/jobTemplate/spec/template".to_owned(),
                    "CronJob c-*".to_owned()
                ),
                ("/items/5/items/0".to_owned(), "Pod (unnamed)".to_owned()),
            ]
        );
    }

    #[test]
    fn annotated_objects_of_unknown_kinds_are_found() {
        let doc = json!({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "apps/v1beta1", "kind": "Deployment", "metadata": {"name": "old"},
             "spec": {"template": {"metadata": {"annotations": {"init.example/wait-for": "db:1"}}}}},
            {"apiVersion": "apps.openshift.io/v1", "kind": "DeploymentConfig", "metadata": {"name": "dc"},
             "spec": {"template": {"metadata": {"annotations": {"team": "x"}}}}},
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "known"},
             "spec": {"template": {"metadata": {"annotations": {"init.example/wait-for": "db:1"}}}}},
        ]});
        assert_eq!(
            unhandled(&doc, &Keys::new("init.example")),
            [Unhandled {
                object: "Deployment old (apps/v1beta1)".into(),
                at: "/spec/template/metadata/annotations".into(),
            }]
        );
    }

    #[test]
    fn an_annotated_template_without_a_spec_is_reported_not_patched() {
        let doc = json!({"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {
            "metadata": {"annotations": {"init.example/wait-for": "db:5432"}}}}});
        let template = &templates(&doc)[0];
        let err = plan_template(&doc, template, &EngineConfig::default(), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/spec/template/spec is missing: a pod template with init-injector annotations needs a spec with its containers"
        );
        // Without our annotations the same template is simply left alone.
        let plain = json!({"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {
            "metadata": {"labels": {"app": "x"}}}}});
        let template = &templates(&plain)[0];
        assert!(matches!(
            plan_template(&plain, template, &EngineConfig::default(), None),
            Ok((Outcome::Skipped(_), _))
        ));
    }

    #[test]
    fn malformed_spec_is_reported_with_its_path() {
        let doc = json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": {
            "metadata": {"annotations": {"init.example/wait-for": "db:1"}},
            "spec": {"containers": "not-a-list"}}}});
        let template = &templates(&doc)[0];
        let err = plan_template(&doc, template, &EngineConfig::default(), None).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/spec/template/spec is not valid"),
            "{err}"
        );
    }
}
