//! Plain GETs of published files over HTTP(S), for indexes mirrored on a web server inside
//! the air gap. TLS is rustls with the aws-lc-rs provider (the one kube uses, so one crypto
//! provider serves the whole process); server certificates are checked against the system's
//! roots, which `SSL_CERT_FILE` / `SSL_CERT_DIR` can point at a private CA.

use std::time::Duration;

use super::PublishError;

/// An HTTP client with the small runtime it runs on, so synchronous callers can fetch.
#[derive(Debug)]
pub(crate) struct Http {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Http {
    /// A client with connect and read timeouts, following redirects.
    pub(crate) fn new() -> Result<Http, PublishError> {
        let error = |message: String| PublishError::Http { url: String::new(), message };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| error(format!("cannot start the HTTP runtime: {e}")))?;
        let client = reqwest::Client::builder()
            .user_agent(concat!("charmer/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| error(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Http { runtime, client })
    }

    /// GETs `url`: its body, or `None` on 404. Bodies over `limit` bytes are refused.
    pub(crate) fn get(&self, url: &str, limit: u64) -> Result<Option<Vec<u8>>, PublishError> {
        let error = |message: String| PublishError::Http { url: url.to_string(), message };
        self.runtime.block_on(async {
            let mut response = self.client.get(url).send().await.map_err(|e| error(describe(e)))?;
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
            while let Some(chunk) = response.chunk().await.map_err(|e| error(describe(e)))? {
                body.extend_from_slice(&chunk);
                if body.len() as u64 > limit {
                    return Err(too_big());
                }
            }
            Ok(Some(body))
        })
    }
}

/// The error with its causes, which is where reqwest says what actually failed (refused
/// connection, certificate not trusted, ...); the URL is already in front of the message.
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if text.contains("certificate") {
        text.push_str(
            " (hint: for a server with a private CA, point SSL_CERT_FILE at the CA's PEM file)",
        );
    }
    text
}
