//! `--pin-digests` and `--require-digests` against the real `docker-registry`, with skopeo as
//! the independent judge of what each tag's digest is.

use std::path::{Path, PathBuf};

use crate::support::registry::{charmer, connection, free_port, Kind, Layout, Registry};

/// A charm source folder `dir/name` whose one Deployment runs `image`.
fn image_charm(dir: &Path, name: &str, image: &str) {
    let source = dir.join(name);
    std::fs::create_dir_all(source.join("templates")).unwrap();
    let metadata = format!(
        "name: {name}\nsummary: test\ndescription: test\nresources:\n  main-image: {{type: oci-image, upstream-source: '{image}'}}\ncontainers:\n  main: {{resource: main-image}}\n"
    );
    std::fs::write(source.join("metadata.yaml"), metadata).unwrap();
    std::fs::write(source.join("version"), "1.0.0\n").unwrap();
    std::fs::write(source.join("manifest.yaml"), crate::support::SAMPLE_MANIFEST).unwrap();
    std::fs::write(
        source.join("templates/deployment.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ app }}\nspec:\n  selector:\n    matchLabels: {{ selector_labels | tojson }}\n  template:\n    metadata:\n      labels: {{ labels | tojson }}\n    spec:\n      containers:\n        - name: main\n          image: {{ images[\"main-image\"] | tojson }}\n",
    )
    .unwrap();
}

/// `work/shop/bundle.yaml` with one application per `(name, image)`, each running its own
/// charm; returns the bundle file.
fn shop(work: &Path, apps: &[(&str, &str)]) -> PathBuf {
    let dir = work.join("shop");
    let mut bundle = String::from("bundle: kubernetes\nname: shop\napplications:\n");
    for (name, image) in apps {
        image_charm(&dir.join("charms"), name, image);
        bundle.push_str(&format!("  {name}:\n    charm: {name}\n    scale: 1\n"));
    }
    std::fs::write(dir.join("bundle.yaml"), bundle).unwrap();
    dir.join("bundle.yaml")
}

/// Pushes a one-platform image as `team/app:1.0` and a two-platform index as
/// `team/multi:2.0` to `registry`; returns their digests as skopeo reads them.
fn push_images(work: &Path, registry: &Registry) -> (String, String) {
    let mut layout = Layout::new(&work.join("layout"));
    let (l1, l2) = (layout.layer(81, 20_000), layout.layer(82, 30_000));
    let app = layout.image("amd64", &[&l1]);
    let (amd, arm) = (layout.image("amd64", &[&l1, &l2]), layout.image("arm64", &[&l2]));
    let multi = layout.index(&[(&amd, "amd64"), (&arm, "arm64")]);
    layout.name(&app, "app");
    layout.name(&multi, "multi");
    layout.push_with_skopeo("app", registry, "team/app:1.0");
    layout.push_with_skopeo("multi", registry, "team/multi:2.0");
    (registry.inspect_raw("team/app:1.0").1, registry.inspect_raw("team/multi:2.0").1)
}

/// `images list BUNDLE --pin-digests` with `flags`: what it prints.
fn pinned_list(work: &Path, bundle: &Path, flags: &[String]) -> String {
    let listed = charmer(work)
        .args(["images", "list"])
        .arg(bundle)
        .arg("--pin-digests")
        .args(flags)
        .assert()
        .success();
    String::from_utf8_lossy(&listed.get_output().stdout).to_string()
}

/// A work folder and a registry of `kind` holding the test images (see [`push_images`]);
/// `None`, and the test is skipped, without the registry tools.
struct Source {
    work: tempfile::TempDir,
    registry: Registry,
    /// The digest of `team/app:1.0`.
    app: String,
    /// The digest of `team/multi:2.0` (an index).
    multi: String,
}

fn source(kind: Kind) -> Option<Source> {
    if !crate::support::tools_present(crate::support::REGISTRY_TOOLS) {
        return None;
    }
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(kind);
    let (app, multi) = push_images(work.path(), &registry);
    Some(Source { work, registry, app, multi })
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

#[test]
fn render_pins_every_image_by_the_digest_the_registry_serves() {
    let Some(Source { work, registry: src, app: app_digest, multi: multi_digest }) =
        source(Kind::Plain)
    else {
        return;
    };
    let work = work.path();
    let host = src.host();
    // `pinned` names its image by digest already: it must not be asked for.
    let bundle = shop(
        work,
        &[
            ("frontend", &format!("{host}/team/app:1.0")),
            ("backend", &format!("{host}/team/multi:2.0")),
            ("pinned", &format!("{host}/team/app@{app_digest}")),
        ],
    );
    let out = work.join("out");
    let before = src.requests().len();
    charmer(work)
        .arg("render")
        .arg(&bundle)
        .args(["--pin-digests", "--require-digests", "--registry", "10.0.0.5:5000/mirror"])
        .args(connection(&src))
        .arg("--out")
        .arg(&out)
        .assert()
        .success();

    let lock: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(out.join("bundle.lock")).unwrap()).unwrap();
    let image = |app: &str, side: &str| {
        lock["applications"][app]["images"]["main-image"][side].as_str().unwrap().to_string()
    };
    assert_eq!(image("frontend", "source"), format!("{host}/team/app:1.0@{app_digest}"));
    assert_eq!(
        image("frontend", "target"),
        format!("10.0.0.5:5000/mirror/team/app:1.0@{app_digest}")
    );
    // An index is pinned by the index's digest, not one platform's.
    assert_eq!(image("backend", "source"), format!("{host}/team/multi:2.0@{multi_digest}"));
    assert_eq!(
        image("backend", "target"),
        format!("10.0.0.5:5000/mirror/team/multi:2.0@{multi_digest}")
    );
    assert_eq!(image("pinned", "source"), format!("{host}/team/app@{app_digest}"));
    // The manifests run exactly the locked targets.
    for app in ["frontend", "backend"] {
        let manifest = std::fs::read_to_string(out.join(format!("{app}.yaml"))).unwrap();
        assert!(manifest.contains(&format!("image: {}", image(app, "target"))), "{manifest}");
    }
    // One HEAD per tag, nothing for the image pinned already.
    let mut asked: Vec<String> = src.requests().split_off(before);
    asked.sort();
    assert_eq!(asked, vec!["HEAD /v2/team/app/manifests/1.0", "HEAD /v2/team/multi/manifests/2.0"]);

    // images list and check show the same pins.
    let listed = pinned_list(work, &bundle, &connection(&src));
    assert_eq!(
        listed.lines().collect::<Vec<_>>(),
        vec![
            format!("{host}/team/app@{app_digest}"),
            format!("{host}/team/app:1.0@{app_digest}"),
            format!("{host}/team/multi:2.0@{multi_digest}"),
        ]
    );
    let plan = charmer(work)
        .arg("check")
        .arg(&bundle)
        .args(["--pin-digests", "--require-digests"])
        .args(connection(&src))
        .assert()
        .success();
    let plan = String::from_utf8_lossy(&plan.get_output().stdout).to_string();
    assert!(plan.contains(&format!("team/multi:2.0@{multi_digest}")), "{plan}");
}

#[test]
fn require_digests_refuses_images_by_tag_one_line_each_and_writes_nothing() {
    if !crate::support::tools_present(crate::support::REGISTRY_TOOLS) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let digest = format!("sha256:{}", "a".repeat(64));
    let bundle = shop(
        work,
        &[
            ("frontend", "registry.example:5000/team/app:1.0"),
            ("backend", "registry.example:5000/team/api:2.0"),
            ("pinned", &format!("registry.example:5000/team/app@{digest}")),
        ],
    );
    let out = work.join("out");
    let refused = charmer(work)
        .arg("render")
        .arg(&bundle)
        .arg("--require-digests")
        .arg("--out")
        .arg(&out)
        .assert()
        .failure()
        .code(1);
    let text = stderr(refused.get_output());
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains("applications.backend.resources.main-image"), "{text}");
    assert!(lines[0].contains("registry.example:5000/team/api:2.0 is not pinned by digest"));
    assert!(lines[1].contains("applications.frontend.resources.main-image"), "{text}");
    assert!(text.contains("--pin-digests"), "{text}");
    assert!(!out.exists(), "nothing is written");

    // deploy refuses before it reaches for a cluster (none is configured here).
    let refused = charmer(work)
        .arg("deploy")
        .arg(&bundle)
        .arg("--require-digests")
        .arg("--kubeconfig")
        .arg(work.join("no-kubeconfig"))
        .assert()
        .failure()
        .code(1);
    let text = stderr(refused.get_output());
    assert!(text.contains("is not pinned by digest"), "{text}");
    assert!(!text.contains("kubeconfig"), "{text}");

    // With the images pinned in the bundle's resources, the lint passes.
    let overlay = work.join("pinned.yaml");
    std::fs::write(
        &overlay,
        format!("applications:\n  frontend:\n    resources:\n      main-image: registry.example:5000/team/app:1.0@{digest}\n  backend:\n    resources:\n      main-image: registry.example:5000/team/api:2.0@{digest}\n"),
    )
    .unwrap();
    charmer(work)
        .arg("check")
        .arg(&bundle)
        .arg("--overlay")
        .arg(&overlay)
        .arg("--require-digests")
        .assert()
        .success();

    // In the air gap, the retagged-images.txt `images push` wrote pins every target.
    let retagged = work.join("retagged-images.txt");
    std::fs::write(
        &retagged,
        format!("10.0.0.5:5000/team/app:1.0@{digest}\n10.0.0.5:5000/team/api:2.0@{digest}\n10.0.0.5:5000/team/app@{digest}\n"),
    )
    .unwrap();
    charmer(work)
        .arg("check")
        .arg(&bundle)
        .arg("--image-map")
        .arg(&retagged)
        .arg("--require-digests")
        .assert()
        .success();
}

#[test]
fn failed_lookups_are_reported_together_and_nothing_is_written() {
    let Some(Source { work, registry: src, .. }) = source(Kind::Plain) else { return };
    let work = work.path();
    let host = src.host();
    let nobody = format!("127.0.0.1:{}", free_port());
    let bundle = shop(
        work,
        &[
            ("frontend", &format!("{host}/team/app:1.0")),
            ("backend", &format!("{host}/team/app:9.9")),
            ("gone", &format!("{nobody}/team/app:1.0")),
            ("hub", "nginx:1.27"),
        ],
    );
    let out = work.join("out");
    let failed = charmer(work)
        .arg("render")
        .arg(&bundle)
        .arg("--pin-digests")
        .args(connection(&src))
        .arg("--out")
        .arg(&out)
        .assert()
        .failure();
    let text = stderr(failed.get_output());
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].contains("applications.backend.resources.main-image"), "{text}");
    assert!(lines[0].contains(&format!("cannot pin {host}/team/app:9.9 by digest")), "{text}");
    assert!(lines[0].contains("no tag \"9.9\" in team/app"), "{text}");
    assert!(lines[1].contains("applications.gone.resources.main-image"), "{text}");
    assert!(lines[1].contains(&format!("cannot reach registry {nobody}")), "{text}");
    assert!(lines[2].contains("applications.hub.resources.main-image"), "{text}");
    assert!(lines[2].contains("--mirror docker.io=HOST"), "{text}");
    assert!(!out.exists(), "nothing is written");

    // docker.io is reached through the mirror given for it.
    let hub = shop(work, &[("hub", "nginx:1.27")]);
    let mut layout = Layout::new(&work.join("hub-layout"));
    let layer = layout.layer(91, 10_000);
    let nginx = layout.image("amd64", &[&layer]);
    layout.name(&nginx, "nginx");
    layout.push_with_skopeo("nginx", &src, "library/nginx:1.27");
    let (_, nginx_digest) = src.inspect_raw("library/nginx:1.27");
    let mirror = [vec!["--mirror".to_string(), format!("docker.io={host}")], connection(&src)];
    assert_eq!(
        pinned_list(work, &hub, &mirror.concat()),
        format!("docker.io/library/nginx:1.27@{nginx_digest}\n")
    );
}

#[test]
fn an_https_registry_is_pinned_with_its_ca_file() {
    let Some(Source { work, registry: src, app: app_digest, .. }) = source(Kind::Tls) else {
        return;
    };
    let work = work.path();
    let host = src.host();
    let bundle = shop(work, &[("frontend", &format!("{host}/team/app:1.0"))]);
    let untrusted = charmer(work).arg("check").arg(&bundle).arg("--pin-digests").assert().failure();
    assert!(stderr(untrusted.get_output()).contains("--ca-file"));
    assert_eq!(
        pinned_list(work, &bundle, &connection(&src)),
        format!("{host}/team/app:1.0@{app_digest}\n")
    );
}

#[test]
fn airgap_export_carries_the_pinned_images_and_import_keeps_the_pins() {
    let Some(Source { work, registry: src, app: app_digest, multi: multi_digest }) =
        source(Kind::Plain)
    else {
        return;
    };
    let work = work.path();
    let dst = Registry::start(Kind::Plain);
    let host = src.host();
    let bundle = shop(
        work,
        &[
            ("frontend", &format!("{host}/team/app:1.0")),
            ("backend", &format!("{host}/team/multi:2.0")),
        ],
    );
    let archive = work.join("shop.tar");
    let key = work.join("airgap");
    charmer(work).arg("keygen").arg("--out").arg(&key).assert().success();
    charmer(work)
        .args(["airgap", "export"])
        .arg(&bundle)
        .args(["--pin-digests", "--require-digests", "--quiet"])
        .args(connection(&src))
        .arg("--sign-key")
        .arg(key.with_extension("key"))
        .arg("--out")
        .arg(&archive)
        .assert()
        .success();
    let unpacked = work.join("unpacked");
    charmer(work)
        .args(["airgap", "import"])
        .arg(&archive)
        .arg("--registry")
        .arg(format!("{}/mirror", dst.host()))
        .args(connection(&dst))
        .arg("--verify-key")
        .arg(key.with_extension("pub"))
        .arg("--out")
        .arg(&unpacked)
        .arg("--quiet")
        .assert()
        .success();
    // On the air-gapped side the signed folder (images named with their digests) checks out
    // against the bundle (images by tag), and the pushed images' map pins every target.
    charmer(work)
        .current_dir(&unpacked)
        .args(["check", "bundle.yaml", "--image-map", "retagged-images.txt", "--require-digests"])
        .arg("--verify-key")
        .arg(key.with_extension("pub"))
        .assert()
        .success();
    let lock: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(unpacked.join("bundle.lock")).unwrap())
            .unwrap();
    let image = |app: &str, side: &str| {
        lock["applications"][app]["images"]["main-image"][side].as_str().unwrap().to_string()
    };
    assert_eq!(image("frontend", "source"), format!("{host}/team/app:1.0@{app_digest}"));
    assert_eq!(
        image("frontend", "target"),
        format!("{}/mirror/team/app:1.0@{app_digest}", dst.host())
    );
    assert_eq!(
        image("backend", "target"),
        format!("{}/mirror/team/multi:2.0@{multi_digest}", dst.host())
    );
    // What the target registry serves under the tag is the pinned image itself.
    assert_eq!(dst.inspect_raw("mirror/team/multi:2.0").1, multi_digest);
}
