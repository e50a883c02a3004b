//! The emulator's update validation and the controllers' share in re-creating a StatefulSet
//! (hooks in kube_emulator.rs call these). Every check runs for a real write and for a
//! `dryRun=All` one alike, before anything is stored, as the API server validates a dry run
//! exactly as a write:
//!
//! - StatefulSet: only `replicas`, `ordinals`, `template`, `updateStrategy`,
//!   `persistentVolumeClaimRetentionPolicy` and `minReadySeconds` may change; anything else in
//!   `spec` (claim templates, `selector`, `serviceName`, `podManagementPolicy`) is 422 with
//!   the API server's one `spec: Forbidden` cause, which does not say which field it was;
//! - Deployment: `spec.selector` is 422 `field is immutable`;
//! - Service: a `spec.clusterIP` that was set may not change (422 on `spec.clusterIPs[0]`);
//! - PersistentVolumeClaim: only `resources.requests` may change, and only once the claim is
//!   bound (422 otherwise, without the Go diff of the spec the API server appends); a smaller
//!   storage request is 422 unless it stays above `status.capacity` (which the emulator sets
//!   to the request when the claim binds, and an expansion leaves alone, as an external resizer
//!   has not run yet); a larger one needs the claim's
//!   StorageClass (its `storageClassName`, else the default class) to have
//!   `allowVolumeExpansion: true`, else the resize admission plugin answers 403;
//! - validating admission webhooks a test installs (as Istio's `validation.istio.io` refuses a
//!   VirtualService with a bad host), called for writes and dry runs alike (their
//!   `sideEffects: None`), their denial answered as the API server does: 400 with the message
//!   `admission webhook "NAME" denied the request: ...` and no field causes;
//! - list items of built-in kinds without `apiVersion` and `kind`, as a real API server
//!   sends them (custom resources keep theirs);
//! - `DELETE` with `propagationPolicy: Orphan` takes the object's dependents' owner
//!   references off instead of deleting them (the garbage collector's orphan finalizer, done
//!   at once); a new StatefulSet adopts orphaned pods its selector matches whose containers
//!   equal its template's (the controller's revision hash would be the same), so they are
//!   neither restarted nor replaced.
//!
//! Quantities are compared as text, not as numbers (`1Gi` and `1024Mi` differ here, not in a
//! cluster).

use hyper::StatusCode;
use serde_json::{json, Value};

use super::{key, matches, status, Answer, ResourceType, State};

/// The API server's message for a StatefulSet spec change it does not allow.
const SET_SPEC_FORBIDDEN: &str = "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden";

/// The StatefulSet spec fields an update may change.
const SET_MUTABLE: &[&str] = &[
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

/// A validating admission webhook for one kind.
pub(super) struct Webhook {
    name: String,
    kind: String,
    check: fn(&Value) -> Option<String>,
}

impl Webhook {
    pub(super) fn new(name: &str, kind: &str, check: fn(&Value) -> Option<String>) -> Webhook {
        Webhook { name: name.into(), kind: kind.into(), check }
    }
}

/// One refused field, as `details.causes` lists it.
struct Cause {
    reason: &'static str,
    field: String,
    message: String,
}

impl State {
    /// Validates an update of `old` into `new` (both whole objects): `Err` is the API server's
    /// answer refusing it.
    pub(super) fn admit_update(
        &self,
        t: &ResourceType,
        old: &Value,
        new: &Value,
    ) -> Result<(), Answer> {
        let causes = match t.kind.as_str() {
            "StatefulSet" if t.group == "apps" => set_causes(old, new),
            "Deployment" if t.group == "apps" => deployment_causes(old, new),
            "Service" if t.group.is_empty() => service_causes(old, new),
            "PersistentVolumeClaim" if t.group.is_empty() => {
                let causes = claim_causes(old, new);
                if causes.is_empty() && grows(old, new) && !self.expandable(old) {
                    let name = new["metadata"]["name"].as_str().unwrap_or_default();
                    return Err(status(
                        403,
                        "Forbidden",
                        format!("persistentvolumeclaims \"{name}\" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize"),
                    ));
                }
                causes
            }
            _ => Vec::new(),
        };
        if causes.is_empty() {
            return Ok(());
        }
        Err(invalid(t, new["metadata"]["name"].as_str().unwrap_or_default(), causes))
    }

    /// The webhooks for the object's kind, in order: the first denial is the answer.
    pub(super) fn call_webhooks(&self, t: &ResourceType, object: &Value) -> Result<(), Answer> {
        for hook in self.webhooks.iter().filter(|h| h.kind == t.kind) {
            if let Some(why) = (hook.check)(object) {
                let message =
                    format!("admission webhook \"{}\" denied the request: {why}", hook.name);
                return Err((
                    StatusCode::BAD_REQUEST,
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                           "message": message, "code": 400}),
                ));
            }
        }
        Ok(())
    }

    /// Whether a claim's StorageClass allows expansion.
    fn expandable(&self, claim: &Value) -> bool {
        let class = claim["spec"]["storageClassName"].as_str();
        self.objects.values().any(|s| {
            let o = &s.object;
            let named = match class {
                Some(class) => o["metadata"]["name"] == class,
                None => {
                    o["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"]
                        == "true"
                }
            };
            o["kind"] == "StorageClass" && named && o["allowVolumeExpansion"] == true
        })
    }

    /// `propagationPolicy: Orphan`: the dependents of the object lose their owner reference
    /// to it (and so outlive it). Answers what the API server answers: the object marked for
    /// deletion with the `orphan` finalizer (the garbage collector then deletes it, here at
    /// once; in a cluster about a second later).
    pub(super) fn orphan_dependents(&mut self, t: &ResourceType, ns: &str, name: &str) -> Value {
        let Some(mut answer) = self.objects.get(&key(t, ns, name)).map(|s| s.object.clone()) else {
            return Value::Null;
        };
        answer["metadata"]["finalizers"] = json!(["orphan"]);
        answer["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        let uid = answer["metadata"]["uid"].clone();
        for stored in self.objects.values_mut() {
            let meta = &mut stored.object["metadata"];
            if let Some(owners) = meta.get_mut("ownerReferences").and_then(Value::as_array_mut) {
                owners.retain(|o| o["uid"] != uid);
                if owners.is_empty() {
                    if let Some(meta) = meta.as_object_mut() {
                        meta.remove("ownerReferences");
                    }
                }
            }
        }
        answer
    }

    /// A StatefulSet controller adopting orphaned pods: true when it took every pod it needs
    /// (then none is replaced).
    pub(super) fn adopt_orphans(&mut self, set: &Value) -> bool {
        let selector: Vec<String> = set["spec"]["selector"]["matchLabels"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        if selector.is_empty() {
            return false;
        }
        let ns = set["metadata"]["namespace"].as_str().unwrap_or_default();
        let containers = &set["spec"]["template"]["spec"]["containers"];
        let orphans: Vec<_> = self
            .objects
            .iter()
            .filter(|((_, plural, pod_ns, _), s)| {
                plural == "pods"
                    && pod_ns == ns
                    && s.object["metadata"].get("ownerReferences").is_none()
                    && matches(&selector.join(","), &s.object["metadata"]["labels"])
            })
            .map(|(k, s)| (k.clone(), s.object["spec"]["containers"] == *containers))
            .collect();
        let replicas = set["spec"]["replicas"].as_u64().unwrap_or(1) as usize;
        if orphans.len() != replicas || orphans.iter().any(|(_, same)| !same) {
            return false;
        }
        let owner = json!([{"apiVersion": set["apiVersion"], "kind": "StatefulSet", "name": set["metadata"]["name"],
                            "uid": set["metadata"]["uid"], "controller": true}]);
        for (k, _) in orphans {
            if let Some(pod) = self.objects.get_mut(&k) {
                pod.object["metadata"]["ownerReferences"] = owner.clone();
            }
        }
        true
    }
}

/// The API groups built into the API server (not from CustomResourceDefinitions).
const BUILT_IN_GROUPS: &[&str] = &[
    "",
    "apps",
    "batch",
    "storage.k8s.io",
    "apiextensions.k8s.io",
    "networking.k8s.io",
    "rbac.authorization.k8s.io",
    "policy",
    "coordination.k8s.io",
];

/// An object as an item of a list: the API server leaves `apiVersion` and `kind` out of the
/// items of a built-in kind's list (typed lists), and keeps them for custom resources.
pub(super) fn list_item(t: &ResourceType, mut object: Value) -> Value {
    if BUILT_IN_GROUPS.contains(&t.group.as_str()) {
        if let Some(map) = object.as_object_mut() {
            map.remove("apiVersion");
            map.remove("kind");
        }
    }
    object
}

/// A 422 `Invalid` answer with its causes, as the API server words it.
fn invalid(t: &ResourceType, name: &str, causes: Vec<Cause>) -> Answer {
    let kind = if t.group.is_empty() { t.kind.clone() } else { format!("{}.{}", t.kind, t.group) };
    let listed: Vec<String> =
        causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
    let message = match listed.as_slice() {
        [one] => format!("{kind} \"{name}\" is invalid: {one}"),
        many => format!("{kind} \"{name}\" is invalid: [{}]", many.join(", ")),
    };
    let causes: Vec<Value> = causes
        .iter()
        .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
        .collect();
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
               "reason": "Invalid", "code": 422,
               "details": {"name": name, "group": t.group, "kind": t.kind, "causes": causes}}),
    )
}

fn forbidden(field: &str, message: &str) -> Cause {
    Cause {
        reason: "FieldValueForbidden",
        field: field.into(),
        message: format!("Forbidden: {message}"),
    }
}

/// A Deployment's selector may not change; the API server prints the new one as Go does.
fn deployment_causes(old: &Value, new: &Value) -> Vec<Cause> {
    let selector = &new["spec"]["selector"];
    if old["spec"]["selector"] == *selector {
        return Vec::new();
    }
    let labels: Vec<String> = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k:?}:{}", v))
        .collect();
    let go = format!("v1.LabelSelector{{MatchLabels:map[string]string{{{}}}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}}", labels.join(", "));
    vec![Cause {
        reason: "FieldValueInvalid",
        field: "spec.selector".into(),
        message: format!("Invalid value: {go}: field is immutable"),
    }]
}

fn set_causes(old: &Value, new: &Value) -> Vec<Cause> {
    let fixed = |set: &Value| {
        let mut spec = set["spec"].clone();
        if let Some(spec) = spec.as_object_mut() {
            for field in SET_MUTABLE {
                spec.remove(*field);
            }
        }
        spec
    };
    if fixed(old) == fixed(new) {
        return Vec::new();
    }
    vec![forbidden("spec", SET_SPEC_FORBIDDEN)]
}

fn service_causes(old: &Value, new: &Value) -> Vec<Cause> {
    let (before, after) = (&old["spec"]["clusterIP"], &new["spec"]["clusterIP"]);
    if before.as_str().is_none_or(str::is_empty) || before == after {
        return Vec::new();
    }
    vec![Cause {
        reason: "FieldValueInvalid",
        field: "spec.clusterIPs[0]".into(),
        message: format!("Invalid value: []string{{{after}}}: may not change once set"),
    }]
}

fn storage(claim: &Value) -> Option<f64> {
    let text = claim["spec"]["resources"]["requests"]["storage"].as_str()?;
    charmer::kube_rules::parse_quantity(text).ok().map(|q| q.0)
}

fn grows(old: &Value, new: &Value) -> bool {
    storage(new) > storage(old)
}

fn claim_causes(old: &Value, new: &Value) -> Vec<Cause> {
    let without_requests = |claim: &Value| {
        let mut spec = claim["spec"].clone();
        if let Some(resources) = spec["resources"].as_object_mut() {
            resources.remove("requests");
        }
        spec
    };
    let bound = old["status"]["phase"] == "Bound";
    let requests_changed =
        old["spec"]["resources"]["requests"] != new["spec"]["resources"]["requests"];
    if without_requests(old) != without_requests(new) || (requests_changed && !bound) {
        return vec![forbidden(
            "spec",
            "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
        )];
    }
    // RecoverVolumeExpansionFailure (on by default in 1.32): a smaller request is allowed
    // down to just above the volume's size.
    let capacity = old["status"]["capacity"]["storage"]
        .as_str()
        .and_then(|c| charmer::kube_rules::parse_quantity(c).ok())
        .map(|q| q.0);
    if storage(new) < storage(old) && storage(new) <= capacity {
        return vec![forbidden(
            "spec.resources.requests.storage",
            "field can not be less than status.capacity",
        )];
    }
    Vec::new()
}
