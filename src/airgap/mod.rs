//! One file to carry into an air gap: the bundle and its overlays, every charm, the images
//! and the lock, with a checksum for every member.
//!
//! Archive layout (an uncompressed tar, members sorted, deterministic):
//! ```text
//! SHA256SUMS                 sha256sum format: "<hex>  <member>" for every other member
//! SHA256SUMS.sig             with --sign-key: its minisign signature (see [`signature`])
//! airgap.json                what is where (see [`Contents`])
//! bundle.lock                the lock file, if one was given
//! bundle/<file>              the bundle, then its overlays
//! charms/<file>.charm        every charm
//! images/oci-layout          the images, as an OCI image layout (what `images save` writes)
//! images/index.json
//! images/blobs/sha256/<hex>
//! sbom.cdx.json              after the sorted members: the bill of materials (see [`sbom`])
//! ```
//! The SBOM, then `SHA256SUMS.sig` and `SHA256SUMS`, come last: they are made from the
//! archive as written.
//! `tar -xf` then `sha256sum -c SHA256SUMS` checks it without charmer; `charmer images push`
//! takes the archive as is (it finds the layout under `images/`).
//!
//! Import checks the signature (with a verify key) and every checksum before anything else
//! (a failure names what failed and nothing is pushed or written), validates the charms and
//! stages the output folder ([`stage`]); then it pushes the images, and only then moves the
//! folder into place ([`Staged::finish`]). Between the two, the caller resolves a staged bundle of
//! operator charms (`ops::airgap::import` does), so one that cannot be deployed stops the
//! import before anything is pushed: this module resolves nothing itself.
//! The folder keeps the signed manifest under `airgap/` ([`MANIFEST_DIR`]) so the files it
//! deploys can be checked again later. Image blobs are the exception that makes import one
//! pass over the archive: their names are their digests, and the push hashes each blob as it
//! uploads it and commits none unless all match (a damaged layer leaves nothing in the
//! registry and nothing unpacked).
//!
//! A delta archive (`export --since OLD.tar`, see [`delta`]) leaves out the blobs and charms
//! earlier archives had, and says so in `airgap.json`; `SHA256SUMS` lists what it carries.

pub mod delta;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub mod sbom;
pub mod signature;
pub mod unpacked;

use serde::{Deserialize, Serialize};

use self::delta::{Base, Delta};
use crate::charm::archive::{read_zip, unsafe_name_reason};
use crate::charm::{Charm, CharmError, Limits as CharmLimits, Origin};
use crate::diag::{Problem, Problems};
use crate::images::{Reference, Registry};
use crate::io_error::{IoError, IoResultExt};
use crate::publish::oci::PushedCharm;
use crate::publish::{PublicKey, SecretKey};
use crate::registry::archive::ImageArchive;
use crate::registry::client::Client;
use crate::registry::cosign;
use crate::registry::layout::{write_tar, write_tar_with_tail, Content, Entry};
use crate::registry::manifest::Digest;
use crate::registry::progress::{Progress, Task};
use crate::registry::pull::PullOptions;
use crate::registry::push::{push, PushOptions, PushReport};
use crate::registry::save::fetch_manifests;
use crate::registry::tarindex::{Limits, TarIndex};
use crate::registry::RegistryError;
use crate::resolve::{Lock, Model};
pub use signature::{Authenticity, SIGNATURE};

/// Why an export or import failed.
#[derive(Debug, thiserror::Error)]
pub enum AirgapError {
    /// The inputs or the archive are invalid; every problem is listed.
    #[error("{0}")]
    Invalid(Problems),
    /// A file could not be read or written.
    #[error(transparent)]
    Io(#[from] crate::io_error::IoError),
    /// Moving images failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Publishing the charms to `--charms-registry` failed.
    #[error(transparent)]
    Publish(#[from] crate::publish::PublishError),
}

impl From<Problems> for AirgapError {
    fn from(p: Problems) -> Self {
        AirgapError::Invalid(p)
    }
}

impl From<Problem> for AirgapError {
    fn from(p: Problem) -> Self {
        AirgapError::Invalid(p.into())
    }
}

/// The members holding the checksums and the table of contents.
pub const CHECKSUMS: &str = "SHA256SUMS";
const CONTENTS: &str = "airgap.json";
const IMAGE_INDEX: &str = "images/index.json";
/// The folder of an unpacked archive that keeps its manifest: `SHA256SUMS`, its signature,
/// `airgap.json`, the lock as carried and `images/index.json`, under their member names.
pub const MANIFEST_DIR: &str = "airgap";
const FORMAT: &str = "charmer-airgap/1";

/// `airgap.json`: which member is what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contents {
    /// Always `charmer-airgap/1`.
    pub format: String,
    /// The bundle file's member.
    pub bundle: String,
    /// Overlay members, in the order they apply.
    pub overlays: Vec<String>,
    /// Charm members.
    pub charms: Vec<String>,
    /// The lock file's member, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
    /// The images, by original reference.
    pub images: Vec<Reference>,
    /// Images carried beside the bundle's (`export --image`, `--images-from`): no charm
    /// names them (Juju's agent images, a base image the charms pull at run time).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_images: Vec<Reference>,
    /// For a delta archive (format `charmer-airgap-delta/1`): what it was made against and
    /// what it leaves out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<Delta>,
}

impl Contents {
    /// Every member it names: bundle, overlays, charms, lock.
    pub fn members(&self) -> impl Iterator<Item = &String> {
        std::iter::once(&self.bundle).chain(&self.overlays).chain(&self.charms).chain(&self.lock)
    }
}

/// A file to carry: one on disk, or bytes made for the archive (a charm packed from its
/// source folder, a lock computed from the model).
#[derive(Debug, Clone)]
pub enum Carried {
    /// A file, carried under its own name.
    File(PathBuf),
    /// Bytes, carried under `name`.
    Bytes {
        /// File name in the archive.
        name: String,
        /// The content.
        bytes: Vec<u8>,
    },
}

impl Carried {
    fn name(&self) -> Option<String> {
        match self {
            Carried::File(path) => path.file_name().and_then(|n| n.to_str()).map(str::to_string),
            Carried::Bytes { name, .. } => Some(name.clone()),
        }
    }

    fn label(&self) -> String {
        match self {
            Carried::File(path) => path.display().to_string(),
            Carried::Bytes { name, .. } => name.clone(),
        }
    }
}

/// What to put in an air-gap archive (a resolved bundle's files, charms and images).
#[derive(Debug, Clone)]
pub struct ExportInputs {
    /// The bundle file.
    pub bundle: PathBuf,
    /// Its overlays, in order.
    pub overlays: Vec<PathBuf>,
    /// Every charm the bundle resolved to, as a `.charm` archive.
    pub charms: Vec<Carried>,
    /// Every image the charms run.
    pub images: Vec<Reference>,
    /// Images to carry beside them (see [`Contents::extra_images`]); one the charms run
    /// already is carried once, as theirs.
    pub extra_images: Vec<Reference>,
    /// The lock, if any.
    pub lock: Option<Carried>,
    /// An overlay made of the `--config` and `--config-file` values given at export, applied
    /// after the carried overlays on the air-gapped side (see [`export_overlay`]).
    pub config_overlay: Option<Vec<u8>>,
    /// Sign the archive's `SHA256SUMS` with this key.
    pub sign_key: Option<SecretKey>,
    /// Refuse any image without a cosign signature by one of these keys.
    pub verify_images: Vec<cosign::PublicKey>,
}

/// The member name of the overlay holding the values given on the command line at export.
pub const EXPORT_OVERLAY: &str = "charmer-export-config.yaml";

/// An overlay holding every option value of `model` that came from `--config` or
/// `--config-file` (already typed and with includes read), so what export was asked for
/// travels with the bundle; `None` when there is none. A non-empty secret value set by an
/// overlay, a values file or the command line is refused: it would travel in clear text, so
/// it must be given on the air-gapped side (an empty one marks the option as set there, which
/// the Juju script turns into an environment variable to fill in).
pub fn export_overlay(model: &Model) -> Result<Option<Vec<u8>>, Problems> {
    use crate::bundle::Source;
    let mut problems = Problems::default();
    let mut applications = serde_yaml::Mapping::new();
    for app in model.applications.values() {
        let mut options = serde_yaml::Mapping::new();
        for (name, setting) in &app.config {
            if !matches!(
                setting.source,
                Source::CommandLine | Source::ConfigFile(_) | Source::Overlay(_)
            ) {
                continue;
            }
            if matches!(&setting.value, crate::charm::ConfigValue::Secret(v) if !v.is_empty()) {
                problems.push(
                    Problem::new(
                        setting.source.file_label(),
                        format!("applications.{}.options.{name}", app.name),
                        "a secret value cannot be carried in an air-gap archive",
                    )
                    .hint(format!("set it to '' at export and give it on the air-gapped side (--config {}.{name}=@FILE, or the Juju script's environment variable)", app.name)),
                );
            } else if !matches!(setting.source, Source::Overlay(_)) {
                options.insert(name.clone().into(), setting.value.to_yaml());
            }
        }
        if !options.is_empty() {
            let mut body = serde_yaml::Mapping::new();
            body.insert("options".into(), options.into());
            applications.insert(app.name.clone().into(), body.into());
        }
    }
    problems.into_result(())?;
    if applications.is_empty() {
        return Ok(None);
    }
    let mut top = serde_yaml::Mapping::new();
    top.insert("applications".into(), applications.into());
    let body = serde_yaml::to_string(&top).unwrap_or_default();
    Ok(Some(
        format!("# Written by charmer airgap export: the --config and --config-file values given there.\n{body}")
            .into_bytes(),
    ))
}

impl ExportInputs {
    /// What to carry for a resolved bundle: its bundle file and `overlays`, each charm once
    /// (local archives as they are; source folders, and archives fetched from a published
    /// URL or registry, packed: publishing packs them the same way), its images, and its lock.
    pub fn of_model(model: &Model, overlays: &[PathBuf]) -> Result<ExportInputs, Problems> {
        let mut charms: BTreeMap<(String, String), Carried> = BTreeMap::new();
        for app in model.applications.values() {
            let charm = &app.charm;
            charms.entry((charm.name().to_string(), charm.version_label())).or_insert_with(|| {
                match &charm.origin {
                    Origin::Archive { path, .. } if path.is_file() => Carried::File(path.clone()),
                    Origin::Archive { .. } | Origin::Dir(_) => {
                        Carried::Bytes { name: charm.archive_name(), bytes: charm.pack() }
                    }
                }
            });
        }
        Ok(ExportInputs {
            config_overlay: export_overlay(model)?,
            bundle: model.bundle_file.clone(),
            overlays: overlays.to_vec(),
            charms: charms.into_values().collect(),
            images: model.image_list().images.into_iter().map(|i| i.source).collect(),
            extra_images: Vec::new(),
            lock: Some(Carried::Bytes {
                name: "bundle.lock".into(),
                bytes: Lock::of(model).to_yaml().into_bytes(),
            }),
            sign_key: None,
            verify_images: Vec::new(),
        })
    }
}

/// Writes the air-gap archive `out` (see the module docs): validates every input (charms
/// included) and fetches every image manifest before writing anything. With a non-empty
/// `base` (earlier archives) it writes a delta that leaves out what they had.
pub async fn export(
    client: &Client,
    inputs: &ExportInputs,
    base: &Base,
    pull: &PullOptions,
    out: &Path,
    progress: &dyn Progress,
) -> Result<Contents, AirgapError> {
    let mut problems = Problems::default();
    let mut names = BTreeSet::new();
    let mut member = |label: String,
                      name: Option<String>,
                      folder: &str,
                      problems: &mut Problems|
     -> Option<String> {
        match name.map(|n| format!("{folder}{n}")) {
            Some(name) if names.insert(name.clone()) => Some(name),
            Some(name) => {
                problems.push(
                    Problem::new(label, "", format!("another input is also called {name}"))
                        .hint("rename one of them"),
                );
                None
            }
            None => {
                problems.push(Problem::new(label, "", "has no UTF-8 file name"));
                None
            }
        }
    };
    let file_name = |path: &Path| path.file_name().and_then(|n| n.to_str()).map(str::to_string);
    let bundle = member(
        inputs.bundle.display().to_string(),
        file_name(&inputs.bundle),
        "bundle/",
        &mut problems,
    );
    let mut overlays: Vec<Option<String>> = inputs
        .overlays
        .iter()
        .map(|o| member(o.display().to_string(), file_name(o), "bundle/", &mut problems))
        .collect();
    let config_overlay = inputs.config_overlay.as_ref().and_then(|_| {
        member(
            EXPORT_OVERLAY.to_string(),
            Some(EXPORT_OVERLAY.to_string()),
            "bundle/",
            &mut problems,
        )
    });
    let charms: Vec<Option<String>> = inputs
        .charms
        .iter()
        .map(|c| member(c.label(), c.name(), "charms/", &mut problems))
        .collect();
    for charm in &inputs.charms {
        let Carried::File(path) = charm else { continue };
        match Charm::from_archive(path, &CharmLimits::default()) {
            Ok(_) => {}
            Err(CharmError::Invalid(p)) => problems.extend(p),
            Err(CharmError::Io(e)) => return Err(AirgapError::Io(e)),
        }
    }
    problems.into_result(())?;

    let mut entries = Vec::new();
    let files = std::iter::once(&inputs.bundle)
        .chain(&inputs.overlays)
        .map(|p| Carried::File(p.clone()))
        .zip(std::iter::once(&bundle).chain(&overlays));
    let carried = files.chain(inputs.charms.iter().cloned().zip(&charms));
    let lock = inputs.lock.as_ref().map(|_| "bundle.lock".to_string());
    for (source, name) in carried.chain(inputs.lock.iter().cloned().zip(std::iter::once(&lock))) {
        let Some(name) = name else { continue };
        entries.push(match source {
            Carried::File(path) => {
                let size = std::fs::metadata(&path).at(&path)?.len();
                Entry { name: name.clone(), size, content: Content::File(path) }
            }
            Carried::Bytes { bytes, .. } => Entry::bytes(name.clone(), bytes),
        });
    }
    if let (Some(bytes), Some(name)) = (&inputs.config_overlay, &config_overlay) {
        entries.push(Entry::bytes(name.clone(), bytes.clone()));
        overlays.push(config_overlay.clone());
    }
    let mut extra_images: Vec<Reference> = Vec::new();
    for image in &inputs.extra_images {
        if !inputs.images.contains(image) && !extra_images.contains(image) {
            extra_images.push(image.clone());
        }
    }
    let every: Vec<Reference> = inputs.images.iter().chain(&extra_images).cloned().collect();
    let pulled = fetch_manifests(client, &every, pull).await?;
    entries.extend(pulled.layout_entries("images/"));
    let delta = if base.is_empty() { None } else { Some(base.strip(&mut entries)?) };
    let carried: BTreeSet<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    let contents = Contents {
        format: if delta.is_some() { delta::FORMAT } else { FORMAT }.to_string(),
        bundle: bundle.unwrap_or_default(),
        overlays: overlays.into_iter().flatten().collect(),
        charms: charms.into_iter().flatten().filter(|c| carried.contains(c.as_str())).collect(),
        lock,
        images: inputs.images.clone(),
        extra_images,
        delta,
    };
    entries.push(Entry::bytes(CONTENTS, serde_json::to_vec_pretty(&contents).unwrap_or_default()));
    // The SBOM is made from the archive as written (no layer is downloaded twice), then
    // sealed with everything else.
    let mut to_seal = entries.clone();
    let tail = |written: &Path| -> Result<Vec<(String, Vec<u8>)>, AirgapError> {
        let tar = Arc::new(TarIndex::open(written, &Limits::default())?);
        let images = sbom::carried_images(&tar, &contents)?;
        verify_images(images.as_ref(), &inputs.verify_images)?;
        let bom = sbom::of_archive(&tar, &contents, images.as_ref())?;
        for warning in &bom.warnings {
            tracing::warn!("{}", crate::diag::escape_controls(warning));
        }
        let document = crate::sbom::cyclonedx::write(&bom);
        to_seal.push(Entry::bytes(sbom::SBOM, document.clone()));
        let mut tail = vec![(sbom::SBOM.to_string(), document)];
        tail.extend(seals(&to_seal, inputs.sign_key.as_ref())?);
        Ok(tail)
    };
    write_tar_with_tail(entries, out, client, pull.jobs, progress, tail).await?;
    Ok(contents)
}

/// Adds `SHA256SUMS` for `entries` and, with `key`, its signature.
fn seal(entries: &mut Vec<Entry>, key: Option<&SecretKey>) -> Result<(), AirgapError> {
    let sealed = seals(entries, key)?;
    entries.extend(sealed.into_iter().map(|(name, bytes)| Entry::bytes(name, bytes)));
    Ok(())
}

/// `SHA256SUMS` for `entries` and, with `key`, its signature, as `(member, bytes)`.
fn seals(
    entries: &[Entry],
    key: Option<&SecretKey>,
) -> Result<Vec<(String, Vec<u8>)>, AirgapError> {
    let sums = checksums(entries)?.into_bytes();
    let mut sealed = Vec::new();
    if let Some(key) = key {
        sealed.push((SIGNATURE.to_string(), signature::sign(key, &sums)));
    }
    sealed.push((CHECKSUMS.to_string(), sums));
    Ok(sealed)
}

/// Pulls `references` into an image archive at `out`, as [`crate::registry::save::save`]
/// does; with `key`, the archive also gets `SHA256SUMS` and its signature, checked by
/// [`open_verified`].
pub async fn save_images(
    client: &Client,
    references: &[Reference],
    pull: &PullOptions,
    out: &Path,
    key: Option<&SecretKey>,
    progress: &dyn Progress,
) -> Result<crate::registry::pull::Pulled, AirgapError> {
    let Some(key) = key else {
        return Ok(crate::registry::save::save(client, references, pull, out, progress).await?);
    };
    let pulled = fetch_manifests(client, references, pull).await?;
    let mut entries = pulled.layout_entries("");
    seal(&mut entries, Some(key))?;
    write_tar(entries, out, client, pull.jobs, progress).await?;
    Ok(pulled)
}

/// Opens an archive signed by `key` (from `airgap export` or `images save --sign-key`) and
/// checks the signature and every member's checksum before returning it; any failure names
/// what failed.
pub fn open_verified(
    archive: &Path,
    key: &PublicKey,
    progress: &dyn Progress,
) -> Result<Arc<TarIndex>, AirgapError> {
    let tar = Arc::new(TarIndex::open(archive, &Limits::default())?);
    check_manifest(&tar, Some(key), progress)?;
    Ok(tar)
}

/// Whether an archive opened without a verify key carries a signature nobody checked (and
/// by which key), for a warning.
pub fn unchecked_signature(tar: &TarIndex) -> Option<Authenticity> {
    let signature = tar.read(SIGNATURE, Limits::default().max_document_bytes).ok()?;
    let id = crate::publish::sign::signer_id(&String::from_utf8_lossy(&signature));
    Some(Authenticity::Unchecked(id))
}

/// Checks an archive's signature (refusing an unsigned or unverifiable one when `key` is
/// given), then every checksum of its `SHA256SUMS` (see [`verify_checksums`]).
fn check_manifest(
    tar: &TarIndex,
    key: Option<&PublicKey>,
    progress: &dyn Progress,
) -> Result<Authenticity, AirgapError> {
    let max = Limits::default().max_document_bytes;
    if tar.member(CHECKSUMS).is_none() {
        return Err(Problem::new(tar.label(), CHECKSUMS, "missing: the archive has no checksums")
            .hint("give an archive written by charmer airgap export or images save --sign-key")
            .into());
    }
    let sums = tar.read(CHECKSUMS, max)?;
    let signature = match tar.member(SIGNATURE) {
        Some(_) => Some(tar.read(SIGNATURE, max)?),
        None => None,
    };
    let authenticity = signature::authenticate(tar.label(), &sums, signature.as_deref(), key)?;
    verify_checksums(tar, &sums, progress)?;
    Ok(authenticity)
}

/// `SHA256SUMS` for entries: local files are hashed now, registry blobs are named by their
/// digest (and checked against it as they are written).
fn checksums(entries: &[Entry]) -> Result<String, AirgapError> {
    let mut lines = Vec::new();
    for entry in entries {
        let hex = match &entry.content {
            Content::Bytes(bytes) => Digest::of(bytes).hex().to_string(),
            Content::File(path) => crate::digest::sha256_file_hex(path).at(path)?,
            Content::Remote { digest, .. } => digest.hex().to_string(),
        };
        lines.push(format!("{hex}  {}\n", entry.name));
    }
    lines.sort_by(|a, b| a[66..].cmp(&b[66..]));
    Ok(lines.concat())
}

/// Where to push and unpack an air-gap archive.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The private registry.
    pub registry: Registry,
    /// Uploads at once.
    pub jobs: usize,
    /// The folder to create (it must not exist).
    pub out: PathBuf,
    /// Where the charms a delta archive leaves out are (the earlier import's `charms/`).
    pub charms_from: Option<PathBuf>,
    /// Also publish the charms as OCI artifacts under this registry prefix.
    pub charms_registry: Option<Registry>,
    /// Write the archive's bill of materials (CycloneDX) here once it is checked, before
    /// anything is pushed.
    pub sbom_out: Option<PathBuf>,
}

/// The keys an archive is checked with before anything is pushed.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// Accept only an archive signed with this key.
    pub verify_key: Option<PublicKey>,
    /// Refuse the archive unless every image has a cosign signature by one of these keys.
    pub verify_images: Vec<cosign::PublicKey>,
}

/// What an import did.
#[derive(Debug)]
pub struct ImportReport {
    /// The archive's table of contents.
    pub contents: Contents,
    /// The image push.
    pub push: PushReport,
    /// The bundle file, unpacked.
    pub bundle: PathBuf,
    /// The overlays, unpacked, in order.
    pub overlays: Vec<PathBuf>,
    /// Whether the archive's signature was checked, and by which key it was made.
    pub authenticity: Authenticity,
    /// The `juju deploy` script written for a bundle of operator charms.
    pub juju_script: Option<PathBuf>,
    /// The charms published to `--charms-registry`.
    pub charms_pushed: Vec<PushedCharm>,
}

/// An archive checked and unpacked into a staging folder beside `out`, nothing pushed yet
/// (the first half of an import, see the module docs). Dropping it removes the folder.
pub struct Staged {
    authenticity: Authenticity,
    contents: Contents,
    delta: Delta,
    lock: Option<Lock>,
    images: Option<ImageArchive>,
    charm_plan: Option<crate::publish::oci::Plan>,
    staging: tempfile::TempDir,
    bundle: PathBuf,
    overlays: Vec<PathBuf>,
    operator_bundle: Option<StagedBundle>,
}

/// A staged bundle of operator charms, to resolve before anything is pushed: Juju deploys it
/// from a script written once the images' digests are known.
#[derive(Debug, Clone)]
pub struct StagedBundle {
    /// The staged bundle file.
    pub bundle: PathBuf,
    /// Its staged overlays, in order.
    pub overlays: Vec<PathBuf>,
    /// The staged charms.
    pub charms: PathBuf,
}

impl Staged {
    /// The staged bundle when it is one of operator charms (see [`StagedBundle`]).
    pub fn operator_bundle(&self) -> Option<&StagedBundle> {
        self.operator_bundle.as_ref()
    }
}

/// The first half of an import: checks the archive (signature with a verify key, checksums,
/// charms, images, bill of materials) and stages the output folder. Nothing is pushed.
pub async fn stage(
    client: &Client,
    archive: &Path,
    options: &ImportOptions,
    trust: &Trust,
    progress: &dyn Progress,
) -> Result<Staged, AirgapError> {
    let out = &options.out;
    if out.exists() {
        return Err(Problem::new(out.display().to_string(), "", "already exists")
            .hint("import into a new folder")
            .into());
    }
    let tar = Arc::new(TarIndex::open(archive, &Limits::default())?);
    let authenticity = check_manifest(&tar, trust.verify_key.as_ref(), progress)?;
    let contents = read_contents(&tar)?;
    let CarriedCharms { members: mut charms, operators } = read_charms(&tar, &contents)?;
    let delta = contents.delta.clone().unwrap_or_default();
    for (member, bytes) in delta.charms_from(tar.label(), options.charms_from.as_deref())? {
        check_charm(&format!("{}:{member}", tar.label()), &bytes)?;
        charms.push((member, bytes));
    }
    // The lock is parsed before anything is pushed, and pinned to the pushed images after.
    let lock = match &contents.lock {
        Some(member) => {
            let text = String::from_utf8(tar.read(member, Limits::default().max_document_bytes)?)
                .unwrap_or_default();
            Some(parse_lock(&format!("{}:{member}", tar.label()), &text)?)
        }
        None => None,
    };
    let images = match tar.member("images/oci-layout") {
        Some(_) => Some(ImageArchive::from_tar_without(
            tar.clone(),
            "images/",
            &Limits::default(),
            &delta.left_out_sizes(),
        )?),
        None => None,
    };
    check_images(&tar, &contents, images.as_ref())?;
    verify_images(images.as_ref(), &trust.verify_images)?;
    let bom = sbom::check_carried(&tar, &contents, images.as_ref())?;
    if let Some(path) = &options.sbom_out {
        let Some(bom) = &bom else {
            return Err(Problem::new(
                tar.label(),
                sbom::SBOM,
                "missing: the archive carries no bill of materials",
            )
            .hint("export it again with this charmer, or make one with charmer sbom ARCHIVE")
            .into());
        };
        crate::output::write_atomically(path, bom)?;
    }

    // Everything the folder will hold is read (and so bounded) before the first write.
    let max = Limits::default().max_document_bytes;
    let in_bundle = |member: &str| member.strip_prefix("bundle/").unwrap_or(member).to_string();
    let mut files = Vec::new();
    for member in std::iter::once(&contents.bundle).chain(&contents.overlays) {
        files.push((in_bundle(member), tar.read(member, max)?));
    }
    files.extend(charms);
    let manifest = [CHECKSUMS, SIGNATURE, CONTENTS, IMAGE_INDEX, sbom::SBOM]
        .into_iter()
        .chain(contents.lock.as_deref())
        .filter(|member| tar.member(member).is_some());
    for member in manifest {
        files.push((format!("{MANIFEST_DIR}/{member}"), tar.read(member, max)?));
    }
    let bundle = out.join(in_bundle(&contents.bundle));
    let overlays: Vec<PathBuf> = contents.overlays.iter().map(|o| out.join(in_bundle(o))).collect();

    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let io = |path: &Path, source| AirgapError::Io(IoError::new(path, source));
    std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
    let staging = tempfile::Builder::new()
        .prefix(&crate::output::leftover_prefix("import"))
        .tempdir_in(parent)
        .map_err(|e| io(parent, e))?;
    let mut staged_charms = Vec::new();
    for (name, bytes) in files {
        let path = staging.path().join(&name);
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).map_err(|e| io(folder, e))?;
        }
        std::fs::write(&path, bytes).map_err(|e| io(&path, e))?;
        if name.starts_with("charms/") {
            staged_charms.push(path);
        }
    }
    // Charm tags are checked for immutability before anything is pushed.
    let charm_plan = match &options.charms_registry {
        Some(registry) => Some(crate::publish::oci::plan(client, registry, &staged_charms).await?),
        None => None,
    };
    let staged = |path: &Path| staging.path().join(path.strip_prefix(out).unwrap_or(path));
    let operator_bundle = operators.then(|| StagedBundle {
        bundle: staged(&bundle),
        overlays: overlays.iter().map(|o| staged(o)).collect(),
        charms: staging.path().join("charms"),
    });
    Ok(Staged {
        authenticity,
        contents,
        delta,
        lock,
        images,
        charm_plan,
        staging,
        bundle,
        overlays,
        operator_bundle,
    })
}

impl Staged {
    /// The second half of an import: pushes the images (and the charms to
    /// `--charms-registry`), pins the lock, writes the Juju script from `model` (the
    /// [`Staged::operator_bundle`] resolved) and `retagged-images.txt`, and moves the folder
    /// into place.
    pub async fn finish(
        self,
        client: &Client,
        options: &ImportOptions,
        model: Option<&Model>,
        progress: Arc<dyn Progress>,
    ) -> Result<ImportReport, AirgapError> {
        let out = &options.out;
        let push_report = match &self.images {
            Some(images) => {
                let push_options = PushOptions {
                    registry: options.registry.clone(),
                    jobs: options.jobs,
                    // Blobs are hashed beside their upload, and none is committed unless all match.
                    verified: false,
                    left_out: self.delta.left_out_repositories(&options.registry),
                };
                push(client, images, &push_options, progress).await?
            }
            None => PushReport::default(),
        };
        let charms_pushed = match self.charm_plan {
            Some(plan) => plan.push(client, None).await?,
            None => Vec::new(),
        };
        let lock = self.lock.map(|mut lock| {
            pin_lock(&mut lock, &push_report, &options.registry);
            lock
        });
        if let Some(lock) = &lock {
            let path = self.staging.path().join("bundle.lock");
            std::fs::write(&path, lock.to_yaml()).at(&path)?;
        }
        if let Some(model) = model {
            use std::os::unix::fs::PermissionsExt;
            let path = self.staging.path().join(crate::juju::SCRIPT);
            let extra: Vec<&Reference> = self
                .contents
                .extra_images
                .iter()
                .map(|source| {
                    push_report
                        .images
                        .iter()
                        .find(|p| &p.source == source)
                        .map_or(source, |p| &p.target)
                })
                .collect();
            let script = crate::juju::deploy_script(model, lock.as_ref())
                + &crate::juju::extra_images(&extra);
            std::fs::write(&path, script).at(&path)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).at(&path)?;
        }
        let retagged = self.staging.path().join("retagged-images.txt");
        std::fs::write(&retagged, push_report.retagged_images()).at(&retagged)?;
        let staged = self.staging.keep();
        std::fs::rename(&staged, out).at(out)?;
        let juju_script = model.map(|_| out.join(crate::juju::SCRIPT));
        Ok(ImportReport {
            contents: self.contents,
            push: push_report,
            bundle: self.bundle,
            overlays: self.overlays,
            authenticity: self.authenticity,
            juju_script,
            charms_pushed,
        })
    }
}

/// Parses a `bundle.lock`; `label` names it in problems.
pub fn parse_lock(label: &str, text: &str) -> Result<Lock, AirgapError> {
    crate::contract::parse_yaml(label, text).map_err(|p| {
        Problem::new(label, p.key, format!("not a bundle.lock: {}", p.message))
            .hint("give the lock charmer render or airgap export wrote")
            .into()
    })
}

/// Points every image of `lock` that `report` pushed at where it went (with its digest), and
/// records the registry; returns how many images were pinned.
pub fn pin_lock(lock: &mut Lock, report: &PushReport, registry: &Registry) -> usize {
    let mut pinned = 0;
    let images = lock
        .applications
        .values_mut()
        .flat_map(|app| app.images.values_mut().chain(app.config_images.values_mut()));
    for image in images {
        if let Some(pushed) = report.images.iter().find(|p| p.source == image.source) {
            image.target = pushed.target.clone();
            pinned += 1;
        }
    }
    lock.registry = Some(registry.to_string());
    pinned
}

/// Whether a member is an image blob (`images/blobs/sha256/<hex>`): content-addressed, so
/// checked against its digest by the push, in the same pass that uploads it.
fn is_image_blob(name: &str) -> bool {
    name.strip_prefix("images/blobs/sha256/")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Checks `sums` (the `SHA256SUMS` bytes) against every member: each member listed (but
/// the checksums and their signature), each listed once, each listed member present, each
/// checksum right (image blobs: their checksum is their name's digest, and the push hashes
/// them; see [`is_image_blob`]). All problems are reported together.
fn verify_checksums(
    tar: &TarIndex,
    sums: &[u8],
    progress: &dyn Progress,
) -> Result<(), AirgapError> {
    let label = tar.label().to_string();
    let text = std::str::from_utf8(sums)
        .map_err(|_| Problem::new(&label, CHECKSUMS, "is not UTF-8 text"))?;
    let mut problems = Problems::default();
    let mut listed: BTreeMap<String, String> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let parsed = line.split_once(' ').map(|(hex, name)| {
            (hex, name.strip_prefix(' ').or_else(|| name.strip_prefix('*')).unwrap_or(name))
        });
        match parsed {
            Some((hex, name))
                if hex.len() == 64
                    && hex.bytes().all(|b| b.is_ascii_hexdigit())
                    && unsafe_name_reason(name).is_none() =>
            {
                if listed.insert(name.to_string(), hex.to_ascii_lowercase()).is_some() {
                    problems.push(Problem::new(
                        &label,
                        format!("{CHECKSUMS}: line {}", n + 1),
                        format!("lists {name} a second time"),
                    ));
                }
            }
            _ => problems.push(Problem::new(
                &label,
                format!("{CHECKSUMS}: line {}", n + 1),
                "not a '<sha256 hex>  <member>' line",
            )),
        }
    }
    for name in tar.names() {
        if name != CHECKSUMS && name != SIGNATURE && !listed.contains_key(name) {
            problems.push(
                Problem::new(&label, name, format!("not listed in {CHECKSUMS}"))
                    .hint("the archive was changed after it was written"),
            );
        }
    }
    let mut members = Vec::new();
    for (name, hex) in &listed {
        match tar.member(name) {
            Some(_) if is_image_blob(name) => {
                // Hashed as it is pushed (see `import`); its name is its digest.
                if !name.ends_with(hex.as_str()) {
                    problems.push(
                        Problem::new(
                            &label,
                            name,
                            format!("{CHECKSUMS} says {hex}, not the digest its name gives"),
                        )
                        .hint("the archive was changed after it was written"),
                    );
                }
            }
            Some(member) => members.push((name, hex, member)),
            None => problems.push(Problem::new(
                &label,
                name,
                format!("listed in {CHECKSUMS} but missing"),
            )),
        }
    }
    progress.begin(Task::Verify, members.iter().map(|(_, _, m)| m.size).sum());
    // Two threads: hashing is the whole cost, and a second core nearly halves it.
    let mismatches: Vec<Result<Option<Problem>, std::io::Error>> = std::thread::scope(|scope| {
        let halves = [0, 1].map(|half| {
            let members = &members;
            scope.spawn(move || {
                let mut found = Vec::new();
                for (name, hex, member) in members.iter().skip(half).step_by(2) {
                    let result = tar.sha256(*member, &|n| progress.advance(Task::Verify, n)).map(|actual| {
                        (actual.hex() != hex.as_str()).then(|| {
                            Problem::new(tar.label(), name.as_str(), format!("checksum mismatch: {CHECKSUMS} says {hex}, the content is {}", actual.hex()))
                                .hint("the archive is damaged or was tampered with; nothing was pushed")
                        })
                    });
                    found.push(result);
                }
                found
            })
        });
        // A hashing thread that died must not pass for a clean check.
        halves
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|_| vec![Err(std::io::Error::other("a hashing thread failed"))])
            })
            .collect()
    });
    progress.end(Task::Verify);
    for result in mismatches {
        match result {
            Ok(Some(problem)) => problems.push(problem),
            Ok(None) => {}
            Err(source) => return Err(AirgapError::Io(IoError::new(label, source))),
        }
    }
    problems.into_result(()).map_err(AirgapError::from)
}

/// Reads `airgap.json` and checks it names members the archive has.
fn read_contents(tar: &TarIndex) -> Result<Contents, AirgapError> {
    let label = tar.label();
    let bytes = tar.read(CONTENTS, Limits::default().max_document_bytes)?;
    let contents = parse_contents(label, &bytes)?;
    let mut problems = Problems::default();
    for member in contents.members() {
        if tar.member(member).is_none() {
            problems.push(Problem::new(
                label,
                format!("{CONTENTS}: {member}"),
                "names a member that is not in the archive",
            ));
        }
    }
    problems.into_result(contents).map_err(AirgapError::from)
}

/// Parses an archive's `airgap.json` (untrusted: `label` names the archive) and checks that
/// its format is this charmer's and that every member it names is where an air-gap archive
/// keeps such a file.
pub fn parse_contents(label: &str, bytes: &[u8]) -> Result<Contents, AirgapError> {
    let contents: Contents = serde_json::from_slice(bytes).map_err(|e| {
        Problem::new(label, CONTENTS, format!("not an air-gap table of contents: {e}"))
    })?;
    let mut problems = Problems::default();
    let delta_format = contents.format == delta::FORMAT && contents.delta.is_some();
    if contents.format != FORMAT && !delta_format {
        problems.push(
            Problem::new(
                label,
                CONTENTS,
                format!("format {:?} is not {FORMAT:?}", contents.format),
            )
            .hint("import it with the charmer version that wrote it"),
        );
    }
    // Where each member is unpacked: bundle files beside the folder's own files, which they
    // must not replace, charms in charms/, the lock as bundle.lock.
    let reserved = ["bundle.lock", "retagged-images.txt", "charms", MANIFEST_DIR];
    let file_in = |member: &str, folder: &str| {
        member.strip_prefix(folder).is_some_and(|name| !name.is_empty() && !name.contains('/'))
    };
    let bundle_files = std::iter::once(&contents.bundle).chain(&contents.overlays);
    let placed = bundle_files
        .map(|m| {
            (m, file_in(m, "bundle/") && !reserved.iter().any(|r| m.ends_with(&format!("/{r}"))))
        })
        .chain(contents.charms.iter().map(|m| (m, file_in(m, "charms/") && m.ends_with(".charm"))))
        .chain(contents.lock.iter().map(|m| (m, m == "bundle.lock")));
    for (member, placed) in placed {
        if !placed {
            problems.push(Problem::new(
                label,
                format!("{CONTENTS}: {member}"),
                "is not where an air-gap archive keeps such a file",
            ));
        }
    }
    problems.into_result(contents).map_err(AirgapError::from)
}

/// With `keys`, checks that every image carried has a cosign signature by one of them (see
/// [`cosign::verify`]).
pub fn verify_images(
    images: Option<&ImageArchive>,
    keys: &[cosign::PublicKey],
) -> Result<(), AirgapError> {
    match images {
        Some(images) if !keys.is_empty() => Ok(cosign::verify(images, keys)?),
        _ => Ok(()),
    }
}

/// Checks that the images `airgap.json` lists are the ones the archive holds.
fn check_images(
    tar: &TarIndex,
    contents: &Contents,
    images: Option<&ImageArchive>,
) -> Result<(), AirgapError> {
    let listed: BTreeSet<&Reference> =
        contents.images.iter().chain(&contents.extra_images).collect();
    // Cosign signatures travel beside the images they sign, unlisted.
    let held: BTreeSet<&Reference> = images
        .iter()
        .flat_map(|i| i.images.iter().map(|n| &n.reference))
        .filter(|r| !crate::registry::cosign::is_signature(r))
        .collect();
    let mut problems = Problems::default();
    for missing in listed.difference(&held) {
        let problem = format!("lists {missing}, which is not under images/");
        problems.push(Problem::new(tar.label(), CONTENTS, problem));
    }
    for extra in held.difference(&listed) {
        let problem = format!("holds {extra}, which {CONTENTS} does not list");
        problems.push(Problem::new(tar.label(), IMAGE_INDEX, problem));
    }
    problems.into_result(()).map_err(AirgapError::from)
}

/// Reads and validates every charm (the same checks as for any untrusted `.charm`).
fn read_charms(tar: &TarIndex, contents: &Contents) -> Result<CarriedCharms, AirgapError> {
    let limits = CharmLimits::default();
    let mut problems = Problems::default();
    let mut charms = Vec::new();
    let mut operators = false;
    for member in &contents.charms {
        let bytes = tar.read(member, limits.max_total_bytes)?;
        let label = format!("{}:{member}", tar.label());
        let checked = read_zip(&label, &bytes, &limits).and_then(|files| {
            let origin = Origin::Archive {
                path: PathBuf::from(&label),
                sha256: Digest::of(&bytes).hex().to_string(),
            };
            Charm::from_files(files, origin)
        });
        match checked {
            Ok(charm) => {
                operators |= charm.kind() == crate::charm::Kind::Operator;
                charms.push((member.clone(), bytes));
            }
            Err(CharmError::Invalid(p)) => problems.extend(p),
            Err(CharmError::Io(e)) => return Err(AirgapError::Io(e)),
        }
    }
    problems.into_result(CarriedCharms { members: charms, operators }).map_err(AirgapError::from)
}

/// Every charm member with its bytes, and whether any is an operator charm.
struct CarriedCharms {
    members: Vec<(String, Vec<u8>)>,
    operators: bool,
}

/// Validates one charm archive's bytes (the checks for any untrusted `.charm`); `label`
/// names it in problems.
fn check_charm(label: &str, bytes: &[u8]) -> Result<Charm, AirgapError> {
    let limits = CharmLimits::default();
    let checked = read_zip(label, bytes, &limits).and_then(|files| {
        let origin = Origin::Archive {
            path: PathBuf::from(label),
            sha256: Digest::of(bytes).hex().to_string(),
        };
        Charm::from_files(files, origin)
    });
    match checked {
        Ok(charm) => Ok(charm),
        Err(CharmError::Invalid(p)) => Err(AirgapError::Invalid(p)),
        Err(CharmError::Io(e)) => Err(AirgapError::Io(e)),
    }
}
