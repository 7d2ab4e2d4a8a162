//! The shared `emptyDir` volumes of `P/volumes` and their mounts, checked against the
//! pod's own volumes and mount paths.

use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, Volume, VolumeMount};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::Planner;
use crate::engine::annotations::{AnnotationError, Key, VolumeDirective, normalized_mount_path};

impl Planner<'_> {
    /// The volumes to add, and their mounts for every injected step and app container.
    pub(super) fn shared_volumes(&mut self) -> (Vec<Volume>, Vec<VolumeMount>) {
        let mut volumes = Vec::new();
        let mut mounts = Vec::new();
        for wanted in &self.directives.volumes {
            self.check_volume(wanted);
            volumes.push(Volume {
                name: wanted.name.clone(),
                empty_dir: Some(EmptyDirVolumeSource {
                    medium: wanted.medium.clone(),
                    size_limit: wanted.size_limit.clone().map(Quantity),
                }),
                ..Default::default()
            });
            mounts.push(VolumeMount {
                name: wanted.name.clone(),
                mount_path: wanted.mount_path.clone(),
                ..Default::default()
            });
        }
        (volumes, mounts)
    }

    /// The name must be new to the pod, and the path free in every app container.
    fn check_volume(&mut self, wanted: &VolumeDirective) {
        let key = self.keys.key(Key::Volumes);
        let entry = format!("{}:{}", wanted.name, wanted.mount_path);
        if self
            .spec
            .volumes
            .iter()
            .flatten()
            .any(|v| v.name == wanted.name)
        {
            self.errors.push(AnnotationError::new(
                &key,
                entry.clone(),
                format!(
                    "the pod already has a volume named {:?}; choose another name",
                    wanted.name
                ),
            ));
        }
        let path = normalized_mount_path(&wanted.mount_path);
        for container in &self.spec.containers {
            let clash = container
                .volume_mounts
                .iter()
                .flatten()
                .find(|m| normalized_mount_path(&m.mount_path) == path);
            if let Some(clash) = clash {
                self.errors.push(AnnotationError::new(
                    &key,
                    entry.clone(),
                    format!(
                        "container {:?} already mounts volume {:?} at {}; choose another path",
                        container.name, clash.name, clash.mount_path
                    ),
                ));
            }
        }
    }
}
