//! `metadata.yaml`: what a charm is, what it talks to and what it runs.
//!
//! Only the keys charmer uses are typed; every other key is kept in `extra` and ignored,
//! as Juju does, so real charms from elsewhere always parse.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::contract::{is_valid_name, parse_yaml};
use crate::diag::{Problem, Problems};

/// The parsed `metadata.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// The charm name: lowercase letters, digits and `-`, starting with a letter.
    pub name: String,
    /// One line on what the charm does.
    #[serde(default)]
    pub summary: String,
    /// Longer description.
    #[serde(default)]
    pub description: String,
    /// Endpoints this charm offers to others.
    #[serde(default, deserialize_with = "endpoints")]
    pub provides: BTreeMap<String, Endpoint>,
    /// Endpoints this charm needs from others.
    #[serde(default, deserialize_with = "endpoints")]
    pub requires: BTreeMap<String, Endpoint>,
    /// Endpoints between units of this charm.
    #[serde(default, deserialize_with = "endpoints")]
    pub peers: BTreeMap<String, Endpoint>,
    /// Storage the charm's containers mount.
    #[serde(default)]
    pub storage: BTreeMap<String, Storage>,
    /// Resources: OCI images (with `upstream-source`) and files.
    #[serde(default)]
    pub resources: BTreeMap<String, Resource>,
    /// Workload containers.
    #[serde(default)]
    pub containers: BTreeMap<String, Container>,
    /// Features the charm assumes of its environment (`k8s-api`, `juju >= 3.1`, ...).
    #[serde(default)]
    pub assumes: Vec<serde_yaml::Value>,
    /// charmer extension: the most instances (pods) the charm can run, e.g. 1 for a single
    /// server; a bundle asking for more is refused before anything is rendered.
    #[serde(rename = "max-scale", default, skip_serializing_if = "Option::is_none")]
    pub max_scale: Option<u32>,
    /// Every key charmer does not use, kept as written.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_yaml::Value>,
}

/// The top-level `metadata.yaml` keys of Juju (and charmcraft) that charmer does not type:
/// accepted silently. Any other key is kept but warned about (a typo of a known key would
/// otherwise go unnoticed).
const JUJU_METADATA_KEYS: &[&str] = &[
    "display-name",
    "docs",
    "maintainer",
    "maintainers",
    "website",
    "issues",
    "source",
    "subordinate",
    "devices",
    "charm-user",
    "extra-bindings",
    "min-juju-version",
    "series",
    "tags",
    "terms",
    "payloads",
    "deployment",
    "links",
    "platforms",
    "base",
    "bases",
    "build-base",
    "type",
    "title",
    "parts",
];

/// Which side of a relation an endpoint is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Listed under `provides`.
    Provides,
    /// Listed under `requires`.
    Requires,
    /// Listed under `peers`.
    Peers,
}

/// One relation endpoint. The shorthand `endpoint: interface` is accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The interface both ends of a relation must share.
    pub interface: String,
    /// How many relations the endpoint takes at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// A `requires` endpoint that may be left unrelated.
    #[serde(default)]
    pub optional: bool,
    /// `global` or `container`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// charmer extension on a `provides` endpoint: the relation data it publishes, key →
    /// template rendered with the provider's own context (see docs/relations.md).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub publishes: BTreeMap<String, String>,
    /// Other keys (`schema`, `versions`, ...), kept and ignored.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_yaml::Value>,
}

fn endpoints<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, Endpoint>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Short(String),
        Full(Endpoint),
    }
    let raw: Option<BTreeMap<String, Either>> = Option::deserialize(d)?;
    Ok(raw
        .unwrap_or_default()
        .into_iter()
        .map(|(name, e)| {
            let endpoint = match e {
                Either::Short(interface) => Endpoint {
                    interface,
                    limit: None,
                    optional: false,
                    scope: None,
                    publishes: BTreeMap::new(),
                    extra: BTreeMap::new(),
                },
                Either::Full(endpoint) => endpoint,
            };
            (name, endpoint)
        })
        .collect())
}

/// A storage declaration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Storage {
    /// `filesystem` or `block`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Where it is mounted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Smallest size, like `8G`.
    #[serde(rename = "minimum-size", default, skip_serializing_if = "Option::is_none")]
    pub minimum_size: Option<String>,
    /// Other keys, kept and ignored.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_yaml::Value>,
}

/// A resource: an OCI image or a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    /// `oci-image` or `file` (Juju's default).
    #[serde(rename = "type", default = "file_type")]
    pub kind: String,
    /// What the resource is for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// For `oci-image`: the image reference the charm runs (a convention Juju ignores, read
    /// by the air-gap tooling).
    #[serde(rename = "upstream-source", default, skip_serializing_if = "Option::is_none")]
    pub upstream_source: Option<String>,
    /// For `file`: the file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// Other keys, kept and ignored.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_yaml::Value>,
}

fn file_type() -> String {
    "file".to_string()
}

/// A workload container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Container {
    /// The `oci-image` resource it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Storage it mounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    /// Other keys (`uid`, `gid`, `bases`, ...), kept and ignored.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_yaml::Value>,
}

/// A container's storage mount.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mount {
    /// The storage name.
    pub storage: String,
    /// Where it is mounted in the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

impl Metadata {
    /// Parses and validates `metadata.yaml`, reporting every problem at once.
    pub fn parse(file: &str, text: &str) -> Result<Metadata, Problems> {
        let meta: Metadata = parse_yaml(file, text)?;
        let problems = meta.validate(file);
        problems.into_result(meta)
    }

    /// Keys `metadata.yaml` sets that neither Juju nor charmer knows, one warning each
    /// (Juju ignores unknown keys, so they are not errors).
    pub fn unknown_keys(&self, file: &str) -> Vec<Problem> {
        let mut known: Vec<&str> = JUJU_METADATA_KEYS.to_vec();
        known.extend([
            "name",
            "summary",
            "description",
            "provides",
            "requires",
            "peers",
            "storage",
            "resources",
            "containers",
            "assumes",
            "max-scale",
        ]);
        self.extra
            .keys()
            .filter(|k| !JUJU_METADATA_KEYS.contains(&k.as_str()) && !k.starts_with('_'))
            .map(|k| {
                let problem = Problem::new(file, k, "unknown key, ignored");
                match crate::diag::closest(k, &known) {
                    Some(c) => problem.hint(format!("did you mean {c:?}?")),
                    None => problem,
                }
            })
            .collect()
    }

    /// Every endpoint with its role, in a stable order (provides, requires, peers; by name).
    pub fn endpoints(&self) -> impl Iterator<Item = (Role, &String, &Endpoint)> {
        [
            (Role::Provides, &self.provides),
            (Role::Requires, &self.requires),
            (Role::Peers, &self.peers),
        ]
        .into_iter()
        .flat_map(|(role, map)| map.iter().map(move |(name, endpoint)| (role, name, endpoint)))
    }

    /// Looks an endpoint up by name in any role.
    pub fn endpoint(&self, name: &str) -> Option<(Role, &Endpoint)> {
        self.endpoints().find(|(_, n, _)| n.as_str() == name).map(|(r, _, e)| (r, e))
    }

    /// The `oci-image` resources with their image references, by resource name.
    pub fn images(&self) -> impl Iterator<Item = (&String, &str)> {
        self.resources
            .iter()
            .filter(|(_, r)| r.kind == "oci-image")
            .filter_map(|(n, r)| r.upstream_source.as_deref().map(|s| (n, s)))
    }

    fn validate(&self, file: &str) -> Problems {
        let mut problems = Problems::default();
        if !is_valid_name(&self.name) {
            problems.push(
                Problem::new(file, "name", format!("{:?} is not a valid charm name", self.name))
                    .hint("use lowercase letters, digits and '-', starting with a letter"),
            );
        }
        let mut seen: BTreeMap<&str, Role> = BTreeMap::new();
        for (role, name, endpoint) in self.endpoints() {
            let key = format!("{}.{name}", role_key(role));
            if name == "juju" || name.starts_with("juju-") {
                problems.push(
                    Problem::new(
                        file,
                        &key,
                        "endpoint names \"juju\" and \"juju-*\" are reserved by Juju",
                    )
                    .hint("rename the endpoint"),
                );
            }
            if let Some(first) = seen.insert(name, role) {
                problems.push(
                    Problem::new(
                        file,
                        &key,
                        format!("endpoint {name:?} is also declared under {}", role_key(first)),
                    )
                    .hint(
                        "an endpoint name may appear only once across provides, requires and peers",
                    ),
                );
            }
            if endpoint.interface.is_empty() {
                problems.push(Problem::new(file, format!("{key}.interface"), "interface is empty"));
            }
            if let Some(scope) = &endpoint.scope {
                if scope != "global" && scope != "container" {
                    problems.push(
                        Problem::new(
                            file,
                            format!("{key}.scope"),
                            format!("unknown scope {scope:?}"),
                        )
                        .hint("use global or container"),
                    );
                }
            }
            if !endpoint.publishes.is_empty() && role != Role::Provides {
                problems.push(Problem::new(
                    file,
                    format!("{key}.publishes"),
                    "only provides endpoints publish relation data",
                ));
            }
        }
        for (name, storage) in &self.storage {
            if storage.kind != "filesystem" && storage.kind != "block" {
                problems.push(
                    Problem::new(
                        file,
                        format!("storage.{name}.type"),
                        format!("unknown storage type {:?}", storage.kind),
                    )
                    .hint("use filesystem or block"),
                );
            }
        }
        for (name, resource) in &self.resources {
            let key = format!("resources.{name}");
            match resource.kind.as_str() {
                "oci-image" => match resource.upstream_source.as_deref() {
                    None | Some("") => problems.push(
                        Problem::new(file, format!("{key}.upstream-source"), "an oci-image resource needs upstream-source")
                            .hint("set it to the image reference the charm runs, e.g. docker.io/library/nginx:1.27"),
                    ),
                    Some(_) => {}
                },
                "file" => {}
                other => problems.push(Problem::new(file, format!("{key}.type"), format!("unknown resource type {other:?}")).hint("use oci-image or file")),
            }
        }
        for (name, container) in &self.containers {
            if let Some(resource) = &container.resource {
                match self.resources.get(resource) {
                    Some(r) if r.kind == "oci-image" => {}
                    Some(_) => problems.push(Problem::new(
                        file,
                        format!("containers.{name}.resource"),
                        format!("resource {resource:?} is not an oci-image"),
                    )),
                    None => problems.push(
                        Problem::new(
                            file,
                            format!("containers.{name}.resource"),
                            format!("no resource named {resource:?}"),
                        )
                        .hint("declare it under resources with type: oci-image"),
                    ),
                }
            }
            for (i, mount) in container.mounts.iter().enumerate() {
                if !self.storage.contains_key(&mount.storage) {
                    problems.push(Problem::new(
                        file,
                        format!("containers.{name}.mounts[{i}].storage"),
                        format!("no storage named {:?}", mount.storage),
                    ));
                }
            }
        }
        problems
    }
}

/// The YAML key an endpoint role is listed under.
pub fn role_key(role: Role) -> &'static str {
    match role {
        Role::Provides => "provides",
        Role::Requires => "requires",
        Role::Peers => "peers",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorthand_endpoints_and_unknown_keys_are_accepted() {
        let text = "name: web\nsummary: s\nprovides:\n  http: http\nrequires:\n  db:\n    interface: mongodb_client\n    schema: {v1: {}}\nx-custom: 1\n";
        let meta = Metadata::parse("metadata.yaml", text).unwrap();
        assert_eq!(meta.provides["http"].interface, "http");
        assert_eq!(meta.requires["db"].interface, "mongodb_client");
        assert!(meta.requires["db"].extra.contains_key("schema"));
        assert!(meta.extra.contains_key("x-custom"));
    }

    #[test]
    fn duplicate_and_reserved_endpoints_are_each_reported() {
        let text = "name: web\nprovides:\n  db: x\n  juju-info: y\nrequires:\n  db: x\n";
        let problems = Metadata::parse("metadata.yaml", text).unwrap_err();
        let text = problems.to_string();
        assert!(text.contains("metadata.yaml: provides.juju-info: endpoint names \"juju\" and \"juju-*\" are reserved"), "{text}");
        assert!(
            text.contains(
                "metadata.yaml: requires.db: endpoint \"db\" is also declared under provides"
            ),
            "{text}"
        );
    }

    #[test]
    fn images_need_upstream_source_and_containers_need_their_resource() {
        let text = "name: web\nresources:\n  img: {type: oci-image}\ncontainers:\n  app: {resource: other}\n";
        let text = Metadata::parse("metadata.yaml", text).unwrap_err().to_string();
        assert!(
            text.contains(
                "resources.img.upstream-source: an oci-image resource needs upstream-source"
            ),
            "{text}"
        );
        assert!(text.contains("containers.app.resource: no resource named \"other\""), "{text}");
    }
}
