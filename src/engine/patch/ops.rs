//! The patch's operations as views of the plan and the pod, and how they are written:
//! as json-patch's owned operations (for `inject` and the tests) or straight to the
//! bytes the webhook sends ([`PatchJson`]).

use json_patch::{AddOperation, PatchOperation, RemoveOperation, ReplaceOperation};
use jsonptr::PointerBuf;
use k8s_openapi::api::core::v1::{Container, Volume, VolumeMount};
use serde::Serialize;

use super::{Written, name_first, write_json};

/// One operation of the patch, its value a view of the plan or the pod. It serializes
/// to exactly the bytes of the [`PatchOperation`] that [`Op::into_operation`] makes,
/// without building that operation's owned JSON value first: on a pod whose run steps
/// copy a large env, those values were most of a review's allocations.
#[derive(Debug)]
pub enum Op<'a> {
    Add { path: PointerBuf, value: Value<'a> },
    Remove { path: PointerBuf },
    Replace { path: PointerBuf, value: Value<'a> },
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
    Volume(&'a Volume),
    Mount(&'a VolumeMount),
}

impl Serialize for Object<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            Object::Container(c) => name_first::serialize(c, &c.name, serializer),
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

/// As json-patch writes a [`PatchOperation`]: the `op` tag, then `path`, then `value`.
impl Serialize for Op<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let (op, path, value) = self.parts();
        let mut fields =
            serializer.serialize_struct("PatchOperation", 2 + value.is_some() as usize)?;
        fields.serialize_field("op", op)?;
        fields.serialize_field("path", path)?;
        if let Some(value) = value {
            fields.serialize_field("value", value)?;
        }
        fields.end()
    }
}

impl Op<'_> {
    /// The `op` tag, the path and the value, in the order json-patch writes them.
    fn parts(&self) -> (&'static str, &PointerBuf, Option<&Value<'_>>) {
        match self {
            Op::Add { path, value } => ("add", path, Some(value)),
            Op::Remove { path } => ("remove", path, None),
            Op::Replace { path, value } => ("replace", path, Some(value)),
        }
    }

    /// json-patch's owned form of this operation.
    pub fn into_operation(self) -> PatchOperation {
        let value = |value: Value<'_>| {
            serde_json::to_value(&value).expect("Kubernetes API types always serialize")
        };
        match self {
            Op::Add { path, value: v } => PatchOperation::Add(AddOperation {
                path,
                value: value(v),
            }),
            Op::Remove { path } => PatchOperation::Remove(RemoveOperation { path }),
            Op::Replace { path, value: v } => PatchOperation::Replace(ReplaceOperation {
                path,
                value: value(v),
            }),
        }
    }
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
        bytes.push(b'[');
        for (i, op) in ops.iter().enumerate() {
            if i > 0 {
                bytes.push(b',');
            }
            op.write(&mut bytes, written);
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
    fn write(&self, out: &mut Vec<u8>, written: &Written<'_>) {
        let (op, path, value) = self.parts();
        out.extend_from_slice(br#"{"op":""#);
        out.extend_from_slice(op.as_bytes());
        out.extend_from_slice(br#"","path":"#);
        write_json(out, path);
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
            Object::Container(container) => match written.name_first(container) {
                Some(json) => out.extend_from_slice(json),
                None => write_json(out, self),
            },
            other => write_json(out, other),
        }
    }
}
