//! Shared helpers for the integration tests: running the real `charmer` binary, building
//! charm source folders, finding the shared Juju fixtures, forging hostile zips, and the
//! Kubernetes API emulator, real image registries, and a static file server (HTTP and HTTPS).

pub mod file_server;
pub mod kube_emulator;
pub mod rawzip;
pub mod referrers_registry;
pub mod registry;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub use rawzip::{RawEntry, RawZip};

/// The `charmer` binary cargo built for these tests.
pub fn charmer() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_charmer"));
    // Logs would interleave with the output the tests read.
    cmd.env_remove("RUST_LOG");
    // The machine's registry settings (certs.d folders, registries.conf) are not the tests'.
    cmd.env("CHARMER_CERTS_D", format!("{NO_SITE_FILES}/certs.d"))
        .env("CONTAINERS_REGISTRIES_CONF", format!("{NO_SITE_FILES}/registries.conf"));
    cmd
}

/// A folder that does not exist, standing in for the machine's registry settings.
pub const NO_SITE_FILES: &str = "/nonexistent/charmer-tests";

/// The programs the registry tests drive: the real registry, skopeo as the independent peer,
/// htpasswd and openssl for logins and certificates.
pub const REGISTRY_TOOLS: &[&str] = &["docker-registry", "skopeo", "htpasswd", "openssl"];

/// Whether every program in `tools` is installed. When one is missing, the test calling this
/// is skipped: it returns early after one `SKIPPED` line on the terminal naming the test, the
/// missing programs and how to install them. Under `CHARMER_TEST_REQUIRE_TOOLS` (set by
/// scripts/test.sh, which installs them, so CI never skips) a missing program fails the test.
pub fn tools_present(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools.iter().copied().filter(|tool| !on_path(tool)).collect();
    if missing.is_empty() {
        return true;
    }
    let test = std::thread::current().name().unwrap_or("a test").to_string();
    if std::env::var_os("CHARMER_TEST_REQUIRE_TOOLS").is_some() {
        panic!("{test} needs {} (scripts/test.sh installs them)", missing.join(", "));
    }
    // Straight to the process's stderr: the test harness captures eprintln! and would show
    // it only for failed tests.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: needs {} (run `sudo bash scripts/test.sh` once to install them)",
        missing.join(", ")
    );
    false
}

/// Whether `tool` is installed, for a part of a test that is optional even in CI (a Go
/// toolchain): when it is missing, one `SKIPPED` line names the test, the part and the tool,
/// and the test goes on without that part.
pub fn optional_tool(tool: &str, part: &str) -> bool {
    if on_path(tool) {
        return true;
    }
    let test = std::thread::current().name().unwrap_or("a test").to_string();
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {part}: needs {tool}");
    false
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            dir.join(program)
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// The names of a tar file's members, in order (their data is skipped, not read).
pub fn tar_member_names(path: &Path) -> Vec<String> {
    let mut tar = tar::Archive::new(std::fs::File::open(path).unwrap());
    let entries = tar.entries_with_seek().unwrap();
    entries.map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned()).collect()
}

/// Hex SHA-256 of a file's bytes.
pub fn sha256_file(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(std::fs::read(path).expect("read file to hash")))
}

/// A source file of a test charm: its path inside the charm, content and exec bit.
pub struct SourceFile {
    /// Path inside the charm, `/`-separated.
    pub path: String,
    /// Content.
    pub data: Vec<u8>,
    /// Mode 0755 instead of 0644.
    pub executable: bool,
}

/// A file of a test charm with mode 0644.
pub fn file(path: &str, data: impl Into<Vec<u8>>) -> SourceFile {
    SourceFile { path: path.to_string(), data: data.into(), executable: false }
}

/// An executable file (mode 0755) of a test charm.
pub fn exec(path: &str, data: impl Into<Vec<u8>>) -> SourceFile {
    SourceFile { path: path.to_string(), data: data.into(), executable: true }
}

/// metadata.yaml of the sample charm: every section `inspect` shows, and keys Juju has but
/// charmer does not use (which must be kept and ignored).
pub const SAMPLE_METADATA: &str = "\
name: webapp
display-name: Web application
summary: A small web application
description: |
  Serves the web UI.
docs: https://example.invalid/docs
provides:
  http:
    interface: http
    publishes:
      url: 'http://{{ app }}:8080'
requires:
  database:
    interface: mongodb_client
    limit: 1
  logging:
    interface: loki_push_api
    optional: true
peers:
  replicas: webapp-peers
storage:
  data:
    type: filesystem
    location: /srv/data
    minimum-size: 1G
containers:
  web:
    resource: web-image
    mounts:
      - storage: data
        location: /srv/data
resources:
  web-image:
    type: oci-image
    description: the web server
    upstream-source: docker.io/library/nginx:1.27.3
assumes:
  - k8s-api
";

/// config.yaml of the sample charm: one option of each type, an `enum`, a `secret-ref`.
pub const SAMPLE_CONFIG: &str = "\
options:
  replicas:
    type: int
    default: 2
    description: How many pods to run.
  ratio:
    type: float
    default: 0.5
    description: A float.
  debug:
    type: boolean
    default: false
    description: Verbose logs.
  hostname:
    type: string
    default: ''
    description: Public host name.
  service_type:
    type: string
    default: ClusterIP
    enum: [ClusterIP, NodePort, LoadBalancer]
    description: |
      Kubernetes Service type.
      Second line.
  admin_password:
    type: secret
    default: hunter2
    description: Never shown.
  tls_secret:
    type: string
    secret-ref: true
    description: Name of an existing TLS Secret.
";

/// manifest.yaml as charmcraft writes it.
pub const SAMPLE_MANIFEST: &str =
    "bases:\n- name: ubuntu\n  channel: '22.04'\n  architectures: [amd64]\n";

/// The files of a complete, valid charm named `webapp` at version `1.2.3`, including an
/// executable, nested folders and a binary file.
pub fn sample_charm_files() -> Vec<SourceFile> {
    vec![
        file("metadata.yaml", SAMPLE_METADATA),
        file("config.yaml", SAMPLE_CONFIG),
        file("manifest.yaml", SAMPLE_MANIFEST),
        file("version", "1.2.3\n"),
        file("README.md", "# webapp\n"),
        file("templates/deployment.yaml", "kind: Deployment\nmetadata:\n  name: {{ app }}\n"),
        file("templates/service.yaml", "kind: Service\nmetadata:\n  name: {{ app }}\n"),
        file("templates/_helpers.j2", "{% macro x() %}{% endmacro %}\n"),
        exec("dispatch", "#!/bin/sh\nexit 0\n"),
        exec("hooks/install", "#!/bin/sh\nexit 0\n"),
        file("files/blob.bin", (0..=255u8).cycle().take(70_000).collect::<Vec<u8>>()),
    ]
}

/// Writes `files` as a charm source folder at `dir` (created), with their modes.
pub fn write_charm(dir: &Path, files: &[SourceFile]) -> PathBuf {
    for f in files {
        let path = dir.join(&f.path);
        std::fs::create_dir_all(path.parent().expect("file has a parent"))
            .expect("create charm folder");
        std::fs::write(&path, &f.data).expect("write charm file");
        let mode = if f.executable { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .expect("chmod charm file");
    }
    dir.to_path_buf()
}

/// Every regular file under `dir` (hidden ones included), by `/`-separated relative path,
/// with its content and whether any exec bit is set.
pub fn tree(dir: &Path) -> BTreeMap<String, (Vec<u8>, bool)> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.expect("walk tree"))
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e
                .path()
                .strip_prefix(dir)
                .expect("under dir")
                .to_str()
                .expect("utf-8 path")
                .to_string();
            let mode = e.metadata().expect("stat").permissions().mode();
            (rel, (std::fs::read(e.path()).expect("read"), mode & 0o111 != 0))
        })
        .collect()
}

/// Names of the entries directly in `dir` (empty when it does not exist).
pub fn entries(dir: &Path) -> Vec<String> {
    let Ok(read) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> =
        read.map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// The Juju files written in this repository in the shapes of Canonical's real ones
/// (`tests/fixtures/juju-written/`, see its README): always present.
pub fn written_juju_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/juju-written")
}

/// Canonical's real files with the same names, when they are present beside the repository:
/// `$CHARMER_SHARED/fixtures/juju`, else the nearest `shared/fixtures/juju` beside the
/// repository root or one of its ancestors (`../shared` for the main checkout, `../../shared`
/// for a worktree under `wt/`). The test says on the terminal whether it read them, so a run
/// without them is never mistaken for one with them. A `CHARMER_SHARED` that holds no such
/// folder fails the test: it was asked for.
pub fn upstream_juju_fixtures() -> Option<PathBuf> {
    let test = std::thread::current().name().unwrap_or("a test").to_string();
    let found = match std::env::var_os("CHARMER_SHARED") {
        Some(dir) => {
            let dir = PathBuf::from(dir).join("fixtures/juju");
            assert!(dir.is_dir(), "CHARMER_SHARED is set but {} is not a folder", dir.display());
            Some(dir)
        }
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .skip(1)
            .map(|a| a.join("shared/fixtures/juju"))
            .find(|dir| dir.is_dir()),
    };
    // Straight to the process's stderr, as `tools_present` does: the harness shows captured
    // output only for failed tests.
    use std::io::Write;
    let _ = match &found {
        Some(dir) => writeln!(
            std::io::stderr(),
            "UPSTREAM {test}: also checked Canonical's real files in {}",
            dir.display()
        ),
        None => writeln!(
            std::io::stderr(),
            "UPSTREAM {test}: no real Juju files beside the repository (set CHARMER_SHARED to \
             add them); checked the repository's own fixtures only"
        ),
    };
    found
}

/// Every set of Juju fixture files to run a check on: the repository's own, then the real
/// ones when present (see `upstream_juju_fixtures`).
pub fn juju_fixture_sets() -> Vec<PathBuf> {
    std::iter::once(written_juju_fixtures()).chain(upstream_juju_fixtures()).collect()
}

/// Copies a folder tree.
pub fn copy_dir(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let dest = to.join(entry.path().strip_prefix(from).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}
