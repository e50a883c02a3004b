//! A read-only registry that serves the OCI referrers API, which Debian's docker-registry
//! 2.8 does not (it answers 404 to `GET /v2/<name>/referrers/<digest>`): the content of an
//! OCI image layout folder on a free 127.0.0.1 port, over plain HTTP. Manifests by tag or
//! digest, blobs by digest (`GET` and `HEAD`), and the referrers of a digest: every manifest
//! of the folder whose `subject` names it, listed as the distribution spec 1.1 says. One
//! namespace for every repository (the folder is content-addressed). Stops when dropped.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use serde_json::{json, Value};

/// A running server.
pub struct ReferrersRegistry {
    /// `127.0.0.1:PORT`.
    pub host: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ReferrersRegistry {
    /// Serves the layout in `dir`, with `tags` (tag → `sha256:HEX`) for every repository.
    pub fn serve(dir: PathBuf, tags: BTreeMap<String, String>) -> ReferrersRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    answer(stream, &dir, &tags);
                }
            }
        });
        ReferrersRegistry { host, stop, thread: Some(thread) }
    }
}

fn answer(mut stream: TcpStream, dir: &Path, tags: &BTreeMap<String, String>) {
    let Some(request) = super::file_server::request_line(&stream) else { return };
    let mut words = request.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or("/"));
    let found = route(dir, tags, path);
    let response = match found {
        Some((content_type, body)) => {
            let digest = crate::support::registry::sha256(&body);
            let mut r = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nDocker-Content-Digest: {digest}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            if method != "HEAD" {
                r.extend(body);
            }
            r
        }
        None => {
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
        }
    };
    let _ = stream.write_all(&response);
}

/// What `path` names: (content type, body).
fn route(dir: &Path, tags: &BTreeMap<String, String>, path: &str) -> Option<(String, Vec<u8>)> {
    let rest = path.strip_prefix("/v2/")?;
    let blob = |digest: &str| {
        let hex = digest.strip_prefix("sha256:")?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        std::fs::read(dir.join("blobs/sha256").join(hex)).ok()
    };
    if let Some((_, reference)) = rest.rsplit_once("/manifests/") {
        let digest = tags.get(reference).map_or(reference, String::as_str);
        let body = blob(digest)?;
        let doc: Value = serde_json::from_slice(&body).ok()?;
        return Some((doc["mediaType"].as_str()?.to_string(), body));
    }
    if let Some((_, digest)) = rest.rsplit_once("/blobs/") {
        return Some(("application/octet-stream".into(), blob(digest)?));
    }
    let (_, subject) = rest.rsplit_once("/referrers/")?;
    let mut manifests = Vec::new();
    for entry in std::fs::read_dir(dir.join("blobs/sha256")).ok()? {
        let bytes = std::fs::read(entry.ok()?.path()).ok()?;
        let Ok(doc) = serde_json::from_slice::<Value>(&bytes) else { continue };
        if doc["subject"]["digest"] == subject {
            manifests.push(json!({
                "mediaType": doc["mediaType"],
                "digest": crate::support::registry::sha256(&bytes),
                "size": bytes.len(),
                "artifactType": doc["artifactType"],
            }));
        }
    }
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
    Some(("application/vnd.oci.image.index.v1+json".into(), serde_json::to_vec(&index).ok()?))
}

impl Drop for ReferrersRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(&self.host);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
