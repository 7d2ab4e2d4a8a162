//! The shared `emptyDir` volumes of `P/volumes` and their mounts, checked against the
//! pod's own volumes and mount paths.

use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, Volume, VolumeMount};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::Planner;
use crate::engine::annotations::{AnnotationError, Key, VolumeDirective, normalized_mount_path};
use crate::engine::policy::crd::PolicyVolume;
use crate::engine::source::Source;

/// One volume to add, whoever asked for it.
struct Wanted<'w> {
    name: &'w str,
    mount_path: &'w str,
    medium: Option<&'w str>,
    size_limit: Option<&'w str>,
}

impl<'w> Wanted<'w> {
    fn of_policy(volume: &'w PolicyVolume) -> Self {
        Wanted {
            name: &volume.name,
            mount_path: &volume.mount_path,
            medium: volume.medium.as_deref().filter(|m| !m.is_empty()),
            size_limit: volume.size_limit.as_deref(),
        }
    }

    fn of_pod(volume: &'w VolumeDirective) -> Self {
        Wanted {
            name: &volume.name,
            mount_path: &volume.mount_path,
            medium: volume.medium.as_deref(),
            size_limit: volume.size_limit.as_deref(),
        }
    }

    fn same_as(&self, other: &Wanted<'_>) -> bool {
        self.name == other.name
            && normalized_mount_path(self.mount_path) == normalized_mount_path(other.mount_path)
            && self.medium == other.medium
            && self.size_limit == other.size_limit
    }

    fn volume(&self) -> Volume {
        Volume {
            name: self.name.to_owned(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: self.medium.map(str::to_owned),
                size_limit: self.size_limit.map(|s| Quantity(s.to_owned())),
            }),
            ..Default::default()
        }
    }

    fn mount(&self) -> VolumeMount {
        VolumeMount {
            name: self.name.to_owned(),
            mount_path: self.mount_path.to_owned(),
            ..Default::default()
        }
    }
}

impl Planner<'_> {
    /// The volumes to add (the policies' first, then the pod's), and their mounts for
    /// every injected step and app container.
    pub(super) fn shared_volumes(&mut self) -> (Vec<Volume>, Vec<VolumeMount>) {
        let mut added: Vec<(Wanted<'_>, Source)> = Vec::new();
        for (volume, policy) in &self.applied.volumes {
            let wanted = Wanted::of_policy(volume);
            let source = Source::Policy((*policy).to_owned());
            let field = format!("spec.volumes[name={}]", volume.name);
            for message in self.volume_clashes(&wanted) {
                self.errors.push(AnnotationError::policy(
                    policy,
                    field.clone(),
                    format!("{}:{}", wanted.name, wanted.mount_path),
                    message,
                ));
            }
            added.push((wanted, source));
        }
        // The key and the entry are written out only for a message.
        let key = || self.keys.key(Key::Volumes);
        let pod_source = self.source_of_key(key);
        for volume in &self.directives.volumes {
            let wanted = Wanted::of_pod(volume);
            let mut messages = self.volume_clashes(&wanted);
            let mut duplicate = false;
            for (theirs, source) in &added {
                if theirs.same_as(&wanted) {
                    self.warnings.push(format!(
                        "annotation {}: volume {:?} is also added by {source}, with the same settings; adding it once",
                        key(),
                        wanted.name
                    ));
                    duplicate = true;
                } else if theirs.name == wanted.name {
                    messages.push(format!(
                        "{source} adds a volume named {:?} with other settings (at {}); choose another name",
                        theirs.name, theirs.mount_path
                    ));
                } else if normalized_mount_path(theirs.mount_path)
                    == normalized_mount_path(wanted.mount_path)
                {
                    messages.push(format!(
                        "{source} mounts volume {:?} at {}; choose another path",
                        theirs.name, theirs.mount_path
                    ));
                }
            }
            for message in messages {
                let entry = format!("{}:{}", wanted.name, wanted.mount_path);
                self.errors.push(
                    AnnotationError::new(key(), entry, message).from_source(pod_source.clone()),
                );
            }
            if !duplicate {
                added.push((wanted, pod_source.clone()));
            }
        }
        let volumes = added.iter().map(|(wanted, _)| wanted.volume()).collect();
        let mounts = added.iter().map(|(wanted, _)| wanted.mount()).collect();
        (volumes, mounts)
    }

    /// The name must be new to the pod, and the path free in every app container.
    fn volume_clashes(&self, wanted: &Wanted<'_>) -> Vec<String> {
        let mut messages = Vec::new();
        if self
            .spec
            .volumes
            .iter()
            .flatten()
            .any(|v| v.name == wanted.name)
        {
            messages.push(format!(
                "the pod already has a volume named {:?}; choose another name",
                wanted.name
            ));
        }
        let path = normalized_mount_path(wanted.mount_path);
        for container in &self.spec.containers {
            let clash = container
                .volume_mounts
                .iter()
                .flatten()
                .find(|m| normalized_mount_path(&m.mount_path) == path);
            if let Some(clash) = clash {
                messages.push(format!(
                    "container {:?} already mounts volume {:?} at {}; choose another path",
                    container.name, clash.name, clash.mount_path
                ));
            }
        }
        messages
    }
}
