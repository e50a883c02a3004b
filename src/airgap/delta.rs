//! Delta air-gap archives: `airgap export --since OLD.tar` carries only what the earlier
//! archives did not.
//!
//! From each earlier archive only the table of contents, the image manifests and the charms'
//! checksums are read, never its layers. A blob is left out when an image of an earlier
//! archive used it (carried or itself left out: after that archive's import the registry has
//! every blob of its images); a charm is left out when an earlier archive carried the same
//! file with the same checksum. Manifests, the bundle and the lock are always carried (they
//! are small and name what the import must tag).
//!
//! The delta names what it depends on in `airgap.json` ([`Delta`]): the earlier archives,
//! each blob left out with the images that held it, each charm left out with its checksum.
//! Import checks that every one of them is available before it pushes anything: blobs by
//! `HEAD` in the target registry (mounted from the repositories of the images that held
//! them), charms in a folder given with `--charms-from` (e.g. the earlier import's
//! `charms/`), checked against their checksums.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{read_contents, AirgapError, CHECKSUMS};
use crate::diag::{Problem, Problems};
use crate::images::{Reference, Registry};
use crate::io_error::{IoError, IoResultExt};
use crate::registry::archive::ImageArchive;
use crate::registry::layout::{Content, Entry};
use crate::registry::manifest::Digest;
use crate::registry::tarindex::{Limits, TarIndex};

/// The `format` of a delta archive: distinct, so a charmer that cannot import deltas says so
/// instead of reporting missing blobs.
pub const FORMAT: &str = "charmer-airgap-delta/1";

/// `airgap.json`'s `delta`: what a delta archive was made against and leaves out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    /// The earlier archives, in the order given.
    pub since: Vec<Since>,
    /// Blobs left out, by digest.
    pub blobs: Vec<LeftOutBlob>,
    /// Charms left out.
    pub charms: Vec<LeftOutCharm>,
}

/// One earlier archive a delta was made against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Since {
    /// Its file name.
    pub archive: String,
    /// The digest of its `SHA256SUMS` (which names every member's checksum): its identity.
    pub sums: Digest,
}

/// A blob a delta leaves out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftOutBlob {
    /// Its digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Images of the earlier archives that held it (the registry has it in their
    /// repositories once those archives are imported).
    pub images: Vec<Reference>,
}

/// A charm a delta leaves out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftOutCharm {
    /// Its file name (`<name>_<version>.charm`).
    pub file: String,
    /// Its SHA-256, hex.
    pub sha256: String,
}

/// What earlier archives carried (or relied on), read from their indexes.
#[derive(Debug, Default)]
pub struct Base {
    since: Vec<Since>,
    /// Blob → images of the earlier archives that used it.
    blobs: BTreeMap<Digest, BTreeSet<Reference>>,
    /// (charm file name, SHA-256 hex).
    charms: BTreeSet<(String, String)>,
}

impl Base {
    /// Reads the earlier archives `paths` (their indexes, manifests and charm checksums).
    pub fn read(paths: &[PathBuf]) -> Result<Base, AirgapError> {
        let mut base = Base::default();
        for path in paths {
            base.add(path)?;
        }
        Ok(base)
    }

    fn add(&mut self, path: &Path) -> Result<(), AirgapError> {
        let limits = Limits::default();
        let tar = Arc::new(TarIndex::open(path, &limits)?);
        let label = tar.label().to_string();
        let sums = tar.read(CHECKSUMS, limits.max_document_bytes)?;
        let contents = read_contents(&tar).map_err(|e| match e {
            AirgapError::Invalid(mut problems) => {
                problems.push(
                    Problem::new(&label, "", "is not an air-gap archive charmer can read")
                        .hint("give --since an archive that airgap export wrote"),
                );
                AirgapError::Invalid(problems)
            }
            other => other,
        })?;
        let archive = path.file_name().map(|n| n.to_string_lossy().into_owned());
        self.since.push(Since { archive: archive.unwrap_or(label), sums: Digest::of(&sums) });
        let earlier = contents.delta.unwrap_or_default();
        for member in &contents.charms {
            let Some(location) = tar.member(member) else { continue };
            let sha = tar.sha256(location, &|_| {}).at(tar.label())?;
            let file = member.strip_prefix("charms/").unwrap_or(member).to_string();
            self.charms.insert((file, sha.hex().to_string()));
        }
        self.charms.extend(earlier.charms.into_iter().map(|c| (c.file, c.sha256)));
        let mut left_out = BTreeMap::new();
        for blob in earlier.blobs {
            left_out.insert(blob.digest.clone(), blob.size);
            self.blobs.entry(blob.digest).or_default().extend(blob.images);
        }
        if tar.member("images/oci-layout").is_some() {
            let images =
                ImageArchive::from_tar_without(tar.clone(), "images/", &limits, &left_out)?;
            for image in &images.images {
                for blob in images.closure(&image.digest).1 {
                    self.blobs.entry(blob).or_default().insert(image.reference.clone());
                }
            }
        }
        Ok(())
    }

    /// Whether no earlier archive was given (the export is a full one).
    pub fn is_empty(&self) -> bool {
        self.since.is_empty()
    }

    /// Removes from `entries` the registry blobs and the charms the earlier archives had, and
    /// says what was left out.
    pub fn strip(&self, entries: &mut Vec<Entry>) -> Result<Delta, AirgapError> {
        let mut delta = Delta { since: self.since.clone(), ..Delta::default() };
        let mut kept = Vec::with_capacity(entries.len());
        for entry in entries.drain(..) {
            if let Content::Remote { digest, .. } = &entry.content {
                if let Some(images) = self.blobs.get(digest) {
                    delta.blobs.push(LeftOutBlob {
                        digest: digest.clone(),
                        size: entry.size,
                        images: images.iter().cloned().collect(),
                    });
                    continue;
                }
            }
            if let Some(file) = entry.name.strip_prefix("charms/") {
                let sha = entry_sha256(&entry)?;
                if self.charms.contains(&(file.to_string(), sha.clone())) {
                    delta.charms.push(LeftOutCharm { file: file.to_string(), sha256: sha });
                    continue;
                }
            }
            kept.push(entry);
        }
        *entries = kept;
        Ok(delta)
    }
}

/// The SHA-256 (hex) of a local entry's content.
fn entry_sha256(entry: &Entry) -> Result<String, AirgapError> {
    match &entry.content {
        Content::Bytes(bytes) => Ok(Digest::of(bytes).hex().to_string()),
        Content::File(path) => {
            let io = |source| AirgapError::Io(IoError::new(path, source));
            let bytes = std::fs::read(path).map_err(io)?;
            Ok(Digest::of(&bytes).hex().to_string())
        }
        Content::Remote { digest, .. } => Ok(digest.hex().to_string()),
    }
}

impl Delta {
    /// The blobs left out, digest → size (what the image archive may lack).
    pub fn left_out_sizes(&self) -> BTreeMap<Digest, u64> {
        self.blobs.iter().map(|b| (b.digest.clone(), b.size)).collect()
    }

    /// The blobs left out, each with the repositories of `registry` that hold it once the
    /// earlier archives are imported there.
    pub fn left_out_repositories(&self, registry: &Registry) -> BTreeMap<Digest, BTreeSet<String>> {
        self.blobs
            .iter()
            .map(|b| {
                let repos = b.images.iter().map(|i| i.relocate(registry).repository).collect();
                (b.digest.clone(), repos)
            })
            .collect()
    }

    /// Bytes left out.
    pub fn left_out_bytes(&self) -> u64 {
        self.blobs.iter().map(|b| b.size).sum()
    }

    /// The charms left out, read from `folder` and checked against their checksums: every
    /// one missing or different is named. Returns (member, bytes) pairs.
    pub fn charms_from(
        &self,
        label: &str,
        folder: Option<&Path>,
    ) -> Result<Vec<(String, Vec<u8>)>, AirgapError> {
        if self.charms.is_empty() {
            return Ok(Vec::new());
        }
        let Some(folder) = folder else {
            let names: Vec<&str> = self.charms.iter().map(|c| c.file.as_str()).collect();
            return Err(Problem::new(
                label,
                "airgap.json: delta.charms",
                format!("this delta archive leaves out charms {}", names.join(", ")),
            )
            .hint("give --charms-from with the charms/ folder of the earlier import")
            .into());
        };
        let mut problems = Problems::default();
        let mut found = Vec::new();
        for charm in &self.charms {
            let path = folder.join(&charm.file);
            match crate::charm::read_untrusted(&path) {
                Ok(bytes) if Digest::of(&bytes).hex() == charm.sha256 => {
                    found.push((format!("charms/{}", charm.file), bytes))
                }
                Ok(_) => problems.push(
                    Problem::new(
                        path.display().to_string(),
                        "",
                        format!(
                            "is not the charm this delta was made against (sha256 {})",
                            charm.sha256
                        ),
                    )
                    .hint("give --charms-from the folder of the earlier import"),
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => problems.push(
                    Problem::new(
                        path.display().to_string(),
                        "",
                        "missing: this delta archive leaves that charm out",
                    )
                    .hint("give --charms-from the folder of the earlier import"),
                ),
                Err(source) => return Err(AirgapError::Io(IoError::new(path, source))),
            }
        }
        problems.into_result(found).map_err(AirgapError::from)
    }
}
