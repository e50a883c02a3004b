//! Cosign image signatures: made here with openssl over cosign's simple-signing payload,
//! pushed to a real registry as cosign lays them out (`sha256-HEX.sig`, the signature in a
//! layer annotation), carried by `images save` and `airgap export`, published beside the
//! images by `images push` and `airgap import`, and checked with `--verify-images`: a
//! tampered payload, a wrong key and a missing signature are refused, naming image and
//! reason, with nothing pushed or written.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use serde_json::json;

use crate::support::registry::{charmer, connection, run, Kind, Layout, Registry};

/// An ECDSA P-256 key pair made with openssl: the private key (PEM) and `cosign.pub`-style
/// public key.
fn key_pair(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (private, public) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.pub")));
    run(Command::new("openssl")
        .args(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out"])
        .arg(&private));
    run(Command::new("openssl")
        .args(["ec", "-pubout", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(&public));
    (private, public)
}

/// Pushes to `registry` a cosign signature of `repo@digest` made with `key`; `tamper`
/// changes the payload after it was signed.
fn sign(work: &Path, registry: &Registry, repo: &str, digest: &str, key: &Path, tamper: bool) {
    let payload = serde_json::to_vec(&json!({
        "critical": {
            "identity": {"docker-reference": format!("{}/{repo}", registry.host())},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature"
        },
        "optional": null
    }))
    .unwrap();
    let dir = tempfile::tempdir_in(work).unwrap();
    std::fs::write(dir.path().join("payload"), &payload).unwrap();
    let signature = run(Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .arg(dir.path().join("payload")))
    .stdout;
    let payload = if tamper { [payload.as_slice(), b" "].concat() } else { payload };
    let mut layout = Layout::new(&dir.path().join("layout"));
    let layer = layout.blob("application/vnd.dev.cosign.simplesigning.v1+json", &payload);
    let config = json!({"architecture": "", "os": "", "config": {}, "rootfs": {"type": "layers", "diff_ids": [layer.digest]}});
    let config = layout
        .blob("application/vnd.oci.image.config.v1+json", &serde_json::to_vec(&config).unwrap());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": config.media_type, "digest": config.digest, "size": config.size},
        "layers": [{
            "mediaType": layer.media_type, "digest": layer.digest, "size": layer.size,
            "annotations": {"dev.cosignproject.cosign/signature": base64::engine::general_purpose::STANDARD.encode(signature)}
        }]
    });
    let manifest = layout.blob(
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    layout.name(&manifest, "sig");
    let tag = format!("sha256-{}.sig", digest.trim_start_matches("sha256:"));
    layout.push_with_skopeo("sig", registry, &format!("{repo}:{tag}"));
}

#[test]
fn signatures_travel_with_images_and_verify_images_refuses_what_is_not_signed() {
    if !crate::support::tools_present(crate::support::REGISTRY_TOOLS) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (src, dst) = (Registry::start(Kind::Plain), Registry::start(Kind::Plain));
    let mut layout = Layout::new(&work.path().join("layout"));
    for (seed, name) in [(81, "signed"), (82, "tampered"), (83, "unsigned")] {
        let layer = layout.layer(seed, 20_000);
        let image = layout.image("amd64", &[&layer]);
        layout.name(&image, name);
        layout.push_with_skopeo(name, &src, &format!("team/{name}:1.0"));
    }
    let (key, public) = key_pair(work.path(), "cosign");
    let (_, other) = key_pair(work.path(), "other");
    let (_, signed_digest) = src.inspect_raw("team/signed:1.0");
    let (_, tampered_digest) = src.inspect_raw("team/tampered:1.0");
    sign(work.path(), &src, "team/signed", &signed_digest, &key, false);
    sign(work.path(), &src, "team/tampered", &tampered_digest, &key, true);
    let sig_tag = format!("sha256-{}.sig", &signed_digest[7..]);

    // images save carries the signatures the source registry holds.
    let list = work.path().join("images.txt");
    let image = |name: &str| format!("{}/team/{name}:1.0", src.host());
    std::fs::write(
        &list,
        format!("{}\n{}\n{}\n", image("signed"), image("tampered"), image("unsigned")),
    )
    .unwrap();
    let saved = work.path().join("images.tar");
    charmer(work.path())
        .args(["images", "save", "--quiet", "--from-list"])
        .arg(&list)
        .arg("--out")
        .arg(&saved)
        .args(connection(&src))
        .assert()
        .success();
    let index = String::from_utf8(
        run(Command::new("tar").arg("-xOf").arg(&saved).arg("index.json")).stdout,
    )
    .unwrap();
    assert!(index.contains(&format!("team/signed:{sig_tag}")), "{index}");

    // --verify-images names every image that is not signed by the key, and why; nothing is
    // pushed.
    let before = dst.requests().len();
    let refused = charmer(work.path())
        .args(["images", "push", "--quiet", "--registry", &dst.host(), "--verify-images"])
        .arg(&public)
        .arg(&saved)
        .args(connection(&dst))
        .current_dir(work.path())
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).to_string();
    assert!(
        stderr.contains(&format!(
            "{}: not signed by a trusted key: the signature does not verify with any given key",
            image("tampered")
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{}: not signed by a trusted key: no cosign signature (sha256-",
            image("unsigned")
        )),
        "{stderr}"
    );
    assert!(!stderr.contains(&format!("{}: not signed", image("signed"))), "{stderr}");
    assert_eq!(dst.requests().len(), before, "nothing may be pushed");
    // The right image, the wrong key: refused too.
    let (bundle, charms) = (work.path().join("shop/bundle.yaml"), work.path().join("shop/charms"));
    crate::airgap::charm_source(&charms, "web", "1.0.0", &image("signed"));
    std::fs::write(
        &bundle,
        "bundle: kubernetes\nname: shop\napplications:\n  web:\n    charm: web\n    scale: 1\n",
    )
    .unwrap();
    let carried = work.path().join("shop.tar");
    let export = |key: &Path| {
        let mut command = charmer(work.path());
        command
            .args(["airgap", "export", "--quiet"])
            .arg(&bundle)
            .arg("--out")
            .arg(&carried)
            .arg("--verify-images")
            .arg(key)
            .args(connection(&src));
        command.assert()
    };
    let refused = export(&other).failure();
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).to_string();
    assert!(
        stderr.contains(&format!(
            "{}: not signed by a trusted key: the signature does not verify",
            image("signed")
        )),
        "{stderr}"
    );
    assert!(!carried.exists(), "nothing may be written");

    // Signed by the key: exported, imported with the same check, and the signature is
    // published beside the image, under the same digest, where cosign looks for it.
    export(&public).success();
    charmer(work.path())
        .args([
            "airgap",
            "import",
            "--quiet",
            "--registry",
            &format!("{}/mirror", dst.host()),
            "--out",
        ])
        .arg(work.path().join("imported"))
        .arg("--verify-images")
        .arg(&public)
        .arg(&carried)
        .args(connection(&dst))
        .assert()
        .success();
    let (_, at_source) = src.inspect_raw(&format!("team/signed:{sig_tag}"));
    let (_, published) = dst.inspect_raw(&format!("mirror/team/signed:{sig_tag}"));
    assert_eq!(published, at_source);
    // The SBOM does not count signatures as images.
    let sbom = charmer(work.path()).arg("sbom").arg(&carried).assert().success();
    let document: serde_json::Value = serde_json::from_slice(&sbom.get_output().stdout).unwrap();
    let images: Vec<&str> = document["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "container")
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(images, [image("signed")]);
}
