//! The `P/status` annotation: what the webhook injected, so that a second pass can find
//! and replace exactly that and nothing else.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::engine::names::hex_prefix;
use crate::engine::patch::Written;
use crate::engine::plan::Plan;

/// Written by the engine as compact JSON; its field order is fixed, so equal injections
/// produce byte-identical annotations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Status {
    /// The init-injector version that wrote it.
    pub version: String,
    /// A hash of the injected containers and volumes.
    pub hash: String,
    /// Names of the injected init containers, in order.
    pub init_containers: Vec<String>,
    /// Names of the injected volumes (also the names of their mounts in app containers).
    pub volumes: Vec<String>,
    /// The InitPolicies that applied, in the order they apply; absent when none did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
}

impl Status {
    /// The status that records `plan`, whose containers `written` holds as JSON.
    ///
    /// The hash is SHA-256 of the JSON of `(containers, volumes)` as serde_json writes
    /// the API types; the containers' bytes come from `written`.
    pub fn of(plan: &Plan, written: &Written<'_>) -> Status {
        let mut hasher = Sha256::new();
        hasher.update(b"[");
        for piece in written.api_order() {
            hasher.update(piece);
        }
        hasher.update(b",");
        // Buffered: the serializer writes many small pieces, each a call into the hasher.
        let mut buffered = std::io::BufWriter::with_capacity(1024, &mut hasher);
        serde_json::to_writer(&mut buffered, &plan.volumes)
            .expect("Kubernetes API types always serialize");
        std::io::Write::flush(&mut buffered).expect("hashing never fails");
        drop(buffered);
        hasher.update(b"]");
        Status {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            hash: hex_prefix(&hasher.finalize(), 16),
            init_containers: plan
                .steps
                .iter()
                .map(|s| s.container.name.clone())
                .collect(),
            volumes: plan.volumes.iter().map(|v| v.name.clone()).collect(),
            policies: plan.policies.clone(),
        }
    }

    /// Whether the init container named `name` is one this status records as injected.
    pub fn injected_container(&self, name: &str) -> bool {
        self.init_containers.iter().any(|c| c == name)
    }

    /// Whether the volume (or a mount of it) named `name` is one this status records as
    /// injected.
    pub fn injected_volume(&self, name: &str) -> bool {
        self.volumes.iter().any(|v| v == name)
    }

    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub fn to_annotation(&self) -> String {
        serde_json::to_string(self).expect("a struct of strings always serializes")
    }
}
