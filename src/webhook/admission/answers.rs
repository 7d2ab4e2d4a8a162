//! Answers kept for pods the webhook has reviewed, so that the next pod like one of them
//! is answered without planning it again.
//!
//! A Deployment's or a Job's pods reach the webhook identical in everything the engine
//! reads: the ReplicaSet controller creates them from one template, and the API server
//! sends them before it fills in their names, uids and timestamps. Only the request's
//! uid (and fields the engine never reads, such as `managedFields` with its timestamps)
//! differs from one replica to the next.
//!
//! The key is everything the answer depends on, as bytes: the spec exactly as the API
//! server wrote it (compact JSON, the same text for the same pod), the metadata the engine reads (name, generateName, namespace,
//! labels, annotations), the request's namespace, and with `--watch-policies` the
//! namespace as last seen and the policy snapshot in force. Keys are compared whole, so
//! a hit is the answer the engine would give. The engine's own settings are fixed for
//! the life of the process. A new policy snapshot is a new key: answers planned with an
//! older one are never used again and age out.
//!
//! The cache holds at most `--answer-cache-bytes` of keys and answers (S3-FIFO eviction,
//! `quick_cache`). It is split into [`SHARDS`] parts, and an entry larger than one part
//! is not kept.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::admission::AdmissionResponse;
use quick_cache::Weighter;

use super::{Decision, encode_tail};
use crate::engine::policy::select::{NamespaceInfo, Policies};

/// `serve --answer-cache-bytes` unless set: about 85 entries of a typical pod (its 4 KB
/// spec and metadata, and an 8 KB answer).
pub const DEFAULT_ANSWER_CACHE_BYTES: u64 = 1024 * 1024;

/// How many independently locked parts the cache has.
pub const SHARDS: usize = 4;

/// Answers by what they depend on; see the module's documentation.
pub struct Answers {
    cache: quick_cache::sync::Cache<Vec<u8>, Arc<Answer>, ByBytes>,
}

impl std::fmt::Debug for Answers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answers")
            .field("entries", &self.cache.len())
            .field("bytes", &self.cache.weight())
            .field("capacity", &self.cache.capacity())
            .finish()
    }
}

impl Answers {
    /// A cache of at most `max_bytes`; `None` for 0 (no cache).
    pub fn new(max_bytes: u64) -> Option<Answers> {
        if max_bytes == 0 {
            return None;
        }
        // A typical entry (a 4 KB pod and its answer) weighs about 12 KB.
        let items = usize::try_from(max_bytes / 12_288)
            .unwrap_or(usize::MAX)
            .max(SHARDS);
        let options = quick_cache::OptionsBuilder::new()
            .estimated_items_capacity(items)
            .weight_capacity(max_bytes)
            .shards(SHARDS)
            .build()
            .expect("every option is set");
        Some(Answers {
            cache: quick_cache::sync::Cache::with_options(
                options,
                ByBytes,
                Default::default(),
                Default::default(),
            ),
        })
    }

    pub(super) fn get(&self, key: &[u8]) -> Option<Arc<Answer>> {
        self.cache.get(key)
    }

    pub(super) fn insert(&self, key: Vec<u8>, answer: Arc<Answer>) {
        self.cache.insert(key, answer);
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    /// Bytes held (keys and answers), never above the capacity.
    pub fn bytes(&self) -> u64 {
        self.cache.weight()
    }
}

/// An entry weighs its key (as allocated) and its answer.
#[derive(Clone)]
struct ByBytes;

impl Weighter<Vec<u8>, Arc<Answer>> for ByBytes {
    fn weight(&self, key: &Vec<u8>, answer: &Arc<Answer>) -> u64 {
        (key.capacity() + answer.weight()) as u64
    }
}

/// An answer without the request's uid.
#[derive(Debug)]
pub struct Answer {
    /// The AdmissionReview's bytes after the uid's value (see [`super::encode`]).
    pub(super) tail: Vec<u8>,
    pub(super) decision: Decision,
    /// Why the pod was refused, or empty.
    pub(super) message: String,
    /// The policy snapshot the answer was planned with. Its address is part of the key;
    /// holding it keeps a later snapshot from being allocated at the same address while
    /// the entry exists.
    _policies: Option<Arc<Policies>>,
}

impl Answer {
    pub(super) fn new(
        response: &AdmissionResponse,
        decision: Decision,
        policies: Option<Arc<Policies>>,
    ) -> Answer {
        Answer {
            tail: encode_tail(response),
            decision,
            message: response.result.message.clone(),
            _policies: policies,
        }
    }

    /// What the entry costs beyond its key: its bytes and a fixed allowance for the
    /// allocations and the cache's bookkeeping.
    fn weight(&self) -> usize {
        self.tail.capacity() + self.message.capacity() + std::mem::size_of::<Answer>() + 64
    }
}

/// The namespace as last seen and the policies in force, read once per review.
pub type Scope = (NamespaceInfo, Arc<Policies>);

/// The key of a review's answer: every input of the answer, each written with its length
/// so that different inputs never make the same bytes.
pub(super) fn key(
    request_namespace: Option<&str>,
    meta: &ObjectMeta,
    spec: Option<&str>,
    scope: Option<&Scope>,
) -> Vec<u8> {
    let mut key = Key(Vec::with_capacity(spec.map_or(0, str::len) + 1024));
    key.text(spec);
    key.text(request_namespace);
    key.text(meta.name.as_deref());
    key.text(meta.generate_name.as_deref());
    key.text(meta.namespace.as_deref());
    key.map(meta.labels.as_ref());
    key.map(meta.annotations.as_ref());
    match scope {
        None => key.0.push(0),
        Some((namespace, policies)) => {
            key.0.push(1);
            key.0
                .extend_from_slice(&(Arc::as_ptr(policies) as usize).to_le_bytes());
            key.text(Some(&namespace.name));
            key.map(Some(&namespace.labels));
            key.map(Some(&namespace.annotations));
        }
    }
    key.0
}

struct Key(Vec<u8>);

impl Key {
    fn len(&mut self, n: usize) {
        self.0.extend_from_slice(&(n as u64).to_le_bytes());
    }

    fn text(&mut self, text: Option<&str>) {
        match text {
            None => self.0.push(0),
            Some(text) => {
                self.0.push(1);
                self.len(text.len());
                self.0.extend_from_slice(text.as_bytes());
            }
        }
    }

    fn map(&mut self, map: Option<&BTreeMap<String, String>>) {
        match map {
            None => self.0.push(0),
            Some(map) => {
                self.0.push(1);
                self.len(map.len());
                for (k, v) in map {
                    self.text(Some(k));
                    self.text(Some(v));
                }
            }
        }
    }
}
