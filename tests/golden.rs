//! Golden tests: `inject` and `inject --explain` over the manifests in
//! `tests/fixtures/`, compared with reviewed snapshots in `tests/snapshots/`.

use init_injector::cli::inject;
use init_injector::engine::config::EngineConfig;

fn render(report: &inject::Report) -> String {
    let mut out = String::new();
    for error in &report.errors {
        out.push_str(&format!("error: {error}\n"));
    }
    for warning in &report.warnings {
        out.push_str(&format!("warning: {warning}\n"));
    }
    if !out.is_empty() && !report.stdout.is_empty() {
        out.push_str("--- stdout ---\n");
    }
    out.push_str(&report.stdout);
    out
}

#[test]
fn fixtures() {
    let config = EngineConfig::default();
    insta::glob!("fixtures/*.yaml", |path| {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(path).unwrap();
        let inputs = [(name.clone(), text.clone())];

        let report = inject::run(&inputs, false, &config);
        insta::assert_snapshot!("inject", render(&report));
        if !report.errors.is_empty() {
            assert!(
                report.stdout.is_empty(),
                "{name}: output written despite errors"
            );
        } else {
            // Idempotent: injecting the output again changes nothing.
            let again = inject::run(&[(name.clone(), report.stdout.clone())], false, &config);
            assert_eq!(again.stdout, report.stdout, "{name}: second pass differs");
        }

        let explained = inject::run(&inputs, true, &config);
        insta::assert_snapshot!("explain", render(&explained));
    });
}

#[test]
fn untouched_documents_are_byte_for_byte() {
    let text = std::fs::read_to_string("tests/fixtures/passthrough.yaml").unwrap();
    let report = inject::run(
        &[("p".into(), text.clone())],
        false,
        &EngineConfig::default(),
    );
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.stdout, text);
}

/// A pod read back from the API server carries defaults the engine never wrote
/// (`terminationMessagePath`, `imagePullPolicy`, `1024Mi` stored as `1Gi`); its
/// `P/status` still identifies the injection, so nothing changes.
#[test]
fn a_pod_as_the_api_server_stored_it_is_left_as_it_is() {
    let text = std::fs::read_to_string("tests/fixtures/stored-pod.yaml").unwrap();
    let report = inject::run(
        &[("stored".into(), text.clone())],
        false,
        &EngineConfig::default(),
    );
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.stdout, text);
}
