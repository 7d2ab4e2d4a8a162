//! Turns "the pod as it came" and "the pod as planned" into a JSON Patch that touches only
//! what the engine owns: injected init containers, volumes, volume mounts and the status
//! annotation. The pod's own list elements are never replaced, so the patch is small and
//! stays correct whatever else the list holds.

use std::collections::BTreeMap;

use json_patch::{AddOperation, PatchOperation, RemoveOperation, ReplaceOperation};
use jsonptr::PointerBuf;
use k8s_openapi::api::core::v1::PodSpec;
use serde::Serialize;

/// Appends `token` to a copy of `base`.
fn child(base: &PointerBuf, token: &str) -> PointerBuf {
    let mut path = base.clone();
    path.push_back(token);
    path
}

/// Serializes an API object with its `name` first, where a person reading the
/// manifest looks for it (the API types themselves serialize fields alphabetically).
fn to_value<T: Serialize>(value: &T) -> serde_json::Value {
    name_first(serde_json::to_value(value).expect("Kubernetes API types always serialize"))
}

fn name_first(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Array(items) => items.into_iter().map(name_first).collect(),
        serde_json::Value::Object(mut fields) if fields.contains_key("name") => {
            let mut ordered = serde_json::Map::with_capacity(fields.len());
            if let Some(name) = fields.shift_remove("name") {
                ordered.insert("name".to_owned(), name);
            }
            ordered.extend(fields);
            serde_json::Value::Object(ordered)
        }
        other => other,
    }
}

/// Ops that turn list `old` into list `new`, where both are the same list of the pod's own
/// elements interleaved with elements that `is_ours` claims. Ours are removed from the
/// back (so indices stay valid), then the new ones are added front to back at their final
/// indices. When ours already stand where they should, no op is emitted.
fn list_ops<T: Serialize + PartialEq>(
    ops: &mut Vec<PatchOperation>,
    path: &PointerBuf,
    old: Option<&Vec<T>>,
    new: Option<&Vec<T>>,
    is_ours: impl Fn(&T) -> bool,
) {
    let indices = |list: Option<&Vec<T>>| -> Vec<usize> {
        list.into_iter()
            .flatten()
            .enumerate()
            .filter(|(_, item)| is_ours(item))
            .map(|(i, _)| i)
            .collect()
    };
    let (old_ours, new_ours) = (indices(old), indices(new));
    let unchanged = match (old, new) {
        (Some(old), Some(new)) => {
            old_ours == new_ours && old_ours.iter().all(|&i| old[i] == new[i])
        }
        (None, None) => true,
        _ => false,
    };
    if unchanged {
        return;
    }
    if old.is_none() {
        if let Some(new_list) = new {
            ops.push(PatchOperation::Add(AddOperation {
                path: path.clone(),
                value: to_value(new_list),
            }));
        }
        return;
    }
    for i in old_ours.iter().rev() {
        ops.push(PatchOperation::Remove(RemoveOperation {
            path: child(path, &i.to_string()),
        }));
    }
    if let Some(new_list) = new {
        for &i in &new_ours {
            ops.push(PatchOperation::Add(AddOperation {
                path: child(path, &i.to_string()),
                value: to_value(&new_list[i]),
            }));
        }
    }
}

/// What the engine owns in a pod, by name.
pub struct Owned<'a> {
    pub init_containers: &'a [&'a str],
    pub volumes: &'a [&'a str],
}

/// The JSON Patch from `(old_annotations, old)` to `(new_annotations, new)`, with paths
/// under `root` (empty for a Pod, `/spec/template` for a Deployment, …).
pub fn diff(
    root: &PointerBuf,
    old_annotations: Option<&BTreeMap<String, String>>,
    old: &PodSpec,
    status_key: &str,
    new_status: Option<&str>,
    new: &PodSpec,
    owned: &Owned<'_>,
) -> Vec<PatchOperation> {
    let mut ops = Vec::new();
    let spec = child(root, "spec");
    list_ops(
        &mut ops,
        &child(&spec, "initContainers"),
        old.init_containers.as_ref(),
        new.init_containers.as_ref(),
        |c| owned.init_containers.contains(&c.name.as_str()),
    );
    let volume_is_ours = |name: &str| owned.volumes.contains(&name);
    list_ops(
        &mut ops,
        &child(&spec, "volumes"),
        old.volumes.as_ref(),
        new.volumes.as_ref(),
        |v| volume_is_ours(&v.name),
    );
    let containers = child(&spec, "containers");
    for (index, (old_c, new_c)) in old.containers.iter().zip(&new.containers).enumerate() {
        let path = child(&child(&containers, &index.to_string()), "volumeMounts");
        list_ops(
            &mut ops,
            &path,
            old_c.volume_mounts.as_ref(),
            new_c.volume_mounts.as_ref(),
            |m| volume_is_ours(&m.name),
        );
    }

    let metadata = child(root, "metadata");
    let old_status = old_annotations.and_then(|a| a.get(status_key));
    let status_path = child(&child(&metadata, "annotations"), status_key);
    match (old_status, new_status) {
        (Some(old), Some(new)) if old == new => {}
        (Some(_), Some(new)) => ops.push(PatchOperation::Replace(ReplaceOperation {
            path: status_path,
            value: new.into(),
        })),
        (None, Some(new)) if old_annotations.is_none() => {
            ops.push(PatchOperation::Add(AddOperation {
                path: child(&metadata, "annotations"),
                value: serde_json::json!({ status_key: new }),
            }))
        }
        (None, Some(new)) => ops.push(PatchOperation::Add(AddOperation {
            path: status_path,
            value: new.into(),
        })),
        (Some(_), None) => ops.push(PatchOperation::Remove(RemoveOperation {
            path: status_path,
        })),
        (None, None) => {}
    }
    ops
}
