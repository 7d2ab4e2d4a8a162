//! Turns "the pod as it came" and "the pod as planned" into a JSON Patch that touches only
//! what the engine owns: injected init containers, volumes, volume mounts and the status
//! annotation. The pod's own list elements are never replaced, so the patch is small and
//! stays correct whatever else the list holds.

use std::collections::BTreeMap;

use jsonptr::{Pointer, PointerBuf};
use k8s_openapi::api::core::v1::{Container, PodSpec, Volume, VolumeMount};

use crate::engine::plan::Plan;
use crate::engine::status::Status;

mod name_first;
mod ops;
mod written;

pub use ops::{Object, Op, PatchJson, Value};
pub use written::Written;

/// Writes `value` as serde_json's compact form.
fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(out, value).expect("Kubernetes API types always serialize");
}

/// One token of a path below another: a key or a list index.
#[derive(Clone, Copy, Debug)]
enum Token<'a> {
    Key(&'a str),
    Index(usize),
}

/// The deepest path the patch writes below its root:
/// `spec/containers/I/volumeMounts/J`.
const MAX_DEPTH: usize = 5;

/// A JSON Pointer below the patch's root, held as the root and its tokens and written out
/// only when its operation is: into the answer's bytes, or as jsonptr's pointer for
/// json-patch's operations ([`Path::to_pointer`]). Built as pointers, the paths of one
/// review were a dozen or more strings, each allocated, written and checked, and then
/// copied into the answer.
#[derive(Clone, Copy, Debug)]
pub struct Path<'a> {
    root: &'a Pointer,
    tokens: [Token<'a>; MAX_DEPTH],
    len: usize,
}

impl<'a> Path<'a> {
    fn new(root: &'a Pointer) -> Self {
        Path {
            root,
            tokens: [Token::Index(0); MAX_DEPTH],
            len: 0,
        }
    }

    /// This path followed by `tokens`.
    fn below(mut self, tokens: &[Token<'a>]) -> Self {
        for &token in tokens {
            assert!(
                self.len < MAX_DEPTH,
                "the patch's paths are at most {MAX_DEPTH} deep"
            );
            self.tokens[self.len] = token;
            self.len += 1;
        }
        self
    }

    /// Appends the pointer's text (`/`-separated tokens, `~` and `/` escaped) to `out`.
    fn push_to(&self, out: &mut String) {
        use std::fmt::Write;
        out.push_str(self.root.as_str());
        for token in &self.tokens[..self.len] {
            out.push('/');
            match *token {
                Token::Key(key) => out.push_str(jsonptr::Token::new(key).encoded()),
                Token::Index(index) => {
                    write!(out, "{index}").expect("writing to a String never fails")
                }
            }
        }
    }

    /// The pointer as jsonptr holds it.
    pub fn to_pointer(&self) -> PointerBuf {
        let mut text = String::new();
        self.push_to(&mut text);
        PointerBuf::parse(text).expect("encoded tokens below a pointer make a pointer")
    }

    /// Writes the pointer as a JSON string, as serde_json writes a [`PointerBuf`];
    /// `scratch` holds its text on the way.
    pub(crate) fn write_json(&self, out: &mut Vec<u8>, scratch: &mut String) {
        scratch.clear();
        self.push_to(scratch);
        write_json(out, scratch.as_str());
    }
}

/// The API objects that [`list_ops`] adds: each has a name.
trait Named: PartialEq {
    fn name(&self) -> &str;
}

impl Named for Container {
    fn name(&self) -> &str {
        &self.name
    }
}

impl Named for Volume {
    fn name(&self) -> &str {
        &self.name
    }
}

impl Named for VolumeMount {
    fn name(&self) -> &str {
        &self.name
    }
}

/// How ours in the pod are compared with the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compare {
    /// Field by field: the pod's copies may differ from the plan.
    Content,
    /// By name and position only: `P/status` proves that they were injected from this
    /// very plan. The API server fills in defaults (`terminationMessagePath`,
    /// `imagePullPolicy`, canonical quantities, …) after the patch, so a stored pod's
    /// copies never equal the plan field by field, yet they are the same injection.
    Names,
}

/// How [`list_ops`] treats the elements of one list.
struct ListRules<Ours, Same, Extra, View> {
    /// Which elements are ours.
    is_ours: Ours,
    /// Whether one of ours in the pod equals the planned one (for [`Compare::Content`]).
    same_content: Same,
    /// An operation to follow the adding of a planned element, given the list's path and
    /// the element's index (its path is built only when there is one).
    after_add: Extra,
    /// How a planned element is written.
    view: View,
}

/// Ops that turn list `old` into list `new`, where both are the same list of the pod's own
/// elements interleaved with elements that `is_ours` claims. Ours are removed from the
/// back (so indices stay valid), then the new ones are added front to back at their final
/// indices, then what `after_add` adds to them. When ours already stand where they
/// should, no op is emitted.
fn list_ops<'a, T: Named>(
    ops: &mut Vec<Op<'a>>,
    path: Path<'a>,
    old: Option<&Vec<T>>,
    new: Option<&[&'a T]>,
    compare: Compare,
    rules: ListRules<
        impl Fn(&T) -> bool,
        impl Fn(&T, &T) -> bool,
        impl Fn(Path<'a>, usize, &T) -> Option<Op<'a>>,
        impl Fn(&'a T) -> Object<'a>,
    >,
) {
    let is_ours = &rules.is_ours;
    let old_ours = positions(old.into_iter().flatten(), is_ours);
    let new_ours = positions(new.into_iter().flatten().copied(), is_ours);
    let same = |a: &T, b: &T| match compare {
        Compare::Content => (rules.same_content)(a, b),
        Compare::Names => a.name() == b.name(),
    };
    let unchanged = match (old, new) {
        (Some(old), Some(new)) => {
            old_ours == new_ours && old_ours.iter().all(|&i| same(&old[i], new[i]))
        }
        (None, None) => true,
        _ => false,
    };
    if unchanged {
        return;
    }
    let Some(new_list) = new else {
        ops.extend(old_ours.iter().rev().map(|&i| Op::Remove {
            path: path.below(&[Token::Index(i)]),
        }));
        return;
    };
    if old.is_none() {
        ops.push(Op::Add {
            path,
            value: Value::List(new_list.iter().map(|item| (rules.view)(item)).collect()),
        });
    } else {
        for i in old_ours.iter().rev() {
            ops.push(Op::Remove {
                path: path.below(&[Token::Index(*i)]),
            });
        }
        for &i in &new_ours {
            ops.push(Op::Add {
                path: path.below(&[Token::Index(i)]),
                value: Value::Object((rules.view)(new_list[i])),
            });
        }
    }
    for &i in &new_ours {
        ops.extend((rules.after_add)(path, i, new_list[i]));
    }
}

/// Indices of the items `is_ours` claims.
fn positions<'a, T: 'a>(
    items: impl Iterator<Item = &'a T>,
    is_ours: &impl Fn(&T) -> bool,
) -> Vec<usize> {
    items
        .enumerate()
        .filter(|(_, item)| is_ours(item))
        .map(|(i, _)| i)
        .collect()
}

/// `base` with `extra` spliced in at `at`, as references; `None` stays `None` when
/// nothing is added, exactly as [`crate::engine::plan::apply`] builds the list.
fn spliced<'a, T>(
    base: Option<&'a Vec<T>>,
    at: usize,
    extra: impl ExactSizeIterator<Item = &'a T>,
) -> Option<Vec<&'a T>> {
    if extra.len() == 0 {
        return base.map(|list| list.iter().collect());
    }
    let mut list: Vec<&T> = base.into_iter().flatten().collect();
    let at = at.min(list.len());
    list.splice(at..at, extra);
    Some(list)
}

/// What the engine owns in a pod, by name, and how to compare it with the plan.
pub struct Owned<'a> {
    pub init_containers: Vec<&'a str>,
    pub volumes: Vec<&'a str>,
    pub compare: Compare,
}

impl<'a> Owned<'a> {
    /// What an earlier pass injected (per its `P/status`) and what `plan` injects. When
    /// the earlier status records this very plan (`now`), ours are compared by name.
    pub fn of(earlier: Option<&'a Status>, plan: &'a Plan, now: Option<&Status>) -> Self {
        let (old_containers, old_volumes): (&[String], &[String]) = match earlier {
            Some(status) => (&status.init_containers, &status.volumes),
            None => (&[], &[]),
        };
        // The hash covers the injected containers and volumes, names included.
        let same_plan = earlier
            .zip(now)
            .is_some_and(|(old, new)| old.hash == new.hash);
        Owned {
            init_containers: old_containers
                .iter()
                .map(String::as_str)
                .chain(plan.steps.iter().map(|s| s.container.name.as_str()))
                .collect(),
            volumes: old_volumes
                .iter()
                .map(String::as_str)
                .chain(plan.volumes.iter().map(|v| v.name.as_str()))
                .collect(),
            compare: if same_plan {
                Compare::Names
            } else {
                Compare::Content
            },
        }
    }
}

/// The new value of the status annotation, keyed by its full name.
pub struct StatusChange<'a> {
    pub key: &'a str,
    pub value: Option<&'a str>,
}

/// The JSON Patch that turns `old` into `stripped` with `plan` applied, with paths under
/// `root` (empty for a Pod, `/spec/template` for a Deployment, …). The operations are
/// views: their values refer to `stripped`, `plan` and `status`; nothing of the pod is
/// copied. `stripped` is [`crate::engine::plan::stripped`]'s (or `old` itself when
/// nothing was injected before): of it, only the containers, init containers and volumes
/// are read.
pub fn diff<'a>(
    root: &'a Pointer,
    old_annotations: Option<&BTreeMap<String, String>>,
    old: &PodSpec,
    stripped: &'a PodSpec,
    plan: &'a Plan,
    status: StatusChange<'a>,
    owned: &Owned<'_>,
) -> Vec<Op<'a>> {
    // A first injection takes about six operations: the steps, the env copies, the
    // volumes, a mount list per app container and the status. Sized for them at once: a
    // list grown from empty was allocated three times (an operation is some 200 bytes).
    let mut ops = Vec::with_capacity(8);
    let spec = Path::new(root).below(&[Token::Key("spec")]);
    let init = spliced(
        stripped.init_containers.as_ref(),
        plan.insert_at,
        plan.steps.iter().map(|s| &s.container),
    );
    // A step that runs with an app container's env is added without it, and the env is
    // copied from that container (`Step::env_of`).
    let step_of = |c: &Container| plan.steps.iter().find(|s| std::ptr::eq(&s.container, c));
    let app_env = |index: usize| {
        spec.below(&[
            Token::Key("containers"),
            Token::Index(index),
            Token::Key("env"),
        ])
    };
    list_ops(
        &mut ops,
        spec.below(&[Token::Key("initContainers")]),
        old.init_containers.as_ref(),
        init.as_deref(),
        owned.compare,
        ListRules {
            is_ours: |c: &Container| owned.init_containers.contains(&c.name.as_str()),
            same_content: |in_pod: &Container, planned: &Container| match step_of(planned) {
                Some(step) => *in_pod == *step.container_in(stripped),
                None => in_pod == planned,
            },
            after_add: |list: Path<'a>, at: usize, planned: &Container| {
                let index = step_of(planned)?.env_of?;
                Some(Op::Copy {
                    from: app_env(index),
                    path: list.below(&[Token::Index(at), Token::Key("env")]),
                })
            },
            view: |planned: &'a Container| match step_of(planned).and_then(|s| s.shared.as_deref())
            {
                Some(shared) => Object::Step {
                    container: planned,
                    shared,
                },
                None => Object::Container(planned),
            },
        },
    );
    let volume_is_ours = |name: &str| owned.volumes.contains(&name);
    let volumes = spliced(stripped.volumes.as_ref(), usize::MAX, plan.volumes.iter());
    list_ops(
        &mut ops,
        spec.below(&[Token::Key("volumes")]),
        old.volumes.as_ref(),
        volumes.as_deref(),
        owned.compare,
        ListRules {
            is_ours: |v: &Volume| volume_is_ours(&v.name),
            same_content: Volume::eq,
            after_add: |_: Path<'a>, _, _: &Volume| None,
            view: Object::Volume,
        },
    );
    let mounts: &[_] = if plan.volumes.is_empty() {
        &[]
    } else {
        &plan.mounts
    };
    for (index, (old_c, new_c)) in old.containers.iter().zip(&stripped.containers).enumerate() {
        let path = spec.below(&[
            Token::Key("containers"),
            Token::Index(index),
            Token::Key("volumeMounts"),
        ]);
        let new_mounts = spliced(new_c.volume_mounts.as_ref(), usize::MAX, mounts.iter());
        list_ops(
            &mut ops,
            path,
            old_c.volume_mounts.as_ref(),
            new_mounts.as_deref(),
            owned.compare,
            ListRules {
                is_ours: |m: &VolumeMount| volume_is_ours(&m.name),
                same_content: VolumeMount::eq,
                after_add: |_: Path<'a>, _, _: &VolumeMount| None,
                view: Object::Mount,
            },
        );
    }

    let annotations = Path::new(root).below(&[Token::Key("metadata"), Token::Key("annotations")]);
    let old_status = old_annotations.and_then(|a| a.get(status.key));
    // Built only for the operation that needs it: an unchanged status (a pod already
    // injected) needs none.
    let status_path = || annotations.below(&[Token::Key(status.key)]);
    match (old_status, status.value) {
        (Some(old), Some(new)) if old == new => {}
        (Some(_), Some(new)) => ops.push(Op::Replace {
            path: status_path(),
            value: Value::String(new),
        }),
        (None, Some(new)) if old_annotations.is_none() => ops.push(Op::Add {
            path: annotations,
            value: Value::Entry(status.key, new),
        }),
        (None, Some(new)) => ops.push(Op::Add {
            path: status_path(),
            value: Value::String(new),
        }),
        (Some(_), None) => ops.push(Op::Remove {
            path: status_path(),
        }),
        (None, None) => {}
    }
    ops
}

#[cfg(test)]
mod tests {
    use jsonptr::PointerBuf;

    use super::{Path, Token};

    /// A path is the pointer jsonptr's own `with_trailing_token` makes, escapes included,
    /// and is written as serde_json writes that pointer.
    #[test]
    fn paths_are_jsonptrs_trailing_tokens() {
        let root = PointerBuf::parse("/spec/template").expect("a pointer");
        let mut scratch = String::from("left over from an earlier path");
        for base in [PointerBuf::root(), root] {
            let path = Path::new(&base).below(&[
                Token::Key("metadata"),
                Token::Key("a~b/c/d"),
                Token::Index(12_345),
            ]);
            let path = path.below(&[Token::Key("q\"u\\o")]);
            let theirs = base
                .with_trailing_token("metadata")
                .with_trailing_token("a~b/c/d")
                .with_trailing_token(12_345)
                .with_trailing_token("q\"u\\o");
            assert_eq!(path.to_pointer(), theirs);
            assert!(theirs.as_str().contains("a~0b~1c~1d"), "{theirs}");
            let mut written = Vec::new();
            path.write_json(&mut written, &mut scratch);
            assert_eq!(
                written,
                serde_json::to_vec(&theirs).expect("a pointer serializes")
            );
        }
        let empty = Path::new(jsonptr::Pointer::root()).below(&[Token::Key("")]);
        assert_eq!(
            empty.to_pointer(),
            PointerBuf::root().with_trailing_token("")
        );
    }

    /// A path deeper than the patch ever writes is a bug, caught here rather than cut
    /// short.
    #[test]
    #[should_panic(expected = "at most 5 deep")]
    fn paths_deeper_than_the_patch_writes_panic() {
        let root = PointerBuf::root();
        let _ = Path::new(&root).below(&[Token::Index(0); 6]);
    }
}
