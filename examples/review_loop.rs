//! Answers one AdmissionReview over and over on one thread, as a review thread of
//! `serve` does, for the profilers of docs/performance.md (perf, valgrind's callgrind
//! and DHAT), which want a plain process rather than criterion's harness:
//!
//!     cargo build --profile bench --example review_loop
//!     valgrind --tool=dhat target/release/examples/review_loop examples/review.json 200
//!
//! The body is read as it is (compact it with `jq -c .` to send what the API server
//! sends); the engine's defaults answer it, as `serve` with no flags does.

use std::hint::black_box;
use std::process::ExitCode;

use init_injector::webhook::admission::{AdmissionConfig, review};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (file, count) = match args.as_slice() {
        [file, count] => match count.parse::<u64>() {
            Ok(count) => (file, count),
            Err(err) => return usage(&format!("COUNT {count:?}: {err}")),
        },
        _ => return usage("expected a review file and a count"),
    };
    let body = match std::fs::read(file) {
        Ok(body) => body,
        Err(err) => return usage(&format!("cannot read {file}: {err}")),
    };
    let config = AdmissionConfig::default();
    if let Err(err) = review(&body, &config) {
        eprintln!("review_loop: {file} is not answered: {err}");
        return ExitCode::FAILURE;
    }
    for _ in 0..count {
        let _ = black_box(review(black_box(&body), &config));
    }
    ExitCode::SUCCESS
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("review_loop: {problem}\nusage: review_loop REVIEW.json COUNT");
    ExitCode::from(2)
}
