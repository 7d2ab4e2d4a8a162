//! The chart ships the InitPolicy CRD as a file (Helm installs `crds/` before anything
//! else and cannot template it); this holds that file equal to what the Rust types
//! generate, compared as parsed values so that formatting does not count.

use init_injector::cli::crd::REGENERATE;
use init_injector::engine::policy::crd::InitPolicy;
use kube::CustomResourceExt;

const CHART_CRD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/charts/init-injector/crds/initpolicies.init.example.yaml"
);

#[test]
fn the_charts_crd_is_the_one_the_types_generate() {
    let text = std::fs::read_to_string(CHART_CRD)
        .unwrap_or_else(|err| panic!("cannot read {CHART_CRD}: {err}; run `{REGENERATE}`"));
    let shipped: serde_json::Value = serde_yaml_ng::from_str(&text)
        .unwrap_or_else(|err| panic!("{CHART_CRD} is not YAML: {err}; run `{REGENERATE}`"));
    let generated = serde_json::to_value(InitPolicy::crd()).unwrap();
    assert!(
        shipped == generated,
        "{CHART_CRD} differs from the CRD that src/engine/policy/crd.rs generates; \
         regenerate it with `{REGENERATE}`"
    );
    assert_eq!(shipped["metadata"]["name"], "initpolicies.init.example");
}
