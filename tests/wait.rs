//! `init-injector wait` against real sockets on loopback: late listeners, closed ports,
//! flaky HTTP, HTTPS with a private CA, unresolvable names, several targets, SIGTERM and
//! usage errors. Timing checks have generous tolerances; they guard the deadline, not
//! the scheduler.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

mod common;

fn wait(args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_init-injector"))
        .arg("wait")
        .args(args)
        .args(["--termination-log", "/dev/null"])
        .output()
        .unwrap();
    (out, started.elapsed())
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A loopback port that nothing listens on (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Answers each HTTP request on `listener` with the status `status(n)` for the n-th request.
fn http_server(
    listener: TcpListener,
    status: impl Fn(usize) -> u16 + Send + 'static,
) -> Arc<AtomicUsize> {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let n = seen.fetch_add(1, Ordering::SeqCst);
            read_head(&mut stream);
            let code = status(n);
            let _ = write!(
                stream,
                "HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    count
}

fn read_head(stream: &mut impl Read) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
        if line == "\r\n" {
            break;
        }
        line.clear();
    }
}

#[test]
fn a_listener_that_opens_late_is_found() {
    let port = free_port();
    thread::spawn(move || {
        thread::sleep(Duration::from_secs(2));
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        for _ in listener.incoming().take(5) {}
    });
    let (out, elapsed) = wait(&[
        &format!("127.0.0.1:{port}"),
        "--timeout",
        "30s",
        "--interval",
        "200ms",
        "--max-interval",
        "400ms",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        elapsed >= Duration::from_millis(1800) && elapsed < Duration::from_secs(10),
        "{elapsed:?}"
    );
    let log = stderr(&out);
    assert!(log.contains("[1/1] wait-for 127.0.0.1:"), "{log}");
    assert!(log.contains("connection refused"), "{log}");
    assert!(log.contains("ready after"), "{log}");
}

#[test]
fn a_port_that_never_opens_fails_at_the_deadline() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let termination = dir.path().join("termination-log");
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_init-injector"))
        .args([
            "wait",
            &format!("127.0.0.1:{port}"),
            "--timeout",
            "2s",
            "--interval",
            "300ms",
            "--attempt-timeout",
            "1s",
        ])
        .arg("--termination-log")
        .arg(&termination)
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        elapsed >= Duration::from_millis(1900),
        "gave up early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(6),
        "the deadline plus one attempt was overrun: {elapsed:?}"
    );
    let reason = std::fs::read_to_string(&termination).unwrap();
    assert!(
        reason.contains("gave up after") && reason.contains("connection refused"),
        "{reason}"
    );
}

#[test]
fn http_needs_a_2xx_and_retries_through_503s() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = http_server(listener, |n| if n < 2 { 503 } else { 200 });
    let (out, _) = wait(&[
        &format!("http://{addr}/healthz"),
        "--timeout",
        "30s",
        "--interval",
        "100ms",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(count.load(Ordering::SeqCst), 3);
    assert_eq!(
        stderr(&out).matches("HTTP 503").count(),
        2,
        "{}",
        stderr(&out)
    );
}

/// An HTTPS server with a certificate from a private CA; returns its address and CA.
fn https_server() -> (SocketAddr, String) {
    let (identity, generated) = common::loopback_identity();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let config = identity.config.clone();
            thread::spawn(move || {
                let Ok(connection) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(connection, stream);
                read_head(&mut tls);
                let _ = tls.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
                let _ = tls.flush();
            });
        }
    });
    (addr, generated.ca_cert_pem)
}

#[test]
fn https_is_verified_against_the_given_ca() {
    let (addr, ca) = https_server();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let url = format!("https://localhost:{}/ready", addr.port());

    let (out, _) = wait(&[
        &url,
        "--timeout",
        "10s",
        "--ca-file",
        ca_file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // Without the CA the certificate is not trusted, and that is the reported error.
    let (out, _) = wait(&[&url, "--timeout", "1s", "--interval", "200ms"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).to_lowercase().contains("certificate"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_name_that_does_not_resolve_is_reported() {
    let (out, _) = wait(&[
        "no-such-service.invalid:5432",
        "--timeout",
        "1s",
        "--interval",
        "200ms",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no such host"), "{}", stderr(&out));
}

#[test]
fn several_targets_are_waited_for_in_order() {
    let late = free_port();
    thread::spawn(move || {
        thread::sleep(Duration::from_millis(1200));
        let listener = TcpListener::bind(("127.0.0.1", late)).unwrap();
        for _ in listener.incoming().take(5) {}
    });
    let early = TcpListener::bind("127.0.0.1:0").unwrap();
    let early_port = early.local_addr().unwrap().port();
    thread::spawn(move || for _ in early.incoming().take(5) {});
    let (out, _) = wait(&[
        &format!("127.0.0.1:{late}"),
        &format!("tcp://127.0.0.1:{early_port}"),
        "--timeout",
        "20s",
        "--interval",
        "200ms",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let log = stderr(&out);
    let first = log
        .find(&format!("[1/2] wait-for 127.0.0.1:{late}: ready"))
        .expect("first ready");
    let second = log
        .find(&format!("[2/2] wait-for 127.0.0.1:{early_port}: ready"))
        .expect("second ready");
    assert!(first < second, "{log}");
}

#[test]
fn sigterm_stops_it_at_once() {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_init-injector"))
        .args([
            "wait",
            &format!("127.0.0.1:{port}"),
            "--timeout",
            "5m",
            "--step",
            "3/4",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Signalled once it says it is waiting.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    while !log.contains("[3/4] wait-for") {
        assert!(
            stderr.read_line(&mut log).unwrap() > 0,
            "exited before waiting: {log}"
        );
    }
    let started = Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    stderr.read_to_string(&mut log).unwrap();
    assert_eq!(status.code(), Some(143), "{log}");
    assert!(log.contains("received SIGTERM: stopped waiting"), "{log}");
}

#[test]
fn usage_errors_exit_2_naming_the_argument() {
    let cases: &[(&[&str], &str)] = &[
        (&[], "<TARGET>"),
        (
            &["postgres"],
            "invalid value 'postgres' for '<TARGET>...': a port is missing",
        ),
        (&["postgres:0"], "port 0 is out of range"),
        (&["postgres:65536"], "port 65536 is out of range"),
        (&["ftp://x:21"], "not supported"),
        (
            &["db:1", "--timeout", "0s"],
            "'--timeout <TIMEOUT>': expected a positive duration",
        ),
        (&["db:1", "--timeout=-5s"], "it is negative"),
        (
            &["db:1", "--timeout", "-5s"],
            "'--timeout <TIMEOUT>': expected a positive duration such as 90s or 5m, but it is negative",
        ),
        (
            &["db:1", "--attempt-timeout", "-1ms"],
            "'--attempt-timeout <ATTEMPT_TIMEOUT>': expected a positive duration",
        ),
        (&["db:1", "--interval", "soon"], "'--interval <INTERVAL>'"),
        (&["db:1", "--step", "6/5"], "'--step <I/N>': expected I/N"),
        (
            &["db:1", "--ca-file", "/does/not/exist.pem"],
            "--ca-file /does/not/exist.pem: cannot read it",
        ),
    ];
    for (args, want) in cases {
        let (out, _) = wait(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
    }
}
