//! Writes an API object with its `name` field first and the rest in the object's own
//! order, straight to the output: a serializer adapter that writes `name` as soon as
//! the object's struct opens and skips it where the object's own field order has it.

use serde::Serialize;
use serde::ser::{Impossible, SerializeStruct, Serializer};

/// Serializes `object`, whose `name` field holds `name`, with that field first.
pub fn serialize<T, S>(object: &T, name: &str, serializer: S) -> Result<S::Ok, S::Error>
where
    T: Serialize + ?Sized,
    S: Serializer,
{
    object.serialize(NameFirst {
        inner: serializer,
        name,
    })
}

struct NameFirst<'n, S> {
    inner: S,
    name: &'n str,
}

/// The object's struct, with `name` already written.
pub struct Fields<F>(F);

impl<F: SerializeStruct> SerializeStruct for Fields<F> {
    type Ok = F::Ok;
    type Error = F::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Self::Error> {
        if key == "name" {
            return Ok(());
        }
        self.0.serialize_field(key, value)
    }

    fn skip_field(&mut self, key: &'static str) -> Result<(), Self::Error> {
        self.0.skip_field(key)
    }

    fn end(self) -> Result<Self::Ok, Self::Error> {
        self.0.end()
    }
}

fn not_a_struct<E: serde::ser::Error>() -> E {
    E::custom("name_first: only API objects (structs with a name) are written name first")
}

/// The rest of a `Serializer` that only writes structs: every other kind of value is the
/// error `$err`. Used by the adapters that write API objects ([`serialize`] here,
/// `Written` beside it).
macro_rules! struct_only {
    ($ok:ty, $error:ty, $err:expr) => {
        type SerializeSeq = Impossible<$ok, $error>;
        type SerializeTuple = Impossible<$ok, $error>;
        type SerializeTupleStruct = Impossible<$ok, $error>;
        type SerializeTupleVariant = Impossible<$ok, $error>;
        type SerializeMap = Impossible<$ok, $error>;
        type SerializeStructVariant = Impossible<$ok, $error>;

        fn serialize_bool(self, _: bool) -> Result<$ok, $error> {
            Err($err)
        }
        fn serialize_i8(self, _: i8) -> Result<$ok, $error> {
            Err($err)
        }
        fn serialize_i16(self, _: i16) -> Result<$ok, $error> {
            Err($err)
        }
        fn serialize_i32(self, _: i32) -> Result<$ok, $error> {
            Err($err)
        }
        fn serialize_i64(self, _: i64) -> Result<$ok, $error> {
            Err($err)
        }
        fn serialize_u8(self, _: u8) -> Result<$ok, $error> {
            Err($err)
        }
        fn serialize_u16(self, _: u16) -> Result<$ok, $error> {
            Err($err)
        }
        fn serialize_u32(self, _: u32) -> Result<$ok, $error> {
            Err($err)
        }
        fn serialize_u64(self, _: u64) -> Result<$ok, $error> {
            Err($err)
        }
        fn serialize_f32(self, _: f32) -> Result<$ok, $error> {
            Err($err)
        }
        fn serialize_f64(self, _: f64) -> Result<$ok, $error> {
            Err($err)
        }
        fn serialize_char(self, _: char) -> Result<$ok, $error> {
            Err($err)
        }
        fn serialize_str(self, _: &str) -> Result<$ok, $error> {
            Err($err)
        }
        fn serialize_bytes(self, _: &[u8]) -> Result<$ok, $error> {
            Err($err)
        }
        fn serialize_none(self) -> Result<$ok, $error> {
            Err($err)
        }
        fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<$ok, $error> {
            Err($err)
        }
        fn serialize_unit(self) -> Result<$ok, $error> {
            Err($err)
        }
        fn serialize_unit_struct(self, _: &'static str) -> Result<$ok, $error> {
            Err($err)
        }
        fn serialize_unit_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
        ) -> Result<$ok, $error> {
            Err($err)
        }
        fn serialize_newtype_struct<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: &T,
        ) -> Result<$ok, $error> {
            Err($err)
        }
        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> Result<$ok, $error> {
            Err($err)
        }
        fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, $error> {
            Err($err)
        }
        fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, $error> {
            Err($err)
        }
        fn serialize_tuple_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleStruct, $error> {
            Err($err)
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleVariant, $error> {
            Err($err)
        }
        fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, $error> {
            Err($err)
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStructVariant, $error> {
            Err($err)
        }
    };
}
pub(super) use struct_only;

/// Every API object the engine adds serializes as a struct; anything else is a bug.
impl<S: Serializer> Serializer for NameFirst<'_, S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeStruct = Fields<S::SerializeStruct>;

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, Self::Error> {
        let mut fields = self.inner.serialize_struct(name, len)?;
        fields.serialize_field("name", self.name)?;
        Ok(Fields(fields))
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }

    struct_only!(S::Ok, S::Error, not_a_struct());
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Container, EnvVar, VolumeMount};

    /// The same bytes as moving `name` to the front of the object's JSON value.
    #[test]
    fn name_moves_first_and_nothing_else_moves() {
        let container = Container {
            name: "app".into(),
            image: Some("app:1".into()),
            args: Some(vec!["--name".into()]),
            env: Some(vec![EnvVar {
                name: "NAME".into(),
                value: Some("x".into()),
                ..Default::default()
            }]),
            volume_mounts: Some(vec![VolumeMount {
                name: "data".into(),
                mount_path: "/data".into(),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let mut expected = serde_json::to_value(&container).unwrap();
        let name = expected["name"].clone();
        expected
            .as_object_mut()
            .unwrap()
            .shift_insert(0, "name".into(), name);

        let mut bytes = Vec::new();
        super::serialize(
            &container,
            &container.name,
            &mut serde_json::Serializer::new(&mut bytes),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            serde_json::to_string(&expected).unwrap()
        );
    }
}
