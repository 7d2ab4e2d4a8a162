//! Where the injected block goes among the pod's own init containers (ordering rule 3).

use k8s_openapi::api::core::v1::Container;

use super::Planner;
use crate::engine::annotations::{AnnotationError, Key, Position};

impl Planner<'_> {
    /// The index of the block and the rule behind it; an unknown anchor is a mistake.
    pub(super) fn placement(&mut self) -> (usize, String) {
        let position = &self.directives.position;
        match place(
            position,
            self.spec.init_containers.as_deref().unwrap_or_default(),
        ) {
            Ok(place) => place,
            Err(error) => {
                self.errors.push(AnnotationError::new(
                    self.keys.key(Key::Position),
                    position.to_string(),
                    error.to_string(),
                ));
                (0, String::new())
            }
        }
    }
}

/// A `before:NAME` or `after:NAME` whose NAME is not one of the pod's init containers.
#[derive(Debug, thiserror::Error)]
enum PlacementError {
    /// The pod has no init containers at all.
    #[error("the pod has no init container named {name:?} (it has none of its own)")]
    NoInitContainers { name: String },
    /// The pod has init containers, none of that name.
    #[error("the pod has no init container named {name:?}; expected one of: {}", own.join(", "))]
    UnknownAnchor { name: String, own: Vec<String> },
}

fn place(position: &Position, own: &[Container]) -> Result<(usize, String), PlacementError> {
    let find = |name: &str| {
        own.iter().position(|c| c.name == name).ok_or_else(|| {
            let name = name.to_owned();
            if own.is_empty() {
                PlacementError::NoInitContainers { name }
            } else {
                let own = own.iter().map(|c| c.name.clone()).collect();
                PlacementError::UnknownAnchor { name, own }
            }
        })
    };
    Ok(match position {
        // Right after the last native sidecar: the steps then see the network the app
        // will see (a mesh proxy is already running), and they still run before the
        // legacy iptables init containers that mesh injectors append at the end.
        Position::First => match own.iter().rposition(is_native_sidecar) {
            Some(i) => (
                i + 1,
                format!(
                    "rule 3: first, right after native sidecar {:?}",
                    own[i].name
                ),
            ),
            None => (
                0,
                "rule 3: first, at the front (the pod has no native sidecar)".to_owned(),
            ),
        },
        Position::Last => (
            own.len(),
            format!(
                "rule 3: last, after all {} of the pod's own init containers",
                own.len()
            ),
        ),
        Position::Before(name) => (
            find(name)?,
            format!("rule 3: before the pod's init container {name:?}"),
        ),
        Position::After(name) => (
            find(name)? + 1,
            format!("rule 3: after the pod's init container {name:?}"),
        ),
    })
}

/// A native sidecar is an init container with `restartPolicy: Always`.
pub fn is_native_sidecar(container: &Container) -> bool {
    container.restart_policy.as_deref() == Some("Always")
}
