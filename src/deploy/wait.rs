//! Waiting until applied objects are really ready: generation-aware for workloads (the
//! controller has seen the new spec and every replica runs it), Bound for claims, Complete
//! for Jobs, Established for CRDs, the `Ready` condition for Knative Services; and failing
//! fast when a pod cannot start.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use super::cluster::{Cluster, Kinds, Lookup};
use super::targets::Target;
use super::{DeployError, Event, Progress};
use crate::contract::ObjectId;

/// How long and how often to poll.
#[derive(Debug, Clone, Copy)]
pub struct WaitOptions {
    /// Give up after this long, naming what never became ready.
    pub timeout: Duration,
    /// Time between polls.
    pub poll: Duration,
}

impl Default for WaitOptions {
    fn default() -> Self {
        WaitOptions { timeout: Duration::from_secs(600), poll: Duration::from_secs(2) }
    }
}

/// Where an object stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Readiness {
    Ready,
    /// Not yet, and why.
    Pending(String),
    /// Will not become ready.
    Failed(String),
}

/// Waiting reasons of a container that waiting will not fix.
const FATAL_REASONS: &[&str] = &[
    "ImagePullBackOff",
    "ErrImagePull",
    "CrashLoopBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
];

/// The API group of Knative Serving, whose `Service` deploy waits for.
const KNATIVE_SERVING: &str = "serving.knative.dev";

/// Polls in a row on which a Knative Service must report `Ready=False` before deploy fails
/// (10 s at the default 2 s interval). Knative may report `False` on the way to `True` (its
/// own client, `kn`, waits a `--wait-window` after a `False` for the same reason).
const KNATIVE_FALSE_POLLS: u32 = 5;

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

/// A label selector string for the pods of a workload (`k=v,k2 in (a,b)`), or `None`.
pub(crate) fn pod_selector(object: &Value) -> Option<String> {
    let selector = &object["spec"]["selector"];
    let mut terms: Vec<String> = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some(format!("{k}={}", v.as_str()?)))
        .collect();
    for e in selector["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str()?;
        let values: Vec<&str> =
            e["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        terms.push(match e["operator"].as_str()? {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return None,
        });
    }
    (!terms.is_empty()).then(|| terms.join(","))
}

/// The first container of a pod stuck in a state waiting will not fix:
/// (container, reason, message).
pub(crate) fn pod_failure(pod: &Value) -> Option<(String, String, String)> {
    let status = &pod["status"];
    ["initContainerStatuses", "containerStatuses"]
        .iter()
        .flat_map(|k| status[*k].as_array().into_iter().flatten())
        .find_map(|c| {
            let waiting = &c["state"]["waiting"];
            let reason = waiting["reason"].as_str()?;
            FATAL_REASONS.contains(&reason).then(|| {
                (
                    c["name"].as_str().unwrap_or("?").to_string(),
                    reason.to_string(),
                    waiting["message"].as_str().unwrap_or_default().to_string(),
                )
            })
        })
}

/// Polls `targets` until all are ready, one fails, or the timeout passes.
pub(crate) async fn wait(
    cluster: &Cluster,
    kinds: &Kinds,
    targets: &[&Target],
    options: &WaitOptions,
    progress: &dyn Progress,
) -> Result<(), DeployError> {
    let deadline = tokio::time::Instant::now() + options.timeout;
    let pods = match kinds.find("v1", "Pod") {
        Lookup::Served(kind) => Some(kind),
        _ => None,
    };
    let mut totals: BTreeMap<&str, usize> = BTreeMap::new();
    for t in targets {
        *totals.entry(t.app.as_str()).or_default() += 1;
    }
    let mut ready: BTreeSet<usize> = BTreeSet::new();
    let mut reported: BTreeMap<&str, usize> = BTreeMap::new();
    // Knative Services reporting `Ready=False`: on how many polls in a row.
    let mut false_polls: BTreeMap<usize, u32> = BTreeMap::new();
    loop {
        let mut pending: Vec<(usize, String)> = Vec::new();
        for (i, t) in targets.iter().enumerate() {
            if ready.contains(&i) {
                continue;
            }
            match cluster.get(&t.kind, &t.id).await? {
                None => pending.push((i, "not found".into())),
                Some(live) => match readiness(&t.id.group, &t.id.kind, &live) {
                    Readiness::Ready => {
                        ready.insert(i);
                    }
                    Readiness::Pending(why) => {
                        false_polls.remove(&i);
                        pending.push((i, why));
                        if let (Some(pods), Some(selector)) = (&pods, pod_selector(&live)) {
                            for pod in
                                cluster.list(pods, t.id.namespace.as_deref(), &selector).await?
                            {
                                if let Some((container, reason, message)) = pod_failure(&pod) {
                                    let pod =
                                        pod["metadata"]["name"].as_str().unwrap_or("?").to_string();
                                    return Err(DeployError::PodFailing {
                                        object: t.id.to_string(),
                                        pod,
                                        container,
                                        reason,
                                        message,
                                    });
                                }
                            }
                        }
                    }
                    Readiness::Failed(message) if t.id.group == KNATIVE_SERVING => {
                        let seen = false_polls.entry(i).or_default();
                        *seen += 1;
                        if *seen >= KNATIVE_FALSE_POLLS {
                            return Err(DeployError::Failed { object: t.id.to_string(), message });
                        }
                        pending.push((i, message));
                    }
                    Readiness::Failed(message) => {
                        return Err(DeployError::Failed { object: t.id.to_string(), message })
                    }
                },
            }
        }
        for (app, total) in &totals {
            let done = ready.iter().filter(|i| targets[**i].app == *app).count();
            if reported.insert(app, done) != Some(done) {
                progress.event(Event::Waiting { app: app.to_string(), ready: done, total: *total });
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            let pending =
                pending.into_iter().map(|(i, why)| format!("{} ({why})", targets[i].id)).collect();
            return Err(DeployError::Timeout { timeout: options.timeout, pending });
        }
        tokio::time::sleep(options.poll).await;
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

    #[test]
    fn selectors_and_pod_failures() {
        let d = json!({"spec": {"selector": {"matchLabels": {"app.kubernetes.io/instance": "web", "app.kubernetes.io/name": "nginx"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}}});
        assert_eq!(
            pod_selector(&d).unwrap(),
            "app.kubernetes.io/instance=web,app.kubernetes.io/name=nginx,tier in (a,b)"
        );
        let pod = json!({"status": {"containerStatuses": [
            {"name": "ok", "state": {"running": {}}},
            {"name": "app", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]}});
        assert_eq!(
            pod_failure(&pod),
            Some(("app".into(), "ImagePullBackOff".into(), "Back-off pulling image".into()))
        );
        let starting = json!({"status": {"containerStatuses": [{"name": "app", "state": {"waiting": {"reason": "ContainerCreating"}}}]}});
        assert_eq!(pod_failure(&starting), None);
    }
}
