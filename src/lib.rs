//! charmer: package Kubernetes applications as Juju-style `.charm` archives and deploy
//! bundles of them into air-gapped clusters.
//!
//! Data flows one way, one module per stage:
//! files → [`charm`] → ... (see `docs/architecture.md`).
//! The binary (`src/main.rs`) only parses the command line with [`cli`] and maps
//! [`Error`] to an exit code.

pub mod airgap;
pub mod charm;
pub mod cli;
pub mod diag;
pub mod digest;
pub mod images;
pub mod registry;
pub mod render;
pub mod resolve;

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
    /// The input is invalid; every problem is listed.
    #[error("{0}")]
    Invalid(#[from] diag::Problems),
    /// Output could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file or stream.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl Error {
    /// The process exit code for this error: 1 for every user-facing failure (usage errors,
    /// exit 2, are clap's before any command runs).
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(1)
    }
}
