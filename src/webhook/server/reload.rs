//! Certificate rotation: the files are re-read on a timer and a new pair is swapped in
//! for new connections when it loads.

use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;

use super::App;
use crate::webhook::tls::{PemPair, TlsFiles};

/// Re-reads the certificate files every `interval` and swaps in a new config when their
/// content changed and loads cleanly. New connections get the new certificate; open
/// ones keep theirs, so no request fails during a rotation.
pub(super) async fn watch_certificates(
    files: TlsFiles,
    rustls: RustlsConfig,
    app: Arc<App>,
    interval: Duration,
    loaded: PemPair,
) {
    // Compare with what was actually loaded, so that a change between the first load
    // and this task's start is not mistaken for the current certificate.
    let mut last_seen = Some(loaded);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let current = match files.read() {
            Ok(current) => current,
            Err(err) => {
                tracing::warn!(error = %crate::error::chain(&err), "cannot read the certificate files; keeping the current certificate");
                continue;
            }
        };
        if last_seen.as_ref() == Some(&current) {
            continue;
        }
        let (cert, key) = &current;
        match files.identity(cert, key) {
            Ok(identity) => {
                rustls.reload_from_config(identity.config);
                app.metrics.certificate_loaded(true, identity.not_after);
                tracing::info!(cert = %files.cert.display(), "serving certificate reloaded");
            }
            Err(err) => {
                app.metrics.certificate_loaded(false, None);
                tracing::warn!(error = %crate::error::chain(&err), "new certificate files do not load; keeping the current certificate");
            }
        }
        last_seen = Some(current);
    }
}
