//! TLS for every HTTPS connection charmer makes (registries, published indexes): rustls with
//! the aws-lc-rs provider (the one kube uses, passed explicitly, never installed
//! process-wide), certificates verified against the system trust store plus the certificates
//! the user gave (`--ca-file`, a registry's `certs.d` folder), and a client certificate for
//! registries that require one.
//!
//! One exception to the standard (webpki) verification, the one skopeo and curl make too: a
//! server certificate byte-identical to one the user gave is trusted as it is, after its name
//! and dates are checked here. `openssl req -x509` marks the self-signed certificates most
//! private registries run with `CA:TRUE`, which webpki refuses to see at the end of a chain
//! (`CaUsedAsEndEntity`) even when the user handed over that very certificate. Nothing else
//! is loosened: any other certificate goes through the standard verifier alone.
//!
//! Failures are explained ([`TlsProblem`]): which names or dates the certificate holds,
//! who issued it, and what to give charmer to trust it.
//!
//! The system store is loaded on the first TLS handshake, not when the client is made:
//! reading and parsing its few hundred certificates takes longer than a whole re-push of ten
//! images to a plain-HTTP registry, which then never needs them.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use rustls_platform_verifier::Verifier;
use x509_parser::extensions::GeneralName;

/// Parses a PEM bundle of certificates; `Err` says why not.
pub fn parse_pem_bundle(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("not a PEM certificate bundle: {e}"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    Ok(certs)
}

/// Parses a PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC); `Err` says why not, never
/// quoting the file.
pub fn parse_pem_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|_| "holds no PEM private key".to_string())
}

/// A certificate the user told charmer to trust, and the file it came from.
#[derive(Debug, Clone)]
pub struct Trusted {
    /// The certificate.
    pub cert: CertificateDer<'static>,
    /// Its file, for messages.
    pub source: String,
}

/// A client certificate (with its chain) and its key, for a registry requiring mutual TLS.
#[derive(Debug)]
pub struct ClientCert {
    /// The certificate first, then any intermediates.
    pub chain: Vec<CertificateDer<'static>>,
    /// Its private key.
    pub key: PrivateKeyDer<'static>,
}

/// What to trust and present when talking to one server (or to any, with `site` unset).
#[derive(Debug, Default)]
pub struct TlsSetup {
    /// Certificates trusted beyond the system's.
    pub trusted: Vec<Trusted>,
    /// The client certificate to present when asked for one.
    pub client: Option<ClientCert>,
    /// The `certs.d` folder of the server these settings are for, named in hints.
    pub certs_d: Option<std::path::PathBuf>,
    /// The registry these settings are for (`HOST[:PORT]`): noted when its server asks for a
    /// client certificate and there is none ([`asked_for_client_certificate`]).
    pub site: Option<String>,
}

/// Sites whose server asked for a client certificate when charmer had none to give. A Go
/// TLS 1.3 server (the distribution registry's) refuses such a client only after the
/// handshake, with an alert; when that alert arrives before the request is sent, the HTTP
/// client reports a closed connection ("connection was not ready") instead of the alert, and
/// this is how the failure is still explained.
static ASKED_WITHOUT_CERTIFICATE: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Whether the server of `site` asked for a client certificate while charmer had none.
pub fn asked_for_client_certificate(site: &str) -> bool {
    ASKED_WITHOUT_CERTIFICATE.lock().unwrap_or_else(|e| e.into_inner()).contains(site)
}

/// No client certificate, but a note of the site whose server asks for one.
#[derive(Debug)]
struct NoClientCertificate {
    site: String,
}

impl ResolvesClientCert for NoClientCertificate {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        ASKED_WITHOUT_CERTIFICATE
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(self.site.clone());
        None
    }

    fn has_certs(&self) -> bool {
        false
    }
}

/// The client TLS configuration for `setup`: the platform's verifier (system roots and the
/// trusted certificates), created on first use, with the exact-match exception above.
pub fn client_config(setup: TlsSetup) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(LazyVerifier {
        provider: provider.clone(),
        trusted: setup.trusted,
        certs_d: setup.certs_d,
        inner: OnceLock::new(),
        announced: AtomicBool::new(false),
    });
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        // "dangerous" is rustls's name for any custom verifier; this one defers the standard
        // platform verifier's construction and adds only the exact-match exception.
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match (setup.client, setup.site) {
        (Some(client), _) => builder
            .with_client_auth_cert(client.chain, client.key)
            .map_err(|e| format!("the client certificate and key do not go together: {e}")),
        (None, Some(site)) => {
            Ok(builder.with_client_cert_resolver(Arc::new(NoClientCertificate { site })))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
    }
}

/// The platform verifier, made when the first certificate has to be checked, plus the
/// user's certificates for the exact-match exception and for messages.
struct LazyVerifier {
    provider: Arc<CryptoProvider>,
    trusted: Vec<Trusted>,
    certs_d: Option<std::path::PathBuf>,
    inner: OnceLock<Result<Verifier, rustls::Error>>,
    /// Whether the exact-match acceptance was logged (once, not per connection).
    announced: AtomicBool,
}

impl fmt::Debug for LazyVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LazyVerifier {{ trusted: {} }}", self.trusted.len())
    }
}

impl LazyVerifier {
    fn verifier(&self) -> Result<&Verifier, rustls::Error> {
        self.inner
            .get_or_init(|| {
                Verifier::new_with_extra_roots(
                    self.trusted.iter().map(|t| t.cert.clone()),
                    self.provider.clone(),
                )
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Where charmer would look for certificates for this server, for hints.
    fn where_to_trust(&self) -> String {
        match &self.certs_d {
            Some(dir) => format!("with --ca-file FILE, or as {}", dir.join("ca.crt").display()),
            None => "with --ca-file FILE".to_string(),
        }
    }
}

impl ServerCertVerifier for LazyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let error = match self.verifier()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => return Ok(verified),
            Err(error) => error,
        };
        let Some(pinned) = self.trusted.iter().find(|t| t.cert.as_ref() == end_entity.as_ref())
        else {
            return Err(explain(error, end_entity, server_name, now, &self.where_to_trust()));
        };
        check_pinned(end_entity, server_name, now)?;
        if self.announced.swap(true, Ordering::Relaxed) {
            return Ok(ServerCertVerified::assertion());
        }
        let host = server_name.to_str();
        tracing::info!(
            "{host}: accepted the server's certificate as trusted because it is \
             byte-identical to {} (its name and dates checked; it is its own issuer{})",
            pinned.source,
            if parse(end_entity).is_some_and(|c| c.is_ca()) { ", marked CA:TRUE" } else { "" }
        );
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier()?.verify_tls13_signature(message, cert, dss)
    }

    /// Asked before any certificate arrives, so answered without the roots (the platform
    /// verifier answers the same from the same provider).
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// The checks the standard verifier makes of a certificate that is its own trust anchor:
/// the name (webpki's own rules), the dates, and, when it limits its use, server use.
fn check_pinned(
    end_entity: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<(), rustls::Error> {
    let bad_encoding = || rustls::Error::InvalidCertificate(CertificateError::BadEncoding);
    let cert = parse(end_entity).ok_or_else(bad_encoding)?;
    let dates = cert.validity();
    let now_secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    if now_secs > dates.not_after.timestamp() || now_secs < dates.not_before.timestamp() {
        let dated = rustls::Error::InvalidCertificate(CertificateError::Expired);
        return Err(explain(dated, end_entity, server_name, now, ""));
    }
    let webpki_cert = webpki::EndEntityCert::try_from(end_entity).map_err(|_| bad_encoding())?;
    if webpki_cert.verify_is_valid_for_subject_name(server_name).is_err() {
        let named = rustls::Error::InvalidCertificate(CertificateError::NotValidForName);
        return Err(explain(named, end_entity, server_name, now, ""));
    }
    if let Ok(Some(usage)) = cert.extended_key_usage() {
        let host = server_name.to_str();
        if !usage.value.any && !usage.value.server_auth {
            return Err(TlsProblem::new(
                TlsProblemKind::NotForServers,
                format!("the certificate of {host} is not for TLS servers (its extendedKeyUsage lacks serverAuth)"),
                "give the registry a certificate with extendedKeyUsage=serverAuth".to_string(),
            )
            .into());
        }
    }
    Ok(())
}

fn parse<'a>(der: &'a CertificateDer<'_>) -> Option<x509_parser::certificate::X509Certificate<'a>> {
    x509_parser::parse_x509_certificate(der.as_ref()).ok().map(|(_, cert)| cert)
}

/// What kind of certificate problem a handshake met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsProblemKind {
    /// No trusted CA issued the certificate.
    UnknownIssuer,
    /// The certificate is not for the name the server was reached by.
    WrongName,
    /// The certificate is outside its dates.
    Expired,
    /// The certificate is a CA's (`CA:TRUE`) and was not given as trusted itself.
    CaAsServer,
    /// The certificate limits its use, and not to servers.
    NotForServers,
}

/// A certificate the handshake refused, explained: one line and its fix. Travels inside
/// [`rustls::Error`] (as `CertificateError::Other`) to whoever reports the failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsProblem {
    /// What kind of problem.
    pub kind: TlsProblemKind,
    /// What is wrong, naming the certificate's names, dates or issuer.
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

impl TlsProblem {
    fn new(kind: TlsProblemKind, message: String, hint: String) -> TlsProblem {
        TlsProblem { kind, message, hint }
    }

    /// The explained problem inside a rustls error, if it is one.
    pub fn of(error: &rustls::Error) -> Option<&TlsProblem> {
        match error {
            rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
                let inner: &(dyn std::error::Error + 'static) = &*other.0;
                inner.downcast_ref::<TlsProblem>()
            }
            _ => None,
        }
    }
}

impl fmt::Display for TlsProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TlsProblem {}

impl From<TlsProblem> for rustls::Error {
    fn from(problem: TlsProblem) -> rustls::Error {
        rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
            problem,
        ))))
    }
}

/// `error` as a [`TlsProblem`] naming what the certificate holds, when it is one of the
/// failures users meet (unknown issuer, wrong name, dates, a CA as server); otherwise as it
/// is. `where_to_trust` says how to give charmer a certificate.
fn explain(
    error: rustls::Error,
    end_entity: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
    where_to_trust: &str,
) -> rustls::Error {
    let Some(cert) = parse(end_entity) else { return error };
    let rustls::Error::InvalidCertificate(certificate_error) = &error else { return error };
    let subject = cert.subject().to_string();
    let host = server_name.to_str();
    let problem = match certificate_error {
        CertificateError::UnknownIssuer => TlsProblem::new(
            TlsProblemKind::UnknownIssuer,
            format!(
                "the certificate of {host} ({subject}) is issued by {}, which charmer does not trust",
                cert.issuer()
            ),
            format!(
                "trust that CA's certificate (or the registry's own self-signed one) {where_to_trust}"
            ),
        ),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            let names = names(&cert);
            let held = if names.is_empty() {
                "no subjectAltName (the CN is not used for names)".to_string()
            } else {
                names.join(", ")
            };
            TlsProblem::new(
                TlsProblemKind::WrongName,
                format!("the certificate of {host} is for {held}, not {host}"),
                format!(
                    "reach the registry by a name its certificate holds, or give it a certificate with subjectAltName={}:{host}",
                    if matches!(server_name, ServerName::IpAddress(_)) { "IP" } else { "DNS" }
                ),
            )
        }
        CertificateError::Expired
        | CertificateError::ExpiredContext { .. }
        | CertificateError::NotValidYet
        | CertificateError::NotValidYetContext { .. } => {
            let dates = cert.validity();
            let expired = now.as_secs() as i64 > dates.not_after.timestamp();
            TlsProblem::new(
                TlsProblemKind::Expired,
                format!(
                    "the certificate of {host} is {} (valid from {} to {}; now is {})",
                    if expired { "expired" } else { "not valid yet" },
                    date(dates.not_before.timestamp()),
                    date(dates.not_after.timestamp()),
                    date(now.as_secs() as i64),
                ),
                "give the registry a certificate valid now, or correct this machine's clock"
                    .to_string(),
            )
        }
        CertificateError::Other(other)
            if matches!(
                other.0.downcast_ref::<webpki::Error>(),
                Some(webpki::Error::CaUsedAsEndEntity)
            ) =>
        {
            TlsProblem::new(
                TlsProblemKind::CaAsServer,
                format!(
                    "the certificate of {host} ({subject}) is a CA certificate (CA:TRUE, as `openssl req -x509` makes) used as the server's own; charmer accepts one only when that exact certificate is given as trusted, as skopeo and curl do"
                ),
                format!("give the registry's own certificate {where_to_trust}"),
            )
        }
        _ => return error,
    };
    problem.into()
}

/// The names a certificate holds in its subjectAltName, as `DNS:name` and `IP:address`.
fn names(cert: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else { return Vec::new() };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(format!("DNS:{dns}")),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => <[u8; 4]>::try_from(*bytes)
                    .ok()
                    .map(|b| format!("IP:{}", std::net::Ipv4Addr::from(b))),
                16 => <[u8; 16]>::try_from(*bytes)
                    .ok()
                    .map(|b| format!("IP:{}", std::net::Ipv6Addr::from(b))),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// A Unix time as RFC 3339 in UTC, to the second.
fn date(seconds: i64) -> String {
    let time = if seconds >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds as u64)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs())
    };
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_bundles_are_checked() {
        assert!(parse_pem_bundle(b"hello").unwrap_err().contains("no PEM certificate"));
        assert!(parse_pem_key(b"hello").unwrap_err().contains("no PEM private key"));
        assert!(client_config(TlsSetup::default()).is_ok());
    }

    /// `openssl req -x509 -newkey ec ... -days 3650 -subj /CN=registry.test -addext
    /// "subjectAltName=DNS:registry.test,IP:10.0.0.5"`: self-signed, `CA:TRUE`, valid from
    /// 2026-12-06T06:00:01Z to 2036-12-03T06:00:01Z.
    const SELF_SIGNED: &str = "-----BEGIN CERTIFICATE-----
MIIBpTCCAUugAwIBAgIUf9lQkzZZmgNsrMzh4raOMAw22LYwCgYIKoZIzj0EAwIw
GDEWMBQGA1UEAwwNcmVnaXN0cnkudGVzdDAeFw0yNjEyMDYwNjAwMDFaFw0zNjEy
MDMwNjAwMDFaMBgxFjAUBgNVBAMMDXJlZ2lzdHJ5LnRlc3QwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAAToYAiql5vSAxCvYxd+rNS1twmZ72rkzkrJfOKAVOTcwia/
7PBNV1CJ5FDQOI5IPwAYSpIQEPr/Z8DuGI9phUnMo3MwcTAdBgNVHQ4EFgQUVY+V
kNiEELzyTRVy6/QwEvm4LfgwHwYDVR0jBBgwFoAUVY+VkNiEELzyTRVy6/QwEvm4
LfgwDwYDVR0TAQH/BAUwAwEB/zAeBgNVHREEFzAVgg1yZWdpc3RyeS50ZXN0hwQK
AAAFMAoGCCqGSM49BAMCA0gAMEUCIQDEyqhKGRKsLBL+DazvCxCcxqegrLaYzRpJ
mfBK0Go0TgIgFBHtSypEz8o6qsI+xW+x+NyvuiRiwhqxLtMJk3Vva6c=
-----END CERTIFICATE-----";

    fn verifier(trusted: bool) -> (LazyVerifier, CertificateDer<'static>) {
        let cert = parse_pem_bundle(SELF_SIGNED.as_bytes()).unwrap().remove(0);
        let trusted = if trusted {
            vec![Trusted { cert: cert.clone(), source: "tls.crt".into() }]
        } else {
            Vec::new()
        };
        let verifier = LazyVerifier {
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
            trusted,
            certs_d: Some("/etc/containers/certs.d/registry.test:5443".into()),
            inner: OnceLock::new(),
            announced: AtomicBool::new(false),
        };
        (verifier, cert)
    }

    /// The verifier's answer for the test certificate, reached as `name` at Unix time `at`.
    fn verify(trusted: bool, name: &str, at: u64) -> Result<(), TlsProblem> {
        let (verifier, cert) = verifier(trusted);
        let name = ServerName::try_from(name.to_string()).unwrap();
        let now = UnixTime::since_unix_epoch(Duration::from_secs(at));
        match verifier.verify_server_cert(&cert, &[], &name, &[], now) {
            Ok(_) => Ok(()),
            Err(e) => {
                Err(TlsProblem::of(&e).cloned().unwrap_or_else(|| panic!("unexplained: {e}")))
            }
        }
    }

    const VALID: u64 = 1_800_000_000;

    #[test]
    fn a_self_signed_ca_certificate_is_trusted_only_as_given_and_with_its_name_and_dates() {
        assert_eq!(verify(true, "registry.test", VALID), Ok(()));
        assert_eq!(verify(true, "10.0.0.5", VALID), Ok(()));

        let not_given = verify(false, "registry.test", VALID).unwrap_err();
        assert_eq!(not_given.kind, TlsProblemKind::CaAsServer);
        assert!(not_given.message.contains("(CN=registry.test) is a CA certificate (CA:TRUE"));
        assert_eq!(
            not_given.hint,
            "give the registry's own certificate with --ca-file FILE, or as \
             /etc/containers/certs.d/registry.test:5443/ca.crt"
        );

        let wrong_name = verify(true, "10.0.0.6", VALID).unwrap_err();
        assert_eq!(wrong_name.kind, TlsProblemKind::WrongName);
        assert_eq!(
            wrong_name.message,
            "the certificate of 10.0.0.6 is for DNS:registry.test, IP:10.0.0.5, not 10.0.0.6"
        );
        assert!(wrong_name.hint.ends_with("subjectAltName=IP:10.0.0.6"), "{}", wrong_name.hint);

        let expired = verify(true, "registry.test", 2_200_000_000).unwrap_err();
        assert_eq!(expired.kind, TlsProblemKind::Expired);
        assert_eq!(
            expired.message,
            "the certificate of registry.test is expired (valid from 2026-12-06T06:00:01Z to \
             2036-12-03T06:00:01Z; now is 2039-09-18T23:06:40Z)"
        );
        let early = verify(true, "registry.test", 1_700_000_000).unwrap_err();
        assert!(early.message.contains("is not valid yet"), "{}", early.message);
    }

    #[test]
    fn dates_read_as_utc() {
        assert_eq!(date(0), "1970-01-01T00:00:00Z");
        assert_eq!(date(1_800_000_000), "2027-01-15T08:00:00Z");
    }

    #[test]
    fn a_site_asked_for_a_client_certificate_it_lacks_is_noted() {
        let resolver = NoClientCertificate { site: "asks.example:5000".into() };
        assert!(!asked_for_client_certificate("asks.example:5000"));
        assert!(resolver.resolve(&[], &[]).is_none(), "none to give");
        assert!(!resolver.has_certs());
        assert!(asked_for_client_certificate("asks.example:5000"));
        assert!(!asked_for_client_certificate("other.example:5000"));
    }
}
