//! Registries as air-gapped sites run them, each checked against skopeo doing the same:
//! a self-signed `CA:TRUE` certificate, mutual TLS from a certs.d folder, a registries.conf
//! mirror, a credential helper named in `credHelpers`; and what charmer says when TLS fails.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::registry::{
    charmer, connection, self_signed, skopeo, Kind, Layout, Registry, PASSWORD, USER,
};

/// An OCI layout (and its archive) of one small image named `upstream.invalid/team/app:1.0`;
/// returns the layout, the archive and the manifest digest.
fn image(work: &Path) -> (Layout, PathBuf, String) {
    let mut layout = Layout::new(&work.join("layout"));
    let layer = layout.layer(28, 48_000);
    let image = layout.image("amd64", &[&layer]);
    layout.name(&image, "upstream.invalid/team/app:1.0");
    let path = work.join("app.tar");
    layout.write_tar(&path);
    (layout, path, image.digest)
}

/// `charmer images push ARCHIVE --registry HOST/PREFIX`, no retries, with `flags`.
fn push(work: &Path, host: &str, prefix: &str, archive: &Path, flags: &[String]) -> Output {
    let assert = charmer(work)
        .args(["images", "push", "--quiet", "--retries", "0", "--registry"])
        .arg(format!("{host}/{prefix}"))
        .arg(archive)
        .args(flags)
        .current_dir(work)
        .assert();
    Output::of(assert.get_output())
}

/// A finished command's exit and its stdout and stderr together.
struct Output {
    ok: bool,
    text: String,
}

impl Output {
    fn of(out: &std::process::Output) -> Output {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Output { ok: out.status.success(), text }
    }
}

/// The reference push: skopeo copies the layout's image to `registry/target` with the same
/// bytes (`--preserve-digests`), with `flags` (its cert dir, auth file).
fn skopeo_push(layout: &Layout, registry: &Registry, target: &str, flags: &[String], path: &str) {
    let out = std::process::Command::new("skopeo")
        .args(["copy", "--preserve-digests"])
        .args(flags)
        .arg(format!("oci:{}:upstream.invalid/team/app:1.0", layout.dir.display()))
        .arg(format!("docker://{}/{target}", registry.host()))
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo: {}", String::from_utf8_lossy(&out.stderr));
}

/// skopeo's flags to reach `registry` as a destination.
fn skopeo_dest(registry: &Registry) -> Vec<String> {
    registry.skopeo_flags("dest")
}

fn path_env() -> String {
    std::env::var("PATH").unwrap_or_default()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_self_signed_ca_certificate_is_trusted_when_given_exactly_as_skopeo_does() {
    if !crate::support::tools_present(crate::support::REGISTRY_TOOLS) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(Kind::SelfSigned);
    let (layout, archive, digest) = image(work.path());

    // The reference: skopeo trusts the certificate from its cert dir.
    skopeo_push(&layout, &registry, "skopeo/app:1.0", &skopeo_dest(&registry), &path_env());
    assert_eq!(registry.inspect_raw("skopeo/app:1.0").1, digest);

    // Not given: refused, saying what the certificate is and what to give.
    let refused = push(work.path(), &registry.host(), "none", &archive, &[]);
    assert!(!refused.ok);
    assert!(
        refused.text.contains("CA:TRUE") && refused.text.contains("--ca-file"),
        "{}",
        refused.text
    );
    assert_eq!(
        refused.text.lines().filter(|l| l.starts_with("error")).count(),
        1,
        "{}",
        refused.text
    );

    // Given exactly: accepted, and -v says why.
    let mut flags = connection(&registry);
    flags.push("-v".into());
    let ok = push(work.path(), &registry.host(), "exact", &archive, &flags);
    assert!(ok.ok, "{}", ok.text);
    assert!(
        ok.text.contains("byte-identical to") && ok.text.contains("marked CA:TRUE"),
        "{}",
        ok.text
    );
    assert_eq!(registry.inspect_raw("exact/team/app:1.0").1, digest);

    // Another self-signed certificate with the same subject and name is not this one.
    let other = work.path().join("other");
    self_signed(&other, "other.crt", "other.key");
    let flags = strings(&["--ca-file", other.join("other.crt").to_str().unwrap()]);
    let refused = push(work.path(), &registry.host(), "other", &archive, &flags);
    assert!(!refused.ok && refused.text.contains("CA:TRUE"), "{}", refused.text);

    // The name is still checked: the certificate is for IP:127.0.0.1, not localhost.
    let localhost = format!("localhost:{}", registry.port);
    let wrong_name = push(work.path(), &localhost, "name", &archive, &connection(&registry));
    assert!(!wrong_name.ok);
    assert!(wrong_name.text.contains("is for IP:127.0.0.1, not localhost"), "{}", wrong_name.text);
    // skopeo refuses the same.
    let out = std::process::Command::new("skopeo")
        .args(["copy", "--preserve-digests", "--dest-cert-dir"])
        .arg(registry.certs().join("certs.d"))
        .arg(format!("oci:{}:upstream.invalid/team/app:1.0", layout.dir.display()))
        .arg(format!("docker://{localhost}/skopeo/name:1.0"))
        .output()
        .unwrap();
    assert!(!out.status.success());

    // Plain HTTP spoken to this TLS port.
    let plain =
        push(work.path(), &registry.host(), "plain", &archive, &strings(&["--insecure-http"]));
    assert!(!plain.ok);
    assert!(
        plain.text.contains("speaks HTTPS") && plain.text.contains("--insecure-http"),
        "{}",
        plain.text
    );
}

#[test]
fn https_spoken_to_a_plain_http_registry_says_so() {
    if !crate::support::tools_present(crate::support::REGISTRY_TOOLS) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(Kind::Plain);
    let (_, archive, _) = image(work.path());
    let out = push(work.path(), &registry.host(), "x", &archive, &[]);
    assert!(!out.ok);
    assert!(
        out.text.contains("plain HTTP") && out.text.contains("--insecure-http"),
        "{}",
        out.text
    );
    assert_eq!(out.text.lines().filter(|l| l.starts_with("error")).count(), 1, "{}", out.text);
}

#[test]
fn mutual_tls_from_a_certs_d_folder_as_skopeo_reads_it() {
    if !crate::support::tools_present(crate::support::REGISTRY_TOOLS) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(Kind::ClientCert);
    let (layout, archive, digest) = image(work.path());

    // The reference: skopeo with the certs.d folder as its cert dir.
    skopeo_push(&layout, &registry, "skopeo/app:1.0", &skopeo_dest(&registry), &path_env());
    assert_eq!(registry.inspect_raw("skopeo/app:1.0").1, digest);

    // The CA alone is not enough: the registry wants a client certificate.
    let refused = push(work.path(), &registry.host(), "noclient", &archive, &connection(&registry));
    assert!(!refused.ok);
    assert!(refused.text.contains("client certificate"), "{}", refused.text);

    // The same folder as HOST:PORT under a certs.d root (CHARMER_CERTS_D, see `charmer`):
    // no flag needed, and -v names what was read.
    let folder = work.path().join("certs.d").join(registry.host());
    std::fs::create_dir_all(&folder).unwrap();
    for file in ["ca.crt", "client.cert", "client.key"] {
        std::fs::copy(registry.certs().join("certs.d").join(file), folder.join(file)).unwrap();
    }
    let ok = push(work.path(), &registry.host(), "certsd", &archive, &strings(&["-v"]));
    assert!(ok.ok, "{}", ok.text);
    assert!(
        ok.text.contains(&format!("certs.d folder {}", folder.display()))
            && ok.text.contains("client.cert"),
        "{}",
        ok.text
    );
    assert_eq!(registry.inspect_raw("certsd/team/app:1.0").1, digest);

    // A key without its certificate is an error naming the file, before anything is sent.
    std::fs::remove_file(folder.join("client.cert")).unwrap();
    let bad = push(work.path(), &registry.host(), "bad", &archive, &[]);
    assert!(!bad.ok);
    assert!(
        bad.text.contains("client.key") && bad.text.contains("key without its client certificate"),
        "{}",
        bad.text
    );
}

#[test]
fn a_registries_conf_mirror_is_used_and_mirror_flags_win() {
    if !crate::support::tools_present(crate::support::REGISTRY_TOOLS) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(Kind::Tls);
    let (layout, _, digest) = image(work.path());
    skopeo_push(&layout, &registry, "mirror/team/app:1.0", &skopeo_dest(&registry), &path_env());

    let conf = work.path().join("registries.conf");
    std::fs::write(
        &conf,
        format!(
            "unqualified-search-registries = []\n[[registry]]\nlocation = \"upstream.invalid\"\n[[registry.mirror]]\nlocation = \"{}/mirror\"\ninsecure = true\n",
            registry.host()
        ),
    )
    .unwrap();
    let list = work.path().join("images.txt");
    std::fs::write(&list, "upstream.invalid/team/app:1.0\n").unwrap();
    let save = |out: &str, extra: &[&str]| {
        let assert = charmer(work.path())
            .args(["images", "save", "--quiet", "--retries", "0", "--from-list"])
            .arg(&list)
            .arg("--out")
            .arg(work.path().join(out))
            .args(connection(&registry))
            .args(extra)
            .assert();
        Output::of(assert.get_output())
    };

    // The reference: skopeo pulls the same image through the same file.
    let pulled = work.path().join("skopeo-oci");
    skopeo(&[
        "--registries-conf".to_string(),
        conf.display().to_string(),
        "copy".into(),
        "--preserve-digests".into(),
        format!("--src-cert-dir={}", registry.certs().join("skopeo").display()),
        "docker://upstream.invalid/team/app:1.0".into(),
        format!("oci:{}:app", pulled.display()),
    ]);
    let index = std::fs::read_to_string(pulled.join("index.json")).unwrap();
    assert!(index.contains(&digest), "{index}");

    let ok = save("mirrored.tar", &["-v"]);
    assert!(ok.ok, "{}", ok.text);
    assert!(
        ok.text.contains(&format!("upstream.invalid is reached at {}/mirror", registry.host())),
        "{}",
        ok.text
    );
    // What charmer does not do is said, naming file and key.
    assert!(ok.text.contains("registry[0].mirror[0].insecure: ignored"), "{}", ok.text);
    let members = crate::support::tar_member_names(&work.path().join("mirrored.tar"));
    let blob = format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
    assert!(members.iter().any(|m| m.ends_with(&blob)), "{members:?}");

    // A --mirror for the same name wins over the file (here: a port nothing listens on).
    let flagged = save("flagged.tar", &["--mirror", "upstream.invalid=127.0.0.1:9"]);
    assert!(!flagged.ok);
    assert!(flagged.text.contains("127.0.0.1:9"), "{}", flagged.text);
}

#[test]
fn a_credential_helper_named_in_cred_helpers_as_skopeo_uses_it() {
    if !crate::support::tools_present(crate::support::REGISTRY_TOOLS) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(Kind::TlsAuth);
    let (layout, archive, digest) = image(work.path());

    let bin = work.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-sitetest");
    let script = format!(
        "#!/bin/sh\nread host\n[ \"$1\" = get ] && [ \"$host\" = \"{}\" ] || exit 1\necho '{{\"ServerURL\":\"'$host'\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}'\n",
        registry.host()
    );
    std::fs::write(&helper, script).unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let docker = work.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let config = serde_json::json!({"credHelpers": {registry.host(): "sitetest"}});
    std::fs::write(docker.join("config.json"), config.to_string()).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());

    // The reference: skopeo with the same config.json as its auth file.
    let flags = vec![
        "--authfile".to_string(),
        docker.join("config.json").display().to_string(),
        format!("--dest-cert-dir={}", registry.certs().join("skopeo").display()),
    ];
    skopeo_push(&layout, &registry, "skopeo/app:1.0", &flags, &path);
    assert_eq!(registry.inspect_raw("skopeo/app:1.0").1, digest);

    let mut flags = connection(&registry);
    flags.push("-v".into());
    let assert = charmer(work.path())
        .args(["images", "push", "--retries", "0", "--registry"])
        .arg(format!("{}/helper", registry.host()))
        .arg(&archive)
        .args(&flags)
        .env("PATH", &path)
        .current_dir(work.path())
        .assert();
    let ok = Output::of(assert.get_output());
    assert!(ok.ok, "{}", ok.text);
    assert!(ok.text.contains("credentials from docker-credential-sitetest"), "{}", ok.text);
    assert!(!ok.text.contains(PASSWORD));
    assert_eq!(registry.inspect_raw("helper/team/app:1.0").1, digest);

    // A helper that holds nothing for the host says so: anonymous, and the registry asks.
    // A helper failing otherwise is an error naming it, not an anonymous try.
    for (script, says) in [
        (
            "echo 'credentials not found in native keychain'; exit 1",
            "the registry asks for a login",
        ),
        (
            "echo \"{\\\"Secret\\\":\\\"leak\\\"\"; exit 3",
            "docker-credential-sitetest failed (exit status: 3)",
        ),
    ] {
        std::fs::write(&helper, format!("#!/bin/sh\n{script}\n")).unwrap();
        let assert = charmer(work.path())
            .args(["images", "push", "--quiet", "--retries", "0", "--registry"])
            .arg(format!("{}/other", registry.host()))
            .arg(&archive)
            .args(connection(&registry))
            .env("PATH", &path)
            .current_dir(work.path())
            .assert();
        let out = Output::of(assert.get_output());
        assert!(!out.ok && out.text.contains(says) && !out.text.contains("leak"), "{}", out.text);
    }
}
