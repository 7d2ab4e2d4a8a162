//! Table-driven tests of the annotation grammar: every key, every mistake.

use super::*;

const P: &str = "init.example";

fn parse_pairs(pairs: &[(&str, &str)]) -> Result<Directives, Vec<AnnotationError>> {
    let map = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    parse(&map, P)
}

fn one_error(pairs: &[(&str, &str)]) -> AnnotationError {
    let errors = parse_pairs(pairs).expect_err("should fail");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors.into_iter().next().unwrap()
}

#[test]
fn full_contract() {
    let d = parse_pairs(&[
        (
            "init.example/wait-for",
            "postgres:5432, redis:6379,http://api/healthz",
        ),
        ("init.example/wait-timeout", "90s"),
        ("init.example/wait-interval", "500ms"),
        ("init.example/run.02-fetch", "sh -c 'fetch --to /config'"),
        ("init.example/run.02-fetch.image", "fetcher:1.2"),
        ("init.example/run.01-migrate", "npm run migration:run"),
        ("init.example/run.01-migrate.container", "app"),
        (
            "init.example/volumes",
            "config:/config,secrets:/secrets:Memory,cache:/cache:Memory:64Mi,tmp:/tmp:1Gi",
        ),
        ("init.example/position", "after:setup"),
        ("unrelated.io/thing", "x"),
    ])
    .unwrap();
    let targets: Vec<String> = d.waits.iter().map(ToString::to_string).collect();
    assert_eq!(
        targets,
        ["postgres:5432", "redis:6379", "http://api/healthz"]
    );
    assert_eq!(d.wait_timeout, Some(Duration::from_secs(90)));
    assert_eq!(d.wait_interval, Some(Duration::from_millis(500)));
    let runs: Vec<&str> = d.ordered_runs().iter().map(|r| r.name.as_str()).collect();
    assert_eq!(runs, ["01-migrate", "02-fetch"]);
    assert_eq!(d.runs["02-fetch"].argv, ["sh", "-c", "fetch --to /config"]);
    assert_eq!(d.runs["02-fetch"].image.as_deref(), Some("fetcher:1.2"));
    assert_eq!(d.runs["01-migrate"].container.as_deref(), Some("app"));
    assert_eq!(d.volumes.len(), 4);
    assert_eq!(d.volumes[1].medium.as_deref(), Some("Memory"));
    assert_eq!(d.volumes[2].size_limit.as_deref(), Some("64Mi"));
    assert_eq!(
        d.volumes[3],
        VolumeDirective {
            name: "tmp".into(),
            mount_path: "/tmp".into(),
            medium: None,
            size_limit: Some("1Gi".into())
        }
    );
    assert_eq!(d.position, Position::After("setup".into()));
    assert!(d.requests_injection() && !d.opted_out);
}

#[test]
fn steps_annotation_orders_runs() {
    let d = parse_pairs(&[
        ("init.example/run.a", "a"),
        ("init.example/run.b", "b"),
        ("init.example/steps", "b, a"),
    ])
    .unwrap();
    let runs: Vec<&str> = d.ordered_runs().iter().map(|r| r.name.as_str()).collect();
    assert_eq!(runs, ["b", "a"]);
}

#[test]
fn duplicate_targets_warn_and_keep_first() {
    let d = parse_pairs(&[("init.example/wait-for", "db:1,redis:2,tcp://db:1")]).unwrap();
    assert_eq!(d.waits.len(), 2);
    assert_eq!(d.warnings.len(), 1);
    assert!(d.warnings[0].contains("more than once"), "{:?}", d.warnings);
}

#[test]
fn opt_out_and_positions() {
    assert!(
        parse_pairs(&[("init.example/inject", "false")])
            .unwrap()
            .opted_out
    );
    for (value, want) in [
        ("first", Position::First),
        ("last", Position::Last),
        ("before:a", Position::Before("a".into())),
        ("after: b", Position::After("b".into())),
    ] {
        assert_eq!(
            parse_pairs(&[("init.example/position", value)])
                .unwrap()
                .position,
            want
        );
    }
}

#[test]
fn each_mistake_names_key_value_and_expectation() {
    let cases: &[(&str, &str, &str)] = &[
        ("init.example/wait-for", "postgres:99999", "out of range"),
        (
            "init.example/wait-for",
            "postgres:5432,",
            "target 2 (\"\"): the target is empty",
        ),
        ("init.example/wait-for", "", "target is empty"),
        ("init.example/wait-timeout", "soon", "positive duration"),
        ("init.example/wait-interval", "10", "no unit"),
        ("init.example/inject", "no", "\"true\" or \"false\""),
        (
            "init.example/position",
            "middle",
            "first, last, before:NAME or after:NAME",
        ),
        ("init.example/position", "before:", "before:NAME"),
        ("init.example/volumes", "config", "mount path is missing"),
        (
            "init.example/volumes",
            "Config:/c",
            "not a valid volume name",
        ),
        ("init.example/volumes", "c:config", "not absolute"),
        ("init.example/volumes", "c:/", "over /"),
        ("init.example/volumes", "c:/a/../b", "'..'"),
        ("init.example/volumes", "c:/c:memory", "spelt Memory"),
        (
            "init.example/volumes",
            "c:/c:lots",
            "neither Memory nor a size",
        ),
        ("init.example/volumes", "c:/c:64Mi:Memory", "after the size"),
        (
            "init.example/volumes",
            "c:/c:1Gi:2Gi",
            "neither Memory nor a size",
        ),
        ("init.example/volumes", "c:/c,c:/d", "twice"),
        ("init.example/volumes", "c:/c,d:/c/", "both mounted at"),
        ("init.example/volumes", "c:/c,", "entry is empty"),
        (
            "init.example/run.Migrate",
            "x",
            "not a valid container name",
        ),
        ("init.example/run.m", "sh -c 'oops", "unterminated quote"),
        ("init.example/run.m", "  ", "expected a command line"),
        (
            "init.example/status",
            "{",
            "not a status written by init-injector",
        ),
    ];
    for (key, value, fragment) in cases {
        let error = one_error(&[(key, value)]);
        assert_eq!(error.key, *key);
        let text = error.to_string();
        assert!(text.contains(fragment), "{key}={value:?}: {text}");
        assert!(text.contains(key), "{text}");
    }
}

#[test]
fn near_misses_get_suggestions() {
    let cases = [
        (
            "init.example/wiat-for",
            "did you mean init.example/wait-for?",
        ),
        ("init.example/volume", "did you mean init.example/volumes?"),
        ("init.example/step", "did you mean init.example/steps?"),
        (
            "init.exmaple/wait-for",
            "did you mean init.example/wait-for?",
        ),
        ("init.example/frobnicate", "known keys:"),
    ];
    for (key, suggestion) in cases {
        let error = one_error(&[(key, "x:1")]);
        assert_eq!(
            error
                .suggestion
                .as_deref()
                .map(|s| s.starts_with(suggestion)),
            Some(true),
            "{key}: {error}"
        );
    }
    let error = one_error(&[
        ("init.example/run.m", "x"),
        ("init.example/run.m.imgae", "y"),
    ]);
    assert_eq!(
        error.suggestion.as_deref(),
        Some("did you mean init.example/run.m.image?")
    );
    // A far-away prefix is somebody else's annotation.
    assert!(parse_pairs(&[("vault.hashicorp.com/wait-for", "x")]).is_ok());
}

#[test]
fn step_cross_checks() {
    let error = one_error(&[("init.example/run.migrate.image", "x")]);
    assert!(
        error
            .message
            .contains("init.example/run.migrate is not set"),
        "{error}"
    );
    let error = one_error(&[
        ("init.example/run.migrate", "x"),
        ("init.example/steps", "migrate,migarte"),
    ]);
    assert!(
        error.to_string().contains("did you mean migrate?"),
        "{error}"
    );
    let error = one_error(&[
        ("init.example/run.a", "x"),
        ("init.example/run.b", "y"),
        ("init.example/steps", "a"),
    ]);
    assert!(
        error.message.contains("does not list step \"b\""),
        "{error}"
    );
    let error = one_error(&[("init.example/run.a", "x"), ("init.example/steps", "a,a")]);
    assert!(error.message.contains("twice"), "{error}");
}

#[test]
fn all_errors_are_reported() {
    let errors = parse_pairs(&[
        ("init.example/wait-for", "db"),
        ("init.example/wait-timeout", "x"),
        ("init.example/wiat-for", "y"),
    ])
    .unwrap_err();
    assert_eq!(errors.len(), 3, "{errors:#?}");
}

#[test]
fn long_values_are_shortened_in_messages() {
    let value = format!("{}:1", "a".repeat(500));
    let text = one_error(&[("init.example/wait-for", &value)]).to_string();
    assert!(text.len() < 400, "{}", text.len());
    assert!(text.contains('…'));
}

#[test]
fn quantities() {
    for ok in ["64Mi", "1G", "0.5Gi", "1000", "1k", "100m"] {
        assert!(is_quantity(ok), "{ok}");
    }
    for bad in ["", "Mi", "64mi", "1.Gi", "-1Gi", "1 Gi"] {
        assert!(!is_quantity(bad), "{bad}");
    }
}
