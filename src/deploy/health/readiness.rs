//! Whether a live object is ready: generation-aware for workloads (the controller has seen
//! the new spec and every replica runs it), Bound for claims, Complete for Jobs, Established
//! for CRDs, the `Ready` condition for Knative Services.

use serde_json::Value;

use crate::contract::ObjectId;

/// Where an object stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Readiness {
    Ready,
    /// Not yet, and why.
    Pending(String),
    /// Will not become ready.
    Failed(String),
}

/// The API group of Knative Serving, whose `Service` deploy waits for.
pub(crate) const KNATIVE_SERVING: &str = "serving.knative.dev";

/// Whether deploy waits for objects of this kind in this API group.
pub(crate) fn waits_for(id: &ObjectId) -> bool {
    match id.group.as_str() {
        KNATIVE_SERVING => id.kind == "Service",
        _ => matches!(
            id.kind.as_str(),
            "Deployment"
                | "StatefulSet"
                | "DaemonSet"
                | "Job"
                | "PersistentVolumeClaim"
                | "CustomResourceDefinition"
        ),
    }
}

fn int(value: &Value) -> i64 {
    value.as_i64().unwrap_or(0)
}

/// The readiness of a live object of `kind` in API group `group`.
pub(crate) fn readiness(group: &str, kind: &str, object: &Value) -> Readiness {
    let status = &object["status"];
    let generation = int(&object["metadata"]["generation"]);
    let observed = int(&status["observedGeneration"]);
    let stale =
        || Readiness::Pending(format!("controller has not seen generation {generation} yet"));
    if group == KNATIVE_SERVING {
        if observed < generation {
            return stale();
        }
        return knative_readiness(status);
    }
    match kind {
        "Deployment" | "StatefulSet" => {
            if observed < generation {
                return stale();
            }
            let desired = object["spec"]["replicas"].as_i64().unwrap_or(1);
            let (updated, ready, total) = (
                int(&status["updatedReplicas"]),
                int(&status["readyReplicas"]),
                int(&status["replicas"]),
            );
            if updated == desired && ready == desired && total <= desired {
                Readiness::Ready
            } else {
                Readiness::Pending(format!(
                    "{ready} of {desired} replicas ready, {updated} updated"
                ))
            }
        }
        "DaemonSet" => {
            if observed < generation {
                return stale();
            }
            let desired = int(&status["desiredNumberScheduled"]);
            let (updated, ready) =
                (int(&status["updatedNumberScheduled"]), int(&status["numberReady"]));
            if updated == desired && ready == desired {
                Readiness::Ready
            } else {
                Readiness::Pending(format!("{ready} of {desired} pods ready, {updated} updated"))
            }
        }
        "Job" => {
            let condition = |kind: &str| {
                status["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|c| c["type"] == kind && c["status"] == "True")
            };
            if let Some(failed) = condition("Failed") {
                return Readiness::Failed(format!(
                    "job failed: {}",
                    failed["message"]
                        .as_str()
                        .or(failed["reason"].as_str())
                        .unwrap_or("no reason given")
                ));
            }
            if condition("Complete").is_some() {
                Readiness::Ready
            } else {
                Readiness::Pending(format!(
                    "{} pods succeeded, not complete",
                    int(&status["succeeded"])
                ))
            }
        }
        "PersistentVolumeClaim" => match status["phase"].as_str() {
            Some("Bound") => Readiness::Ready,
            Some("Lost") => Readiness::Failed("the claim lost its volume".into()),
            phase => Readiness::Pending(format!("claim is {}", phase.unwrap_or("Pending"))),
        },
        "CustomResourceDefinition" => {
            let established = status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Established" && c["status"] == "True");
            if established {
                Readiness::Ready
            } else {
                Readiness::Pending("not established yet".into())
            }
        }
        _ => Readiness::Ready,
    }
}

/// A Knative Service by its `Ready` condition: `True` once its latest revision serves,
/// `Unknown` while it rolls out (a revision whose pods are not ready yet, e.g. a model still
/// loading), `False` when Knative gave up on it (a revision that failed, an image it cannot
/// resolve, pods not ready within its progress deadline), with Knative's reason and message.
fn knative_readiness(status: &Value) -> Readiness {
    let ready =
        status["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == "Ready");
    let Some(ready) = ready else {
        return Readiness::Pending("Knative has not reported readiness yet".into());
    };
    let why = [ready["reason"].as_str(), ready["message"].as_str()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(": ");
    match ready["status"].as_str() {
        Some("True") => Readiness::Ready,
        Some("False") => Readiness::Failed(format!("Knative reports it not ready: {why}")),
        _ if why.is_empty() => Readiness::Pending("Knative is rolling out a revision".into()),
        _ => Readiness::Pending(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_deployment_is_ready_only_once_its_generation_is_observed_and_rolled_out() {
        let mut d = json!({"metadata": {"generation": 2}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2}});
        assert!(
            matches!(readiness("", "Deployment", &d), Readiness::Pending(w) if w.contains("generation 2"))
        );
        d["status"]["observedGeneration"] = json!(2);
        d["status"]["updatedReplicas"] = json!(1);
        assert_eq!(
            readiness("", "Deployment", &d),
            Readiness::Pending("2 of 2 replicas ready, 1 updated".into())
        );
        d["status"]["updatedReplicas"] = json!(2);
        assert_eq!(readiness("", "Deployment", &d), Readiness::Ready);
        d["status"]["replicas"] = json!(3);
        assert!(
            matches!(readiness("", "Deployment", &d), Readiness::Pending(_)),
            "old pods still terminating"
        );
    }

    #[test]
    fn knative_services_follow_their_ready_condition_for_the_current_generation() {
        let service = |generation: i64, status: &str| {
            json!({"metadata": {"generation": 2}, "status": {"observedGeneration": generation,
                "conditions": [{"type": "Ready", "status": status, "reason": "RevisionFailed", "message": "it crashed"}]}})
        };
        let knative = |o: &Value| readiness(KNATIVE_SERVING, "Service", o);
        assert!(
            matches!(knative(&service(1, "True")), Readiness::Pending(w) if w.contains("generation 2"))
        );
        assert_eq!(knative(&service(2, "True")), Readiness::Ready);
        assert_eq!(
            knative(&service(2, "Unknown")),
            Readiness::Pending("RevisionFailed: it crashed".into())
        );
        assert_eq!(
            knative(&service(2, "False")),
            Readiness::Failed("Knative reports it not ready: RevisionFailed: it crashed".into())
        );
        // A core Service of the same kind name is not waited for.
        let id = |group: &str| ObjectId {
            group: group.into(),
            kind: "Service".into(),
            namespace: None,
            name: "x".into(),
        };
        assert!(waits_for(&id(KNATIVE_SERVING)));
        assert!(!waits_for(&id("")));
    }

    #[test]
    fn jobs_claims_and_other_kinds() {
        let failed = json!({"status": {"conditions": [{"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}]}});
        assert_eq!(
            readiness("", "Job", &failed),
            Readiness::Failed("job failed: BackoffLimitExceeded".into())
        );
        let complete = json!({"status": {"conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(readiness("", "Job", &complete), Readiness::Ready);
        assert_eq!(
            readiness("", "PersistentVolumeClaim", &json!({"status": {"phase": "Bound"}})),
            Readiness::Ready
        );
        assert!(matches!(
            readiness("", "PersistentVolumeClaim", &json!({})),
            Readiness::Pending(_)
        ));
        assert_eq!(readiness("", "ConfigMap", &json!({})), Readiness::Ready);
    }
}
