//! The engine–wait contract: whatever the engine accepts, the wait step it injects must
//! run. Over arbitrary annotation values (durations of every unit and magnitude, targets
//! of every form, several targets at once), `inject` either refuses the pod with an error
//! naming the key, or every injected wait container's argv is accepted by `wait`'s own
//! parser and validated into a config. And `wait` itself never panics, whatever its
//! arguments: the binary is run on loopback targets only (a listener of this test, or a
//! port nothing listens on), so no case reaches the network.
//!
//! Library entry points used: `init_injector::cli::inject::run` (the engine, as `inject`
//! runs it), `init_injector::cli::Cli::try_parse_from` and `WaitArgs::into_config`.
//!
//! The values this property first found broken (a duration under a millisecond written
//! as `0s`, one over 584 years written as an unreadable millisecond count, and ones so
//! long that `wait` panicked adding them to the clock) are refused by both sides now;
//! the tests at the end keep them that way.

use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use init_injector::cli::{Cli, Command as Sub};
use init_injector::engine::config::{EngineConfig, IMAGE_BINARY_PATH};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

const PREFIX: &str = "init.example";

// ---------------------------------------------------------------- generators

/// Every unit humantime reads, long and short.
const UNITS: &[&str] = &[
    "nsec", "ns", "usec", "us", "msec", "ms", "seconds", "second", "sec", "s", "minutes", "minute",
    "min", "m", "hours", "hour", "hr", "h", "days", "day", "d", "weeks", "week", "w", "months",
    "month", "M", "years", "year", "y",
];

fn magnitude() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => 0u64..4,
        4 => 1u64..1_000,
        2 => 1_000u64..10_000_000,
        1 => any::<u64>(),
        // At the edges: u64::MAX seconds in years (humantime's bound), the year count
        // where an Instant overflows, and u64::MAX itself.
        1 => prop::sample::select(vec![584_542_046_090, 292_471_208_678, u64::MAX, 1 << 53]),
    ]
}

/// The units people write, for durations that are mostly in range.
const COMMON_UNITS: &[&str] = &["ms", "s", "m", "h", "d"];

fn duration_text() -> impl Strategy<Value = String> {
    let part = (magnitude(), prop::sample::select(UNITS)).prop_map(|(n, u)| format!("{n}{u}"));
    let common =
        (1u64..1_000, prop::sample::select(COMMON_UNITS)).prop_map(|(n, u)| format!("{n}{u}"));
    prop_oneof![
        24 => prop::collection::vec(common, 1..3).prop_map(|parts| parts.join("")),
        12 => prop::collection::vec(part, 1..4).prop_map(|parts| parts.join("")),
        1 => prop::collection::vec(
            (magnitude(), prop::sample::select(UNITS)).prop_map(|(n, u)| format!("{n}{u}")),
            2..4
        )
        .prop_map(|parts| parts.join(" ")),
        1 => magnitude().prop_map(|n| format!("-{n}s")),
        1 => magnitude().prop_map(|n| n.to_string()),
        1 => "[ -~]{0,8}",
    ]
}

// The weights keep most values well-formed, so that a good share of pods inject (the
// guard in the engine property checks it); the rest probe the refusals.
fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        16 => "[a-z]([a-z0-9-]{0,10}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?){0,3}",
        1 => "[a-z0-9-]{1,12}(\\.[a-z0-9-]{1,8}){0,3}",
        1 => "[a-z]{60,70}\\.svc",
        1 => "-[a-z0-9]{1,8}",
        1 => "[A-Z][A-Za-z0-9]{0,8}",
        4 => any::<[u8; 4]>().prop_map(|o| std::net::Ipv4Addr::from(o).to_string()),
        4 => any::<u128>().prop_map(|b| format!("[{}]", std::net::Ipv6Addr::from(b))),
        1 => Just("[::1]".to_owned()),
    ]
}

fn port() -> impl Strategy<Value = u32> {
    prop_oneof![24 => 1u32..65_536, 1 => Just(0u32), 1 => 65_536u32..100_000]
}

fn target() -> impl Strategy<Value = String> {
    let path = "(/[A-Za-z0-9%._~:@!$&'()*+;=-]{0,8}){0,3}(\\?[a-z0-9=&]{0,8})?";
    prop_oneof![
        12 => (host(), port()).prop_map(|(h, p)| format!("{h}:{p}")),
        6 => (host(), port()).prop_map(|(h, p)| format!("tcp://{h}:{p}")),
        9 => (
            prop::sample::select(vec!["http", "https", "HTTP"]),
            host(),
            prop::option::of(port()),
            path,
        )
            .prop_map(|(scheme, h, p, path)| match p {
                Some(p) => format!("{scheme}://{h}:{p}{path}"),
                None => format!("{scheme}://{h}{path}"),
            }),
        1 => "[ -~]{0,12}",
    ]
}

/// The annotations of one case: 1 to 4 targets, a timeout and an interval, each
/// present or not.
fn annotations() -> impl Strategy<Value = Vec<(String, String)>> {
    (
        prop::collection::vec(target(), 1..4),
        prop::option::of(duration_text()),
        prop::option::of(duration_text()),
    )
        .prop_map(|(targets, timeout, interval)| {
            let mut out = vec![(format!("{PREFIX}/wait-for"), targets.join(","))];
            if let Some(t) = timeout {
                out.push((format!("{PREFIX}/wait-timeout"), t));
            }
            if let Some(i) = interval {
                out.push((format!("{PREFIX}/wait-interval"), i));
            }
            out
        })
}

// ---------------------------------------------------------------- the engine side

enum Verdict {
    /// The engine refused the pod, naming the key.
    Refused,
    /// Injected wait steps, each one's `wait` argv (after the binary path).
    Injected(Vec<Vec<String>>),
}

/// Runs `inject` (the engine) on a pod with these annotations. Pods are written as JSON,
/// which is YAML too.
fn engine(annotations: &[(String, String)]) -> Result<Verdict, TestCaseError> {
    let annotation_map: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "app", "annotations": annotation_map},
        "spec": {"containers": [{"name": "app", "image": "app:1"}]},
    });
    let input = [("pod.yaml".to_owned(), pod.to_string())];
    let report = init_injector::cli::inject::run(&input, false, &EngineConfig::default());
    if !report.errors.is_empty() {
        for error in &report.errors {
            let named = annotations
                .iter()
                .any(|(key, _)| error.contains(key.as_str()));
            prop_assert!(named, "the error names none of the keys: {error}");
        }
        return Ok(Verdict::Refused);
    }
    let out: Value = serde_yaml_ng::from_str(&report.stdout)
        .map_err(|e| TestCaseError::fail(format!("inject wrote no YAML: {e}")))?;
    let mut argvs = Vec::new();
    for container in out["spec"]["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let command: Vec<&str> = strings(&container["command"]);
        if command != [IMAGE_BINARY_PATH, "wait"] {
            continue;
        }
        let mut argv = vec!["wait".to_owned()];
        argv.extend(strings(&container["args"]).into_iter().map(str::to_owned));
        argvs.push(argv);
    }
    prop_assert!(
        !argvs.is_empty(),
        "admitted with no wait step: {}",
        report.stdout
    );
    Ok(Verdict::Injected(argvs))
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

// ---------------------------------------------------------------- the wait side

/// Parses `argv` (after the binary path) the way the `wait` binary does, and validates it.
fn wait_parses(argv: &[String]) -> Result<init_injector::wait::WaitConfig, String> {
    let cli = Cli::try_parse_from(
        std::iter::once("init-injector".to_owned()).chain(argv.iter().cloned()),
    )
    .map_err(|e| e.to_string())?;
    match cli.command {
        Sub::Wait(args) => args
            .into_config()
            .map_err(|e| init_injector::error::chain(&e)),
        other => Err(format!("parsed as another command: {other:?}")),
    }
}

/// Runs the real binary's `wait` with `args`, bounded in time. Returns its exit code and
/// standard error; a hang fails the test.
fn run_wait(args: &[String]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_init-injector"))
        .arg("wait")
        .args(args)
        .args(["--termination-log", "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`wait {}` still ran after 20 s", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    (status.code(), stderr)
}

/// A loopback listener that accepts and closes every connection: a ready TCP target.
fn ready_target() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            drop(stream);
        }
    });
    addr.to_string()
}

/// A loopback port that nothing listens on (bound, then released).
fn closed_target() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

// ---------------------------------------------------------------- the properties

const CASES: u32 = 512;

#[test]
fn whatever_the_engine_injects_wait_accepts() {
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let counts = std::cell::Cell::new((0u32, 0u32));
    let result = runner.run(&annotations(), |annotations| {
        let (refused, injected) = counts.get();
        match engine(&annotations)? {
            Verdict::Refused => counts.set((refused + 1, injected)),
            Verdict::Injected(argvs) => {
                counts.set((refused, injected + 1));
                for argv in argvs {
                    if let Err(why) = wait_parses(&argv) {
                        return Err(TestCaseError::fail(format!(
                            "the engine injected `{}`, which wait refuses: {why}",
                            argv.join(" ")
                        )));
                    }
                }
            }
        }
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    let (refused, injected) = counts.get();
    eprintln!("{refused} refused, {injected} injected");
    // Not vacuous: both branches are taken, and a good share of the cases inject.
    assert!(
        injected * 4 >= CASES,
        "only {injected} of {CASES} cases injected: the generator no longer exercises wait"
    );
    assert!(
        refused * 20 >= CASES,
        "only {refused} of {CASES} cases refused"
    );
}

proptest! {
    #![proptest_config(Config { cases: 96, failure_persistence: None, ..Config::default() })]

    /// `wait` with arbitrary durations and step labels never panics: against a ready
    /// target it exits 0, against a closed port 1 (deadline) and on bad arguments 2.
    #[test]
    fn wait_never_panics(
        timeout in duration_text(),
        interval in duration_text(),
        max_interval in duration_text(),
        attempt in duration_text(),
        step in prop_oneof!["[0-9]{1,3}/[0-9]{1,3}", "[ -~]{0,6}"],
        ready in any::<bool>(),
    ) {
        let args = wait_args(ready, &timeout, &interval, &max_interval, &attempt, &step);
        let (code, stderr) = run_wait(&args);
        prop_assert!(!stderr.contains("panicked"), "`wait {}` panicked: {stderr}", args.join(" "));
        let parses = wait_parses(&[&["wait".to_owned()], args.as_slice()].concat()).is_ok();
        let expected = match (parses, ready) {
            (false, _) => 2,
            (true, true) => 0,
            (true, false) => 1,
        };
        prop_assert_eq!(code, Some(expected), "`wait {}`: {}", args.join(" "), stderr);
    }

    /// Whatever strings follow `wait`, parsing returns (an error or a config) and never
    /// panics.
    #[test]
    fn wait_parser_never_panics(argv in prop::collection::vec("(--)?[ -~]{0,12}", 0..6)) {
        let mut full = vec!["wait".to_owned()];
        full.extend(argv);
        let _ = wait_parses(&full);
    }
}

/// `wait` arguments: a loopback target (ready, or closed with a short deadline so the
/// run stays short whatever the other durations say) and the durations given.
fn wait_args(
    ready: bool,
    timeout: &str,
    interval: &str,
    max_interval: &str,
    attempt: &str,
    step: &str,
) -> Vec<String> {
    let (target, timeout) = if ready {
        (ready_target(), timeout.to_owned())
    } else {
        (closed_target(), "300ms".to_owned())
    };
    let mut args: Vec<String> = vec![
        "--timeout".into(),
        timeout,
        "--interval".into(),
        interval.into(),
        "--max-interval".into(),
        max_interval.into(),
        "--attempt-timeout".into(),
        attempt.into(),
    ];
    if !step.is_empty() {
        args.extend(["--step".into(), step.into()]);
    }
    args.push(target);
    args
}

#[test]
fn the_generators_reach_every_branch_of_wait() {
    // The wait property's expectations: a ready target answers 0 ...
    let ok = [
        "--timeout",
        "5s",
        "--interval",
        "10ms",
        ready_target().as_str(),
    ]
    .map(String::from);
    assert_eq!(run_wait(&ok).0, Some(0));
    // ... a closed port times out with 1 ...
    let closed = [
        "--timeout",
        "200ms",
        "--interval",
        "10ms",
        closed_target().as_str(),
    ]
    .map(String::from);
    assert_eq!(run_wait(&closed).0, Some(1));
    // ... and a bad argument is a usage error, 2.
    let bad = ["--timeout", "0s", "db:5432"].map(String::from);
    assert_eq!(run_wait(&bad).0, Some(2));
    assert!(wait_parses(&["wait", "--timeout", "0s", "db:5432"].map(String::from)).is_err());
}

// ---------------------------------------------------------------- values once broken

/// `P/<key>: <value>` on a pod with one wait target.
fn with(key: &str, value: &str) -> [(String, String); 2] {
    [
        (format!("{PREFIX}/wait-for"), "db:5432".to_owned()),
        (format!("{PREFIX}/{key}"), value.to_owned()),
    ]
}

#[test]
fn durations_a_wait_step_cannot_carry_are_refused_by_the_engine_and_by_wait() {
    // Under a millisecond: once written as `0s`. Over 584 years with a sub-second part:
    // once an unreadable millisecond count. Past ~292 billion years: once a panic in
    // wait (the clock, the backoff's doubling).
    for value in [
        "1ns",
        "999us",
        "1500us",
        "585y 1ms",
        "1msec 7014months",
        "300000000000y",
    ] {
        for key in ["wait-timeout", "wait-interval"] {
            let Verdict::Refused = engine(&with(key, value)).expect("inject runs") else {
                panic!("{key}: {value:?} was accepted");
            };
        }
        for flag in [
            "--timeout",
            "--interval",
            "--max-interval",
            "--attempt-timeout",
        ] {
            let argv = ["wait", flag, value, "db:5432"].map(String::from);
            let why = wait_parses(&argv).expect_err(value);
            assert!(why.contains(flag), "{flag} {value:?}: {why}");
        }
    }
    // The longest accepted duration still runs: 366 days against a ready target.
    let args = [
        "--timeout",
        "366d",
        "--interval",
        "366d",
        ready_target().as_str(),
    ]
    .map(String::from);
    let (code, stderr) = run_wait(&args);
    assert_eq!(code, Some(0), "{stderr}");
}
