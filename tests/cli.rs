//! The `init-injector` binary as users and pipelines run it: exit codes, what goes to
//! stdout and stderr, standard input.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_init-injector"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn injects_the_shipped_example() {
    let out = run(&["inject", "-f", "examples/app.yaml"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("- name: wait-for-postgres-shop-svc-5432"),
        "{stdout}"
    );
    assert!(stdout.contains("init.example/status:"), "{stdout}");
    assert!(
        stdout.contains("kind: Service"),
        "the Service passes through: {stdout}"
    );
}

#[test]
fn reads_standard_input_and_is_idempotent() {
    let first = run(&["inject", "-f", "examples/app.yaml"], None);
    let second = run(&["inject", "-f", "-"], Some(&text(&first.stdout)));
    assert_eq!(second.status.code(), Some(0), "{}", text(&second.stderr));
    assert_eq!(text(&second.stdout), text(&first.stdout));
}

#[test]
fn explain_prints_the_plan() {
    let out = run(&["inject", "-f", "examples/app.yaml", "--explain"], None);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("1. wait-for-postgres-shop-svc-5432: wait for postgres.shop.svc:5432"),
        "{stdout}"
    );
    assert!(stdout.contains("why here: rule 1"), "{stdout}");
}

#[test]
fn mistakes_fail_with_nothing_on_stdout() {
    let out = run(
        &[
            "inject",
            "-f",
            "examples/app.yaml",
            "-f",
            "tests/fixtures/mistakes.yaml",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("did you mean init.example/wait-for?"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was written"), "{stderr}");
}

#[test]
fn yaml_syntax_errors_name_the_line() {
    let out = run(
        &["inject", "-f", "-"],
        Some("kind: Pod\nmetadata:\n  name: [broken\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("<stdin>: document 1 (line 1): YAML syntax error at line "),
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let out = run(&["inject", "-f", "does/not/exist.yaml"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read does/not/exist.yaml"));

    let out = run(
        &[
            "inject",
            "-f",
            "examples/app.yaml",
            "--annotation-prefix",
            "Not A Prefix",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("expected a DNS subdomain"),
        "{}",
        text(&out.stderr)
    );

    let out = run(
        &[
            "inject",
            "-f",
            "examples/app.yaml",
            "--wait-memory-limit",
            "lots",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("expected a Kubernetes quantity"),
        "{}",
        text(&out.stderr)
    );

    let out = run(
        &["inject", "-f", "examples/app.yaml", "--wait-timeout", "0s"],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("it is zero"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn custom_prefix_and_wait_image() {
    let manifest = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    acme.io/wait-for: db:5432\nspec:\n  containers:\n  - name: app\n    image: app:1\n";
    let out = run(
        &[
            "inject",
            "-f",
            "-",
            "--annotation-prefix",
            "acme.io",
            "--wait-image",
            "mirror.local/ii:1",
            "--wait-memory-limit",
            "64Mi",
        ],
        Some(manifest),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("image: mirror.local/ii:1") && stdout.contains("acme.io/status"),
        "{stdout}"
    );
    assert!(stdout.contains("memory: 64Mi"), "{stdout}");
}

#[test]
fn certs_writes_a_ca_and_a_serving_certificate_for_the_service() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pki");
    let out_arg = out.to_str().unwrap();
    let result = run(
        &[
            "certs",
            "--out",
            out_arg,
            "--service",
            "ii",
            "--namespace",
            "sys",
            "--ip",
            "127.0.0.1",
        ],
        None,
    );
    assert_eq!(result.status.code(), Some(0), "{}", text(&result.stderr));
    let pem = std::fs::read(out.join("tls.crt")).unwrap();
    let (_, der) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let cert = der.parse_x509().unwrap();
    let sans: Vec<String> = cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(|name| format!("{name}"))
        .collect();
    for want in [
        "DNSName(ii)",
        "DNSName(ii.sys)",
        "DNSName(ii.sys.svc)",
        "IPAddress(7f:00:00:01)",
    ] {
        assert!(
            sans.iter().any(|san| san == want),
            "{want} missing from {sans:?}"
        );
    }
    for secret in ["tls.key", "ca-key.pem"] {
        let mode = std::fs::metadata(out.join(secret))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{secret}");
    }
    // The pair is usable by the server's own loader.
    init_injector::crypto::install_provider();
    let files = init_injector::webhook::tls::TlsFiles {
        cert: out.join("tls.crt"),
        key: out.join("tls.key"),
    };
    assert!(files.load().is_ok(), "the generated pair loads");

    let result = run(&["certs", "--out", out_arg], None);
    assert_eq!(result.status.code(), Some(2));
    assert!(text(&result.stderr).contains("at least one DNS name or IP address"));
}

#[test]
fn annotated_objects_inject_does_not_know_are_named_on_stderr() {
    let input = "\
apiVersion: apps/v1beta1
kind: Deployment
metadata:
  name: legacy
spec:
  template:
    metadata:
      annotations:
        init.example/wait-for: db:5432
---
apiVersion: apps.openshift.io/v1
kind: DeploymentConfig
metadata:
  name: web
spec:
  template:
    metadata:
      annotations:
        team: shop
";
    let out = run(&["inject", "-f", "-"], Some(input));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), input, "the output stays byte for byte");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "warning: <stdin>: document 1 (line 1): Deployment legacy (apps/v1beta1): has init.example/ annotations at /spec/template/metadata/annotations"
        ),
        "{stderr}"
    );
    assert!(
        !stderr.contains("DeploymentConfig"),
        "no warning without our annotations: {stderr}"
    );
}
