//! Fields Kubernetes will not change in place, once the gate's dry run met the API server's
//! 422: what changed (the server's StatefulSet answer only says "spec"), and the strategy.
//!
//! - A StatefulSet whose claim templates only grow is re-created: each existing claim is
//!   expanded (its StorageClass must allow it: the gate dry-runs that too), then the set is
//!   deleted with `propagationPolicy: Orphan` (pods and claims stay, as `kubectl delete
//!   --cascade=orphan` does) and applied again; its controller adopts the pods, whose template
//!   did not change.
//! - Anything else (a shrink, a storage class or access mode change, a template added or
//!   removed, a selector, `serviceName` or `podManagementPolicy` change, a Deployment's
//!   selector, a Service's `clusterIP`) is refused before any write, naming the field and the
//!   way forward. Claims are never replaced or deleted.

use serde_json::Value;

use crate::kube_rules::parse_quantity;

/// The path of a claim template's storage request in a StatefulSet.
pub(crate) fn template_storage_path(index: usize) -> String {
    format!("spec.volumeClaimTemplates[{index}].spec.resources.requests.storage")
}

/// A claim template whose storage request grows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Growth {
    /// The template's name (claims are `<template>-<set>-<ordinal>`).
    pub(crate) template: String,
    /// The live request.
    pub(crate) from: String,
    /// The rendered request.
    pub(crate) to: String,
}

/// A change Kubernetes refuses and charmer does not work around.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    /// The field, as an API server path into the rendered object.
    pub(crate) field: String,
    /// What changes and why it cannot.
    pub(crate) message: String,
    /// The value to go back to, when there is one to name.
    pub(crate) back_to: Option<String>,
    /// What else the user can do.
    pub(crate) otherwise: &'static str,
}

/// What to do with a StatefulSet the API server will not update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SetVerdict {
    /// Only claim templates grow: expand the claims and re-create the set.
    Recreate(Vec<Growth>),
    /// Refused, each change with its way forward.
    Refuse(Vec<Change>),
}

/// The way forward when data would be lost otherwise.
const DESTROY: &str =
    "or `charmer remove` the bundle with --destroy-storage (its data is lost) and deploy again";
/// The way forward when only the workload must go (claims are kept by `remove`).
const REMOVE: &str = "or `charmer remove` the bundle (its claims and credentials are kept) and deploy again: the new workload adopts them";

/// Compares a live StatefulSet with the rendered one, field by field where Kubernetes forbids
/// changes; only fields the rendered object sets count (the live one holds server defaults).
pub(crate) fn set_verdict(live: &Value, rendered: &Value) -> SetVerdict {
    let (old, new) = (&live["spec"], &rendered["spec"]);
    let mut changes = Vec::new();
    let mut growths = Vec::new();
    let templates =
        |spec: &Value| spec["volumeClaimTemplates"].as_array().cloned().unwrap_or_default();
    let (old_templates, new_templates) = (templates(old), templates(new));
    let name = |t: &Value| t["metadata"]["name"].as_str().unwrap_or_default().to_string();
    for (i, template) in new_templates.iter().enumerate() {
        let field = format!("spec.volumeClaimTemplates[{i}]");
        let Some(before) = old_templates.iter().find(|o| name(o) == name(template)) else {
            changes.push(Change {
                field,
                message: format!(
                    "claim template {} cannot be added to an existing StatefulSet",
                    name(template)
                ),
                back_to: None,
                otherwise: REMOVE,
            });
            continue;
        };
        let storage =
            |t: &Value| t["spec"]["resources"]["requests"]["storage"].as_str().map(str::to_string);
        if let (Some(from), Some(to)) = (storage(before), storage(template)) {
            let size = |s: &str| parse_quantity(s).map(|q| q.0).unwrap_or(f64::NAN);
            if size(&to) > size(&from) {
                growths.push(Growth { template: name(template), from, to });
            } else if size(&to) < size(&from) {
                changes.push(Change {
                    field: template_storage_path(i),
                    message: format!("claim template {}: storage cannot shrink from {from} to {to} (volumes only grow)", name(template)),
                    back_to: Some(from),
                    otherwise: DESTROY,
                });
            }
        }
        let class = |t: &Value| t["spec"]["storageClassName"].clone();
        if template["spec"].get("storageClassName").is_some() && class(before) != class(template) {
            changes.push(Change {
                field: format!("{field}.spec.storageClassName"),
                message: format!(
                    "claim template {}: the storage class cannot change from {} to {} (existing volumes stay where they are)",
                    name(template),
                    shown(&class(before)),
                    shown(&class(template))
                ),
                back_to: Some(shown(&class(before))),
                otherwise: DESTROY,
            });
        }
        let other =
            differing(&before["spec"], &template["spec"], &["resources", "storageClassName"]);
        let requests_other =
            differing(&before["spec"]["resources"], &template["spec"]["resources"], &["requests"]);
        if !other.is_empty() || !requests_other.is_empty() {
            let mut fields = other;
            fields.extend(requests_other.into_iter().map(|f| format!("resources.{f}")));
            changes.push(Change {
                field: format!("{field}.spec"),
                message: format!(
                    "claim template {}: {} cannot change",
                    name(template),
                    fields.join(", ")
                ),
                back_to: None,
                otherwise: DESTROY,
            });
        }
    }
    for before in &old_templates {
        if !new_templates.iter().any(|t| name(t) == name(before)) {
            changes.push(Change {
                field: "spec.volumeClaimTemplates".into(),
                message: format!(
                    "claim template {} cannot be removed from an existing StatefulSet",
                    name(before)
                ),
                back_to: None,
                otherwise: REMOVE,
            });
        }
    }
    for field in differing(
        old,
        new,
        &[
            "volumeClaimTemplates",
            "replicas",
            "ordinals",
            "template",
            "updateStrategy",
            "persistentVolumeClaimRetentionPolicy",
            "minReadySeconds",
            "revisionHistoryLimit",
        ],
    ) {
        changes.push(Change {
            message: format!("the {field} of a StatefulSet cannot change"),
            back_to: Some(compact(&old[&field])),
            field: format!("spec.{field}"),
            otherwise: REMOVE,
        });
    }
    if changes.is_empty() && growths.is_empty() {
        // The server refused something this comparison does not see: say so, not guess.
        changes.push(Change {
            field: "spec".into(),
            message: "the API server refuses this StatefulSet change (a field other than replicas, template, updateStrategy, minReadySeconds, ordinals or persistentVolumeClaimRetentionPolicy)".into(),
            back_to: None,
            otherwise: REMOVE,
        });
    }
    if changes.is_empty() {
        SetVerdict::Recreate(growths)
    } else {
        SetVerdict::Refuse(changes)
    }
}

/// The way forward for a refused field of other kinds Kubernetes keeps fixed, with the live
/// value to go back to.
pub(crate) fn fixed_field(kind: &str, field: &str, live: &Value) -> Option<Change> {
    let (back_to, what) = match (kind, field) {
        ("Deployment", "spec.selector") => {
            (&live["spec"]["selector"], "the selector of a Deployment")
        }
        ("Service", f) if f.starts_with("spec.clusterIP") => {
            (&live["spec"]["clusterIP"], "the clusterIP of a Service, once set,")
        }
        _ => return None,
    };
    Some(Change {
        field: field.to_string(),
        message: format!("{what} cannot change"),
        back_to: Some(compact(back_to)),
        otherwise: REMOVE,
    })
}

impl Change {
    /// The hint: go back to the live value (through `option` when one produced it), or the
    /// other way.
    pub(crate) fn way_forward(&self, option: Option<&str>) -> String {
        match (&self.back_to, option) {
            (Some(value), Some(option)) => {
                format!("set {option} back to {value}, {}", self.otherwise)
            }
            (Some(value), None) => format!("render it as {value} again, {}", self.otherwise),
            (None, _) => format!("keep it as deployed, {}", self.otherwise),
        }
    }
}

/// The keys of `new` (but `skip`) whose values differ from `old`'s.
fn differing(old: &Value, new: &Value, skip: &[&str]) -> Vec<String> {
    new.as_object()
        .into_iter()
        .flatten()
        .filter(|(k, v)| !skip.contains(&k.as_str()) && old.get(k.as_str()) != Some(v))
        .map(|(k, _)| k.clone())
        .collect()
}

fn shown(value: &Value) -> String {
    match value {
        Value::Null => "the default".to_string(),
        other => compact(other),
    }
}

/// A value on one line: text as is, anything else as JSON.
fn compact(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn set(storage: &str, class: Option<&str>, service: &str) -> Value {
        let mut template = json!({"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}}});
        if let Some(class) = class {
            template["spec"]["storageClassName"] = json!(class);
        }
        json!({"spec": {"replicas": 1, "serviceName": service, "selector": {"matchLabels": {"app": "db"}},
                        "template": {"spec": {}}, "volumeClaimTemplates": [template]}})
    }

    #[test]
    fn a_growing_claim_template_recreates_the_set() {
        let mut live = set("1Gi", None, "db");
        // Server defaults in the live object do not count as changes.
        live["spec"]["podManagementPolicy"] = json!("OrderedReady");
        live["spec"]["volumeClaimTemplates"][0]["spec"]["volumeMode"] = json!("Filesystem");
        assert_eq!(
            set_verdict(&live, &set("2Gi", None, "db")),
            SetVerdict::Recreate(vec![Growth {
                template: "data".into(),
                from: "1Gi".into(),
                to: "2Gi".into()
            }])
        );
        // The server refused something this comparison does not see: named as such.
        let SetVerdict::Refuse(unknown) = set_verdict(&live, &live.clone()) else {
            panic!("refused")
        };
        assert_eq!(unknown[0].field, "spec");
        assert_eq!(unknown[0].back_to, None);
    }

    #[test]
    fn shrinks_class_and_service_name_changes_are_refused_with_the_value_to_go_back_to() {
        let SetVerdict::Refuse(changes) =
            set_verdict(&set("2Gi", Some("fast"), "db"), &set("1Gi", Some("slow"), "database"))
        else {
            panic!("refused")
        };
        let fields: Vec<(&str, Option<&str>)> =
            changes.iter().map(|c| (c.field.as_str(), c.back_to.as_deref())).collect();
        assert_eq!(
            fields,
            [
                (template_storage_path(0).as_str(), Some("2Gi")),
                ("spec.volumeClaimTemplates[0].spec.storageClassName", Some("fast")),
                ("spec.serviceName", Some("db")),
            ]
        );
        assert_eq!(
            changes[0].way_forward(Some("db.storage_size")),
            format!("set db.storage_size back to 2Gi, {DESTROY}")
        );
    }

    #[test]
    fn a_grow_with_another_change_is_refused() {
        let verdict = set_verdict(&set("1Gi", None, "db"), &set("2Gi", None, "other"));
        assert!(
            matches!(verdict, SetVerdict::Refuse(c) if c.len() == 1 && c[0].field == "spec.serviceName")
        );
    }

    #[test]
    fn deployment_selectors_and_cluster_ips_name_the_live_value() {
        let live =
            json!({"spec": {"selector": {"matchLabels": {"app": "web"}}, "clusterIP": "10.0.0.9"}});
        let change = fixed_field("Deployment", "spec.selector", &live).unwrap();
        assert_eq!(change.back_to.as_deref(), Some(r#"{"matchLabels":{"app":"web"}}"#));
        let change = fixed_field("Service", "spec.clusterIPs[0]", &live).unwrap();
        assert_eq!(change.back_to.as_deref(), Some("10.0.0.9"));
        assert!(fixed_field("ConfigMap", "data", &live).is_none());
    }
}
