//! A tiny static file server on a free 127.0.0.1 port, for testing charm sources fetched over
//! HTTP. Plain GETs of files in one folder; everything else is 404. Stops when dropped.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A running server.
pub struct FileServer {
    /// `http://127.0.0.1:PORT/`.
    pub url: String,
    /// Every path requested, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FileServer {
    /// Serves the files of `dir`.
    pub fn serve(dir: PathBuf) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (stop2, requests2) = (stop.clone(), requests.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    answer(stream, &dir, &requests2);
                }
            }
        });
        FileServer { url, requests, stop, thread: Some(thread) }
    }
}

/// The request line of the request on `stream` (`GET /path HTTP/1.1`), its headers read
/// and skipped.
pub fn request_line(stream: &TcpStream) -> Option<String> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut request = String::new();
    reader.read_line(&mut request).ok()?;
    let mut header = String::new();
    while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
        header.clear();
    }
    Some(request)
}

fn answer(mut stream: TcpStream, dir: &std::path::Path, requests: &Mutex<Vec<String>>) {
    let Some(request) = request_line(&stream) else { return };
    let path = request.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').to_string();
    requests.lock().unwrap().push(path.clone());
    let file =
        (!path.is_empty() && !path.contains("..") && !path.contains('/')).then(|| dir.join(&path));
    let response = match file.and_then(|f| std::fs::read(f).ok()) {
        Some(body) => {
            let mut r = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            r.extend(body);
            r
        }
        None => {
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
        }
    };
    let _ = stream.write_all(&response);
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.url.trim_start_matches("http://").trim_end_matches('/'));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The same over HTTPS, served by Python's `http.server` with a certificate signed by a CA
/// made for the test (`ca_pem`; rustls refuses a self-signed CA used as the server
/// certificate). Stops when dropped.
pub struct TlsFileServer {
    /// `https://127.0.0.1:PORT/`.
    pub url: String,
    /// The test CA's certificate (PEM file), to trust through `SSL_CERT_FILE`.
    pub ca_pem: PathBuf,
    child: std::process::Child,
    _certs: tempfile::TempDir,
}

const SERVE_TLS: &str = r#"
import functools, http.server, ssl, sys
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
server = http.server.HTTPServer(("127.0.0.1", 0), handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[2], sys.argv[3])
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

impl TlsFileServer {
    /// Serves the files of `dir` (needs `openssl` and `python3`).
    pub fn serve(dir: &std::path::Path) -> TlsFileServer {
        let certs = tempfile::tempdir().unwrap();
        super::registry::certificates(certs.path());
        let mut child = std::process::Command::new("python3")
            .args(["-c", SERVE_TLS])
            .arg(dir)
            .arg(certs.path().join("server.crt"))
            .arg(certs.path().join("server.key"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 is needed by this test");
        let mut port = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut port).unwrap();
        TlsFileServer {
            url: format!("https://127.0.0.1:{}/", port.trim()),
            ca_pem: certs.path().join("ca.crt"),
            child,
            _certs: certs,
        }
    }
}

impl Drop for TlsFileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
