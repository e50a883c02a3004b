//! `airgap export` and `airgap import`: resolving the bundle around the archive work of
//! [`crate::airgap`] (which resolves nothing itself).
//!
//! Both run long and are async, so a caller can drop them (on a signal) and have their
//! temporary files removed; export resolves first, synchronously ([`Export::prepare`]), as
//! pinning digests runs its own runtime.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::ResolveOptions;
use crate::airgap::delta::Base;
use crate::airgap::{self, Contents, ExportInputs, ImportReport, Trust};
use crate::diag::{Problem, Problems};
use crate::images::Reference;
use crate::io_error::IoResultExt;
use crate::registry::client::Client;
use crate::registry::manifest::Platform;
use crate::registry::progress::Progress;
use crate::registry::pull::PullOptions;
use crate::Error;

/// What to carry into an air gap, and how.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// The bundle and its overrides (with digest pinning; its `mirrors` apply to pulling).
    pub resolve: ResolveOptions,
    /// The archive to write.
    pub out: PathBuf,
    /// Sign the archive with this secret key file.
    pub sign_key: Option<PathBuf>,
    /// Write a delta against these earlier archives.
    pub since: Vec<PathBuf>,
    /// Images to carry that no charm names.
    pub extra_images: Vec<Reference>,
    /// Files listing more such images, one reference a line.
    pub images_from: Vec<PathBuf>,
    /// Refuse unless every image has a cosign signature by one of these public key files.
    pub verify_images: Vec<PathBuf>,
    /// Keep only this platform of multi-platform images.
    pub platform: Option<Platform>,
    /// Transfers at once.
    pub jobs: usize,
}

/// A bundle resolved for export, with every key, image list and earlier archive read:
/// what is left is pulling and writing ([`Export::write`]).
pub struct Export {
    inputs: ExportInputs,
    base: Base,
    pull: PullOptions,
    out: PathBuf,
}

/// What an export wrote.
#[derive(Debug)]
pub struct Exported {
    /// The archive's table of contents.
    pub contents: Contents,
    /// The id of the key that signed it.
    pub signed_by: Option<String>,
}

impl Export {
    /// `airgap export`, first half: loads the signing key, resolves the bundle (pinning
    /// digests as asked), and reads the extra image lists, cosign keys and earlier archives.
    pub fn prepare(options: &ExportOptions, warnings: &mut Vec<Problem>) -> Result<Export, Error> {
        let sign_key =
            options.sign_key.as_deref().map(crate::publish::load_secret_key).transpose()?;
        let model = super::resolve(&options.resolve, warnings)?;
        let mut inputs = ExportInputs::of_model(&model, &options.resolve.overlays)?;
        inputs.sign_key = sign_key;
        inputs.extra_images = options.extra_images.clone();
        for file in &options.images_from {
            inputs.extra_images.extend(read_image_list(file)?);
        }
        inputs.verify_images = crate::registry::cosign::load_public_keys(&options.verify_images)?;
        let base = Base::read(&options.since)?;
        let pull = PullOptions {
            platform: options.platform.clone(),
            jobs: options.jobs,
            mirrors: super::parse_mirrors(&options.resolve.mirrors)?,
        };
        Ok(Export { inputs, base, pull, out: options.out.clone() })
    }

    /// `airgap export`, second half: pulls the images and writes the archive (see
    /// [`airgap::export`]); dropped, it removes the unfinished archive.
    pub async fn write(&self, client: &Client, progress: &dyn Progress) -> Result<Exported, Error> {
        let contents =
            airgap::export(client, &self.inputs, &self.base, &self.pull, &self.out, progress)
                .await?;
        let signed_by = self.inputs.sign_key.as_ref().map(|key| key.public().id());
        Ok(Exported { contents, signed_by })
    }
}

/// The image references of a list file (`images list` output, retagged-images.txt); a file
/// that lists none is refused.
pub fn read_image_list(path: &Path) -> Result<Vec<Reference>, Error> {
    let text =
        crate::contract::read_bounded_text(path, crate::contract::MAX_TEXT_BYTES, "an image list")
            .at(path)?;
    let references =
        crate::images::parse_list(&path.display().to_string(), &text).map_err(Problems)?;
    if references.is_empty() {
        return Err(Problems::from(Problem::new(
            path.display().to_string(),
            "",
            "lists no images",
        ))
        .into());
    }
    Ok(references)
}

/// An air-gap archive to import, and the keys to check it with.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The archive `airgap export` wrote.
    pub archive: PathBuf,
    /// Where to push and unpack it.
    pub target: airgap::ImportOptions,
    /// Accept only an archive signed with this public key file.
    pub verify_key: Option<PathBuf>,
    /// Refuse unless every image has a cosign signature by one of these public key files.
    pub verify_images: Vec<PathBuf>,
}

/// `airgap import`: checks and stages the archive ([`airgap::stage`]); a bundle of operator
/// charms is resolved against its staged charms then, so one that cannot be deployed stops
/// the import before anything is pushed; then pushes and moves the folder into place
/// ([`airgap::Staged::finish`]). Dropped, it removes the staging folder.
pub async fn import(
    client: &Client,
    options: &ImportOptions,
    progress: Arc<dyn Progress>,
) -> Result<ImportReport, Error> {
    let trust = Trust {
        verify_key: options
            .verify_key
            .as_deref()
            .map(crate::publish::load_public_key)
            .transpose()?,
        verify_images: crate::registry::cosign::load_public_keys(&options.verify_images)?,
    };
    let target = &options.target;
    let staged = airgap::stage(client, &options.archive, target, &trust, progress.as_ref()).await?;
    let model = match staged.operator_bundle() {
        Some(staged_bundle) => {
            let resolve = ResolveOptions {
                bundle: staged_bundle.bundle.clone(),
                overlays: staged_bundle.overlays.clone(),
                charm_dirs: vec![staged_bundle.charms.clone()],
                registry: Some(target.registry.clone()),
                ..Default::default()
            };
            // Warnings were shown when the archive was exported from the same files.
            Some(super::resolve(&resolve, &mut Vec::new())?)
        }
        None => None,
    };
    Ok(staged.finish(client, target, model.as_ref(), progress).await?)
}
