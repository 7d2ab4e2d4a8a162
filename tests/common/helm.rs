//! helm as `tests/e2e/build.sh` built it, for the tests that install the chart.

use std::path::PathBuf;
use std::process::{Command, Output};

pub const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/init-injector");

/// Runs helm. A helm built from source assumes Kubernetes 1.20 when it has no cluster to
/// ask, so offline commands (`template`, `lint`) pass `--kube-version`.
pub fn helm(args: &[&str]) -> Output {
    let helm = std::env::var_os("INIT_INJECTOR_E2E_HELM")
        .map(PathBuf::from)
        .expect("INIT_INJECTOR_E2E_HELM names the helm that tests/e2e/build.sh built");
    Command::new(helm).args(args).output().expect("helm runs")
}

/// Runs helm and returns its standard output; fails the test with both outputs when
/// helm fails.
pub fn helm_ok(args: &[&str]) -> String {
    let output = helm(args);
    assert!(
        output.status.success(),
        "helm {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
