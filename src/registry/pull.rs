//! Pulling images from their registries into an OCI image layout archive (`images save`).
//!
//! Manifests are fetched first (all of them, so the archive can be laid out with every size
//! known), then blobs are downloaded in parallel straight into the archive (see
//! [`super::layout`]). Each image is named in `index.json` by its full reference
//! (`io.containerd.image.name`) and its tag (`org.opencontainers.image.ref.name`), the way
//! containerd and `docker save` name them. Blobs shared between images are stored once.

use std::collections::BTreeMap;

use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;

use super::client::{Client, Repo};
use super::layout::{Content, Entry};
use super::manifest::{
    media, Contents, Descriptor, Digest, ManifestDoc, Platform, ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
};
use super::mirrors::Mirrors;
use super::tarindex::Limits;
use super::RegistryError;
use crate::diag::Problem;
use crate::images::Reference;

/// What to pull and how.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Keep only this platform's manifest of multi-platform images (default: keep the whole
    /// index and every platform).
    pub platform: Option<Platform>,
    /// Transfers at once.
    pub jobs: usize,
    /// Registry name (or prefix) → where to reach it (a mirror, or the API host of a
    /// registry whose reference name is not its address).
    pub mirrors: Mirrors,
}

/// Manifests of the images to save, and where each blob can be fetched from.
#[derive(Debug, Default)]
pub struct Pulled {
    /// Each image's reference and the descriptor of its top manifest in the archive.
    pub images: Vec<(Reference, Descriptor)>,
    /// Every manifest and index, by digest.
    pub manifests: BTreeMap<Digest, ManifestDoc>,
    /// Every blob: a repository that has it, and its size.
    pub blobs: BTreeMap<Digest, (Repo, u64)>,
}

impl Pulled {
    /// Adds an image: its reference, the descriptor naming it, and its manifests with the
    /// repository each came from.
    pub(super) fn add(
        &mut self,
        reference: Reference,
        descriptor: Descriptor,
        docs: Vec<(Repo, ManifestDoc)>,
    ) {
        for (repo, doc) in docs {
            for blob in doc.blobs() {
                self.blobs.entry(blob.digest.clone()).or_insert_with(|| (repo.clone(), blob.size));
            }
            self.manifests.insert(doc.digest.clone(), doc);
        }
        self.images.push((reference, descriptor));
    }

    /// Total bytes of blobs (what will be downloaded).
    pub fn blob_bytes(&self) -> u64 {
        self.blobs.values().map(|(_, size)| size).sum()
    }

    /// The archive members of an OCI image layout holding these images, under `prefix`
    /// (`""`, or a folder ending in `/`).
    pub fn layout_entries(&self, prefix: &str) -> Vec<Entry> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Index<'a> {
            schema_version: u32,
            media_type: &'static str,
            manifests: Vec<&'a Descriptor>,
        }
        // `images` is sorted by reference (as `fetch_manifests` in save.rs sorts it), so index.json is too.
        let named: Vec<&Descriptor> = self.images.iter().map(|(_, d)| d).collect();
        let index = Index { schema_version: 2, media_type: media::OCI_INDEX, manifests: named };
        let mut entries = vec![
            Entry::bytes(
                format!("{prefix}oci-layout"),
                br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
            ),
            Entry::bytes(
                format!("{prefix}index.json"),
                serde_json::to_vec(&index).unwrap_or_default(),
            ),
        ];
        for doc in self.manifests.values() {
            entries.push(Entry::bytes(
                format!("{prefix}{}", doc.digest.layout_path()),
                doc.bytes.clone(),
            ));
        }
        for (digest, (repo, size)) in &self.blobs {
            let content = Content::Remote { repo: repo.clone(), digest: digest.clone() };
            entries.push(Entry {
                name: format!("{prefix}{}", digest.layout_path()),
                size: *size,
                content,
            });
        }
        entries
    }
}

/// Fetches the manifests of `references` (deduplicated), keeping one platform if asked.
pub(super) async fn fetch_images(
    client: &Client,
    references: &[Reference],
    options: &PullOptions,
) -> Result<Pulled, RegistryError> {
    let mut unique: Vec<&Reference> = references.iter().collect();
    unique.sort();
    unique.dedup();
    // Every image without a host to ask is reported before any request.
    let mut problems = crate::diag::Problems::default();
    for reference in &unique {
        if let Err(problem) = source_repo(reference, &options.mirrors) {
            problems.push(problem);
        }
    }
    if !problems.is_empty() {
        return Err(RegistryError::Invalid(problems));
    }
    let fetched: Vec<Fetched> =
        stream::iter(unique.into_iter().map(|reference| fetch_one(client, reference, options)))
            .buffered(options.jobs.max(1))
            .try_collect()
            .await?;
    let mut pulled = Pulled::default();
    for (reference, descriptor, docs) in fetched {
        pulled.add(reference, descriptor, docs);
    }
    Ok(pulled)
}

/// Where to ask for `reference`: its registry, or where the mirror table sends it (the
/// longest matching prefix, [`super::mirrors::lookup`]). `docker.io` is a name, not the host
/// serving its registry API, and charmer does not hard-code that host: such an image without
/// a mirror is a problem naming it.
pub fn source_repo(reference: &Reference, mirrors: &Mirrors) -> Result<Repo, Problem> {
    if let Some((host, name)) =
        super::mirrors::lookup(mirrors, &reference.registry, &reference.repository)
    {
        return Ok(Repo { host, name });
    }
    if reference.registry == crate::images::DEFAULT_REGISTRY {
        return Err(Problem::new(
            reference.to_string(),
            "",
            "docker.io images are pulled through a mirror",
        )
        .hint("give --mirror docker.io=HOST[:PORT][/PATH] (a pull-through mirror, or Docker Hub's registry API host), or a [[registry.mirror]] for docker.io in registries.conf"));
    }
    Ok(Repo { host: reference.registry.clone(), name: reference.repository.clone() })
}

/// One image: its reference, the descriptor naming it in `index.json`, and its manifests
/// (top first) with the repository they came from.
type Fetched = (Reference, Descriptor, Vec<(Repo, ManifestDoc)>);

/// Fetches one image's manifests (see [`Fetched`]).
async fn fetch_one(
    client: &Client,
    reference: &Reference,
    options: &PullOptions,
) -> Result<Fetched, RegistryError> {
    let repo = source_repo(reference, &options.mirrors)?;
    let wanted = reference.digest.clone().unwrap_or_else(|| reference.tag_or_latest().to_string());
    let max = Limits::default().max_document_bytes;
    let mut top = client.retrying(|| client.get_manifest(&repo, &wanted, max)).await?;
    let mut platform = None;
    if let (Some(want), Contents::Index(children)) = (&options.platform, &top.contents) {
        let Some(child) =
            children.iter().find(|c| c.platform.as_ref().is_some_and(|p| want.selects(p)))
        else {
            let offered: Vec<String> = children
                .iter()
                .filter_map(|c| c.platform.as_ref().map(ToString::to_string))
                .collect();
            let problem = Problem::new(
                reference.to_string(),
                "",
                format!("has no {want} image (it has: {})", offered.join(", ")),
            );
            return Err(problem.into());
        };
        platform = child.platform.clone();
        let digest = child.digest.to_string();
        top = client.retrying(|| client.get_manifest(&repo, &digest, max)).await?;
    }
    let mut descriptor = named(&top, reference);
    descriptor.platform = platform;
    let docs = with_children(client, &repo, top, reference).await?;
    Ok((reference.clone(), descriptor, docs))
}

/// The descriptor naming `top` as `reference` in an archive's `index.json` (full name and
/// tag, as containerd names images).
pub(super) fn named(top: &ManifestDoc, reference: &Reference) -> Descriptor {
    let mut descriptor = top.descriptor();
    descriptor.annotations.insert(ANNOTATION_IMAGE_NAME.to_string(), reference.to_string());
    if let Some(tag) = &reference.tag {
        descriptor.annotations.insert(ANNOTATION_REF_NAME.to_string(), tag.clone());
    }
    descriptor
}

/// `top` and, when it is an index, every manifest under it (fetched from `repo` by digest),
/// top first; at most 64 (a bound on hostile nesting).
pub(super) async fn with_children(
    client: &Client,
    repo: &Repo,
    top: ManifestDoc,
    reference: &Reference,
) -> Result<Vec<(Repo, ManifestDoc)>, RegistryError> {
    let max = Limits::default().max_document_bytes;
    let mut docs = Vec::new();
    let mut pending = vec![top];
    while let Some(doc) = pending.pop() {
        if let Contents::Index(children) = &doc.contents {
            if docs.len() > 64 {
                return Err(Problem::new(
                    reference.to_string(),
                    "",
                    "an index of more than 64 manifests (nested too deep?)",
                )
                .into());
            }
            for child in children {
                let digest = child.digest.to_string();
                pending.push(client.retrying(|| client.get_manifest(repo, &digest, max)).await?);
            }
        }
        docs.push((repo.clone(), doc));
    }
    Ok(docs)
}
