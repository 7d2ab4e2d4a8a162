//! `init-injector crd`: prints the InitPolicy CustomResourceDefinition generated from the
//! Rust types (`engine::policy::crd`). The chart's copy,
//! `charts/init-injector/crds/initpolicies.init.example.yaml`, is this output; a test
//! fails when the two differ.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;
use kube::CustomResourceExt;

use crate::engine::policy::crd::InitPolicy;

/// The command that writes the chart's copy, named in its header and in the drift test.
pub const REGENERATE: &str =
    "cargo run -- crd > charts/init-injector/crds/initpolicies.init.example.yaml";

#[derive(Debug, Args)]
pub struct CrdArgs {}

/// The CRD as YAML, after a header that says where it comes from.
pub fn yaml() -> String {
    let body = serde_yaml_ng::to_string(&InitPolicy::crd())
        .expect("a CustomResourceDefinition always serializes");
    format!(
        "# The InitPolicy CRD, generated from src/engine/policy/crd.rs by `init-injector crd`.\n\
         # Do not edit: regenerate with `{REGENERATE}`.\n{body}"
    )
}

impl CrdArgs {
    /// Exit 0, or 1 when standard output cannot be written.
    pub fn execute(self) -> ExitCode {
        let mut out = std::io::stdout().lock();
        match out.write_all(yaml().as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => super::fail(1, &err),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_yaml_reads_back_as_the_crd() {
        let text = super::yaml();
        let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
            serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("initpolicies.init.example")
        );
        assert!(text.starts_with("# The InitPolicy CRD"));
    }
}
