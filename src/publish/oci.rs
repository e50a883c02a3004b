//! Charms in an OCI registry, the one shared store inside an air gap (as Helm and Zarf keep
//! charts and packages): `charmer publish --registry HOST[:PORT]/PREFIX` pushes each charm as
//! an OCI artifact `PREFIX/<name>:<version>`, and the resolver reads them back with
//! `--charms oci://HOST[:PORT]/PREFIX`.
//!
//! The artifact (OCI image spec 1.1 guidance for artifacts):
//! ```text
//! manifest   application/vnd.oci.image.manifest.v1+json
//!            artifactType  application/vnd.charmer.charm.v1
//!            config        application/vnd.charmer.charm.config.v1+json  (the index entry:
//!                          name, version, file, sha256, size, summary, images, interfaces)
//!            layers[0]     application/vnd.charmer.charm.v1+zip  (the .charm archive, as
//!                          `charmer publish` packs it; title annotation = its file name)
//! ```
//! No timestamps: the same charm gives the same manifest digest. The tag is the version
//! (`+` of build metadata becomes `_`, which tags allow and versions do not contain).
//! Published versions are immutable: a tag that serves another digest is refused before
//! anything is pushed; the same digest is a no-op.
//!
//! A signature (`--sign-key`) is its own artifact whose `subject` is the charm's manifest:
//! artifactType `application/vnd.charmer.charm.signature.v1`, an empty config
//! (`application/vnd.oci.empty.v1+json`, `{}`), and one layer holding the minisign
//! signature of the archive (`application/vnd.charmer.minisign.v1`, `minisign -V` checks
//! it against the extracted archive). Registries that implement the referrers API
//! (distribution spec 1.1) index it by `subject`; those that do not (Debian's
//! docker-registry 2.8 answers 404 to `GET /v2/<name>/referrers/<digest>` and ignores
//! `subject`) get the spec's fallback: an image index tagged `sha256-<hex of the charm's
//! manifest digest>` listing the signature manifests. The reader tries the API first and
//! falls back to that tag, as the spec describes.

use std::path::{Path, PathBuf};

use semver::Version;
use serde_json::{json, Value};

use super::index::Release;
use super::{load_candidates, IndexEntry, PublicKey, PublishError, SecretKey};
use crate::charm::{Charm, Limits as CharmLimits, Origin};
use crate::diag::{Problem, Problems};
use crate::images::Registry;
use crate::io_error::IoError;
use crate::registry::auth::Keychain;
use crate::registry::client::{Client, ClientOptions, Repo};
use crate::registry::manifest::{media, Contents, Descriptor, Digest, ManifestDoc};
use crate::transport::TlsOptions;

/// `artifactType` of a charm.
pub const ARTIFACT_TYPE: &str = "application/vnd.charmer.charm.v1";
/// Media type of a charm artifact's config (its index entry, JSON).
pub const CONFIG_TYPE: &str = "application/vnd.charmer.charm.config.v1+json";
/// Media type of the `.charm` archive layer.
pub const ARCHIVE_TYPE: &str = "application/vnd.charmer.charm.v1+zip";
/// `artifactType` of a charm's signature.
pub const SIGNATURE_TYPE: &str = "application/vnd.charmer.charm.signature.v1";
/// Media type of the minisign signature layer.
pub const MINISIGN_TYPE: &str = "application/vnd.charmer.minisign.v1";
/// The OCI empty descriptor's media type (config of artifacts that need none).
const EMPTY_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// The annotation naming a layer's file.
const TITLE: &str = "org.opencontainers.image.title";
/// Largest manifest, index or config read.
const MAX_DOCUMENT: u64 = 4 << 20;

/// The scheme of a charm source in the registry: `oci://HOST[:PORT]/PREFIX`.
pub const SCHEME: &str = "oci://";

/// The tag of a version (`+` is not allowed in tags).
pub fn tag_of(version: &Version) -> String {
    version.to_string().replace('+', "_")
}

/// The version a tag names, if it names one.
pub fn version_of(tag: &str) -> Option<Version> {
    Version::parse(&tag.replace('_', "+")).ok()
}

/// The repository of charm `name` under `registry`'s prefix.
pub fn repo_of(registry: &Registry, name: &str) -> Repo {
    let name = match &registry.prefix {
        Some(prefix) => format!("{prefix}/{name}"),
        None => name.to_string(),
    };
    Repo { host: registry.host.clone(), name }
}

/// A charm as an artifact: its manifest and the two blobs it references.
struct Artifact {
    manifest: ManifestDoc,
    config: Vec<u8>,
    archive: Vec<u8>,
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({"mediaType": media_type, "digest": Digest::of(bytes).to_string(), "size": bytes.len()})
}

fn manifest_doc(value: &Value) -> Result<ManifestDoc, PublishError> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    ManifestDoc::parse(bytes, Some(media::OCI_MANIFEST))
        .map_err(|why| Problem::new("", "", format!("internal: {why}")).into())
}

impl Artifact {
    fn of(charm: &Charm, version: &Version, archive: Vec<u8>) -> Result<Artifact, PublishError> {
        let release = Release::Version(version.clone());
        let config =
            serde_json::to_vec(&IndexEntry::new(charm, &release, &archive)).unwrap_or_default();
        let mut layer = descriptor(ARCHIVE_TYPE, &archive);
        layer["annotations"] = json!({ TITLE: charm.archive_name() });
        let manifest = manifest_doc(&json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_MANIFEST,
            "artifactType": ARTIFACT_TYPE,
            "config": descriptor(CONFIG_TYPE, &config),
            "layers": [layer],
            "annotations": {
                TITLE: charm.archive_name(),
                "org.opencontainers.image.version": version.to_string(),
            },
        }))?;
        Ok(Artifact { manifest, config, archive })
    }
}

/// One charm version of a registry publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedCharm {
    /// Charm name.
    pub name: String,
    /// Charm version.
    pub version: Version,
    /// `HOST/PREFIX/name:tag@digest`.
    pub reference: String,
    /// False when the registry already served the same artifact under the tag.
    pub added: bool,
}

/// Pushes charm source folders and `.charm` archives to `registry` as artifacts (see the
/// module docs), signing each with `key`. Every charm is loaded and every tag checked for
/// immutability before anything is pushed.
pub async fn publish(
    client: &Client,
    registry: &Registry,
    inputs: &[PathBuf],
    key: Option<&SecretKey>,
) -> Result<Vec<PushedCharm>, PublishError> {
    plan(client, registry, inputs).await?.push(client, key).await
}

/// Charms checked and ready to push (see [`plan`]).
pub struct Plan {
    charms: Vec<Planned>,
}

struct Planned {
    name: String,
    version: Version,
    repo: Repo,
    tag: String,
    artifact: Artifact,
    /// The tag does not exist yet.
    added: bool,
}

/// Loads every input and checks every tag for immutability, sending nothing: a tag serving
/// another artifact is refused, one serving this artifact is a no-op.
pub async fn plan(
    client: &Client,
    registry: &Registry,
    inputs: &[PathBuf],
) -> Result<Plan, PublishError> {
    let mut problems = Problems::default();
    let candidates = load_candidates(inputs, &mut problems);
    let mut charms = Vec::new();
    for ((name, release), candidate) in candidates {
        let Release::Version(version) = release else {
            problems.push(
                Problem::new(candidate.from.display().to_string(), "", format!("{name} {release} has no semantic version, and registry artifacts are tagged by version"))
                    .hint("give the charm a version file"),
            );
            continue;
        };
        let artifact = Artifact::of(&candidate.charm, &version, candidate.bytes)?;
        let repo = repo_of(registry, &name);
        let tag = tag_of(&version);
        let served = client.retrying(|| client.manifest_digest(&repo, &tag)).await?;
        if let Some(old) = served.as_ref().filter(|d| **d != artifact.manifest.digest) {
            problems.push(
                Problem::new(
                    format!("{repo}:{tag}"),
                    "",
                    format!(
                        "{name} {version} is already published as {old}; {} makes {}",
                        candidate.from.display(),
                        artifact.manifest.digest
                    ),
                )
                .hint("published versions are immutable: bump the charm's version file"),
            );
            continue;
        }
        charms.push(Planned { name, version, repo, tag, artifact, added: served.is_none() });
    }
    problems.into_result(Plan { charms }).map_err(PublishError::from)
}

impl Plan {
    /// Pushes the planned charms (blobs, then the manifest under its tag), signing each with
    /// `key`.
    pub async fn push(
        self,
        client: &Client,
        key: Option<&SecretKey>,
    ) -> Result<Vec<PushedCharm>, PublishError> {
        let mut pushed = Vec::new();
        for Planned { name, version, repo, tag, artifact, added } in self.charms {
            if added {
                client.retrying(|| client.put_blob_bytes(&repo, &artifact.config)).await?;
                client.retrying(|| client.put_blob_bytes(&repo, &artifact.archive)).await?;
                client.retrying(|| client.put_manifest(&repo, &tag, &artifact.manifest)).await?;
            }
            if let Some(key) = key {
                let file = format!("{name}_{version}.charm");
                let signature = key.sign(&file, &artifact.archive);
                sign(client, &repo, &artifact.manifest, &signature).await?;
            }
            let reference = format!("{repo}:{tag}@{}", artifact.manifest.digest);
            pushed.push(PushedCharm { name, version, reference, added });
        }
        Ok(pushed)
    }
}

/// Pushes a signature artifact for `subject` and, when the registry does not index
/// `subject`s itself, lists it in the referrers fallback tag.
async fn sign(
    client: &Client,
    repo: &Repo,
    subject: &ManifestDoc,
    signature: &str,
) -> Result<(), PublishError> {
    let empty = b"{}".to_vec();
    let mut layer = descriptor(MINISIGN_TYPE, signature.as_bytes());
    layer["annotations"] = json!({ TITLE: "signature.minisig" });
    let manifest = manifest_doc(&json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "artifactType": SIGNATURE_TYPE,
        "config": descriptor(EMPTY_TYPE, &empty),
        "layers": [layer],
        "subject": {
            "mediaType": subject.media_type,
            "digest": subject.digest.to_string(),
            "size": subject.bytes.len(),
        },
    }))?;
    client.retrying(|| client.put_blob_bytes(repo, &empty)).await?;
    client.retrying(|| client.put_blob_bytes(repo, signature.as_bytes())).await?;
    let headers = client
        .retrying(|| client.put_manifest_headers(repo, manifest.digest.as_str(), &manifest))
        .await?;
    if headers.contains_key("oci-subject") {
        return Ok(());
    }
    let tag = fallback_tag(&subject.digest);
    let mut entries: Vec<Value> = match client.manifest_digest(repo, &tag).await? {
        Some(_) => {
            let doc = client.retrying(|| client.get_manifest(repo, &tag, MAX_DOCUMENT)).await?;
            let index: Value = serde_json::from_slice(&doc.bytes).unwrap_or_default();
            index["manifests"].as_array().cloned().unwrap_or_default()
        }
        None => Vec::new(),
    };
    if entries.iter().any(|e| e["digest"] == manifest.digest.as_str()) {
        return Ok(());
    }
    let mut entry = descriptor(media::OCI_MANIFEST, &manifest.bytes);
    entry["artifactType"] = json!(SIGNATURE_TYPE);
    entries.push(entry);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": entries,
    }))
    .unwrap_or_default();
    let index = ManifestDoc::parse(index, Some(media::OCI_INDEX))
        .map_err(|why| Problem::new("", "", format!("internal: {why}")))?;
    client.retrying(|| client.put_manifest(repo, &tag, &index)).await?;
    Ok(())
}

/// The referrers fallback tag of a manifest: `sha256-<hex>`.
pub fn fallback_tag(digest: &Digest) -> String {
    format!("sha256-{}", digest.hex())
}

/// The versions of charm `name` in the registry (tags that are not versions are skipped).
pub async fn versions(
    client: &Client,
    registry: &Registry,
    name: &str,
) -> Result<Vec<Version>, PublishError> {
    let repo = repo_of(registry, name);
    let tags = client.retrying(|| client.tags(&repo, MAX_DOCUMENT)).await?;
    let mut versions: Vec<Version> = tags.iter().filter_map(|t| version_of(t)).collect();
    versions.sort_by(|a, b| b.cmp(a));
    Ok(versions)
}

/// Pulls charm `name` at `version`: the manifest must be a charm artifact, the archive must
/// match its digest and, with `key`, a signature referring to the manifest must verify. The
/// charm's origin is `oci://HOST/PREFIX/name@<manifest digest>`.
pub async fn fetch(
    client: &Client,
    registry: &Registry,
    name: &str,
    version: &Version,
    key: Option<&PublicKey>,
) -> Result<Charm, PublishError> {
    let repo = repo_of(registry, name);
    let tag = tag_of(version);
    let label = format!("{SCHEME}{repo}:{tag}");
    let manifest = client.retrying(|| client.get_manifest(&repo, &tag, MAX_DOCUMENT)).await?;
    let layer = archive_layer(&label, &manifest)?;
    let limits = CharmLimits::default();
    if layer.size > limits.max_total_bytes {
        return Err(Problem::new(
            &label,
            "",
            format!("archive of {} bytes is too large", layer.size),
        )
        .into());
    }
    let bytes = client.retrying(|| client.get_blob_bytes(&repo, &layer.digest, layer.size)).await?;
    if let Some(key) = key {
        let file = format!("{name}_{version}.charm");
        verify(client, &repo, &label, &manifest.digest, &file, &bytes, key).await?;
    }
    // The origin names the artifact (no file name to check against: the tag is checked
    // against the charm's own name and version below).
    let origin = format!("{SCHEME}{repo}@{}", manifest.digest);
    let files = crate::charm::archive::read_zip(&origin, &bytes, &limits)?;
    let sha256 = crate::digest::sha256_hex(&bytes);
    let charm = Charm::from_files(files, Origin::Archive { path: PathBuf::from(origin), sha256 })?;
    if charm.name() != name || charm.version.as_ref() != Some(version) {
        return Err(Problem::new(
            &label,
            "",
            format!("holds {} {}, not {name} {version}", charm.name(), charm.version_label()),
        )
        .into());
    }
    Ok(charm)
}

/// The one archive layer of a charm artifact, or why the manifest is not one.
fn archive_layer(label: &str, manifest: &ManifestDoc) -> Result<Descriptor, PublishError> {
    match &manifest.contents {
        Contents::Image { config, layers }
            if config.media_type == CONFIG_TYPE
                && layers.len() == 1
                && layers[0].media_type == ARCHIVE_TYPE =>
        {
            Ok(layers[0].clone())
        }
        _ => Err(Problem::new(label, "", "is not a charm artifact")
            .hint(format!("publish it with charmer publish --registry (config {CONFIG_TYPE})"))
            .into()),
    }
}

/// Checks that a signature artifact referring to `subject` verifies `bytes` with `key`.
async fn verify(
    client: &Client,
    repo: &Repo,
    label: &str,
    subject: &Digest,
    file: &str,
    bytes: &[u8],
    key: &PublicKey,
) -> Result<(), PublishError> {
    let listed = match client.retrying(|| client.referrers(repo, subject, MAX_DOCUMENT)).await? {
        Some(index) => index,
        None => {
            let tag = fallback_tag(subject);
            match client.manifest_digest(repo, &tag).await? {
                Some(_) => {
                    client.retrying(|| client.get_manifest(repo, &tag, MAX_DOCUMENT)).await?
                }
                None => return Err(unsigned(label)),
            }
        }
    };
    let index: Value = serde_json::from_slice(&listed.bytes).unwrap_or_default();
    let signatures = index["manifests"].as_array().cloned().unwrap_or_default();
    let mut why = Vec::new();
    for entry in signatures.iter().filter(|e| e["artifactType"] == SIGNATURE_TYPE) {
        let Some(digest) = entry["digest"].as_str().and_then(|d| d.parse::<Digest>().ok()) else {
            continue;
        };
        let doc =
            client.retrying(|| client.get_manifest(repo, digest.as_str(), MAX_DOCUMENT)).await?;
        let sig_layer = match &doc.contents {
            Contents::Image { layers, .. } if layers.len() == 1 => layers[0].clone(),
            _ => continue,
        };
        let refers: Value = serde_json::from_slice(&doc.bytes).unwrap_or_default();
        if refers["subject"]["digest"] != subject.as_str() || sig_layer.size > MAX_DOCUMENT {
            continue;
        }
        let text = client
            .retrying(|| client.get_blob_bytes(repo, &sig_layer.digest, MAX_DOCUMENT))
            .await?;
        let text = String::from_utf8_lossy(&text);
        match key.verify(label, file, bytes, &text) {
            Ok(()) => return Ok(()),
            Err(problem) => why.push(problem.message),
        }
    }
    if why.is_empty() {
        return Err(unsigned(label));
    }
    Err(Problem::new(label, "signature", why.join("; "))
        .hint("the artifact was changed, or signed with another key")
        .into())
}

fn unsigned(label: &str) -> PublishError {
    Problem::new(label, "signature", "not signed (no signature artifact refers to it)")
        .hint("publish with --sign-key")
        .into()
}

/// Whether a `--charms` source names a registry (`oci://...`).
pub fn is_oci(source: &Path) -> bool {
    source.to_string_lossy().starts_with(SCHEME)
}

/// The registry and prefix of an `oci://HOST[:PORT]/PREFIX` source.
pub fn parse_source(source: &str) -> Result<Registry, Problem> {
    let rest = source.strip_prefix(SCHEME).unwrap_or(source);
    rest.parse::<Registry>()
        .map_err(|e| Problem::new(source, "", e.why).hint("give --charms oci://HOST[:PORT]/PREFIX"))
}

/// A registry prefix charms are read from (`--charms oci://HOST[:PORT]/PREFIX`), for
/// synchronous callers: it runs its requests on a runtime of its own (call it from
/// synchronous code, not from inside an async task). Credentials come from Docker's config.
pub struct CharmRegistry {
    registry: Registry,
    client: Client,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for CharmRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CharmRegistry({SCHEME}{})", self.registry)
    }
}

impl CharmRegistry {
    /// Opens `oci://HOST[:PORT]/PREFIX` with the TLS settings `tls`.
    pub fn open(source: &str, tls: &TlsOptions) -> Result<CharmRegistry, PublishError> {
        let registry = parse_source(source)?;
        let client = Client::new(ClientOptions {
            tls: tls.clone(),
            retries: 3,
            keychain: Keychain::new(None)?,
        })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| PublishError::Io(IoError::new(source_label(&registry), source)))?;
        Ok(CharmRegistry { registry, client, runtime })
    }

    /// `oci://HOST/PREFIX/name:tag`, for messages.
    pub fn location(&self, name: &str, version: &Version) -> String {
        format!("{SCHEME}{}:{}", repo_of(&self.registry, name), tag_of(version))
    }

    /// The versions of `name` published here, highest first.
    pub fn versions(&self, name: &str) -> Result<Vec<Version>, PublishError> {
        self.runtime.block_on(versions(&self.client, &self.registry, name))
    }

    /// Pulls and checks `name` at `version` (see [`fetch`]).
    pub fn fetch(
        &self,
        name: &str,
        version: &Version,
        key: Option<&PublicKey>,
    ) -> Result<Charm, PublishError> {
        self.runtime.block_on(fetch(&self.client, &self.registry, name, version, key))
    }
}

fn source_label(registry: &Registry) -> String {
    format!("{SCHEME}{registry}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_carry_versions_with_build_metadata() {
        let version = Version::parse("1.3.0-rc.1+build.7").unwrap();
        assert_eq!(tag_of(&version), "1.3.0-rc.1_build.7");
        assert_eq!(version_of(&tag_of(&version)), Some(version));
        assert_eq!(version_of("latest"), None);
        assert_eq!(version_of("sha256-0123"), None);
    }

    #[test]
    fn sources_name_a_registry_and_prefix() {
        let registry = parse_source("oci://10.0.0.5:5000/team/charms").unwrap();
        assert_eq!(registry.host, "10.0.0.5:5000");
        assert_eq!(repo_of(&registry, "web").name, "team/charms/web");
        assert!(parse_source("oci://").is_err());
        assert!(is_oci(Path::new("oci://host/p")) && !is_oci(Path::new("charms")));
    }
}
