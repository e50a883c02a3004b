//! `check`, `render`, `images list`: the resolver and renderer from the command line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use super::{line, stdout_error, Output, TlsArgs};
use crate::bundle::{ConfigFileOverride, ConfigOverride};
use crate::images::Registry;
use crate::io_error::IoResultExt;
use crate::resolve::{Lock, Model};
use crate::transport::TlsOptions;
use crate::Error;

/// The flags every command that resolves a bundle takes.
#[derive(Debug, Clone, Args)]
pub struct ResolveArgs {
    /// The bundle: a bundle.yaml or a folder holding one.
    pub bundle: PathBuf,
    /// Folder of charm sources and .charm archives, or a published index: a folder written
    /// by charmer publish, its index.yaml, or an http(s):// URL of either (repeatable;
    /// default: charms/ and dist/ beside the bundle or in the nearest folder above it).
    #[arg(long = "charms", value_name = "DIR|INDEX|URL")]
    pub charm_dirs: Vec<PathBuf>,
    /// Accept only charms signed with this public key (from published indexes or signed
    /// .charm archives; source folders are refused). On a folder `airgap import` unpacked,
    /// its signed manifest is checked first and authenticates the bundle, overlays, charms
    /// and image digests.
    #[arg(long, value_name = "PUB")]
    pub verify_key: Option<PathBuf>,
    /// When a source folder and an archive in the charm folders have the same name and
    /// version but different content, take the source folder (with a warning) instead of
    /// refusing both.
    #[arg(long)]
    pub prefer_source: bool,
    /// Overlay applied on the bundle (repeatable, in order).
    #[arg(long = "overlay", value_name = "FILE")]
    pub overlays: Vec<PathBuf>,
    /// Override one option: APP.KEY=VALUE (repeatable; wins over everything else).
    #[arg(long = "config", value_name = "APP.KEY=VALUE")]
    pub config: Vec<ConfigOverride>,
    /// Options for one application from a YAML file: APP=FILE (repeatable).
    #[arg(long = "config-file", value_name = "APP=FILE")]
    pub config_files: Vec<ConfigFileOverride>,
    /// Private registry to relocate every image to: HOST[:PORT][/PREFIX].
    #[arg(long, value_name = "HOST[:PORT][/PREFIX]")]
    pub registry: Option<Registry>,
    /// A retagged-images.txt whose images are used before --registry.
    #[arg(long, value_name = "FILE")]
    pub image_map: Option<PathBuf>,
    /// Namespace to render for (default: the bundle's name).
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// NetworkPolicies to render: `relations` (each application admits only its related
    /// applications and its exposed ports) or `none`; wins over the bundle's
    /// `network-policies:` (default none).
    #[arg(long, value_name = "none|relations")]
    pub network_policies: Option<crate::bundle::NetworkPolicies>,
    /// How to reach published indexes given as URLs: the command's --ca-file and
    /// --insecure-http (see [`ResolveArgs::with`]).
    #[arg(skip)]
    pub tls: TlsOptions,
    /// Whether to pin images by digest and require pins: the command's --pin-digests and
    /// --require-digests (see [`ResolveArgs::pinning`]).
    #[arg(skip)]
    pub digests: DigestArgs,
    /// The `--mirror NAME=HOST` pairs digests are looked up through.
    #[arg(skip)]
    pub mirrors: Vec<String>,
}

impl ResolveArgs {
    /// These arguments with the command's TLS flags, for index URLs.
    pub fn with(mut self, tls: &TlsArgs) -> ResolveArgs {
        self.tls = tls.options();
        self
    }

    /// These arguments with the command's --pin-digests, --require-digests and --mirror.
    pub fn pinning(mut self, digests: &DigestArgs, mirrors: &[String]) -> ResolveArgs {
        self.digests = digests.clone();
        self.mirrors = mirrors.to_vec();
        self
    }

    /// The library's options for these arguments.
    pub fn options(&self) -> crate::ops::ResolveOptions {
        crate::ops::ResolveOptions {
            bundle: self.bundle.clone(),
            charm_dirs: self.charm_dirs.clone(),
            verify_key: self.verify_key.clone(),
            overlays: self.overlays.clone(),
            config: self.config.clone(),
            config_files: self.config_files.clone(),
            registry: self.registry.clone(),
            image_map: self.image_map.clone(),
            namespace: self.namespace.clone(),
            network_policies: self.network_policies,
            tls: self.tls.clone(),
            prefer_source: self.prefer_source,
            pin_digests: self.digests.pin_digests,
            require_digests: self.digests.require_digests,
            mirrors: self.mirrors.clone(),
        }
    }

    /// Resolves the bundle ([`crate::ops::resolve`]), printing its warnings.
    pub fn resolve(&self) -> Result<Model, Error> {
        let mut warnings = Vec::new();
        let model = crate::ops::resolve(&self.options(), &mut warnings);
        print_warnings(&warnings);
        model
    }
}

/// Pinning images by digest, for the commands whose output names images.
#[derive(Debug, Clone, Default, Args)]
pub struct DigestArgs {
    /// Ask each image's source registry which manifest its tag points to now and pin the
    /// image by that digest (name:tag@sha256:...) in the manifests, the plan and bundle.lock;
    /// images pinned by digest already are not asked (connected side; --ca-file and
    /// --insecure-http apply, credentials come from the Docker config).
    #[arg(long)]
    pub pin_digests: bool,
    /// Refuse any image that is not pinned by digest (after --pin-digests), one line per
    /// application resource: the lint for production deploys.
    #[arg(long)]
    pub require_digests: bool,
}

/// `--mirror` for the commands that reach registries only to pin digests.
#[derive(Debug, Clone, Default, Args)]
pub struct PinMirrors {
    /// With --pin-digests, ask a registry at another host: NAME=HOST[:PORT][/PATH] (a mirror,
    /// or the API host of a registry whose name is not its address; docker.io needs one).
    /// Repeatable; wins over registries.conf's mirrors.
    #[arg(long, value_name = "NAME=HOST", requires = "pin_digests")]
    pub mirror: Vec<String>,
}

/// Prints each warning on stderr as one `warning: FILE: KEY: ...` line (errors look alike).
pub(crate) fn print_warnings(warnings: &[crate::diag::Problem]) {
    let mut seen = std::collections::BTreeSet::new();
    for w in warnings {
        let text = w.to_string();
        if seen.insert(text.clone()) {
            eprintln!("warning: {text}");
        }
    }
}

pub(super) fn check(
    out: &mut impl Write,
    args: &ResolveArgs,
    output: Output,
) -> Result<ExitCode, Error> {
    let mut warnings = Vec::new();
    let plan = crate::ops::check(&args.options(), &mut warnings);
    print_warnings(&warnings);
    let plan = plan?;
    match output {
        Output::Json => {
            serde_json::to_writer_pretty(&mut *out, &plan).map_err(|e| stdout_error(e.into()))?;
            line(out, "")?;
        }
        Output::Text => write!(out, "{plan}").map_err(stdout_error)?,
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn render(
    out: &mut impl Write,
    args: &ResolveArgs,
    dest: Option<&Path>,
    lock: Option<&Path>,
) -> Result<ExitCode, Error> {
    let model = args.resolve()?;
    let manifests = crate::render::render(&model)?;
    let lock_text = || Lock::of(&model).to_yaml();
    // No --out, or `--out -`: one stream on stdout.
    match dest.filter(|d| *d != Path::new("-")) {
        None => {
            for (_, text) in manifests.by_app() {
                out.write_all(text.as_bytes()).map_err(stdout_error)?;
            }
        }
        Some(dir) => {
            let mut paths: Vec<PathBuf> =
                manifests.by_app().map(|(app, _)| dir.join(format!("{app}.yaml"))).collect();
            let stale: Vec<PathBuf> = previously_rendered(dir)
                .into_iter()
                .map(|app| dir.join(format!("{app}.yaml")))
                .filter(|path| path.is_file() && !paths.contains(path))
                .collect();
            // Each application's file is made and written in turn (memory: one at a time).
            let lock_file = lock.is_none().then(|| (dir.join("bundle.lock"), lock_text()));
            let files = manifests
                .by_app()
                .map(|(app, text)| (dir.join(format!("{app}.yaml")), text))
                .chain(lock_file);
            crate::output::write_files_from(dir, files)?;
            if lock.is_none() {
                paths.push(dir.join("bundle.lock"));
            }
            for path in &paths {
                line(out, path.display())?;
            }
            for path in stale {
                std::fs::remove_file(&path).at(&path)?;
                line(out, format_args!("removed {} (no longer in the bundle)", path.display()))?;
            }
        }
    }
    if let Some(path) = lock {
        crate::output::write_files(
            path.parent().unwrap_or(Path::new(".")),
            &[(path.to_path_buf(), lock_text())],
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The applications an earlier `render --out DIR` wrote, from the bundle.lock it left there:
/// their files go when the applications leave the bundle. Only files named after a locked
/// application are ever removed; without a readable lock in DIR, nothing is.
fn previously_rendered(dir: &Path) -> Vec<String> {
    let path = dir.join("bundle.lock");
    let Ok(text) = crate::contract::read_yaml_file(&path) else { return Vec::new() };
    match crate::airgap::parse_lock(&path.display().to_string(), &text) {
        Ok(lock) => lock.applications.into_keys().collect(),
        Err(e) => {
            tracing::warn!("{e}; files of applications no longer in the bundle are not removed");
            Vec::new()
        }
    }
}

pub(super) fn juju_script(
    out: &mut impl Write,
    args: &ResolveArgs,
    lock: Option<&Path>,
    file: Option<&Path>,
) -> Result<ExitCode, Error> {
    let model = args.resolve()?;
    if !crate::juju::has_operators(&model) {
        return Err(crate::diag::Problem::new(
            args.bundle.display().to_string(),
            "applications",
            "no application runs a Juju operator charm; there is nothing for Juju to deploy",
        )
        .hint("deploy charmer's own charms with charmer deploy")
        .into());
    }
    let lock = match lock {
        Some(path) => {
            let label = path.display().to_string();
            let text = crate::contract::read_yaml_file(path)
                .map_err(|e| crate::diag::Problem::new(&label, "", format!("cannot read: {e}")))?;
            Some(crate::airgap::parse_lock(&label, &text)?)
        }
        None => None,
    };
    let script = crate::juju::deploy_script(&model, lock.as_ref());
    match file {
        None => write!(out, "{script}").map_err(stdout_error)?,
        Some(path) => {
            crate::output::write_executable(path, script.as_bytes())?;
            line(out, path.display())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn images_list(
    out: &mut impl Write,
    args: &ResolveArgs,
    output: Output,
    why: Option<&str>,
) -> Result<ExitCode, Error> {
    let model = args.resolve()?;
    let list = model.image_list();
    if let Some(image) = why {
        let found = list.matching(image);
        if found.images.is_empty() {
            return Err(crate::diag::Problem::new(
                args.bundle.display().to_string(),
                image,
                "no application of the bundle uses this image",
            )
            .hint("run charmer images list to see them")
            .into());
        }
        if output == Output::Json {
            serde_json::to_writer_pretty(&mut *out, &found).map_err(|e| stdout_error(e.into()))?;
            return line(out, "").map(|_| ExitCode::SUCCESS);
        }
        let several = found.images.len() > 1;
        if several {
            line(out, format_args!("{image:?} matches {} images:", found.images.len()))?;
        }
        for entry in &found.images {
            if several {
                line(out, &entry.source)?;
            }
            for u in &entry.used_by {
                let indent = if several { "  " } else { "" };
                line(
                    out,
                    format_args!("{indent}{} (charm {} {}, {})", u.app, u.charm, u.version, u.need),
                )?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    match output {
        Output::Json => {
            serde_json::to_writer_pretty(&mut *out, &list).map_err(|e| stdout_error(e.into()))?;
            line(out, "")?;
        }
        Output::Text => {
            for entry in &list.images {
                // Images config options name say which (a comment `--from-list` skips).
                let options = entry.options();
                let note = match options.len() {
                    0 => String::new(),
                    _ => format!("  # config: {}", options.join(", ")),
                };
                if model.registry.is_some() || entry.source != entry.target {
                    line(out, format_args!("{} -> {}{note}", entry.source, entry.target))?;
                } else {
                    line(out, format_args!("{}{note}", entry.source))?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
