//! Charms as OCI artifacts in the real docker-registry (HTTPS, htpasswd): `publish
//! --registry`, read back by skopeo and by the resolver's `--charms oci://`.

use std::path::Path;

use base64::Engine as _;
use serde_json::Value;

use crate::support::registry::{connection, skopeo, Kind, Registry, PASSWORD, USER};

/// The demo charms and bundle in a temporary folder.
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/demo");
    crate::support::copy_dir(&demo, dir.path());
    dir
}

/// `charmer ARGS` in `dir`, logged in to `registry`.
fn charmer(dir: &Path, registry: &Registry, args: &[&str]) -> assert_cmd::Command {
    let mut command = crate::support::registry::charmer(dir);
    command.current_dir(dir).args(args).args(connection(registry));
    command.args(["--username", USER, "--password-stdin"]).write_stdin(format!("{PASSWORD}\n"));
    command
}

fn stdout(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&assert.get_output().stdout).into_owned()
}

fn stderr(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&assert.get_output().stderr).into_owned()
}

/// skopeo's raw view of `reference` on `registry`, as JSON.
fn inspect(registry: &Registry, reference: &str) -> Value {
    let (raw, _) = registry.inspect_raw(reference);
    serde_json::from_slice(&raw).unwrap()
}

#[test]
fn published_charms_are_oci_artifacts_with_signatures_as_referrers() {
    let ws = workspace();
    let registry = Registry::start(Kind::TlsAuth);
    let target = format!("{}/charms", registry.host());
    crate::support::registry::charmer(ws.path())
        .current_dir(ws.path())
        .args(["keygen", "--out", "keys/rel"])
        .assert()
        .success();
    let publish = |args: &[&str]| {
        let mut all = vec!["publish", "--registry", &target, "--sign-key", "keys/rel.key"];
        all.extend_from_slice(args);
        charmer(ws.path(), &registry, &all).assert()
    };
    let pushed = publish(&["charms/web", "charms/db"]).success();
    let out = stdout(&pushed);
    assert!(out.contains(&format!("pushed     web 1.2.0  {target}/web:1.2.0@sha256:")), "{out}");
    assert!(out.contains("signed with key "), "{out}");

    // skopeo reads the artifact: artifactType, config and the one archive layer.
    let (raw, digest) = registry.inspect_raw("charms/web:1.2.0");
    let manifest: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(manifest["artifactType"], "application/vnd.charmer.charm.v1");
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.charmer.charm.config.v1+json");
    let layer = &manifest["layers"][0];
    assert_eq!(layer["mediaType"], "application/vnd.charmer.charm.v1+zip");
    assert_eq!(layer["annotations"]["org.opencontainers.image.title"], "web_1.2.0.charm");
    // The archive stored is the one `publish --out` writes, byte for byte.
    crate::support::registry::charmer(ws.path())
        .current_dir(ws.path())
        .args(["publish", "charms/web", "--out", "dist"])
        .assert()
        .success();
    let archive = std::fs::read(ws.path().join("dist/web_1.2.0.charm")).unwrap();
    assert_eq!(layer["digest"], crate::support::registry::sha256(&archive));
    assert_eq!(layer["size"], archive.len() as u64);
    assert!(out.contains(&format!("web:1.2.0@{digest}")), "{out}");

    // The signature: docker-registry 2.8 has no referrers API, so it is listed under the
    // fallback tag sha256-<hex>, as an artifact whose subject is the charm's manifest.
    let fallback = format!("charms/web:sha256-{}", digest.trim_start_matches("sha256:"));
    let referrers = inspect(&registry, &fallback);
    let entry = &referrers["manifests"][0];
    assert_eq!(entry["artifactType"], "application/vnd.charmer.charm.signature.v1");
    let signature =
        inspect(&registry, &format!("charms/web@{}", entry["digest"].as_str().unwrap()));
    assert_eq!(signature["subject"]["digest"], digest.as_str());
    assert_eq!(signature["layers"][0]["mediaType"], "application/vnd.charmer.minisign.v1");

    // Published versions are immutable: the same content is a no-op (and the fallback index
    // does not grow); other content under the same version is refused, nothing pushed.
    let again = publish(&["charms/web"]).success();
    assert!(stdout(&again).contains("unchanged  web 1.2.0"), "{}", stdout(&again));
    assert_eq!(inspect(&registry, &fallback)["manifests"].as_array().unwrap().len(), 1);
    std::fs::write(ws.path().join("charms/web/README.md"), "changed\n").unwrap();
    let refused = publish(&["charms/web"]).failure();
    let err = stderr(&refused);
    assert!(
        err.contains(&format!("{target}/web:1.2.0: web 1.2.0 is already published as {digest}"))
            && err.contains("immutable"),
        "{err}"
    );
    assert_eq!(registry.inspect_raw("charms/web:1.2.0").1, digest);

    // The resolver reads the prefix: semver range from the tags, archive checked, signature
    // verified; the lock pins the artifact. Credentials come from the Docker config.
    std::fs::remove_file(ws.path().join("charms/web/README.md")).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    std::fs::create_dir_all(ws.path().join("docker")).unwrap();
    std::fs::write(
        ws.path().join("docker/config.json"),
        format!(r#"{{"auths": {{"{}": {{"auth": "{auth}"}}}}}}"#, registry.host()),
    )
    .unwrap();
    let source = format!("oci://{target}");
    let resolve = |command: &str, key: &str, extra: &[&str]| {
        let mut cmd = crate::support::registry::charmer(ws.path());
        cmd.current_dir(ws.path())
            .args([command, "bundles/demo", "--charms", &source, "--verify-key", key])
            .args(connection(&registry))
            .args(extra);
        cmd.assert()
    };
    let plan = stdout(&resolve("check", "keys/rel.pub", &[]).success());
    assert!(
        plan.contains(&format!("web: charm web 1.2.0 (oci://{target}/web@{digest})")),
        "{plan}"
    );
    resolve("render", "keys/rel.pub", &["--out", "rendered"]).success();
    let lock = std::fs::read_to_string(ws.path().join("rendered/bundle.lock")).unwrap();
    assert!(lock.contains(&format!("artifact: oci://{target}/web@{digest}")), "{lock}");
    let from_sources = crate::support::registry::charmer(ws.path())
        .current_dir(ws.path())
        .args(["render", "bundles/demo", "--charms", "charms"])
        .assert()
        .success();
    let from_registry = resolve("render", "keys/rel.pub", &[]).success();
    assert_eq!(stdout(&from_registry), stdout(&from_sources));
    // Another key: refused, naming the artifact.
    crate::support::registry::charmer(ws.path())
        .current_dir(ws.path())
        .args(["keygen", "--out", "keys/other"])
        .assert()
        .success();
    let err = stderr(&resolve("check", "keys/other.pub", &[]).failure());
    assert!(
        err.contains(&format!("oci://{target}/web:1.2.0")) && err.contains("signature"),
        "{err}"
    );
    // An unsigned version is refused with --verify-key.
    std::fs::write(ws.path().join("charms/db/version"), "1.1.0\n").unwrap();
    charmer(ws.path(), &registry, &["publish", "--registry", &target, "charms/db"])
        .assert()
        .success();
    let err = stderr(&resolve("check", "keys/rel.pub", &[]).failure());
    assert!(
        err.contains(&format!("oci://{target}/db:1.1.0")) && err.contains("not signed"),
        "{err}"
    );

    // Build metadata: `+` is not allowed in tags, so it becomes `_`.
    std::fs::write(ws.path().join("charms/web/version"), "1.3.0+build.7\n").unwrap();
    publish(&["charms/web"]).success();
    let tags = skopeo_tags(&registry, "charms/web");
    assert!(tags.contains(&"1.3.0_build.7".to_string()), "{tags:?}");
}

/// The tags skopeo lists for a repository.
fn skopeo_tags(registry: &Registry, repository: &str) -> Vec<String> {
    let mut args = vec!["list-tags".to_string()];
    args.extend(registry.skopeo_flags("src").into_iter().map(|f| f.replace("--src-", "--")));
    args.push(format!("docker://{}/{repository}", registry.host()));
    let listed: Value = serde_json::from_slice(&skopeo(&args).stdout).unwrap();
    listed["Tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect()
}
