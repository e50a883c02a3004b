//! The Kubernetes API server's value grammars, written out so charmer can apply them offline:
//! DNS labels and subdomains, label keys and values, resource quantities, ports, Go
//! durations; plus the shapes of text charmer recognises (PEM certificates, credentials).
//!
//! Used by `charm` (option formats checked at resolve time) and `render` (every rendered
//! object checked before anything is written), so the two stages can never disagree about
//! what a valid quantity or name is. The rules follow `k8s.io/apimachinery`'s
//! `util/validation` and `api/resource` packages; messages name the rule the way the API
//! server does, so a user can look it up.

/// The most characters of a DNS-1123 label (namespaces, Service names, container names).
pub const DNS_LABEL_MAX: usize = 63;
/// The most characters of a DNS-1123 subdomain (most object names).
pub const DNS_SUBDOMAIN_MAX: usize = 253;
/// The node ports a default cluster hands out (`--service-node-port-range`).
pub const NODE_PORTS: std::ops::RangeInclusive<i64> = 30000..=32767;

fn is_alnum_lower(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// A DNS-1123 label: 1-63 of `[a-z0-9-]`, starting and ending alphanumeric.
pub fn is_dns_label(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= DNS_LABEL_MAX
        && b.iter().all(|c| is_alnum_lower(*c) || *c == b'-')
        && is_alnum_lower(b[0])
        && is_alnum_lower(b[b.len() - 1])
}

/// A DNS-1035 label (Service names): a DNS-1123 label that starts with a letter.
pub fn is_dns1035_label(name: &str) -> bool {
    is_dns_label(name) && name.as_bytes()[0].is_ascii_lowercase()
}

/// A DNS-1123 subdomain: at most 253 characters, dot-separated parts each
/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`.
pub fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= DNS_SUBDOMAIN_MAX
        && name.split('.').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b.iter().all(|c| is_alnum_lower(*c) || *c == b'-')
                && is_alnum_lower(b[0])
                && is_alnum_lower(b[b.len() - 1])
        })
}

/// Why `name` is not a DNS-1123 subdomain, or `None` when it is one.
pub fn dns_subdomain_problem(name: &str) -> Option<String> {
    (!is_dns_subdomain(name)).then(|| {
        format!("{name:?} is not a DNS-1123 subdomain (at most {DNS_SUBDOMAIN_MAX} lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)")
    })
}

/// Why `name` is not a DNS-1123 label, or `None` when it is one.
pub fn dns_label_problem(name: &str) -> Option<String> {
    (!is_dns_label(name)).then(|| {
        format!("{name:?} is not a DNS-1123 label (at most {DNS_LABEL_MAX} lowercase letters, digits and '-', starting and ending with a letter or digit)")
    })
}

/// The name part of a qualified name (label and annotation keys) and a non-empty label
/// value: at most 63 of `[A-Za-z0-9_.-]`, starting and ending alphanumeric.
fn is_label_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= DNS_LABEL_MAX
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// Why `key` is not a valid label or annotation key (`[prefix/]name`, the prefix a DNS
/// subdomain), or `None`.
pub fn qualified_name_problem(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if prefix.is_some_and(|p| !is_dns_subdomain(p)) {
        return Some(format!("key {key:?}: the prefix before '/' must be a DNS-1123 subdomain"));
    }
    (!is_label_name(name)).then(|| {
        format!("key {key:?}: the name must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit")
    })
}

/// Why `value` is not a valid label value (empty, or like a label name), or `None`.
pub fn label_value_problem(value: &str) -> Option<String> {
    (!value.is_empty() && !is_label_name(value)).then(|| {
        format!("value {value:?} must be empty or at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit")
    })
}

/// A parsed resource quantity: its value in base units (bytes, cores), as a float (enough to
/// compare and to see fractions; the API server keeps it exact, charmer only judges it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantity(pub f64);

/// Parses a resource quantity with the API server's grammar: a signed decimal number, then a
/// binary suffix (`Ki Mi Gi Ti Pi Ei`), a decimal suffix (`n u m "" k M G T P E`) or a
/// decimal exponent (`e3`, `E-2`). `512MB`, `1.5 Gi` and `8GB` are not quantities.
pub fn parse_quantity(text: &str) -> Result<Quantity, String> {
    let bad = || {
        format!("{text:?} is not a Kubernetes quantity (a number with an optional suffix: Ki, Mi, Gi, Ti, Pi, Ei, or m, k, M, G, T, P, E; e.g. 512Mi, 250m, 2)")
    };
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let number_len = unsigned.bytes().take_while(|b| b.is_ascii_digit() || *b == b'.').count();
    let (number, suffix) = unsigned.split_at(number_len);
    let digits = number.bytes().filter(u8::is_ascii_digit).count();
    if digits == 0 || number.matches('.').count() > 1 {
        return Err(bad());
    }
    let value: f64 = number.parse().map_err(|_| bad())?;
    let scale = match suffix {
        "" => 1.0,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        exp if exp.starts_with(['e', 'E']) => {
            let e = &exp[1..];
            let unsigned_e = e.strip_prefix(['+', '-']).unwrap_or(e);
            if unsigned_e.is_empty() || !unsigned_e.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let e: i32 = e.parse().map_err(|_| bad())?;
            10f64.powi(e)
        }
        _ => return Err(bad()),
    };
    let sign = if text.starts_with('-') { -1.0 } else { 1.0 };
    Ok(Quantity(sign * value * scale))
}

/// Why `port` is not a port number (1-65535), or `None`.
pub fn port_problem(port: i64) -> Option<String> {
    (!(1..=65535).contains(&port)).then(|| format!("{port} is not a port (1-65535)"))
}

/// Why `port` is not a node port (0 lets Kubernetes pick one; else 30000-32767), or `None`.
pub fn node_port_problem(port: i64) -> Option<String> {
    (port != 0 && !NODE_PORTS.contains(&port)).then(|| {
        format!(
            "{port} is outside the node port range {}-{} (0 lets Kubernetes pick one)",
            NODE_PORTS.start(),
            NODE_PORTS.end()
        )
    })
}

/// Why `name` is not an IANA service name (a named container port: at most 15 of `[a-z0-9-]`,
/// a letter among them, no `--`, not starting or ending with `-`), or `None`.
pub fn port_name_problem(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name.bytes().all(|c| is_alnum_lower(c) || c == b'-')
        && name.bytes().any(|c| c.is_ascii_lowercase())
        && !name.contains("--")
        && !name.starts_with('-')
        && !name.ends_with('-');
    (!ok).then(|| format!("port name {name:?} must be at most 15 lowercase letters, digits and '-', with a letter, and no '--'"))
}

/// Parses a Go duration (`30s`, `1m30s`, `1.5h`, `250ms`), as Kubernetes, Istio and Knative
/// read them; returns seconds.
pub fn parse_duration(text: &str) -> Result<f64, String> {
    let bad = || {
        format!("{text:?} is not a duration (a number and a unit, repeated: ns, us, ms, s, m, h; e.g. 30s, 1m30s)")
    };
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest.is_empty() {
        return Err(bad());
    }
    if rest == "0" {
        return Ok(0.0);
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let n = rest.bytes().take_while(|b| b.is_ascii_digit() || *b == b'.').count();
        let value: f64 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let u = rest.bytes().take_while(|b| !b.is_ascii_digit() && *b != b'.').count();
        let unit = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        rest = &rest[u..];
        total += value * unit;
    }
    Ok(total)
}

/// A host name as a Gateway or VirtualService takes it: a lowercase DNS-1123 subdomain,
/// nothing else (no scheme, port, path or trailing dot).
pub fn hostname_problem(host: &str) -> Option<String> {
    if host.contains("://") || host.contains('/') || host.contains(':') {
        return Some(format!(
            "{host:?} is not a bare host name (no scheme, port or path: e.g. web.example.com)"
        ));
    }
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        return Some(format!("{host:?} must be lowercase"));
    }
    dns_subdomain_problem(host)
}

/// What `text` holds instead of only X.509 certificates in PEM, or `None` when it is one or
/// more certificates that parse. A private key is named as such: it must never be put where
/// a CA bundle goes.
pub fn pem_certificate_problem(text: &str) -> Option<String> {
    use rustls_pki_types::pem::{PemObject, SectionKind};
    use rustls_pki_types::CertificateDer;
    if pem_private_key(text) {
        return Some("holds a PEM private key, not a certificate; give the CA's certificate (-----BEGIN CERTIFICATE-----) and keep the key out of charm options".into());
    }
    let mut certificates = 0;
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(text.as_bytes()) {
        match section {
            Ok((SectionKind::Certificate, der)) => {
                let der = CertificateDer::from(der);
                if let Err(e) = webpki::EndEntityCert::try_from(&der) {
                    return Some(format!(
                        "certificate {} does not parse as X.509: {e:?}",
                        certificates + 1
                    ));
                }
                certificates += 1;
            }
            Ok((kind, _)) => {
                return Some(format!("holds a PEM {kind:?} section, not a certificate"))
            }
            Err(e) => return Some(format!("is not valid PEM: {e}")),
        }
    }
    (certificates == 0).then(|| {
        "is not a PEM certificate (no -----BEGIN CERTIFICATE----- block); in a bundle write include-file://ca.pem, on the command line @ca.pem".to_string()
    })
}

/// A PEM private key of any flavour (PKCS#1, PKCS#8, SEC1, encrypted, OpenSSH).
fn pem_private_key(text: &str) -> bool {
    text.lines().any(|l| l.starts_with("-----BEGIN ") && l.trim_end().ends_with("PRIVATE KEY-----"))
}

/// What credential `text` looks like it holds (a URL with a password, a PEM private key), or
/// `None`. Such a value belongs in a Secret, never in a plain option.
pub fn credential_kind(text: &str) -> Option<&'static str> {
    if pem_private_key(text) {
        return Some("a PEM private key");
    }
    // `scheme://user:password@host`, also where the URL crate would refuse the rest.
    let url_password = text.split_whitespace().any(|word| {
        word.split_once("://").is_some_and(|(scheme, rest)| {
            !scheme.is_empty()
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
                && rest
                    .split(['/', '?', '#'])
                    .next()
                    .and_then(|authority| authority.rsplit_once('@'))
                    .is_some_and(|(userinfo, _)| {
                        userinfo.split_once(':').is_some_and(|(_, password)| !password.is_empty())
                    })
        })
    });
    url_password.then_some("a URL with a password")
}

/// Why `text` is not an absolute URL with a scheme and a host (`http://minio.storage:9000`),
/// or `None`.
pub fn url_problem(text: &str) -> Option<String> {
    match url::Url::parse(text) {
        Ok(u) if u.host_str().is_some_and(|h| !h.is_empty()) => None,
        Ok(_) => Some(format!("{text:?} is not a URL with a host (e.g. https://host:port)")),
        Err(e) => Some(format!("{text:?} is not a URL ({e}; e.g. https://host:port)")),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn names_follow_the_api_servers_dns_rules() {
        assert!(is_dns_label("web-1"));
        for bad in ["", "Web", "-web", "web-", "a.b", &"a".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad}");
        }
        assert!(is_dns_subdomain("istio-gateway.example.com"));
        for bad in ["", "Bad_Name", "a..b", ".a", "https://web.appstore.ai/"] {
            assert!(!is_dns_subdomain(bad), "{bad}");
        }
        assert!(!is_dns1035_label("1web"));
        assert!(qualified_name_problem("app.kubernetes.io/name").is_none());
        assert!(qualified_name_problem("Bad Key").is_some());
        assert!(qualified_name_problem("Bad_Prefix/x").is_some());
        assert!(label_value_problem("").is_none());
        assert!(label_value_problem("1.2.3").is_none());
        assert!(label_value_problem("a b").is_some());
    }

    #[test]
    fn quantities_use_kubernetes_suffixes_only() {
        assert_eq!(parse_quantity("512Mi"), Ok(Quantity(512.0 * 1024.0 * 1024.0)));
        assert_eq!(parse_quantity("250m"), Ok(Quantity(0.25)));
        assert_eq!(parse_quantity("2"), Ok(Quantity(2.0)));
        assert_eq!(parse_quantity("1e3"), Ok(Quantity(1000.0)));
        assert_eq!(parse_quantity(".5"), Ok(Quantity(0.5)));
        assert_eq!(parse_quantity("-1"), Ok(Quantity(-1.0)));
        for bad in ["512MB", "8GB", "1.5 Gi", "", "Gi", "1..2", "1e", "0x10", "1ki"] {
            let err = parse_quantity(bad).unwrap_err();
            assert!(err.contains("is not a Kubernetes quantity"), "{bad}: {err}");
        }
    }

    #[test]
    fn ports_and_node_ports_have_their_ranges() {
        assert!(port_problem(8080).is_none());
        assert_eq!(port_problem(70000).unwrap(), "70000 is not a port (1-65535)");
        assert!(port_problem(0).is_some());
        assert!(node_port_problem(0).is_none());
        assert!(node_port_problem(30135).is_none());
        assert!(node_port_problem(8080).unwrap().contains("30000-32767"));
        assert!(port_name_problem("http").is_none());
        assert!(port_name_problem("http--x").is_some());
        assert!(port_name_problem("1234").is_some());
    }

    #[test]
    fn durations_are_go_durations() {
        assert_eq!(parse_duration("1m30s"), Ok(90.0));
        assert_eq!(parse_duration("250ms"), Ok(0.25));
        assert_eq!(parse_duration("0"), Ok(0.0));
        for bad in ["", "30", "1 m", "1d", "s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_names_are_bare_and_lowercase() {
        assert!(hostname_problem("web.appstore.ai").is_none());
        assert!(hostname_problem("https://web.appstore.ai/").unwrap().contains("bare host"));
        assert!(hostname_problem("Web.appstore.ai").unwrap().contains("lowercase"));
        assert!(hostname_problem("web.appstore.ai:443").is_some());
    }

    #[test]
    fn credentials_are_recognised() {
        let uri = "postgresql://mlflow:pw@10.20.0.3:5432/mlflow";
        assert_eq!(credential_kind(uri), Some("a URL with a password"));
        assert_eq!(credential_kind("http://minio.storage:9000"), None);
        assert_eq!(credential_kind("https://user@host/"), None);
        let key = "-----BEGIN EC PRIVATE KEY-----\nMHc=\n-----END EC PRIVATE KEY-----\n";
        assert_eq!(credential_kind(key), Some("a PEM private key"));
        assert_eq!(credential_kind("mlflow-db"), None);
    }

    /// A self-signed P-256 CA certificate made for these tests (valid until 2126).
    pub(crate) const TEST_CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBjDCCATGgAwIBAgIULj9tQ0qIx2RY97hsqsscf26UOacwCgYIKoZIzj0EAwIw\nGjEYMBYGA1UEAwwPY2hhcm1lciB0ZXN0IENBMCAXDTI2MTIwNjA1MTk1NloYDzIx\nMjYxMTEyMDUxOTU2WjAaMRgwFgYDVQQDDA9jaGFybWVyIHRlc3QgQ0EwWTATBgcq\nhkjOPQIBBggqhkjOPQMBBwNCAAQnFaVdG7PrlYZGtHX5x+4jurLJpAT4+c6pvtnI\n6xtVkcZPV2ZiNgsgqTH9k7T5/tYZpcFd8o4jIXv65ozcLP9bo1MwUTAdBgNVHQ4E\nFgQUhN3xn8NMdGONeWUswAEENjPVy2cwHwYDVR0jBBgwFoAUhN3xn8NMdGONeWUs\nwAEENjPVy2cwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNJADBGAiEAreGt\nHmnRPStyjog2XjBOmX63HWT4P7k7ubJ8JkqbfyYCIQDKeyNL8KN9WVP2YCt/wADr\nd3MxfUQPAxS5mPyc7GG/Qw==\n-----END CERTIFICATE-----\n";

    #[test]
    fn pem_certificates_are_parsed_and_keys_refused() {
        assert_eq!(pem_certificate_problem(TEST_CA), None);
        assert_eq!(pem_certificate_problem(&format!("{TEST_CA}{TEST_CA}")), None);
        assert!(pem_certificate_problem("ca.pem").unwrap().contains("no -----BEGIN CERTIFICATE"));
        let key = "-----BEGIN PRIVATE KEY-----\nMC4CAQA=\n-----END PRIVATE KEY-----\n";
        assert!(pem_certificate_problem(key).unwrap().contains("private key"));
        let junk = "-----BEGIN CERTIFICATE-----\nMC4CAQA=\n-----END CERTIFICATE-----\n";
        assert!(pem_certificate_problem(junk).unwrap().contains("does not parse as X.509"));
    }

    #[test]
    fn urls_need_a_host() {
        assert!(url_problem("http://minio.storage:9000").is_none());
        assert!(url_problem("minio.storage:9000").is_some());
        assert!(url_problem("/api").is_some());
    }
}
