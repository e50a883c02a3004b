//! The resolved model: the one contract every later stage (render, images, deploy, graph,
//! airgap) reads. Built only by [`super::resolve`]; never re-reads files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

pub use crate::bundle::{NetworkPolicies, Source};
use crate::charm::{Charm, ConfigValue};
use crate::images::config::{label, OptionImages};
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
    /// Which NetworkPolicies render adds (the bundle's `network-policies:`).
    pub network_policies: NetworkPolicies,
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
    /// The bundle's `channel:`, recorded.
    pub channel: Option<String>,
    /// The bundle's `constraints:`, for `juju deploy`.
    pub constraints: Option<String>,
    /// Effective config: every option that has a value (default or set), with where the
    /// value came from.
    pub config: BTreeMap<String, Setting>,
    /// Images by resource name.
    pub images: BTreeMap<String, Image>,
    /// Images an operator charm names in config options, by option (see
    /// [`crate::images::config`]); empty for charmer's own charms, which must declare them.
    pub config_images: BTreeMap<String, ConfigImages>,
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

/// One image a charm runs, before and after relocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Image {
    /// The charm's `upstream-source` (or the bundle's resource override).
    pub source: Reference,
    /// What manifests use: the source relocated to the private registry (or taken from the
    /// image map), or the source itself when no registry is given.
    pub target: Reference,
}

/// The images one config option names, before and after relocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigImages {
    /// How the option's value names them (what rewrites it).
    pub found: OptionImages,
    /// Each image by its part of the value (see [`OptionImages::parts`]).
    pub images: BTreeMap<String, Image>,
}

impl ConfigImages {
    /// The option's value `value` with every image replaced by its target (`pinned` first:
    /// a lock's targets by label, then the model's).
    pub fn rewrite(
        &self,
        option: &str,
        value: &str,
        pinned: Option<&BTreeMap<String, crate::resolve::LockedImage>>,
    ) -> Result<String, String> {
        let targets = self
            .images
            .iter()
            .map(|(part, image)| {
                let locked = pinned.and_then(|p| p.get(&label(option, part)));
                (part.clone(), locked.map_or(&image.target, |l| &l.target).clone())
            })
            .collect();
        self.found.rewrite(value, &targets)
    }
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

/// One end of a relation: (application, endpoint).
pub type RelationEnd = (String, String);

impl Relation {
    /// The relation's ends as seen from application `app`: (its own, the remote one); `None`
    /// when `app` is at neither end.
    pub fn ends_of(&self, app: &str) -> Option<(&RelationEnd, &RelationEnd)> {
        if self.a.0 == app {
            Some((&self.a, &self.b))
        } else if self.b.0 == app {
            Some((&self.b, &self.a))
        } else {
            None
        }
    }
}

/// Every image of a model, once each, with who needs it (`charmer images list`).
#[derive(Debug, Clone, Serialize)]
pub struct ImageList {
    /// Images sorted by source.
    pub images: Vec<ImageUse>,
}

/// One image and the applications that run it.
#[derive(Debug, Clone, Serialize)]
pub struct ImageUse {
    /// The upstream image.
    pub source: Reference,
    /// What manifests run.
    pub target: Reference,
    /// Who needs it.
    pub used_by: Vec<ImageUser>,
}

/// An application resource or config option that needs an image.
#[derive(Debug, Clone, Serialize)]
pub struct ImageUser {
    /// Application name.
    pub app: String,
    /// Charm name.
    pub charm: String,
    /// Charm version.
    pub version: String,
    /// What names the image: `"resource": NAME` or `"config": OPTION[PART]` in JSON.
    #[serde(flatten)]
    pub need: Need,
}

/// What of an application names an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Need {
    /// A resource, by name.
    Resource(String),
    /// A config option of an operator charm (`OPTION`, or `OPTION[PART]` for one image of a
    /// map or list).
    Config(String),
}

impl std::fmt::Display for Need {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Need::Resource(name) => write!(f, "resource {name}"),
            Need::Config(label) => write!(f, "config: {label}"),
        }
    }
}

impl RelationData {
    /// The ports this data names on the provider: `port` and `*-port` values, and the
    /// explicit port of a URL whose host is the provider's own Service (`app.` prefix).
    pub fn published_ports(&self) -> BTreeSet<u16> {
        let host_prefix = format!("{}.", self.app);
        let mut ports = BTreeSet::new();
        for (key, value) in &self.data {
            if key == "port" || key.ends_with("-port") {
                ports.extend(value.trim().parse::<u16>().ok());
            } else if let Some((_, rest)) = value.split_once("://") {
                let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
                let authority = authority.rsplit('@').next().unwrap_or_default();
                if let Some((host, port)) = authority.rsplit_once(':') {
                    if host.starts_with(&host_prefix) {
                        ports.extend(port.parse::<u16>().ok());
                    }
                }
            }
        }
        ports
    }
}

impl Model {
    /// Every image the bundle can run, once each, sorted.
    pub fn image_list(&self) -> ImageList {
        let mut by_source: BTreeMap<(&Reference, &Reference), Vec<ImageUser>> = BTreeMap::new();
        for app in self.applications.values() {
            let resources =
                app.images.iter().map(|(name, image)| (Need::Resource(name.clone()), image));
            let options = app.config_images.iter().flat_map(|(option, found)| {
                found.images.iter().map(|(part, image)| (Need::Config(label(option, part)), image))
            });
            for (need, image) in resources.chain(options) {
                by_source.entry((&image.source, &image.target)).or_default().push(ImageUser {
                    app: app.name.clone(),
                    charm: app.charm.name().to_string(),
                    version: app.charm.version_label(),
                    need,
                });
            }
        }
        ImageList {
            images: by_source
                .into_iter()
                .map(|((source, target), used_by)| ImageUse {
                    source: source.clone(),
                    target: target.clone(),
                    used_by,
                })
                .collect(),
        }
    }
}

impl ImageUse {
    /// The config options that name this image, as `APP OPTION[PART]`, in order.
    pub fn options(&self) -> Vec<String> {
        self.used_by
            .iter()
            .filter_map(|u| match &u.need {
                Need::Config(label) => Some(format!("{} {label}", u.app)),
                Need::Resource(_) => None,
            })
            .collect()
    }
}

impl ImageList {
    /// The entries `needle` names, with who needs them: what `images list --why` answers.
    /// A whole reference (in any spelling Docker accepts) matches its source or target;
    /// failing that, a repository path or a suffix of it made of whole components
    /// (`mongo`, `istio/proxyv2`, with `:tag` or `@digest` if given) matches every image
    /// whose source or target path ends so — maybe several.
    pub fn matching(&self, needle: &str) -> ImageList {
        let pick = |keep: &dyn Fn(&Reference) -> bool| ImageList {
            images: self
                .images
                .iter()
                .filter(|i| keep(&i.source) || keep(&i.target))
                .cloned()
                .collect(),
        };
        if let Ok(wanted) = needle.parse::<Reference>() {
            let exact = pick(&|r| *r == wanted);
            if !exact.images.is_empty() {
                return exact;
            }
        }
        let (name, digest) = match needle.split_once('@') {
            Some((name, digest)) => (name, Some(digest)),
            None => (needle, None),
        };
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (path, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
            None => (name, None),
        };
        let path = path.trim_matches('/');
        if path.is_empty() {
            return ImageList { images: vec![] };
        }
        let suffix = format!("/{path}");
        pick(&|r| {
            let full = format!("{}/{}", r.registry, r.repository);
            (full == path || full.ends_with(&suffix))
                && tag.is_none_or(|t| r.tag.as_deref() == Some(t))
                && digest.is_none_or(|d| r.digest.as_deref() == Some(d))
        })
    }
}
