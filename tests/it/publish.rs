//! Release assets through the real CLI: publish → verify → resolve from the index → render,
//! graph and deploy --dry-run (on the Kubernetes API emulator); tampering, unsigned charms, immutability, reproducibility, keys (checked with
//! the real minisign tool and coreutils' sha256sum), and charms fetched over HTTP from a
//! server on 127.0.0.1.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::file_server::{FileServer, TlsFileServer};
use crate::support::kube_emulator::KubeEmulator;

/// A temporary copy of the demo charms and bundle, where charmer runs.
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/demo");
        crate::support::copy_dir(&demo, dir.path());
        Workspace { dir }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn run(&self, args: &[&str]) -> Output {
        crate::support::charmer().current_dir(self.dir.path()).args(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "charmer {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "charmer {args:?} should fail; stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// `keys/rel.key` and `keys/rel.pub`.
    fn keygen(&self) {
        self.ok(&["keygen", "--out", "keys/rel"]);
    }

    /// A key, and both demo charms published into `out` signed with it.
    fn signed_release(&self, out: &str) -> String {
        self.keygen();
        self.ok(&["publish", "charms/web", "charms/db", "--out", out, "--sign-key", "keys/rel.key"])
    }

    /// Every file of a folder, by name.
    fn files(&self, dir: &str) -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(self.path(dir))
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| {
                (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap())
            })
            .collect()
    }

    fn sha256(&self, file: &str) -> String {
        crate::support::sha256_file(&self.path(file))
    }

    /// Flips one bit of the byte in the middle of a file.
    fn tamper(&self, file: &str) {
        let path = self.path(file);
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        std::fs::write(&path, bytes).unwrap();
    }
}

fn run_tool(dir: &Path, program: &str, args: &[&str]) -> Output {
    std::process::Command::new(program).current_dir(dir).args(args).output().unwrap_or_else(|e| {
        panic!("{program} is needed by this test (Debian package {program}): {e}")
    })
}

#[test]
fn published_charms_verify_resolve_render_and_draw() {
    let ws = Workspace::new();
    let out = ws.signed_release("dist");
    assert!(
        out.contains(&format!(
            "added      web 1.2.0  dist/web_1.2.0.charm  sha256 {}",
            ws.sha256("dist/web_1.2.0.charm")
        )),
        "{out}"
    );
    assert!(out.contains("dist/index.yaml lists 2 charm versions, signed with key "), "{out}");

    let names: Vec<String> = ws.files("dist").into_keys().collect();
    let expected = [
        "SHA256SUMS",
        "SHA256SUMS.sig",
        "db_1.0.0.charm",
        "db_1.0.0.charm.sig",
        "index.yaml",
        "index.yaml.sig",
        "web_1.2.0.charm",
        "web_1.2.0.charm.sig",
    ];
    assert_eq!(names, expected);
    let check = run_tool(&ws.path("dist"), "sha256sum", &["-c", "SHA256SUMS"]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));

    let index: serde_yaml::Value =
        serde_yaml::from_slice(&std::fs::read(ws.path("dist/index.yaml")).unwrap()).unwrap();
    let web = &index["charms"]["web"][0];
    assert_eq!(web["version"], "1.2.0");
    assert_eq!(web["file"], "web_1.2.0.charm");
    assert_eq!(web["sha256"].as_str().unwrap(), ws.sha256("dist/web_1.2.0.charm"));
    assert_eq!(
        web["size"].as_u64().unwrap(),
        std::fs::metadata(ws.path("dist/web_1.2.0.charm")).unwrap().len()
    );
    assert_eq!(web["summary"], "web");
    assert_eq!(web["images"]["web-image"], "nginx:1.27");
    assert_eq!(web["interfaces"]["requires"]["db"], "mongodb_client");
    assert_eq!(index["charms"]["db"][0]["interfaces"]["provides"]["database"], "mongodb_client");

    let verified = ws.ok(&["verify", "--key", "keys/rel.pub", "dist", "dist/db_1.0.0.charm"]);
    assert!(verified.contains("ok  dist/index.yaml  2 charm versions  signed by "), "{verified}");
    assert!(verified.contains("ok  dist/web_1.2.0.charm  web 1.2.0  sha256 "), "{verified}");
    assert!(verified.contains("ok  dist/db_1.0.0.charm  db 1.0.0  sha256 "), "{verified}");

    // The charms come from the index, verified, and render exactly as their sources do.
    let plan =
        ws.ok(&["check", "bundles/demo", "--charms", "dist", "--verify-key", "keys/rel.pub"]);
    assert!(plan.contains("web: charm web 1.2.0 (dist/web_1.2.0.charm)"), "{plan}");
    let from_index =
        ws.ok(&["render", "bundles/demo", "--charms", "dist", "--verify-key", "keys/rel.pub"]);
    let from_sources = ws.ok(&["render", "bundles/demo", "--charms", "charms"]);
    assert!(from_index.contains("kind: Deployment"), "{from_index}");
    assert_eq!(from_index, from_sources);

    let drawn = ws.ok(&[
        "graph",
        "bundles/demo",
        "--charms",
        "dist",
        "--out",
        "demo.svg",
        "--config",
        "web.service_type=NodePort",
    ]);
    assert_eq!(drawn.trim(), "demo.svg");
    let svg = std::fs::read_to_string(ws.path("demo.svg")).unwrap();
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{svg}");
    assert!(
        svg.contains(">charm web 1.2.0</text>")
            && svg.contains(">mongodb_client :27018</text>")
            && svg.contains(">Service NodePort: 80</text>"),
        "{svg}"
    );
    let dot = ws.ok(&["graph", "bundles/demo", "--charms", "dist", "--format", "dot"]);
    assert!(dot.contains("\"web\" -> \"mydb\" [label=\"mongodb_client :27018\""), "{dot}");

    // A file name asking for another format is refused before anything is written.
    let err = ws.fails(&["graph", "bundles/demo", "--charms", "dist", "--out", "demo.png"]);
    assert_eq!(
        err,
        "error: demo.png: --out: charmer graph draws SVG or Graphviz DOT, not PNG (hint: write a \
         .svg file, or --format dot to a .dot file and convert it with Graphviz (dot -Tpng))\n"
    );
    let err = ws.fails(&["graph", "bundles/demo", "--charms", "dist", "--out", "demo.dot"]);
    assert!(err.contains("the file name asks for DOT") && err.contains("--format dot"), "{err}");
    assert!(!ws.path("demo.png").exists() && !ws.path("demo.dot").exists());
}

#[test]
fn tampering_with_one_byte_is_caught_and_named() {
    let ws = Workspace::new();
    // Another release asset (as scripts/release.sh adds the binary): SHA256SUMS covers it.
    std::fs::create_dir_all(ws.path("dist")).unwrap();
    std::fs::write(ws.path("dist/charmer-0.1.0-x86_64-unknown-linux-gnu"), b"a release binary")
        .unwrap();
    ws.signed_release("dist");
    ws.ok(&["verify", "--key", "keys/rel.pub", "dist"]);
    ws.tamper("dist/charmer-0.1.0-x86_64-unknown-linux-gnu");
    let err = ws.fails(&["verify", "dist"]);
    assert!(
        err.contains("error: dist/charmer-0.1.0-x86_64-unknown-linux-gnu: sha256: is ")
            && err.contains(" but dist/SHA256SUMS says "),
        "{err}"
    );
    ws.tamper("dist/charmer-0.1.0-x86_64-unknown-linux-gnu");

    let published = ws.sha256("dist/web_1.2.0.charm");

    ws.tamper("dist/web_1.2.0.charm");
    let actual = ws.sha256("dist/web_1.2.0.charm");
    let named =
        format!("dist/web_1.2.0.charm: sha256: is {actual} but dist/index.yaml says {published}");
    let err = ws.fails(&["verify", "--key", "keys/rel.pub", "dist"]);
    assert!(err.contains(&named), "{err}");
    let err = ws.fails(&["verify", "--key", "keys/rel.pub", "dist/web_1.2.0.charm"]);
    assert!(
        err.contains("error: dist/web_1.2.0.charm: signature: does not match the content"),
        "{err}"
    );
    // Without a key, the checksums in the index still catch it when the resolver reads it.
    let err = ws.fails(&["render", "bundles/demo", "--charms", "dist"]);
    assert!(err.contains(&named), "{err}");
    ws.tamper("dist/web_1.2.0.charm");

    ws.tamper("dist/index.yaml");
    let err = ws.fails(&["render", "bundles/demo", "--charms", "dist"]);
    assert!(
        err.contains("error: dist/index.yaml: sha256: is ")
            && err.contains(" but dist/SHA256SUMS says "),
        "{err}"
    );
    std::fs::remove_file(ws.path("dist/SHA256SUMS")).unwrap();
    let err = ws.fails(&["verify", "--key", "keys/rel.pub", "dist/index.yaml"]);
    assert!(err.contains("error: dist/index.yaml: signature: does not match the content"), "{err}");
}

#[test]
fn unsigned_or_foreign_charms_fail_when_a_key_is_required() {
    let ws = Workspace::new();
    ws.keygen();
    ws.ok(&["publish", "charms/web", "charms/db", "--out", "dist"]);
    let err = ws.fails(&["verify", "--key", "keys/rel.pub", "dist"]);
    assert!(err.contains("error: dist/index.yaml: signature: not signed (dist/index.yaml.sig is missing) but a verify key was given"), "{err}");
    let err = ws.fails(&["verify", "--key", "keys/rel.pub", "dist/web_1.2.0.charm"]);
    assert!(err.contains("error: dist/web_1.2.0.charm: signature: not signed (dist/web_1.2.0.charm.sig is missing)"), "{err}");
    let err =
        ws.fails(&["render", "bundles/demo", "--charms", "dist", "--verify-key", "keys/rel.pub"]);
    assert!(err.contains("error: dist/index.yaml: signature: not signed"), "{err}");
    let err =
        ws.fails(&["render", "bundles/demo", "--charms", "charms", "--verify-key", "keys/rel.pub"]);
    assert!(err.contains("charms/web: a charm source folder is not signed"), "{err}");

    // Signed, but with another key.
    ws.ok(&["keygen", "--out", "keys/other"]);
    ws.ok(&[
        "publish",
        "charms/web",
        "charms/db",
        "--out",
        "signed",
        "--sign-key",
        "keys/other.key",
    ]);
    let err = ws.fails(&["verify", "--key", "keys/rel.pub", "signed"]);
    assert!(
        err.contains("error: signed/index.yaml: signature: signed by key ")
            && err.contains(", not by the given key "),
        "{err}"
    );
}

#[test]
fn published_versions_are_immutable_and_earlier_versions_are_kept() {
    let ws = Workspace::new();
    ws.ok(&["publish", "charms/web", "charms/db", "--out", "dist"]);
    let before = ws.files("dist");
    let old = ws.sha256("dist/web_1.2.0.charm");

    let again = ws.ok(&["publish", "charms/db", "charms/web", "--out", "dist"]);
    assert!(
        again.contains("unchanged  web 1.2.0") && again.contains("unchanged  db 1.0.0"),
        "{again}"
    );
    assert_eq!(ws.files("dist"), before, "publishing the same content is a no-op");

    // Change web without bumping its version, and add a new db version in the same run:
    // refused as a whole, nothing written.
    let template = ws.path("charms/web/templates/deploy.yaml");
    let mut text = std::fs::read_to_string(&template).unwrap();
    text.push_str("# changed\n");
    std::fs::write(&template, &text).unwrap();
    std::fs::write(ws.path("charms/db/version"), "1.0.1\n").unwrap();
    let err = ws.fails(&["publish", "charms/web", "charms/db", "--out", "dist"]);
    assert!(err.contains(&format!("error: dist/web_1.2.0.charm: web 1.2.0 is already published with sha256 {old}; charms/web packs to sha256 ")), "{err}");
    assert!(
        err.contains("(hint: published versions are immutable: bump the charm's version file)"),
        "{err}"
    );
    assert_eq!(ws.files("dist"), before, "nothing is written when anything is refused");

    std::fs::write(ws.path("charms/web/version"), "1.3.0\n").unwrap();
    let out = ws.ok(&["publish", "charms/web", "charms/db", "--out", "dist"]);
    assert!(out.contains("added      web 1.3.0") && out.contains("added      db 1.0.1"), "{out}");
    assert!(out.contains("dist/index.yaml lists 4 charm versions"), "{out}");
    assert_eq!(ws.files("dist")["web_1.2.0.charm"], before["web_1.2.0.charm"]);
    let index = std::fs::read_to_string(ws.path("dist/index.yaml")).unwrap();
    assert!(
        index.find("version: 1.2.0").unwrap() < index.find("version: 1.3.0").unwrap(),
        "{index}"
    );
    // The resolver picks the newest that fits `^1.0`.
    let plan = ws.ok(&["check", "bundles/demo", "--charms", "dist"]);
    assert!(plan.contains("web: charm web 1.3.0 (dist/web_1.3.0.charm)"), "{plan}");

    // A signed folder cannot be added to without its key.
    ws.keygen();
    ws.ok(&["publish", "charms/web", "--out", "signed", "--sign-key", "keys/rel.key"]);
    let err = ws.fails(&["publish", "charms/db", "--out", "signed"]);
    assert!(err.contains("error: signed/index.yaml: signature: the folder is signed"), "{err}");
}

#[test]
fn publishing_is_reproducible_from_folders_and_archives() {
    let ws = Workspace::new();
    ws.signed_release("a");
    ws.ok(&["pack", "charms/web", "--out", "packed"]);
    ws.ok(&[
        "publish",
        "charms/db",
        "packed/web_1.2.0.charm",
        "--out",
        "b",
        "--sign-key",
        "keys/rel.key",
    ]);
    assert_eq!(ws.files("a"), ws.files("b"));
}

#[test]
fn keys_are_minisign_compatible_both_ways() {
    if !crate::support::tools_present(&["minisign"]) {
        return;
    }
    let ws = Workspace::new();
    ws.keygen();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(ws.path("keys/rel.key")).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(ws.path("keys/rel.pub")).unwrap().permissions().mode() & 0o777,
        0o644
    );
    let err = ws.fails(&["keygen", "--out", "keys/rel"]);
    assert!(
        err.contains("keys/rel.key: already exists")
            && err.contains("keys/rel.pub: already exists"),
        "{err}"
    );

    ws.ok(&["publish", "charms/web", "--out", "dist", "--sign-key", "keys/rel.key"]);
    for file in ["dist/web_1.2.0.charm", "dist/index.yaml", "dist/SHA256SUMS"] {
        let sig = format!("{file}.sig");
        let out = run_tool(
            ws.dir.path(),
            "minisign",
            &["-V", "-p", "keys/rel.pub", "-m", file, "-x", &sig],
        );
        assert!(
            out.status.success(),
            "minisign rejects {file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // A key minisign made (unencrypted) signs with charmer.
    let out = run_tool(
        ws.dir.path(),
        "minisign",
        &["-G", "-W", "-p", "keys/mini.pub", "-s", "keys/mini.key"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    ws.ok(&["publish", "charms/db", "--out", "mini", "--sign-key", "keys/mini.key"]);
    ws.ok(&["verify", "--key", "keys/mini.pub", "mini", "mini/db_1.0.0.charm"]);
}

#[test]
fn charms_are_fetched_over_http_and_checked_on_every_read() {
    let ws = Workspace::new();
    ws.signed_release("dist");
    let server = FileServer::serve(ws.path("dist"));
    let url = server.url.clone();

    let index_url = format!("{url}index.yaml");
    let err = ws.fails(&["verify", "--key", "keys/rel.pub", &index_url]);
    assert!(
        err.contains(&format!("error: {index_url}: plain HTTP, without TLS: give --insecure-http")),
        "{err}"
    );
    assert!(server.requests.lock().unwrap().is_empty(), "nothing is fetched without TLS");
    let verified = ws.ok(&["verify", "--insecure-http", "--key", "keys/rel.pub", &index_url]);
    assert!(
        verified.contains(&format!("ok  {url}web_1.2.0.charm  web 1.2.0  sha256 ")),
        "{verified}"
    );

    let over_http = ws.ok(&[
        "render",
        "bundles/demo",
        "--insecure-http",
        "--charms",
        &url,
        "--verify-key",
        "keys/rel.pub",
    ]);
    assert_eq!(over_http, ws.ok(&["render", "bundles/demo", "--charms", "charms"]));
    let emulator = KubeEmulator::start();
    let kubeconfig = emulator.kubeconfig().display().to_string();
    let dry = ws.ok(&[
        "deploy",
        "bundles/demo",
        "--insecure-http",
        "--charms",
        &url,
        "--verify-key",
        "keys/rel.pub",
        "--dry-run",
        "--kubeconfig",
        &kubeconfig,
    ]);
    assert!(
        dry.contains("6 to create, 0 to change") && dry.ends_with("dry run: nothing was changed\n"),
        "{dry}"
    );
    assert_eq!(emulator.writes(), Vec::<String>::new());
    let requests = server.requests.lock().unwrap().clone();
    for file in [
        "SHA256SUMS",
        "index.yaml",
        "index.yaml.sig",
        "web_1.2.0.charm",
        "web_1.2.0.charm.sig",
        "db_1.0.0.charm.sig",
    ] {
        assert!(requests.iter().any(|r| r == file), "{file} not fetched: {requests:?}");
    }

    ws.tamper("dist/db_1.0.0.charm");
    let err = ws.fails(&["render", "bundles/demo", "--insecure-http", "--charms", &url]);
    assert!(
        err.contains(&format!("applications.mydb.charm: {url}db_1.0.0.charm: sha256: is "))
            && err.contains(&format!("but {url}index.yaml says ")),
        "{err}"
    );
    drop(server);

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/", listener.local_addr().unwrap())
    };
    let err = ws.fails(&["render", "bundles/demo", "--insecure-http", "--charms", &closed]);
    assert!(err.contains(&format!("error: {closed}index.yaml: ")), "{err}");
}

#[test]
fn https_sources_are_checked_against_the_trusted_roots() {
    if !crate::support::tools_present(&["openssl"]) {
        return;
    }
    let ws = Workspace::new();
    ws.ok(&["publish", "charms/web", "charms/db", "--out", "dist"]);
    let server = TlsFileServer::serve(&ws.path("dist"));
    let err = ws.fails(&["verify", &server.url]);
    assert!(
        err.contains(&format!("error: {}index.yaml: ", server.url))
            && err.contains("UnknownIssuer"),
        "{err}"
    );
    assert!(err.contains("(hint: give the server's CA certificate with --ca-file)"), "{err}");

    let out = crate::support::charmer()
        .current_dir(ws.dir.path())
        .args(["render", "bundles/demo", "--ca-file"])
        .arg(&server.ca_pem)
        .args(["--charms", &server.url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        ws.ok(&["render", "bundles/demo", "--charms", "charms"])
    );
}

/// A signed folder read without a key says it is signed and was not checked (its SHA256SUMS
/// may have been rewritten beside stale signatures), and a source that fails to open is
/// reported once, not as "no charm named ..." for every application it held.
#[test]
fn a_signed_folder_read_without_a_key_says_so_and_a_broken_source_is_reported_once() {
    let ws = Workspace::new();
    ws.signed_release("dist");
    // An attacker rewrites one archive and SHA256SUMS to match; the signatures are now stale.
    ws.tamper("dist/web_1.2.0.charm");
    let sums = std::fs::read_to_string(ws.path("dist/SHA256SUMS")).unwrap();
    let old = sums
        .lines()
        .find(|l| l.ends_with("web_1.2.0.charm"))
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    std::fs::write(
        ws.path("dist/SHA256SUMS"),
        sums.replace(&old, &ws.sha256("dist/web_1.2.0.charm")),
    )
    .unwrap();

    let out = ws.run(&["verify", "dist"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: dist/index.yaml: signed by key ")
            && stderr.contains("but the signatures were not checked"),
        "{stderr}"
    );
    let out = ws.run(&["check", "bundles/demo", "--charms", "dist"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: dist: signed by key ") && stderr.contains("--verify-key"),
        "{stderr}"
    );

    // With the key the rewrite is caught, once, with no "no charm named" noise after it.
    let err =
        ws.fails(&["check", "bundles/demo", "--charms", "dist", "--verify-key", "keys/rel.pub"]);
    assert!(err.contains("dist/SHA256SUMS"), "{err}");
    assert!(!err.contains("no charm named"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// Publishing into a folder signed with another key names both keys and what to publish with,
/// and writes nothing.
#[test]
fn publishing_with_another_key_into_a_signed_folder_names_both_keys() {
    let ws = Workspace::new();
    ws.signed_release("dist");
    let before = ws.files("dist");
    ws.ok(&["keygen", "--out", "keys/other"]);
    let err = ws.fails(&["publish", "charms/web", "--out", "dist", "--sign-key", "keys/other.key"]);
    assert!(
        err.contains("dist/index.yaml: signature: the folder is signed with key ")
            && err.contains("not with the --sign-key given")
            && err.contains("hint: publish with the secret key of key "),
        "{err}"
    );
    assert_eq!(ws.files("dist"), before, "nothing written");
}

/// `-o` is `--output` on every command that has it, as kubectl users type it.
#[test]
fn dash_o_is_output_everywhere() {
    let ws = Workspace::new();
    for args in [
        vec!["inspect", "charms/web", "-o", "json"],
        vec!["check", "bundles/demo", "-o", "json"],
        vec!["images", "list", "bundles/demo", "-o", "json"],
    ] {
        let out = ws.ok(&args);
        serde_json::from_str::<serde_json::Value>(&out)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"));
    }
    // The commands that need a cluster take it too: a usage error would exit 2 before connecting.
    for args in [
        vec!["status", "demo", "-o", "json"],
        vec!["list", "-o", "json"],
        vec!["config", "demo", "-o", "json"],
    ] {
        let out = ws.run(&[&args[..], &["--kubeconfig", "/nonexistent"]].concat());
        assert_ne!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
