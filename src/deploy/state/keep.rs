//! What prune and `remove` leave in place: persistent data and the credentials it was
//! initialised with. A kept object leaves the inventory, is marked as kept from its bundle
//! (label [`KEPT_FROM_LABEL`], annotation [`KEPT_ANNOTATION`], both under their own field
//! manager so the bundle's fields stay untouched), and is adopted again, unchanged, by the next
//! deploy of the same bundle that renders it. Only `remove --destroy-storage` deletes them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;
use serde_json::{json, Value};

use super::record::Record;
use crate::contract::{
    group_of, ObjectId, BUNDLE_LABEL, GENERATE_ANNOTATION, KEPT_ANNOTATION, KEPT_FROM_LABEL,
    RESOURCE_POLICY_ANNOTATION,
};
use crate::deploy::cluster::client::Cluster;
use crate::deploy::error::DeployError;
use crate::deploy::model::kinds::Kind;
use crate::deploy::model::plan::DeployPlan;

/// The field manager owning the kept marks, so marking and unmarking never touch the fields
/// the bundle applied.
pub const KEEP_MANAGER: &str = "charmer-keep";

/// Why an object outlives its bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Keep {
    /// A PersistentVolumeClaim: the application's data.
    Data,
    /// Generated credentials of an application with storage: its data was initialised with
    /// them, so new ones would lock it out.
    Credentials,
    /// The charm annotated it `charmer.io/resource-policy: keep`.
    ResourcePolicy,
}

impl fmt::Display for Keep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Keep::Data => "data",
            Keep::Credentials => "credentials",
            Keep::ResourcePolicy => "resource-policy",
        })
    }
}

/// An object identified without its namespace (a bundle's namespaced objects share one).
type Key = (String, String, String);

/// Why a rendered object of `plan` is kept, if it is.
fn reason(plan: &DeployPlan, app: &str, object: &Value) -> Option<Keep> {
    let annotations = &object["metadata"]["annotations"];
    if annotations[RESOURCE_POLICY_ANNOTATION].as_str() == Some("keep") {
        return Some(Keep::ResourcePolicy);
    }
    match object["kind"].as_str()? {
        "PersistentVolumeClaim" => Some(Keep::Data),
        "Secret" if annotations.get(GENERATE_ANNOTATION).is_some() && has_storage(plan, app) => {
            Some(Keep::Credentials)
        }
        _ => None,
    }
}

/// Whether an application renders a claim or a StatefulSet with claim templates.
fn has_storage(plan: &DeployPlan, app: &str) -> bool {
    plan.objects.iter().filter(|o| o.app == app).any(|o| match o.object["kind"].as_str() {
        Some("PersistentVolumeClaim") => true,
        Some("StatefulSet") => o.object["spec"]["volumeClaimTemplates"]
            .as_array()
            .is_some_and(|templates| !templates.is_empty()),
        _ => false,
    })
}

/// The objects of every recorded plan that are kept, by (group, kind, name), and the claim
/// templates of their StatefulSets.
pub(crate) struct KeptObjects {
    kept: BTreeMap<Key, Keep>,
    /// StatefulSet name → its selector's labels and its claim templates' names.
    set_templates: BTreeMap<String, (Value, BTreeSet<String>)>,
}

/// The claim template names of a StatefulSet object.
pub(crate) fn claim_templates(set: &Value) -> BTreeSet<String> {
    set["spec"]["volumeClaimTemplates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["metadata"]["name"].as_str().map(str::to_string))
        .collect()
}

/// Whether `claim` is one the StatefulSet controller made for set `set` from one of
/// `templates`: `<template>-<set>-<ordinal>`.
pub(crate) fn is_set_claim(claim: &str, set: &str, templates: &BTreeSet<String>) -> bool {
    templates.iter().any(|t| {
        claim
            .strip_prefix(&format!("{t}-{set}-"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// The label selector of the claims the StatefulSet controller made for `set`: it labels
/// each with the set's `selector.matchLabels` (`None` when the set has none to select by).
pub(crate) fn set_claim_selector(set: &Value) -> Option<String> {
    let labels = set["spec"]["selector"]["matchLabels"].as_object()?;
    let pairs: Vec<String> =
        labels.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect();
    (!pairs.is_empty()).then(|| pairs.join(","))
}

/// Whether a live claim is one set `set` (named `set_name`, selector labels `selector`) made
/// from one of `templates` and not one another bundle kept: its name is
/// `<template>-<set>-<ordinal>`, it carries the selector's labels, and it is not marked as
/// kept from another bundle.
pub(crate) fn is_claim_of_set(
    claim: &Value,
    set_name: &str,
    selector: &Value,
    templates: &BTreeSet<String>,
    bundle: &str,
) -> bool {
    let name = claim["metadata"]["name"].as_str().unwrap_or_default();
    let labels = &claim["metadata"]["labels"];
    let selected = selector
        .as_object()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels.get(k) == Some(v)));
    is_set_claim(name, set_name, templates)
        && selected
        && kept_from(claim).is_none_or(|from| from == bundle)
}

impl KeptObjects {
    /// Collects the keep reasons of every plan the records hold (an object any of them keeps
    /// is kept: inventories span several revisions).
    pub(crate) fn of(records: &[Record]) -> KeptObjects {
        let mut kept = BTreeMap::new();
        let mut set_templates: BTreeMap<String, (Value, BTreeSet<String>)> = BTreeMap::new();
        for record in records {
            for o in &record.plan.objects {
                if o.object["kind"] == "StatefulSet" {
                    let name = o.object["metadata"]["name"].as_str().unwrap_or_default();
                    let entry = set_templates.entry(name.to_string()).or_default();
                    // The latest revision's selector is the live set's.
                    entry.0 = o.object["spec"]["selector"]["matchLabels"].clone();
                    entry.1.extend(claim_templates(&o.object));
                }
                let Some(keep) = reason(&record.plan, &o.app, &o.object) else { continue };
                let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
                let group = group_of(o.object["apiVersion"].as_str().unwrap_or_default());
                let key = (
                    group.to_string(),
                    text(&o.object["kind"]),
                    text(&o.object["metadata"]["name"]),
                );
                let entry = kept.entry(key).or_insert(keep);
                *entry = (*entry).min(keep);
            }
        }
        KeptObjects { kept, set_templates }
    }

    /// Why the object is kept, if it is. Claims are always kept, whatever the record says.
    pub(crate) fn reason(&self, id: &ObjectId) -> Option<Keep> {
        let key = (id.group.clone(), id.kind.clone(), id.name.clone());
        self.kept.get(&key).copied().or((id.kind == "PersistentVolumeClaim").then_some(Keep::Data))
    }

    /// Whether a live claim was made by the controller of one of `sets` (StatefulSet names)
    /// of `bundle` ([`is_claim_of_set`]).
    pub(crate) fn is_claim_of(&self, claim: &Value, sets: &[String], bundle: &str) -> bool {
        sets.iter().any(|set| {
            self.set_templates.get(set).is_some_and(|(selector, templates)| {
                is_claim_of_set(claim, set, selector, templates, bundle)
            })
        })
    }
}

/// The bundle an object was kept from, if it was.
pub(crate) fn kept_from(live: &Value) -> Option<&str> {
    live["metadata"]["labels"][KEPT_FROM_LABEL].as_str()
}

impl Cluster {
    /// Marks a live object as kept from `bundle`.
    pub(crate) async fn mark_kept(
        &self,
        kind: &Kind,
        id: &ObjectId,
        bundle: &str,
        keep: Keep,
    ) -> Result<(), DeployError> {
        let mark = json!({
            "apiVersion": kind.resource.api_version,
            "kind": id.kind,
            "metadata": {
                "name": id.name,
                "namespace": id.namespace,
                "labels": {KEPT_FROM_LABEL: bundle},
                "annotations": {KEPT_ANNOTATION: keep.to_string()},
            },
        });
        self.apply_object(kind, id, &mark, KEEP_MANAGER, false).await?;
        Ok(())
    }

    /// Takes the kept marks off an object a deploy adopts (its keep manager applies nothing,
    /// so the server drops the fields it owned).
    pub(crate) async fn unmark_kept(
        &self,
        kind: &Kind,
        id: &ObjectId,
    ) -> Result<Value, DeployError> {
        self.release_fields(kind, id, KEEP_MANAGER).await
    }
}

/// Whether a live object carries the bundle's label, or was kept from it (the inventory's
/// second safety check).
pub(crate) fn owned_by(live: &Value, bundle: &str) -> bool {
    live["metadata"]["labels"][BUNDLE_LABEL].as_str() == Some(bundle)
        || kept_from(live) == Some(bundle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::model::plan::PlanObject;

    fn plan(objects: Vec<(&str, Value)>) -> DeployPlan {
        DeployPlan {
            bundle: "shop".into(),
            namespace: "shop".into(),
            registry: None,
            apps: vec![],
            objects: objects
                .into_iter()
                .map(|(app, object)| PlanObject { app: app.into(), object })
                .collect(),
        }
    }

    #[test]
    fn claims_credentials_of_apps_with_storage_and_annotated_objects_are_kept() {
        let secret = |name: &str| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "annotations": {GENERATE_ANNOTATION: "pw"}}});
        let set = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
            "spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"}}]}});
        let policy = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "seed", "annotations": {RESOURCE_POLICY_ANNOTATION: "keep"}}});
        let p = plan(vec![
            ("db", set),
            ("db", secret("db-credentials")),
            ("web", secret("web-credentials")),
            ("web", policy.clone()),
        ]);
        assert_eq!(reason(&p, "db", &p.objects[1].object), Some(Keep::Credentials));
        assert_eq!(reason(&p, "web", &p.objects[2].object), None, "web has no storage");
        assert_eq!(reason(&p, "web", &policy), Some(Keep::ResourcePolicy));
        let claim =
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "d"}});
        assert_eq!(reason(&p, "web", &claim), Some(Keep::Data));
    }

    #[test]
    fn set_claims_are_template_set_ordinal() {
        let templates: BTreeSet<String> = ["data".to_string()].into();
        assert!(is_set_claim("data-db-0", "db", &templates));
        assert!(is_set_claim("data-db-12", "db", &templates));
        assert!(!is_set_claim("data-db-backup", "db", &templates));
        assert!(!is_set_claim("data-db-", "db", &templates));
        assert!(!is_set_claim("data-dbx-0", "db", &templates));
    }
}
