//! `airgap export`, `airgap import`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};

use super::bundle_cmds::print_warnings;
use super::images_cmds::{
    client, print_report, read_login, signed_by, Bars, Connection, Login, PullFlags,
};
use super::{count, line, remove_stale_leftovers, until_signalled, ResolveArgs};
use crate::airgap::Authenticity;
use crate::images::{Reference, Registry};
use crate::ops::airgap::{Export, ExportOptions, Exported, ImportOptions};
use crate::Error;

/// `charmer airgap ...`.
#[derive(Debug, Subcommand)]
pub enum AirgapCommand {
    /// Write ONE archive to carry into an air gap: a bundle, its overlays, every charm it
    /// resolves to, their images, the lock, and a checksum for every member.
    Export(Box<ExportArgs>),
    /// Check an air-gap archive, push its images into the private registry, and unpack the
    /// bundle and charms into a new folder ready to deploy.
    Import(Box<ImportArgs>),
}

/// `airgap export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The bundle to carry, and the resolver flags.
    #[command(flatten)]
    pub resolve: ResolveArgs,
    /// The archive to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Sign the archive (its SHA256SUMS, which covers every member) with this secret key
    /// (PREFIX.key from keygen, or an unencrypted minisign key).
    #[arg(long, value_name = "KEY", env = "CHARMER_SIGN_KEY")]
    pub sign_key: Option<PathBuf>,
    /// Write a delta: leave out the image blobs and charms this earlier archive had (only
    /// its index is read). Repeatable. Import the delta into a registry that imported it.
    #[arg(long, value_name = "OLD.tar")]
    pub since: Vec<PathBuf>,
    /// Also carry this image, which no charm names (Juju's agent images, a base image).
    /// Repeatable; airgap.json lists these apart, and import pushes them.
    #[arg(long = "image", value_name = "REF", value_parser = parse_reference)]
    pub images: Vec<Reference>,
    /// Also carry the images of this file: one reference a line (`#` comments, `images list`
    /// output and Canonical's retagged-images.txt work).
    #[arg(long, value_name = "FILE")]
    pub images_from: Vec<PathBuf>,
    /// Pinning images by digest (--mirror applies to the lookups too): the carried lock
    /// and image list name every image by digest, and exactly those manifests are carried.
    #[command(flatten)]
    pub digests: super::DigestArgs,
    /// Refuse (and write nothing) unless every image has a cosign signature, carried from
    /// its source registry, made by one of these keys, and every attestation carried for it
    /// verifies with them (cosign's ECDSA P-256 cosign.pub; repeatable).
    #[arg(long, value_name = "KEY.pub")]
    pub verify_images: Vec<PathBuf>,
    /// What to pull.
    #[command(flatten)]
    pub pull: PullFlags,
    /// Connection flags.
    #[command(flatten)]
    pub connection: Connection,
}

/// `airgap import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The archive `airgap export` wrote.
    pub archive: PathBuf,
    /// The private registry: HOST[:PORT][/PREFIX].
    #[arg(long, value_parser = super::images_cmds::parse_registry)]
    pub registry: Registry,
    /// The folder to unpack into (must not exist).
    #[arg(long)]
    pub out: PathBuf,
    /// Accept only an archive signed with this public key (PREFIX.pub from keygen, or a
    /// minisign public key); anything else is refused before anything is pushed or written.
    #[arg(long, value_name = "PUB")]
    pub verify_key: Option<PathBuf>,
    /// For a delta archive: the folder holding the charms it leaves out (the `charms/`
    /// folder of the earlier import); each is checked against its recorded checksum.
    #[arg(long, value_name = "DIR")]
    pub charms_from: Option<PathBuf>,
    /// Also publish the charms as OCI artifacts PREFIX/<name>:<version> (as `publish
    /// --registry` does), so other machines resolve them with --charms oci://...
    #[arg(long, value_name = "HOST[:PORT]/PREFIX", value_parser = super::images_cmds::parse_registry)]
    pub charms_registry: Option<Registry>,
    /// Write the archive's bill of materials (CycloneDX JSON) to FILE once the archive is
    /// checked, before anything is pushed. Import refuses an archive whose bill of materials
    /// does not match its contents, with or without this flag.
    #[arg(long, value_name = "FILE")]
    pub sbom_out: Option<PathBuf>,
    /// Refuse the archive, before anything is pushed, unless every image has a cosign
    /// signature by one of these keys and every attestation carried for it verifies with
    /// them (cosign's ECDSA P-256 cosign.pub; repeatable).
    #[arg(long, value_name = "KEY.pub")]
    pub verify_images: Vec<PathBuf>,
    /// Credentials.
    #[command(flatten)]
    pub login: Login,
    /// Connection flags.
    #[command(flatten)]
    pub connection: Connection,
}

fn parse_reference(text: &str) -> Result<Reference, String> {
    text.parse().map_err(|e: crate::images::ReferenceError| e.why)
}

pub(super) fn run(out: &mut impl Write, command: AirgapCommand) -> Result<ExitCode, Error> {
    match command {
        AirgapCommand::Export(args) => export(out, *args),
        AirgapCommand::Import(args) => import(out, *args),
    }
}

fn export(out: &mut impl Write, args: ExportArgs) -> Result<ExitCode, Error> {
    let resolve =
        args.resolve.clone().with(&args.connection.tls).pinning(&args.digests, &args.pull.mirror);
    let options = ExportOptions {
        resolve: resolve.options(),
        out: args.out.clone(),
        sign_key: args.sign_key.clone(),
        since: args.since.clone(),
        extra_images: args.images.clone(),
        images_from: args.images_from.clone(),
        verify_images: args.verify_images.clone(),
        platform: args.pull.platform.clone(),
        jobs: args.connection.jobs.into(),
    };
    let mut warnings = Vec::new();
    let export = Export::prepare(&options, &mut warnings);
    print_warnings(&warnings);
    let export = export?;
    let client = client(&args.connection, None)?;
    let bars = Bars::new(args.connection.quiet);
    remove_stale_leftovers(args.out.parent().unwrap_or(Path::new(".")), "export");
    let exported = until_signalled(export.write(&client, &bars));
    bars.clear();
    let Some(Exported { contents, signed_by: key_id }) = exported? else {
        return Err(Error::Interrupted(format!(
            "{} was not written; the unfinished archive was removed",
            args.out.display()
        )));
    };
    if !args.connection.quiet {
        line(
            out,
            format_args!(
                "wrote {}: bundle, {}, {}, {}{}{}{}",
                args.out.display(),
                count(contents.overlays.len(), "overlay"),
                count(contents.charms.len(), "charm"),
                count(contents.images.len(), "image"),
                match contents.extra_images.len() {
                    0 => String::new(),
                    n => format!(" (+{n} extra)"),
                },
                if contents.lock.is_some() { ", lock" } else { "" },
                signed_by(key_id.as_deref())
            ),
        )?;
        if let Some(delta) = &contents.delta {
            line(
                out,
                format_args!(
                    "delta against {}: left out {} ({} bytes) and {}",
                    count(delta.since.len(), "archive"),
                    count(delta.blobs.len(), "blob"),
                    delta.left_out_bytes(),
                    count(delta.charms.len(), "charm")
                ),
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn import(out: &mut impl Write, args: ImportArgs) -> Result<ExitCode, Error> {
    let credentials = read_login(&args.login)?.map(|c| (args.registry.host.clone(), c));
    let client = client(&args.connection, credentials)?;
    let options = ImportOptions {
        archive: args.archive.clone(),
        target: crate::airgap::ImportOptions {
            registry: args.registry,
            jobs: args.connection.jobs.into(),
            out: args.out.clone(),
            charms_from: args.charms_from,
            charms_registry: args.charms_registry,
            sbom_out: args.sbom_out,
        },
        verify_key: args.verify_key.clone(),
        verify_images: args.verify_images,
    };
    let bars = Arc::new(Bars::new(args.connection.quiet));
    remove_stale_leftovers(args.out.parent().unwrap_or(Path::new(".")), "import");
    let imported = until_signalled(crate::ops::airgap::import(&client, &options, bars.clone()));
    bars.clear();
    let Some(report) = imported? else {
        return Err(Error::Interrupted(format!(
            "{} was not written; the staging folder was removed (images pushed so far stay in \
             the registry: a re-run skips them)",
            args.out.display()
        )));
    };
    if let Some(warning) = report.authenticity.warning(&args.archive.display().to_string()) {
        eprintln!("warning: {}", crate::diag::escape_controls(&warning));
    }
    if !args.connection.quiet {
        if let Authenticity::Verified(id) = &report.authenticity {
            line(out, format_args!("verified: signed by key {id}"))?;
        }
        print_report(out, &report.push)?;
        for c in &report.charms_pushed {
            let what = if c.added { "pushed charm" } else { "charm unchanged" };
            line(out, format_args!("{what} {} {}: {}", c.name, c.version, c.reference))?;
        }
        line(out, format_args!("unpacked into {}", args.out.display()))?;
        if let Some(script) = &report.juju_script {
            line(out, format_args!("next: juju add-model <name>, then {}", script.display()))?;
            return Ok(ExitCode::SUCCESS);
        }
        let mut deploy = format!("charmer deploy {}", report.bundle.display());
        for overlay in &report.overlays {
            deploy.push_str(&format!(" --overlay {}", overlay.display()));
        }
        deploy
            .push_str(&format!(" --image-map {}", args.out.join("retagged-images.txt").display()));
        if let (Authenticity::Verified(_), Some(key)) = (&report.authenticity, &args.verify_key) {
            // Deploy re-checks the folder against the signed manifest it kept.
            deploy.push_str(&format!(" --verify-key {}", key.display()));
        }
        line(out, format_args!("next: {deploy}"))?;
    }
    Ok(ExitCode::SUCCESS)
}
