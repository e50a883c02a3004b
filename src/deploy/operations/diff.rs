//! Live vs intended: what a deploy would change, computed with the API server's dry-run (so
//! defaults and other managers' fields are accounted for, as `kubectl diff` does), with
//! server-maintained fields stripped and Secret values masked.

use serde::Serialize;
use serde_json::Value;

use super::preflight::{namespace_id, namespace_object, Prepared};
use super::prune::stale_entries;
use crate::contract::ObjectId;
use crate::deploy::cluster::client::Cluster;
use crate::deploy::error::DeployError;
use crate::deploy::model::events::Action;
use crate::deploy::state::keep::{owned_by, KeptObjects};

/// What a deploy would do, object by object, in apply order (then prunes).
#[derive(Debug, Clone, Serialize)]
pub struct Changes {
    /// One entry per rendered object and per object that would be pruned, after the
    /// Namespace when it would be created.
    pub objects: Vec<ObjectChange>,
    /// Objects the server could not dry-run yet, with why (a deploy checks them before
    /// writing anything but their namespace).
    pub unchecked: Vec<(ObjectId, String)>,
}

/// The change to one object.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectChange {
    /// Its application.
    pub app: String,
    /// The object.
    pub id: ObjectId,
    /// What would happen.
    pub action: Action,
    /// A unified diff of live → intended YAML (empty when unchanged); Secret values masked.
    pub diff: String,
}

impl Changes {
    /// True when applying would change nothing.
    pub fn is_empty(&self) -> bool {
        self.objects.iter().all(|c| c.action == Action::Unchanged)
    }

    /// How many objects would get `action`.
    pub fn count(&self, action: Action) -> usize {
        self.objects.iter().filter(|c| c.action == action).count()
    }
}

impl Cluster {
    /// Computes what applying `prepared` would change, writing nothing: the deploy's dry-run
    /// gate, so every refusal fails it as it would fail the deploy. The Namespace comes first
    /// when it would be created; objects whose namespace or kind does not exist yet are shown
    /// as created as rendered; StatefulSets the immutable-field strategy re-creates as
    /// recreated.
    pub async fn changes(&self, prepared: &Prepared, prune: bool) -> Result<Changes, DeployError> {
        let gate = self.gate(prepared, prepared.namespace_exists).await?;
        let mut objects = Vec::new();
        if !prepared.namespace_exists {
            let namespace = &prepared.plan.namespace;
            let (action, diff) = compare(None, Some(&namespace_object(namespace)));
            objects.push(ObjectChange {
                app: String::new(),
                id: namespace_id(namespace),
                action,
                diff,
            });
        }
        for (t, answer) in prepared.targets.iter().zip(&gate.answers) {
            let reachable = !t.kind.namespaced || prepared.namespace_exists;
            let live = if reachable { self.get(&t.kind, &t.id).await? } else { None };
            let (action, diff) = match (gate.recreate.contains_key(&t.id), &live) {
                // No dry run can answer for a set that must go first: the rendered fields over
                // the live object, so the server's defaults do not show up as removals.
                (true, Some(live)) => {
                    (Action::Recreated, compare(Some(live), Some(&overlaid(live, &t.object))).1)
                }
                _ => compare(live.as_ref(), Some(answer.as_ref().unwrap_or(&t.object))),
            };
            objects.push(ObjectChange { app: t.app.clone(), id: t.id.clone(), action, diff });
        }
        if prune {
            let kept = KeptObjects::of(&prepared.records);
            for (entry, kind) in stale_entries(prepared) {
                if let Some(live) = self.get(&kind, &entry.id).await? {
                    if owned_by(&live, &prepared.plan.bundle) {
                        let (action, diff) = match kept.reason(&entry.id) {
                            // Only marks are added; its content stays.
                            Some(_) => (Action::Kept, String::new()),
                            None => (Action::Pruned, compare(Some(&live), None).1),
                        };
                        objects.push(ObjectChange { app: entry.app, id: entry.id, action, diff });
                    }
                }
            }
        }
        let unchecked = gate.unchecked.into_iter().map(|(id, why)| (id, why.to_string())).collect();
        Ok(Changes { objects, unchecked })
    }
}

/// The action and unified diff taking `live` to `intended` (`None`: absent).
pub(crate) fn compare(live: Option<&Value>, intended: Option<&Value>) -> (Action, String) {
    let mut before = live.map(normalize);
    let mut after = intended.map(normalize);
    mask_secrets(before.as_mut(), after.as_mut());
    let text = |v: &Option<Value>| {
        v.as_ref().map(|v| serde_yaml::to_string(v).unwrap_or_default()).unwrap_or_default()
    };
    let (old, new) = (text(&before), text(&after));
    let action = match (live, intended) {
        (None, _) => Action::Created,
        (Some(_), None) => Action::Pruned,
        _ if old == new => Action::Unchanged,
        _ => Action::Configured,
    };
    if old == new {
        return (action, String::new());
    }
    let diff = similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header("live", "intended")
        .to_string();
    (action, diff)
}

/// `rendered` merged over `live` about as server-side apply merges an object's fields: maps
/// key by key, lists of the same length item by item (containers, claim templates), other
/// lists whole.
fn overlaid(live: &Value, rendered: &Value) -> Value {
    match (live, rendered) {
        (Value::Array(old), Value::Array(new)) if old.len() == new.len() => {
            Value::Array(old.iter().zip(new).map(|(o, n)| overlaid(o, n)).collect())
        }
        (Value::Object(old), Value::Object(new)) => {
            let mut merged = old.clone();
            for (key, value) in new {
                let value = match old.get(key) {
                    Some(before) => overlaid(before, value),
                    None => value.clone(),
                };
                merged.insert(key.clone(), value);
            }
            Value::Object(merged)
        }
        (_, new) => new.clone(),
    }
}

/// The object without what the server maintains: managed fields, resource version, uid,
/// timestamps, generation and status.
pub(crate) fn normalize(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in [
            "managedFields",
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "generation",
            "selfLink",
        ] {
            meta.remove(key);
        }
        if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            // kubectl's client-side apply copy would repeat every value, secrets included.
            annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
            if annotations.is_empty() {
                meta.remove("annotations");
            }
        }
    }
    object
}

/// Replaces every Secret value with `***`, marking values that differ between the two sides
/// as `*** (before)` / `*** (after)` so a diff still shows which keys change.
pub(crate) fn mask_secrets(before: Option<&mut Value>, after: Option<&mut Value>) {
    let is_secret = |v: &Option<&mut Value>| v.as_ref().is_some_and(|v| v["kind"] == "Secret");
    if !is_secret(&before) && !is_secret(&after) {
        return;
    }
    let (mut before, mut after) = (before, after);
    for field in ["data", "stringData"] {
        let old = before
            .as_deref()
            .and_then(|v| v.get(field))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let new = after
            .as_deref()
            .and_then(|v| v.get(field))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mask = |side: &mut Option<&mut Value>,
                    this: &serde_json::Map<String, Value>,
                    other: &serde_json::Map<String, Value>,
                    label: &str| {
            let Some(map) =
                side.as_deref_mut().and_then(|v| v.get_mut(field)).and_then(Value::as_object_mut)
            else {
                return;
            };
            for (key, value) in map.iter_mut() {
                let differs = other.get(key).is_some_and(|o| Some(o) != this.get(key));
                *value = Value::String(if differs {
                    format!("*** ({label})")
                } else {
                    "***".to_string()
                });
            }
        };
        mask(&mut before, &old, &new, "before");
        mask(&mut after, &new, &old, "after");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_fields_do_not_count_as_changes() {
        let live = json!({"kind": "ConfigMap", "metadata": {"name": "c", "resourceVersion": "7", "uid": "u", "managedFields": [{}], "generation": 1},
            "data": {"a": "1"}});
        let intended = json!({"kind": "ConfigMap", "metadata": {"name": "c", "resourceVersion": "8"}, "data": {"a": "1"}});
        assert_eq!(compare(Some(&live), Some(&intended)), (Action::Unchanged, String::new()));
        let changed = json!({"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "2"}});
        let (action, diff) = compare(Some(&live), Some(&changed));
        assert_eq!(action, Action::Configured);
        assert!(diff.contains("-  a: '1'") && diff.contains("+  a: '2'"), "{diff}");
    }

    #[test]
    fn secret_values_never_appear_but_changed_keys_do() {
        let live = json!({"kind": "Secret", "metadata": {"name": "s"}, "data": {"same": "c2VjcmV0", "pw": "b2xk"}});
        let intended = json!({"kind": "Secret", "metadata": {"name": "s"}, "data": {"same": "c2VjcmV0", "pw": "bmV3"}, "stringData": {"x": "plain"}});
        let (action, diff) = compare(Some(&live), Some(&intended));
        assert_eq!(action, Action::Configured);
        for secret in ["c2VjcmV0", "b2xk", "bmV3", "plain"] {
            assert!(!diff.contains(secret), "{diff}");
        }
        assert!(
            diff.contains("-  pw: '*** (before)'") && diff.contains("+  pw: '*** (after)'"),
            "{diff}"
        );
        let (action, created) = compare(None, Some(&intended));
        assert_eq!(action, Action::Created);
        assert!(!created.contains("plain") && created.contains("x: '***'"), "{created}");
    }
}
