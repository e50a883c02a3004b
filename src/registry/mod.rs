//! Images without Docker: an OCI distribution client, image archives (read: OCI image layout
//! and `docker save` tarballs, plain or gzip'd; write: OCI image layout), and the engines
//! that move images between them ([`pull`] into an archive, [`push`] from one).
//!
//! The client is hand-written over `reqwest` rather than taken from `oci-client`, because
//! what the push engine must do is what that crate lacks: its push API takes every layer as
//! a `Vec<u8>` (a 2 GiB image would need 2 GiB of memory, against a 32 MiB budget), it has no
//! cross-repository mount, no way to skip a blob after a `HEAD` inside a push, and no control
//! over parallelism or retries. The protocol part needed here is small (a dozen endpoints of
//! the distribution spec plus the token handshake), so owning it costs less than working
//! around it. TLS is rustls with the aws-lc-rs provider, the one kube uses: one provider in
//! the binary, passed explicitly, never a process-wide default to race over (see [`tls`]).
//!
//! Module map: [`manifest`] (digests, media types, documents), [`tarindex`] (hostile tar
//! reading), [`archive`] (image archives → images), [`layout`] (writing tars), [`auth`]
//! (credentials, challenges, tokens), [`tls`], [`client`] (HTTP, retries), [`pull`], [`push`],
//! [`cosign`] (image signatures carried and checked),
//! [`progress`] (what the CLI draws bars from).

pub mod archive;
pub mod auth;
pub mod client;
pub mod cosign;
pub mod layout;
pub mod manifest;
pub mod mirrors;
pub mod progress;
pub mod pull;
pub mod push;
pub mod save;
pub mod tarindex;

use crate::diag::{Problem, Problems};

/// Everything that can go wrong moving images.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The input (an archive, an image list, a flag) is invalid; every problem is listed.
    #[error("{0}")]
    Invalid(Problems),
    /// A local file could not be read or written.
    #[error(transparent)]
    Io(#[from] crate::io_error::IoError),
    /// The registry answered with an error status.
    #[error("{what}: registry answered {status}{message}")]
    Http {
        /// The request, e.g. `PUT manifest 10.0.0.5:5000/app:1.0`.
        what: String,
        /// HTTP status.
        status: u16,
        /// The registry's error codes and messages, prefixed with `: `, if it gave any.
        message: String,
    },
    /// The registry cannot be reached, in a way retrying will not fix (never retried).
    #[error("cannot reach registry {host}: {cause} (hint: {})", unreachable_hint(host, cause))]
    Unreachable {
        /// The registry's host (and port).
        host: String,
        /// Why.
        cause: crate::transport::LastingFailure,
    },
    /// The connection failed or broke (retried before it is reported).
    #[error("{what}: {message}")]
    Transport {
        /// The request.
        what: String,
        /// The cause, without URL (upload URLs carry session state).
        message: String,
    },
    /// The registry refused the credentials, or asked for some and none were given.
    #[error("{host}: {message}")]
    Auth {
        /// The registry host.
        host: String,
        /// What failed; never the secret.
        message: String,
    },
    /// Content did not hash to the digest it was fetched or pushed by.
    #[error("{what}: content does not match its digest {expected} (got {actual})")]
    DigestMismatch {
        /// The blob or manifest, and where it came from.
        what: String,
        /// The digest asked for.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
}

impl RegistryError {
    /// Whether trying again may succeed: broken connections, timeouts, 5xx, 408 and 429.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Transport { .. } => true,
            RegistryError::Http { status, .. } => {
                *status >= 500 || *status == 408 || *status == 429
            }
            _ => false,
        }
    }
}

/// What to check when a registry cannot be reached.
fn unreachable_hint(host: &str, cause: &crate::transport::LastingFailure) -> String {
    use crate::transport::LastingFailure;
    match cause {
        LastingFailure::Refused => format!("is a registry listening at {host}?"),
        LastingFailure::UnknownHost => format!("check the host name in {host}"),
        LastingFailure::HttpToTls => "leave out --insecure-http: the registry speaks HTTPS \
            (trust its certificate with --ca-file or its certs.d folder if it is private)"
            .to_string(),
        LastingFailure::Tls { hint: Some(hint), .. } => hint.clone(),
        LastingFailure::Tls { unknown_issuer: true, .. } => {
            "trust the registry's CA certificate with --ca-file".to_string()
        }
        LastingFailure::Tls { .. } => {
            "check the registry's TLS set-up (--insecure-http only for a registry that speaks \
             plain HTTP)"
                .to_string()
        }
    }
}

/// A failed request: [`RegistryError::Unreachable`] when retrying cannot help, otherwise
/// [`RegistryError::Transport`] (retried).
pub(crate) fn send_error(what: &str, error: &reqwest::Error) -> RegistryError {
    let host = error.url().map(|u| {
        let host = u.host_str().unwrap_or_default();
        u.port().map_or_else(|| host.to_string(), |p| format!("{host}:{p}"))
    });
    let cause = crate::transport::lasting_failure(error).or_else(|| {
        // No answer came back, from a server that asked for the client certificate charmer
        // does not have.
        let unanswered = !error.is_body() && !error.is_decode() && error.status().is_none();
        host.as_deref()
            .filter(|_| unanswered)
            .and_then(crate::transport::missing_client_certificate)
    });
    match (cause, host) {
        (Some(cause), Some(host)) => RegistryError::Unreachable { host, cause },
        _ => RegistryError::Transport {
            what: what.to_string(),
            message: crate::transport::error_chain(error),
        },
    }
}

impl From<Problems> for RegistryError {
    fn from(p: Problems) -> Self {
        RegistryError::Invalid(p)
    }
}

impl From<Problem> for RegistryError {
    fn from(p: Problem) -> Self {
        RegistryError::Invalid(p.into())
    }
}
