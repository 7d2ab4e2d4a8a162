//! Answers one AdmissionReview over and over on one thread, as a review thread of
//! `serve` does, for the profilers of docs/performance.md (perf, valgrind's callgrind
//! and DHAT), which want a plain process rather than criterion's harness:
//!
//!     cargo build --profile bench --example review_loop
//!     valgrind --tool=dhat target/release/examples/review_loop examples/review.json 200
//!
//! The body is read as it is (compact it with `jq -c .` to send what the API server
//! sends); the engine's defaults answer it, as `serve` with no flags does. With
//! `--policy FILE` (and `--namespace-label KEY=VALUE`, both repeatable, as `inject`
//! takes them) the policies are in force and the review's namespace carries those
//! labels, as `serve --watch-policies` would see them:
//!
//!     target/release/examples/review_loop examples/review-unannotated.json 100000 \
//!       --policy examples/policies/platform.yaml --namespace-label tier=prod

use std::hint::black_box;
use std::process::ExitCode;
use std::sync::Arc;

use init_injector::cli::scope::ScopeArgs;
use init_injector::engine::policy::select::{NamespaceInfo, Policies};
use init_injector::webhook::admission::{AdmissionConfig, PolicySource, review};

/// The policies of the files, and one namespace as the flags describe it.
#[derive(Debug)]
struct Fixed {
    policies: Arc<Policies>,
    namespace: NamespaceInfo,
}

impl PolicySource for Fixed {
    fn policies(&self) -> Arc<Policies> {
        self.policies.clone()
    }

    fn namespace(&self, name: &str) -> Option<NamespaceInfo> {
        (name == self.namespace.name).then(|| self.namespace.clone())
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (file, count, flags) = match args.as_slice() {
        [file, count, flags @ ..] => match count.parse::<u64>() {
            Ok(count) => (file, count, flags),
            Err(err) => return usage(&format!("COUNT {count:?}: {err}")),
        },
        _ => return usage("expected a review file and a count"),
    };
    let body = match std::fs::read(file) {
        Ok(body) => body,
        Err(err) => return usage(&format!("cannot read {file}: {err}")),
    };
    let config = match scope(flags, &body) {
        Ok(policies) => AdmissionConfig {
            policies,
            ..AdmissionConfig::default()
        },
        Err(problem) => return usage(&problem),
    };
    match review(&body, &config) {
        Ok(answered) => eprintln!(
            "review_loop: {file}: {:?}, a {}-byte answer; {count} more",
            answered.decision,
            answered.body.len()
        ),
        Err(err) => {
            eprintln!("review_loop: {file} is not answered: {err}");
            return ExitCode::FAILURE;
        }
    }
    for _ in 0..count {
        let _ = black_box(review(black_box(&body), &config));
    }
    ExitCode::SUCCESS
}

/// The policy source the flags describe, in the review's namespace; none without
/// `--policy`.
fn scope(flags: &[String], body: &[u8]) -> Result<Option<Arc<dyn PolicySource>>, String> {
    let mut args = ScopeArgs::default();
    let mut flags = flags.iter();
    while let Some(flag) = flags.next() {
        let value = flags
            .next()
            .ok_or_else(|| format!("{flag} expects a value"))?;
        match flag.as_str() {
            "--policy" => args.policies.push(value.clone()),
            "--namespace-label" => match value.split_once('=') {
                Some((key, value)) => args.namespace_labels.push((key.into(), value.into())),
                None => return Err(format!("--namespace-label {value:?}: expected KEY=VALUE")),
            },
            other => return Err(format!("unknown flag {other:?}")),
        }
    }
    if args.policies.is_empty() {
        return Ok(None);
    }
    let review: serde_json::Value =
        serde_json::from_slice(body).map_err(|err| format!("the review is not JSON: {err}"))?;
    args.namespace = review["request"]["namespace"].as_str().map(str::to_owned);
    let offline = args.load().map_err(|problems| problems.join("\n"))?;
    Ok(Some(Arc::new(Fixed {
        policies: Arc::new(offline.policies),
        namespace: offline.namespace,
    })))
}

fn usage(problem: &str) -> ExitCode {
    eprintln!(
        "review_loop: {problem}\nusage: review_loop REVIEW.json COUNT [--policy FILE]... [--namespace-label KEY=VALUE]..."
    );
    ExitCode::from(2)
}
