//! The code that talks to the API server, through kube's client, and nothing else does:
//! the `self` certificate mode of `serve` ([`certificates`]: a CA and serving certificate
//! kept in a Secret, the CA written into the webhook configuration's `caBundle`) and the
//! `self-test` command ([`self_test`]: a server-side dry run of an annotated pod), and the
//! InitPolicy and Namespace reflectors of `serve --watch-policies` ([`policies`]).

pub mod certificates;
pub mod policies;
pub mod self_test;

/// Why a call to the API server failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No kubeconfig and no in-cluster service account were found.
    #[error("cannot configure a client for the API server")]
    Config(#[source] kube::Error),
    /// The API server answered with an error, or could not be reached.
    #[error("{action}")]
    Api {
        action: String,
        #[source]
        source: kube::Error,
    },
    /// A certificate could not be generated.
    #[error("cannot generate the webhook's certificates")]
    Certs(#[from] crate::webhook::certs::CertError),
    /// Writing the serving certificate for the server failed.
    #[error("cannot write {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Other replicas kept changing the Secret while this one tried to settle it.
    #[error("the Secret {0} kept changing under concurrent updates; giving up this round")]
    Contended(String),
}

impl ClusterError {
    pub(crate) fn api(action: impl Into<String>) -> impl FnOnce(kube::Error) -> ClusterError {
        let action = action.into();
        move |source| ClusterError::Api { action, source }
    }
}

/// The status of an API error, when the API server sent one.
pub(crate) fn status_of(err: &kube::Error) -> Option<&kube::core::Status> {
    match err {
        kube::Error::Api(status) => Some(status),
        _ => None,
    }
}

/// A client from the kubeconfig (`KUBECONFIG`, `~/.kube/config`) or, in a pod, from the
/// mounted service account.
pub async fn client() -> Result<kube::Client, ClusterError> {
    kube::Client::try_default()
        .await
        .map_err(ClusterError::Config)
}
