//! Real registries and real images for the registry tests: Debian's `docker-registry` (the
//! CNCF distribution registry) started on free 127.0.0.1 ports with our own config (plain
//! HTTP, HTTPS with a test CA, HTTPS + htpasswd), test images built as OCI layouts from
//! random layers, and `skopeo` as the independent peer.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// A user the htpasswd registry accepts.
pub const USER: &str = "tester";
/// Their password.
pub const PASSWORD: &str = "s3cret-Pa55word";

/// How a test registry is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Plain HTTP.
    Plain,
    /// HTTPS with a certificate signed by the test CA.
    Tls,
    /// HTTPS and a login (htpasswd, bcrypt).
    TlsAuth,
    /// Plain HTTP and bearer tokens from a [`TokenServer`] (the flow public registries use).
    Token,
    /// HTTPS with one self-signed certificate marked `CA:TRUE`, made as most private
    /// registries' are (`openssl req -x509 ... -addext subjectAltName=IP:127.0.0.1`).
    SelfSigned,
    /// HTTPS with a certificate signed by the test CA, and a client certificate the test CA
    /// signed required (mutual TLS: `http.tls.clientcas`).
    ClientCert,
}

/// A running `docker-registry` on 127.0.0.1, killed on drop.
pub struct Registry {
    child: Option<Child>,
    /// Storage, config and log live here.
    pub dir: tempfile::TempDir,
    /// Its port.
    pub port: u16,
    /// How it is reached.
    pub kind: Kind,
    /// The token service of a [`Kind::Token`] registry.
    pub tokens: Option<TokenServer>,
}

impl Registry {
    /// Starts a registry of `kind` on a free port.
    pub fn start(kind: Kind) -> Registry {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("storage").display()
        );
        if matches!(kind, Kind::Tls | Kind::TlsAuth | Kind::ClientCert) {
            let certs = dir.path().join("certs");
            certificates(&certs);
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                certs.join("server.crt").display(),
                certs.join("server.key").display()
            ));
        }
        if kind == Kind::ClientCert {
            let certs = dir.path().join("certs");
            client_certificate(&certs);
            config
                .push_str(&format!("    clientcas:\n      - {}\n", certs.join("ca.crt").display()));
        }
        if kind == Kind::SelfSigned {
            let certs = dir.path().join("certs");
            self_signed(&certs, "self.crt", "self.key");
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                certs.join("self.crt").display(),
                certs.join("self.key").display()
            ));
        }
        if kind == Kind::TlsAuth {
            let out = run(Command::new("htpasswd").args(["-Bbn", USER, PASSWORD]));
            let path = dir.path().join("htpasswd");
            std::fs::write(&path, out.stdout).expect("htpasswd file");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: charmer-test\n    path: {}\n",
                path.display()
            ));
        }
        let tokens = (kind == Kind::Token).then(|| TokenServer::start(dir.path()));
        if let Some(tokens) = &tokens {
            config.push_str(&format!(
                "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                tokens.port,
                dir.path().join("token.crt").display()
            ));
        }
        std::fs::write(dir.path().join("config.yml"), config).expect("registry config");
        let mut registry = Registry { child: None, dir, port, kind, tokens };
        registry.launch();
        registry
    }

    fn launch(&mut self) {
        let log =
            File::options().create(true).append(true).open(self.log_path()).expect("registry log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("docker-registry (Debian package docker-registry) must be installed");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "registry did not start: {}",
                std::fs::read_to_string(self.log_path()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the registry (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and storage.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// The registry's own log (access log lines included).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    /// Access-log request lines so far, as `METHOD /path` (e.g. `PATCH /v2/a/blobs/uploads/x`).
    pub fn requests(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        log.lines()
            .filter_map(|line| {
                let quoted = line.split('"').nth(1)?;
                let mut parts = quoted.split(' ');
                let (method, path) = (parts.next()?, parts.next()?);
                (method.chars().all(|c| c.is_ascii_uppercase()) && path.starts_with("/v2/"))
                    .then(|| format!("{method} {path}"))
            })
            .collect()
    }

    /// Where the registry keeps repositories.
    pub fn repositories(&self) -> PathBuf {
        self.dir.path().join("storage/docker/registry/v2/repositories")
    }

    /// Where it keeps committed blobs.
    pub fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// The folder of its test CA and certificate (see [`certificates`]).
    pub fn certs(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    /// skopeo flags to use this registry as a source (`src`) or destination (`dest`).
    pub fn skopeo_flags(&self, side: &str) -> Vec<String> {
        match self.kind {
            Kind::Plain => vec![format!("--{side}-tls-verify=false")],
            Kind::Tls => {
                vec![format!("--{side}-cert-dir={}", self.certs().join("skopeo").display())]
            }
            Kind::TlsAuth => vec![
                format!("--{side}-cert-dir={}", self.certs().join("skopeo").display()),
                format!("--{side}-creds={USER}:{PASSWORD}"),
            ],
            Kind::Token => vec![
                format!("--{side}-tls-verify=false"),
                format!("--{side}-creds={USER}:{PASSWORD}"),
            ],
            // skopeo's cert dir is a certs.d folder: the self-signed certificate as a CA, or
            // the CA with the client certificate and key.
            Kind::SelfSigned | Kind::ClientCert => {
                vec![format!("--{side}-cert-dir={}", self.certs().join("certs.d").display())]
            }
        }
    }

    /// The raw manifest skopeo reads at `reference` (`path:tag` on this registry), and its
    /// digest.
    pub fn inspect_raw(&self, reference: &str) -> (Vec<u8>, String) {
        let mut args = vec!["inspect".to_string(), "--raw".to_string()];
        args.extend(self.skopeo_flags("src").into_iter().map(|f| f.replace("--src-", "--")));
        args.push(format!("docker://{}/{reference}", self.host()));
        let out = skopeo(&args);
        let digest = sha256(&out.stdout);
        (out.stdout, digest)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Makes a test CA and a server certificate it signed (CA:FALSE, serverAuth, SAN
/// IP:127.0.0.1: rustls refuses a self-signed CA certificate used as the server's own) in
/// `dir`: `ca.crt`, `server.crt`, `server.key`, and `skopeo/ca.crt`.
pub fn certificates(dir: &Path) {
    std::fs::create_dir_all(dir).expect("certs dir");
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    run(Command::new("openssl").current_dir(dir).args(["req", "-x509"]).args(ec).args([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=charmer test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]));
    sign_with_test_ca(
        dir,
        "server",
        "server.crt",
        "/CN=127.0.0.1",
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n",
    );
    // skopeo's --cert-dir reads CA certificates from *.crt files, and would take server.crt
    // for a client certificate: give it a folder with the CA only.
    std::fs::create_dir_all(dir.join("skopeo")).expect("skopeo certs dir");
    std::fs::copy(dir.join("ca.crt"), dir.join("skopeo/ca.crt")).expect("ca copy");
}

/// A new EC key `dir/NAME.key` and its certificate `dir/CERT` for `subject`, signed by the
/// test CA of [`certificates`] (in `dir`), with the X.509 `extensions` (openssl's syntax).
fn sign_with_test_ca(dir: &Path, name: &str, cert: &str, subject: &str, extensions: &str) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let (key, csr, ext) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.ext"));
    run(Command::new("openssl")
        .current_dir(dir)
        .arg("req")
        .args(ec)
        .args(["-keyout", &key, "-out", &csr, "-subj", subject]));
    std::fs::write(dir.join(&ext), extensions).expect("ext file");
    run(Command::new("openssl").current_dir(dir).args([
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        cert,
        "-days",
        "2",
        "-extfile",
        &ext,
    ]));
}

/// A self-signed certificate for 127.0.0.1 made the way most private registries' are:
/// `openssl req -x509` with no extensions file, so it is marked `CA:TRUE`. Also put in
/// `dir/certs.d/` as `ca.crt` (skopeo's cert dir).
pub fn self_signed(dir: &Path, cert: &str, key: &str) {
    std::fs::create_dir_all(dir.join("certs.d")).expect("certs dir");
    rsa_self_signed(dir, key, cert, "/CN=127.0.0.1", &["-addext", "subjectAltName=IP:127.0.0.1"]);
    std::fs::copy(dir.join(cert), dir.join("certs.d/ca.crt")).expect("cert copy");
}

/// `openssl req -x509` with a new RSA key: `dir/KEY` and `dir/CERT` for `subject`, valid two
/// days, with `extra` arguments.
fn rsa_self_signed(dir: &Path, key: &str, cert: &str, subject: &str, extra: &[&str]) {
    run(Command::new("openssl")
        .current_dir(dir)
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert])
        .args(["-days", "2", "-subj", subject])
        .args(extra));
}

/// A client certificate the test CA of [`certificates`] signs (`client.cert`, `client.key`),
/// and a certs.d folder `dir/certs.d/` holding the CA and it, as skopeo and charmer read them.
pub fn client_certificate(dir: &Path) {
    sign_with_test_ca(
        dir,
        "client",
        "client.cert",
        "/CN=charmer test client",
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
    );
    let certs_d = dir.join("certs.d");
    std::fs::create_dir_all(&certs_d).expect("certs.d");
    for file in ["ca.crt", "client.cert", "client.key"] {
        std::fs::copy(dir.join(file), certs_d.join(file)).expect("certs.d copy");
    }
}

/// Runs a command, panicking with its output unless it succeeds.
pub fn run(command: &mut Command) -> Output {
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs skopeo (the independent peer) with `args`.
pub fn skopeo<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    run(Command::new("skopeo").args(args))
}

/// `sha256:<hex>` of bytes.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Fast deterministic pseudo-random bytes (xorshift64*), so test layers are incompressible
/// and different per seed without a random-number crate.
pub struct Noise(u64);

impl Noise {
    /// A stream for `seed`.
    pub fn new(seed: u64) -> Noise {
        Noise(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Fills `buf`.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let word = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// A content descriptor of a test image part.
#[derive(Debug, Clone)]
pub struct Desc {
    /// Media type.
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Size.
    pub size: u64,
}

impl Desc {
    fn json(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size})
    }
}

/// An OCI image layout folder that test images are built in.
pub struct Layout {
    /// The folder.
    pub dir: PathBuf,
    names: Vec<Value>,
}

const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

impl Layout {
    /// An empty layout in `dir`.
    pub fn new(dir: &Path) -> Layout {
        std::fs::create_dir_all(dir.join("blobs/sha256")).expect("layout dir");
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
            .expect("oci-layout");
        let layout = Layout { dir: dir.to_path_buf(), names: Vec::new() };
        layout.write_index();
        layout
    }

    fn write_index(&self) {
        let index = json!({"schemaVersion": 2, "manifests": self.names});
        std::fs::write(self.dir.join("index.json"), serde_json::to_vec(&index).expect("json"))
            .expect("index.json");
    }

    /// Stores bytes as a blob.
    pub fn blob(&self, media_type: &str, bytes: &[u8]) -> Desc {
        let digest = sha256(bytes);
        std::fs::write(
            self.dir.join("blobs/sha256").join(digest.trim_start_matches("sha256:")),
            bytes,
        )
        .expect("blob");
        Desc { media_type: media_type.into(), digest, size: bytes.len() as u64 }
    }

    /// A layer: an uncompressed tar holding one file of `size` random bytes from `seed`,
    /// streamed to disk (layers may be hundreds of MiB).
    pub fn layer(&self, seed: u64, size: u64) -> Desc {
        let tmp = self.dir.join(format!("layer-{seed}.tmp"));
        let mut out = HashingWriter {
            inner: BufWriter::with_capacity(1 << 20, File::create(&tmp).expect("layer file")),
            hasher: Sha256::new(),
            written: 0,
        };
        let mut header = tar::Header::new_ustar();
        header.set_path(format!("data-{seed}")).expect("path");
        header.set_size(size);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        out.write_all(header.as_bytes()).expect("write");
        let mut noise = Noise::new(seed);
        let mut buf = vec![0u8; 1 << 20];
        let mut left = size;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            noise.fill(&mut buf[..n]);
            out.write_all(&buf[..n]).expect("write");
            left -= n as u64;
        }
        let padding = (512 - size % 512) % 512 + 1024;
        out.write_all(&vec![0u8; padding as usize]).expect("write");
        out.inner.flush().expect("flush");
        let digest = format!("sha256:{}", hex::encode(out.hasher.finalize()));
        std::fs::rename(
            &tmp,
            self.dir.join("blobs/sha256").join(digest.trim_start_matches("sha256:")),
        )
        .expect("rename");
        Desc { media_type: OCI_LAYER.into(), digest, size: out.written }
    }

    /// An image manifest for `arch` over `layers` (uncompressed, so diff_ids are digests).
    pub fn image(&self, arch: &str, layers: &[&Desc]) -> Desc {
        let diff_ids: Vec<&str> = layers.iter().map(|l| l.digest.as_str()).collect();
        let config = json!({"architecture": arch, "os": "linux", "config": {"Cmd": ["/data"]}, "rootfs": {"type": "layers", "diff_ids": diff_ids}});
        let config = self.blob(OCI_CONFIG, &serde_json::to_vec(&config).expect("json"));
        let manifest = json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.json(),
            "layers": layers.iter().map(|l| l.json()).collect::<Vec<_>>(),
        });
        self.blob(OCI_MANIFEST, &serde_json::to_vec(&manifest).expect("json"))
    }

    /// A multi-platform index over `(manifest, arch)` pairs.
    pub fn index(&self, images: &[(&Desc, &str)]) -> Desc {
        let manifests: Vec<Value> = images
            .iter()
            .map(|(d, arch)| {
                let mut v = d.json();
                v["platform"] = json!({"architecture": arch, "os": "linux"});
                v
            })
            .collect();
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        self.blob(OCI_INDEX, &serde_json::to_vec(&index).expect("json"))
    }

    /// Names `desc` in `index.json` (`org.opencontainers.image.ref.name`), for
    /// `skopeo copy oci:DIR:NAME`.
    pub fn name(&mut self, desc: &Desc, name: &str) {
        let mut v = desc.json();
        v["annotations"] = json!({"org.opencontainers.image.ref.name": name});
        self.names.push(v);
        self.write_index();
    }

    /// Copies the image named `name` to `repo:tag` on `registry` with skopeo (`--all`
    /// keeps every platform of an index).
    pub fn push_with_skopeo(&self, name: &str, registry: &Registry, target: &str) {
        let mut args = vec!["copy".to_string(), "--all".to_string()];
        args.extend(registry.skopeo_flags("dest"));
        args.push(format!("oci:{}:{name}", self.dir.display()));
        args.push(format!("docker://{}/{target}", registry.host()));
        skopeo(&args);
    }

    /// Writes the layout as a tar at `path` (an OCI archive, as `skopeo copy oci-archive:`
    /// would), with `full names` in the ref.name annotation.
    pub fn write_tar(&self, path: &Path) {
        let mut builder = tar::Builder::new(File::create(path).expect("tar"));
        builder.append_dir_all(".", &self.dir).expect("tar layout");
        builder.finish().expect("tar end");
    }
}

struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The `charmer` binary, with a clean Docker config (no credentials from the machine), and
/// none of the machine's certs.d folders or registries.conf: `HOME/certs.d` and
/// `HOME/registries.conf` stand in for them.
pub fn charmer(home: &Path) -> assert_cmd::Command {
    let mut command = assert_cmd::Command::cargo_bin("charmer").expect("charmer binary");
    command
        .env("DOCKER_CONFIG", home.join("docker"))
        .env("HOME", home)
        .env("CHARMER_CERTS_D", home.join("certs.d"))
        .env("CONTAINERS_REGISTRIES_CONF", home.join("registries.conf"))
        .env_remove("RUST_LOG");
    command
}

/// Flags for charmer to reach `registry` (TLS registries through the test CA).
pub fn connection(registry: &Registry) -> Vec<String> {
    match registry.kind {
        Kind::Plain | Kind::Token => vec!["--insecure-http".into()],
        Kind::Tls | Kind::TlsAuth | Kind::ClientCert => {
            vec!["--ca-file".into(), registry.certs().join("ca.crt").display().to_string()]
        }
        Kind::SelfSigned => {
            vec!["--ca-file".into(), registry.certs().join("self.crt").display().to_string()]
        }
    }
}

/// The `service` a token registry names in its challenge.
const TOKEN_SERVICE: &str = "charmer-test";
/// The issuer it expects in tokens.
const TOKEN_ISSUER: &str = "charmer-test-issuer";

/// A bearer-token service for a [`Kind::Token`] registry: it answers `GET /token?service=..
/// &scope=..` with a JWT (RS256, signed by a key whose certificate the registry trusts, sent
/// in `x5c`) granting every asked scope to USER:PASSWORD, no access to anonymous callers, and
/// 401 to wrong credentials. Signing is done by the openssl CLI. Stopped on drop.
pub struct TokenServer {
    /// Its port.
    pub port: u16,
    /// Token requests answered so far.
    pub requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl TokenServer {
    /// Makes the signing key and certificate in `dir` (`token.key`, `token.crt`) and starts
    /// serving.
    fn start(dir: &Path) -> TokenServer {
        rsa_self_signed(dir, "token.key", "token.crt", "/CN=charmer test tokens", &[]);
        let der = run(Command::new("openssl").current_dir(dir).args([
            "x509",
            "-in",
            "token.crt",
            "-outform",
            "DER",
        ]))
        .stdout;
        let x5c = base64::engine::general_purpose::STANDARD.encode(der);
        let key = dir.join("token.key");
        let listener = TcpListener::bind("127.0.0.1:0").expect("token server port");
        let port = listener.local_addr().expect("address").port();
        let (requests, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let (counted, stopped) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(stream) = stream {
                    counted.fetch_add(1, Ordering::SeqCst);
                    answer_token_request(stream, &key, &x5c);
                }
            }
        });
        TokenServer { port, requests, stop }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn answer_token_request(mut stream: TcpStream, key: &Path, x5c: &str) {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match std::io::Read::read(&mut stream, &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&request).to_string();
    let target = text.split_whitespace().nth(1).unwrap_or("");
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let scopes: Vec<String> =
        query.split('&').filter_map(|kv| kv.strip_prefix("scope=")).map(percent_decode).collect();
    let authorization = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("authorization: ").or_else(|| l.strip_prefix("Authorization: "))
        })
        .map(str::trim);
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    let access: Vec<Value> = match authorization {
        Some(given) if given != expected => {
            let _ = stream.write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            return;
        }
        Some(_) => scopes
            .iter()
            .filter_map(|scope| {
                let mut parts = scope.splitn(3, ':');
                let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
                Some(json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
            })
            .collect(),
        None => Vec::new(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let url = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let header = json!({"typ": "JWT", "alg": "RS256", "x5c": [x5c]});
    let claims = json!({
        "iss": TOKEN_ISSUER, "sub": USER, "aud": TOKEN_SERVICE, "exp": now + 300, "nbf": now - 10, "iat": now,
        "jti": format!("{now}-{}", std::process::id()), "access": access,
    });
    let signing_input =
        format!("{}.{}", url(header.to_string().as_bytes()), url(claims.to_string().as_bytes()));
    let mut openssl = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl");
    openssl.stdin.take().expect("stdin").write_all(signing_input.as_bytes()).expect("sign input");
    let signature = openssl.wait_with_output().expect("openssl signature").stdout;
    let body = json!({"token": format!("{signing_input}.{}", url(&signature)), "expires_in": 300})
        .to_string();
    let response = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    let _ = stream.write_all(response.as_bytes());
}

/// Decodes `%XX` escapes (and `+` as a space) of a query value.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
