//! The patch's operations as views of the plan and the pod, and how they are written:
//! as json-patch's owned operations (for `inject` and the tests) or straight to the
//! bytes the webhook sends ([`PatchJson`]).

use json_patch::{AddOperation, PatchOperation, RemoveOperation, ReplaceOperation};
use k8s_openapi::api::core::v1::{Container, Volume, VolumeMount};
use serde::Serialize;

use super::{Path, Written, name_first, write_json};
use crate::engine::plan::whole;

/// One operation of the patch, its value a view of the plan or the pod. It serializes
/// to exactly the bytes of the [`PatchOperation`] that [`Op::into_operation`] makes,
/// without building that operation's owned JSON value first: on a pod whose run steps
/// copy a large env, those values were most of a review's allocations.
#[derive(Debug)]
pub enum Op<'a> {
    Add {
        path: Path<'a>,
        value: Value<'a>,
    },
    Remove {
        path: Path<'a>,
    },
    Replace {
        path: Path<'a>,
        value: Value<'a>,
    },
    /// The value at `from`, an app container's `env`, copied to `path`, the step just
    /// added that runs with it: the answer does not carry that env again. json-patch's
    /// owned form ([`Op::into_operation`]) has none: it adds the step whole.
    Copy {
        from: Path<'a>,
        path: Path<'a>,
    },
}

/// The value of an [`Op`].
#[derive(Debug)]
pub enum Value<'a> {
    Object(Object<'a>),
    List(Vec<Object<'a>>),
    String(&'a str),
    /// A map with this one entry (a new `annotations`).
    Entry(&'a str, &'a str),
}

/// An API object the engine adds. It serializes with its `name` first, where a person
/// reading the manifest looks for it (the API types themselves serialize fields
/// alphabetically).
#[derive(Clone, Copy, Debug)]
pub enum Object<'a> {
    Container(&'a Container),
    /// A step that does not hold the fields it shares with other steps (`shared`,
    /// [`crate::engine::plan::Step::shared`]): written whole.
    Step {
        container: &'a Container,
        shared: &'a Container,
    },
    Volume(&'a Volume),
    Mount(&'a VolumeMount),
}

impl Serialize for Object<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            Object::Container(c) => name_first::serialize(c, &c.name, serializer),
            Object::Step { container, shared } => {
                let c = whole(container, None, Some(shared));
                name_first::serialize(&*c, &c.name, serializer)
            }
            Object::Volume(v) => name_first::serialize(v, &v.name, serializer),
            Object::Mount(m) => name_first::serialize(m, &m.name, serializer),
        }
    }
}

impl Serialize for Value<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Value::Object(object) => object.serialize(serializer),
            Value::List(objects) => serializer.collect_seq(objects),
            Value::String(text) => serializer.serialize_str(text),
            Value::Entry(key, value) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry(key, value)?;
                map.end()
            }
        }
    }
}

/// As json-patch writes a [`PatchOperation`]: the `op` tag, then `from` (a copy's), then
/// `path`, then `value`.
impl Serialize for Op<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let (op, from, path, value) = self.parts();
        let len = 2 + from.is_some() as usize + value.is_some() as usize;
        let mut fields = serializer.serialize_struct("PatchOperation", len)?;
        fields.serialize_field("op", op)?;
        if let Some(from) = from {
            fields.serialize_field("from", &from.to_pointer())?;
        }
        fields.serialize_field("path", &path.to_pointer())?;
        if let Some(value) = value {
            fields.serialize_field("value", value)?;
        }
        fields.end()
    }
}

impl Op<'_> {
    /// The `op` tag, the source, the path and the value, in the order json-patch
    /// writes them.
    fn parts(
        &self,
    ) -> (
        &'static str,
        Option<&Path<'_>>,
        &Path<'_>,
        Option<&Value<'_>>,
    ) {
        match self {
            Op::Add { path, value } => ("add", None, path, Some(value)),
            Op::Remove { path } => ("remove", None, path, None),
            Op::Replace { path, value } => ("replace", None, path, Some(value)),
            Op::Copy { from, path } => ("copy", Some(from), path, None),
        }
    }

    /// json-patch's owned form of this operation, for `inject` (which prints the
    /// patched manifests) and the tests: a step that runs with an app container's env
    /// is added whole, with that env (as `written` knows it) in its place among the
    /// fields, and the copy that the webhook's bytes hold instead is `None`. Either way
    /// the patched pod is the same.
    pub fn into_operation(self, written: &Written<'_>) -> Option<PatchOperation> {
        let value = |value: Value<'_>| value.owned(written);
        Some(match self {
            Op::Add { path, value: v } => PatchOperation::Add(AddOperation {
                path: path.to_pointer(),
                value: value(v),
            }),
            Op::Remove { path } => PatchOperation::Remove(RemoveOperation {
                path: path.to_pointer(),
            }),
            Op::Replace { path, value: v } => PatchOperation::Replace(ReplaceOperation {
                path: path.to_pointer(),
                value: value(v),
            }),
            Op::Copy { .. } => return None,
        })
    }
}

impl Value<'_> {
    /// The owned JSON of this value, the plan's steps whole.
    fn owned(&self, written: &Written<'_>) -> serde_json::Value {
        let object = |object: &Object<'_>| {
            let whole = match *object {
                Object::Container(step)
                | Object::Step {
                    container: step, ..
                } => written.whole(step),
                _ => None,
            };
            match &whole {
                Some(container) => to_value(&Object::Container(container)),
                None => to_value(object),
            }
        };
        match self {
            Value::Object(o) => object(o),
            Value::List(objects) => serde_json::Value::Array(objects.iter().map(object).collect()),
            other => to_value(other),
        }
    }
}

fn to_value<T: Serialize + ?Sized>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect("Kubernetes API types always serialize")
}

/// A patch as the JSON bytes sent to the API server, written straight from the views.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatchJson {
    pub bytes: Vec<u8>,
    /// How many operations it holds.
    pub operations: usize,
}

impl PatchJson {
    /// Writes `ops` as serde_json would write them, copying the plan's containers from
    /// `written` instead of serializing them again.
    pub fn from_ops(ops: Vec<Op<'_>>, written: &Written<'_>) -> Self {
        let mut bytes = Vec::with_capacity(written.len() + 256 * ops.len() + 2);
        // Each path's text on its way into `bytes`.
        let mut scratch = String::with_capacity(128);
        bytes.push(b'[');
        for (i, op) in ops.iter().enumerate() {
            if i > 0 {
                bytes.push(b',');
            }
            op.write(&mut bytes, written, &mut scratch);
        }
        bytes.push(b']');
        PatchJson {
            bytes,
            operations: ops.len(),
        }
    }
}

impl Op<'_> {
    /// The bytes of `serde_json::to_writer(out, self)`.
    fn write(&self, out: &mut Vec<u8>, written: &Written<'_>, scratch: &mut String) {
        let (op, from, path, value) = self.parts();
        out.extend_from_slice(br#"{"op":""#);
        out.extend_from_slice(op.as_bytes());
        out.push(b'"');
        if let Some(from) = from {
            out.extend_from_slice(br#","from":"#);
            from.write_json(out, scratch);
        }
        out.extend_from_slice(br#","path":"#);
        path.write_json(out, scratch);
        if let Some(value) = value {
            out.extend_from_slice(br#","value":"#);
            value.write(out, written);
        }
        out.push(b'}');
    }
}

impl Value<'_> {
    /// The bytes of `serde_json::to_writer(out, self)`.
    fn write(&self, out: &mut Vec<u8>, written: &Written<'_>) {
        match self {
            Value::Object(object) => object.write(out, written),
            Value::List(objects) => {
                out.push(b'[');
                for (i, object) in objects.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    object.write(out, written);
                }
                out.push(b']');
            }
            other => write_json(out, other),
        }
    }
}

impl Object<'_> {
    /// The bytes of `serde_json::to_writer(out, self)`: a container of the plan is
    /// copied from `written`.
    fn write(&self, out: &mut Vec<u8>, written: &Written<'_>) {
        match self {
            Object::Container(container) | Object::Step { container, .. } => {
                match written.name_first(container) {
                    Some(json) => out.extend_from_slice(json),
                    None => write_json(out, self),
                }
            }
            other => write_json(out, other),
        }
    }
}
