//! The bill of materials an air-gap archive carries (`sbom.cdx.json`, CycloneDX): made by
//! export from the archive it has just written (so it describes exactly what was carried) and
//! covered by `SHA256SUMS` and its signature; made again by import from the archive it
//! received and compared byte for byte before anything is pushed, so an archive whose SBOM
//! does not describe its contents is refused (documents are deterministic).

use std::path::Path;
use std::sync::Arc;

use super::{check_charm, check_manifest, read_contents, AirgapError, Contents, CONTENTS};
use crate::charm::Limits as CharmLimits;
use crate::diag::Problem;
use crate::publish::PublicKey;
use crate::registry::archive::ImageArchive;
use crate::registry::manifest::Digest;
use crate::registry::progress::Progress;
use crate::registry::tarindex::{Limits, TarIndex};
use crate::sbom::{CharmEntry, Sbom, Subject};

/// The member holding the archive's SBOM.
pub const SBOM: &str = "sbom.cdx.json";

/// The images of an air-gap archive (`images/`, blobs a delta leaves out allowed), if any.
pub(super) fn carried_images(
    tar: &Arc<TarIndex>,
    contents: &Contents,
) -> Result<Option<ImageArchive>, AirgapError> {
    if tar.member("images/oci-layout").is_none() {
        return Ok(None);
    }
    let left_out = contents.delta.as_ref().map(|d| d.left_out_sizes()).unwrap_or_default();
    Ok(Some(ImageArchive::from_tar_without(tar.clone(), "images/", &Limits::default(), &left_out)?))
}

/// The SBOM of an air-gap archive: its bundle (named by its `name:`), its charms (each
/// validated as any untrusted charm is) and its images, read from their layers.
pub(super) fn of_archive(
    tar: &TarIndex,
    contents: &Contents,
    images: Option<&ImageArchive>,
) -> Result<Sbom, AirgapError> {
    let max = Limits::default().max_document_bytes;
    let bundle_bytes = tar.read(&contents.bundle, max)?;
    let name = serde_yaml::from_slice::<serde_yaml::Value>(&bundle_bytes)
        .ok()
        .and_then(|v| v.get("name").and_then(|n| n.as_str()).map(str::to_string))
        .unwrap_or_else(|| contents.bundle.clone());
    let bundle = Subject {
        name,
        sha256: Some(Digest::of(&bundle_bytes).hex().to_string()),
        source: contents.bundle.clone(),
    };
    let mut charms = Vec::new();
    for member in &contents.charms {
        let bytes = tar.read(member, CharmLimits::default().max_total_bytes)?;
        let charm = check_charm(&format!("{}:{member}", tar.label()), &bytes)?;
        charms.push(CharmEntry {
            name: charm.name().to_string(),
            version: charm.version_label(),
            sha256: Digest::of(&bytes).hex().to_string(),
            source: member.clone(),
        });
    }
    Ok(Sbom::of_images(bundle, charms, images))
}

/// The SBOM of an archive file: an air-gap archive (with `verify_key`, its signature and
/// checksums are checked first), or an image archive (`images save`, `docker save`, an OCI
/// layout), whose subject is named after the file.
pub fn of_file(
    path: &Path,
    verify_key: Option<&PublicKey>,
    progress: &dyn Progress,
) -> Result<Sbom, AirgapError> {
    let tar = Arc::new(TarIndex::open(path, &Limits::default())?);
    if verify_key.is_some() {
        check_manifest(&tar, verify_key, progress)?;
    }
    if tar.member(CONTENTS).is_some() {
        let contents = read_contents(&tar)?;
        let images = carried_images(&tar, &contents)?;
        return of_archive(&tar, &contents, images.as_ref());
    }
    let images = ImageArchive::from_index(tar.clone(), &Limits::default())?;
    let name = path.file_name().map_or(tar.label().to_string(), |n| n.to_string_lossy().into());
    let subject = Subject { name, sha256: None, source: tar.label().to_string() };
    Ok(Sbom::of_images(subject, Vec::new(), Some(&images)))
}

/// Checks the SBOM an archive carries against the one its contents give (see the module
/// docs) and returns it; `None` for an archive from a charmer that carried none.
pub(super) fn check_carried(
    tar: &TarIndex,
    contents: &Contents,
    images: Option<&ImageArchive>,
) -> Result<Option<Vec<u8>>, AirgapError> {
    if tar.member(SBOM).is_none() {
        return Ok(None);
    }
    let carried = tar.read(SBOM, Limits::default().max_document_bytes * 4)?;
    let actual = of_archive(tar, contents, images)?;
    let expected = crate::sbom::cyclonedx::write(&actual);
    if carried == expected {
        return Ok(Some(carried));
    }
    let what = match crate::sbom::cyclonedx::read(&format!("{}:{SBOM}", tar.label()), &carried) {
        Ok(claimed) => {
            let diff = crate::sbom::diff::diff(&actual, &claimed);
            let (added, removed, changed) = diff.counts();
            if diff.is_empty() {
                "differs from the one its contents give".to_string()
            } else {
                let first = diff
                    .charms
                    .iter()
                    .chain(&diff.images)
                    .chain(diff.packages.iter().flat_map(|p| &p.changes))
                    .next()
                    .map(|c| format!(", e.g. {} {}", c.sign(), c.name))
                    .unwrap_or_default();
                format!("does not match the archive's contents: it claims {added} more, {removed} fewer and {changed} other entries{first}")
            }
        }
        Err(problem) => format!("is not a readable bill of materials: {}", problem.message),
    };
    Err(Problem::new(tar.label(), SBOM, what)
        .hint("the archive was changed after it was written; nothing was pushed")
        .into())
}
