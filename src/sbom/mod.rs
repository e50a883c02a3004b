//! Software bills of materials: what a bundle or an air-gap archive carries, down to the
//! packages inside each image, as CycloneDX 1.6 or SPDX 2.3 JSON; and the difference between
//! two of them, the page a review board reads for a delta transfer.
//!
//! [`Sbom`] is the one model both documents are written from (and the CycloneDX document
//! is read back into, for [`diff`]): the bundle, every charm (name, version, SHA-256,
//! source), every image (reference, digest, platform, layers) and the packages read from
//! the image's layers ([`scan`], over the package databases of [`catalog`]). The documents
//! are deterministic: sorted, no timestamps or random serial numbers, so the same inputs
//! give the same bytes (SPDX's required creation time is `SOURCE_DATE_EPOCH` or the epoch).
//!
//! The `airgap` stage builds an [`Sbom`] for its archives (it knows their layout) and
//! carries it in them; this module knows image archives and resolved models only.

pub mod catalog;
pub mod cyclonedx;
pub mod diff;
pub mod scan;
pub mod spdx;

use std::collections::BTreeMap;

use crate::diag::{Problem, Problems};
use crate::io_error::IoResultExt;
use crate::registry::archive::ImageArchive;
use crate::resolve::Model;
pub use catalog::{Ecosystem, Found};

/// Why an SBOM could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    /// The input is invalid; every problem is listed.
    #[error("{0}")]
    Invalid(Problems),
    /// A file could not be read.
    #[error(transparent)]
    Io(#[from] crate::io_error::IoError),
}

impl From<Problem> for SbomError {
    fn from(p: Problem) -> Self {
        SbomError::Invalid(p.into())
    }
}

/// What the document is about: a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The bundle's name.
    pub name: String,
    /// Hex SHA-256 of the bundle file, if known.
    pub sha256: Option<String>,
    /// Where it was read from (a file, or an archive's member).
    pub source: String,
}

/// One charm.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CharmEntry {
    /// Its name.
    pub name: String,
    /// Its version label.
    pub version: String,
    /// Hex SHA-256 of its `.charm` archive (as packed, for a source folder).
    pub sha256: String,
    /// Where it came from (file, folder, or archive member).
    pub source: String,
}

/// One image, for one platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEntry {
    /// The reference it is known by.
    pub reference: String,
    /// The digest of its top manifest (or index), when known.
    pub digest: Option<String>,
    /// `os/architecture[/variant]`, when known.
    pub platform: Option<String>,
    /// The digest of this platform's manifest (the top digest for a single-platform image).
    pub manifest: Option<String>,
    /// Its layers, bottom first.
    pub layers: Vec<Layer>,
    /// The packages its layers hold, sorted.
    pub packages: Vec<Package>,
}

impl ImageEntry {
    /// The reference and, if known, the platform: `REF (os/arch)`.
    pub fn label(&self) -> String {
        match &self.platform {
            Some(platform) => format!("{} ({platform})", self.reference),
            None => self.reference.clone(),
        }
    }
}

/// One layer of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// Its digest.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
    /// Whether it was read for packages (false: not in the archive, as in a delta, or in a
    /// compression charmer does not read).
    pub scanned: bool,
}

/// One package found in an image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Package {
    /// What its metadata says.
    pub found: Found,
    /// The digest of the layer that holds the file it was read from.
    pub layer: String,
    /// That file's path in the image.
    pub path: String,
}

/// A bill of materials (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sbom {
    /// The bundle.
    pub bundle: Subject,
    /// Every charm, sorted by name and version.
    pub charms: Vec<CharmEntry>,
    /// Every image, sorted by reference and platform.
    pub images: Vec<ImageEntry>,
    /// What could not be read (not part of the documents).
    pub warnings: Vec<String>,
}

impl Sbom {
    /// The SBOM of a resolved bundle: its charms, and its images by reference (and digest,
    /// when pinned). The software inside the images is not read (the images are not here):
    /// a warning says so.
    pub fn of_model(model: &Model) -> Result<Sbom, SbomError> {
        let path = &model.bundle_file;
        let bytes = std::fs::read(path).at(path)?;
        let mut charms = BTreeMap::new();
        for app in model.applications.values() {
            let charm = &app.charm;
            charms.entry((charm.name().to_string(), charm.version_label())).or_insert_with(|| {
                CharmEntry {
                    name: charm.name().to_string(),
                    version: charm.version_label(),
                    sha256: charm.sha256(),
                    source: charm.origin.path().display().to_string(),
                }
            });
        }
        let images: Vec<ImageEntry> = model
            .image_list()
            .images
            .into_iter()
            .map(|image| ImageEntry {
                reference: image.source.to_string(),
                digest: image.source.digest.clone(),
                platform: None,
                manifest: None,
                layers: Vec::new(),
                packages: Vec::new(),
            })
            .collect();
        let warnings = if images.is_empty() {
            Vec::new()
        } else {
            vec!["the images of a bundle are listed by reference only; to list the software inside them, make the SBOM of the archive airgap export (or images save) writes".to_string()]
        };
        Ok(Sbom {
            bundle: Subject {
                name: model.name.clone(),
                sha256: Some(crate::digest::sha256_hex(&bytes)),
                source: path.display().to_string(),
            },
            charms: charms.into_values().collect(),
            images,
            warnings,
        })
    }

    /// The SBOM of `bundle`, `charms` and the images of `archive` (their layers read for
    /// packages, see [`scan`]).
    pub fn of_images(
        bundle: Subject,
        mut charms: Vec<CharmEntry>,
        archive: Option<&ImageArchive>,
    ) -> Sbom {
        charms.sort();
        let (images, warnings) = match archive {
            Some(archive) => scan::scan(archive, &scan::ScanLimits::default()),
            None => (Vec::new(), Vec::new()),
        };
        Sbom { bundle, charms, images, warnings }
    }

    /// How many packages all images hold.
    pub fn package_count(&self) -> usize {
        self.images.iter().map(|i| i.packages.len()).sum()
    }
}

/// The document formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// CycloneDX 1.6 JSON.
    #[default]
    CycloneDx,
    /// SPDX 2.3 JSON.
    Spdx,
}

impl Sbom {
    /// The document in `format`; `created` is SPDX's creation time (`YYYY-MM-DDThh:mm:ssZ`).
    pub fn document(&self, format: Format, created: &str) -> Vec<u8> {
        match format {
            Format::CycloneDx => cyclonedx::write(self),
            Format::Spdx => spdx::write(self, created),
        }
    }
}

/// SPDX's creation time for a reproducible document: `SOURCE_DATE_EPOCH` seconds (the
/// reproducible-builds convention) as `YYYY-MM-DDThh:mm:ssZ`, else the epoch.
pub fn creation_time(source_date_epoch: Option<&str>) -> String {
    let seconds: i64 = source_date_epoch.and_then(|s| s.trim().parse().ok()).unwrap_or(0).max(0);
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn creation_time_is_reproducible() {
        assert_eq!(super::creation_time(None), "1970-01-01T00:00:00Z");
        assert_eq!(super::creation_time(Some("1700000000")), "2023-11-14T22:13:20Z");
        assert_eq!(super::creation_time(Some("junk")), "1970-01-01T00:00:00Z");
    }
}
