//! A folder `airgap import` unpacked, checked again before it is used: with `--verify-key`,
//! `deploy` (and `check`, `render`, `images list`) on such a folder re-authenticate what
//! they are about to apply against the signed manifest the folder kept under `airgap/`.
//!
//! Checked: the signature of `airgap/SHA256SUMS`; `airgap/airgap.json`, the carried lock
//! and `airgap/images/index.json` against it; the bundle file and the overlays given (they
//! must be exactly the carried ones, in order) byte for byte; every charm in `charms/`
//! ([`Unpacked::verified_charms`]); then, once resolved, that every application runs the
//! charm version and archive the signed lock names, and every image is pinned to the digest
//! the archive carried for it ([`Unpacked::check`]). The pinned `bundle.lock` and
//! `retagged-images.txt` the import wrote are not signed; the image digests they lead to are
//! what is checked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{parse_lock, signature, AirgapError, CHECKSUMS, CONTENTS, IMAGE_INDEX};
use super::{MANIFEST_DIR, SIGNATURE};
use crate::diag::{Problem, Problems};
use crate::images::Reference;
use crate::io_error::IoResultExt;
use crate::publish::{sums, PublicKey};
use crate::registry::manifest::ANNOTATION_IMAGE_NAME;
use crate::resolve::{Lock, Model};

/// An imported folder whose manifest verified.
#[derive(Debug)]
pub struct Unpacked {
    folder: PathBuf,
    bundle: String,
    charms: BTreeSet<String>,
    lock: Option<Lock>,
    images: BTreeMap<Reference, String>,
}

/// The folder `airgap import` unpacked `bundle` (a bundle file) into, if it was (the empty
/// path for the current folder).
pub fn imported_folder(bundle: &Path) -> Option<PathBuf> {
    let folder = bundle.parent().unwrap_or(Path::new(""));
    folder.join(MANIFEST_DIR).join(CHECKSUMS).is_file().then(|| folder.to_path_buf())
}

/// Without `--verify-key` nothing of an imported folder is checked, but one mistake is
/// cheap to catch: resolving its bundle without the overlays it was exported with (they carry
/// the export's `--config` values), which silently reverts those values to the defaults.
/// Returns a warning naming the overlays left out, read from the folder's `airgap.json`
/// (unauthenticated here: a warning, never a decision).
pub fn missing_overlays(folder: &Path, overlays: &[PathBuf]) -> Option<Problem> {
    let kept = folder.join(MANIFEST_DIR).join(CONTENTS);
    let bytes =
        crate::contract::read_bounded(&kept, crate::contract::MAX_TEXT_BYTES, "airgap.json")
            .ok()?;
    let contents = super::parse_contents(&kept.display().to_string(), &bytes).ok()?;
    let missing: Vec<String> = contents
        .overlays
        .iter()
        .map(|member| folder.join(member.strip_prefix("bundle/").unwrap_or(member)))
        .filter(|carried| !overlays.iter().any(|given| same_file(given, carried)))
        .map(|carried| carried.display().to_string())
        .collect();
    if missing.is_empty() {
        return None;
    }
    Some(
        Problem::new(
            folder.display().to_string(),
            "",
            format!(
                "was exported with {} that {} not given now: the values {} set (the export's \
                 --config among them) do not apply",
                if missing.len() == 1 { "an overlay" } else { "overlays" },
                if missing.len() == 1 { "is" } else { "are" },
                if missing.len() == 1 { "it" } else { "they" },
            ),
        )
        .hint(format!(
            "add {}",
            missing.iter().map(|m| format!("--overlay {m}")).collect::<Vec<_>>().join(" ")
        )),
    )
}

/// The `index.json` fields that name the carried images.
#[derive(Deserialize)]
struct ImageIndex {
    manifests: Vec<IndexEntry>,
}

#[derive(Deserialize)]
struct IndexEntry {
    digest: String,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// The kept `SHA256SUMS`, signature checked.
struct Manifest {
    /// `<folder>/airgap`, for messages.
    label: String,
    sums: BTreeMap<String, String>,
}

impl Manifest {
    /// The content of `path` when it is `member` as signed; otherwise `None`, with a problem.
    fn read(
        &self,
        path: &Path,
        member: &str,
        problems: &mut Problems,
    ) -> Result<Option<Vec<u8>>, AirgapError> {
        let bytes = read(path)?;
        let file = path.display().to_string();
        let signed = format!("{}/{CHECKSUMS}", self.label);
        match self.sums.get(member) {
            Some(listed) if *listed == crate::digest::sha256_hex(&bytes) => return Ok(Some(bytes)),
            Some(_) => problems.push(
                Problem::new(file, "", format!("differs from {member} as signed in {signed}"))
                    .hint("the folder was changed after import: import the signed archive again"),
            ),
            None => problems.push(Problem::new(file, "", format!("{member} is not in {signed}"))),
        }
        Ok(None)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, AirgapError> {
    Ok(crate::charm::read_untrusted(path).at(path)?)
}

/// Whether two paths name the same existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

impl Unpacked {
    /// Checks the signed manifest of `folder` with `key`, and `bundle` and `overlays` (the
    /// files about to be resolved) against it. Every problem is reported.
    pub fn open(
        folder: &Path,
        key: &PublicKey,
        bundle: &Path,
        overlays: &[PathBuf],
    ) -> Result<Unpacked, AirgapError> {
        let kept = folder.join(MANIFEST_DIR);
        let label = kept.display().to_string();
        let sums = read(&kept.join(CHECKSUMS))?;
        let sig = kept.join(SIGNATURE);
        let sig = if sig.is_file() { Some(read(&sig)?) } else { None };
        signature::authenticate(&label, &sums, sig.as_deref(), Some(key))?;
        let sums = sums::parse(&format!("{label}/{CHECKSUMS}"), &String::from_utf8_lossy(&sums))?;
        let manifest = Manifest { label, sums };
        let label = &manifest.label;

        let mut problems = Problems::default();
        let Some(contents) = manifest.read(&kept.join(CONTENTS), CONTENTS, &mut problems)? else {
            return Err(problems.into());
        };
        let contents = super::parse_contents(label, &contents)?;
        let lock = match &contents.lock {
            Some(member) => match manifest.read(&kept.join(member), member, &mut problems)? {
                Some(bytes) => Some(parse_lock(
                    &kept.join(member).display().to_string(),
                    &String::from_utf8_lossy(&bytes),
                )?),
                None => None,
            },
            None => None,
        };
        let mut images = BTreeMap::new();
        let index = match manifest.sums.contains_key(IMAGE_INDEX) {
            true => manifest.read(&kept.join(IMAGE_INDEX), IMAGE_INDEX, &mut problems)?,
            false => None,
        };
        if let Some(index) = index {
            let index: ImageIndex = serde_json::from_slice(&index).map_err(|e| {
                Problem::new(label, IMAGE_INDEX, format!("not an image index: {e}"))
            })?;
            for entry in index.manifests {
                let name =
                    entry.annotations.get(ANNOTATION_IMAGE_NAME).map(|n| n.parse::<Reference>());
                if let Some(Ok(reference)) = name {
                    // An image exported with --pin-digests is named with its digest, while
                    // the bundle unpacked here names it by tag: it is found either way.
                    if reference.digest.is_some() {
                        let bare = Reference { digest: None, ..reference.clone() };
                        images.entry(bare).or_insert_with(|| entry.digest.clone());
                    }
                    images.insert(reference, entry.digest);
                }
            }
        }

        let unpacked = |member: &str| folder.join(member.strip_prefix("bundle/").unwrap_or(member));
        let signed_bundle = unpacked(&contents.bundle);
        if same_file(bundle, &signed_bundle) {
            manifest.read(bundle, &contents.bundle, &mut problems)?;
        } else {
            problems.push(
                Problem::new(
                    bundle.display().to_string(),
                    "",
                    format!(
                        "is not the bundle the signed archive carried ({})",
                        signed_bundle.display()
                    ),
                )
                .hint("deploy the imported bundle file"),
            );
        }
        for (i, member) in contents.overlays.iter().enumerate() {
            let signed = unpacked(member);
            match overlays.get(i) {
                Some(given) if same_file(given, &signed) => {
                    manifest.read(given, member, &mut problems)?;
                }
                Some(given) => problems.push(
                    Problem::new(
                        given.display().to_string(),
                        "",
                        format!(
                            "is not overlay {} of the signed archive ({})",
                            i + 1,
                            signed.display()
                        ),
                    )
                    .hint("give the carried overlays, in the order the import printed"),
                ),
                None => problems.push(
                    Problem::new(
                        label,
                        CONTENTS,
                        format!(
                            "the signed archive applies overlay {}; it was not given",
                            signed.display()
                        ),
                    )
                    .hint(format!("add --overlay {}", signed.display())),
                ),
            }
        }
        for extra in overlays.iter().skip(contents.overlays.len()) {
            problems.push(
                Problem::new(
                    extra.display().to_string(),
                    "",
                    "is not an overlay of the signed archive",
                )
                .hint("with --verify-key only the carried overlays apply"),
            );
        }
        let mut charms = BTreeSet::new();
        for member in &contents.charms {
            if let Some(bytes) = manifest.read(&folder.join(member), member, &mut problems)? {
                charms.insert(crate::digest::sha256_hex(&bytes));
            }
        }
        // A delta's left-out charms (copied in with --charms-from) are authenticated by the
        // SHA-256 its signed airgap.json records for them.
        for left_out in contents.delta.iter().flat_map(|d| &d.charms) {
            let path = folder.join("charms").join(&left_out.file);
            match crate::charm::read_untrusted(&path) {
                Ok(bytes) if crate::digest::sha256_hex(&bytes) == left_out.sha256 => {
                    charms.insert(left_out.sha256.clone());
                }
                _ => problems.push(Problem::new(
                    path.display().to_string(),
                    "",
                    format!(
                        "is not the charm the signed delta archive names (sha256 {})",
                        left_out.sha256
                    ),
                )),
            }
        }
        problems.into_result(())?;
        let bundle = bundle.display().to_string();
        Ok(Unpacked { folder: folder.to_path_buf(), bundle, charms, lock, images })
    }

    /// SHA-256s of the folder's charms, authenticated by the signed manifest.
    pub fn verified_charms(&self) -> BTreeSet<String> {
        self.charms.clone()
    }

    /// Checks a model resolved from the folder: every application runs the charm (name,
    /// version and archive) the signed lock names, and every image is pinned to the digest
    /// the signed archive carried for it.
    pub fn check(&self, model: &Model) -> Result<(), AirgapError> {
        let label = self.bundle.as_str();
        let mut problems = Problems::default();
        for app in model.applications.values() {
            let key = format!("applications.{}", app.name);
            if let Some(lock) = &self.lock {
                let (charm, version, sha256) =
                    (app.charm.name(), app.charm.version_label(), app.charm.sha256());
                let locked = lock.applications.get(&app.name);
                let signed = locked.map(|l| (l.charm.as_str(), &l.version, &l.sha256));
                match signed {
                    Some(signed) if signed == (charm, &version, &sha256) => {}
                    Some((l_charm, l_version, l_sha256)) => problems.push(Problem::new(
                        label,
                        &key,
                        format!(
                            "runs {charm} {version} (sha256 {sha256}); the signed lock names \
                             {l_charm} {l_version} (sha256 {l_sha256})"
                        ),
                    )),
                    None => problems.push(Problem::new(label, &key, "is not in the signed lock")),
                }
            }
            for (resource, image) in &app.images {
                let key = format!("{key}.resources.{resource}");
                let mut source = image.source.clone();
                let carried = self.images.get(&source).or_else(|| {
                    source.digest = None;
                    self.images.get(&source)
                });
                let map = self.folder.join("retagged-images.txt");
                match (carried, &image.target.digest) {
                    (Some(carried), Some(digest)) if carried == digest => {}
                    (Some(carried), _) => problems.push(
                        Problem::new(
                            label,
                            &key,
                            format!(
                                "{} is not pinned to the digest the signed archive carried \
                                 for {} ({carried})",
                                image.target, image.source
                            ),
                        )
                        .hint(format!("pass --image-map {}", map.display())),
                    ),
                    (None, _) => problems.push(Problem::new(
                        label,
                        &key,
                        format!("{} is not an image the signed archive carried", image.source),
                    )),
                }
            }
        }
        problems.into_result(()).map_err(AirgapError::from)
    }
}
