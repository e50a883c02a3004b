//! The command line: clap definitions and output formatting. Each command calls into the
//! library and prints what it returns; nothing below this module prints or exits.

mod airgap_cmds;
mod bundle_cmds;
mod charm_cmds;
mod day2_cmds;
mod deploy_cmds;
mod images_cmds;
mod publish_cmds;
mod rbac_cmds;
mod sbom_cmds;

pub use bundle_cmds::{DigestArgs, PinMirrors, ResolveArgs};
pub use deploy_cmds::{ApplyArgs, Deployed, KubeArgs, LockArgs};

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::io_error::IoError;
use crate::transport::TlsOptions;
use crate::Error;

/// How to reach servers over HTTP(S): registries and published indexes alike.
#[derive(Debug, Clone, clap::Args)]
pub struct TlsArgs {
    /// Also trust this CA certificate (PEM) for HTTPS: a private registry's or mirror's CA, or
    /// a registry's own self-signed certificate. Registries' certs.d folders are read too.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Speak plain HTTP, without TLS (only for servers that offer nothing else; an http://
    /// index URL needs it too).
    #[arg(long)]
    pub insecure_http: bool,
}

impl TlsArgs {
    /// The library's options for these flags.
    pub fn options(&self) -> TlsOptions {
        TlsOptions { ca_file: self.ca_file.clone(), insecure_http: self.insecure_http }
    }
}

/// What `--version` prints: the crate version, the commit and the build date (build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("CHARMER_COMMIT"),
    ", built ",
    env!("CHARMER_BUILD_DATE"),
    ")"
);

/// Package Kubernetes applications as .charm archives and deploy bundles of them into
/// air-gapped clusters, with no Docker and no internet.
#[derive(Debug, Parser)]
#[command(name = "charmer", version = VERSION, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// More log output (-v info, -vv debug); logs go to stderr.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Output format of commands that report data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Output {
    /// Human-readable text.
    #[default]
    Text,
    /// JSON, for scripts.
    Json,
}

/// What `charmer graph` draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum GraphFormat {
    /// A self-contained SVG picture.
    #[default]
    Svg,
    /// Graphviz DOT source.
    Dot,
}

/// charmer's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pack a charm source folder into a reproducible <name>_<version>.charm archive
    /// (charmcraft sources too: manifest.yaml and the unified charmcraft.yaml's files are
    /// generated as charmcraft does).
    Pack {
        /// The charm source folder (holding metadata.yaml or charmcraft.yaml).
        charm: PathBuf,
        /// Folder to write the archive into.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// Show a charm's name, version, options, images, endpoints, storage and containers.
    Inspect {
        /// A .charm archive or a charm source folder.
        charm: PathBuf,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Check .charm archives for structure and safety, and published folders (or their
    /// index.yaml) for checksums; with --key, signatures too. Exit 0 only when all are clean.
    Verify {
        /// The archives, published folders or index.yaml files to check.
        #[arg(required = true)]
        charms: Vec<PathBuf>,
        /// Public key (PREFIX.pub from keygen, or a minisign public key): every archive and
        /// index must carry a valid <file>.sig made with its secret key.
        #[arg(long, value_name = "PUB")]
        key: Option<PathBuf>,
        /// How to reach index URLs.
        #[command(flatten)]
        tls: TlsArgs,
    },
    /// Unpack a .charm archive into a new folder (after every safety check).
    Unpack {
        /// The archive.
        charm: PathBuf,
        /// The folder to create.
        #[arg(long)]
        out: PathBuf,
    },
    /// Validate a bundle against its charms without a cluster and print the plan.
    Check {
        /// The bundle and how to resolve it.
        #[command(flatten)]
        resolve: ResolveArgs,
        /// How to reach published indexes (and, with --pin-digests, registries).
        #[command(flatten)]
        tls: TlsArgs,
        /// Pinning images by digest.
        #[command(flatten)]
        digests: DigestArgs,
        /// Mirrors to pin through.
        #[command(flatten)]
        mirrors: PinMirrors,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Render a bundle's Kubernetes manifests (one file per application) and bundle.lock.
    Render {
        /// The bundle and how to resolve it.
        #[command(flatten)]
        resolve: ResolveArgs,
        /// How to reach published indexes (and, with --pin-digests, registries).
        #[command(flatten)]
        tls: TlsArgs,
        /// Pinning images by digest.
        #[command(flatten)]
        digests: DigestArgs,
        /// Mirrors to pin through.
        #[command(flatten)]
        mirrors: PinMirrors,
        /// Folder to write <app>.yaml files and bundle.lock into; `-` or absent: one YAML
        /// stream on stdout.
        #[arg(long, value_name = "DIR|-")]
        out: Option<PathBuf>,
        /// Where to write the lock file (default: DIR/bundle.lock with --out DIR; none on stdout).
        #[arg(long, value_name = "FILE")]
        lock: Option<PathBuf>,
    },
    /// Write the Juju side of a bundle of operator charms: a shell script of `juju deploy
    /// ./charms/<file> <app> --resource ... --config ... --trust --num-units N` and `juju
    /// integrate` lines (airgap import writes it as deploy-juju.sh by itself).
    JujuScript {
        /// The bundle and how to resolve it.
        #[command(flatten)]
        resolve: ResolveArgs,
        /// How to reach published indexes.
        #[command(flatten)]
        tls: TlsArgs,
        /// A bundle.lock whose images are pinned (after images push --lock): their digests
        /// go into --resource.
        #[arg(long, value_name = "FILE")]
        lock: Option<PathBuf>,
        /// File to write (mode 0755; default: stdout).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Image commands: list a bundle's images; move images without Docker (save them into
    /// an archive, push them into a private registry).
    #[command(subcommand)]
    Images(ImagesCommand),
    /// Carry a bundle into an air gap: one archive with bundle, charms, images and lock.
    #[command(subcommand)]
    Airgap(airgap_cmds::AirgapCommand),
    /// Write a bill of materials (CycloneDX 1.6 or SPDX 2.3 JSON) of a bundle or an archive:
    /// the bundle, every charm, every image and, for an archive, the packages inside each
    /// image read from its layers; `sbom diff OLD NEW` shows what changed between two.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Sbom(Box<sbom_cmds::SbomArgs>),
    /// Print the Role (and, only when the bundle has cluster-scoped objects, the ClusterRole)
    /// an identity needs to deploy, inspect, roll back and remove this bundle in its
    /// namespace, for an administrator to grant; nothing touches a cluster unless
    /// `--discover` is given.
    Rbac {
        /// The bundle and how to resolve it (-n: the namespace the Role is for).
        #[command(flatten)]
        resolve: ResolveArgs,
        /// How to reach published indexes.
        #[command(flatten)]
        tls: TlsArgs,
        /// Take resource names from the cluster's discovery (the kubeconfig's, or
        /// --kubeconfig/--context) instead of charmer's tables and the bundle's CRDs.
        #[arg(long)]
        discover: bool,
        /// The cluster to discover (with --discover only).
        #[command(flatten)]
        kube: deploy_cmds::KubeArgs,
    },
    /// Deploy a bundle into a namespace: resolve and render, preflight checks, server-side
    /// apply, prune, wait for readiness, record the revision.
    Deploy {
        /// The bundle and how to resolve it.
        #[command(flatten)]
        resolve: ResolveArgs,
        /// How to reach published indexes (and, with --pin-digests, registries).
        #[command(flatten)]
        tls: TlsArgs,
        /// Pinning images by digest.
        #[command(flatten)]
        digests: DigestArgs,
        /// Mirrors to pin through.
        #[command(flatten)]
        mirrors: PinMirrors,
        /// Which cluster and namespace.
        #[command(flatten)]
        kube: KubeArgs,
        /// Ask the API server what would change (server-side dry run) and print it; change
        /// nothing (so nothing is asked, waited for or locked).
        #[arg(long, conflicts_with_all = ["diff", "timeout", "unschedulable_grace", "rollback_on_failure", "wait_for_lock", "no_wait", "yes"])]
        dry_run: bool,
        /// Print a diff of live and intended objects; exit 0 with no changes, 1 with changes,
        /// more than 1 on errors.
        #[arg(long, conflicts_with_all = ["timeout", "unschedulable_grace", "rollback_on_failure", "wait_for_lock", "no_wait", "yes"])]
        diff: bool,
        /// Take over objects another bundle or another tool manages (preflight fails naming
        /// them otherwise).
        #[arg(long)]
        adopt: bool,
        /// How to apply and wait.
        #[command(flatten)]
        apply: ApplyArgs,
        /// Keep the --config and --config-file values of the deployed revision (flags given
        /// now win); without it they revert, with a warning naming each.
        #[arg(long)]
        reuse_config: bool,
        /// Image signatures to check first.
        #[command(flatten)]
        trust: deploy_cmds::ImageTrustArgs,
    },
    /// Show the deployed configuration of a bundle (or one application): every option's
    /// value and where it came from; secrets masked.
    Config {
        /// The bundle and namespace.
        #[command(flatten)]
        deployed: Deployed,
        /// Only this application.
        #[arg(value_name = "APP")]
        app: Option<String>,
        /// Which cluster.
        #[command(flatten)]
        kube: KubeArgs,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Show a deployed bundle: applications, versions, readiness, images, revisions.
    Status {
        /// The deployed bundle.
        #[command(flatten)]
        deployed: Deployed,
        /// Which cluster and namespace.
        #[command(flatten)]
        kube: KubeArgs,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Print the logs of every pod of a deployed application, each line prefixed with its
    /// pod and container; with -f, follow them and the pods that start later.
    Logs(day2_cmds::LogsArgs),
    /// Restart a deployed application's pods (a rollout restart, as kubectl does it, kept by
    /// later deploys), then wait for the new pods.
    Restart(day2_cmds::RestartArgs),
    /// List deployed bundles: namespace, revision, status and when it was last changed.
    List(day2_cmds::ListArgs),
    /// Delete exactly what a bundle deployed (never its namespace or CRDs) and its records;
    /// claims and the credentials their data was initialised with are kept.
    Remove {
        /// The deployed bundle.
        #[command(flatten)]
        deployed: Deployed,
        /// Which cluster and namespace.
        #[command(flatten)]
        kube: KubeArgs,
        /// Also delete the bundle's PersistentVolumeClaims (its data), the generated
        /// credentials of its applications with storage, objects marked keep, and what earlier
        /// removes and prunes kept.
        #[arg(long)]
        destroy_storage: bool,
        /// How to take the bundle's lock.
        #[command(flatten)]
        lock: LockArgs,
        /// Do not ask first (the question is asked only when stdin is a terminal).
        #[arg(short, long)]
        yes: bool,
    },
    /// Re-apply a recorded revision (default: the one before the current) as a new revision.
    Rollback {
        /// The deployed bundle.
        #[command(flatten)]
        deployed: Deployed,
        /// Which cluster and namespace.
        #[command(flatten)]
        kube: KubeArgs,
        /// The revision to go back to.
        #[arg(long, value_name = "N")]
        revision: Option<u32>,
        /// How to apply and wait.
        #[command(flatten)]
        apply: ApplyArgs,
        /// How to reach registries (preflight looks the revision's images up).
        #[command(flatten)]
        tls: TlsArgs,
    },
    /// Publish charms as release assets: <name>_<version>.charm archives, SHA256SUMS and
    /// index.yaml (and .sig signatures with --sign-key). Published versions are immutable.
    Publish {
        /// Charm source folders and .charm archives.
        #[arg(required = true)]
        charms: Vec<PathBuf>,
        /// The release folder to write (or add to).
        #[arg(long, required_unless_present = "registry")]
        out: Option<PathBuf>,
        /// Also (or instead) push each charm to this registry as an OCI artifact
        /// PREFIX/<name>:<version>: HOST[:PORT]/PREFIX.
        #[arg(long, value_name = "HOST[:PORT]/PREFIX", value_parser = images_cmds::parse_registry)]
        registry: Option<crate::images::Registry>,
        /// Secret key to sign with (PREFIX.key from keygen, or an unencrypted minisign key).
        #[arg(long, value_name = "KEY", env = "CHARMER_SIGN_KEY")]
        sign_key: Option<PathBuf>,
        /// Credentials for --registry.
        #[command(flatten)]
        login: images_cmds::Login,
        /// Connection flags for --registry.
        #[command(flatten)]
        connection: images_cmds::Connection,
    },
    /// Draw a bundle: applications (charm, version, scale), relations with their interfaces
    /// and ports, and how each application is reached (exposed Services and their ports,
    /// gateway hosts, routes), as a self-contained SVG or Graphviz DOT.
    Graph {
        /// The bundle and how to resolve it.
        #[command(flatten)]
        resolve: ResolveArgs,
        /// How to reach published indexes.
        #[command(flatten)]
        tls: TlsArgs,
        /// Drawing format.
        #[arg(long, value_enum, default_value_t)]
        format: GraphFormat,
        /// File to write (default: stdout).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Make an Ed25519 signing key pair in minisign's format: PREFIX.key (secret, mode 0600)
    /// and PREFIX.pub.
    Keygen {
        /// The path prefix of the two key files.
        #[arg(long, value_name = "PREFIX")]
        out: PathBuf,
    },
    /// Write SHA256SUMS over every file in a folder (and SHA256SUMS.sig with --sign-key), so
    /// the folder can be checked after it crossed the gap: `charmer verify DIR --key PUB`,
    /// `sha256sum -c SHA256SUMS` or `minisign -Vm SHA256SUMS -x SHA256SUMS.sig -p PUB`.
    Checksum {
        /// The folder.
        dir: PathBuf,
        /// Secret key (PREFIX.key from keygen) to sign SHA256SUMS with.
        #[arg(long, value_name = "KEY")]
        sign_key: Option<PathBuf>,
    },
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write man pages: charmer.1 and one per subcommand (charmer-deploy.1, ...).
    Man {
        /// Folder to write the pages into.
        #[arg(long)]
        out: PathBuf,
    },
}

/// `charmer images ...`.
#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// List every image a bundle can run (source, or source -> target with --registry).
    List {
        /// The bundle and how to resolve it.
        #[command(flatten)]
        resolve: ResolveArgs,
        /// How to reach published indexes (and, with --pin-digests, registries).
        #[command(flatten)]
        tls: TlsArgs,
        /// Pinning images by digest.
        #[command(flatten)]
        digests: DigestArgs,
        /// Mirrors to pin through.
        #[command(flatten)]
        mirrors: PinMirrors,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
        /// Name the applications, charms and resources (or config options) that need this
        /// image: a reference, or a repository name or path suffix (`mongo`,
        /// `istio/proxyv2:1.17.3`), which may match several images.
        #[arg(long, value_name = "IMAGE")]
        why: Option<String>,
    },
    /// Pull images (a bundle's, or a list's) from their registries into one OCI image
    /// layout archive, with no Docker.
    Save(images_cmds::SaveArgs),
    /// Push every image of an archive into a registry by digest, keeping tags, and write
    /// retagged-images.txt.
    Push(images_cmds::PushArgs),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode, Error> {
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Pack { charm, out: dir } => charm_cmds::pack(&mut out, &charm, &dir),
        Command::Inspect { charm, output } => charm_cmds::inspect(&mut out, &charm, output),
        Command::Verify { charms, key, tls } => {
            charm_cmds::verify(&mut out, &charms, key.as_deref(), &tls)
        }
        Command::Unpack { charm, out: dir } => charm_cmds::unpack(&mut out, &charm, &dir),
        Command::Check { resolve, tls, digests, mirrors, output } => {
            let resolve = resolve.with(&tls).pinning(&digests, &mirrors.mirror);
            bundle_cmds::check(&mut out, &resolve, output)
        }
        Command::Render { resolve, tls, digests, mirrors, out: dest, lock } => {
            let resolve = resolve.with(&tls).pinning(&digests, &mirrors.mirror);
            bundle_cmds::render(&mut out, &resolve, dest.as_deref(), lock.as_deref())
        }
        Command::JujuScript { resolve, tls, lock, out: file } => bundle_cmds::juju_script(
            &mut out,
            &resolve.with(&tls),
            lock.as_deref(),
            file.as_deref(),
        ),
        Command::Images(ImagesCommand::List { resolve, tls, digests, mirrors, output, why }) => {
            let resolve = resolve.with(&tls).pinning(&digests, &mirrors.mirror);
            bundle_cmds::images_list(&mut out, &resolve, output, why.as_deref())
        }
        Command::Images(ImagesCommand::Save(args)) => images_cmds::save(&mut out, args),
        Command::Images(ImagesCommand::Push(args)) => images_cmds::push(&mut out, args),
        Command::Airgap(command) => airgap_cmds::run(&mut out, command),
        Command::Sbom(args) => sbom_cmds::run(&mut out, *args),
        Command::Rbac { resolve, tls, discover, kube } => {
            rbac_cmds::rbac(&mut out, &resolve.with(&tls), discover, &kube)
        }
        Command::Config { deployed, app, kube, output } => {
            deploy_cmds::config(&mut out, &deployed, app.as_deref(), &kube, output)
        }
        Command::Deploy {
            resolve,
            tls,
            digests,
            mirrors,
            kube,
            dry_run,
            diff,
            adopt,
            apply,
            reuse_config,
            trust,
        } => {
            let mode = match (dry_run, diff) {
                (_, true) => deploy_cmds::Mode::Diff,
                (true, _) => deploy_cmds::Mode::DryRun,
                _ => deploy_cmds::Mode::Apply,
            };
            deploy_cmds::deploy(
                &mut out,
                &resolve.with(&tls).pinning(&digests, &mirrors.mirror),
                &kube,
                mode,
                adopt,
                &apply,
                reuse_config,
                &trust,
            )
        }
        Command::Status { deployed, kube, output } => {
            deploy_cmds::status(&mut out, &deployed, &kube, output)
        }
        Command::Logs(args) => day2_cmds::logs(&mut out, &args),
        Command::Restart(args) => day2_cmds::restart(&mut out, &args),
        Command::List(args) => day2_cmds::list(&mut out, &args),
        Command::Remove { deployed, kube, destroy_storage, lock, yes } => {
            deploy_cmds::remove(&mut out, &deployed, &kube, destroy_storage, &lock, yes)
        }
        Command::Rollback { deployed, kube, revision, apply, tls } => {
            deploy_cmds::rollback(&mut out, &deployed, &kube, revision, &apply, &tls.options())
        }
        Command::Publish { charms, out: dir, registry, sign_key, login, connection } => {
            let target = publish_cmds::Target { dir, registry, login, connection };
            publish_cmds::publish(&mut out, &charms, &target, sign_key.as_deref())
        }
        Command::Graph { resolve, tls, format, out: file } => {
            publish_cmds::graph(&mut out, &resolve.with(&tls), format, file.as_deref())
        }
        Command::Keygen { out: prefix } => publish_cmds::keygen(&mut out, &prefix),
        Command::Checksum { dir, sign_key } => {
            charm_cmds::checksum(&mut out, &dir, sign_key.as_deref())
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "charmer", &mut out);
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { out: dir } => man_pages(&mut out, &dir),
    }
}

/// Writes the man pages of charmer and every subcommand into `dir`.
fn man_pages(out: &mut impl Write, dir: &std::path::Path) -> Result<ExitCode, Error> {
    use clap::CommandFactory;
    let io = |source| Error::Io(IoError::new(dir, source));
    std::fs::create_dir_all(dir).map_err(io)?;
    clap_mangen::generate_to(Cli::command(), dir).map_err(io)?;
    // One page per visible command, as generate_to writes them (it leaves out `help`).
    fn pages(command: &clap::Command) -> usize {
        let visible =
            command.get_subcommands().filter(|c| !c.is_hide_set() && c.get_name() != "help");
        1 + visible.map(pages).sum::<usize>()
    }
    let written = pages(&Cli::command());
    line(out, format_args!("wrote {} into {}", count(written, "man page"), dir.display()))?;
    Ok(ExitCode::SUCCESS)
}

/// A pointer from a neighbouring tool's habit to charmer's way, for an unknown option:
/// Helm's `--set` and `-f`/`--values`.
pub fn habit_hint(error: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if error.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(arg)) = error.get(ContextKind::InvalidArg) else { return None };
    let flag = arg.split('=').next().unwrap_or_default();
    match flag {
        "--set" | "--set-string" | "--set-json" => Some(format!(
            "{flag} is Helm's; charmer sets one option with --config APP.KEY=VALUE (repeatable)"
        )),
        "-f" | "--values" => Some(format!(
            "{flag} is Helm's; charmer reads an application's options from a YAML file with \
             --config-file APP=FILE, and a whole-bundle change with --overlay FILE"
        )),
        _ => None,
    }
}

use crate::ops::runtime;

/// Waits for SIGINT or SIGTERM; `false` when they cannot be listened for.
pub(super) async fn signalled() -> bool {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut term) = signal(SignalKind::terminate()) else { return false };
        tokio::select! {
            caught = tokio::signal::ctrl_c() => caught.is_ok(),
            _ = term.recv() => true,
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.is_ok()
    }
}

/// Exit code of an operation a signal stopped (as shells report SIGINT).
pub(super) const INTERRUPTED_EXIT: u8 = 130;

/// Runs `work` on a new runtime until it ends, or until SIGINT or SIGTERM arrives: then the
/// work is dropped, so the temporary files and folders it holds are removed by their
/// destructors (a killed process cannot do that: see `output::remove_stale_leftovers`), and
/// the result is `None`.
fn until_signalled<T, E>(
    work: impl std::future::Future<Output = Result<T, E>>,
) -> Result<Option<T>, Error>
where
    Error: From<E>,
{
    runtime()?.block_on(async {
        // The signal handlers are installed (first poll) before the work starts: a signal
        // right after the work's first request still stops it cleanly.
        tokio::select! {
            biased;
            true = signalled() => Ok(None),
            done = work => Ok(Some(done?)),
        }
    })
}

/// Says which leftovers of killed runs `output::remove_stale_leftovers` removed from `dir`.
fn remove_stale_leftovers(dir: &std::path::Path, kind: &str) {
    let dir = if dir.as_os_str().is_empty() { std::path::Path::new(".") } else { dir };
    for path in crate::output::remove_stale_leftovers(dir, kind) {
        eprintln!("removed {}, left by an {kind} that was killed", path.display());
    }
}

/// Sends logs to stderr: charmer's warnings by default, `-v` info (and libraries' warnings),
/// `-vv` debug; `RUST_LOG` overrides.
/// Colours only when stderr is a terminal and `NO_COLOR` is unset.
pub fn init_logging(verbose: u8) {
    // Only charmer's own lines by default: a library's (kube's, rustls's...) would repeat
    // what charmer reports itself, or say it in the library's words (kube's "Server cert
    // bypassed" for an insecure kubeconfig, which charmer words once). With -v they show too,
    // except kube's and the platform verifier's ERROR lines for every failed request and
    // rejected certificate, which charmer reports once: those only with -vv.
    let level = match verbose {
        0 => "charmer=warn",
        1 => "charmer=info,warn,kube_client::client::builder=off,rustls_platform_verifier=off",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colours_on(std::io::stderr().is_terminal()))
        .without_time()
        .try_init();
}

/// Whether to colour a stream: only a terminal, and never with `NO_COLOR` set (to anything
/// but the empty string, as no-color.org says).
fn colours_on(is_terminal: bool) -> bool {
    is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `n` and the noun, plural unless `n` is 1: `1 image`, `2 images`, `1 revision record`.
/// A duration flag (`90s`, `10m`, `2h`, `7d`) of at most a year: waits and log windows are
/// never longer, and a far larger one would overflow the clock when added to "now".
pub(crate) fn duration(text: &str) -> Result<std::time::Duration, String> {
    const MAX: std::time::Duration = std::time::Duration::from_secs(366 * 24 * 3600);
    let duration = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if duration > MAX {
        return Err("longer than the limit of 366 days".to_string());
    }
    Ok(duration)
}

/// A wait's `--timeout`: a duration no shorter than a wait can take, so a value that can
/// only fail (`0s`) is refused before anything is applied.
pub(crate) fn wait_timeout(text: &str) -> Result<std::time::Duration, String> {
    let timeout = duration(text)?;
    let check = crate::deploy::WaitOptions { timeout, ..Default::default() }.check();
    check.map(|()| timeout).map_err(|e| e.to_string())
}

pub(crate) fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Maps a failed write to stdout to an error naming the stream.
pub(crate) fn stdout_error(source: std::io::Error) -> Error {
    Error::Io(IoError::new("<stdout>", source))
}

/// Writes one line of styled parts: each part's text has its control characters escaped
/// first (as [`line`] does), then its style's codes are added, which console emits only when
/// stdout is a terminal and `NO_COLOR` is unset — so charmer's own colours reach a terminal,
/// and an untrusted text's escape sequences never do. Parts are joined with a space.
pub(crate) fn styled_line(
    out: &mut impl Write,
    parts: &[(&console::Style, &str)],
) -> Result<(), Error> {
    let parts: Vec<String> = parts
        .iter()
        .map(|(style, text)| style.apply_to(crate::diag::escape_controls(text)).to_string())
        .collect();
    writeln!(out, "{}", parts.join(" ")).map_err(stdout_error)
}

/// Writes a line to `out`, mapping failure to [`Error::Io`].
/// Control characters are escaped: a line may quote an untrusted archive (a charm's summary,
/// an option's description) and must not send escape sequences to the terminal.
pub(crate) fn line(out: &mut impl Write, text: impl std::fmt::Display) -> Result<(), Error> {
    writeln!(out, "{}", crate::diag::escape_controls(&text.to_string())).map_err(stdout_error)
}
