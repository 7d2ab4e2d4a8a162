//! The `P/status` annotation: what the webhook injected, so that a second pass can find
//! and replace exactly that and nothing else.

use serde::{Deserialize, Serialize};

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
}

impl Status {
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub fn to_annotation(&self) -> String {
        serde_json::to_string(self).expect("a struct of strings always serializes")
    }
}
