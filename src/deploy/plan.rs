//! What the deploy stage needs from a resolved model and its rendered manifests, in one
//! serializable value: the same value is recorded in every revision, so `rollback` re-applies
//! exactly what was applied before.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::charm::metadata::Role;
use crate::contract::{object_id, GENERATE_ANNOTATION};
use crate::diag::{Problem, Problems};
use crate::images::Registry;
use crate::render::Manifests;
use crate::resolve::Model;

/// Everything one deploy applies: the bundle's applications and rendered objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The bundle name (inventory and revision records are kept per bundle and namespace).
    pub bundle: String,
    /// The namespace namespaced objects go into.
    pub namespace: String,
    /// The private registry every image must come from, when one was given.
    #[serde(default, with = "registry_text")]
    pub registry: Option<Registry>,
    /// Applications, sorted by name.
    pub apps: Vec<PlanApp>,
    /// Rendered objects, each with its application.
    pub objects: Vec<PlanObject>,
}

/// One application as deploy sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanApp {
    /// Application name.
    pub name: String,
    /// Charm name.
    pub charm: String,
    /// Charm version.
    pub version: String,
    /// Kubernetes versions the charm's `assumes:` asks for.
    #[serde(default)]
    pub kubernetes: Vec<VersionNeed>,
    /// Secrets that must exist in the namespace before deploying.
    #[serde(default)]
    pub required_secrets: Vec<String>,
    /// The images it runs (after relocation), for `status`.
    #[serde(default)]
    pub images: Vec<String>,
    /// Applications this one requires (the providers of its relations): applied first.
    #[serde(default)]
    pub after: Vec<String>,
    /// The effective config with provenance (recorded per revision; see `charmer config`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, super::RecordedSetting>,
}

/// One rendered object and the application it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanObject {
    /// The application that rendered it.
    pub app: String,
    /// The full object.
    pub object: Value,
}

/// A `major.minor` Kubernetes version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KubeVersion {
    /// Major version (1).
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

/// A constraint on the cluster's Kubernetes version and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionNeed {
    /// `>=` or `<`.
    pub op: VersionOp,
    /// The version compared with.
    pub version: KubeVersion,
    /// What asked for it, for the preflight message (`assumes: k8s-api >= 1.20`).
    pub source: String,
}

/// The comparisons Juju's `assumes` allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VersionOp {
    /// `>=`
    AtLeast,
    /// `<`
    Below,
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for KubeVersion {
    type Err = String;

    /// Accepts `1.20`, `v1.20.3` and the `28+` minor some providers report.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim().trim_start_matches('v');
        let mut parts = trimmed.split('.');
        let number = |part: Option<&str>| -> Option<u32> {
            let digits: String = part?.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        };
        match (number(parts.next()), number(parts.next())) {
            (Some(major), Some(minor)) => Ok(KubeVersion { major, minor }),
            _ => Err(format!("{text:?} is not a Kubernetes version like 1.20")),
        }
    }
}

impl VersionNeed {
    /// Whether `version` satisfies this need.
    pub fn allows(&self, version: KubeVersion) -> bool {
        match self.op {
            VersionOp::AtLeast => version >= self.version,
            VersionOp::Below => version < self.version,
        }
    }
}

impl fmt::Display for VersionNeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            VersionOp::AtLeast => ">=",
            VersionOp::Below => "<",
        };
        write!(f, "Kubernetes {op} {}", self.version)
    }
}

impl PlanApp {
    /// An application with no version needs, required secrets, images or providers.
    pub fn new(name: &str, charm: &str, version: &str) -> PlanApp {
        PlanApp {
            name: name.to_string(),
            charm: charm.to_string(),
            version: version.to_string(),
            kubernetes: Vec::new(),
            required_secrets: Vec::new(),
            images: Vec::new(),
            after: Vec::new(),
            config: BTreeMap::new(),
        }
    }
}

impl Plan {
    /// Builds the plan from a resolved model and its rendered manifests.
    pub fn from_model(model: &Model, manifests: &Manifests) -> Plan {
        let apps = model
            .applications
            .values()
            .map(|app| {
                let after: BTreeSet<String> = model
                    .relations
                    .iter()
                    .filter_map(|r| {
                        // The end on this application's `requires` side waits for the other end.
                        let (mine, theirs) = if r.a.0 == app.name {
                            (&r.a, &r.b)
                        } else if r.b.0 == app.name {
                            (&r.b, &r.a)
                        } else {
                            return None;
                        };
                        let role = app.charm.metadata.endpoint(&mine.1).map(|(role, _)| role);
                        (role == Some(Role::Requires) && theirs.0 != app.name)
                            .then(|| theirs.0.clone())
                    })
                    .collect();
                let images: BTreeSet<String> =
                    app.images.values().map(|i| i.target.to_string()).collect();
                PlanApp {
                    name: app.name.clone(),
                    charm: app.charm.name().to_string(),
                    version: app.charm.version_label(),
                    kubernetes: kubernetes_needs(&app.charm.metadata.assumes),
                    required_secrets: app.required_secrets.clone(),
                    images: images.into_iter().collect(),
                    after: after.into_iter().collect(),
                    config: super::overrides::recorded_config(app),
                }
            })
            .collect();
        Plan {
            bundle: manifests.bundle.clone(),
            namespace: manifests.namespace.clone(),
            registry: model.registry.clone(),
            apps,
            objects: manifests
                .objects
                .iter()
                .map(|o| PlanObject { app: o.app.clone(), object: o.object.clone() })
                .collect(),
        }
    }

    /// Checks the plan's own shape: every object has apiVersion, kind and a name, belongs to a
    /// known application, and no object appears twice.
    pub fn validate(&self) -> Result<(), Problems> {
        let mut problems = Problems::default();
        let apps: BTreeSet<&str> = self.apps.iter().map(|a| a.name.as_str()).collect();
        let mut seen = BTreeSet::new();
        for (i, o) in self.objects.iter().enumerate() {
            let key = format!("objects[{i}]");
            if !apps.contains(o.app.as_str()) {
                problems.push(Problem::new(
                    &self.bundle,
                    &key,
                    format!("object of unknown application {:?}", o.app),
                ));
            }
            match object_id(&o.object, Some(&self.namespace)) {
                Ok(id) => {
                    if !seen.insert(id.clone()) {
                        problems.push(
                            Problem::new(&self.bundle, &key, format!("{id} is rendered twice"))
                                .hint("give each object a distinct name"),
                        );
                    }
                }
                Err(message) => problems.push(Problem::new(&self.bundle, &key, message)),
            }
            for generated in crate::contract::generated_keys(&o.object) {
                let rendered = ["data", "stringData"]
                    .iter()
                    .any(|field| o.object[*field].get(&generated).is_some());
                if rendered {
                    problems.push(
                        Problem::new(
                            &self.bundle,
                            format!("{key}.{GENERATE_ANNOTATION}"),
                            format!("key {generated:?} is both rendered and generated"),
                        )
                        .hint("leave generated keys out of the template"),
                    );
                }
            }
        }
        problems.into_result(())
    }

    /// The application called `name`.
    pub fn app(&self, name: &str) -> Option<&PlanApp> {
        self.apps.iter().find(|a| a.name == name)
    }

    /// Application names in apply order: providers before the applications requiring them,
    /// ties (and cycles) broken by name.
    pub fn app_order(&self) -> Vec<String> {
        let mut order: Vec<String> = Vec::new();
        let mut placed: BTreeSet<&str> = BTreeSet::new();
        let mut rest: Vec<&PlanApp> = self.apps.iter().collect();
        rest.sort_by(|a, b| a.name.cmp(&b.name));
        while !rest.is_empty() {
            let known = |n: &str| self.app(n).is_some();
            let ready = rest.iter().position(|a| {
                a.after.iter().all(|p| placed.contains(p.as_str()) || !known(p) || *p == a.name)
            });
            // A cycle: take the first by name so the order stays deterministic.
            let next = rest.remove(ready.unwrap_or(0));
            placed.insert(&next.name);
            order.push(next.name.clone());
        }
        order
    }
}

/// Kubernetes version constraints in a charm's `assumes:`: `k8s-api >= 1.20` and `k8s-api <
/// 1.30`, at the top level or inside `all-of` blocks. `any-of` blocks are alternatives deploy
/// cannot choose between, so they are left to the charm.
pub fn kubernetes_needs(assumes: &[serde_yaml::Value]) -> Vec<VersionNeed> {
    let mut needs = Vec::new();
    for item in assumes {
        match item {
            serde_yaml::Value::String(text) => needs.extend(parse_assumption(text)),
            serde_yaml::Value::Mapping(map) => {
                if let Some(serde_yaml::Value::Sequence(all)) = map.get("all-of") {
                    needs.extend(kubernetes_needs(all));
                }
            }
            _ => {}
        }
    }
    needs
}

fn parse_assumption(text: &str) -> Option<VersionNeed> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let [feature, op, version] = words.as_slice() else {
        return None;
    };
    if *feature != "k8s-api" {
        return None;
    }
    let op = match *op {
        ">=" => VersionOp::AtLeast,
        "<" => VersionOp::Below,
        _ => return None,
    };
    Some(VersionNeed { op, version: version.parse().ok()?, source: format!("assumes: {text}") })
}

/// Serializes `Option<Registry>` as its `host[:port][/prefix]` text.
mod registry_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::images::Registry;

    pub fn serialize<S: Serializer>(registry: &Option<Registry>, s: S) -> Result<S::Ok, S::Error> {
        match registry {
            Some(r) => s.collect_str(r),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Registry>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|t| t.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn app(name: &str, after: &[&str]) -> PlanApp {
        PlanApp {
            after: after.iter().map(|s| s.to_string()).collect(),
            ..PlanApp::new(name, name, "1.0.0")
        }
    }

    fn plan(apps: Vec<PlanApp>, objects: Vec<(&str, Value)>) -> Plan {
        Plan {
            bundle: "shop".into(),
            namespace: "shop".into(),
            registry: None,
            apps,
            objects: objects
                .into_iter()
                .map(|(app, object)| PlanObject { app: app.into(), object })
                .collect(),
        }
    }

    #[test]
    fn providers_come_before_requirers() {
        let p =
            plan(vec![app("web", &["db", "cache"]), app("db", &[]), app("cache", &["db"])], vec![]);
        assert_eq!(p.app_order(), ["db", "cache", "web"]);
    }

    #[test]
    fn cycles_and_unknown_providers_still_give_every_app_once() {
        let p = plan(vec![app("a", &["b"]), app("b", &["a"]), app("c", &["gone"])], vec![]);
        assert_eq!(p.app_order(), ["c", "a", "b"]);
    }

    #[test]
    fn assumes_gives_kubernetes_needs() {
        let assumes: Vec<serde_yaml::Value> =
            serde_yaml::from_str("[k8s-api, 'k8s-api >= 1.20', 'juju >= 3.1', {all-of: ['k8s-api < 1.40']}, {any-of: ['k8s-api >= 1.99']}]").unwrap();
        let needs = kubernetes_needs(&assumes);
        assert_eq!(needs.len(), 2);
        assert_eq!(needs[0].to_string(), "Kubernetes >= 1.20");
        assert!(needs[0].allows(KubeVersion { major: 1, minor: 20 }));
        assert!(!needs[0].allows(KubeVersion { major: 1, minor: 19 }));
        assert!(!needs[1].allows(KubeVersion { major: 1, minor: 40 }));
    }

    #[test]
    fn versions_parse_like_clusters_report_them() {
        assert_eq!("1.28+".parse::<KubeVersion>().unwrap(), KubeVersion { major: 1, minor: 28 });
        assert_eq!("v1.20.3".parse::<KubeVersion>().unwrap(), KubeVersion { major: 1, minor: 20 });
        assert!("one".parse::<KubeVersion>().is_err());
    }

    #[test]
    fn validate_reports_every_bad_object() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}});
        let p = plan(
            vec![app("web", &[])],
            vec![("web", cm.clone()), ("web", cm), ("ghost", json!({"kind": "X"}))],
        );
        let text = p.validate().unwrap_err().to_string();
        assert!(text.contains("ConfigMap/shop/a is rendered twice"), "{text}");
        assert!(text.contains("unknown application \"ghost\""), "{text}");
        assert!(text.contains("no apiVersion"), "{text}");
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "annotations": {GENERATE_ANNOTATION: "pw"}}, "stringData": {"pw": "x"}});
        let text =
            plan(vec![app("web", &[])], vec![("web", secret)]).validate().unwrap_err().to_string();
        assert!(text.contains("key \"pw\" is both rendered and generated"), "{text}");
    }

    #[test]
    fn plan_round_trips_through_json_with_its_registry() {
        let mut p = plan(vec![app("web", &[])], vec![]);
        p.registry = Some("registry.local:5000/mirror".parse().unwrap());
        let back: Plan = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }
}
