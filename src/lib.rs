//! charmer: package Kubernetes applications as Juju-style `.charm` archives and deploy
//! bundles of them into air-gapped clusters.
//!
//! Data flows one way, one module per stage:
//! files → [`charm`] → ... (see `docs/architecture.md`).
//! The binary (`src/main.rs`) only parses the command line with [`cli`] and maps
//! [`Error`] to an exit code.

pub mod airgap;
pub mod bundle;
pub mod charm;
pub mod cli;
pub mod contract;
pub mod deploy;
pub mod diag;
pub mod digest;
pub mod graph;
pub mod images;
pub mod io_error;
pub mod juju;
pub mod kube_rules;
pub mod ops;
pub mod output;
pub mod parallel;
pub mod publish;
pub mod registry;
pub mod render;
pub mod repo;
pub mod resolve;
pub mod sbom;
pub mod template;
pub mod transport;

use std::process::ExitCode;

/// Every error a charmer command can end with; each stage's own error type converts into it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Loading, reading or packing a charm failed.
    #[error(transparent)]
    Charm(#[from] charm::CharmError),
    /// An air-gap export or import failed.
    #[error(transparent)]
    Airgap(#[from] airgap::AirgapError),
    /// Moving images (registries, image archives) failed.
    #[error(transparent)]
    Registry(#[from] registry::RegistryError),
    /// Deploying, or reading a deployed bundle, failed.
    #[error(transparent)]
    Deploy(#[from] deploy::DeployError),
    /// Resolving a bundle failed.
    #[error(transparent)]
    Resolve(#[from] resolve::ResolveError),
    /// Rendering failed.
    #[error(transparent)]
    Render(#[from] render::RenderError),
    /// Making or reading a bill of materials failed.
    #[error(transparent)]
    Sbom(#[from] sbom::SbomError),
    /// An error that ends the process with its own exit code (`deploy --diff` exits 2 on
    /// errors, as `kubectl diff` does, because 1 means "changes").
    #[error("{source}")]
    Exit {
        /// The exit code.
        code: u8,
        /// The error.
        source: Box<Error>,
    },
    /// A signal (SIGINT, SIGTERM) stopped a command that leaves nothing behind: what it
    /// cleaned up. Exits 130, as shells report SIGINT.
    #[error("interrupted: {0}")]
    Interrupted(String),
    /// Publishing, signing or reading published charms failed.
    #[error(transparent)]
    Publish(#[from] publish::PublishError),
    /// The input is invalid; every problem is listed.
    #[error("{0}")]
    Invalid(#[from] diag::Problems),
    /// A file or stream could not be read or written.
    #[error(transparent)]
    Io(#[from] io_error::IoError),
}

impl Error {
    /// The process exit code for this error: 1 for every user-facing failure (usage errors,
    /// exit 2, are clap's before any command runs).
    pub fn exit_code(&self) -> ExitCode {
        match self {
            // The reader went away (`charmer render | head`): not a failure of charmer's.
            _ if self.is_broken_pipe() => ExitCode::SUCCESS,
            Error::Exit { code, .. } => ExitCode::from(*code),
            Error::Interrupted(_) => ExitCode::from(130),
            _ => ExitCode::from(1),
        }
    }
}

impl Error {
    /// True when writing to stdout failed because its reader closed the pipe; the binary
    /// then exits quietly, as other Unix tools do.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io(e) if e.source.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

impl From<diag::Problem> for Error {
    fn from(problem: diag::Problem) -> Self {
        Error::Invalid(problem.into())
    }
}
