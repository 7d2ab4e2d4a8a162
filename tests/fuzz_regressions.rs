//! Replays every input the fuzzers have crashed on (`fuzz/regressions/<target>/`) through
//! the same checks the fuzz targets make (`fuzz/oracles.rs`), so that each stays fixed
//! under `cargo test`, with no fuzzer installed. A new crash artifact from
//! `fuzz/artifacts/<target>/` is added by copying it into `fuzz/regressions/<target>/`
//! under a name that says what it is.

#[path = "../fuzz/oracles.rs"]
mod oracles;

use std::path::Path;

use init_injector::engine::config::EngineConfig;
use init_injector::webhook::admission::{self, AdmissionConfig, OnInvalid};

/// Runs `oracle` on every file in `fuzz/regressions/<target>/` (none when the target
/// never crashed); returns how many.
fn replay(target: &str, oracle: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let mut count = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| oracle(&data));
        assert!(outcome.is_ok(), "{} fails again", path.display());
        count += 1;
    }
    count
}

#[test]
fn every_recorded_crash_stays_fixed() {
    let replayed = replay("annotations", oracles::annotations)
        + replay("review", oracles::review)
        + replay("inject_yaml", oracles::inject_yaml);
    assert!(
        replayed >= 2,
        "only {replayed} recorded crashes found: the files are missing"
    );
}

/// The first crash the review fuzzer found: the decoder skips a field a Pod does not have
/// without checking its text, so a body with invalid UTF-8 or a lone surrogate escape
/// there is decoded, and the pod injected, although it is not strict JSON (the API server
/// never sends one). The check that re-reads the body must leave such a body alone.
#[test]
fn a_body_the_decoder_reads_but_is_not_strict_json_is_answered() {
    let config = AdmissionConfig {
        engine: EngineConfig::default(),
        on_invalid: OnInvalid::Deny,
        policies: None,
    };
    for name in [
        "invalid-utf8-in-unknown-field.json",
        "lone-surrogate-in-unknown-field.json",
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/regressions/review")
            .join(name);
        let body = std::fs::read(&path).unwrap();
        assert!(
            serde_json::from_slice::<serde_json::Value>(&body).is_err(),
            "{name} is strict JSON"
        );
        let reviewed = admission::review(&body, &config).expect("the decoder reads it");
        let answer: serde_json::Value = serde_json::from_slice(&reviewed.body).unwrap();
        assert_eq!(answer["response"]["allowed"], true, "{name}: {answer}");
        assert!(answer["response"]["patch"].is_string(), "{name}: {answer}");
    }
}
