//! Image archives, read: an OCI image layout in a tar (what `charmer images save`, `skopeo
//! copy ... oci-archive:` and `docker save` since Docker 25 write) or a classic `docker save`
//! tarball (`manifest.json` + config + layer tars; single or multi-image), plain or gzip'd.
//! An `airgap export` archive is read too: its images are an OCI layout under `images/`.
//!
//! OCI manifests are kept byte for byte, so digests do not change. A docker-archive image
//! has no registry manifest; one is written in Docker schema 2 form, deterministically (same
//! archive, same bytes, same digest): config as is, layers as stored (uncompressed tars,
//! `application/vnd.docker.image.rootfs.diff.tar`, whose digests are the config's
//! `diff_ids`; a gzip'd layer is hashed and typed `.tar.gzip`). Recompressing would cost more
//! time than it saves on a local network and would make the digest depend on a compressor.
//!
//! Every JSON document is checked against its digest when read; blobs are checked by
//! [`ImageArchive::verify_blob`] before anything is committed to a registry.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::manifest::{
    media, Contents, Descriptor, Digest, ManifestDoc, ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME,
};
use super::tarindex::{Limits, Member, TarIndex};
use super::RegistryError;
use crate::diag::{Problem, Problems};
use crate::images::Reference;
use crate::io_error::IoResultExt;

/// An image the archive names: the reference it had, and its top manifest (or index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedImage {
    /// The original reference (registry, path, tag, digest if one was given).
    pub reference: Reference,
    /// The digest of its manifest or index.
    pub digest: Digest,
}

/// A blob stored in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// The member holding it (for messages).
    pub member: String,
    /// Where its bytes are.
    pub location: Member,
}

/// Which layout the archive had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OCI image layout (`oci-layout`, `index.json`, `blobs/`).
    OciLayout,
    /// Classic `docker save` (`manifest.json`).
    DockerArchive,
}

/// The images of an archive, ready to push.
#[derive(Debug)]
pub struct ImageArchive {
    tar: Arc<TarIndex>,
    /// The format it was read as.
    pub format: Format,
    /// The named images, in the archive's order.
    pub images: Vec<NamedImage>,
    manifests: BTreeMap<Digest, ManifestDoc>,
    blobs: BTreeMap<Digest, Blob>,
}

/// Depth of nested indexes followed (an index of indexes is legal, a loop is not).
const MAX_DEPTH: usize = 4;

impl ImageArchive {
    /// Reads an archive file (see the module docs for the formats).
    pub fn open(path: &Path, limits: &Limits) -> Result<ImageArchive, RegistryError> {
        Self::from_index(Arc::new(TarIndex::open(path, limits)?), limits)
    }

    /// Reads the images of an indexed tar: at its top, or under `images/` in an air-gap
    /// archive.
    pub fn from_index(tar: Arc<TarIndex>, limits: &Limits) -> Result<ImageArchive, RegistryError> {
        let prefix = if tar.member("oci-layout").is_none()
            && tar.member("manifest.json").is_none()
            && tar.member("images/oci-layout").is_some()
        {
            "images/"
        } else {
            ""
        };
        Self::from_tar(tar, prefix, limits)
    }

    /// Reads the images stored under `prefix` (`""` or a folder ending in `/`) of an indexed
    /// tar.
    pub fn from_tar(
        tar: Arc<TarIndex>,
        prefix: &str,
        limits: &Limits,
    ) -> Result<ImageArchive, RegistryError> {
        Self::from_tar_without(tar, prefix, limits, &BTreeMap::new())
    }

    /// Like [`ImageArchive::from_tar`], for an archive that leaves some blobs out on purpose
    /// (a delta air-gap archive): a blob of `left_out` (digest → size) may be missing. Such a
    /// blob has no [`ImageArchive::blob`]; whoever pushes the archive must find it elsewhere.
    pub fn from_tar_without(
        tar: Arc<TarIndex>,
        prefix: &str,
        limits: &Limits,
        left_out: &BTreeMap<Digest, u64>,
    ) -> Result<ImageArchive, RegistryError> {
        let mut reader = Reader {
            tar: &tar,
            prefix,
            limits,
            left_out,
            problems: Problems::default(),
            manifests: BTreeMap::new(),
            blobs: BTreeMap::new(),
        };
        let (format, images) = if tar.member(&format!("{prefix}oci-layout")).is_some() {
            (Format::OciLayout, reader.oci_layout())
        } else if tar.member(&format!("{prefix}manifest.json")).is_some() {
            (Format::DockerArchive, reader.docker_archive())
        } else {
            let problem = Problem::new(
                tar.label(),
                "",
                "not an image archive: no oci-layout or manifest.json",
            )
            .hint("give an archive written by charmer images save, docker save or skopeo copy");
            return Err(problem.into());
        };
        if images.is_empty() && reader.problems.is_empty() {
            reader.problems.push(Problem::new(tar.label(), "", "holds no images"));
        }
        let Reader { problems, manifests, blobs, .. } = reader;
        problems.into_result(())?;
        Ok(ImageArchive { tar, format, images, manifests, blobs })
    }

    /// The indexed tar the archive is read from.
    pub fn tar(&self) -> &Arc<TarIndex> {
        &self.tar
    }

    /// A manifest or index by digest.
    pub fn manifest(&self, digest: &Digest) -> Option<&ManifestDoc> {
        self.manifests.get(digest)
    }

    /// A blob by digest.
    pub fn blob(&self, digest: &Digest) -> Option<&Blob> {
        self.blobs.get(digest)
    }

    /// Everything an image needs: its manifests, children before the indexes that list them
    /// (the order a registry accepts them in), and the digests of its blobs.
    pub fn closure(&self, top: &Digest) -> (Vec<&ManifestDoc>, BTreeSet<Digest>) {
        let mut manifests = Vec::new();
        let mut blobs = BTreeSet::new();
        self.walk(top, &mut manifests, &mut blobs);
        (manifests, blobs)
    }

    fn walk<'a>(
        &'a self,
        digest: &Digest,
        manifests: &mut Vec<&'a ManifestDoc>,
        blobs: &mut BTreeSet<Digest>,
    ) {
        let Some(doc) = self.manifests.get(digest) else { return };
        if manifests.iter().any(|m| m.digest == doc.digest) {
            return;
        }
        if let Contents::Index(children) = &doc.contents {
            for child in children {
                self.walk(&child.digest, manifests, blobs);
            }
        }
        blobs.extend(doc.blobs().into_iter().map(|d| d.digest.clone()));
        manifests.push(doc);
    }
}

/// Checks a blob's bytes against its digest; `progress` gets each chunk's size. The error
/// names the member.
pub fn check_blob(
    tar: &TarIndex,
    digest: &Digest,
    blob: &Blob,
    progress: &dyn Fn(u64),
) -> Result<(), RegistryError> {
    let actual = tar.sha256(blob.location, progress).at(tar.label())?;
    if &actual != digest {
        let problem = Problem::new(
            tar.label(),
            &blob.member,
            format!("content does not match its digest {digest} (got {actual})"),
        )
        .hint("the archive is damaged or was tampered with; nothing was pushed");
        return Err(problem.into());
    }
    Ok(())
}

/// State while reading one archive: problems pile up so all are reported at once.
struct Reader<'a> {
    tar: &'a TarIndex,
    prefix: &'a str,
    limits: &'a Limits,
    /// Blobs that may be missing (see [`ImageArchive::from_tar_without`]).
    left_out: &'a BTreeMap<Digest, u64>,
    problems: Problems,
    manifests: BTreeMap<Digest, ManifestDoc>,
    blobs: BTreeMap<Digest, Blob>,
}

/// `docker save`'s `manifest.json` entries.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// The part of an image config that lists the layers' uncompressed digests.
#[derive(Deserialize)]
struct ImageConfig {
    rootfs: RootFs,
}

#[derive(Deserialize)]
struct RootFs {
    diff_ids: Vec<Digest>,
}

/// A Docker schema 2 manifest as charmer writes it for docker-archive images; field order
/// is fixed by the struct, so the bytes (and digest) are deterministic.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Schema2 {
    schema_version: u32,
    media_type: &'static str,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

impl Reader<'_> {
    fn problem(&mut self, member: &str, message: impl Into<String>) {
        self.problems.push(Problem::new(self.tar.label(), member, message));
    }

    /// Reads a JSON document member, or records why not.
    fn document(&mut self, name: &str) -> Option<Vec<u8>> {
        match self.tar.read(name, self.limits.max_document_bytes) {
            Ok(bytes) => Some(bytes),
            Err(RegistryError::Invalid(p)) => {
                self.problems.extend(p);
                None
            }
            Err(e) => {
                self.problem(name, e.to_string());
                None
            }
        }
    }

    fn oci_layout(&mut self) -> Vec<NamedImage> {
        let layout_member = format!("{}oci-layout", self.prefix);
        if let Some(bytes) = self.document(&layout_member) {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Layout {
                image_layout_version: String,
            }
            match serde_json::from_slice::<Layout>(&bytes) {
                Ok(l) if l.image_layout_version == "1.0.0" => {}
                Ok(l) => self.problem(
                    &layout_member,
                    format!(
                        "image layout version {} is not supported (1.0.0 is)",
                        l.image_layout_version
                    ),
                ),
                Err(e) => self.problem(&layout_member, format!("not an OCI layout marker: {e}")),
            }
        }
        let index_member = format!("{}index.json", self.prefix);
        let Some(bytes) = self.document(&index_member) else { return Vec::new() };
        let index = match ManifestDoc::parse(bytes, Some(media::OCI_INDEX)) {
            Ok(ManifestDoc { contents: Contents::Index(entries), .. }) => entries,
            Ok(_) => {
                self.problem(&index_member, "is not an image index");
                return Vec::new();
            }
            Err(why) => {
                self.problem(&index_member, why);
                return Vec::new();
            }
        };
        let mut images = Vec::new();
        for (n, entry) in index.iter().enumerate() {
            let key = format!("{index_member}: manifests[{n}]");
            let name = entry
                .annotations
                .get(ANNOTATION_IMAGE_NAME)
                .or_else(|| entry.annotations.get(ANNOTATION_REF_NAME).filter(|r| r.contains('/')));
            match name.map(|n| Reference::from_str(n)) {
                Some(Ok(reference)) => {
                    images.push(NamedImage { reference, digest: entry.digest.clone() })
                }
                Some(Err(e)) => self.problem(&key, e.to_string()),
                None => {
                    let tag = entry
                        .annotations
                        .get(ANNOTATION_REF_NAME)
                        .map_or(String::new(), |t| format!(" (only the tag {t:?})"));
                    let problem = Problem::new(self.tar.label(), &key, format!("the image has no full name{tag}, so there is nothing to push it as"))
                        .hint("name images with their full reference when archiving them, e.g. oci-archive:FILE:registry/path:tag");
                    self.problems.push(problem);
                }
            }
            self.load_manifest(entry, 0);
        }
        images
    }

    /// Loads a manifest or index from `blobs/` (checking size and digest) and everything it
    /// references.
    fn load_manifest(&mut self, descriptor: &Descriptor, depth: usize) {
        if self.manifests.contains_key(&descriptor.digest) {
            return;
        }
        let member = format!("{}{}", self.prefix, descriptor.digest.layout_path());
        if depth > MAX_DEPTH {
            return self.problem(&member, "indexes nested too deep");
        }
        let Some(location) = self.tar.member(&member) else {
            return self.problem(
                &member,
                format!("missing ({} referenced by the image index)", descriptor.media_type),
            );
        };
        if location.size != descriptor.size {
            return self.problem(
                &member,
                format!("{} bytes where its descriptor says {}", location.size, descriptor.size),
            );
        }
        let Some(bytes) = self.document(&member) else { return };
        let actual = Digest::of(&bytes);
        if actual != descriptor.digest {
            return self.problem(
                &member,
                format!("content does not match its digest {} (got {actual})", descriptor.digest),
            );
        }
        let doc = match ManifestDoc::parse(bytes, Some(&descriptor.media_type)) {
            Ok(doc) => doc,
            Err(why) => return self.problem(&member, why),
        };
        match &doc.contents {
            Contents::Index(children) => {
                for child in children.clone() {
                    self.load_manifest(&child, depth + 1);
                }
            }
            Contents::Image { .. } => {
                for blob in doc.blobs() {
                    let name = format!("{}{}", self.prefix, blob.digest.layout_path());
                    match self.tar.member(&name) {
                        Some(location) if location.size == blob.size => {
                            self.blobs.insert(blob.digest.clone(), Blob { member: name, location });
                        }
                        Some(location) => self.problem(
                            &name,
                            format!(
                                "{} bytes where manifest {} says {}",
                                location.size, doc.digest, blob.size
                            ),
                        ),
                        None if self.left_out.get(&blob.digest) == Some(&blob.size) => {}
                        None => self
                            .problem(&name, format!("missing (a blob of manifest {})", doc.digest)),
                    }
                }
            }
        }
        self.manifests.insert(doc.digest.clone(), doc);
    }

    fn docker_archive(&mut self) -> Vec<NamedImage> {
        let list_member = format!("{}manifest.json", self.prefix);
        let Some(bytes) = self.document(&list_member) else { return Vec::new() };
        let entries: Vec<DockerEntry> = match serde_json::from_slice(&bytes) {
            Ok(entries) => entries,
            Err(e) => {
                self.problem(&list_member, format!("not a docker save manifest: {e}"));
                return Vec::new();
            }
        };
        let mut images = Vec::new();
        for (n, entry) in entries.iter().enumerate() {
            let key = format!("{list_member}: [{n}]");
            let Some(doc) = self.docker_image(&key, entry) else { continue };
            let tags = entry.repo_tags.clone().unwrap_or_default();
            if tags.is_empty() {
                self.problem(&key, "the image has no RepoTags, so there is nothing to push it as");
            }
            for tag in tags {
                match Reference::from_str(&tag) {
                    Ok(reference) => {
                        images.push(NamedImage { reference, digest: doc.digest.clone() })
                    }
                    Err(e) => self.problem(&key, e.to_string()),
                }
            }
            self.manifests.insert(doc.digest.clone(), doc);
        }
        images
    }

    /// The schema 2 manifest for one `manifest.json` entry (see the module docs).
    fn docker_image(&mut self, key: &str, entry: &DockerEntry) -> Option<ManifestDoc> {
        let config_member = format!("{}{}", self.prefix, entry.config);
        let config_bytes = self.document(&config_member)?;
        let config_digest = Digest::of(&config_bytes);
        // `docker save` names the config after its digest (`<hex>.json`, or
        // `blobs/sha256/<hex>` since Docker 25): a mismatch is a damaged archive.
        let stem =
            entry.config.rsplit('/').next().unwrap_or(&entry.config).trim_end_matches(".json");
        if stem.len() == 64
            && stem.bytes().all(|b| b.is_ascii_hexdigit())
            && stem != config_digest.hex()
        {
            self.problem(
                &config_member,
                format!("content does not match its digest sha256:{stem} (got {config_digest})"),
            );
            return None;
        }
        let diff_ids = match serde_json::from_slice::<ImageConfig>(&config_bytes) {
            Ok(config) => config.rootfs.diff_ids,
            Err(e) => {
                self.problem(&config_member, format!("not an image config: {e}"));
                return None;
            }
        };
        if diff_ids.len() != entry.layers.len() {
            self.problem(
                key,
                format!(
                    "{} layers but the config lists {} diff_ids",
                    entry.layers.len(),
                    diff_ids.len()
                ),
            );
            return None;
        }
        let config_location = self.tar.member(&config_member)?;
        self.blobs
            .entry(config_digest.clone())
            .or_insert(Blob { member: config_member, location: config_location });
        let mut layers = Vec::new();
        for (layer, diff_id) in entry.layers.iter().zip(diff_ids) {
            let member = format!("{}{layer}", self.prefix);
            let Some(location) = self.tar.member(&member) else {
                self.problem(&member, "missing (a layer listed in manifest.json)");
                return None;
            };
            let (media_type, digest) = match self.layer_digest(&member, location, diff_id) {
                Ok(found) => found,
                Err(e) => {
                    self.problem(&member, e.to_string());
                    return None;
                }
            };
            self.blobs.entry(digest.clone()).or_insert(Blob { member, location });
            layers.push(Descriptor::new(media_type, digest, location.size));
        }
        let manifest = Schema2 {
            schema_version: 2,
            media_type: media::DOCKER_MANIFEST,
            config: Descriptor::new(media::DOCKER_CONFIG, config_digest, config_location.size),
            layers,
        };
        let bytes = serde_json::to_vec(&manifest).ok()?;
        ManifestDoc::parse(bytes, Some(media::DOCKER_MANIFEST)).ok()
    }

    /// An uncompressed layer's digest is its diff_id (checked when the blob is verified); a
    /// gzip'd one has to be hashed now.
    fn layer_digest(
        &self,
        member: &str,
        location: Member,
        diff_id: Digest,
    ) -> Result<(&'static str, Digest), std::io::Error> {
        let mut magic = [0u8; 2];
        let gzip = location.size >= 2
            && self.tar.read_at(location, 0, &mut magic).is_ok()
            && magic == [0x1f, 0x8b];
        if !gzip {
            return Ok((media::DOCKER_LAYER, diff_id));
        }
        tracing::info!("hashing gzip'd layer {member}");
        Ok((media::DOCKER_LAYER_GZIP, self.tar.sha256(location, &|_| {})?))
    }
}
