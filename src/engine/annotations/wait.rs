//! `P/wait-for`, `P/wait-timeout` and `P/wait-interval`.

use std::time::Duration;

use super::Parser;
use super::error::quoted;
use crate::engine::duration;
use crate::engine::target::WaitTarget;

impl Parser<'_> {
    /// Comma-separated targets, in written order; a repeated target warns and is kept once.
    pub(super) fn wait_for(&mut self, key: &str, value: &str) {
        for (index, item) in value.split(',').enumerate() {
            let item = item.trim();
            match WaitTarget::parse(item) {
                Ok(target) if self.directives.waits.contains(&target) => {
                    self.directives.warnings.push(format!(
                        "annotation {key}: target {item:?} is listed more than once; waiting for it once"
                    ));
                }
                Ok(target) => self.directives.waits.push(target),
                Err(why) => {
                    let expected = if why.names_expected_form() {
                        ""
                    } else {
                        "; expected comma-separated host:port, tcp://host:port, http://… or https://…"
                    };
                    let target = quoted(item, 60);
                    self.fail(
                        key,
                        value,
                        format!("target {} ({target}): {why}{expected}", index + 1),
                    )
                }
            }
        }
    }

    /// A positive duration (`P/wait-timeout`, `P/wait-interval`).
    pub(super) fn duration(&mut self, key: &str, value: &str) -> Option<Duration> {
        match duration::parse_positive(value) {
            Ok(d) => Some(d),
            Err(err) => {
                self.fail(key, value, err.to_string());
                None
            }
        }
    }
}
