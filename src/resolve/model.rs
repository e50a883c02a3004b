//! The resolved model: the one contract every later stage (render, images, deploy, graph,
//! airgap) reads. Built only by [`super::resolve`]; never re-reads files.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::charm::{Charm, ConfigValue};
use crate::images::{Reference, Registry};

/// A bundle resolved against a charm repository: exact charms, typed config with
/// provenance, relations with their data, and every image source → target.
#[derive(Debug, Clone)]
pub struct Model {
    /// The bundle's `name:`.
    pub name: String,
    /// The bundle file it came from.
    pub bundle_file: PathBuf,
    /// The namespace manifests are rendered for.
    pub namespace: String,
    /// The private registry images were relocated to, if any.
    pub registry: Option<Registry>,
    /// Applications by name.
    pub applications: BTreeMap<String, Application>,
    /// Relations, sorted.
    pub relations: Vec<Relation>,
}

/// One application of the model.
#[derive(Debug, Clone)]
pub struct Application {
    /// Application name (the bundle key).
    pub name: String,
    /// The exact charm chosen.
    pub charm: Arc<Charm>,
    /// Number of units (pods) wanted.
    pub scale: u32,
    /// Juju's `trust:` (the charm may manage cluster-scoped objects).
    pub trust: bool,
    /// Effective config: every option that has a value (default or set), with where the
    /// value came from.
    pub config: BTreeMap<String, Setting>,
    /// Images by resource name.
    pub images: BTreeMap<String, Image>,
    /// Relation data this application receives, by its own endpoint name: one entry per
    /// related application, sorted by that application's name.
    pub relation_data: BTreeMap<String, Vec<RelationData>>,
    /// Names of Secrets that must exist in the namespace before deploying (from
    /// `secret-ref` options and the bundle's `required-secrets:`).
    pub required_secrets: Vec<String>,
}

/// A config value and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    /// The typed value.
    pub value: ConfigValue,
    /// Its source.
    pub source: Source,
}

/// Where a config value came from, in merge order (later wins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "file")]
pub enum Source {
    /// The charm's `config.yaml` default.
    Default,
    /// The bundle file.
    Bundle(PathBuf),
    /// An overlay file.
    Overlay(PathBuf),
    /// A `--config-file APP=FILE`.
    ConfigFile(PathBuf),
    /// A `--config APP.KEY=VALUE`.
    CommandLine,
}

/// One image a charm runs, before and after relocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Image {
    /// The charm's `upstream-source` (or the bundle's resource override).
    pub source: Reference,
    /// What manifests use: the source relocated to the private registry (or taken from the
    /// image map), or the source itself when no registry is given.
    pub target: Reference,
}

/// Data a providing endpoint publishes to one related application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RelationData {
    /// The providing application.
    pub app: String,
    /// The providing endpoint.
    pub endpoint: String,
    /// The interface.
    pub interface: String,
    /// Key → value, rendered from the provider's `publishes:` templates.
    pub data: BTreeMap<String, String>,
}

/// A relation between two application endpoints, stored with the ends in sorted order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Relation {
    /// One end: (application, endpoint).
    pub a: (String, String),
    /// The other end.
    pub b: (String, String),
    /// The shared interface.
    pub interface: String,
}
