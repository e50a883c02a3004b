//! Pushing over HTTPS to a registry with a private CA, and with a login: command-line
//! credentials, Docker's config.json, a credential helper. Passwords never show.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;

use crate::support::registry::{charmer, connection, Kind, Layout, Registry, PASSWORD, USER};

/// An OCI archive of one small image named `example.com/team/app:1.0`; returns its path and
/// manifest digest.
fn archive(work: &Path) -> (PathBuf, String) {
    let mut layout = Layout::new(&work.join("layout"));
    let layer = layout.layer(41, 64_000);
    let image = layout.image("amd64", &[&layer]);
    layout.name(&image, "example.com/team/app:1.0");
    let path = work.join("app.tar");
    layout.write_tar(&path);
    (path, image.digest)
}

/// `charmer images push ARCHIVE` to `registry/prefix`, trusting the registry, no retries.
fn push_to(work: &Path, registry: &Registry, prefix: &str, archive: &Path) -> assert_cmd::Command {
    let mut command = charmer(work);
    command
        .args([
            "images",
            "push",
            "--retries",
            "0",
            "--registry",
            &format!("{}/{prefix}", registry.host()),
        ])
        .arg(archive)
        .args(connection(registry))
        .current_dir(work);
    command
}

fn output(assert: &assert_cmd::assert::Assert) -> String {
    let out = assert.get_output();
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn https_with_a_private_ca_only_when_trusted() {
    if !crate::support::tools_present(crate::support::REGISTRY_TOOLS) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(Kind::Tls);
    let (archive, digest) = archive(work.path());
    let push = || {
        let mut command = charmer(work.path());
        command
            .args(["images", "push", "--quiet", "--retries", "0", "--registry", &registry.host()])
            .arg(&archive)
            .current_dir(work.path());
        command
    };
    let untrusted = push().assert().failure();
    assert!(output(&untrusted).contains("certificate"), "{}", output(&untrusted));
    push().arg("--insecure-http").assert().failure();
    push().args(connection(&registry)).assert().success();
    assert_eq!(registry.inspect_raw("team/app:1.0").1, digest);
}

#[test]
fn https_login_from_stdin_docker_config_and_credential_helper() {
    if !crate::support::tools_present(crate::support::REGISTRY_TOOLS) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(Kind::TlsAuth);
    let (archive, digest) = archive(work.path());
    let push = |prefix: &str| {
        let mut command = push_to(work.path(), &registry, prefix, &archive);
        command.arg("-vv");
        command
    };

    // Neither the password nor the Authorization header made of it may show, even at -vv.
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let secret_free = |text: String| !text.contains(PASSWORD) && !text.contains(&basic);

    let anonymous = push("anon").assert().failure();
    assert!(
        output(&anonymous).contains("the registry asks for a login"),
        "{}\n{}",
        output(&anonymous),
        std::fs::read_to_string(registry.log_path()).unwrap_or_default()
    );

    let wrong = push("wrong")
        .args(["--username", USER, "--password-stdin"])
        .write_stdin("not-the-password\n")
        .assert()
        .failure();
    assert!(output(&wrong).contains("credentials refused"), "{}", output(&wrong));
    assert!(!output(&wrong).contains("not-the-password"));

    let ok = push("stdin")
        .args(["--username", USER, "--password-stdin"])
        .write_stdin(format!("{PASSWORD}\n"))
        .assert()
        .success();
    assert!(secret_free(output(&ok)), "the password was printed");
    assert_eq!(registry.inspect_raw("stdin/team/app:1.0").1, digest);

    // ~/.docker/config.json (here DOCKER_CONFIG) `auths`, keyed by host.
    let docker = work.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let config = serde_json::json!({"auths": {registry.host(): {"auth": basic}}});
    std::fs::write(docker.join("config.json"), config.to_string()).unwrap();
    let ok = push("config").assert().success();
    assert!(secret_free(output(&ok)));
    assert_eq!(registry.inspect_raw("config/team/app:1.0").1, digest);

    // A credential helper named by `credsStore`, found on PATH.
    let bin = work.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-charmertest");
    let script = format!("#!/bin/sh\nread host\n[ \"$1\" = get ] && [ \"$host\" = \"{}\" ] || exit 1\necho '{{\"ServerURL\":\"'$host'\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}'\n", registry.host());
    std::fs::write(&helper, script).unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(docker.join("config.json"), r#"{"credsStore":"charmertest"}"#).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let ok = push("helper").env("PATH", path).assert().success();
    assert!(secret_free(output(&ok)));
    assert_eq!(registry.inspect_raw("helper/team/app:1.0").1, digest);
}

#[test]
fn bearer_tokens_from_the_realm_the_registry_names() {
    if !crate::support::tools_present(crate::support::REGISTRY_TOOLS) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(Kind::Token);
    let (archive, digest) = archive(work.path());
    let push = |prefix: &str| push_to(work.path(), &registry, prefix, &archive);
    let anonymous = push("anon").assert().failure();
    assert!(
        output(&anonymous).contains("the registry asks for a login"),
        "{}\n{}",
        output(&anonymous),
        std::fs::read_to_string(registry.log_path()).unwrap_or_default()
    );
    let wrong = push("wrong")
        .args(["--username", USER, "--password-stdin"])
        .write_stdin("nope")
        .assert()
        .failure();
    assert!(
        output(&wrong).contains("the token service refused the credentials"),
        "{}",
        output(&wrong)
    );

    let tokens = registry.tokens.as_ref().unwrap();
    let before = tokens.requests.load(std::sync::atomic::Ordering::SeqCst);
    push("team")
        .args(["--username", USER, "--password-stdin"])
        .write_stdin(PASSWORD)
        .assert()
        .success();
    // Tokens are cached per scope: far fewer token requests than registry requests.
    let fetched = tokens.requests.load(std::sync::atomic::Ordering::SeqCst) - before;
    assert!(
        (1..=4).contains(&fetched),
        "{fetched} token requests for {} registry requests",
        registry.requests().len()
    );
    assert_eq!(registry.inspect_raw("team/team/app:1.0").1, digest);
}
