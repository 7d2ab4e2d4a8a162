//! Answers one AdmissionReview over and over on one thread, as a review thread of
//! `serve` does, for the profilers of docs/performance.md (perf, valgrind's callgrind
//! and DHAT), which want a plain process rather than criterion's harness:
//!
//!     cargo build --profile bench --example review_loop
//!     valgrind --tool=dhat target/release/examples/review_loop examples/review.json 200
//!
//! The body is read as it is (compact it with `jq -c .` to send what the API server
//! sends); the engine's defaults answer it, as `serve` with no flags does. `inject`'s
//! scope flags (`--policy`, `--namespace-label`, `--namespace-annotation`) put policies
//! and a namespace in force, as `serve --watch-policies` would see them; the namespace
//! is the review's unless `--namespace` names another:
//!
//!     target/release/examples/review_loop examples/review-unannotated.json 100000 \
//!       --policy examples/policies/platform.yaml --namespace-label tier=prod

use std::hint::black_box;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use init_injector::cli::scope::ScopeArgs;
use init_injector::webhook::admission::{AdmissionConfig, PolicySource, review};

#[derive(Parser)]
struct Args {
    /// The AdmissionReview to answer.
    review: PathBuf,
    /// How many times to answer it after the first.
    count: u64,
    #[command(flatten)]
    scope: ScopeArgs,
}

fn main() -> ExitCode {
    let Args {
        review: file,
        count,
        mut scope,
    } = Args::parse();
    let body = match std::fs::read(&file) {
        Ok(body) => body,
        Err(err) => return fail(&format!("cannot read {}: {err}", file.display())),
    };
    let scoped = !(scope.policies.is_empty()
        && scope.namespace_labels.is_empty()
        && scope.namespace_annotations.is_empty());
    let policies: Option<Arc<dyn PolicySource>> = if scoped {
        if scope.namespace.is_none() {
            scope.namespace = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|review| review["request"]["namespace"].as_str().map(str::to_owned));
        }
        match scope.load() {
            Ok(offline) => Some(Arc::new(offline)),
            Err(problems) => return fail(&problems.join("\n")),
        }
    } else {
        None
    };
    let config = AdmissionConfig {
        policies,
        ..AdmissionConfig::default()
    };
    match review(&body, &config) {
        Ok(answered) => eprintln!(
            "review_loop: {}: {:?}, a {}-byte answer; {count} more",
            file.display(),
            answered.decision,
            answered.body.len()
        ),
        Err(err) => return fail(&format!("{} is not answered: {err}", file.display())),
    }
    for _ in 0..count {
        let _ = black_box(review(black_box(&body), &config));
    }
    ExitCode::SUCCESS
}

fn fail(problem: &str) -> ExitCode {
    eprintln!("review_loop: {problem}");
    ExitCode::FAILURE
}
