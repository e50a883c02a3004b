//! A registry's `certs.d` folder, as the container tools keep them: `ROOT/HOST[:PORT]/`
//! holding CA certificates (`*.crt`) and a client certificate with its key (`NAME.cert` +
//! `NAME.key`) for registries that require mutual TLS. The roots, first folder holding the
//! host's wins (as in containers/image): `$HOME/.config/containers/certs.d`,
//! `/etc/containers/certs.d`, `/etc/docker/certs.d`; `CHARMER_CERTS_D` (a `:`-separated
//! list of roots) replaces them, for tests and for sites keeping them elsewhere.

use std::path::{Path, PathBuf};

use super::tls::{self, ClientCert, Trusted};
use super::TransportError;
use crate::diag::Problem;
use crate::io_error::IoError;

/// The environment variable that replaces the default `certs.d` roots.
pub const ENV: &str = "CHARMER_CERTS_D";

/// What a host's `certs.d` folder holds.
#[derive(Debug)]
pub struct HostCerts {
    /// The folder.
    pub dir: PathBuf,
    /// Its CA certificates.
    pub trusted: Vec<Trusted>,
    /// Its client certificate, if it has one.
    pub client: Option<ClientCert>,
    /// The client certificate's file, for `-v`.
    pub client_file: Option<String>,
}

/// The `certs.d` roots searched, in order.
pub fn roots() -> Vec<PathBuf> {
    if let Some(list) = std::env::var_os(ENV) {
        return std::env::split_paths(&list).filter(|p| !p.as_os_str().is_empty()).collect();
    }
    let mut roots = Vec::new();
    if let Some(home) = std::env::var_os("HOME") {
        roots.push(Path::new(&home).join(".config/containers/certs.d"));
    }
    roots.push(PathBuf::from("/etc/containers/certs.d"));
    roots.push(PathBuf::from("/etc/docker/certs.d"));
    roots
}

/// The `certs.d` root hints name: the first of `CHARMER_CERTS_D`, else containers' system one.
pub fn suggested_root() -> PathBuf {
    match std::env::var_os(ENV) {
        Some(_) => roots().into_iter().next().unwrap_or_default(),
        None => PathBuf::from("/etc/containers/certs.d"),
    }
}

/// The `certs.d` folder of `site` (`HOST[:PORT]`, as images name it) under the first of
/// `roots` that has one, read; `None` when none has.
pub fn load(roots: &[PathBuf], site: &str) -> Result<Option<HostCerts>, TransportError> {
    // A site is a host and port; anything with a path separator or `..` cannot name a folder
    // under a root, and is not looked up.
    if site.is_empty() || site.contains('/') || site.contains('\\') || site.starts_with('.') {
        return Ok(None);
    }
    let Some(dir) = roots.iter().map(|root| root.join(site)).find(|dir| dir.is_dir()) else {
        return Ok(None);
    };
    let io = |path: &Path, source| TransportError::Io(IoError::new(path, source));
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| io(&dir, e))?
        .map(|entry| entry.map(|e| e.path()).map_err(|e| io(&dir, e)))
        .collect::<Result<_, _>>()?;
    names.sort();
    let bad = |path: &Path, why: String, hint: &str| {
        TransportError::CaFile(Problem::new(path.display().to_string(), "", why).hint(hint))
    };
    let mut trusted = Vec::new();
    let mut clients = Vec::new();
    for path in &names {
        let label = path.display().to_string();
        match path.extension().and_then(|e| e.to_str()) {
            Some("crt") => {
                let pem = std::fs::read(path).map_err(|e| io(path, e))?;
                let certs = tls::parse_pem_bundle(&pem).map_err(|why| {
                    bad(path, why, "a .crt file in certs.d holds CA certificates (PEM)")
                })?;
                trusted
                    .extend(certs.into_iter().map(|cert| Trusted { cert, source: label.clone() }));
            }
            Some("cert") => {
                let key = path.with_extension("key");
                if !key.is_file() {
                    return Err(bad(
                        path,
                        format!("client certificate without its key {}", key.display()),
                        "put the key beside it with the same name, or name a CA certificate *.crt",
                    ));
                }
                let chain = tls::parse_pem_bundle(&std::fs::read(path).map_err(|e| io(path, e))?)
                    .map_err(|why| {
                    bad(path, why, "a .cert file holds a client certificate (PEM)")
                })?;
                let key_pem = std::fs::read(&key).map_err(|e| io(&key, e))?;
                let key_der = tls::parse_pem_key(&key_pem).map_err(|why| {
                    bad(&key, why, "the .key file beside a .cert holds its private key (PEM)")
                })?;
                clients.push((label, ClientCert { chain, key: key_der }));
            }
            Some("key") if !path.with_extension("cert").is_file() => {
                return Err(bad(
                    path,
                    "key without its client certificate".into(),
                    "put the certificate beside it as NAME.cert (CA certificates are *.crt)",
                ));
            }
            Some("key") => {}
            _ => tracing::info!("{}: ignored (certs.d uses *.crt, *.cert and *.key)", label),
        }
    }
    if clients.len() > 1 {
        let files: Vec<&str> = clients.iter().map(|(f, _)| f.as_str()).collect();
        return Err(bad(
            &dir,
            format!("more than one client certificate: {}", files.join(", ")),
            "keep the one the registry accepts",
        ));
    }
    let (client_file, client) = clients.pop().map_or((None, None), |(f, c)| (Some(f), Some(c)));
    Ok(Some(HostCerts { dir, trusted, client, client_file }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_root_holding_the_host_wins_and_pairs_are_checked() {
        let roots = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let paths: Vec<PathBuf> = roots.iter().map(|r| r.path().to_path_buf()).collect();
        assert!(load(&paths, "reg:5000").unwrap().is_none());
        assert!(load(&paths, "../etc").unwrap().is_none());
        let second = paths[1].join("reg:5000");
        std::fs::create_dir_all(&second).unwrap();
        std::fs::write(second.join("ca.crt"), "not pem").unwrap();
        let err = load(&paths, "reg:5000").unwrap_err().to_string();
        assert!(err.contains("ca.crt") && err.contains("no PEM certificate"), "{err}");
        // The first root's folder wins, even empty: the second's bad file is not read.
        std::fs::create_dir_all(paths[0].join("reg:5000")).unwrap();
        let found = load(&paths, "reg:5000").unwrap().unwrap();
        assert_eq!(found.dir, paths[0].join("reg:5000"));
        assert!(found.trusted.is_empty() && found.client.is_none());
        std::fs::write(paths[0].join("reg:5000/client.key"), "k").unwrap();
        let err = load(&paths, "reg:5000").unwrap_err().to_string();
        assert!(err.contains("key without its client certificate"), "{err}");
        std::fs::rename(paths[0].join("reg:5000/client.key"), paths[0].join("reg:5000/c.cert"))
            .unwrap();
        let err = load(&paths, "reg:5000").unwrap_err().to_string();
        assert!(err.contains("client certificate without its key"), "{err}");
    }
}
