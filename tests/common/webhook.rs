//! A `serve` process on 127.0.0.1 with a fresh certificate for that address, for the e2e
//! tests that register the webhook by `clientConfig.url` (the API server runs in the same
//! network namespace). Its JSON log goes to `webhook-NAME.log` in the e2e logs directory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use super::node::logs_dir;
use super::{generate, logged_addr, serve_command};

pub struct Webhook {
    pub child: Child,
    pub addr: SocketAddr,
    /// The CA that signed its certificate, for the `caBundle`.
    pub ca_pem: String,
    pub log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Webhook {
    /// Starts `serve` with `extra` flags and returns once it listens.
    pub fn start(name: &str, extra: &[&str]) -> Webhook {
        let dir = tempfile::tempdir().unwrap();
        let generated = generate();
        init_injector::webhook::certs::write(&generated, dir.path()).unwrap();
        let log_path = logs_dir().join(format!("webhook-{name}.log"));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = serve_command()
            .arg("--tls-cert")
            .arg(dir.path().join("tls.crt"))
            .arg("--tls-key")
            .arg(dir.path().join("tls.key"))
            .args(extra)
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = loop {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            if let Some(addr) = text.lines().find_map(logged_addr) {
                break addr;
            }
            assert!(Instant::now() < deadline, "serve did not start: {text}");
            std::thread::sleep(Duration::from_millis(50));
        };
        Webhook {
            child,
            addr,
            ca_pem: generated.ca_cert_pem,
            log_path,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("https://{}/mutate", self.addr)
    }

    /// SIGTERM, then wait for the exit.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
