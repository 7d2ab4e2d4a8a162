//! Golden tests of `inject --policy`: the example policies of `examples/policies/` over
//! the manifests in `tests/fixtures/policies/`, each created in a namespace described as
//! `--namespace`, `--namespace-label` and `--namespace-annotation` would; compared with
//! reviewed snapshots. Plus what the policy flags refuse.

use init_injector::cli::inject::{self, Report};
use init_injector::cli::scope::ScopeArgs;
use init_injector::engine::config::EngineConfig;

const POLICIES: &str = "examples/policies/platform.yaml";

fn render(report: &Report) -> String {
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

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Key-value pairs as written in a table.
type Pairs = &'static [(&'static str, &'static str)];

/// Each fixture and the namespace its objects are created in.
fn scope_of(fixture: &str) -> ScopeArgs {
    let (namespace, labels, annotations): (&str, Pairs, Pairs) = match fixture {
        "prod.yaml" | "mistakes.yaml" => ("prod", &[("tier", "prod")], &[]),
        "shop.yaml" => ("shop", &[], &[("init.example/wait-timeout", "90s")]),
        other => panic!("no namespace is described for fixture {other}"),
    };
    ScopeArgs {
        policies: vec![POLICIES.to_owned()],
        namespace: Some(namespace.to_owned()),
        namespace_labels: pairs(labels),
        namespace_annotations: pairs(annotations),
    }
}

#[test]
fn fixtures() {
    let config = EngineConfig::default();
    insta::glob!("fixtures/policies/*.yaml", |path| {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let offline = scope_of(&name)
            .load()
            .expect("the example policies are valid");
        let inputs = [(name.clone(), std::fs::read_to_string(path).unwrap())];
        let report = inject::run_in(&inputs, false, &config, &offline);
        insta::assert_snapshot!("inject", render(&report));
        if report.errors.is_empty() {
            // Idempotent under the same policies: a second pass changes nothing.
            let again = inject::run_in(
                &[(name.clone(), report.stdout.clone())],
                false,
                &config,
                &offline,
            );
            assert_eq!(again.stdout, report.stdout, "{name}: second pass differs");
        } else {
            assert!(report.stdout.is_empty(), "{name}: output despite errors");
        }
        let explained = inject::run_in(&inputs, true, &config, &offline);
        insta::assert_snapshot!("explain", render(&explained));
    });
}

#[test]
fn without_the_flags_neither_policies_nor_namespace_defaults_apply() {
    let text = std::fs::read_to_string("tests/fixtures/policies/shop.yaml").unwrap();
    let inputs = [("shop.yaml".to_owned(), text)];
    let report = inject::run(&inputs, true, &EngineConfig::default());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    // The namespace's 90s default is not known: the engine's 5m applies.
    assert!(
        report
            .stdout
            .contains("Pod shop/namespace-default: 1 injected init container(s)"),
        "{}",
        report.stdout
    );
    assert!(report.stdout.contains("(timeout 5m,"), "{}", report.stdout);
    assert!(!report.stdout.contains("90s"), "{}", report.stdout);
    assert!(!report.stdout.contains("InitPolicy"), "{}", report.stdout);
}

fn load_errors(policy_yaml: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, policy_yaml).unwrap();
    let args = ScopeArgs {
        policies: vec![path.to_string_lossy().into_owned()],
        ..ScopeArgs::default()
    };
    match args.load() {
        Ok(_) => Vec::new(),
        Err(errors) => errors,
    }
}

#[test]
fn a_policy_the_webhook_would_leave_out_is_an_error_naming_it() {
    let errors = load_errors(
        "apiVersion: init.example/v1alpha1\nkind: InitPolicy\nmetadata: {name: broken}\n\
         spec:\n  waitFor: [nowhere]\n  steps: [{name: noop}]\n",
    );
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(
        errors[0].starts_with("InitPolicy broken: spec.waitFor[0]: \"nowhere\""),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].contains("spec.steps[0]: step \"noop\" has neither a command nor an image"),
        "{}",
        errors[1]
    );
}

#[test]
fn other_documents_unknown_fields_and_twice_defined_names_are_errors() {
    let errors = load_errors(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n\
         apiVersion: init.example/v1alpha1\nkind: InitPolicy\nmetadata: {name: a}\nspec: {waitFor: [db:1]}\n---\n\
         apiVersion: init.example/v1alpha1\nkind: InitPolicy\nmetadata: {name: a}\nspec: {}\n---\n\
         apiVersion: init.example/v1alpha1\nkind: InitPolicy\nmetadata: {name: b}\nspec: {priority: high}\n",
    );
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(
        errors[0].ends_with(
            "expected apiVersion init.example/v1alpha1 and kind InitPolicy, got v1 ConfigMap"
        ),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].contains("document 3 (line 10): InitPolicy a is defined twice"),
        "{}",
        errors[1]
    );
    assert!(
        errors[2].contains("document 4 (line 15): not a valid InitPolicy"),
        "{}",
        errors[2]
    );
}
