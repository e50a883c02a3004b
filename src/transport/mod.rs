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

/// A connection failure that trying again a moment later will not fix: retried, it would
/// only make the user wait for the same error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LastingFailure {
    /// Nothing listens at the address.
    Refused,
    /// The host name does not resolve.
    UnknownHost,
    /// The TLS handshake failed: the certificate did not verify, or the two sides share no
    /// protocol.
    Tls {
        /// rustls's account.
        message: String,
        /// The certificate's issuer is not a trusted CA.
        unknown_issuer: bool,
    },
}

impl std::fmt::Display for LastingFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LastingFailure::Refused => f.write_str("connection refused"),
            LastingFailure::UnknownHost => f.write_str("the host name does not resolve (DNS)"),
            LastingFailure::Tls { message, .. } => write!(f, "TLS: {message}"),
        }
    }
}

/// The lasting failure somewhere in an error's chain of causes, if there is one. Looks inside
/// `io::Error`s too, which hide the error they wrap (rustls's, for TLS) from `source()`.
pub fn lasting_failure(error: &(dyn std::error::Error + 'static)) -> Option<LastingFailure> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            let unknown_issuer = matches!(
                tls,
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
            );
            return Some(LastingFailure::Tls { message: tls.to_string(), unknown_issuer });
        }
        let io = e.downcast_ref::<std::io::Error>();
        if io.is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused) {
            return Some(LastingFailure::Refused);
        }
        // hyper-util's resolver says "dns error"; getaddrinfo "failed to lookup address".
        let text = e.to_string();
        if text.starts_with("dns error") || text.contains("failed to lookup address") {
            return Some(LastingFailure::UnknownHost);
        }
        next = match io.and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Dns;
    impl std::fmt::Display for Dns {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(
                "dns error: failed to lookup address information: Name or service not known",
            )
        }
    }
    impl std::error::Error for Dns {}

    #[test]
    fn refusals_unknown_hosts_and_untrusted_certificates_are_lasting_failures() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        // As hyper-util hands it on: rustls's error in tokio-rustls's io::Error in another.
        let wrapped =
            std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, tls));
        assert_eq!(
            lasting_failure(&wrapped),
            Some(LastingFailure::Tls {
                message: "invalid peer certificate: UnknownIssuer".into(),
                unknown_issuer: true
            })
        );
        assert_eq!(lasting_failure(&Dns), Some(LastingFailure::UnknownHost));
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(lasting_failure(&refused), Some(LastingFailure::Refused));
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(lasting_failure(&reset), None);
    }
}
