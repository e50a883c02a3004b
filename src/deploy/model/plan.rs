//! What the deploy stage needs from a resolved model and its rendered manifests, in one
//! serializable value: the same value is recorded in every revision, so `rollback` re-applies
//! exactly what was applied before.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::settings::{recorded_config, RecordedSetting};
use super::versions::{kubernetes_needs, VersionNeed};
use crate::charm::metadata::Role;
use crate::contract::{object_id, GENERATE_ANNOTATION};
use crate::diag::{Problem, Problems};
use crate::images::Registry;
use crate::render::Manifests;
use crate::resolve::Model;

/// Everything one deploy applies: the bundle's applications and rendered objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployPlan {
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
    pub config: BTreeMap<String, RecordedSetting>,
}

/// One rendered object and the application it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanObject {
    /// The application that rendered it.
    pub app: String,
    /// The full object.
    pub object: Value,
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

impl DeployPlan {
    /// Builds the plan from a resolved model and its rendered manifests.
    pub fn from_model(model: &Model, manifests: &Manifests) -> DeployPlan {
        let apps = model
            .applications
            .values()
            .map(|app| {
                let after: BTreeSet<String> = model
                    .relations
                    .iter()
                    .filter_map(|r| {
                        // The end on this application's `requires` side waits for the other end.
                        let (mine, theirs) = r.ends_of(&app.name)?;
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
                    config: recorded_config(app),
                }
            })
            .collect();
        DeployPlan {
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

    /// Each application's depth in [`DeployPlan::app_order`]: 0 for one that requires none
    /// of the others, else one more than the deepest it requires (cycles broken as there).
    /// Applications of one depth need nothing of each other, so they can be applied at once.
    pub fn app_levels(&self) -> BTreeMap<String, usize> {
        let mut levels: BTreeMap<String, usize> = BTreeMap::new();
        for name in self.app_order() {
            let providers = self.app(&name).map(|a| a.after.as_slice()).unwrap_or_default();
            let level =
                providers.iter().filter_map(|p| levels.get(p)).map(|l| l + 1).max().unwrap_or(0);
            levels.insert(name, level);
        }
        levels
    }
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

    fn plan(apps: Vec<PlanApp>, objects: Vec<(&str, Value)>) -> DeployPlan {
        DeployPlan {
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
    fn levels_put_each_app_one_past_its_deepest_provider() {
        let p = plan(
            vec![
                app("web", &["db", "cache"]),
                app("db", &[]),
                app("cache", &["db"]),
                app("log", &[]),
            ],
            vec![],
        );
        let levels: Vec<(String, usize)> = p.app_levels().into_iter().collect();
        assert_eq!(
            levels,
            [("cache".into(), 1), ("db".into(), 0), ("log".into(), 0), ("web".into(), 2)]
        );
        // A cycle is broken where app_order breaks it; an unknown provider counts for nothing.
        let p = plan(vec![app("a", &["b"]), app("b", &["a"]), app("c", &["gone"])], vec![]);
        let levels: Vec<(String, usize)> = p.app_levels().into_iter().collect();
        assert_eq!(levels, [("a".into(), 0), ("b".into(), 1), ("c".into(), 0)]);
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
        let back: DeployPlan = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }
}
