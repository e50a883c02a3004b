//! Cosign image signatures: made here with openssl over cosign's simple-signing payload,
//! pushed to a real registry as cosign lays them out (`sha256-HEX.sig`, the signature in a
//! layer annotation), carried by `images save` and `airgap export`, published beside the
//! images by `images push` and `airgap import`, and checked with `--verify-images`: a
//! tampered payload, a wrong key and a missing signature are refused, naming image and
//! reason, with nothing pushed or written.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde_json::json;

use crate::support::referrers_registry::ReferrersRegistry;
use crate::support::registry::{charmer, connection, run, Desc, Kind, Layout, Registry};

/// An ECDSA P-256 key pair made with openssl: the private key (PEM) and `cosign.pub`-style
/// public key.
pub(crate) fn key_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
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

/// The ECDSA signature (DER) openssl makes of `bytes` with `key`.
fn openssl_sign(dir: &Path, key: &Path, bytes: &[u8]) -> Vec<u8> {
    let file = dir.join("to-sign");
    std::fs::write(&file, bytes).unwrap();
    run(Command::new("openssl").args(["dgst", "-sha256", "-sign"]).arg(key).arg(&file)).stdout
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// How a signature or attestation is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Laid {
    /// Under cosign's tag, `sha256-HEX.sig` or `.att`.
    Tag,
    /// As an OCI referrer (its `subject` is the image), listed in the referrers fallback
    /// index tagged `sha256-HEX` (what cosign's `--registry-referrers-mode=oci-1-1` writes
    /// to a registry without the referrers API).
    Referrer,
}

/// Pushes to `registry` a cosign signature of `repo@digest` made with `key`, laid out as
/// `laid`; `tamper` changes the payload after it was signed.
pub(crate) fn sign(
    work: &Path,
    registry: &Registry,
    repo: &str,
    digest: &str,
    key: &Path,
    tamper: bool,
    laid: Laid,
) {
    let dir = tempfile::tempdir_in(work).unwrap();
    let name = format!("{}/{repo}", registry.host());
    let layer = signature_layer(dir.path(), &name, digest, key, tamper);
    publish(dir.path(), registry, repo, digest, layer, ("sig", SIGNATURE_ARTIFACT), laid);
}

/// cosign's artifact type for a signature stored as a referrer.
const SIGNATURE_ARTIFACT: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

/// A layer of a vouching manifest: media type, bytes, annotations.
type VouchLayer = (&'static str, Vec<u8>, serde_json::Value);

/// A cosign signature layer for `name@digest` (simple-signing payload, the signature in its
/// annotation) made with `key`; `tamper` changes the payload after it was signed.
fn signature_layer(dir: &Path, name: &str, digest: &str, key: &Path, tamper: bool) -> VouchLayer {
    let payload = serde_json::to_vec(&json!({
        "critical": {
            "identity": {"docker-reference": name},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature"
        },
        "optional": null
    }))
    .unwrap();
    let signature = openssl_sign(dir, key, &payload);
    let payload = if tamper { [payload.as_slice(), b" "].concat() } else { payload };
    let annotations = json!({"dev.cosignproject.cosign/signature": b64(&signature)});
    ("application/vnd.dev.cosign.simplesigning.v1+json", payload, annotations)
}

/// Pushes to `registry` a cosign attestation for `repo@digest`: a DSSE envelope signed by
/// `key` over an in-toto statement whose subject is `subject` (a digest); `tamper` changes
/// the statement after it was signed.
pub(crate) fn attest(
    work: &Path,
    registry: &Registry,
    repo: &str,
    digest: &str,
    subject: &str,
    key: &Path,
    tamper: bool,
) {
    let statement = |builder: &str| {
        serde_json::to_vec(&json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": format!("{}/{repo}", registry.host()), "digest": {"sha256": subject.trim_start_matches("sha256:")}}],
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {"runDetails": {"builder": {"id": builder}}}
        }))
        .unwrap()
    };
    let payload_type = "application/vnd.in-toto+json";
    let signed = statement("https://builder.example/trusted");
    let mut pae =
        format!("DSSEv1 {} {payload_type} {} ", payload_type.len(), signed.len()).into_bytes();
    pae.extend_from_slice(&signed);
    let dir = tempfile::tempdir_in(work).unwrap();
    let signature = openssl_sign(dir.path(), key, &pae);
    let body = if tamper { statement("https://builder.example/forged") } else { signed };
    let envelope = serde_json::to_vec(&json!({
        "payloadType": payload_type,
        "payload": b64(&body),
        "signatures": [{"keyid": "", "sig": b64(&signature)}]
    }))
    .unwrap();
    let annotations = json!({"dev.cosignproject.cosign/signature": "", "predicateType": "https://slsa.dev/provenance/v1"});
    let layer = ("application/vnd.dsse.envelope.v1+json", envelope, annotations);
    let kind = ("att", "application/vnd.dsse.envelope.v1+json");
    publish(dir.path(), registry, repo, digest, layer, kind, Laid::Tag);
}

/// Pushes a one-layer manifest (`layer`) vouching for `repo@digest`, with skopeo, as
/// [`vouch`] lays it out.
fn publish(
    dir: &Path,
    registry: &Registry,
    repo: &str,
    digest: &str,
    layer: VouchLayer,
    kind: (&str, &str),
    laid: Laid,
) {
    let (image, _) = registry.inspect_raw(&format!("{repo}@{digest}"));
    let mut layout = Layout::new(&dir.join("layout"));
    let (named, tag) = vouch(&layout, &image, layer, kind, laid);
    layout.name(&named, "vouch");
    layout.push_with_skopeo("vouch", registry, &format!("{repo}:{tag}"));
}

/// Stores in `layout` a one-layer manifest (`layer`) vouching for the image manifest
/// `image`, laid out as `laid` says: to be tagged `sha256-HEX.SUFFIX` (`kind`: suffix and
/// artifact type), or as a referrer of the artifact type with the fallback index listing it,
/// to be tagged `sha256-HEX`. Returns what to tag, and the tag.
fn vouch(
    layout: &Layout,
    image: &[u8],
    (media_type, bytes, annotations): VouchLayer,
    (suffix, artifact): (&str, &str),
    laid: Laid,
) -> (Desc, String) {
    let digest = crate::support::registry::sha256(image);
    let layer = layout.blob(media_type, &bytes);
    let config = json!({"architecture": "", "os": "", "config": {}, "rootfs": {"type": "layers", "diff_ids": [layer.digest]}});
    let config = layout
        .blob("application/vnd.oci.image.config.v1+json", &serde_json::to_vec(&config).unwrap());
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": config.media_type, "digest": config.digest, "size": config.size},
        "layers": [{"mediaType": layer.media_type, "digest": layer.digest, "size": layer.size, "annotations": annotations}]
    });
    let hex = &digest["sha256:".len()..];
    if laid == Laid::Tag {
        let manifest = layout.blob(
            "application/vnd.oci.image.manifest.v1+json",
            &serde_json::to_vec(&manifest).unwrap(),
        );
        return (manifest, format!("sha256-{hex}.{suffix}"));
    }
    manifest["artifactType"] = json!(artifact);
    manifest["subject"] = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": image.len()});
    let manifest = layout.blob(
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": manifest.media_type, "digest": manifest.digest, "size": manifest.size, "artifactType": artifact}]
    });
    let index = layout
        .blob("application/vnd.oci.image.index.v1+json", &serde_json::to_vec(&index).unwrap());
    (index, format!("sha256-{hex}"))
}

/// Builds a small image for each of `names` (each its own random layer) and pushes it to
/// `registry` as `PREFIX/NAME:1.0`; returns the digests the registry serves them by, in order.
pub(crate) fn push_images(
    work: &Path,
    registry: &Registry,
    prefix: &str,
    names: &[&str],
) -> Vec<String> {
    let mut layout = Layout::new(&work.join("images-layout"));
    let mut digests = Vec::new();
    for (seed, name) in (1..).zip(names) {
        let layer = layout.layer(seed, 10_000);
        let image = layout.image("amd64", &[&layer]);
        layout.name(&image, name);
        let target = format!("{prefix}/{name}:1.0");
        layout.push_with_skopeo(name, registry, &target);
        digests.push(registry.inspect_raw(&target).1);
    }
    digests
}

/// `airgap import ARCHIVE --registry DST/mirror --out WORK/imported --verify-images KEY`.
fn import_verified(
    work: &Path,
    dst: &Registry,
    archive: &Path,
    key: &Path,
) -> assert_cmd::assert::Assert {
    charmer(work)
        .args(["airgap", "import", "--quiet", "--registry"])
        .arg(format!("{}/mirror", dst.host()))
        .arg("--out")
        .arg(work.join("imported"))
        .arg("--verify-images")
        .arg(key)
        .arg(archive)
        .args(connection(dst))
        .assert()
}

#[test]
fn signatures_travel_with_images_and_verify_images_refuses_what_is_not_signed() {
    if !crate::support::tools_present(crate::support::REGISTRY_TOOLS) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (src, dst) = (Registry::start(Kind::Plain), Registry::start(Kind::Plain));
    push_images(work.path(), &src, "team", &["signed", "tampered", "unsigned"]);
    let (key, public) = key_pair(work.path(), "cosign");
    let (_, other) = key_pair(work.path(), "other");
    let (_, signed_digest) = src.inspect_raw("team/signed:1.0");
    let (_, tampered_digest) = src.inspect_raw("team/tampered:1.0");
    sign(work.path(), &src, "team/signed", &signed_digest, &key, false, Laid::Tag);
    sign(work.path(), &src, "team/tampered", &tampered_digest, &key, true, Laid::Tag);
    let sig_tag = format!("sha256-{}.sig", &signed_digest[7..]);

    // images save carries the signatures the source registry holds.
    let image = |name: &str| format!("{}/team/{name}:1.0", src.host());
    let saved = work.path().join("images.tar");
    let images = [image("signed"), image("tampered"), image("unsigned")];
    save_list(work.path(), &images, &connection(&src), &saved);
    let index = String::from_utf8(
        run(Command::new("tar").arg("-xOf").arg(&saved).arg("index.json")).stdout,
    )
    .unwrap();
    assert!(index.contains(&format!("team/signed:{sig_tag}")), "{index}");

    // --verify-images names every image that is not signed by the key, and why; nothing is
    // pushed.
    let before = dst.requests().len();
    let refused = push_verified(work.path(), &dst, &public, &saved).failure();
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
    let bundle = shop_bundle(work.path(), &image("signed"));
    let carried = work.path().join("shop.tar");
    let export = |key: &Path| export_verified(work.path(), &src, &bundle, &carried, key);
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
    import_verified(work.path(), &dst, &carried, &public).success();
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

/// The digest an archive's image index (`member`) gives the image named `name`, if any.
fn named_digest(archive: &Path, member: &str, name: &str) -> Option<String> {
    let index = run(Command::new("tar").arg("-xOf").arg(archive).arg(member)).stdout;
    let index: serde_json::Value = serde_json::from_slice(&index).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["io.containerd.image.name"] == name)
        .map(|m| m["digest"].as_str().unwrap().to_string())
}

/// A bundle `dir/shop/bundle.yaml` of one application, `web`, whose charm (a source folder in
/// `dir/shop/charms`) runs `image` in a Deployment; returns the bundle file.
pub(crate) fn shop_bundle(dir: &Path, image: &str) -> PathBuf {
    crate::supply_deploy::deployable_charm(&dir.join("shop/charms"), "web", image);
    let bundle = dir.join("shop/bundle.yaml");
    std::fs::write(
        &bundle,
        "bundle: kubernetes\nname: shop\napplications:\n  web:\n    charm: web\n    scale: 1\n",
    )
    .unwrap();
    bundle
}

/// `images save --from-list` of `images` into `out`, with `connection`'s flags, run in `work`.
fn save_list(work: &Path, images: &[String], connection: &[String], out: &Path) {
    let list = out.with_extension("txt");
    std::fs::write(&list, images.iter().map(|i| format!("{i}\n")).collect::<String>()).unwrap();
    charmer(work)
        .args(["images", "save", "--quiet", "--from-list"])
        .arg(&list)
        .arg("--out")
        .arg(out)
        .args(connection)
        .assert()
        .success();
}

/// `images push ARCHIVE --registry DST --verify-images KEY`, run in `work`.
fn push_verified(
    work: &Path,
    dst: &Registry,
    key: &Path,
    archive: &Path,
) -> assert_cmd::assert::Assert {
    charmer(work)
        .args(["images", "push", "--quiet", "--registry", &dst.host(), "--verify-images"])
        .arg(key)
        .arg(archive)
        .args(connection(dst))
        .current_dir(work)
        .assert()
}

/// `airgap export BUNDLE --out OUT --verify-images KEY` from `src`, run in `work`.
fn export_verified(
    work: &Path,
    src: &Registry,
    bundle: &Path,
    out: &Path,
    key: &Path,
) -> assert_cmd::assert::Assert {
    charmer(work)
        .args(["airgap", "export", "--quiet"])
        .arg(bundle)
        .arg("--out")
        .arg(out)
        .arg("--verify-images")
        .arg(key)
        .args(connection(src))
        .assert()
}

#[test]
fn referrers_and_attestations_cross_the_gap_and_are_checked() {
    if !crate::support::tools_present(crate::support::REGISTRY_TOOLS) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (src, dst) = (Registry::start(Kind::Plain), Registry::start(Kind::Plain));
    push_images(work.path(), &src, "team", &["app", "forged"]);
    let (key, public) = key_pair(work.path(), "cosign");
    let (_, app) = src.inspect_raw("team/app:1.0");
    let (_, forged) = src.inspect_raw("team/forged:1.0");
    // app: signed only as an OCI referrer (the fallback tag: this registry has no
    // referrers API), and attested; forged: signed, with an attestation changed after
    // signing.
    sign(work.path(), &src, "team/app", &app, &key, false, Laid::Referrer);
    attest(work.path(), &src, "team/app", &app, &app, &key, false);
    sign(work.path(), &src, "team/forged", &forged, &key, false, Laid::Tag);
    attest(work.path(), &src, "team/forged", &forged, &forged, &key, true);
    let (referrers, att) = (format!("sha256-{}", &app[7..]), format!("sha256-{}.att", &app[7..]));
    let image = |name: &str| format!("{}/team/{name}:1.0", src.host());

    // Exported with the check; the archive carries the referrers index and the attestation.
    let bundle = shop_bundle(work.path(), &image("app"));
    let carried = work.path().join("shop.tar");
    export_verified(work.path(), &src, &bundle, &carried, &public).success();
    let (_, src_referrers) = src.inspect_raw(&format!("team/app:{referrers}"));
    let (_, src_att) = src.inspect_raw(&format!("team/app:{att}"));
    let carried_name = |tag: &str| format!("{}/team/app:{tag}", src.host());
    let carried_digest =
        |tag: &str| named_digest(&carried, "images/index.json", &carried_name(tag));
    assert_eq!(carried_digest(&referrers), Some(src_referrers.clone()));
    assert_eq!(carried_digest(&att), Some(src_att.clone()));

    // Imported with the check: the referrers index (so the signature it lists) and the
    // attestation are published beside the image, under the same digests.
    import_verified(work.path(), &dst, &carried, &public).success();
    let (index, published) = dst.inspect_raw(&format!("mirror/team/app:{referrers}"));
    assert_eq!(published, src_referrers);
    let index: serde_json::Value = serde_json::from_slice(&index).unwrap();
    let referrer = index["manifests"][0]["digest"].as_str().unwrap();
    let (signature, _) = dst.inspect_raw(&format!("mirror/team/app@{referrer}"));
    let signature: serde_json::Value = serde_json::from_slice(&signature).unwrap();
    assert_eq!(signature["subject"]["digest"], app.as_str());
    assert_eq!(dst.inspect_raw(&format!("mirror/team/app:{att}")).1, src_att);

    // A tampered attestation is refused, naming it, though the image is signed; nothing is
    // pushed.
    let saved = work.path().join("forged.tar");
    save_list(work.path(), &[image("forged")], &connection(&src), &saved);
    let before = dst.requests().len();
    let refused = push_verified(work.path(), &dst, &public, &saved).failure();
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).to_string();
    assert!(
        stderr.contains(&format!("{}: attestation sha256:", image("forged")))
            && stderr.contains(
                "refused: its signature does not verify with any given key (tampered statement"
            ),
        "{stderr}"
    );
    assert!(!stderr.contains("not signed by a trusted key"), "{stderr}");
    assert_eq!(dst.requests().len(), before, "nothing may be pushed");
}

/// Debian's docker-registry 2.8 has no referrers API (it answers 404), so the API path is
/// tested against [`ReferrersRegistry`], which serves it: a signature the API lists is saved
/// as the fallback tag's index, pushed to the real registry under that tag, checked there by
/// `images push --verify-images`, and found through the API by `deploy --verify-images`.
#[test]
fn signatures_listed_by_the_referrers_api_are_carried_and_checked() {
    if !crate::support::tools_present(crate::support::REGISTRY_TOOLS) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let dst = Registry::start(Kind::Plain);
    let layout = Layout::new(&work.path().join("served"));
    let layer = layout.layer(61, 10_000);
    let image = layout.image("amd64", &[&layer]);
    let manifest = std::fs::read(layout.dir.join("blobs/sha256").join(&image.digest[7..])).unwrap();
    let (key, public) = key_pair(work.path(), "cosign");
    let (_, other) = key_pair(work.path(), "other");
    let signature =
        signature_layer(work.path(), "referrers.test/team/app", &image.digest, &key, false);
    let (_, referrers) =
        vouch(&layout, &manifest, signature, ("sig", SIGNATURE_ARTIFACT), Laid::Referrer);
    // Only the image is tagged: the signature is reachable through the API alone.
    let tags = [("1.0".to_string(), image.digest.clone())].into();
    let served = ReferrersRegistry::serve(layout.dir.clone(), tags);
    let name = format!("{}/team/app:1.0", served.host);
    let saved = work.path().join("images.tar");
    save_list(work.path(), std::slice::from_ref(&name), &["--insecure-http".into()], &saved);
    let carried =
        named_digest(&saved, "index.json", &format!("{}/team/app:{referrers}", served.host))
            .expect("the API's index is carried under the fallback tag");

    push_verified(work.path(), &dst, &public, &saved).success();
    let (index, published) = dst.inspect_raw(&format!("team/app:{referrers}"));
    assert_eq!(published, carried);
    let index: serde_json::Value = serde_json::from_slice(&index).unwrap();
    let referrer = index["manifests"][0]["digest"].as_str().unwrap();
    let (signature, _) = dst.inspect_raw(&format!("team/app@{referrer}"));
    let signature: serde_json::Value = serde_json::from_slice(&signature).unwrap();
    assert_eq!(signature["subject"]["digest"], image.digest.as_str());

    // deploy checks the image where it is pulled from, through the referrers API.
    let emulator = crate::support::kube_emulator::KubeEmulator::start();
    shop_bundle(work.path(), &name);
    let deploy = |key: &Path| {
        let args = ["deploy", "shop/bundle.yaml", "--insecure-http", "--no-wait"];
        let mut args: Vec<&str> = args.to_vec();
        args.extend(["--verify-images", key.to_str().unwrap()]);
        crate::deploy::charmer_in(work.path(), &emulator, &args)
    };
    let (code, _, stderr) = deploy(&other);
    assert_ne!(code, 0);
    assert!(
        stderr.contains(&format!(
            "--verify-images: {name}: not signed by a trusted key: the signature does not verify"
        )),
        "{stderr}"
    );
    assert_eq!(emulator.writes(), Vec::<String>::new(), "nothing applied");
    let (code, _, stderr) = deploy(&public);
    assert_eq!(code, 0, "{stderr}");
    assert!(emulator.get("Deployment", "shop", "web").is_some());
}
