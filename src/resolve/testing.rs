//! Charms and models built in memory, for the unit tests of the resolver and of the stages
//! that read its model.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::{Application, Model};
use crate::bundle::{AppSpec, CharmRef};
use crate::charm::{Charm, CharmFile, Origin};
use crate::diag::Problems;
use crate::images::Registry;

/// A charm version 1.0.0 loaded from `charms/<name>`: `metadata` is `metadata.yaml` without
/// its `name:` line, `config` the whole `config.yaml` (empty for none).
pub(crate) fn charm(name: &str, metadata: &str, config: &str) -> Arc<Charm> {
    let file = |text: String| CharmFile { data: text.into_bytes(), executable: false };
    let mut files = BTreeMap::from([
        ("metadata.yaml".to_string(), file(format!("name: {name}\n{metadata}"))),
        ("version".to_string(), file("1.0.0".to_string())),
    ]);
    if !config.is_empty() {
        files.insert("config.yaml".to_string(), file(config.to_string()));
    }
    let origin = Origin::Dir(PathBuf::from("charms").join(name));
    Arc::new(Charm::from_files(files, origin).expect("test charm is valid"))
}

/// An application of one unit running `charm`, with no config, images or relation data.
pub(crate) fn app(name: &str, charm: Arc<Charm>) -> Application {
    Application {
        name: name.to_string(),
        charm,
        scale: 1,
        trust: false,
        channel: None,
        constraints: None,
        config: BTreeMap::new(),
        images: BTreeMap::new(),
        config_images: BTreeMap::new(),
        relation_data: BTreeMap::new(),
        required_secrets: Vec::new(),
    }
}

/// A model `shop` in namespace `shop-ns` from bundle `bundle.yaml` holding `apps`.
pub(crate) fn model(apps: Vec<Application>, registry: Option<Registry>) -> Model {
    Model {
        name: "shop".to_string(),
        bundle_file: PathBuf::from("bundle.yaml"),
        namespace: "shop-ns".to_string(),
        registry,
        applications: apps.into_iter().map(|a| (a.name.clone(), a)).collect(),
        relations: Vec::new(),
        network_policies: Default::default(),
    }
}

/// A bundle application of one unit running charm `charm`, defined in `bundle.yaml`, with
/// nothing else set.
pub(crate) fn app_spec(charm: &str) -> AppSpec {
    AppSpec::new(CharmRef::Name(charm.to_string()), PathBuf::from("bundle.yaml"))
}

/// Each problem as the one line a user sees.
pub(crate) fn lines(problems: &Problems) -> Vec<String> {
    problems.0.iter().map(ToString::to_string).collect()
}
