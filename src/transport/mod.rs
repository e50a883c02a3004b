//! The one HTTP(S) client set-up every stage that talks to a server shares (registries,
//! published indexes): TLS with the system trust store plus `--ca-file` (and, for a
//! registry, its `certs.d` folder: [`certs_d`]), plain HTTP only on the user's explicit
//! `--insecure-http`, the same timeouts and user agent.

pub mod certs_d;
pub mod tls;

use std::path::PathBuf;
use std::time::Duration;

use crate::diag::Problem;
use crate::io_error::IoResultExt;

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
    /// A certificate or key file (`--ca-file`, a `certs.d` folder's) is not usable.
    #[error("{0}")]
    CaFile(Problem),
    /// A certificate or key file could not be read.
    #[error(transparent)]
    Io(#[from] crate::io_error::IoError),
    /// TLS or the HTTP client could not be initialised.
    #[error("setting up HTTPS: {0}")]
    Setup(String),
}

/// A client builder with charmer's TLS, user agent and connect timeout; callers add their
/// own read timeout and pool settings. Reads `--ca-file` now, so a bad file fails before any
/// transfer. For servers that are not registries (published indexes): no `certs.d`.
pub fn client_builder(options: &TlsOptions) -> Result<reqwest::ClientBuilder, TransportError> {
    builder(tls::TlsSetup { trusted: ca_file(options)?, client: None, certs_d: None, site: None })
}

/// [`client_builder`] for one registry, `site` (`HOST[:PORT]` as images name it): its
/// `certs.d` folder's CA certificates are trusted beside `--ca-file`'s, and its client
/// certificate presented. What was read is logged at `-v`.
pub fn site_client_builder(
    options: &TlsOptions,
    site: &str,
) -> Result<reqwest::ClientBuilder, TransportError> {
    let mut trusted = ca_file(options)?;
    let mut client = None;
    if !options.insecure_http {
        match certs_d::load(&certs_d::roots(), site)? {
            Some(found) => {
                let files: std::collections::BTreeSet<&str> =
                    found.trusted.iter().map(|t| t.source.as_str()).collect();
                tracing::info!(
                    "{site}: certs.d folder {}: trusting {}; client certificate: {}",
                    found.dir.display(),
                    if files.is_empty() {
                        "no CA file".to_string()
                    } else {
                        files.into_iter().collect::<Vec<_>>().join(", ")
                    },
                    found.client_file.as_deref().unwrap_or("none"),
                );
                trusted.extend(found.trusted);
                client = found.client;
            }
            None => tracing::debug!("{site}: no certs.d folder in {:?}", certs_d::roots()),
        }
    }
    let certs_d = Some(certs_d::suggested_root().join(site));
    builder(tls::TlsSetup { trusted, client, certs_d, site: Some(site.to_string()) })
}

/// Reads `--ca-file` (if given), so that a bad file fails before anything is done.
pub fn check(options: &TlsOptions) -> Result<(), TransportError> {
    ca_file(options).map(drop)
}

/// The certificates of `--ca-file`, if given.
fn ca_file(options: &TlsOptions) -> Result<Vec<tls::Trusted>, TransportError> {
    let Some(path) = &options.ca_file else { return Ok(Vec::new()) };
    let label = path.display().to_string();
    let pem = std::fs::read(path).at(&label)?;
    let certs = tls::parse_pem_bundle(&pem).map_err(|why| {
        TransportError::CaFile(Problem::new(&label, "", why).hint(
            "give the server's CA certificate, or its own self-signed one (BEGIN CERTIFICATE)",
        ))
    })?;
    Ok(certs.into_iter().map(|cert| tls::Trusted { cert, source: label.clone() }).collect())
}

fn builder(setup: tls::TlsSetup) -> Result<reqwest::ClientBuilder, TransportError> {
    let tls = tls::client_config(setup).map_err(TransportError::Setup)?;
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
    /// Plain HTTP was spoken to a server that speaks only HTTPS.
    HttpToTls,
    /// The TLS handshake failed: the certificate did not verify, or the two sides share no
    /// protocol.
    Tls {
        /// What failed: charmer's explanation ([`tls::TlsProblem`]) or rustls's account.
        message: String,
        /// The certificate's issuer is not a trusted CA.
        unknown_issuer: bool,
        /// The fix, when the failure is one charmer recognises.
        hint: Option<String>,
    },
}

impl std::fmt::Display for LastingFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LastingFailure::Refused => f.write_str("connection refused"),
            LastingFailure::UnknownHost => f.write_str("the host name does not resolve (DNS)"),
            LastingFailure::HttpToTls => {
                f.write_str("plain HTTP was sent, and the server speaks HTTPS")
            }
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
            return Some(tls_failure(tls));
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

/// Whether an answer to a plain-HTTP request is a TLS server's refusal of it: Go's TLS
/// servers (the distribution registry's) answer a bare `HTTP/1.0 400` with no headers, where
/// an HTTP server would answer in HTTP/1.1 with at least a length or a type.
pub fn is_tls_refusing_http(response: &reqwest::Response) -> bool {
    response.status() == reqwest::StatusCode::BAD_REQUEST
        && response.version() == reqwest::Version::HTTP_10
        && response.headers().get(reqwest::header::CONTENT_TYPE).is_none()
        && response.headers().get(reqwest::header::CONTENT_LENGTH).is_none()
}

/// A failed handshake as a [`LastingFailure`], explained when charmer knows the cause.
fn tls_failure(error: &rustls::Error) -> LastingFailure {
    use rustls::AlertDescription as Alert;
    if let Some(problem) = tls::TlsProblem::of(error) {
        return LastingFailure::Tls {
            message: problem.message.clone(),
            unknown_issuer: problem.kind == tls::TlsProblemKind::UnknownIssuer,
            hint: Some(problem.hint.clone()),
        };
    }
    let (message, hint) = match error {
        // The first bytes back were not a TLS record: an HTTP answer, most likely.
        rustls::Error::InvalidMessage(_) => (
            "the server did not answer in TLS; it seems to speak plain HTTP".to_string(),
            Some(
                "give --insecure-http if this registry really has no TLS (nothing is then \
                 encrypted), or check the port"
                    .to_string(),
            ),
        ),
        rustls::Error::AlertReceived(
            alert @ (Alert::CertificateRequired
            | Alert::BadCertificate
            | Alert::UnknownCA
            | Alert::CertificateUnknown
            | Alert::HandshakeFailure),
        ) => (
            format!(
                "the server refused the handshake ({alert:?}): it requires a client certificate, \
                 or does not accept the one given"
            ),
            Some(client_certificate_hint()),
        ),
        other => (other.to_string(), None),
    };
    let unknown_issuer =
        matches!(error, rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer));
    LastingFailure::Tls { message, unknown_issuer, hint }
}

/// Where a registry's client certificate goes.
fn client_certificate_hint() -> String {
    format!(
        "put the client certificate and its key (PEM) in the registry's certs.d folder as \
         client.cert and client.key ({}/HOST:PORT/)",
        certs_d::suggested_root().display()
    )
}

/// The cause of a connection to `site` that closed without an answer, when its server had
/// asked for a client certificate and there was none to give (see
/// [`tls::asked_for_client_certificate`]): the refusal's alert did not reach the request.
pub fn missing_client_certificate(site: &str) -> Option<LastingFailure> {
    tls::asked_for_client_certificate(site).then(|| LastingFailure::Tls {
        message: "the server asked for a client certificate, none is configured for it, and \
                  it closed the connection"
            .to_string(),
        unknown_issuer: false,
        hint: Some(client_certificate_hint()),
    })
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
                unknown_issuer: true,
                hint: None
            })
        );
        assert_eq!(lasting_failure(&Dns), Some(LastingFailure::UnknownHost));
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(lasting_failure(&refused), Some(LastingFailure::Refused));
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(lasting_failure(&reset), None);
    }

    #[test]
    fn a_plain_http_answer_and_a_refused_client_certificate_are_explained() {
        let failure = |e: rustls::Error| match tls_failure(&e) {
            LastingFailure::Tls { message, hint: Some(hint), .. } => (message, hint),
            other => panic!("unexplained: {other:?}"),
        };
        let not_tls = rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
        let (message, hint) = failure(not_tls);
        assert!(message.contains("seems to speak plain HTTP"), "{message}");
        assert!(hint.contains("--insecure-http"), "{hint}");
        let alert = rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired);
        let (message, hint) = failure(alert);
        assert!(message.contains("requires a client certificate"), "{message}");
        assert!(hint.contains("client.cert and client.key"), "{hint}");
    }
}
