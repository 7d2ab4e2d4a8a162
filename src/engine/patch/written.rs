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

use k8s_openapi::api::core::v1::{Container, EnvVar};
use serde::Serialize;
use serde::ser::{Impossible, SerializeStruct, Serializer};

use super::name_first::struct_only;
use super::write_json;

/// The injected containers, each written once as JSON.
#[derive(Debug, Default)]
pub struct Written<'a> {
    entries: Vec<Entry<'a>>,
    /// The envs the containers share, each as `,"env":[…]`, and whose they are.
    envs: Vec<(&'a Vec<EnvVar>, Vec<u8>)>,
}

#[derive(Debug)]
struct Entry<'a> {
    container: &'a Container,
    /// `{"name":…,` then the other fields in the type's order, then `}`.
    json: Vec<u8>,
    /// Where the `"name":…` entry ends.
    name_end: usize,
    /// Where, among the other fields, the type's own order puts `name`.
    split: usize,
    /// The shared env the container runs with (an index into `envs`), and where, among
    /// the other fields, the type's own order puts it.
    env: Option<(usize, usize)>,
}

impl<'a> Written<'a> {
    /// Writes each of `containers`, each with the env it shares and does not hold.
    pub fn of(
        containers: impl IntoIterator<Item = (&'a Container, Option<&'a Vec<EnvVar>>)>,
    ) -> Self {
        let mut written = Written::default();
        for (container, shared) in containers {
            let env = shared.map(|env| written.env_index(env));
            written.entries.push(Entry::of(container, env));
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

    /// The name-first JSON of `container`, when it is one of these very containers
    /// (the patch's operations are views of the plan, so the plan's containers are
    /// found by address).
    pub fn name_first(&self, container: &Container) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|e| std::ptr::eq(e.container, container))
            .map(|e| e.json.as_slice())
    }

    /// The env that `container`, one of these very containers, shares and does not hold.
    pub fn shared_env(&self, container: &Container) -> Option<&'a Vec<EnvVar>> {
        let entry = self
            .entries
            .iter()
            .find(|e| std::ptr::eq(e.container, container))?;
        entry.env.map(|(index, _)| self.envs[index].0)
    }

    /// The bytes of `serde_json::to_vec(&containers)` for these containers, each with
    /// the env it shares, as pieces, in order, for a hasher.
    pub fn api_order(&self) -> impl Iterator<Item = &[u8]> {
        let entries = self.entries.iter().enumerate();
        std::iter::once(&b"["[..])
            .chain(entries.flat_map(|(i, entry)| {
                let comma: &[u8] = if i == 0 { b"" } else { b"," };
                std::iter::once(comma).chain(entry.api_order(&self.envs))
            }))
            .chain(std::iter::once(&b"]"[..]))
    }

    /// The bytes of JSON held for the patch.
    pub(super) fn len(&self) -> usize {
        self.entries.iter().map(|e| e.json.len()).sum()
    }
}

impl<'a> Entry<'a> {
    /// `container` written name first; with `env` (its shared env, an index into
    /// [`Written::envs`]), where that env goes is noted.
    fn of(container: &'a Container, env: Option<usize>) -> Self {
        let mut json = Vec::with_capacity(512);
        json.extend_from_slice(br#"{"name":"#);
        write_json(&mut json, &container.name);
        let name_end = json.len();
        let mut fields = Fields {
            out: &mut json,
            split: None,
            env_at: None,
            env_shared: env.is_some(),
        };
        container
            .serialize(&mut fields)
            .expect("Kubernetes API types always serialize");
        let (split, env_at) = (fields.split, fields.env_at);
        let split = split.unwrap_or(json.len());
        let env_at = env_at.unwrap_or(split);
        json.push(b'}');
        Entry {
            container,
            json,
            name_end,
            split,
            env: env.map(|index| (index, env_at)),
        }
    }

    /// `{` fields before name `,` name fields after name `}`: serde_json's bytes for
    /// the container (with its shared env in its place among the fields before name).
    fn api_order<'s>(&'s self, envs: &'s [(&Vec<EnvVar>, Vec<u8>)]) -> [&'s [u8]; 8] {
        let json = &self.json[..];
        let name = &json[1..self.name_end];
        let after = &json[self.split..json.len() - 1];
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

/// Writes a struct's fields after an already written `name`, each as `,"key":value`
/// exactly as serde_json's compact form writes them, and notes where `name` came by.
struct Fields<'o> {
    out: &'o mut Vec<u8>,
    split: Option<usize>,
    /// Where the first field after `env` in the type's order starts, when `env_shared`.
    env_at: Option<usize>,
    env_shared: bool,
}

impl SerializeStruct for &mut Fields<'_> {
    type Ok = ();
    type Error = serde_json::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        // The type's order is alphabetical: `env` goes before the first key after it.
        if self.env_shared && self.env_at.is_none() && key > "env" {
            self.env_at = Some(self.out.len());
        }
        if key == "name" {
            self.split = Some(self.out.len());
            return Ok(());
        }
        self.out.push(b',');
        serde_json::to_writer(&mut *self.out, key)?;
        self.out.push(b':');
        serde_json::to_writer(&mut *self.out, value)
    }

    fn end(self) -> Result<(), serde_json::Error> {
        Ok(())
    }
}

fn not_a_struct() -> serde_json::Error {
    serde::ser::Error::custom("written: only a container is written here")
}

/// A container serializes as a struct; nothing else is written through this.
impl<'f, 'o> Serializer for &'f mut Fields<'o> {
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
    use k8s_openapi::api::core::v1::{Container, EnvVar, SecurityContext, VolumeMount};

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
        Written::of(containers.iter().map(|c| (c, None)))
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
        let written = Written::of(lean.iter().map(|c| (c, Some(&env))));
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
