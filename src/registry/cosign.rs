//! Cosign image signatures and attestations: copied with the images they sign, and checked
//! against the public keys an operator trusts.
//!
//! Cosign keeps what it made for an image `REPO@sha256:HEX` in the same repository, under
//! the tags `sha256-HEX.sig` (signatures) and `sha256-HEX.att` (attestations): OCI manifests
//! whose layers are the signed payloads, each signature in the layer annotation
//! `dev.cosignproject.cosign/signature` (base64 of an ASN.1 DER ECDSA signature). A signature
//! payload is a "simple signing" JSON document naming the image's manifest digest under
//! `critical.image.docker-manifest-digest`.
//!
//! When images are saved ([`add_signatures`]), those tags are looked up for each image and,
//! when the source registry has them, saved as images of their own (named
//! `REPO:sha256-HEX.sig`), so pushing the archive publishes them beside the images under the
//! same digests: in-cluster policy (Kyverno, sigstore's policy-controller) finds them there.
//! [`verify`] checks, in an archive, that every image has a signature by one of the given
//! keys (ECDSA P-256, as `cosign generate-key-pair` makes them) over a payload naming that
//! image's digest. OCI referrers (the referrers API) are not looked up.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;

use super::archive::ImageArchive;
use super::client::Client;
use super::manifest::{Contents, Digest};
use super::pull::{fetch_images, source_repo, PullOptions, Pulled};
use super::tarindex::Limits;
use super::RegistryError;
use crate::diag::{Problem, Problems};
use crate::images::Reference;
use crate::io_error::IoResultExt;

/// The layer annotation holding a signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The largest payload read (real ones are a few hundred bytes).
const MAX_PAYLOAD: u64 = 1 << 20;

/// The cosign tags of an image digest: `sha256-HEX.sig` and `sha256-HEX.att`.
pub fn tags(digest: &Digest) -> [String; 2] {
    ["sig", "att"].map(|suffix| format!("sha256-{}.{suffix}", digest.hex()))
}

/// Whether `reference` names a cosign signature or attestation (by its tag).
pub fn is_signature(reference: &Reference) -> bool {
    reference.tag.as_deref().is_some_and(|tag| {
        tag.strip_prefix("sha256-").is_some_and(|rest| {
            rest.len() == 68
                && (rest.ends_with(".sig") || rest.ends_with(".att"))
                && rest[..64].bytes().all(|b| b.is_ascii_hexdigit())
        })
    })
}

/// Adds to `pulled` the cosign signatures and attestations the source registries hold for
/// its images (see the module docs); an image without any is left as it is.
pub async fn add_signatures(
    client: &Client,
    pulled: &mut Pulled,
    options: &PullOptions,
) -> Result<(), RegistryError> {
    let mut found = Vec::new();
    for (reference, descriptor) in &pulled.images {
        if is_signature(reference) {
            continue;
        }
        let repo = source_repo(reference, &options.mirrors)?;
        for tag in tags(&descriptor.digest) {
            let max = Limits::default().max_document_bytes;
            match client.retrying(|| client.get_manifest(&repo, &tag, max)).await {
                Ok(_) => {
                    found.push(Reference { tag: Some(tag), digest: None, ..reference.clone() })
                }
                Err(RegistryError::Http { status: 404, .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    // Signatures are single-platform manifests: no platform filter applies.
    let options = PullOptions { platform: None, ..options.clone() };
    let signatures = fetch_images(client, &found, &options).await?;
    pulled.images.extend(signatures.images);
    pulled.images.sort_by(|a, b| a.0.cmp(&b.0));
    pulled.manifests.extend(signatures.manifests);
    for (digest, place) in signatures.blobs {
        pulled.blobs.entry(digest).or_insert(place);
    }
    Ok(())
}

/// A cosign public key (ECDSA P-256, PEM `PUBLIC KEY`).
#[derive(Debug, Clone)]
pub struct PublicKey {
    /// The file it was read from, for messages.
    pub label: String,
    key: VerifyingKey,
}

/// Reads a cosign public key file.
pub fn load_public_key(path: &Path) -> Result<PublicKey, RegistryError> {
    let label = path.display().to_string();
    let text = std::fs::read_to_string(path).at(&label)?;
    let key = VerifyingKey::from_public_key_pem(text.trim()).map_err(|e| {
        Problem::new(&label, "", format!("not an ECDSA P-256 public key in PEM: {e}")).hint(
            "give the cosign.pub `cosign generate-key-pair` wrote (-----BEGIN PUBLIC KEY-----)",
        )
    })?;
    Ok(PublicKey { label, key })
}

/// Reads cosign public key files (`--verify-images`), in order.
pub fn load_public_keys(paths: &[PathBuf]) -> Result<Vec<PublicKey>, RegistryError> {
    paths.iter().map(|path| load_public_key(path)).collect()
}

/// Why one signature does not vouch for an image.
fn check_one(
    archive: &ImageArchive,
    layer: &super::manifest::Descriptor,
    digest: &Digest,
    keys: &[PublicKey],
) -> Result<(), String> {
    let encoded = layer
        .annotations
        .get(SIGNATURE_ANNOTATION)
        .ok_or("a layer of the signature manifest has no signature annotation")?;
    let der = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| "the signature is not base64")?;
    let signature =
        Signature::from_der(&der).map_err(|_| "the signature is not an ECDSA signature")?;
    let blob = archive.blob(&layer.digest).ok_or("its payload is not in the archive")?;
    if blob.location.size > MAX_PAYLOAD {
        return Err("its payload is larger than 1 MiB".into());
    }
    let mut payload = vec![0; blob.location.size as usize];
    archive.tar().read_at(blob.location, 0, &mut payload).map_err(|e| e.to_string())?;
    if Digest::of(&payload) != layer.digest {
        return Err("its payload does not match its digest".into());
    }
    if !keys.iter().any(|k| k.key.verify(&payload, &signature).is_ok()) {
        return Err("the signature does not verify with any given key (tampered payload, or signed by another key)".into());
    }
    let payload: serde_json::Value =
        serde_json::from_slice(&payload).map_err(|_| "the signed payload is not JSON")?;
    let critical = &payload["critical"];
    if critical["type"] != "cosign container image signature" {
        return Err("the signed payload is not a cosign simple-signing payload".into());
    }
    match critical["image"]["docker-manifest-digest"].as_str() {
        Some(signed) if signed == digest.as_str() => Ok(()),
        Some(signed) => Err(format!("the signed payload names {signed}, not this image")),
        None => Err("the signed payload names no image digest".into()),
    }
}

/// Checks that every image of `archive` (signatures aside) has a cosign signature in the
/// archive, made by one of `keys` over a payload naming its digest; one problem per image
/// that has none, naming the image and why.
pub fn verify(archive: &ImageArchive, keys: &[PublicKey]) -> Result<(), Problems> {
    let label = archive.tar().label().to_string();
    let mut by_name: BTreeMap<String, &Digest> = BTreeMap::new();
    for named in archive.images.iter().filter(|n| is_signature(&n.reference)) {
        let r = &named.reference;
        by_name.insert(
            format!("{}/{}:{}", r.registry, r.repository, r.tag.as_deref().unwrap_or("")),
            &named.digest,
        );
    }
    let mut problems = Problems::default();
    for named in archive.images.iter().filter(|n| !is_signature(&n.reference)) {
        let r = &named.reference;
        let [sig_tag, _] = tags(&named.digest);
        let why = match by_name.get(&format!("{}/{}:{sig_tag}", r.registry, r.repository)) {
            None => Err(format!("no cosign signature ({sig_tag}) was carried with it")),
            Some(sig) => match archive.manifest(sig).map(|m| &m.contents) {
                Some(Contents::Image { layers, .. }) => {
                    let mut last = Err("its signature manifest has no layers".to_string());
                    for layer in layers {
                        last = check_one(archive, layer, &named.digest, keys);
                        if last.is_ok() {
                            break;
                        }
                    }
                    last
                }
                _ => Err("its signature is not an image manifest".to_string()),
            },
        };
        if let Err(why) = why {
            problems.push(
                Problem::new(&label, r.to_string(), format!("not signed by a trusted key: {why}"))
                    .hint("sign it with cosign and save it again, or leave out --verify-images; nothing was pushed"),
            );
        }
    }
    problems.into_result(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_tags_are_recognised() {
        let digest: Digest = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        let [sig, att] = tags(&digest);
        assert_eq!(sig, format!("sha256-{}.sig", "ab".repeat(32)));
        for (tag, expected) in
            [(sig.as_str(), true), (att.as_str(), true), ("1.0", false), ("sha256-ab.sig", false)]
        {
            let reference: Reference = format!("127.0.0.1:5000/team/app:{tag}").parse().unwrap();
            assert_eq!(is_signature(&reference), expected, "{tag}");
        }
    }
}
