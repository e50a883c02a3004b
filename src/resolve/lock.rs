//! `bundle.lock`: what a render resolved to — every charm's exact version and SHA-256, and
//! every image source → target (with digests when known) — so a deploy or an air-gap
//! transfer can be checked against it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Model;
use crate::images::Reference;

/// The lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// Bundle name.
    pub bundle: String,
    /// Namespace rendered for.
    pub namespace: String,
    /// Private registry, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// Applications by name.
    pub applications: BTreeMap<String, LockedApp>,
}

/// One application in the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedApp {
    /// Charm name.
    pub charm: String,
    /// Exact version ([`crate::charm::Charm::version_label`]).
    pub version: String,
    /// The Charmhub revision of a `<name>_r<N>.charm` archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// The bundle's `channel:` (a record of where the archive was downloaded from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// SHA-256 of the charm archive.
    pub sha256: String,
    /// For a charm pulled from a registry: the artifact, pinned by its manifest digest
    /// (`oci://HOST/PREFIX/name@sha256:...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
    /// Images by resource name.
    pub images: BTreeMap<String, LockedImage>,
    /// Images an operator charm names in config options, by `OPTION` or `OPTION[PART]`
    /// (see [`crate::images::config::label`]).
    #[serde(default, rename = "config-images", skip_serializing_if = "BTreeMap::is_empty")]
    pub config_images: BTreeMap<String, LockedImage>,
}

/// One image in the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedImage {
    /// The charm's upstream image.
    pub source: Reference,
    /// What manifests run.
    pub target: Reference,
}

impl Lock {
    /// The lock of a model.
    pub fn of(model: &Model) -> Lock {
        // Hashing a charm folder means packing it; do that for every charm on every core first.
        let charms: Vec<_> = model.applications.values().map(|a| &a.charm).collect();
        crate::parallel::map(&charms, |charm| charm.sha256());
        Lock {
            bundle: model.name.clone(),
            namespace: model.namespace.clone(),
            registry: model.registry.as_ref().map(ToString::to_string),
            applications: model
                .applications
                .values()
                .map(|app| {
                    let locked = |i: &super::Image| LockedImage {
                        source: i.source.clone(),
                        target: i.target.clone(),
                    };
                    let images = app.images.iter().map(|(r, i)| (r.clone(), locked(i))).collect();
                    let config_images = app
                        .config_images
                        .iter()
                        .flat_map(|(option, found)| {
                            found.images.iter().map(move |(part, i)| {
                                (crate::images::config::label(option, part), locked(i))
                            })
                        })
                        .collect();
                    let locked = LockedApp {
                        charm: app.charm.name().to_string(),
                        version: app.charm.version_label(),
                        revision: app.charm.revision,
                        channel: app.channel.clone(),
                        sha256: app.charm.sha256(),
                        artifact: app
                            .charm
                            .origin
                            .path()
                            .to_str()
                            .filter(|p| p.starts_with(crate::repo::OCI_SCHEME))
                            .map(str::to_string),
                        images,
                        config_images,
                    };
                    (app.name.clone(), locked)
                })
                .collect(),
        }
    }

    /// The lock as YAML, with a header saying what it is.
    pub fn to_yaml(&self) -> String {
        let body = serde_yaml::to_string(self).unwrap_or_default();
        format!("# bundle.lock: written by charmer render; do not edit.\n{body}")
    }
}
