//! Pulling images with what vouches for them: the manifests (`pull`) and the cosign
//! signatures and attestations their registries hold (`cosign`), for `images save` and
//! `airgap export`. Apart from both so that `cosign`, which fetches signatures the way `pull`
//! fetches images, and `pull` do not import each other.

use std::path::Path;

use super::client::Client;
use super::layout::write_tar;
use super::progress::Progress;
use super::pull::{fetch_images, PullOptions, Pulled};
use super::RegistryError;
use crate::images::Reference;

/// Fetches the manifests of `references` (deduplicated), keeping one platform if asked, and
/// the cosign signatures and attestations their registries hold for them (see
/// [`super::cosign`]).
pub async fn fetch_manifests(
    client: &Client,
    references: &[Reference],
    options: &PullOptions,
) -> Result<Pulled, RegistryError> {
    let mut pulled = fetch_images(client, references, options).await?;
    super::cosign::add_signatures(client, &mut pulled, options).await?;
    Ok(pulled)
}

/// Pulls `references` into an OCI image layout archive at `out`.
pub async fn save(
    client: &Client,
    references: &[Reference],
    options: &PullOptions,
    out: &Path,
    progress: &dyn Progress,
) -> Result<Pulled, RegistryError> {
    let pulled = fetch_manifests(client, references, options).await?;
    write_tar(pulled.layout_entries(""), out, client, options.jobs, progress).await?;
    Ok(pulled)
}
