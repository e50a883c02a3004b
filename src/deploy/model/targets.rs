//! Plan objects mapped onto the cluster's kinds, in apply order.

use std::collections::BTreeMap;
use std::ops::Range;

use serde_json::Value;

use super::kinds::{Kind, Kinds, Lookup};
use super::plan::DeployPlan;
use crate::contract::{group_of, object_id, ObjectId};
use crate::diag::Problem;
pub(crate) use crate::render::kind_rank;

/// One object ready to apply.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// Its identity (namespace filled in for namespaced kinds).
    pub id: ObjectId,
    /// Its application.
    pub app: String,
    /// Where requests go.
    pub kind: Kind,
    /// False when the kind comes from a CustomResourceDefinition of the same plan and is not
    /// served yet (no dry-run possible before the CRD is applied).
    pub served: bool,
    /// The object, namespace set.
    pub object: Value,
}

/// Where an object goes in the apply order: the namespace, then CRDs, then everything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    Namespace,
    Definitions,
    Objects,
}

/// Maps every plan object onto a served kind (or one a CRD of the plan defines), in apply
/// order. Kinds the cluster does not serve come back as problems naming what to install.
pub(crate) fn resolve(plan: &DeployPlan, kinds: &Kinds) -> (Vec<Target>, Vec<Problem>) {
    let from_crds = crd_kinds(plan);
    let mut targets = Vec::new();
    let mut problems = Vec::new();
    for o in &plan.objects {
        let api_version = o.object.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
        let kind_name = o.object.get("kind").and_then(Value::as_str).unwrap_or_default();
        let (kind, served) = match kinds.find(api_version, kind_name) {
            Lookup::Served(kind) => (kind, true),
            lookup => match from_crds.get(&(api_version.to_string(), kind_name.to_string())) {
                Some(kind) => (kind.clone(), false),
                None => {
                    problems.push(missing_kind(api_version, kind_name, lookup, &o.app));
                    continue;
                }
            },
        };
        let mut object = o.object.clone();
        let namespace = kind.namespaced.then_some(plan.namespace.as_str());
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            if kind.namespaced {
                meta.entry("namespace").or_insert_with(|| Value::String(plan.namespace.clone()));
            } else {
                meta.remove("namespace");
            }
        }
        // DeployPlan::validate has checked that every object has a kind and a name.
        let Ok(id) = object_id(&object, namespace) else { continue };
        targets.push(Target { id, app: o.app.clone(), kind, served, object });
    }
    sort(plan, &mut targets);
    (targets, problems)
}

fn missing_kind(api_version: &str, kind: &str, lookup: Lookup, app: &str) -> Problem {
    let subject = format!("{kind} ({api_version}) of application {app}");
    match lookup {
        Lookup::OtherVersions(versions) => Problem::new(
            "preflight",
            subject,
            format!("the cluster serves {kind} only at {}", versions.join(", ")),
        )
        .hint("use a charm version written for this cluster's API versions"),
        _ if is_builtin_group(group_of(api_version)) => {
            Problem::new("preflight", subject, "the cluster does not serve this kind")
                .hint("the charm needs a newer Kubernetes release than this cluster runs")
        }
        _ => Problem::new(
            "preflight",
            subject,
            "the cluster does not serve this kind: its CustomResourceDefinition is not installed",
        )
        .hint(format!(
            "install the CustomResourceDefinition for {kind} in group {} first",
            group_of(api_version)
        )),
    }
}

fn is_builtin_group(group: &str) -> bool {
    group.is_empty() || !group.contains('.') || group.ends_with(".k8s.io")
}

/// Kinds defined by CustomResourceDefinitions in the plan, by (apiVersion, kind).
fn crd_kinds(plan: &DeployPlan) -> BTreeMap<(String, String), Kind> {
    let mut found = BTreeMap::new();
    for o in &plan.objects {
        let object = &o.object;
        if object.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
            continue;
        }
        let spec = &object["spec"];
        let (Some(group), Some(kind), Some(plural)) = (
            spec["group"].as_str(),
            spec["names"]["kind"].as_str(),
            spec["names"]["plural"].as_str(),
        ) else {
            continue;
        };
        let namespaced = spec["scope"].as_str() != Some("Cluster");
        for version in spec["versions"].as_array().into_iter().flatten() {
            if let Some(v) = version["name"].as_str() {
                let api_version = format!("{group}/{v}");
                found.insert(
                    (api_version.clone(), kind.to_string()),
                    Kind::from_crd(&api_version, kind, plural, namespaced),
                );
            }
        }
    }
    found
}

/// Sorts targets in apply order: the namespace, CRDs, then applications providers-first by
/// depth (see [`waves`]), and within a depth the kinds other kinds depend on first (Helm's
/// install order), then by application.
pub(crate) fn sort(plan: &DeployPlan, targets: &mut [Target]) {
    let app_rank: BTreeMap<String, usize> =
        plan.app_order().into_iter().enumerate().map(|(i, a)| (a, i)).collect();
    let levels = plan.app_levels();
    targets.sort_by_cached_key(|t| {
        (wave_key(&levels, t), app_rank.get(&t.app).copied().unwrap_or(usize::MAX), t.id.clone())
    });
}

/// Targets sorted by [`sort`] split into waves: runs of objects that may be applied at once.
/// A wave holds one kind rank of the applications of one depth, so every provider's
/// objects are applied before those of the applications requiring it, and within an
/// application ConfigMaps and Secrets before the workloads that read them, as one at a time
/// would; but a hundred independent applications go in a few waves, not a hundred steps.
pub(crate) fn waves(plan: &DeployPlan, targets: &[Target]) -> Vec<Range<usize>> {
    let levels = plan.app_levels();
    let mut start = 0;
    targets
        .chunk_by(|a, b| wave_key(&levels, a) == wave_key(&levels, b))
        .map(|wave| {
            let range = start..start + wave.len();
            start = range.end;
            range
        })
        .collect()
}

/// What orders waves: phase, application depth, kind rank.
fn wave_key(levels: &BTreeMap<String, usize>, t: &Target) -> (Phase, usize, usize) {
    (phase(&t.id), levels.get(&t.app).copied().unwrap_or(usize::MAX), kind_rank(&t.id.kind))
}

pub(crate) fn phase(id: &ObjectId) -> Phase {
    match id.kind.as_str() {
        "Namespace" => Phase::Namespace,
        "CustomResourceDefinition" => Phase::Definitions,
        _ => Phase::Objects,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::deploy::model::plan::{PlanApp, PlanObject};

    fn object(kind: &str, name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name}})
    }

    fn target(app: &str, kind: &str, name: &str) -> Target {
        let object = object(kind, name);
        let id = object_id(&object, Some("ns")).unwrap();
        let kind = Kind::from_crd("v1", kind, &format!("{}s", kind.to_lowercase()), true);
        Target { id, app: app.into(), kind, served: true, object }
    }

    #[test]
    fn waves_apply_providers_first_and_each_kind_rank_of_a_depth_at_once() {
        let app = |name: &str, after: &[&str]| PlanApp {
            after: after.iter().map(|s| s.to_string()).collect(),
            ..PlanApp::new(name, name, "1.0.0")
        };
        let plan = DeployPlan {
            bundle: "b".into(),
            namespace: "ns".into(),
            registry: None,
            apps: vec![app("web", &["db"]), app("db", &[]), app("cache", &[])],
            objects: Vec::<PlanObject>::new(),
        };
        let mut targets = vec![
            target("web", "Deployment", "web"),
            target("web", "ConfigMap", "web"),
            target("db", "Deployment", "db"),
            target("cache", "Deployment", "cache"),
            target("db", "Secret", "db"),
            target("cache", "ConfigMap", "cache"),
        ];
        sort(&plan, &mut targets);
        let order: Vec<String> = targets.iter().map(|t| t.id.to_string()).collect();
        assert_eq!(
            order,
            [
                "Secret/ns/db",
                "ConfigMap/ns/cache",
                "Deployment/ns/cache",
                "Deployment/ns/db",
                "ConfigMap/ns/web",
                "Deployment/ns/web",
            ]
        );
        // db and cache need nothing of each other: their Deployments go together, after
        // their Secrets and ConfigMaps; web, which requires db, after all of db's.
        assert_eq!(waves(&plan, &targets), [0..1, 1..2, 2..4, 4..5, 5..6]);
    }
}
