//! The one rustls crypto provider of this binary (ring): the webhook's TLS server, the
//! wait step's HTTPS client and the tests all build their rustls configs with it.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

fn ring() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The provider to pass to `builder_with_provider`.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring())
}

/// Installs the provider as the process-wide default, for code that looks it up rather
/// than being given it; later calls are no-ops.
pub fn install_provider() {
    let _ = ring().install_default();
}
