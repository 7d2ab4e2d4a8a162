//! Each injected container serialized once, for both the `P/status` hash and the patch.
//!
//! The hash covers the containers as the API types serialize them (fields in the types'
//! own order); the patch writes them with `name` first. Both are the same fields with
//! one of them moved, so each container is written once, name first, and the offsets of
//! the name and of the place where the types' order has it are kept: the hash reads the
//! same bytes in the other order. On a pod whose run steps copy a large env, serializing
//! the containers a second time was a fifth of a review.

use k8s_openapi::api::core::v1::Container;
use serde::Serialize;
use serde::ser::{Impossible, SerializeStruct, Serializer};

use super::name_first::struct_only;
use super::write_json;

/// The injected containers, each written once as JSON.
#[derive(Debug, Default)]
pub struct Written<'a> {
    entries: Vec<Entry<'a>>,
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
}

impl<'a> Written<'a> {
    /// Writes each of `containers`.
    pub fn of(containers: impl IntoIterator<Item = &'a Container>) -> Self {
        Written {
            entries: containers.into_iter().map(Entry::of).collect(),
        }
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

    /// The bytes of `serde_json::to_vec(&containers)` for these containers in order,
    /// as pieces, in order, for a hasher.
    pub fn api_order(&self) -> impl Iterator<Item = &[u8]> {
        let entries = self.entries.iter().enumerate();
        std::iter::once(&b"["[..])
            .chain(entries.flat_map(|(i, entry)| {
                let comma: &[u8] = if i == 0 { b"" } else { b"," };
                std::iter::once(comma).chain(entry.api_order())
            }))
            .chain(std::iter::once(&b"]"[..]))
    }

    /// The bytes of JSON held.
    pub fn len(&self) -> usize {
        self.entries.iter().map(|e| e.json.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<'a> Entry<'a> {
    fn of(container: &'a Container) -> Self {
        let mut json = Vec::with_capacity(512);
        json.extend_from_slice(br#"{"name":"#);
        write_json(&mut json, &container.name);
        let name_end = json.len();
        let mut fields = Fields {
            out: &mut json,
            split: None,
        };
        container
            .serialize(&mut fields)
            .expect("Kubernetes API types always serialize");
        let split = fields.split.unwrap_or(json.len());
        json.push(b'}');
        Entry {
            container,
            json,
            name_end,
            split,
        }
    }

    /// `{` fields before name `,` name fields after name `}`: serde_json's bytes for
    /// the container.
    fn api_order(&self) -> [&[u8]; 6] {
        let json = &self.json[..];
        let name = &json[1..self.name_end];
        let before = &json[self.name_end..self.split];
        let after = &json[self.split..json.len() - 1];
        match before.split_first() {
            // `before` is `,"a":…,"b":…`: drop its first comma and put one after it.
            Some((_, before)) => [b"{", before, b",", name, after, b"}"],
            None => [b"{", &[], &[], name, after, b"}"],
        }
    }
}

/// Writes a struct's fields after an already written `name`, each as `,"key":value`
/// exactly as serde_json's compact form writes them, and notes where `name` came by.
struct Fields<'o> {
    out: &'o mut Vec<u8>,
    split: Option<usize>,
}

impl SerializeStruct for &mut Fields<'_> {
    type Ok = ();
    type Error = serde_json::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), serde_json::Error> {
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

    #[test]
    fn the_hash_reads_serde_jsons_bytes() {
        let containers = containers();
        let written = Written::of(&containers);
        let api_order: Vec<u8> = written.api_order().flatten().copied().collect();
        assert_eq!(
            String::from_utf8(api_order).unwrap(),
            serde_json::to_string(&containers).unwrap()
        );
        let none = Written::of(&[]);
        assert_eq!(
            none.api_order().flatten().copied().collect::<Vec<_>>(),
            b"[]"
        );
    }

    #[test]
    fn the_patch_reads_the_name_first_bytes() {
        let containers = containers();
        let written = Written::of(&containers);
        for container in &containers {
            let mut expected = Vec::new();
            super::super::name_first::serialize(
                container,
                &container.name,
                &mut serde_json::Serializer::new(&mut expected),
            )
            .unwrap();
            assert_eq!(written.name_first(container), Some(&expected[..]));
        }
        let copy = containers[0].clone();
        assert_eq!(written.name_first(&copy), None, "found by address only");
    }
}
