//! `images save`, `images push`, and what the transfer commands share: registry connection
//! flags, credentials from the command line, progress bars.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{count, line, runtime, ResolveArgs, TlsArgs};
use crate::airgap;
use crate::diag::{Problem, Problems};
use crate::images::{self, Reference, Registry};
use crate::io_error::IoResultExt;
use crate::publish;
use crate::registry::archive::ImageArchive;
use crate::registry::auth::{Credentials, Keychain};
use crate::registry::client::{Client, ClientOptions};
use crate::registry::manifest::Platform;
use crate::registry::progress::{Progress, Task};
use crate::registry::pull::PullOptions;
use crate::registry::push::{self, PushOptions, PushReport};
use crate::registry::tarindex::Limits;
use crate::resolve::Model;
use crate::Error;

/// Flags for how to talk to registries.
#[derive(Debug, Args)]
pub struct Connection {
    /// TLS flags.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Transfers at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// Retries of a failed request (waiting 0.5 s, 1 s, 2 s... between tries).
    #[arg(long, default_value_t = 5)]
    pub retries: u32,
    /// No progress bars (they are also off when stderr is not a terminal).
    #[arg(long, short)]
    pub quiet: bool,
}

/// Where credentials for the target registry come from.
#[derive(Debug, Args)]
pub struct Login {
    /// User name for the target registry (with --password-stdin); without it, the Docker
    /// config's credentials are used, if any.
    #[arg(long, requires = "password_stdin")]
    pub username: Option<String>,
    /// Read the password (or token) for --username from standard input.
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
}

/// `images save`: a bundle's images, or a list's.
#[derive(Debug, Args)]
pub struct SaveArgs {
    /// The bundle whose images to save, and the resolver flags.
    #[command(flatten)]
    pub resolve: Option<ResolveArgs>,
    /// Save the images of this file instead (one per line; `images list` output works).
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "bundle",
        required_unless_present = "bundle"
    )]
    pub from_list: Option<PathBuf>,
    /// The archive to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Add SHA256SUMS (every member) and sign it with this secret key (PREFIX.key from
    /// keygen, or an unencrypted minisign key).
    #[arg(long, value_name = "KEY", env = "CHARMER_SIGN_KEY")]
    pub sign_key: Option<PathBuf>,
    /// What to pull.
    #[command(flatten)]
    pub pull: PullFlags,
    /// Connection flags.
    #[command(flatten)]
    pub connection: Connection,
}

/// Flags for pulling images from their registries.
#[derive(Debug, Args)]
pub struct PullFlags {
    /// Keep only this platform of multi-platform images (os/arch[/variant]); default: all.
    #[arg(long, value_parser = parse_platform)]
    pub platform: Option<Platform>,
    /// Reach a registry at another host: NAME=HOST[:PORT][/PATH] (a mirror, or the API host
    /// of a registry whose name is not its address). Repeatable; wins over registries.conf's
    /// mirrors.
    #[arg(long, value_name = "NAME=HOST")]
    pub mirror: Vec<String>,
}

impl PullFlags {
    /// The pull options these flags and `connection` ask for.
    pub(super) fn options(self, connection: &Connection) -> Result<PullOptions, Error> {
        let mirrors = crate::ops::parse_mirrors(&self.mirror)?;
        Ok(PullOptions { platform: self.platform, jobs: connection.jobs.into(), mirrors })
    }
}

/// `images push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The archives (one or more, pushed in order): from `images save` or `airgap export`,
    /// `docker save` (plain or gzip'd), or `skopeo copy ... oci-archive:`/`docker-archive:`.
    #[arg(required = true, value_name = "ARCHIVE")]
    pub archives: Vec<PathBuf>,
    /// The target registry: HOST[:PORT][/PREFIX].
    #[arg(long, value_parser = parse_registry)]
    pub registry: Registry,
    /// Write the pushed images of every archive (seed 001's format, with digests) here.
    #[arg(long, default_value = "retagged-images.txt", value_name = "FILE")]
    pub retagged_out: PathBuf,
    /// Point this bundle.lock's images at where they were pushed (with digests).
    #[arg(long, value_name = "FILE")]
    pub lock: Option<PathBuf>,
    /// Accept only an archive signed with this public key (from airgap export or images
    /// save --sign-key); its signature and every checksum are checked before anything is
    /// pushed or written.
    #[arg(long, value_name = "PUB")]
    pub verify_key: Option<PathBuf>,
    /// Refuse, before anything is pushed, any image without a cosign signature in the
    /// archive by one of these keys, or with an attestation that does not verify with them
    /// (cosign's ECDSA P-256 cosign.pub; repeatable).
    #[arg(long, value_name = "KEY.pub")]
    pub verify_images: Vec<PathBuf>,
    /// Credentials.
    #[command(flatten)]
    pub login: Login,
    /// Connection flags.
    #[command(flatten)]
    pub connection: Connection,
}

fn parse_platform(text: &str) -> Result<Platform, String> {
    text.parse()
}

pub(super) fn parse_registry(text: &str) -> Result<Registry, String> {
    text.parse().map_err(|e: images::ReferenceError| e.why)
}

pub(super) fn save(out: &mut impl Write, args: SaveArgs) -> Result<ExitCode, Error> {
    let sign_key = args.sign_key.as_deref().map(publish::load_secret_key).transpose()?;
    let references = match (&args.from_list, &args.resolve) {
        (Some(list), _) => crate::ops::airgap::read_image_list(list)?,
        (None, Some(resolve)) => {
            bundle_images(&resolve.clone().with(&args.connection.tls).resolve()?)
        }
        (None, None) => {
            return Err(Problems::from(Problem::new(
                "images save",
                "",
                "give a BUNDLE or --from-list FILE",
            ))
            .into())
        }
    };
    let options = args.pull.options(&args.connection)?;
    let client = client(&args.connection, None)?;
    let bars = Bars::new(args.connection.quiet);
    let pulled = runtime()?.block_on(airgap::save_images(
        &client,
        &references,
        &options,
        &args.out,
        sign_key.as_ref(),
        &bars,
    ))?;
    bars.clear();
    if !args.connection.quiet {
        for (reference, descriptor) in &pulled.images {
            line(out, format_args!("saved {reference}@{}", descriptor.digest))?;
        }
        let size = pulled.blob_bytes();
        line(
            out,
            format_args!(
                "wrote {}: {}, {}, {}{}",
                args.out.display(),
                count(pulled.images.len(), "image"),
                count(pulled.blobs.len(), "blob"),
                human_bytes(size),
                signed_by(sign_key.as_ref().map(|key| key.public().id()).as_deref())
            ),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn push(out: &mut impl Write, args: PushArgs) -> Result<ExitCode, Error> {
    let credentials = read_login(&args.login)?.map(|c| (args.registry.host.clone(), c));
    let client = client(&args.connection, credentials)?;
    let verify_key = args.verify_key.as_deref().map(publish::load_public_key).transpose()?;
    let bars = Arc::new(Bars::new(args.connection.quiet));
    // Every archive is opened (and verified) before anything is pushed.
    let mut archives = Vec::new();
    for path in &args.archives {
        archives.push(match &verify_key {
            Some(key) => {
                let tar = airgap::open_verified(path, key, bars.as_ref())?;
                ImageArchive::from_index(tar, &Limits::default())?
            }
            None => {
                let archive = ImageArchive::open(path, &Limits::default())?;
                let label = path.display().to_string();
                if let Some(warning) = airgap::unchecked_signature(archive.tar())
                    .and_then(|unchecked| unchecked.warning(&label))
                {
                    eprintln!("warning: {}", crate::diag::escape_controls(&warning));
                }
                archive
            }
        });
    }
    let cosign_keys = crate::registry::cosign::load_public_keys(&args.verify_images)?;
    for archive in &archives {
        airgap::verify_images(Some(archive), &cosign_keys)?;
    }
    let lock = match &args.lock {
        Some(path) => {
            let text = crate::contract::read_yaml_file(path).at(path)?;
            Some((path, airgap::parse_lock(&path.display().to_string(), &text)?))
        }
        None => None,
    };
    let registry = args.registry.clone();
    let options = PushOptions {
        registry: args.registry,
        jobs: args.connection.jobs.into(),
        verified: verify_key.is_some(),
        left_out: Default::default(),
    };
    let report = runtime()?.block_on(async {
        let mut total = PushReport::default();
        for archive in &archives {
            total.add(push::push(&client, archive, &options, bars.clone()).await?);
        }
        Ok::<_, Error>(total)
    });
    bars.clear();
    let report = report?;
    write_retagged(&args.retagged_out, &report)?;
    let pinned = match lock {
        Some((path, mut lock)) => {
            let pinned = airgap::pin_lock(&mut lock, &report, &registry);
            crate::output::write_atomically(path, lock.to_yaml().as_bytes())?;
            Some((path, pinned))
        }
        None => None,
    };
    if !args.connection.quiet {
        if let Some(key) = &verify_key {
            line(out, format_args!("verified: signed by key {}", key.id()))?;
        }
        print_report(out, &report)?;
        line(out, format_args!("wrote {}", args.retagged_out.display()))?;
        if let Some((path, pinned)) = pinned {
            line(out, format_args!("pinned {} in {}", count(pinned, "image"), path.display()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per image, then totals.
pub(super) fn print_report(out: &mut impl Write, report: &PushReport) -> Result<(), Error> {
    for image in &report.images {
        let verb = if image.already_present { "present" } else { "pushed " };
        line(out, format_args!("{verb} {} -> {}", image.source, image.target))?;
    }
    line(
        out,
        format_args!(
            "{}: {} sent ({}), {} mounted, {} already there",
            count(report.images.len(), "image"),
            count(report.blobs_uploaded, "blob"),
            human_bytes(report.bytes_uploaded),
            report.blobs_mounted,
            report.blobs_present
        ),
    )
}

/// Writes `retagged-images.txt` atomically.
pub(super) fn write_retagged(path: &std::path::Path, report: &PushReport) -> Result<(), Error> {
    crate::output::write_atomically(path, report.retagged_images().as_bytes())?;
    Ok(())
}

/// Every image a resolved bundle runs (its sources: what to fetch).
fn bundle_images(model: &Model) -> Vec<Reference> {
    model.image_list().images.into_iter().map(|i| i.source).collect()
}

/// The password from standard input when `--password-stdin` is given (one trailing newline
/// removed, as `echo` adds it).
pub(super) fn read_login(login: &Login) -> Result<Option<Credentials>, Error> {
    let Some(username) = &login.username else { return Ok(None) };
    let mut password = String::new();
    std::io::stdin().read_to_string(&mut password).at("<stdin>")?;
    let password =
        password.strip_suffix('\n').map(|p| p.strip_suffix('\r').unwrap_or(p)).unwrap_or(&password);
    if password.is_empty() {
        return Err(Problems::from(Problem::new(
            "--password-stdin",
            "",
            "standard input held no password",
        ))
        .into());
    }
    Ok(Some(Credentials::new(username.clone(), password)))
}

/// A registry client from the connection flags.
pub(super) fn client(
    connection: &Connection,
    credentials: Option<(String, Credentials)>,
) -> Result<Client, Error> {
    let keychain = Keychain::new(credentials)?;
    let options =
        ClientOptions { tls: connection.tls.options(), retries: connection.retries, keychain };
    Ok(Client::new(options)?)
}

/// `; signed by key ID` after a summary line, when a signing key was given.
pub(super) fn signed_by(key_id: Option<&str>) -> String {
    key_id.map(|id| format!("; signed by key {id}")).unwrap_or_default()
}

/// `1.5 GiB`-style sizes.
fn human_bytes(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

/// Progress bars on stderr, one per transfer task (bytes, rate, ETA); hidden with --quiet,
/// and by indicatif itself when stderr is not a terminal.
pub(super) struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<Task, ProgressBar>>,
}

impl Bars {
    pub(super) fn new(quiet: bool) -> Bars {
        let target =
            if quiet { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() };
        Bars { multi: MultiProgress::with_draw_target(target), bars: Mutex::default() }
    }

    /// Removes the bars before the command prints its result.
    pub(super) fn clear(&self) {
        let _ = self.multi.clear();
    }

    fn bar(&self, task: Task) -> Option<ProgressBar> {
        self.bars.lock().unwrap_or_else(|e| e.into_inner()).get(&task).cloned()
    }
}

impl Progress for Bars {
    fn begin(&self, task: Task, total: u64) {
        if total == 0 {
            return;
        }
        let label = match task {
            Task::Verify => "verify",
            Task::Upload => "upload",
            Task::Download => "download",
            Task::Write => "write",
        };
        let style = ProgressStyle::with_template(
            "{prefix:>8} [{bar:32}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let bar = self.multi.add(ProgressBar::new(total).with_style(style).with_prefix(label));
        self.bars.lock().unwrap_or_else(|e| e.into_inner()).insert(task, bar);
    }

    fn advance(&self, task: Task, bytes: u64) {
        if let Some(bar) = self.bar(task) {
            bar.inc(bytes);
        }
    }

    fn end(&self, task: Task) {
        if let Some(bar) = self.bars.lock().unwrap_or_else(|e| e.into_inner()).remove(&task) {
            bar.finish_and_clear();
        }
    }
}
