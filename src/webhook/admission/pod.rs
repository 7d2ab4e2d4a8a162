//! The Pod as a review reads it: the metadata the engine and the logs look at, and the
//! parts of the spec the engine reads.
//!
//! The API server sends the full object, and a stored or server-side-applied pod carries
//! `managedFields` (free-form JSON, decoded by k8s-openapi into `serde_json::Value`
//! trees), owner references, timestamps and a status. None of that decides an
//! injection, and on an annotated review decoding it was about a tenth of the review's
//! time. The same holds for most of the spec: affinity, tolerations, the pod's security
//! context, and the app containers' probes, ports and lifecycle hooks. Skipping them took
//! a ninth off an unannotated review's instructions (docs/performance.md, seventh
//! round). Fields not named here are skipped by the decoder without being built (it
//! still checks that they are JSON). The API server has decoded and defaulted the object
//! before it calls a webhook, and validates it again after the patch, so a field the
//! webhook skips has been checked by then.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::marker::PhantomData;

use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvFromSource, EnvVar, EnvVarSource, EphemeralContainer, Pod,
    PodSpec, ResourceRequirements, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::Resource;
use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, Visitor};

/// A Pod with only the metadata a review reads (name, generateName, namespace, labels
/// and annotations) and only the spec the engine reads ([`Spec`]). `apiVersion` and
/// `kind`, when present, must say `v1` `Pod`, as k8s-openapi's own decoder requires.
#[derive(Debug, Deserialize)]
#[serde(try_from = "Wire")]
pub struct ReviewedPod {
    pub metadata: ObjectMeta,
    pub spec: Option<PodSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    metadata: Meta,
    spec: Option<Spec>,
}

/// The spec as the engine reads it: the pod's own init containers whole (the engine
/// compares the ones it injected earlier with its plan, field by field), its volumes as
/// far as such a comparison can tell them apart ([`PodVolume`]), the app containers with
/// the fields a step copies from them ([`AppContainer`]), and the names of ephemeral
/// containers. Every other field of the spec is skipped. A test holds every answer equal
/// to the answer made from k8s-openapi's whole decode (`webhook::admission::tests`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    containers: Vec<AppContainer>,
    init_containers: Option<Vec<Container>>,
    ephemeral_containers: Option<Vec<Named>>,
    volumes: Option<Vec<PodVolume>>,
}

/// A pod's volume as the engine reads it: its name, and its `emptyDir`, the only source
/// an injected volume has. The engine reads the name of every volume (a shared volume's
/// must be new) and compares the volumes an earlier pass injected with its plan; a
/// volume with another source never equals a planned one, with or without that source,
/// so the source is skipped. Every pod carries a projected service account volume
/// (`kube-api-access-…`, three sources and their items): building it was nine
/// allocations of every review (docs/performance.md, nineteenth round). Read as
/// k8s-openapi reads a `Volume`: a missing or null `name` is empty, the last of a
/// repeated key wins, unknown keys are skipped.
#[derive(Default)]
struct PodVolume {
    name: Option<String>,
    empty_dir: Option<EmptyDirVolumeSource>,
}

impl<'de> Deserialize<'de> for PodVolume {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        read_fields(deserializer)
    }
}

impl<'de> Fields<'de> for PodVolume {
    type Key = VolumeKey;
    const NAME: &'static str = "Volume";
    const KEYS: &'static [&'static str] = &["name", "emptyDir"];

    fn read<A: MapAccess<'de>>(&mut self, key: VolumeKey, map: &mut A) -> Result<(), A::Error> {
        match key {
            VolumeKey::Name => self.name = map.next_value()?,
            VolumeKey::EmptyDir => self.empty_dir = map.next_value()?,
            VolumeKey::Other => skip(map)?,
        }
        Ok(())
    }
}

/// The keys of a volume, read without copying them.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum VolumeKey {
    Name,
    EmptyDir,
    #[serde(other)]
    Other,
}

impl From<PodVolume> for Volume {
    fn from(volume: PodVolume) -> Volume {
        Volume {
            name: volume.name.unwrap_or_default(),
            empty_dir: volume.empty_dir,
            ..Volume::default()
        }
    }
}

/// An app container as the engine reads it: its name, and what a run step or a policy
/// step copies from it (`engine::plan::run`, `engine::plan::policy`), with its volume
/// mounts, which the patch extends. A new field that a step copies belongs here too.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AppContainer {
    name: String,
    image: Option<String>,
    image_pull_policy: Option<String>,
    #[serde(default, deserialize_with = "env")]
    env: Option<Vec<EnvVar>>,
    env_from: Option<Vec<EnvFromSource>>,
    resources: Option<ResourceRequirements>,
    security_context: Option<SecurityContext>,
    volume_mounts: Option<Vec<VolumeMount>>,
    working_dir: Option<String>,
}

/// An app container's `env`, read as k8s-openapi reads it (a missing or null `name` is
/// empty, the last of a repeated key wins, unknown keys are skipped) but through
/// [`WireEnvVar`], a 56-byte value: k8s-openapi's `EnvVar` holds its rare `valueFrom`
/// inline and is 280 bytes, which its decoder and the growing `Vec` moved several times
/// each. On a pod of 2,000 variables those moves were a fifth of the review
/// (docs/performance.md, thirteenth round). The `Vec<EnvVar>` is built once, at its size.
fn env<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<EnvVar>>, D::Error> {
    let wire: Option<Vec<WireEnvVar>> = Deserialize::deserialize(deserializer)?;
    Ok(wire.map(|vars| {
        vars.into_iter()
            .map(|var| EnvVar {
                name: var.name.unwrap_or_default(),
                value: var.value,
                value_from: var.value_from.map(|from| *from),
            })
            .collect()
    }))
}

#[derive(Default)]
struct WireEnvVar {
    name: Option<String>,
    value: Option<String>,
    value_from: Option<Box<EnvVarSource>>,
}

impl<'de> Deserialize<'de> for WireEnvVar {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        read_fields(deserializer)
    }
}

impl<'de> Fields<'de> for WireEnvVar {
    type Key = EnvVarKey;
    const NAME: &'static str = "EnvVar";
    const KEYS: &'static [&'static str] = &["name", "value", "valueFrom"];

    fn read<A: MapAccess<'de>>(&mut self, key: EnvVarKey, map: &mut A) -> Result<(), A::Error> {
        match key {
            EnvVarKey::Name => self.name = map.next_value()?,
            EnvVarKey::Value => self.value = map.next_value()?,
            EnvVarKey::ValueFrom => self.value_from = map.next_value()?,
            EnvVarKey::Other => skip(map)?,
        }
        Ok(())
    }
}

/// The keys of an env var, read without copying them.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum EnvVarKey {
    Name,
    Value,
    ValueFrom,
    #[serde(other)]
    Other,
}

/// A type read from a JSON object as k8s-openapi reads its API types: every field
/// optional, the last of a repeated key wins, unknown keys skipped (serde's derive
/// refuses a repeated key). Each key is read as a [`Fields::Key`], an enum with an
/// `Other` variant, so that no key is copied.
trait Fields<'de>: Default {
    type Key: Deserialize<'de>;
    /// The API type's name, for error messages.
    const NAME: &'static str;
    /// The keys read.
    const KEYS: &'static [&'static str];

    /// Reads the value of `key` into its field.
    fn read<A: MapAccess<'de>>(&mut self, key: Self::Key, map: &mut A) -> Result<(), A::Error>;
}

/// Reads a [`Fields`] type from `deserializer`.
fn read_fields<'de, D: serde::Deserializer<'de>, T: Fields<'de>>(
    deserializer: D,
) -> Result<T, D::Error> {
    struct Object<T>(PhantomData<T>);
    impl<'de, T: Fields<'de>> Visitor<'de> for Object<T> {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(T::NAME)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
            let mut value = T::default();
            while let Some(key) = map.next_key::<T::Key>()? {
                value.read(key, &mut map)?;
            }
            Ok(value)
        }
    }
    deserializer.deserialize_struct(T::NAME, T::KEYS, Object(PhantomData))
}

/// Skips the value of a key that is not read.
fn skip<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    map.next_value::<IgnoredAny>().map(drop)
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

impl From<Spec> for PodSpec {
    fn from(spec: Spec) -> PodSpec {
        PodSpec {
            containers: spec.containers.into_iter().map(Container::from).collect(),
            init_containers: spec.init_containers,
            ephemeral_containers: spec.ephemeral_containers.map(|named| {
                named
                    .into_iter()
                    .map(|Named { name }| EphemeralContainer {
                        name,
                        ..EphemeralContainer::default()
                    })
                    .collect()
            }),
            volumes: spec
                .volumes
                .map(|volumes| volumes.into_iter().map(Volume::from).collect()),
            ..PodSpec::default()
        }
    }
}

impl From<AppContainer> for Container {
    fn from(app: AppContainer) -> Container {
        Container {
            name: app.name,
            image: app.image,
            image_pull_policy: app.image_pull_policy,
            env: app.env,
            env_from: app.env_from,
            resources: app.resources,
            security_context: app.security_context,
            volume_mounts: app.volume_mounts,
            working_dir: app.working_dir,
            ..Container::default()
        }
    }
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    name: Option<String>,
    generate_name: Option<String>,
    namespace: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
}

/// `apiVersion` or `kind` names another type.
#[derive(Debug, thiserror::Error)]
#[error("invalid value: string {found:?}, expected {expected}")]
struct WrongType {
    found: String,
    expected: &'static str,
}

impl TryFrom<Wire> for ReviewedPod {
    type Error = WrongType;

    fn try_from(wire: Wire) -> Result<Self, WrongType> {
        use k8s_openapi::Resource as _;
        let expect = |found: Option<String>, expected: &'static str| match found {
            Some(found) if found != expected => Err(WrongType { found, expected }),
            _ => Ok(()),
        };
        expect(wire.api_version, Pod::API_VERSION)?;
        expect(wire.kind, Pod::KIND)?;
        let Meta {
            name,
            generate_name,
            namespace,
            labels,
            annotations,
        } = wire.metadata;
        Ok(ReviewedPod {
            metadata: ObjectMeta {
                name,
                generate_name,
                namespace,
                labels,
                annotations,
                ..ObjectMeta::default()
            },
            spec: wire.spec.map(PodSpec::from),
        })
    }
}

/// The same resource as [`Pod`], so that kube's admission types carry it.
impl Resource for ReviewedPod {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        <Pod as Resource>::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        <Pod as Resource>::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        <Pod as Resource>::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        <Pod as Resource>::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_what_the_engine_reads_and_skips_the_rest() {
        let pod: ReviewedPod = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "web", "generateName": "web-", "namespace": "shop",
                "labels": {"app": "web"}, "annotations": {"init.example/wait-for": "db:5432"},
                "uid": "0b9c", "resourceVersion": "7",
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:metadata": {}}}],
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "1"}],
            },
            "spec": {
                "containers": [{"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}],
                                "ports": [{"containerPort": 80}], "livenessProbe": {"tcpSocket": {"port": 80}}}],
                "initContainers": [{"name": "init", "image": "init:1", "ports": [{"containerPort": 81}]}],
                "ephemeralContainers": [{"name": "debug", "image": "busybox"}],
                "volumes": [{"name": "data", "emptyDir": {}}],
                "affinity": {"nodeAffinity": {}}, "tolerations": [{"operator": "Exists"}],
                "serviceAccountName": "web", "hostNetwork": true,
            },
            "status": {"phase": "Pending"},
        }))
        .unwrap();
        let full: Pod = serde_json::from_value(json!({
            "metadata": {
                "name": "web", "generateName": "web-", "namespace": "shop",
                "labels": {"app": "web"}, "annotations": {"init.example/wait-for": "db:5432"},
            },
            "spec": {
                "containers": [{"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}]}],
                "initContainers": [{"name": "init", "image": "init:1", "ports": [{"containerPort": 81}]}],
                "ephemeralContainers": [{"name": "debug"}],
                "volumes": [{"name": "data", "emptyDir": {}}],
            },
        }))
        .unwrap();
        assert_eq!(pod.metadata, full.metadata);
        assert_eq!(pod.spec, full.spec);
    }

    #[test]
    fn env_is_read_as_k8s_openapi_reads_it() {
        let spec = |env: &str| {
            format!(r#"{{"kind":"Pod","spec":{{"containers":[{{"name":"app","env":{env}}}]}}}}"#)
        };
        for env in [
            r#"[]"#,
            r#"null"#,
            r#"[{"name":"A","value":"1"},{"name":"B"},{"name":"C","value":null}]"#,
            r#"[{"value":"no name"},{"name":null,"value":"null name"}]"#,
            r#"[{"name":"A","value":"1","name":"B","value":"2"}]"#,
            r#"[{"name":"A","future":{"deep":[1,2,{"x":null}]},"value":"1"}]"#,
            r#"[{"name":"A","valueFrom":{"secretKeyRef":{"name":"s","key":"k"}}}]"#,
            r#"[{"name":"A","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}},"value":"v"}]"#,
            r#"[{"name":"A\u0041\n","value":"\"quoted\""}]"#,
            r#"[{"name":5}]"#,
            r#"["A=1"]"#,
            r#"[["A","1"]]"#,
            r#"[{"name":"A","valueFrom":{"secretKeyRef":7}}]"#,
            r#"{"name":"A"}"#,
            r#"[{"name":"A","value":"1"}"#,
        ] {
            let text = spec(env);
            let ours = serde_json::from_str::<ReviewedPod>(&text);
            let theirs = serde_json::from_str::<Pod>(&text);
            match (ours, theirs) {
                (Ok(ours), Ok(theirs)) => assert_eq!(ours.spec, theirs.spec, "{env}"),
                (Err(ours), Err(theirs)) => {
                    assert_eq!(ours.to_string(), theirs.to_string(), "{env}")
                }
                (ours, theirs) => panic!("{env}: ours {ours:?}, k8s-openapi's {theirs:?}"),
            }
        }
    }

    #[test]
    fn volumes_are_read_as_far_as_an_injected_one_differs() {
        let spec = |volumes: &str| {
            format!(r#"{{"kind":"Pod","spec":{{"containers":[],"volumes":{volumes}}}}}"#)
        };
        for volumes in [
            r#"[{"name":"config","emptyDir":{}}]"#,
            r#"[{"name":"secrets","emptyDir":{"medium":"Memory","sizeLimit":"64Mi"}}]"#,
            r#"[{"name":"data","hostPath":{"path":"/data","type":"Directory"}}]"#,
            r#"[{"name":"kube-api-access-x7k2p","projected":{"defaultMode":420,"sources":[{"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}},{"configMap":{"name":"kube-root-ca.crt","items":[{"key":"ca.crt","path":"ca.crt"}]}}]}}]"#,
            r#"[{"name":"both","emptyDir":{},"configMap":{"name":"c"}}]"#,
            r#"[{"emptyDir":{}},{"name":null,"secret":{"secretName":"s"}}]"#,
            r#"[{"name":"a","name":"b","emptyDir":null,"emptyDir":{"medium":""}}]"#,
            r#"[{"name":"a","future":{"deep":[1,{"x":null}]}}]"#,
            r#"null"#,
            r#"[{"name":5}]"#,
            r#"[{"name":"a","emptyDir":5}]"#,
            r#"[{"name":"a","emptyDir":{"sizeLimit":[]}}]"#,
            r#"["a"]"#,
            r#"[{"name":"a"}"#,
        ] {
            let text = spec(volumes);
            let ours = serde_json::from_str::<ReviewedPod>(&text);
            let theirs = serde_json::from_str::<Pod>(&text);
            match (ours, theirs) {
                (Ok(ours), Ok(theirs)) => {
                    // What the engine can tell apart: the name and the emptyDir.
                    let read = theirs.spec.unwrap().volumes.map(|volumes| {
                        volumes
                            .into_iter()
                            .map(|v| Volume {
                                name: v.name,
                                empty_dir: v.empty_dir,
                                ..Volume::default()
                            })
                            .collect::<Vec<_>>()
                    });
                    assert_eq!(ours.spec.unwrap().volumes, read, "{volumes}");
                }
                (Err(ours), Err(theirs)) => {
                    assert_eq!(ours.to_string(), theirs.to_string(), "{volumes}")
                }
                (ours, theirs) => panic!("{volumes}: ours {ours:?}, k8s-openapi's {theirs:?}"),
            }
        }
    }

    #[test]
    fn another_kind_or_version_is_refused_as_k8s_openapi_refuses_it() {
        for (field, value, expected) in [
            ("kind", "Deployment", "expected Pod"),
            ("apiVersion", "apps/v1", "expected v1"),
        ] {
            let object = json!({field: value, "spec": {"containers": []}});
            let ours = serde_json::from_value::<ReviewedPod>(object.clone()).unwrap_err();
            let theirs = serde_json::from_value::<Pod>(object).unwrap_err();
            assert_eq!(ours.to_string(), theirs.to_string());
            assert!(ours.to_string().contains(expected), "{ours}");
        }
    }

    #[test]
    fn bad_metadata_the_engine_reads_is_an_error() {
        let object = json!({"metadata": {"annotations": {"a": 1}}});
        let error = serde_json::from_value::<ReviewedPod>(object).unwrap_err();
        assert!(
            error.to_string().contains("invalid type: integer"),
            "{error}"
        );
    }
}
