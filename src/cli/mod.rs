//! The command line: clap definitions and output formatting. Each command calls into the
//! library and prints what it returns; nothing below this module prints or exits.

mod airgap_cmds;
mod charm_cmds;
mod images_cmds;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::Error;

/// Package Kubernetes applications as .charm archives and deploy bundles of them into
/// air-gapped clusters, with no Docker and no internet.
#[derive(Debug, Parser)]
#[command(name = "charmer", version, propagate_version = true, max_term_width = 100)]
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

/// charmer's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pack a charm source folder into a reproducible <name>_<version>.charm archive.
    Pack {
        /// The charm source folder (holding metadata.yaml, config.yaml, version, templates/).
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
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Check .charm archives for structure and safety; exit 0 only when all are clean.
    Verify {
        /// The archives to check.
        #[arg(required = true)]
        charms: Vec<PathBuf>,
    },
    /// Unpack a .charm archive into a new folder (after every safety check).
    Unpack {
        /// The archive.
        charm: PathBuf,
        /// The folder to create.
        #[arg(long)]
        out: PathBuf,
    },
    /// Move container images without Docker: save them into an archive, push them into a
    /// private registry.
    Images {
        /// What to do with images.
        #[command(subcommand)]
        command: images_cmds::ImagesCommand,
    },
    /// Carry a bundle into an air gap: one archive with bundle, charms, images and lock.
    Airgap {
        /// Export or import.
        #[command(subcommand)]
        command: airgap_cmds::AirgapCommand,
    },
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode, Error> {
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Pack { charm, out: dir } => charm_cmds::pack(&mut out, &charm, &dir),
        Command::Inspect { charm, output } => charm_cmds::inspect(&mut out, &charm, output),
        Command::Verify { charms } => charm_cmds::verify(&mut out, &charms),
        Command::Unpack { charm, out: dir } => charm_cmds::unpack(&mut out, &charm, &dir),
        Command::Images { command } => images_cmds::run(&mut out, command),
        Command::Airgap { command } => airgap_cmds::run(&mut out, command),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "charmer", &mut out);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Sends logs to stderr: warnings by default, `-v` info, `-vv` debug; `RUST_LOG` overrides.
pub fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).without_time().try_init();
}

/// Maps a failed write to stdout to an error naming the stream.
pub(crate) fn stdout_error(source: std::io::Error) -> Error {
    Error::Io { path: "<stdout>".to_string(), source }
}

/// Writes a line to `out`, mapping failure to [`Error::Io`].
pub(crate) fn line(out: &mut impl Write, text: impl std::fmt::Display) -> Result<(), Error> {
    writeln!(out, "{text}").map_err(stdout_error)
}
