//! `deploy --verify-images`: before anything is applied, every image of the bundle is checked
//! in the registry the deploy relocates it to (a real docker-registry), with signatures and
//! attestations made by openssl as cosign lays them out; refusals name every image and why,
//! and the cluster (the emulator) sees no write.

use std::path::Path;

use crate::cosign::{attest, key_pair, push_images, sign, Laid};
use crate::deploy::charmer_in;
use crate::support::kube_emulator::KubeEmulator;
use crate::support::registry::{Kind, Registry};

/// The images of the test, each pushed to `REGISTRY/mirror/team/NAME:1.0` and vouched for
/// as its name says.
const IMAGES: &[&str] = &[
    "signed",
    "referred",
    "attested",
    "unsigned",
    "wrongkey",
    "tampered",
    "badattestation",
    "otherattestation",
];

/// A bundle `NAME.yaml` in `dir` of one application per image (its charm runs
/// `upstream.invalid/team/IMAGE:1.0`, which --registry relocates).
fn bundle(dir: &Path, name: &str, images: &[&str]) {
    let mut text = format!("bundle: kubernetes\nname: {name}\napplications:\n");
    for image in images {
        text.push_str(&format!("  {image}:\n    charm: {image}\n    scale: 1\n"));
    }
    std::fs::write(dir.join(format!("{name}.yaml")), text).unwrap();
}

/// A charm source `name` in `charms` that runs `image` in a Deployment.
pub(crate) fn deployable_charm(charms: &Path, name: &str, image: &str) {
    let source = crate::airgap::charm_source(charms, name, "1.0.0", image);
    std::fs::create_dir_all(source.join("templates")).unwrap();
    std::fs::write(
        source.join("templates/deploy.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ app }}\nspec:\n  replicas: {{ scale }}\n  selector:\n    matchLabels: {{ selector_labels | tojson }}\n  template:\n    metadata:\n      labels: {{ labels | tojson }}\n    spec:\n      containers:\n        - name: main\n          image: {{ images[\"main-image\"] }}\n",
    )
    .unwrap();
}

#[test]
fn deploy_verify_images_checks_the_registry_the_deploy_pulls_from() {
    if !crate::support::tools_present(crate::support::REGISTRY_TOOLS) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(Kind::Plain);
    let (key, public) = key_pair(work.path(), "cosign");
    let (other_key, other) = key_pair(work.path(), "other");
    let charms = work.path().join("charms");
    let pushed = push_images(work.path(), &registry, "mirror/team", IMAGES);
    let digests: std::collections::BTreeMap<&str, String> =
        IMAGES.iter().copied().zip(pushed).collect();
    for name in IMAGES {
        deployable_charm(&charms, name, &format!("upstream.invalid/team/{name}:1.0"));
    }
    let (w, r) = (work.path(), &registry);
    let repo = |name: &str| format!("mirror/team/{name}");
    sign(w, r, &repo("signed"), &digests["signed"], &key, false, Laid::Tag);
    sign(w, r, &repo("referred"), &digests["referred"], &key, false, Laid::Referrer);
    sign(w, r, &repo("attested"), &digests["attested"], &key, false, Laid::Tag);
    attest(w, r, &repo("attested"), &digests["attested"], &digests["attested"], &key, false);
    sign(w, r, &repo("wrongkey"), &digests["wrongkey"], &other_key, false, Laid::Tag);
    sign(w, r, &repo("tampered"), &digests["tampered"], &key, true, Laid::Referrer);
    sign(w, r, &repo("badattestation"), &digests["badattestation"], &key, false, Laid::Tag);
    let bad = &digests["badattestation"];
    attest(w, r, &repo("badattestation"), bad, bad, &key, true);
    sign(w, r, &repo("otherattestation"), &digests["otherattestation"], &key, false, Laid::Tag);
    attest(w, r, &repo("otherattestation"), &digests["otherattestation"], bad, &key, false);
    bundle(w, "good", &IMAGES[..3]);
    bundle(w, "bad", IMAGES);

    let emulator = KubeEmulator::start();
    let deploy = |bundle: &str, key: &Path| {
        let target = format!("{}/mirror", registry.host());
        let args = [
            "deploy",
            bundle,
            "--charms",
            "charms",
            "--registry",
            &target,
            "--insecure-http",
            "--no-wait",
            "--verify-images",
            key.to_str().unwrap(),
        ];
        charmer_in(w, &emulator, &args)
    };
    let image = |name: &str| format!("{}/mirror/team/{name}:1.0", registry.host());

    // Every refused image is named with its reason, at once; the signed ones are not; the
    // cluster is not touched.
    let (code, _, stderr) = deploy("bad.yaml", &public);
    assert_ne!(code, 0, "{stderr}");
    let refused = |name: &str, why: &str| {
        assert!(
            stderr.contains(&format!("--verify-images: {}: {why}", image(name))),
            "{name}: {why}\n{stderr}"
        );
    };
    refused("unsigned", "not signed by a trusted key: no cosign signature (sha256-");
    refused(
        "wrongkey",
        "not signed by a trusted key: the signature does not verify with any given key",
    );
    refused(
        "tampered",
        "not signed by a trusted key: the signature does not verify with any given key",
    );
    refused("badattestation", "attestation sha256:");
    assert!(
        stderr.contains(
            "refused: its signature does not verify with any given key (tampered statement"
        ),
        "{stderr}"
    );
    refused("otherattestation", "attestation sha256:");
    assert!(
        stderr.contains(&format!("refused: its statement's subject is {bad}, not this image")),
        "{stderr}"
    );
    for fine in &IMAGES[..3] {
        assert!(!stderr.contains(&format!("{}:", image(fine))), "{fine}: {stderr}");
    }
    assert_eq!(stderr.matches("--verify-images: ").count(), 5, "{stderr}");
    assert_eq!(emulator.writes(), Vec::<String>::new(), "nothing applied");

    // Signed by another key than the one given: refused too.
    let (code, _, stderr) = deploy("good.yaml", &other);
    assert_ne!(code, 0, "{stderr}");
    assert_eq!(stderr.matches("not signed by a trusted key").count(), 3, "{stderr}");
    assert_eq!(emulator.writes(), Vec::<String>::new(), "nothing applied");

    // Signed (under cosign's tag, or as an OCI referrer), attested: deployed.
    let (code, out, stderr) = deploy("good.yaml", &public);
    assert_eq!(code, 0, "{stderr}");
    assert!(out.contains("good deployed to namespace good"), "{out}");
    for name in &IMAGES[..3] {
        let deployment = emulator.get("Deployment", "good", name).expect(name);
        let containers = &deployment["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["image"], image(name));
    }
}
