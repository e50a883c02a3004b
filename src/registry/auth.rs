//! Registry credentials and the authentication handshake's pure parts.
//!
//! Credentials come from the command line (`--username` + `--password-stdin`, for one
//! registry) or from Docker's `config.json` (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`): `credHelpers`, then `credsStore`, then `auths`. A password is
//! held in [`Credentials`], whose `Debug` prints `<secret>`; nothing here formats it
//! anywhere but into an `Authorization` header.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use serde::Deserialize;

use super::RegistryError;
use crate::diag::Problem;
use crate::io_error::IoError;

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    password: String,
}

impl Credentials {
    /// Credentials from a user name and a password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials { username: username.into(), password: password.into() }
    }

    /// The `Authorization` header value for HTTP basic authentication.
    pub(crate) fn basic_header(&self) -> String {
        let pair = format!("{}:{}", self.username, self.password);
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials {{ username: {:?}, password: <secret> }}", self.username)
    }
}

/// Where credentials for each registry host come from.
#[derive(Debug, Default)]
pub struct Keychain {
    explicit: Option<(String, Credentials)>,
    config: Option<DockerConfig>,
}

/// The parts of Docker's `config.json` that hold credentials.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerConfig {
    #[serde(skip)]
    path: PathBuf,
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
}

/// One `auths` entry: `auth` is base64 of `user:password`; some tools write the two fields.
#[derive(Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

impl fmt::Debug for AuthEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthEntry { <secret> }")
    }
}

/// What a credential helper prints for `get`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperAnswer {
    username: String,
    secret: String,
}

impl Keychain {
    /// A keychain with `explicit` credentials for one host (from the command line) over
    /// Docker's config file, read from `DOCKER_CONFIG` or `HOME` (absent file: no entries).
    pub fn new(explicit: Option<(String, Credentials)>) -> Result<Keychain, RegistryError> {
        let dir = std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".docker")));
        let config = match dir {
            Some(dir) => DockerConfig::load(&dir.join("config.json"))?,
            None => None,
        };
        Ok(Keychain { explicit, config })
    }

    /// Credentials for `host`, if any are configured. Runs a credential helper when the
    /// config names one for the host.
    pub fn get(&self, host: &str) -> Result<Option<Credentials>, RegistryError> {
        if let Some((explicit_host, credentials)) = &self.explicit {
            if explicit_host == host {
                tracing::info!("{host}: credentials from the command line");
                return Ok(Some(credentials.clone()));
            }
        }
        let Some(config) = &self.config else {
            tracing::info!("{host}: no credentials (no Docker config.json)");
            return Ok(None);
        };
        let file = config.path.display();
        if let Some(helper) =
            config.cred_helpers.iter().find(|(key, _)| config_host(key) == host).map(|(_, h)| h)
        {
            tracing::info!(
                "{host}: credentials from docker-credential-{helper} ({file} credHelpers)"
            );
            return run_helper(helper, host);
        }
        if let Some(store) = &config.creds_store {
            if let Some(found) = run_helper(store, host)? {
                tracing::info!(
                    "{host}: credentials from docker-credential-{store} ({file} credsStore)"
                );
                return Ok(Some(found));
            }
        }
        let Some(entry) =
            config.auths.iter().find(|(key, _)| config_host(key) == host).map(|(_, e)| e)
        else {
            tracing::info!("{host}: no credentials in {file}");
            return Ok(None);
        };
        tracing::info!("{host}: credentials from {file} auths");
        let bad = || {
            Problem::new(
                config.path.display().to_string(),
                format!("auths.{host}"),
                "not a base64 user:password pair",
            )
        };
        if let Some(auth) = &entry.auth {
            let decoded =
                base64::engine::general_purpose::STANDARD.decode(auth.trim()).map_err(|_| bad())?;
            let text = String::from_utf8(decoded).map_err(|_| bad())?;
            let (user, password) = text.split_once(':').ok_or_else(bad)?;
            return Ok(Some(Credentials::new(user, password)));
        }
        Ok(entry
            .username
            .as_ref()
            .zip(entry.password.as_ref())
            .map(|(u, p)| Credentials::new(u.clone(), p.clone())))
    }
}

impl DockerConfig {
    fn load(path: &Path) -> Result<Option<DockerConfig>, RegistryError> {
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(RegistryError::Io(IoError::new(path, source))),
        };
        // The parse error is reported by line and column only: serde's message could quote
        // part of the file, which holds secrets.
        let mut config: DockerConfig = serde_json::from_slice(&text).map_err(|e| {
            Problem::new(
                path.display().to_string(),
                "",
                format!("not a valid Docker config (line {}, column {})", e.line(), e.column()),
            )
        })?;
        config.path = path.to_path_buf();
        Ok(Some(config))
    }
}

/// The host a `config.json` key names: keys may be `host`, `host:port` or a URL.
fn config_host(key: &str) -> &str {
    let key = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    key.split('/').next().unwrap_or(key)
}

/// Runs `docker-credential-<helper> get` for `host`; "not found" is `None`.
fn run_helper(helper: &str, host: &str) -> Result<Option<Credentials>, RegistryError> {
    let program = format!("docker-credential-{helper}");
    let fail = |message: String| RegistryError::Auth { host: host.to_string(), message };
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| fail(format!("cannot run the credential helper {program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading is reported by its exit status below.
        let _ = stdin.write_all(host.as_bytes());
    }
    let output =
        child.wait_with_output().map_err(|e| fail(format!("credential helper {program}: {e}")))?;
    if !output.status.success() {
        // The helper protocol's answer for a host it holds nothing for; any other failure is
        // an error, as Docker makes it (going on anonymously would hide a broken helper).
        // Its output is not quoted: it may hold a secret.
        if String::from_utf8_lossy(&output.stdout).contains("credentials not found") {
            return Ok(None);
        }
        return Err(fail(format!(
            "the credential helper {program} failed ({}); run `echo {host} | {program} get` to see why",
            output.status
        )));
    }
    let answer: HelperAnswer = serde_json::from_slice(&output.stdout).map_err(|_| {
        fail(format!("credential helper {program} printed something other than credentials"))
    })?;
    Ok(Some(Credentials::new(answer.username, answer.secret)))
}

/// How a registry asks clients to authenticate (its `WWW-Authenticate` header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// HTTP basic authentication on every request.
    Basic,
    /// The token flow: get a bearer token from `realm` for a scope, then send it.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The `service` parameter to pass to it.
        service: Option<String>,
    },
}

impl Challenge {
    /// Parses a `WWW-Authenticate` value (`Bearer realm="...",service="..."` or `Basic ...`).
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(char::is_whitespace).unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Challenge::Basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let params = parse_params(rest);
        Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
        })
    }
}

/// A token service's answer: the bearer token and how long to use it.
#[derive(Debug, PartialEq, Eq)]
pub struct TokenAnswer {
    /// The token (`token`, or OAuth2's `access_token`).
    pub token: String,
    /// How long to use it before asking again.
    pub lifetime: std::time::Duration,
}

impl TokenAnswer {
    /// Tokens live 60 s unless the answer says otherwise (the spec's default).
    const DEFAULT_SECONDS: u64 = 60;
    /// Bounds on a stated lifetime: at least 10 s, and no more than a day, so that a huge
    /// `expires_in` from a hostile service cannot overflow the clock.
    const SECONDS: std::ops::RangeInclusive<u64> = 10..=86_400;

    /// Parses the JSON a token service answers; the error says what was wrong, without
    /// quoting the body (it may hold a token).
    pub fn parse(body: &[u8]) -> Result<TokenAnswer, &'static str> {
        #[derive(Deserialize)]
        struct Answer {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let answer: Answer = serde_json::from_slice(body)
            .map_err(|_| "the token service answered something other than a token")?;
        let token = answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or("the token service gave no token")?;
        let seconds = answer
            .expires_in
            .unwrap_or(Self::DEFAULT_SECONDS)
            .clamp(*Self::SECONDS.start(), *Self::SECONDS.end());
        // Renewed a little early, so a token never expires between being picked and checked.
        Ok(TokenAnswer { token, lifetime: std::time::Duration::from_secs(seconds - 5) })
    }
}

/// `key="value", key2=token` pairs (RFC 7235 auth-params), keys lowercased.
fn parse_params(text: &str) -> BTreeMap<String, String> {
    let mut params = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',')).collect();
        if key.is_empty() || chars.next() != Some('=') {
            return params;
        }
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value.extend(std::iter::from_fn(|| chars.next_if(|c| *c != ',')));
        }
        params.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn challenges_parse() {
        let header = r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#;
        assert_eq!(
            Challenge::parse(header),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into())
            })
        );
        assert_eq!(Challenge::parse(r#"Basic realm="Registry Realm""#), Some(Challenge::Basic));
        assert_eq!(Challenge::parse("Bearer service=x"), None);
        assert_eq!(Challenge::parse("Negotiate"), None);
        let escaped = parse_params(r#"realm="a\"b", x=y"#);
        assert_eq!((escaped["realm"].as_str(), escaped["x"].as_str()), ("a\"b", "y"));
    }

    #[test]
    fn token_answers_parse_and_their_lifetimes_are_bounded() {
        let answer = TokenAnswer::parse(br#"{"access_token":"t","expires_in":300}"#).unwrap();
        assert_eq!(answer, TokenAnswer { token: "t".into(), lifetime: Duration::from_secs(295) });
        let answer = TokenAnswer::parse(br#"{"token":"t"}"#).unwrap();
        assert_eq!(answer.lifetime, Duration::from_secs(55));
        // A hostile lifetime once overflowed `Instant + Duration` (a panic).
        let answer = TokenAnswer::parse(br#"{"token":"t","expires_in":18446744073709551615}"#);
        assert_eq!(answer.unwrap().lifetime, Duration::from_secs(86_395));
        assert!(std::time::Instant::now().checked_add(Duration::from_secs(86_395)).is_some());
        assert_eq!(
            TokenAnswer::parse(br#"{"token":"t","expires_in":0}"#).unwrap().lifetime,
            Duration::from_secs(5)
        );
        assert_eq!(TokenAnswer::parse(br#"{"token":""}"#), Err("the token service gave no token"));
        assert!(TokenAnswer::parse(b"<html>").is_err());
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let c = Credentials::new("alice", "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.basic_header(), "Basic YWxpY2U6aHVudGVyMg==");
    }

    #[test]
    fn docker_config_entries_are_found_by_host() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"auths":{"https://10.0.0.5:5000/v1/":{"auth":"dTpw"},"other:1":{"username":"x","password":"y"}}}"#).unwrap();
        let keychain = Keychain { explicit: None, config: DockerConfig::load(&path).unwrap() };
        assert_eq!(keychain.get("10.0.0.5:5000").unwrap(), Some(Credentials::new("u", "p")));
        assert_eq!(keychain.get("other:1").unwrap(), Some(Credentials::new("x", "y")));
        assert_eq!(keychain.get("nowhere").unwrap(), None);
        std::fs::write(&path, r#"{"auths":{"h":{"auth":"secret-not-base64!"}}"#).unwrap();
        let err = DockerConfig::load(&path).unwrap_err().to_string();
        assert!(!err.contains("secret-not-base64"), "{err}");
    }
}
