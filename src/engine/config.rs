//! Settings the engine needs, validated once and passed by value. Tests build these
//! directly; the CLI builds them from flags and environment variables.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ResourceRequirements;

use crate::engine::duration::parse_positive;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// The annotation prefix used when none is configured.
pub const DEFAULT_PREFIX: &str = "init.example";
/// Where the binary lives inside the init-injector image; the injected wait steps run it.
pub const IMAGE_BINARY_PATH: &str = "/usr/local/bin/init-injector";

/// Defaults of the injected wait steps, shared by [`EngineConfig::default`], the engine's
/// flags and the `wait` command's own flags, so the three cannot drift apart.
pub const DEFAULT_WAIT_TIMEOUT: &str = "5m";
pub const DEFAULT_WAIT_INTERVAL: &str = "2s";
pub const DEFAULT_WAIT_CPU_REQUEST: &str = "10m";
pub const DEFAULT_WAIT_MEMORY_REQUEST: &str = "16Mi";
pub const DEFAULT_WAIT_CPU_LIMIT: &str = "100m";
pub const DEFAULT_WAIT_MEMORY_LIMIT: &str = "32Mi";

/// The image that runs `init-injector wait`, by default the same version as this binary.
pub fn default_wait_image() -> String {
    format!(
        "ghcr.io/init-injector/init-injector:{}",
        env!("CARGO_PKG_VERSION")
    )
}

/// Everything the pure engine reads besides the pod.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    /// Annotation prefix, `init.example` unless configured.
    pub prefix: String,
    pub wait_image: String,
    /// Requests and limits for injected wait steps.
    pub wait_resources: ResourceRequirements,
    /// Deadline per wait target unless `P/wait-timeout` says otherwise.
    pub default_timeout: Duration,
    /// First retry delay unless `P/wait-interval` says otherwise.
    pub default_interval: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            prefix: DEFAULT_PREFIX.to_owned(),
            wait_image: default_wait_image(),
            wait_resources: wait_resources(
                DEFAULT_WAIT_CPU_REQUEST,
                DEFAULT_WAIT_MEMORY_REQUEST,
                DEFAULT_WAIT_CPU_LIMIT,
                DEFAULT_WAIT_MEMORY_LIMIT,
            ),
            default_timeout: parse_positive(DEFAULT_WAIT_TIMEOUT).expect("a valid default"),
            default_interval: parse_positive(DEFAULT_WAIT_INTERVAL).expect("a valid default"),
        }
    }
}

/// Builds requests and limits for CPU and memory.
pub fn wait_resources(
    cpu_request: &str,
    memory_request: &str,
    cpu_limit: &str,
    memory_limit: &str,
) -> ResourceRequirements {
    let pair = |cpu: &str, memory: &str| {
        BTreeMap::from([
            ("cpu".to_owned(), Quantity(cpu.to_owned())),
            ("memory".to_owned(), Quantity(memory.to_owned())),
        ])
    };
    ResourceRequirements {
        requests: Some(pair(cpu_request, memory_request)),
        limits: Some(pair(cpu_limit, memory_limit)),
        ..Default::default()
    }
}
