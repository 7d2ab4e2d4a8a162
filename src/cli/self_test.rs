//! `init-injector self-test`: checks an installation end to end with a server-side dry run
//! of an annotated pod (see [`crate::cluster::self_test`]).

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::runtime;
use crate::cluster::{self, self_test::Finding, self_test::SelfTest};
use crate::engine::config;
use crate::engine::duration::parse_positive;

#[derive(Debug, Args)]
pub struct SelfTestArgs {
    /// Namespace of the dry-run pod; it must not be excluded from the webhook.
    #[arg(
        long,
        env = "INIT_INJECTOR_SELF_TEST_NAMESPACE",
        default_value = "default"
    )]
    pub namespace: String,
    /// Annotation prefix the webhook was installed with.
    #[arg(long, env = "INIT_INJECTOR_ANNOTATION_PREFIX", default_value = config::DEFAULT_PREFIX, value_parser = super::parse_prefix)]
    pub annotation_prefix: String,
    /// Image named by the dry-run pod (never pulled: nothing is stored or run).
    #[arg(long, default_value_t = config::default_wait_image())]
    pub image: String,
    /// Give up after this long.
    #[arg(long, default_value = "30s", value_parser = parse_positive)]
    pub timeout: Duration,
}

impl SelfTestArgs {
    pub fn into_test(self) -> (SelfTest, Duration) {
        (
            SelfTest {
                namespace: self.namespace,
                prefix: self.annotation_prefix,
                image: self.image,
            },
            self.timeout,
        )
    }
}

impl SelfTestArgs {
    /// Exit 0 when the dry-run pod came back injected, 1 when it did not or the API
    /// server could not be asked (the message says which).
    pub fn execute(self) -> ExitCode {
        let (test, timeout) = self.into_test();
        let runtime = match runtime(tokio::runtime::Builder::new_current_thread()) {
            Ok(runtime) => runtime,
            Err(code) => return code,
        };
        let outcome = runtime.block_on(async {
            let run = async { test.run(cluster::client().await?).await };
            tokio::time::timeout(timeout, run).await
        });
        match outcome {
            Ok(Ok(Finding::Injected { init_containers })) => {
                println!(
                    "ok: a dry-run pod in namespace {} came back injected with init containers {}",
                    test.namespace,
                    init_containers.join(", ")
                );
                ExitCode::SUCCESS
            }
            Ok(Ok(Finding::NotInjected { reason })) => {
                eprintln!("error: {reason}");
                ExitCode::FAILURE
            }
            Ok(Err(err)) => {
                eprintln!("error: {}", crate::error::chain(&err));
                ExitCode::FAILURE
            }
            Err(_) => {
                eprintln!(
                    "error: no answer from the API server within {}",
                    humantime::format_duration(timeout)
                );
                ExitCode::FAILURE
            }
        }
    }
}
