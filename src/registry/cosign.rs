//! Cosign image signatures and attestations, and OCI referrers: copied with the images they
//! vouch for, and checked against the public keys an operator trusts.
//!
//! Cosign keeps what it made for an image `REPO@sha256:HEX` in the same repository, under
//! the tags `sha256-HEX.sig` (signatures) and `sha256-HEX.att` (attestations): OCI manifests
//! whose layers are the signed payloads. A signature layer is a "simple signing" JSON
//! document naming the image's manifest digest under `critical.image.docker-manifest-digest`,
//! its signature in the layer annotation `dev.cosignproject.cosign/signature` (base64 of an
//! ASN.1 DER ECDSA signature). An attestation layer is a DSSE envelope whose payload is an
//! in-toto statement naming the image's digest as its `subject`, signed (the same ECDSA)
//! over the envelope's pre-authentication encoding.
//!
//! OCI referrers (distribution spec 1.1) are manifests whose `subject` is the image: cosign
//! writes its signatures so (artifactType `application/vnd.dev.cosign.artifact.sig.v1+json`,
//! the same simple-signing layers) with `--registry-referrers-mode=oci-1-1`, and other tools
//! attach attestations, SBOMs and signatures the same way. They are listed by the referrers
//! API (`GET /v2/<name>/referrers/<digest>`), or, on registries without it (Debian's
//! docker-registry 2.8 answers 404), by an index under the fallback tag `sha256-HEX`.
//!
//! When images are saved ([`add_signatures`]), those three tags are looked up for each image
//! and the referrers API asked; what the source registry has is saved as images of their own
//! (`REPO:sha256-HEX.sig`, `REPO:sha256-HEX.att`, and `REPO:sha256-HEX` for the referrers:
//! the API's answer, kept as the fallback tag's index), so pushing the archive publishes them
//! beside the images under the same digests, where in-cluster policy (Kyverno, sigstore's
//! policy-controller) and cosign find them. Every referrer is carried, whatever its type.
//!
//! [`verify`] (an archive) and [`verify_in_registry`] (the registry a deploy pulls from)
//! check that every image has a signature by one of the given keys (ECDSA P-256, as
//! `cosign generate-key-pair` makes them) over a payload naming its digest, and that every
//! attestation carried for it (under `.att`, or a DSSE referrer) is signed by one of the keys
//! over a statement whose subject is the image.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;

use super::archive::ImageArchive;
use super::client::{Client, Repo};
use super::manifest::{Contents, Descriptor, Digest, ManifestDoc};
use super::mirrors::Mirrors;
use super::pull::{named, source_repo, with_children, PullOptions, Pulled};
use super::tarindex::Limits;
use super::RegistryError;
use crate::diag::{Problem, Problems};
use crate::images::Reference;
use crate::io_error::IoResultExt;

/// The layer annotation holding a signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Media type of a simple-signing payload layer.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Media type of a DSSE envelope layer (an attestation).
pub const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The `payloadType` of an envelope holding an in-toto statement.
const IN_TOTO: &str = "application/vnd.in-toto+json";
/// The largest payload read (real ones are a few hundred bytes; attestations a few KiB).
const MAX_PAYLOAD: u64 = 1 << 20;

/// The cosign tags of an image digest: `sha256-HEX.sig` and `sha256-HEX.att`.
pub fn tags(digest: &Digest) -> [String; 2] {
    ["sig", "att"].map(|suffix| format!("sha256-{}.{suffix}", digest.hex()))
}

/// The referrers fallback tag of an image digest: `sha256-HEX`.
pub fn referrers_tag(digest: &Digest) -> String {
    format!("sha256-{}", digest.hex())
}

/// Whether `reference` names something that vouches for an image rather than an image: a
/// cosign signature or attestation, or a referrers index (by its tag).
pub fn is_signature(reference: &Reference) -> bool {
    reference.tag.as_deref().is_some_and(|tag| {
        tag.strip_prefix("sha256-").is_some_and(|rest| {
            let hex = rest.strip_suffix(".sig").or_else(|| rest.strip_suffix(".att"));
            let hex = hex.unwrap_or(rest);
            hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
        })
    })
}

/// The manifest `reference` (a tag) names in `repo`, or `None` when there is none.
async fn manifest_if_any(
    client: &Client,
    repo: &Repo,
    reference: &str,
) -> Result<Option<ManifestDoc>, RegistryError> {
    let max = Limits::default().max_document_bytes;
    match client.retrying(|| client.get_manifest(repo, reference, max)).await {
        Ok(doc) => Ok(Some(doc)),
        Err(RegistryError::Http { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The index listing the referrers of `digest` in `repo`: the referrers API's answer when
/// the registry serves it and lists any, else the fallback tag's index, else `None`.
async fn referrers(
    client: &Client,
    repo: &Repo,
    digest: &Digest,
) -> Result<Option<ManifestDoc>, RegistryError> {
    let max = Limits::default().max_document_bytes;
    let listed = client.retrying(|| client.referrers(repo, digest, max)).await?;
    if let Some(index) =
        listed.filter(|i| matches!(&i.contents, Contents::Index(m) if !m.is_empty()))
    {
        return Ok(Some(index));
    }
    manifest_if_any(client, repo, &referrers_tag(digest)).await
}

/// Adds to `pulled` the cosign signatures and attestations and the OCI referrers the source
/// registries hold for its images (see the module docs); an image without any is left as
/// it is.
pub async fn add_signatures(
    client: &Client,
    pulled: &mut Pulled,
    options: &PullOptions,
) -> Result<(), RegistryError> {
    let mut seen = BTreeSet::new();
    let mut found = Vec::new();
    for (reference, descriptor) in &pulled.images {
        if is_signature(reference) {
            continue;
        }
        let digest = &descriptor.digest;
        if !seen.insert((&reference.registry, &reference.repository, digest)) {
            continue;
        }
        let repo = source_repo(reference, &options.mirrors)?;
        let [sig, att] = tags(digest);
        let docs = [
            (manifest_if_any(client, &repo, &sig).await?, sig),
            (manifest_if_any(client, &repo, &att).await?, att),
            (referrers(client, &repo, digest).await?, referrers_tag(digest)),
        ];
        for (doc, tag) in docs {
            let Some(doc) = doc else { continue };
            let reference = Reference { tag: Some(tag), digest: None, ..reference.clone() };
            let descriptor = named(&doc, &reference);
            let docs = with_children(client, &repo, doc, &reference).await?;
            found.push((reference, descriptor, docs));
        }
    }
    for (reference, descriptor, docs) in found {
        pulled.add(reference, descriptor, docs);
    }
    pulled.images.sort_by(|a, b| a.0.cmp(&b.0));
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

/// What a layer of a vouching manifest is checked as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A simple-signing payload with its signature in the layer annotation.
    Signature,
    /// A DSSE envelope holding an in-toto statement.
    Attestation,
}

/// What vouches for one image, as found in an archive or a registry: the manifests under
/// its cosign tags, and its referrers.
#[derive(Debug, Default)]
struct Found {
    signatures: Option<ManifestDoc>,
    attestations: Option<ManifestDoc>,
    referrers: Vec<ManifestDoc>,
}

impl Found {
    /// The layers to check: every layer under the cosign tags, and the simple-signing and
    /// DSSE layers of referrers (referrers of other types, an SBOM, a notation signature,
    /// are carried, not checked).
    fn layers(&self) -> Vec<(Kind, &Descriptor)> {
        let mut layers: Vec<(Kind, &Descriptor)> =
            layers_of(self.signatures.as_ref()).iter().map(|l| (Kind::Signature, l)).collect();
        layers.extend(layers_of(self.attestations.as_ref()).iter().map(|l| (Kind::Attestation, l)));
        for referrer in &self.referrers {
            layers.extend(layers_of(Some(referrer)).iter().filter_map(|l| {
                match l.media_type.as_str() {
                    SIMPLE_SIGNING => Some((Kind::Signature, l)),
                    DSSE_ENVELOPE => Some((Kind::Attestation, l)),
                    _ => None,
                }
            }));
        }
        layers
    }
}

/// The layers of an image manifest (none for an index or nothing).
fn layers_of(doc: Option<&ManifestDoc>) -> &[Descriptor] {
    match doc.map(|d| &d.contents) {
        Some(Contents::Image { layers, .. }) => layers,
        _ => &[],
    }
}

/// Why a signature payload does not vouch for the image `digest`.
fn check_signature(
    layer: &Descriptor,
    payload: &[u8],
    digest: &Digest,
    keys: &[PublicKey],
) -> Result<(), String> {
    let encoded = layer
        .annotations
        .get(SIGNATURE_ANNOTATION)
        .ok_or("a layer of the signature manifest has no signature annotation")?;
    let signature = decode_signature(encoded)?;
    if !keys.iter().any(|k| k.key.verify(payload, &signature).is_ok()) {
        return Err("the signature does not verify with any given key (tampered payload, or signed by another key)".into());
    }
    let payload: serde_json::Value =
        serde_json::from_slice(payload).map_err(|_| "the signed payload is not JSON")?;
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

/// An ECDSA signature from its base64 DER form.
fn decode_signature(encoded: &str) -> Result<Signature, String> {
    let der = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| "the signature is not base64")?;
    Signature::from_der(&der).map_err(|_| "the signature is not an ECDSA signature".to_string())
}

/// Why a DSSE envelope does not vouch for the image `digest`: it must be signed by one of
/// `keys` over its pre-authentication encoding (`DSSEv1 LEN TYPE LEN BODY`), and hold an
/// in-toto statement with a subject of that digest.
fn check_attestation(envelope: &[u8], digest: &Digest, keys: &[PublicKey]) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Envelope {
        payload_type: String,
        payload: String,
        signatures: Vec<EnvelopeSignature>,
    }
    #[derive(serde::Deserialize)]
    struct EnvelopeSignature {
        sig: String,
    }
    let envelope: Envelope =
        serde_json::from_slice(envelope).map_err(|_| "it is not a DSSE envelope")?;
    let body = base64::engine::general_purpose::STANDARD
        .decode(envelope.payload.trim())
        .map_err(|_| "its payload is not base64")?;
    let kind = &envelope.payload_type;
    let mut signed = format!("DSSEv1 {} {kind} {} ", kind.len(), body.len()).into_bytes();
    signed.extend_from_slice(&body);
    let verified = envelope.signatures.iter().any(|s| {
        decode_signature(&s.sig)
            .is_ok_and(|sig| keys.iter().any(|k| k.key.verify(&signed, &sig).is_ok()))
    });
    if !verified {
        return Err("its signature does not verify with any given key (tampered statement, or signed by another key)".into());
    }
    if kind != IN_TOTO {
        return Err(format!("its payload is {kind}, not an in-toto statement"));
    }
    let statement: serde_json::Value =
        serde_json::from_slice(&body).map_err(|_| "its statement is not JSON")?;
    let subjects: Vec<&str> = statement["subject"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["digest"]["sha256"].as_str())
        .collect();
    if subjects.contains(&digest.hex()) {
        return Ok(());
    }
    let named: Vec<String> = subjects.iter().map(|s| format!("sha256:{s}")).collect();
    Err(format!(
        "its statement's subject is {}, not this image",
        if named.is_empty() { "missing".to_string() } else { named.join(", ") }
    ))
}

/// A layer to check, with its payload or why it could not be read.
type Checked<'a> = (Kind, &'a Descriptor, Result<Vec<u8>, String>);

/// Why the image `digest` is refused, one reason a line, given each layer `found` holds for
/// it with its payload (or why that could not be read); `missing` says where no signature
/// was found. Empty: one signature verifies and every attestation does.
fn judge(digest: &Digest, checked: &[Checked], keys: &[PublicKey], missing: &str) -> Vec<String> {
    let mut signed = Err(missing.to_string());
    let mut reasons = Vec::new();
    for (kind, layer, payload) in checked {
        let verdict = payload.as_ref().map_err(Clone::clone).and_then(|p| match kind {
            Kind::Signature => check_signature(layer, p, digest, keys),
            Kind::Attestation => check_attestation(p, digest, keys),
        });
        match (kind, verdict) {
            (Kind::Signature, verdict) if signed.is_err() => signed = verdict,
            (Kind::Attestation, Err(why)) => {
                reasons.push(format!("attestation {} refused: {why}", layer.digest))
            }
            _ => {}
        }
    }
    if let Err(why) = signed {
        reasons.insert(0, format!("not signed by a trusted key: {why}"));
    }
    reasons
}

/// A payload of the archive, if it is there, small and matches its digest.
fn archive_payload(archive: &ImageArchive, layer: &Descriptor) -> Result<Vec<u8>, String> {
    let blob = archive.blob(&layer.digest).ok_or("its payload is not in the archive")?;
    if blob.location.size > MAX_PAYLOAD {
        return Err("its payload is larger than 1 MiB".into());
    }
    let mut payload = vec![0; blob.location.size as usize];
    archive.tar().read_at(blob.location, 0, &mut payload).map_err(|e| e.to_string())?;
    if Digest::of(&payload) != layer.digest {
        return Err("its payload does not match its digest".into());
    }
    Ok(payload)
}

/// Checks that every image of `archive` (what vouches for images aside) has a cosign
/// signature in the archive, made by one of `keys` over a payload naming its digest, and
/// that every attestation carried for it verifies (see the module docs); one problem per
/// image and reason.
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
        let doc = |tag: &str| {
            let digest = by_name.get(&format!("{}/{}:{tag}", r.registry, r.repository))?;
            archive.manifest(digest).cloned()
        };
        let [sig, att] = tags(&named.digest);
        let referrers = match doc(&referrers_tag(&named.digest)).map(|d| d.contents) {
            Some(Contents::Index(children)) => {
                children.iter().filter_map(|c| archive.manifest(&c.digest).cloned()).collect()
            }
            _ => Vec::new(),
        };
        let found = Found { signatures: doc(&sig), attestations: doc(&att), referrers };
        let checked: Vec<_> = found
            .layers()
            .into_iter()
            .map(|(kind, layer)| (kind, layer, archive_payload(archive, layer)))
            .collect();
        let missing =
            format!("no cosign signature ({sig}, or an OCI referrer) was carried with it");
        for why in judge(&named.digest, &checked, keys, &missing) {
            problems.push(Problem::new(&label, r.to_string(), why).hint(
                "sign (and attest) it with one of the keys and save it again, or leave out --verify-images; nothing was pushed",
            ));
        }
    }
    problems.into_result(())
}

/// Checks every image of `references` in the registry it is pulled from (through `mirrors`)
/// as [`verify`] checks an archive: a signature by one of `keys` over its digest (a tag is
/// resolved to the digest the registry serves now), every attestation valid. One problem
/// per image and reason, all at once; registry failures are errors of their own.
pub async fn verify_in_registry(
    client: &Client,
    references: &[Reference],
    mirrors: &Mirrors,
    keys: &[PublicKey],
) -> Result<(), RegistryError> {
    let unique: BTreeSet<&Reference> = references.iter().collect();
    let mut problems = Problems::default();
    let mut refuse = |reference: &Reference, why: String| {
        problems.push(Problem::new("--verify-images", reference.to_string(), why).hint(
            "sign (and attest) it with one of the keys and publish that beside it (charmer images push carries it), or leave out --verify-images; nothing was applied",
        ))
    };
    for reference in unique {
        let repo = match source_repo(reference, mirrors) {
            Ok(repo) => repo,
            Err(problem) => {
                refuse(reference, problem.message);
                continue;
            }
        };
        let digest = match &reference.digest {
            Some(digest) => digest
                .parse()
                .map_err(|why: String| Problem::new(reference.to_string(), "", why))?,
            None => {
                match client
                    .retrying(|| client.tag_digest(&repo, reference.tag_or_latest()))
                    .await?
                {
                    Some(digest) => digest,
                    None => {
                        refuse(reference, format!("{repo} has no such image: nothing to check"));
                        continue;
                    }
                }
            }
        };
        let [sig, att] = tags(&digest);
        // The index first, then the referrers it lists.
        let referrers = match referrers(client, &repo, &digest).await? {
            Some(index) => with_children(client, &repo, index, reference).await?,
            None => Vec::new(),
        };
        let referrers = referrers.into_iter().skip(1).map(|(_, doc)| doc).collect();
        let found = Found {
            signatures: manifest_if_any(client, &repo, &sig).await?,
            attestations: manifest_if_any(client, &repo, &att).await?,
            referrers,
        };
        let mut checked = Vec::new();
        for (kind, layer) in found.layers() {
            checked.push((kind, layer, registry_payload(client, &repo, layer).await?));
        }
        let missing = format!("no cosign signature ({sig}, or an OCI referrer) in {repo}");
        for why in judge(&digest, &checked, keys, &missing) {
            refuse(reference, why);
        }
    }
    problems.into_result(()).map_err(RegistryError::from)
}

/// A payload from the registry, if it is there, small and matches its digest; other
/// registry failures are errors.
async fn registry_payload(
    client: &Client,
    repo: &Repo,
    layer: &Descriptor,
) -> Result<Result<Vec<u8>, String>, RegistryError> {
    if layer.size > MAX_PAYLOAD {
        return Ok(Err("its payload is larger than 1 MiB".into()));
    }
    match client.retrying(|| client.get_blob_bytes(repo, &layer.digest, MAX_PAYLOAD)).await {
        Ok(payload) => Ok(Ok(payload)),
        Err(RegistryError::Http { status: 404, .. }) => {
            Ok(Err("its payload is not in the registry".into()))
        }
        Err(RegistryError::DigestMismatch { .. }) => {
            Ok(Err("its payload does not match its digest".into()))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Signer as _;
    use p256::ecdsa::SigningKey;

    #[test]
    fn signature_tags_are_recognised() {
        let digest: Digest = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        let [sig, att] = tags(&digest);
        assert_eq!(sig, format!("sha256-{}.sig", "ab".repeat(32)));
        let referrers = referrers_tag(&digest);
        assert_eq!(referrers, format!("sha256-{}", "ab".repeat(32)));
        for (tag, expected) in [
            (sig.as_str(), true),
            (att.as_str(), true),
            (referrers.as_str(), true),
            ("1.0", false),
            ("sha256-ab.sig", false),
            ("sha256-ab", false),
        ] {
            let reference: Reference = format!("127.0.0.1:5000/team/app:{tag}").parse().unwrap();
            assert_eq!(is_signature(&reference), expected, "{tag}");
        }
    }

    fn key(seed: u8) -> (SigningKey, PublicKey) {
        let signing = SigningKey::from_slice(&[seed; 32]).unwrap();
        let public = PublicKey { label: format!("key{seed}"), key: *signing.verifying_key() };
        (signing, public)
    }

    /// A DSSE envelope over `statement` signed by `signer`, its payload type `kind`.
    fn envelope(signer: &SigningKey, kind: &str, statement: &[u8]) -> Vec<u8> {
        let mut pae = format!("DSSEv1 {} {kind} {} ", kind.len(), statement.len()).into_bytes();
        pae.extend_from_slice(statement);
        let signature: Signature = signer.sign(&pae);
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        serde_json::to_vec(&serde_json::json!({
            "payloadType": kind,
            "payload": b64(statement),
            "signatures": [{"keyid": "", "sig": b64(signature.to_der().as_bytes())}],
        }))
        .unwrap()
    }

    fn statement(subject_hex: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "app", "digest": {"sha256": subject_hex}}],
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {"buildDefinition": {"buildType": "test"}},
        }))
        .unwrap()
    }

    #[test]
    fn attestations_must_be_signed_over_a_statement_about_the_image() {
        let digest = Digest::of(b"the image manifest");
        let other = Digest::of(b"another image");
        let (signer, public) = key(7);
        let (stranger, _) = key(9);
        let keys = [public];
        let good = envelope(&signer, IN_TOTO, &statement(digest.hex()));
        assert_eq!(check_attestation(&good, &digest, &keys), Ok(()));

        let about_another = envelope(&signer, IN_TOTO, &statement(other.hex()));
        let why = check_attestation(&about_another, &digest, &keys).unwrap_err();
        assert_eq!(why, format!("its statement's subject is {other}, not this image"));

        let by_a_stranger = envelope(&stranger, IN_TOTO, &statement(digest.hex()));
        let why = check_attestation(&by_a_stranger, &digest, &keys).unwrap_err();
        assert!(why.starts_with("its signature does not verify with any given key"), "{why}");

        // The statement changed after signing: the subject still names the image, but the
        // signature no longer covers the payload.
        let mut tampered: serde_json::Value = serde_json::from_slice(&good).unwrap();
        let mut changed: serde_json::Value =
            serde_json::from_slice(&statement(digest.hex())).unwrap();
        changed["predicate"]["buildDefinition"]["buildType"] = "forged".into();
        tampered["payload"] = base64::engine::general_purpose::STANDARD
            .encode(serde_json::to_vec(&changed).unwrap())
            .into();
        let tampered = serde_json::to_vec(&tampered).unwrap();
        let why = check_attestation(&tampered, &digest, &keys).unwrap_err();
        assert!(why.contains("tampered statement"), "{why}");

        let not_in_toto = envelope(&signer, "text/plain", b"hello");
        let why = check_attestation(&not_in_toto, &digest, &keys).unwrap_err();
        assert_eq!(why, "its payload is text/plain, not an in-toto statement");
        assert_eq!(
            check_attestation(b"{}", &digest, &keys).unwrap_err(),
            "it is not a DSSE envelope"
        );
    }

    #[test]
    fn one_good_signature_suffices_but_every_attestation_must_verify() {
        let digest = Digest::of(b"the image manifest");
        let (signer, public) = key(7);
        let (stranger, _) = key(9);
        let payload = serde_json::to_vec(&serde_json::json!({
            "critical": {"identity": {"docker-reference": "r/app"},
                         "image": {"docker-manifest-digest": digest.as_str()},
                         "type": "cosign container image signature"},
            "optional": null,
        }))
        .unwrap();
        let layer = |by: &SigningKey| {
            let signature: Signature = by.sign(&payload);
            let mut d = Descriptor::new(SIMPLE_SIGNING, Digest::of(&payload), payload.len() as u64);
            d.annotations.insert(
                SIGNATURE_ANNOTATION.into(),
                base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes()),
            );
            d
        };
        let (good, foreign) = (layer(&signer), layer(&stranger));
        let att = Descriptor::new(DSSE_ENVELOPE, Digest::of(b"att"), 3);
        let keys = [public];
        let checked = [
            (Kind::Signature, &foreign, Ok(payload.clone())),
            (Kind::Signature, &good, Ok(payload.clone())),
        ];
        assert_eq!(judge(&digest, &checked, &keys, "none"), Vec::<String>::new());
        let bad_att = envelope(&stranger, IN_TOTO, &statement(digest.hex()));
        let checked =
            [(Kind::Signature, &good, Ok(payload.clone())), (Kind::Attestation, &att, Ok(bad_att))];
        let reasons = judge(&digest, &checked, &keys, "none");
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(
            reasons[0].starts_with(&format!("attestation {} refused: its signature", att.digest))
        );
        let reasons = judge(&digest, &[(Kind::Signature, &foreign, Ok(payload))], &keys, "none");
        assert!(
            reasons[0].starts_with("not signed by a trusted key: the signature does not verify")
        );
        assert_eq!(judge(&digest, &[], &keys, "none"), ["not signed by a trusted key: none"]);
    }
}
