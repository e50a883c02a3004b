//! Images Charmed Kubeflow's operator charms name in config options (istio-gateway's
//! `proxy-image`, istio-pilot's `image-configuration`, argo-controller's `executor-image`),
//! and images no charm names (`airgap export --image`): listed, carried, pushed, and set in
//! the written `deploy-juju.sh`. The charms are built from Juju's real file shapes
//! (tests/fixtures/operator-images/, tests/fixtures/juju/), their images moved to a test
//! registry.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::juju_charms::charmhub_archive;
use crate::support::registry::{charmer, connection, run, Kind, Layout, Registry};

fn fixture(name: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let path = [root.join("operator-images").join(name), root.join("juju").join(name)]
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("no fixture {name}"));
    std::fs::read_to_string(&path).unwrap()
}

/// The Istio and Argo part of the Charmed Kubeflow bundle, with Charmhub-style archives of
/// the three charms whose images are at `src` (their files as upstream has them, but for the
/// registry host); returns the bundle file.
fn kubeflow(dir: &Path, src: &str) -> PathBuf {
    let charms = dir.join("charms");
    let gateway = fixture("istio-operators__istio-gateway__config.yaml")
        .replace("docker.io/istio/proxyv2:1.17.3", &format!("{src}/istio/proxyv2:1.17.3"));
    assert_ne!(gateway, fixture("istio-operators__istio-gateway__config.yaml"));
    charmhub_archive(
        &charms,
        "istio-gateway",
        1106,
        &fixture("istio-operators__istio-gateway__metadata.yaml"),
        &gateway,
    );
    let pilot = fixture("istio-operators__istio-pilot__config.yaml")
        .replace("'docker.io/istio'", &format!("'{src}/istio'"))
        .replace("'busybox:1.28'", &format!("'{src}/library/busybox:1.28'"));
    charmhub_archive(
        &charms,
        "istio-pilot",
        1107,
        &fixture("istio-operators__istio-pilot__metadata.yaml"),
        &pilot,
    );
    let argo = fixture("argo-operators__argo-controller__metadata.yaml").replace(
        "upstream-source: argoproj/workflow-controller:v3.3.8",
        &format!("upstream-source: {src}/argoproj/workflow-controller:v3.3.8"),
    );
    charmhub_archive(
        &charms,
        "argo-controller",
        612,
        &argo,
        &fixture("argo-operators__argo-controller__config.yaml"),
    );
    let bundle = dir.join("bundle.yaml");
    std::fs::write(&bundle, fixture("bundle.yaml")).unwrap();
    bundle
}

fn text(output: &[u8]) -> String {
    String::from_utf8(output.to_vec()).unwrap()
}

#[test]
fn config_images_of_operator_charms_and_extra_images_cross_the_gap() {
    let work = tempfile::tempdir().unwrap();
    let (src, dst) = (Registry::start(Kind::Plain), Registry::start(Kind::Plain));
    let host = src.host();
    let mut layout = Layout::new(&work.path().join("layout"));
    let (l1, l2) = (layout.layer(91, 20_000), layout.layer(92, 10_000));
    let (one, two) = (layout.image("amd64", &[&l1]), layout.image("amd64", &[&l1, &l2]));
    layout.name(&one, "one");
    layout.name(&two, "two");
    let images = [
        ("one", "istio/proxyv2:1.17.3"),
        ("two", "istio/proxyv2:1.28.0"),
        ("one", "istio/pilot:1.28.0"),
        ("two", "library/busybox:1.28"),
        ("one", "argoproj/workflow-controller:v3.3.8"),
        ("two", "charmedkubeflow/argoexec:3.7.4"),
        ("one", "jujusolutions/charm-base:ubuntu-22.04"),
        ("two", "jujusolutions/jujud-operator:3.6.0"),
    ];
    for (name, image) in images {
        layout.push_with_skopeo(name, &src, image);
    }
    let digest = |image: &str| src.inspect_raw(image).1;
    let shop = work.path().join("kubeflow");
    let bundle = kubeflow(&shop, &host);
    // A bundle value names an image too (a newer executor than the charm's default).
    let overlay = shop.join("site.yaml");
    std::fs::write(
        &overlay,
        format!("applications:\n  argo-controller:\n    options:\n      executor-image: {host}/charmedkubeflow/argoexec:3.7.4\n"),
    )
    .unwrap();

    // `images list BUNDLE [--overlay OVERLAY]`.
    let list = |overlay: Option<&Path>| {
        let mut command = charmer(work.path());
        command.args(["images", "list"]).arg(&bundle);
        if let Some(overlay) = overlay {
            command.arg("--overlay").arg(overlay);
        }
        command
    };
    // images list: every image, those only options name marked with the option.
    let listed = list(Some(&overlay)).assert().success();
    let (stdout, stderr) = (text(&listed.get_output().stdout), text(&listed.get_output().stderr));
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            format!("{host}/argoproj/workflow-controller:v3.3.8"),
            format!("{host}/charmedkubeflow/argoexec:3.7.4  # config: argo-controller executor-image"),
            format!("{host}/istio/pilot:1.28.0  # config: istio-pilot image-configuration[pilot-image]"),
            format!("{host}/istio/proxyv2:1.17.3  # config: istio-ingressgateway proxy-image"),
            format!("{host}/istio/proxyv2:1.28.0  # config: istio-pilot image-configuration[global-proxy-image], istio-pilot image-configuration[global-proxy-init-image]"),
            format!("{host}/library/busybox:1.28  # config: istio-pilot image-configuration[grpc-bootstrap-init]"),
        ],
        "{stdout}"
    );
    assert!(!stderr.contains("declare"), "no hint a Charmhub charm's user cannot follow: {stderr}");
    for option in ["proxy-image", "image-configuration", "executor-image"] {
        assert!(!stderr.contains(option), "the images it reads are no warning: {stderr}");
    }

    // --pin-digests pins them too; Istio's hub + tag form cannot run by digest, which
    // --require-digests says.
    let pinning = |require: bool| {
        let mut command = list(Some(&overlay));
        command.args(["--pin-digests", "--insecure-http"]);
        if require {
            command.arg("--require-digests");
        }
        command.assert()
    };
    let pinned_list = text(&pinning(false).success().get_output().stdout);
    assert!(
        pinned_list.contains(&format!(
            "{host}/istio/proxyv2:1.17.3@{}  # config: istio-ingressgateway proxy-image\n",
            digest("istio/proxyv2:1.17.3")
        )),
        "{pinned_list}"
    );
    let refused = text(&pinning(true).failure().get_output().stderr);
    let by_tag: Vec<&str> = refused.lines().filter(|l| l.contains("runs by tag")).collect();
    assert_eq!(by_tag.len(), 3, "{refused}");
    assert!(by_tag[2].starts_with(&format!("error: {}: applications.istio-pilot.options.image-configuration[pilot-image]: runs by tag: the option combines global-hub and global-tag, which cannot name a digest (--require-digests)", bundle.display())), "{refused}");
    assert!(!refused.contains("not pinned by digest"), "{refused}");

    // --why takes a repository name or a path suffix, and says when several match.
    let why = |needle: &str, json: bool| {
        let mut command = list(Some(&overlay));
        command.args(["--why", needle]);
        if json {
            command.args(["--output", "json"]);
        }
        text(&command.assert().success().get_output().stdout)
    };
    assert_eq!(
        why("pilot", false),
        "istio-pilot (charm istio-pilot 5be7a7a, config: image-configuration[pilot-image])\n"
    );
    assert_eq!(
        why("istio/proxyv2", false),
        format!("\"istio/proxyv2\" matches 2 images:\n{host}/istio/proxyv2:1.17.3\n  istio-ingressgateway (charm istio-gateway 5be7a7a, config: proxy-image)\n{host}/istio/proxyv2:1.28.0\n  istio-pilot (charm istio-pilot 5be7a7a, config: image-configuration[global-proxy-image])\n  istio-pilot (charm istio-pilot 5be7a7a, config: image-configuration[global-proxy-init-image])\n")
    );
    assert_eq!(
        why("workflow-controller:v3.3.8", false),
        "argo-controller (charm argo-controller 5be7a7a, resource oci-image)\n"
    );
    let json: serde_json::Value = serde_json::from_str(&why("proxyv2:1.17.3", true)).unwrap();
    assert_eq!(
        json["images"][0]["used_by"],
        serde_json::json!([{"app": "istio-ingressgateway", "charm": "istio-gateway", "version": "5be7a7a", "config": "proxy-image"}])
    );
    let missing = list(None).args(["--why", "proxyv3"]).assert().failure();
    assert!(
        text(&missing.get_output().stderr).contains("no application of the bundle uses this image")
    );

    // A value charmer cannot read: one warning for the option, with the line to write.
    let unreadable = list(None)
        .args(["--registry", "10.0.0.5:5000/ckf", "--config"])
        .arg(format!("istio-pilot.image-configuration=global-hub: {host}/istio\npilot-image: pilot\nextra: {host}/istio/ztunnel:1.28.0\n"))
        .assert()
        .success();
    let stderr = text(&unreadable.get_output().stderr);
    let warnings: Vec<&str> =
        stderr.lines().filter(|l| l.contains("image-configuration")).collect();
    assert_eq!(
        warnings,
        [format!("warning: --config: applications.istio-pilot.options.image-configuration: charm istio-pilot names images in this option in a form charmer cannot read (pilot-image: \"pilot\" is combined with global-hub and global-tag, and global-tag is missing); they are not carried and the Juju script does not set it (hint: carry its images with airgap export --image {host}/istio/ztunnel:1.28.0, and add to istio-pilot's juju deploy line: --config \"image-configuration=$(printf '%b' 'global-hub: {host}/istio\\npilot-image: pilot\\nextra: 10.0.0.5:5000/ckf/istio/ztunnel:1.28.0\\n')\")")]
    );

    // A map left empty: the charm picks images charmer cannot see, which it says.
    charmhub_archive(
        &shop.join("charms"),
        "kfp-profile-controller",
        1000,
        "name: kfp-profile-controller\nsummary: s\n",
        &fixture("kfp-operators__kfp-profile-controller__config.yaml"),
    );
    let kfp = shop.join("kfp.yaml");
    std::fs::write(&kfp, "applications:\n  kfp-profile-controller:\n    charm: kfp-profile-controller\n    scale: 1\n").unwrap();
    let defaulted = list(Some(&kfp)).assert().success();
    let stderr = text(&defaulted.get_output().stderr);
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("custom_images")).collect();
    assert_eq!(
        warnings,
        [format!("warning: {}/kfp-profile-controller_r1000.charm/config.yaml: options.custom_images.default: charm kfp-profile-controller is left to pick its own images for visualization_server, frontend: charmer cannot see them, so they are not carried (hint: set custom_images to the images (a YAML map of visualization_server, frontend to references) and carry them with airgap export --image REF)", shop.join("charms").display())]
    );

    // Export carries them all, and the extra images apart.
    let list = work.path().join("retagged-images.txt");
    std::fs::write(&list, format!("# Juju's agent\n{host}/jujusolutions/jujud-operator:3.6.0\n"))
        .unwrap();
    let carried = work.path().join("ckf.tar");
    let exported = charmer(work.path())
        .args(["airgap", "export"])
        .arg(&bundle)
        .arg("--overlay")
        .arg(&overlay)
        .args(["--image", &format!("{host}/jujusolutions/charm-base:ubuntu-22.04")])
        .args(["--image", &format!("{host}/istio/pilot:1.28.0")])
        .arg("--images-from")
        .arg(&list)
        .arg("--out")
        .arg(&carried)
        .args(connection(&src))
        .assert()
        .success();
    assert!(
        text(&exported.get_output().stdout).contains("3 charms, 6 images (+2 extra), lock"),
        "{}",
        text(&exported.get_output().stdout)
    );
    let mut tar = tar::Archive::new(std::fs::File::open(&carried).unwrap());
    let contents: serde_json::Value = tar
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().to_str() == Some("airgap.json"))
        .map(|e| serde_json::from_reader(e).unwrap())
        .unwrap();
    assert_eq!(contents["images"].as_array().unwrap().len(), 6);
    assert_eq!(
        contents["extra_images"],
        serde_json::json!([
            format!("{host}/jujusolutions/charm-base:ubuntu-22.04"),
            format!("{host}/jujusolutions/jujud-operator:3.6.0")
        ]),
        "an image a charm names already is carried as the charm's"
    );

    // Import pushes them and writes the script that points every option at them.
    let out_dir = work.path().join("deploy");
    charmer(work.path())
        .args(["airgap", "import", "--quiet", "--registry", &format!("{}/ckf", dst.host())])
        .arg("--out")
        .arg(&out_dir)
        .arg(&carried)
        .args(connection(&dst))
        .assert()
        .success();
    let to = format!("{}/ckf", dst.host());
    let pinned = |image: &str| {
        let (path, _) = image.rsplit_once(':').unwrap();
        format!("{to}/{path}@{}", digest(image))
    };
    let script = std::fs::read_to_string(out_dir.join("deploy-juju.sh")).unwrap();
    let lines: Vec<&str> = script.lines().collect();
    let after = |start: &str| -> Vec<String> {
        let at =
            lines.iter().position(|l| l.starts_with(start)).unwrap_or_else(|| panic!("{script}"));
        lines[at..].iter().take_while(|l| !l.is_empty()).map(|l| l.to_string()).collect()
    };
    assert_eq!(
        after("juju deploy ./charms/argo-controller_r612.charm"),
        [
            "juju deploy ./charms/argo-controller_r612.charm argo-controller \\".to_string(),
            format!("  --resource oci-image={} \\", pinned("argoproj/workflow-controller:v3.3.8")),
            format!("  --config executor-image={} \\", pinned("charmedkubeflow/argoexec:3.7.4")),
            "  --trust \\".to_string(),
            "  --num-units 1".to_string(),
        ]
    );
    assert_eq!(
        after("juju deploy ./charms/istio-gateway_r1106.charm"),
        [
            "juju deploy ./charms/istio-gateway_r1106.charm istio-ingressgateway \\".to_string(),
            "  --config kind=ingress \\".to_string(),
            format!("  --config proxy-image={} \\", pinned("istio/proxyv2:1.17.3")),
            "  --trust \\".to_string(),
            "  --num-units 1".to_string(),
        ]
    );
    // Istio's hub + tag form names no digest: the hub moves, the tag (pushed too) stays.
    assert_eq!(
        after("juju deploy ./charms/istio-pilot_r1107.charm"),
        [
            "juju deploy ./charms/istio-pilot_r1107.charm istio-pilot \\".to_string(),
            "  --config default-gateway=kubeflow-gateway \\".to_string(),
            format!("  --config 'image-configuration={{\"pilot-image\":\"pilot\",\"global-tag\":\"1.28.0\",\"global-hub\":\"{to}/istio\",\"global-proxy-image\":\"proxyv2\",\"global-proxy-init-image\":\"proxyv2\",\"grpc-bootstrap-init\":\"{}\"}}' \\", pinned("library/busybox:1.28")),
            "  --trust \\".to_string(),
            "  --num-units 1".to_string(),
        ]
    );
    assert!(
        script.ends_with(&format!("\n# Images carried beside the charms (airgap export --image), no charm names them:\n#   {}\n#   {}\n", format_args!("{to}/jujusolutions/charm-base:ubuntu-22.04@{}", digest("jujusolutions/charm-base:ubuntu-22.04")), format_args!("{to}/jujusolutions/jujud-operator:3.6.0@{}", digest("jujusolutions/jujud-operator:3.6.0")))),
        "{script}"
    );
    run(Command::new("sh").arg("-n").arg(out_dir.join("deploy-juju.sh")));
    // What the script names is in the private registry: by digest, and by tag for Istio's hub.
    for image in
        ["istio/pilot:1.28.0", "istio/proxyv2:1.28.0", "jujusolutions/charm-base:ubuntu-22.04"]
    {
        assert_eq!(dst.inspect_raw(&format!("ckf/{image}")).1, digest(image), "{image}");
    }
    let retagged = std::fs::read_to_string(out_dir.join("retagged-images.txt")).unwrap();
    assert!(retagged.contains(&format!("{to}/jujusolutions/jujud-operator:3.6.0@")), "{retagged}");
    let lock = std::fs::read_to_string(out_dir.join("bundle.lock")).unwrap();
    assert!(
        lock.contains("config-images:") && lock.contains("image-configuration[pilot-image]:"),
        "{lock}"
    );
}
