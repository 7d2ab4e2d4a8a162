//! `init-injector self-test`: checks an installation end to end with a server-side dry run
//! of an annotated pod (see [`crate::cluster::self_test`]).

use std::time::Duration;

use clap::Args;

use super::parse_duration;
use crate::cluster::self_test::SelfTest;
use crate::config;

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
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
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
