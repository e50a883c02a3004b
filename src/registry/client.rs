//! The OCI distribution API over HTTP: the dozen endpoints charmer needs, authentication
//! (anonymous, basic, bearer tokens from the `WWW-Authenticate` challenge), and retries.
//!
//! TLS certificates are verified against the system's trust store plus `--ca-file` and the
//! registry's `certs.d` folder (one HTTP client per registry host, made on first use); plain
//! HTTP is spoken only when the caller asks for it ([`TlsOptions::insecure_http`]), and
//! credentials are then sent only because the user chose that. Upload URLs, tokens and
//! passwords never appear in errors or logs.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::{
    HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::Deserialize;

use super::auth::{Challenge, Credentials, Keychain};
use super::manifest::{media, Digest, ManifestDoc};
use super::RegistryError;
use crate::transport::{self, error_chain, TlsOptions, TransportError};

/// How to reach registries.
#[derive(Debug, Default)]
pub struct ClientOptions {
    /// `--ca-file` and `--insecure-http`.
    pub tls: TlsOptions,
    /// How many times to retry a transient failure (with exponential backoff).
    pub retries: u32,
    /// Where credentials come from.
    pub keychain: Keychain,
}

/// A repository on a registry: `host/name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Repo {
    /// Host with port.
    pub host: String,
    /// Repository path.
    pub name: String,
}

impl std::fmt::Display for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.host, self.name)
    }
}

/// The access a request needs, which decides the token scope asked for.
#[derive(Debug, Clone, Copy)]
enum Access<'a> {
    Pull,
    Push,
    /// Push to the repository, pull from `from` (a cross-repository mount).
    Mount(&'a str),
}

/// What starting a blob upload gave.
#[derive(Debug)]
pub enum Started {
    /// The blob was mounted from another repository: nothing to send.
    Mounted,
    /// An upload session, at this URL.
    Session(Url),
}

/// A bearer token and when to stop using it.
struct Token {
    value: String,
    expires: Instant,
}

/// A registry client shared by every task of one command.
pub struct Client {
    tls: TlsOptions,
    /// One HTTP client per registry host (its `certs.d` settings), made on first use.
    http: Mutex<HashMap<String, reqwest::Client>>,
    scheme: &'static str,
    insecure_http: bool,
    retries: u32,
    keychain: Keychain,
    credentials: Mutex<HashMap<String, Option<Credentials>>>,
    challenges: Mutex<HashMap<String, Challenge>>,
    tokens: Mutex<HashMap<(String, String), Token>>,
}

/// The longest error body read from a registry (error JSON is small; anything longer is not
/// worth holding).
const MAX_ERROR_BODY: usize = 64 << 10;

impl Client {
    /// A client; reads `--ca-file` now so a bad file fails before any transfer (a
    /// registry's `certs.d` folder is read when the registry is first asked).
    pub fn new(options: ClientOptions) -> Result<Client, RegistryError> {
        transport::check(&options.tls).map_err(transport_error)?;
        Ok(Client {
            scheme: if options.tls.insecure_http { "http" } else { "https" },
            insecure_http: options.tls.insecure_http,
            tls: options.tls,
            http: Mutex::default(),
            retries: options.retries,
            keychain: options.keychain,
            credentials: Mutex::default(),
            challenges: Mutex::default(),
            tokens: Mutex::default(),
        })
    }

    /// The HTTP client for `site` (`HOST[:PORT]`), made with its `certs.d` settings the
    /// first time.
    fn http(&self, site: &str) -> Result<reqwest::Client, RegistryError> {
        let mut clients = self.http.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = clients.get(site) {
            return Ok(client.clone());
        }
        let client = transport::site_client_builder(&self.tls, site)
            .map_err(transport_error)?
            .read_timeout(Duration::from_secs(300))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| RegistryError::Transport {
                what: "setting up HTTPS".into(),
                message: error_chain(&e),
            })?;
        clients.insert(site.to_string(), client.clone());
        Ok(client)
    }

    fn url(&self, repo: &Repo, path: &str) -> String {
        format!("{}://{}/v2/{}/{path}", self.scheme, repo.host, repo.name)
    }

    /// Runs `attempt` until it succeeds, fails for good, or has failed transiently
    /// `retries + 1` times; waits 0.5 s, 1 s, 2 s... (at most 8 s) between tries.
    pub async fn retrying<T, F, Fut>(&self, mut attempt: F) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, RegistryError>>,
    {
        let mut tries = 0;
        loop {
            match attempt().await {
                Err(e) if e.is_transient() && tries < self.retries => {
                    let wait = Duration::from_millis(500 << tries.min(4));
                    tracing::warn!("{e}; retrying in {:.1} s", wait.as_secs_f32());
                    tokio::time::sleep(wait).await;
                    tries += 1;
                }
                result => return result,
            }
        }
    }

    /// Whether the registry has the blob in the repository (and its size).
    pub async fn head_blob(
        &self,
        repo: &Repo,
        digest: &Digest,
    ) -> Result<Option<u64>, RegistryError> {
        let what = format!("HEAD blob {repo}@{digest}");
        let url = self.url(repo, &format!("blobs/{digest}"));
        let response = self.send(repo, Access::Pull, &what, &|http| http.head(&url)).await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(content_length(response.headers()).unwrap_or(0))),
            _ => Err(status_error(what, response).await),
        }
    }

    /// The digest the registry serves for a manifest reference (tag or digest), if any.
    pub async fn manifest_digest(
        &self,
        repo: &Repo,
        reference: &str,
    ) -> Result<Option<Digest>, RegistryError> {
        Ok(self.head_manifest(repo, reference).await?.and_then(|headers| digest_header(&headers)))
    }

    /// The digest of the manifest (or index) a tag points to, as `--pin-digests` records it;
    /// `None` when the registry has no such tag. A `HEAD` with every manifest type in `Accept`
    /// (so the registry answers with the stored document, never a converted one) gives it in
    /// `Docker-Content-Digest`; a registry that leaves the header out (the distribution spec
    /// allows older ones to) or gives another algorithm is asked with a `GET`, and the body's
    /// SHA-256 is the digest. The header is trusted as it is: a wrong one cannot run another
    /// image, since whatever pulls by the digest checks the content against it.
    pub async fn tag_digest(
        &self,
        repo: &Repo,
        tag: &str,
    ) -> Result<Option<Digest>, RegistryError> {
        let Some(headers) = self.head_manifest(repo, tag).await? else { return Ok(None) };
        if let Some(digest) = digest_header(&headers) {
            return Ok(Some(digest));
        }
        let max = super::tarindex::Limits::default().max_document_bytes;
        Ok(Some(self.get_manifest(repo, tag, max).await?.digest))
    }

    /// `HEAD` of a manifest with every manifest type in `Accept`: the answer's headers, or
    /// `None` when the registry has no such manifest.
    async fn head_manifest(
        &self,
        repo: &Repo,
        reference: &str,
    ) -> Result<Option<HeaderMap>, RegistryError> {
        let what = format!("HEAD manifest {repo}:{reference}");
        let url = self.url(repo, &format!("manifests/{reference}"));
        let accept = media::MANIFESTS.join(", ");
        let response = self
            .send(repo, Access::Pull, &what, &|http| http.head(&url).header(ACCEPT, &accept))
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(response.headers().clone())),
            _ => Err(status_error(what, response).await),
        }
    }

    /// Fetches a manifest or index; checks it against `reference` when that is a digest.
    pub async fn get_manifest(
        &self,
        repo: &Repo,
        reference: &str,
        max: u64,
    ) -> Result<ManifestDoc, RegistryError> {
        let what = format!(
            "GET manifest {repo}{}{reference}",
            if reference.starts_with("sha256:") { "@" } else { ":" }
        );
        let url = self.url(repo, &format!("manifests/{reference}"));
        let accept = media::MANIFESTS.join(", ");
        let response = self
            .send(repo, Access::Pull, &what, &|http| http.get(&url).header(ACCEPT, &accept))
            .await?;
        if !response.status().is_success() {
            return Err(status_error(what, response).await);
        }
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
        let bytes = read_limited(&what, response, max).await?;
        let doc = ManifestDoc::parse(bytes, content_type.as_deref())
            .map_err(|why| RegistryError::Transport { what: what.clone(), message: why })?;
        if reference.starts_with("sha256:") && doc.digest.as_str() != reference {
            return Err(RegistryError::DigestMismatch {
                what,
                expected: reference.to_string(),
                actual: doc.digest.to_string(),
            });
        }
        Ok(doc)
    }

    /// Starts fetching a blob (redirects to storage are followed); the caller reads the body.
    pub async fn get_blob(&self, repo: &Repo, digest: &Digest) -> Result<Response, RegistryError> {
        let what = format!("GET blob {repo}@{digest}");
        let url = self.url(repo, &format!("blobs/{digest}"));
        let response = self.send(repo, Access::Pull, &what, &|http| http.get(&url)).await?;
        if !response.status().is_success() {
            return Err(status_error(what, response).await);
        }
        Ok(response)
    }

    /// Starts a blob upload, or mounts `digest` from the repository `from` on the same
    /// registry (the registry may decline and start an upload instead).
    pub async fn start_upload(
        &self,
        repo: &Repo,
        mount: Option<(&Digest, &str)>,
    ) -> Result<Started, RegistryError> {
        let mut url = self.url(repo, "blobs/uploads/");
        let (what, access) = match mount {
            Some((digest, from)) => {
                url.push_str(&format!("?mount={digest}&from={from}"));
                (format!("mount {digest} from {from} into {repo}"), Access::Mount(from))
            }
            None => (format!("start upload to {repo}"), Access::Push),
        };
        let response = self
            .send(repo, access, &what, &|http| http.post(&url).header(CONTENT_LENGTH, 0))
            .await?;
        match response.status() {
            StatusCode::CREATED if mount.is_some() => Ok(Started::Mounted),
            StatusCode::ACCEPTED => Ok(Started::Session(self.location(&what, repo, &response)?)),
            _ => Err(status_error(what, response).await),
        }
    }

    /// Sends a blob's bytes into an upload session in one streamed `PATCH`; `body` makes the
    /// stream (again, if authentication has to be redone). Returns the next session URL.
    pub async fn upload(
        &self,
        repo: &Repo,
        session: &Url,
        size: u64,
        body: &(dyn Fn() -> reqwest::Body + Send + Sync),
    ) -> Result<Url, RegistryError> {
        let what = format!("upload to {repo}");
        let make = |http: &reqwest::Client| {
            http.patch(session.clone())
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, size)
                .body(body())
        };
        let response = self.send(repo, Access::Push, &what, &make).await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(status_error(what, response).await);
        }
        self.location(&what, repo, &response)
    }

    /// Completes an upload: the registry checks the bytes it got against `digest`.
    pub async fn commit_upload(
        &self,
        repo: &Repo,
        session: &Url,
        digest: &Digest,
    ) -> Result<(), RegistryError> {
        let what = format!("commit blob {repo}@{digest}");
        let mut url = session.clone();
        url.query_pairs_mut().append_pair("digest", digest.as_str());
        let response = self
            .send(repo, Access::Push, &what, &|http| {
                http.put(url.clone()).header(CONTENT_LENGTH, 0)
            })
            .await?;
        if response.status() != StatusCode::CREATED {
            return Err(status_error(what, response).await);
        }
        check_digest_header(&what, response.headers(), digest)
    }

    /// Abandons an upload session (best effort: the registry expires it anyway).
    pub async fn cancel_upload(&self, repo: &Repo, session: &Url) {
        let what = format!("cancel upload to {repo}");
        let _ = self
            .send(repo, Access::Push, &what, &|http| http.request(Method::DELETE, session.clone()))
            .await;
    }

    /// Stores a manifest under `reference` (a tag, or its digest); checks the digest the
    /// registry computed.
    pub async fn put_manifest(
        &self,
        repo: &Repo,
        reference: &str,
        doc: &ManifestDoc,
    ) -> Result<(), RegistryError> {
        self.put_manifest_headers(repo, reference, doc).await.map(drop)
    }

    /// [`Client::put_manifest`], returning the response's headers (`OCI-Subject` says the
    /// registry indexed the manifest's `subject` for the referrers API).
    pub async fn put_manifest_headers(
        &self,
        repo: &Repo,
        reference: &str,
        doc: &ManifestDoc,
    ) -> Result<HeaderMap, RegistryError> {
        let what = format!(
            "PUT manifest {repo}{}{reference}",
            if reference.starts_with("sha256:") { "@" } else { ":" }
        );
        let url = self.url(repo, &format!("manifests/{reference}"));
        let make = |http: &reqwest::Client| {
            http.put(&url).header(CONTENT_TYPE, &doc.media_type).body(doc.bytes.clone())
        };
        let response = self.send(repo, Access::Push, &what, &make).await?;
        if response.status() != StatusCode::CREATED {
            return Err(status_error(what, response).await);
        }
        check_digest_header(&what, response.headers(), &doc.digest)?;
        Ok(response.headers().clone())
    }

    /// Every tag of a repository (following `Link` pagination); empty when the repository
    /// does not exist.
    pub async fn tags(&self, repo: &Repo, max: u64) -> Result<Vec<String>, RegistryError> {
        #[derive(Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let what = format!("GET tags {repo}");
        let mut url = self.url(repo, "tags/list");
        let mut tags = Vec::new();
        for _ in 0..1000 {
            let response = self.send(repo, Access::Pull, &what, &|http| http.get(&url)).await?;
            if response.status() == StatusCode::NOT_FOUND {
                return Ok(tags);
            }
            if !response.status().is_success() {
                return Err(status_error(what, response).await);
            }
            let next = next_link(response.headers());
            let bytes = read_limited(&what, response, max).await?;
            let page: TagList =
                serde_json::from_slice(&bytes).map_err(|e| RegistryError::Transport {
                    what: what.clone(),
                    message: format!("not a tag list: {e}"),
                })?;
            tags.extend(page.tags.unwrap_or_default());
            match next {
                Some(path) => url = format!("{}://{}{path}", self.scheme, repo.host),
                None => return Ok(tags),
            }
        }
        Err(RegistryError::Transport { what, message: "more than 1000 pages of tags".into() })
    }

    /// The referrers API (`GET /v2/<name>/referrers/<digest>`): the index listing the
    /// manifests whose `subject` is `digest`, or `None` when the registry does not offer
    /// the API (a 404), so the caller falls back to the referrers tag.
    pub async fn referrers(
        &self,
        repo: &Repo,
        digest: &Digest,
        max: u64,
    ) -> Result<Option<ManifestDoc>, RegistryError> {
        let what = format!("GET referrers {repo}@{digest}");
        let url = self.url(repo, &format!("referrers/{digest}"));
        let response = self
            .send(repo, Access::Pull, &what, &|http| {
                http.get(&url).header(ACCEPT, media::OCI_INDEX)
            })
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(status_error(what, response).await);
        }
        let bytes = read_limited(&what, response, max).await?;
        ManifestDoc::parse(bytes, Some(media::OCI_INDEX))
            .map(Some)
            .map_err(|why| RegistryError::Transport { what, message: why })
    }

    /// A whole (small) blob, checked against its digest.
    pub async fn get_blob_bytes(
        &self,
        repo: &Repo,
        digest: &Digest,
        max: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        let what = format!("GET blob {repo}@{digest}");
        let response = self.get_blob(repo, digest).await?;
        let bytes = read_limited(&what, response, max).await?;
        let actual = Digest::of(&bytes);
        if &actual != digest {
            return Err(RegistryError::DigestMismatch {
                what,
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(bytes)
    }

    /// Uploads a (small) blob held in memory, unless the repository has it already.
    pub async fn put_blob_bytes(&self, repo: &Repo, bytes: &[u8]) -> Result<(), RegistryError> {
        let digest = Digest::of(bytes);
        if self.head_blob(repo, &digest).await?.is_some() {
            return Ok(());
        }
        let Started::Session(session) = self.start_upload(repo, None).await? else {
            return Ok(());
        };
        let body = bytes::Bytes::copy_from_slice(bytes);
        let make = || reqwest::Body::from(body.clone());
        let next = self.upload(repo, &session, bytes.len() as u64, &make).await?;
        self.commit_upload(repo, &next, &digest).await
    }

    /// The absolute URL of a response's `Location` (registries may send a relative one).
    fn location(&self, what: &str, repo: &Repo, response: &Response) -> Result<Url, RegistryError> {
        let base = Url::parse(&format!("{}://{}/", self.scheme, repo.host))
            .map_err(|e| RegistryError::Transport { what: what.into(), message: e.to_string() })?;
        response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| base.join(v).ok())
            .ok_or_else(|| RegistryError::Transport {
                what: what.into(),
                message: "the registry gave no upload location".into(),
            })
    }

    /// Sends a request made by `make`, authenticating as the registry asks: on a 401 the
    /// challenge is recorded and the request made and sent again with credentials.
    async fn send(
        &self,
        repo: &Repo,
        access: Access<'_>,
        what: &str,
        make: &(dyn Fn(&reqwest::Client) -> RequestBuilder + Send + Sync),
    ) -> Result<Response, RegistryError> {
        let scopes = scopes(repo, access);
        let http = self.http(&repo.host)?;
        let mut tries = 0;
        loop {
            let authorization = self.authorization(&repo.host, &scopes).await?;
            let mut request = make(&http);
            if let Some(value) = &authorization {
                request = request.header(AUTHORIZATION, value);
            }
            let response = request.send().await.map_err(|e| super::send_error(what, &e))?;
            if self.insecure_http && transport::is_tls_refusing_http(&response) {
                return Err(RegistryError::Unreachable {
                    host: repo.host.clone(),
                    cause: transport::LastingFailure::HttpToTls,
                });
            }
            if response.status() != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            let challenge = response
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(Challenge::parse);
            let Some(challenge) = challenge else {
                return Err(RegistryError::Auth {
                    host: repo.host.clone(),
                    message: format!(
                        "{what}: refused (401) without a usable authentication challenge"
                    ),
                });
            };
            self.challenges
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(repo.host.clone(), challenge.clone());
            self.tokens
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&(repo.host.clone(), scopes.join(" ")));
            let has_credentials = self.credentials(&repo.host)?.is_some();
            // Once after going anonymous (now we know how to log in), once more for a bearer
            // token (it may have expired in flight); after that the answer is final.
            let retry = match challenge {
                Challenge::Basic => authorization.is_none() && has_credentials,
                Challenge::Bearer { .. } => tries == 0,
            };
            tries += 1;
            if !retry {
                let message = if has_credentials {
                    format!("{what}: credentials refused (401)")
                } else {
                    format!("{what}: the registry asks for a login")
                };
                return Err(RegistryError::Auth { host: repo.host.clone(), message });
            }
        }
    }

    /// Whether `host` refused an anonymous request with a `Basic` challenge: a pull without
    /// a login (a kubelet's with no pull secret) is refused there. A bearer challenge does
    /// not say: token services hand anonymous tokens for public repositories.
    pub fn asked_for_login(&self, host: &str) -> bool {
        let challenges = self.challenges.lock().unwrap_or_else(|e| e.into_inner());
        matches!(challenges.get(host), Some(Challenge::Basic))
    }

    fn credentials(&self, host: &str) -> Result<Option<Credentials>, RegistryError> {
        if let Some(found) = self.credentials.lock().unwrap_or_else(|e| e.into_inner()).get(host) {
            return Ok(found.clone());
        }
        let found = self.keychain.get(host)?;
        self.credentials
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(host.to_string(), found.clone());
        Ok(found)
    }

    /// The `Authorization` value for a request to `host` needing `scopes`, once the host has
    /// challenged us; `None` before (anonymous first).
    async fn authorization(
        &self,
        host: &str,
        scopes: &[String],
    ) -> Result<Option<String>, RegistryError> {
        let challenge =
            self.challenges.lock().unwrap_or_else(|e| e.into_inner()).get(host).cloned();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.credentials(host)?.map(|c| c.basic_header())),
            Some(Challenge::Bearer { realm, service }) => {
                let key = (host.to_string(), scopes.join(" "));
                if let Some(token) = self.tokens.lock().unwrap_or_else(|e| e.into_inner()).get(&key)
                {
                    if token.expires > Instant::now() {
                        return Ok(Some(format!("Bearer {}", token.value)));
                    }
                }
                let token = self.fetch_token(host, &realm, service.as_deref(), scopes).await?;
                let value = format!("Bearer {}", token.value);
                self.tokens.lock().unwrap_or_else(|e| e.into_inner()).insert(key, token);
                Ok(Some(value))
            }
        }
    }

    /// Gets a bearer token from the realm the registry named, with the credentials for
    /// `host` if there are any (anonymous otherwise).
    async fn fetch_token(
        &self,
        host: &str,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<Token, RegistryError> {
        let fail = |message: String| RegistryError::Auth { host: host.to_string(), message };
        let mut url = Url::parse(realm)
            .map_err(|_| fail("the registry named an invalid token service".into()))?;
        let credentials = self.credentials(host)?;
        if url.scheme() != "https" && credentials.is_some() && !self.insecure_http {
            return Err(fail("the token service is not HTTPS; refusing to send credentials to it (use --insecure-http to allow)".into()));
        }
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            for scope in scopes {
                query.append_pair("scope", scope);
            }
        }
        let host = url.host_str().unwrap_or_default();
        let site = url.port().map_or_else(|| host.to_string(), |port| format!("{host}:{port}"));
        let mut request = self.http(&site)?.get(url);
        if let Some(credentials) = &credentials {
            request = request.header(AUTHORIZATION, credentials.basic_header());
        }
        let what = "token request".to_string();
        let response = request.send().await.map_err(|e| super::send_error(&what, &e))?;
        match response.status() {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(fail("the token service refused the credentials".into()))
            }
            s if !s.is_success() => return Err(status_error(what, response).await),
            _ => {}
        }
        let bytes = read_limited(&what, response, MAX_ERROR_BODY as u64).await?;
        let answer = super::auth::TokenAnswer::parse(&bytes).map_err(|e| fail(e.to_string()))?;
        Ok(Token { value: answer.token, expires: Instant::now() + answer.lifetime })
    }
}

/// A client set-up failure as the registry's error.
fn transport_error(error: TransportError) -> RegistryError {
    match error {
        TransportError::CaFile(problem) => RegistryError::from(problem),
        TransportError::Io(e) => RegistryError::Io(e),
        TransportError::Setup(message) => {
            RegistryError::Transport { what: "setting up HTTPS".into(), message }
        }
    }
}

/// Token scopes for an access to a repository.
fn scopes(repo: &Repo, access: Access<'_>) -> Vec<String> {
    match access {
        Access::Pull => vec![format!("repository:{}:pull", repo.name)],
        Access::Push => vec![format!("repository:{}:pull,push", repo.name)],
        Access::Mount(from) => {
            vec![format!("repository:{}:pull,push", repo.name), format!("repository:{from}:pull")]
        }
    }
}

/// A `Docker-Content-Digest` header that is a sha256 digest.
fn digest_header(headers: &HeaderMap) -> Option<Digest> {
    headers.get("docker-content-digest")?.to_str().ok()?.parse().ok()
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn check_digest_header(
    what: &str,
    headers: &HeaderMap,
    expected: &Digest,
) -> Result<(), RegistryError> {
    match headers.get("docker-content-digest").and_then(|v| v.to_str().ok()) {
        Some(actual) if actual != expected.as_str() => Err(RegistryError::DigestMismatch {
            what: what.to_string(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        }),
        _ => Ok(()),
    }
}

/// The path of a `Link: </v2/...?last=x&n=y>; rel="next"` header, if any.
fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = headers.get("link")?.to_str().ok()?;
    let (target, rel) = link.split_once(';')?;
    let path = target.trim().strip_prefix('<')?.strip_suffix('>')?;
    (rel.contains("rel=\"next\"") && path.starts_with("/v2/")).then(|| path.to_string())
}

/// Reads a whole (small) response body, refusing more than `max` bytes.
async fn read_limited(
    what: &str,
    mut response: Response,
    max: u64,
) -> Result<Vec<u8>, RegistryError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| RegistryError::Transport {
        what: what.to_string(),
        message: error_chain(&e),
    })? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > max {
            return Err(RegistryError::Transport {
                what: what.to_string(),
                message: format!("answer larger than {max} bytes"),
            });
        }
    }
    Ok(bytes)
}

/// The error for an unexpected status, with the registry's error codes and messages.
async fn status_error(what: String, response: Response) -> RegistryError {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let status = response.status().as_u16();
    let body = read_limited(&what, response, MAX_ERROR_BODY as u64).await.unwrap_or_default();
    let message = serde_json::from_slice::<Errors>(&body)
        .map(|e| {
            e.errors
                .iter()
                .map(|e| format!("{} {}", e.code, e.message).trim().to_string())
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default();
    let message = if message.is_empty() { String::new() } else { format!(": {message}") };
    RegistryError::Http { what, status, message }
}
