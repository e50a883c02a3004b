//! The one HTTP(S) client set-up every stage that talks to a server shares (registries,
//! published indexes): TLS with the system trust store plus `--ca-file`, plain HTTP only on
//! the user's explicit `--insecure-http`, the same timeouts and user agent.

pub mod tls;

use std::path::PathBuf;
use std::time::Duration;

use crate::diag::Problem;

/// How to reach servers: the flags `--ca-file` and `--insecure-http`.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// A PEM file of extra CA certificates to trust (a private registry's or mirror's CA).
    pub ca_file: Option<PathBuf>,
    /// Speak plain HTTP instead of HTTPS (only on the user's explicit request).
    pub insecure_http: bool,
}

/// Why a client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// `--ca-file` is not a PEM bundle of certificates.
    #[error("{0}")]
    CaFile(Problem),
    /// `--ca-file` could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// TLS or the HTTP client could not be initialised.
    #[error("setting up HTTPS: {0}")]
    Setup(String),
}

/// A client builder with charmer's TLS, user agent and connect timeout; callers add their
/// own read timeout and pool settings. Reads `--ca-file` now, so a bad file fails before any
/// transfer.
pub fn client_builder(options: &TlsOptions) -> Result<reqwest::ClientBuilder, TransportError> {
    let mut extra_roots = Vec::new();
    if let Some(path) = &options.ca_file {
        let label = path.display().to_string();
        let pem = std::fs::read(path)
            .map_err(|source| TransportError::Io { path: label.clone(), source })?;
        extra_roots = tls::parse_pem_bundle(&pem).map_err(|why| {
            TransportError::CaFile(
                Problem::new(&label, "", why)
                    .hint("give the server's CA certificate (BEGIN CERTIFICATE)"),
            )
        })?;
    }
    let tls = tls::client_config(extra_roots).map_err(TransportError::Setup)?;
    Ok(reqwest::Client::builder()
        .http1_only()
        .tls_backend_preconfigured(tls)
        .user_agent(concat!("charmer/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30)))
}

/// A reqwest error as one line: what kind of failure, then its causes, which is where
/// reqwest says what actually failed (refused connection, certificate not trusted, ...). The
/// URL is left out: it can carry upload session ids, and callers name what they were doing.
pub fn error_chain(error: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(error);
    while let Some(e) = source {
        parts.push(e.to_string());
        source = e.source();
    }
    let head = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else if error.is_body() || error.is_request() {
        "connection failed"
    } else {
        "HTTP error"
    };
    parts.dedup();
    if parts.is_empty() {
        head.to_string()
    } else {
        format!("{head}: {}", parts.join(": "))
    }
}
