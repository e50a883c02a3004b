//! Plain GETs of published files over HTTP(S), for indexes mirrored on a web server inside
//! the air gap, with the client set-up registries use ([`crate::transport`]): the system's
//! roots plus `--ca-file`, plain HTTP only with `--insecure-http`.

use std::time::Duration;

use super::PublishError;
use crate::transport::{self, error_chain, TlsOptions, TransportError};

/// An HTTP client with the small runtime it runs on, so synchronous callers can fetch.
#[derive(Debug)]
pub(crate) struct Http {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    insecure_http: bool,
}

impl Http {
    /// A client with connect and read timeouts, following redirects.
    pub(crate) fn new(tls: &TlsOptions) -> Result<Http, PublishError> {
        let error = |message: String| PublishError::Http { url: String::new(), message };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| error(format!("cannot start the HTTP runtime: {e}")))?;
        let client = transport::client_builder(tls)
            .map_err(|e| match e {
                TransportError::CaFile(problem) => PublishError::from(problem),
                TransportError::Io(e) => PublishError::Io(e),
                TransportError::Setup(message) => error(message),
            })?
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| error(format!("cannot set up the HTTP client: {}", error_chain(&e))))?;
        Ok(Http { runtime, client, insecure_http: tls.insecure_http })
    }

    /// GETs `url`: its body, or `None` on 404. Bodies over `limit` bytes are refused.
    pub(crate) fn get(&self, url: &str, limit: u64) -> Result<Option<Vec<u8>>, PublishError> {
        let error = |message: String| PublishError::Http { url: url.to_string(), message };
        if url.starts_with("http://") && !self.insecure_http {
            return Err(error(
                "plain HTTP, without TLS: give --insecure-http to fetch it anyway, or use https://"
                    .into(),
            ));
        }
        self.runtime.block_on(async {
            let mut response =
                self.client.get(url).send().await.map_err(|e| error(describe(&e)))?;
            let status = response.status();
            if status == reqwest::StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if !status.is_success() {
                return Err(error(format!("the server answered {status}")));
            }
            let too_big = || error(format!("more than {limit} bytes"));
            if response.content_length().is_some_and(|n| n > limit) {
                return Err(too_big());
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| error(describe(&e)))? {
                body.extend_from_slice(&chunk);
                if body.len() as u64 > limit {
                    return Err(too_big());
                }
            }
            Ok(Some(body))
        })
    }
}

/// [`error_chain`] with a hint for the commonest failure inside an air gap: a server whose
/// certificate a private CA signed.
fn describe(error: &reqwest::Error) -> String {
    let mut text = error_chain(error);
    if text.contains("certificate") {
        text.push_str(" (hint: give the server's CA certificate with --ca-file)");
    }
    text
}
