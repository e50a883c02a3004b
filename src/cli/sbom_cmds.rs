//! `sbom`, `sbom diff`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use super::images_cmds::Bars;
use super::{line, stdout_error, DigestArgs, Output, PinMirrors, ResolveArgs, TlsArgs};
use crate::diag::{Problem, Problems};
use crate::io_error::IoResultExt;
use crate::sbom::{self, Sbom};
use crate::Error;

/// `charmer sbom ...`.
#[derive(Debug, Args)]
pub struct SbomArgs {
    /// Compare two bills of materials.
    #[command(subcommand)]
    pub command: Option<SbomCommand>,
    /// The bundle (and how to resolve it), or an archive: airgap export's, or an image
    /// archive (images save, docker save, an OCI layout tar). With an archive, --verify-key
    /// checks its signature first.
    #[command(flatten)]
    pub resolve: Option<ResolveArgs>,
    /// How to reach published indexes (and, with --pin-digests, registries).
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Pinning a bundle's images by digest.
    #[command(flatten)]
    pub digests: DigestArgs,
    /// Mirrors to pin through.
    #[command(flatten)]
    pub mirrors: PinMirrors,
    /// Document format.
    #[arg(long, value_enum, default_value_t)]
    pub format: SbomFormat,
    /// File to write (default: stdout).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `sbom` document formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum SbomFormat {
    /// CycloneDX 1.6 JSON.
    #[default]
    Cyclonedx,
    /// SPDX 2.3 JSON.
    Spdx,
}

/// `charmer sbom diff`.
#[derive(Debug, Subcommand)]
pub enum SbomCommand {
    /// What was added, removed and changed between two archives or CycloneDX documents
    /// charmer wrote: charm versions, image tags and digests, package versions per image.
    Diff {
        /// The earlier archive or SBOM.
        old: PathBuf,
        /// The later archive or SBOM.
        new: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

/// Whether `path` is a tar archive (plain or gzip'd) rather than a bundle or a document.
fn is_archive(path: &Path) -> bool {
    let mut head = [0u8; 512];
    let Ok(mut file) = std::fs::File::open(path) else { return false };
    let n = file.read(&mut head).unwrap_or(0);
    head[..n].starts_with(&[0x1f, 0x8b]) || (n >= 262 && &head[257..262] == b"ustar")
}

pub(super) fn run(out: &mut impl Write, args: SbomArgs) -> Result<ExitCode, Error> {
    let resolve = match (&args.command, &args.resolve) {
        (Some(SbomCommand::Diff { old, new, output }), _) => return diff(out, old, new, *output),
        (None, Some(resolve)) => resolve,
        // clap requires the bundle when no subcommand is given, so this is not reached.
        (None, None) => {
            return Err(Problem::new("charmer sbom", "", "give a bundle or an archive").into())
        }
    };
    let bom = if is_archive(&resolve.bundle) {
        refuse_bundle_flags(resolve, &args.digests)?;
        let key = resolve.verify_key.as_deref().map(crate::publish::load_public_key);
        let bars = Bars::new(false);
        let bom = crate::airgap::sbom::of_file(&resolve.bundle, key.transpose()?.as_ref(), &bars);
        bars.clear();
        bom?
    } else {
        let model = resolve
            .clone()
            .with(&args.tls)
            .pinning(&args.digests, &args.mirrors.mirror)
            .resolve()?;
        Sbom::of_model(&model)?
    };
    warn(&bom);
    let format = match args.format {
        SbomFormat::Cyclonedx => sbom::Format::CycloneDx,
        SbomFormat::Spdx => sbom::Format::Spdx,
    };
    let created = sbom::creation_time(std::env::var("SOURCE_DATE_EPOCH").ok().as_deref());
    let document = bom.document(format, &created);
    match &args.out {
        Some(path) => crate::output::write_atomically(path, &document)?,
        None => out.write_all(&document).map_err(stdout_error)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn warn(bom: &Sbom) {
    for warning in &bom.warnings {
        eprintln!("warning: {}", crate::diag::escape_controls(warning));
    }
}

/// The flags that only apply to a bundle are refused with an archive (they would be
/// ignored).
fn refuse_bundle_flags(r: &ResolveArgs, digests: &DigestArgs) -> Result<(), Error> {
    let given = [
        ("--charms", !r.charm_dirs.is_empty()),
        ("--overlay", !r.overlays.is_empty()),
        ("--config", !r.config.is_empty()),
        ("--config-file", !r.config_files.is_empty()),
        ("--registry", r.registry.is_some()),
        ("--image-map", r.image_map.is_some()),
        ("--namespace", r.namespace.is_some()),
        ("--network-policies", r.network_policies.is_some()),
        ("--pin-digests", digests.pin_digests),
        ("--require-digests", digests.require_digests),
    ];
    let mut problems = Problems::default();
    for (flag, _) in given.iter().filter(|(_, given)| *given) {
        problems.push(
            Problem::new(
                r.bundle.display().to_string(),
                flag.to_string(),
                "applies to a bundle, not to an archive",
            )
            .hint(format!("leave out {flag}: an archive's bill of materials is what it carries")),
        );
    }
    problems.into_result(()).map_err(Error::from)
}

/// An archive's SBOM (made from its contents) or a CycloneDX document's.
fn load(path: &Path) -> Result<Sbom, Error> {
    if is_archive(path) {
        let bom = crate::airgap::sbom::of_file(path, None, &Bars::new(true))?;
        warn(&bom);
        return Ok(bom);
    }
    let label = path.display().to_string();
    let bytes = std::fs::read(path).at(&label)?;
    Ok(sbom::cyclonedx::read(&label, &bytes)?)
}

fn diff(out: &mut impl Write, old: &Path, new: &Path, output: Output) -> Result<ExitCode, Error> {
    let (before, after) = (load(old)?, load(new)?);
    let diff = sbom::diff::diff(&before, &after);
    match output {
        Output::Json => {
            serde_json::to_writer_pretty(&mut *out, &diff).map_err(|e| stdout_error(e.into()))?;
            line(out, "")?;
        }
        Output::Text => {
            let text =
                sbom::diff::text(&diff, &old.display().to_string(), &new.display().to_string());
            for l in text.lines() {
                line(out, l)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
