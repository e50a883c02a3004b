//! Where a live object stands, by the rules of kstatus (`sigs.k8s.io/cli-utils/pkg/kstatus`,
//! the library `kubectl`'s and Flux's waits use; read, not copied): `Current`,
//! `InProgress`, `Failed`, `Terminating`, or `NotFound`. For every kind: an object marked
//! for deletion is terminating, and one whose controller has not observed its generation is
//! in progress. Then per kind (kstatus's checks, in its order):
//! - Deployment: every replica exists, is updated, available and ready, no old replica is
//!   left, and it is `Available`; a `Progressing` condition with `ProgressDeadlineExceeded`
//!   is a failure;
//! - StatefulSet: replicas exist and are ready, the update reached every replica outside a
//!   partition, and `currentRevision` equals `updateRevision` (the `OnDelete` strategy never
//!   rolls pods, so it is current once observed);
//! - DaemonSet: every scheduled pod is current, updated, available and ready;
//! - Job: `Complete` (kstatus calls a running Job current; deploy waits for it to finish,
//!   because bundles use Jobs for one-off setup later applications rely on), `Failed` fails;
//! - PersistentVolumeClaim: `Bound` (`Lost` fails);
//! - CustomResourceDefinition: `Established`; `NamesAccepted=False` fails;
//! - custom resources: `Stalled=True` fails, `Reconciling=True` is in progress, and a
//!   `Ready` condition must be `True` (charmer's addition: most operators publish `Ready`);
//!   Knative Services fail on `Ready=False` only after a grace (see the wait);
//! - everything else (ConfigMaps, Services, ...) is current once it exists.

use serde_json::Value;

use crate::contract::ObjectId;

/// Where an object stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Health {
    /// Ready: its controller has done all the spec asks.
    Current,
    /// Not yet, and why.
    InProgress(String),
    /// Will not become ready without a change, and why.
    Failed(String),
    /// Marked for deletion.
    Terminating,
    /// Does not exist.
    NotFound,
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Health::Current => f.write_str("ready"),
            Health::InProgress(why) | Health::Failed(why) => f.write_str(why),
            Health::Terminating => f.write_str("terminating"),
            Health::NotFound => f.write_str("not found"),
        }
    }
}

/// The API group of Knative Serving, whose `Service` deploy waits for.
pub(crate) const KNATIVE_SERVING: &str = "serving.knative.dev";

/// Whether an API group is Kubernetes' own (core, `apps`, `*.k8s.io`) rather than one a
/// CustomResourceDefinition adds.
fn builtin_group(group: &str) -> bool {
    group.is_empty() || !group.contains('.') || group.ends_with(".k8s.io")
}

/// Whether deploy waits for objects of this kind in this API group: workloads, claims,
/// CRDs and custom resources (which are current at once unless their status says otherwise).
pub(crate) fn waits_for(id: &ObjectId) -> bool {
    if !builtin_group(&id.group) {
        return true;
    }
    matches!(
        id.kind.as_str(),
        "Deployment" | "StatefulSet" | "DaemonSet" | "Job" | "PersistentVolumeClaim"
    ) || id.kind == "CustomResourceDefinition"
}

fn int(value: &Value) -> i64 {
    value.as_i64().unwrap_or(0)
}

/// The counters `keys` of a status (0 when missing).
fn counters<const N: usize>(status: &Value, keys: [&str; N]) -> [i64; N] {
    keys.map(|k| int(&status[k]))
}

/// The condition of `type` in a status, if reported.
pub(crate) fn condition<'a>(status: &'a Value, kind: &str) -> Option<&'a Value> {
    status["conditions"].as_array()?.iter().find(|c| c["type"] == kind)
}

fn is_true(status: &Value, kind: &str) -> bool {
    condition(status, kind).is_some_and(|c| c["status"] == "True")
}

/// `reason: message` of a condition (either may be missing).
fn explained(c: &Value) -> String {
    [c["reason"].as_str(), c["message"].as_str()]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(": ")
}

/// Where a live object of `kind` in API group `group` stands.
pub(crate) fn health(group: &str, kind: &str, object: &Value) -> Health {
    if object["metadata"].get("deletionTimestamp").is_some_and(|t| !t.is_null()) {
        return Health::Terminating;
    }
    let status = &object["status"];
    let generation = int(&object["metadata"]["generation"]);
    // Kinds whose controllers publish `observedGeneration`; for others (claims, CRDs,
    // custom resources without it) there is nothing to compare.
    if let Some(observed) = status["observedGeneration"].as_i64() {
        if observed < generation {
            return Health::InProgress(format!(
                "controller has not seen generation {generation} yet"
            ));
        }
    } else if matches!(kind, "Deployment" | "StatefulSet" | "DaemonSet") && builtin_group(group) {
        return Health::InProgress(format!("controller has not seen generation {generation} yet"));
    }
    if !builtin_group(group) {
        return custom_resource(group, status);
    }
    match kind {
        "Deployment" => deployment(object),
        "StatefulSet" => stateful_set(object),
        "DaemonSet" => daemon_set(status),
        "Job" => job(status),
        "PersistentVolumeClaim" => match status["phase"].as_str() {
            Some("Bound") => Health::Current,
            Some("Lost") => Health::Failed("the claim lost its volume".into()),
            phase => Health::InProgress(format!("claim is {}", phase.unwrap_or("Pending"))),
        },
        "CustomResourceDefinition" => {
            if condition(status, "NamesAccepted").is_some_and(|c| c["status"] == "False") {
                let why = condition(status, "NamesAccepted").map(explained).unwrap_or_default();
                Health::Failed(format!("names not accepted: {why}"))
            } else if is_true(status, "Established") {
                Health::Current
            } else {
                Health::InProgress("not established yet".into())
            }
        }
        _ => Health::Current,
    }
}

fn deployment(object: &Value) -> Health {
    let status = &object["status"];
    if let Some(p) = condition(status, "Progressing") {
        if p["reason"] == "ProgressDeadlineExceeded" {
            return Health::Failed(format!("progress deadline exceeded: {}", explained(p)));
        }
    }
    let desired = object["spec"]["replicas"].as_i64().unwrap_or(1);
    let [total, updated, ready, available] =
        counters(status, ["replicas", "updatedReplicas", "readyReplicas", "availableReplicas"]);
    let counts = format!("{ready} of {desired} replicas ready, {updated} updated");
    if desired > total || desired > updated || desired > ready || updated > available {
        return Health::InProgress(counts);
    }
    if total > desired {
        return Health::InProgress(format!("{} old replicas terminating", total - desired));
    }
    // The controller sets `Available` (with the default progress deadline also
    // `Progressing`); a status without conditions is one it has not written yet.
    if condition(status, "Available").is_some_and(|c| c["status"] != "True") {
        return Health::InProgress("deployment not available".into());
    }
    Health::Current
}

fn stateful_set(object: &Value) -> Health {
    let status = &object["status"];
    let strategy = object["spec"]["updateStrategy"]["type"].as_str().unwrap_or("RollingUpdate");
    let desired = object["spec"]["replicas"].as_i64().unwrap_or(1);
    let [total, ready, current, updated] =
        counters(status, ["replicas", "readyReplicas", "currentReplicas", "updatedReplicas"]);
    let counts = format!("{ready} of {desired} replicas ready, {updated} updated");
    if desired > total || desired > ready {
        return Health::InProgress(counts);
    }
    if total > desired {
        return Health::InProgress(format!("{} old replicas terminating", total - desired));
    }
    if strategy == "OnDelete" {
        return Health::Current;
    }
    if let Some(partition) =
        object["spec"]["updateStrategy"]["rollingUpdate"]["partition"].as_i64().filter(|p| *p > 0)
    {
        if updated < desired - partition {
            return Health::InProgress(counts);
        }
        return Health::Current;
    }
    if desired > current {
        return Health::InProgress(counts);
    }
    let (from, to) = (&status["currentRevision"], &status["updateRevision"]);
    if from != to {
        return Health::InProgress(format!(
            "revision {} not yet rolled out (current {})",
            to.as_str().unwrap_or("?"),
            from.as_str().unwrap_or("?")
        ));
    }
    Health::Current
}

fn daemon_set(status: &Value) -> Health {
    let Some(desired) = status["desiredNumberScheduled"].as_i64() else {
        return Health::InProgress("controller has not scheduled it yet".into());
    };
    let [current, updated, available, ready] = counters(
        status,
        ["currentNumberScheduled", "updatedNumberScheduled", "numberAvailable", "numberReady"],
    );
    if desired > current || desired > updated || desired > available || desired > ready {
        return Health::InProgress(format!("{ready} of {desired} pods ready, {updated} updated"));
    }
    Health::Current
}

fn job(status: &Value) -> Health {
    if let Some(failed) = condition(status, "Failed").filter(|c| c["status"] == "True") {
        let why = failed["message"].as_str().or(failed["reason"].as_str());
        return Health::Failed(format!("job failed: {}", why.unwrap_or("no reason given")));
    }
    if is_true(status, "Complete") {
        Health::Current
    } else {
        Health::InProgress(format!("{} pods succeeded, not complete", int(&status["succeeded"])))
    }
}

/// A custom resource by kstatus's standard conditions and its `Ready` condition. Knative
/// reports `Unknown` while it rolls out a revision and `False` when it gave up on one.
fn custom_resource(group: &str, status: &Value) -> Health {
    if let Some(stalled) = condition(status, "Stalled").filter(|c| c["status"] == "True") {
        return Health::Failed(format!("stalled: {}", explained(stalled)));
    }
    if let Some(c) = condition(status, "Reconciling").filter(|c| c["status"] == "True") {
        return Health::InProgress(format!("reconciling: {}", explained(c)));
    }
    let Some(ready) = condition(status, "Ready") else {
        if group == KNATIVE_SERVING {
            return Health::InProgress("Knative has not reported readiness yet".into());
        }
        return Health::Current;
    };
    let why = explained(ready);
    match ready["status"].as_str() {
        Some("True") => Health::Current,
        Some("False") if group == KNATIVE_SERVING => {
            Health::Failed(format!("Knative reports it not ready: {why}"))
        }
        Some("False") => Health::InProgress(format!("not ready: {why}")),
        _ if why.is_empty() => Health::InProgress("rolling out".into()),
        _ => Health::InProgress(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_deployment_is_current_only_once_its_generation_is_observed_and_rolled_out() {
        let mut d = json!({"metadata": {"generation": 2}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}});
        assert!(
            matches!(health("apps", "Deployment", &d), Health::InProgress(w) if w.contains("generation 2"))
        );
        d["status"]["observedGeneration"] = json!(2);
        d["status"]["updatedReplicas"] = json!(1);
        assert_eq!(
            health("apps", "Deployment", &d),
            Health::InProgress("2 of 2 replicas ready, 1 updated".into())
        );
        d["status"]["updatedReplicas"] = json!(2);
        assert_eq!(health("apps", "Deployment", &d), Health::Current);
        d["status"]["replicas"] = json!(3);
        assert_eq!(
            health("apps", "Deployment", &d),
            Health::InProgress("1 old replicas terminating".into())
        );
        d["status"]["replicas"] = json!(2);
        d["status"]["conditions"] = json!([{"type": "Progressing", "status": "False",
            "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"web-1\" has timed out progressing."}]);
        assert!(
            matches!(health("apps", "Deployment", &d), Health::Failed(w) if w.contains("timed out"))
        );
        d["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        assert_eq!(health("apps", "Deployment", &d), Health::Terminating);
    }

    #[test]
    fn a_stateful_set_is_current_once_every_replica_runs_the_update_revision() {
        let mut s = json!({"metadata": {"generation": 3}, "spec": {"replicas": 1},
            "status": {"observedGeneration": 3, "replicas": 1, "readyReplicas": 1, "currentReplicas": 1,
                "updatedReplicas": 0, "currentRevision": "db-a", "updateRevision": "db-b"}});
        assert_eq!(
            health("apps", "StatefulSet", &s),
            Health::InProgress("revision db-b not yet rolled out (current db-a)".into())
        );
        s["status"]["currentRevision"] = json!("db-b");
        assert_eq!(health("apps", "StatefulSet", &s), Health::Current);
        s["status"]["readyReplicas"] = json!(0);
        assert!(matches!(health("apps", "StatefulSet", &s), Health::InProgress(_)));
        let unobserved = json!({"metadata": {"generation": 1}, "spec": {}, "status": {}});
        assert!(matches!(health("apps", "StatefulSet", &unobserved), Health::InProgress(_)));
    }

    #[test]
    fn custom_resources_follow_stalled_reconciling_and_ready() {
        let cr = |conditions: Value| json!({"metadata": {"generation": 1}, "status": {"conditions": conditions}});
        assert_eq!(health("example.io", "Cert", &json!({})), Health::Current);
        let not_ready = cr(
            json!([{"type": "Ready", "status": "False", "reason": "Pending", "message": "issuing"}]),
        );
        assert_eq!(
            health("example.io", "Cert", &not_ready),
            Health::InProgress("not ready: Pending: issuing".into())
        );
        let stalled = cr(json!([{"type": "Stalled", "status": "True", "reason": "BadConfig"}]));
        assert_eq!(
            health("example.io", "Cert", &stalled),
            Health::Failed("stalled: BadConfig".into())
        );
        let knative = |status: &str| {
            json!({"metadata": {"generation": 2}, "status": {"observedGeneration": 2,
                "conditions": [{"type": "Ready", "status": status, "reason": "RevisionFailed", "message": "it crashed"}]}})
        };
        assert_eq!(health(KNATIVE_SERVING, "Service", &knative("True")), Health::Current);
        assert_eq!(
            health(KNATIVE_SERVING, "Service", &knative("Unknown")),
            Health::InProgress("RevisionFailed: it crashed".into())
        );
        assert_eq!(
            health(KNATIVE_SERVING, "Service", &knative("False")),
            Health::Failed("Knative reports it not ready: RevisionFailed: it crashed".into())
        );
        let id = |group: &str, kind: &str| ObjectId {
            group: group.into(),
            kind: kind.into(),
            namespace: None,
            name: "x".into(),
        };
        assert!(waits_for(&id(KNATIVE_SERVING, "Service")));
        assert!(waits_for(&id("networking.istio.io", "Gateway")));
        assert!(!waits_for(&id("", "Service")));
        assert!(!waits_for(&id("gateway.networking.k8s.io", "Gateway")));
    }

    #[test]
    fn jobs_claims_daemon_sets_and_other_kinds() {
        let failed = json!({"status": {"conditions": [{"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}]}});
        assert_eq!(
            health("batch", "Job", &failed),
            Health::Failed("job failed: BackoffLimitExceeded".into())
        );
        let complete = json!({"status": {"conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(health("batch", "Job", &complete), Health::Current);
        assert_eq!(
            health("", "PersistentVolumeClaim", &json!({"status": {"phase": "Bound"}})),
            Health::Current
        );
        assert!(matches!(health("", "PersistentVolumeClaim", &json!({})), Health::InProgress(_)));
        let ds = json!({"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "desiredNumberScheduled": 2,
            "currentNumberScheduled": 2, "updatedNumberScheduled": 2, "numberAvailable": 1, "numberReady": 1}});
        assert_eq!(
            health("apps", "DaemonSet", &ds),
            Health::InProgress("1 of 2 pods ready, 2 updated".into())
        );
        assert_eq!(health("", "ConfigMap", &json!({})), Health::Current);
    }
}
