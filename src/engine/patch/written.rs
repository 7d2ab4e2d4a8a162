//! Each injected container serialized once, for both the `P/status` hash and the patch.
//!
//! The hash covers the containers as the API types serialize them (fields in the types'
//! own order); the patch writes them with `name` first. Both are the same fields with
//! one of them moved, so each container is written once, name first, and the offsets of
//! the name and of the place where the types' order has it are kept: the hash reads the
//! same bytes in the other order. On a pod whose run steps copy a large env, serializing
//! the containers a second time was a fifth of a review.
//!
//! A step that runs with an app container's env ([`crate::engine::plan::Step::env_of`])
//! is written without it, as the patch adds it (the API server copies the env); the hash
//! covers the whole container, so that env is written once, however many steps share
//! it, and read in its place in the types' order.
//!
//! The fields steps of a plan have in common ([`crate::engine::plan::Step::shared`]) are
//! written once too, and each such step's JSON is its own fields and those, merged in the
//! types' order: the patch carries every step whole but for the env it copies.

use std::ops::Range;

use k8s_openapi::api::core::v1::{Container, EnvVar};
use serde::Serialize;
use serde::ser::{Impossible, SerializeStruct, Serializer};

use super::name_first::struct_only;
use super::write_json;
use crate::engine::plan::{OWN_FIELDS, whole};

/// The injected containers, each written once as JSON.
#[derive(Debug, Default)]
pub struct Written<'a> {
    /// Every container's JSON, one after the other: one buffer for all of them.
    json: Vec<u8>,
    entries: Vec<Entry<'a>>,
    /// The envs the containers share, each as `,"env":[…]`, and whose they are.
    envs: Vec<(&'a Vec<EnvVar>, Vec<u8>)>,
    /// The fields steps share, each set written once, and whose they are.
    shared: Vec<(&'a Container, Fields)>,
}

#[derive(Debug)]
struct Entry<'a> {
    container: &'a Container,
    /// The fields it shares with other steps and does not hold.
    shared: Option<&'a Container>,
    /// Where, in [`Written::json`], its JSON is: `{"name":…,` then the other fields in
    /// the type's order, then `}`. The offsets below are in the same buffer.
    json: Range<usize>,
    /// Where the `"name":…` entry ends.
    name_end: usize,
    /// Where, among the other fields, the type's own order puts `name`.
    split: usize,
    /// The shared env the container runs with (an index into `envs`), and where, among
    /// the other fields, the type's own order puts it.
    env: Option<(usize, usize)>,
}

/// A container's fields but `name`, each written as `,"key":value` exactly as
/// serde_json's compact form writes them, in the type's order, and where each starts.
#[derive(Debug, Default)]
struct Fields {
    json: Vec<u8>,
    keys: Vec<(&'static str, usize)>,
}

impl Fields {
    /// Room for a container's fields (a wait step's shared ones are some 600 bytes in
    /// 5 fields): writing them into a buffer that grows from nothing took a dozen
    /// reallocations per container.
    fn sized() -> Self {
        Fields {
            json: Vec::with_capacity(1024),
            keys: Vec::with_capacity(16),
        }
    }

    /// The fields of `container` but `name`.
    fn of(container: &Container) -> Self {
        let mut fields = Fields::sized();
        fields.write(container);
        fields
    }

    /// Replaces what this holds with the fields of `container` but `name`.
    fn write(&mut self, container: &Container) {
        self.json.clear();
        self.keys.clear();
        container
            .serialize(&mut *self)
            .expect("Kubernetes API types always serialize");
    }

    /// Each field's key and bytes.
    fn iter(&self) -> impl Iterator<Item = (&'static str, Range<usize>)> + '_ {
        let ends = self.keys.iter().skip(1).map(|&(_, at)| at);
        self.keys
            .iter()
            .zip(ends.chain(std::iter::once(self.json.len())))
            .map(|(&(key, start), end)| (key, start..end))
    }
}

impl<'a> Written<'a> {
    /// Writes each of `containers`, each with the env and the fields it shares and
    /// does not hold.
    pub fn of(
        containers: impl IntoIterator<
            Item = (
                &'a Container,
                Option<&'a Vec<EnvVar>>,
                Option<&'a Container>,
            ),
        >,
    ) -> Self {
        let containers = containers.into_iter();
        // A step's JSON is some 600 to 900 bytes; each had a buffer of its own.
        let mut written = Written {
            json: Vec::with_capacity(1024 * containers.size_hint().0),
            ..Written::default()
        };
        // Each container's own fields, written here before they are merged into its JSON.
        let mut own = Fields::sized();
        for (container, env, shared) in containers {
            let env = env.map(|env| written.env_index(env));
            let index = shared.map(|shared| written.shared_index(shared));
            let shared = index.map(|index| {
                let (container, fields) = &written.shared[index];
                (*container, fields)
            });
            let entry = Entry::of(&mut written.json, container, env, shared, &mut own);
            written.entries.push(entry);
        }
        written
    }

    fn env_index(&mut self, env: &'a Vec<EnvVar>) -> usize {
        if let Some(index) = self.envs.iter().position(|(e, _)| std::ptr::eq(*e, env)) {
            return index;
        }
        let mut json = Vec::with_capacity(64 * env.len() + 8);
        json.extend_from_slice(br#","env":"#);
        write_json(&mut json, env);
        self.envs.push((env, json));
        self.envs.len() - 1
    }

    fn shared_index(&mut self, shared: &'a Container) -> usize {
        if let Some(index) = self
            .shared
            .iter()
            .position(|(c, _)| std::ptr::eq(*c, shared))
        {
            return index;
        }
        self.shared.push((shared, Fields::of(shared)));
        self.shared.len() - 1
    }

    fn entry(&self, container: &Container) -> Option<&Entry<'a>> {
        self.entries
            .iter()
            .find(|e| std::ptr::eq(e.container, container))
    }

    /// The name-first JSON of `container`, when it is one of these very containers
    /// (the patch's operations are views of the plan, so the plan's containers are
    /// found by address): with the fields it shares, without the env it shares.
    pub fn name_first(&self, container: &Container) -> Option<&[u8]> {
        self.entry(container).map(|e| &self.json[e.json.clone()])
    }

    /// The whole container, when `container` is one of these very containers and
    /// shares an env or fields that it does not hold.
    pub fn whole(&self, container: &Container) -> Option<Container> {
        let entry = self.entry(container)?;
        let env = entry.env.map(|(index, _)| self.envs[index].0.as_slice());
        if env.is_none() && entry.shared.is_none() {
            return None;
        }
        Some(whole(container, env, entry.shared).into_owned())
    }

    /// The bytes of `serde_json::to_vec(&containers)` for these containers, each
    /// whole, as pieces, in order, for a hasher.
    pub fn api_order(&self) -> impl Iterator<Item = &[u8]> {
        let entries = self.entries.iter().enumerate();
        std::iter::once(&b"["[..])
            .chain(entries.flat_map(|(i, entry)| {
                let comma: &[u8] = if i == 0 { b"" } else { b"," };
                std::iter::once(comma).chain(entry.api_order(&self.json, &self.envs))
            }))
            .chain(std::iter::once(&b"]"[..]))
    }

    /// The bytes of JSON held for the patch.
    pub(super) fn len(&self) -> usize {
        self.json.len()
    }
}

impl<'a> Entry<'a> {
    /// `container` written name first, with `shared` (the fields it shares, as written
    /// once) merged in; with `env` (its shared env, an index into [`Written::envs`]),
    /// where that env goes is noted. It is appended to `json`; `own` is room to write
    /// its own fields in.
    fn of(
        json: &mut Vec<u8>,
        container: &'a Container,
        env: Option<usize>,
        shared: Option<(&'a Container, &Fields)>,
        own: &mut Fields,
    ) -> Self {
        let start = json.len();
        json.extend_from_slice(br#"{"name":"#);
        write_json(json, &container.name);
        let name_end = json.len();
        own.write(container);
        let own = &*own;
        debug_assert!(
            shared.is_none() || own.keys.iter().all(|(key, _)| OWN_FIELDS.contains(key)),
            "a step that shares fields holds only its own"
        );
        // Where, in `json`, the first field after `name` and the first after `env` start,
        // in the type's order.
        let (mut after_name, mut after_env) = (None, None);
        let none = Fields::default();
        merge(
            json,
            own,
            shared.map_or(&none, |(_, fields)| fields),
            |key, at| {
                if key > "env" && after_env.is_none() {
                    after_env = Some(at);
                }
                if key > "name" && after_name.is_none() {
                    after_name = Some(at);
                }
            },
        );
        let split = after_name.unwrap_or(json.len());
        // `env` goes before the first key after it, which may be `name` itself.
        let env_at = after_env.map_or(split, |at| at.min(split));
        json.push(b'}');
        Entry {
            container,
            shared: shared.map(|(container, _)| container),
            json: start..json.len(),
            name_end,
            split,
            env: env.map(|index| (index, env_at)),
        }
    }

    /// `{` fields before name `,` name fields after name `}`: serde_json's bytes for
    /// the container (with its shared env in its place among the fields before name).
    fn api_order<'s>(
        &'s self,
        json: &'s [u8],
        envs: &'s [(&Vec<EnvVar>, Vec<u8>)],
    ) -> [&'s [u8]; 8] {
        let name = &json[self.json.start + 1..self.name_end];
        let after = &json[self.split..self.json.end - 1];
        // The fields before name, each as `,"key":value`.
        let mut before: [&[u8]; 3] = match self.env {
            Some((env, at)) => [
                &json[self.name_end..at],
                &envs[env].1,
                &json[at..self.split],
            ],
            None => [&json[self.name_end..self.split], &[], &[]],
        };
        // The first of them loses its comma, and one goes before name.
        let comma: &[u8] = match before.iter_mut().find(|piece| !piece.is_empty()) {
            Some(first) => {
                *first = &first[1..];
                b","
            }
            None => b"",
        };
        [
            b"{", before[0], before[1], before[2], comma, name, after, b"}",
        ]
    }
}

/// Appends the fields of `own` and `shared` to `json` in the type's order (both are in
/// it, and no key is in both), telling `started` each key and where it starts.
fn merge(
    json: &mut Vec<u8>,
    own: &Fields,
    shared: &Fields,
    mut started: impl FnMut(&'static str, usize),
) {
    let (mut own_fields, mut shared_fields) = (own.iter().peekable(), shared.iter().peekable());
    loop {
        let from_own = match (own_fields.peek(), shared_fields.peek()) {
            (Some((a, _)), Some((b, _))) => {
                debug_assert_ne!(a, b, "a step holds no field that it shares");
                a < b
            }
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let (key, bytes, range) = if from_own {
            let (key, range) = own_fields.next().expect("peeked");
            (key, &own.json, range)
        } else {
            let (key, range) = shared_fields.next().expect("peeked");
            (key, &shared.json, range)
        };
        started(key, json.len());
        json.extend_from_slice(&bytes[range]);
    }
}

/// Writes a struct's fields but `name`, each as `,"key":value` exactly as serde_json's
/// compact form writes them, and notes where each starts.
impl SerializeStruct for &mut Fields {
    type Ok = ();
    type Error = serde_json::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        if key == "name" {
            return Ok(());
        }
        self.keys.push((key, self.json.len()));
        self.json.push(b',');
        serde_json::to_writer(&mut self.json, key)?;
        self.json.push(b':');
        serde_json::to_writer(&mut self.json, value)
    }

    fn end(self) -> Result<(), serde_json::Error> {
        Ok(())
    }
}

fn not_a_struct() -> serde_json::Error {
    serde::ser::Error::custom("written: only a container is written here")
}

/// A container serializes as a struct; nothing else is written through this.
impl Serializer for &mut Fields {
    type Ok = ();
    type Error = serde_json::Error;
    type SerializeStruct = Self;

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, serde_json::Error> {
        Ok(self)
    }

    struct_only!((), serde_json::Error, not_a_struct());
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        Container, EnvFromSource, EnvVar, SecurityContext, VolumeMount,
    };

    use super::Written;

    fn containers() -> Vec<Container> {
        let full = Container {
            name: "migrate".into(),
            image: Some("app:1".into()),
            args: Some(vec!["--name".into()]),
            command: Some(vec!["npm".into(), "run".into()]),
            env: Some(vec![EnvVar {
                name: "NAME".into(),
                value: Some("x\"y".into()),
                ..Default::default()
            }]),
            security_context: Some(SecurityContext {
                run_as_non_root: Some(true),
                ..Default::default()
            }),
            volume_mounts: Some(vec![VolumeMount {
                name: "data".into(),
                mount_path: "/data".into(),
                ..Default::default()
            }]),
            working_dir: Some("/app".into()),
            ..Default::default()
        };
        vec![
            full,
            // Nothing before `name` in the type's order.
            Container {
                name: "bare".into(),
                working_dir: Some("/w".into()),
                ..Default::default()
            },
            // Nothing after it.
            Container {
                name: "only-before".into(),
                image: Some("i".into()),
                ..Default::default()
            },
            Container {
                name: "only-name".into(),
                ..Default::default()
            },
        ]
    }

    /// `container` as the patch writes it on its own.
    fn name_first(container: &Container) -> Vec<u8> {
        let mut json = Vec::new();
        super::super::name_first::serialize(
            container,
            &container.name,
            &mut serde_json::Serializer::new(&mut json),
        )
        .unwrap();
        json
    }

    fn unshared(containers: &[Container]) -> Written<'_> {
        Written::of(containers.iter().map(|c| (c, None, None)))
    }

    #[test]
    fn the_hash_reads_serde_jsons_bytes() {
        let containers = containers();
        let written = unshared(&containers);
        let api_order: Vec<u8> = written.api_order().flatten().copied().collect();
        assert_eq!(
            String::from_utf8(api_order).unwrap(),
            serde_json::to_string(&containers).unwrap()
        );
        let none = unshared(&[]);
        assert_eq!(
            none.api_order().flatten().copied().collect::<Vec<_>>(),
            b"[]"
        );
    }

    #[test]
    fn a_shared_env_is_read_in_its_place_and_written_once() {
        let env = vec![
            EnvVar {
                name: "A".into(),
                value: Some("1".into()),
                ..Default::default()
            },
            EnvVar {
                name: "B".into(),
                ..Default::default()
            },
        ];
        // Every container of `containers()` (fields before env or not, after it or not),
        // and one with fields only before env.
        let mut whole = containers();
        whole.push(Container {
            name: "z".into(),
            args: Some(vec!["a".into()]),
            ..Default::default()
        });
        for container in &mut whole {
            container.env = Some(env.clone());
        }
        let lean: Vec<Container> = whole
            .iter()
            .map(|c| Container {
                env: None,
                ..c.clone()
            })
            .collect();
        let written = Written::of(lean.iter().map(|c| (c, Some(&env), None)));
        let api_order: Vec<u8> = written.api_order().flatten().copied().collect();
        assert_eq!(
            String::from_utf8(api_order).unwrap(),
            serde_json::to_string(&whole).unwrap()
        );
        assert_eq!(written.envs.len(), 1, "one env, written once");
        for container in &lean {
            assert_eq!(
                written.name_first(container),
                Some(&name_first(container)[..])
            );
        }
    }

    #[test]
    fn shared_fields_are_merged_in_the_types_order_and_written_once() {
        let env = vec![EnvVar {
            name: "A".into(),
            value: Some("1".into()),
            ..Default::default()
        }];
        // Shared fields on both sides of `name` and of `env` (the first test container's
        // but its own fields and env, and an envFrom), and own fields between them: only
        // a merge in the types' order writes these right.
        let shared = Container {
            name: String::new(),
            args: None,
            command: None,
            image: None,
            env: None,
            env_from: Some(vec![EnvFromSource {
                prefix: Some("P_".into()),
                ..Default::default()
            }]),
            ..containers().swap_remove(0)
        };
        let steps = [
            Container {
                name: "wait-a".into(),
                args: Some(vec!["a:1".into()]),
                ..Default::default()
            },
            Container {
                name: "run-b".into(),
                command: Some(vec!["npm".into(), "test".into()]),
                image: Some("app:2".into()),
                image_pull_policy: Some("Always".into()),
                ..Default::default()
            },
            Container {
                name: "only-name".into(),
                ..Default::default()
            },
        ];
        let whole: Vec<Container> = steps
            .iter()
            .map(|c| crate::engine::plan::whole(c, Some(&env), Some(&shared)).into_owned())
            .collect();
        assert_eq!(whole[1].image.as_deref(), Some("app:2"));
        assert_eq!(whole[1].working_dir.as_deref(), Some("/app"));
        let written = Written::of(steps.iter().map(|c| (c, Some(&env), Some(&shared))));
        let api_order: Vec<u8> = written.api_order().flatten().copied().collect();
        assert_eq!(
            String::from_utf8(api_order).unwrap(),
            serde_json::to_string(&whole).unwrap()
        );
        assert_eq!(written.shared.len(), 1, "the shared fields, written once");
        for (step, whole) in steps.iter().zip(&whole) {
            // The patch adds the step whole but for the env it copies.
            let without_env = Container {
                env: None,
                ..whole.clone()
            };
            assert_eq!(
                written.name_first(step),
                Some(&name_first(&without_env)[..])
            );
            assert_eq!(written.whole(step).as_ref(), Some(whole));
        }
    }

    #[test]
    fn the_patch_reads_the_name_first_bytes() {
        let containers = containers();
        let written = unshared(&containers);
        for container in &containers {
            assert_eq!(
                written.name_first(container),
                Some(&name_first(container)[..])
            );
        }
        let copy = containers[0].clone();
        assert_eq!(written.name_first(&copy), None, "found by address only");
    }
}
