//! Which pods run a workload's current revision, the only pods whose problems say anything
//! about the revision just applied: pods of earlier revisions are on their way out (or, for
//! a StatefulSet's forced rollback, must be deleted).
//! - Deployment: its current ReplicaSet is the one (owned by it) whose
//!   `deployment.kubernetes.io/revision` annotation equals the Deployment's; its pods carry
//!   that ReplicaSet's `pod-template-hash` label;
//! - StatefulSet: pods labelled `controller-revision-hash` = `status.updateRevision`;
//! - DaemonSet: pods labelled `pod-template-generation` = its generation (the DaemonSet
//!   status has no `updateRevision`; the controller labels every pod with the generation of
//!   the template it was made from);
//! - Job: all its pods.
//!
//! Until the controller has observed the workload's generation its revision fields are
//! stale, so no pod is judged yet (`None`).

use serde_json::Value;

/// Label of a ReplicaSet and its pods: the hash of the pod template.
pub(crate) const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// Label of StatefulSet and DaemonSet pods: their ControllerRevision.
pub(crate) const REVISION_HASH: &str = "controller-revision-hash";
/// Annotation of a Deployment and its ReplicaSets: the rollout revision.
const DEPLOYMENT_REVISION: &str = "deployment.kubernetes.io/revision";

fn uid(object: &Value) -> &Value {
    &object["metadata"]["uid"]
}

/// Whether `object` is controlled by `owner`.
pub(crate) fn owned_by(object: &Value, owner: &Value) -> bool {
    object["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| r["uid"] == *uid(owner) && !uid(owner).is_null())
}

fn label<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object["metadata"]["labels"][key].as_str()
}

/// What a pod must carry to be of the workload's current revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Revision {
    /// Pods of this ReplicaSet (its uid), with its pod-template-hash.
    ReplicaSet { uid: Value, hash: Option<String> },
    /// Pods of the workload with this label value.
    Label { owner: Value, key: &'static str, value: String },
    /// Every pod of the workload.
    Any { owner: Value },
}

impl Revision {
    /// The uid of the object that owns this revision's pods.
    pub(crate) fn owner(&self) -> &Value {
        match self {
            Revision::ReplicaSet { uid, .. } => uid,
            Revision::Label { owner, .. } | Revision::Any { owner } => owner,
        }
    }

    /// Whether `pod` runs this revision.
    pub(crate) fn has(&self, pod: &Value) -> bool {
        let owners = &pod["metadata"]["ownerReferences"];
        let owned = |owner: &Value| {
            owners.as_array().into_iter().flatten().any(|r| r["uid"] == *owner && !owner.is_null())
        };
        match self {
            Revision::ReplicaSet { uid, hash } => {
                owned(uid)
                    && hash.as_deref().is_none_or(|h| label(pod, POD_TEMPLATE_HASH) == Some(h))
            }
            Revision::Label { owner, key, value } => {
                owned(owner) && label(pod, key) == Some(value.as_str())
            }
            Revision::Any { owner } => owned(owner),
        }
    }
}

/// The current revision of workload `object` (`replica_sets`: ReplicaSets of its
/// namespace, needed for Deployments), or `None` when it is not yet known or the kind has no
/// pods.
pub(crate) fn current<'a>(
    object: &Value,
    replica_sets: impl IntoIterator<Item = &'a Value>,
) -> Option<Revision> {
    let generation = object["metadata"]["generation"].as_i64().unwrap_or(0);
    let observed = object["status"]["observedGeneration"].as_i64().unwrap_or(0);
    let kind = object["kind"].as_str().unwrap_or_default();
    if matches!(kind, "Deployment" | "StatefulSet" | "DaemonSet") && observed < generation {
        return None;
    }
    match kind {
        "Deployment" => {
            let revision = object["metadata"]["annotations"][DEPLOYMENT_REVISION].as_str()?;
            let rs = replica_sets.into_iter().find(|rs| {
                owned_by(rs, object)
                    && rs["metadata"]["annotations"][DEPLOYMENT_REVISION].as_str() == Some(revision)
            })?;
            Some(Revision::ReplicaSet {
                uid: uid(rs).clone(),
                hash: label(rs, POD_TEMPLATE_HASH).map(str::to_string),
            })
        }
        "StatefulSet" => Some(Revision::Label {
            owner: uid(object).clone(),
            key: REVISION_HASH,
            value: object["status"]["updateRevision"].as_str()?.to_string(),
        }),
        "DaemonSet" => Some(Revision::Label {
            owner: uid(object).clone(),
            key: "pod-template-generation",
            value: generation.to_string(),
        }),
        "Job" => Some(Revision::Any { owner: uid(object).clone() }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(owner: &str, labels: Value) -> Value {
        json!({"metadata": {"labels": labels, "ownerReferences": [{"uid": owner}]}})
    }

    #[test]
    fn a_deployments_current_pods_are_those_of_its_current_replica_set() {
        let d = json!({"kind": "Deployment", "metadata": {"uid": "d", "generation": 2,
            "annotations": {DEPLOYMENT_REVISION: "2"}}, "status": {"observedGeneration": 2}});
        let rs = |uid: &str, revision: &str, hash: &str| {
            json!({"metadata": {"uid": uid, "ownerReferences": [{"uid": "d"}],
                "annotations": {DEPLOYMENT_REVISION: revision}, "labels": {POD_TEMPLATE_HASH: hash}}})
        };
        let sets = [rs("old", "1", "aaa"), rs("new", "2", "bbb")];
        let current = current(&d, &sets).unwrap();
        assert!(current.has(&pod("new", json!({POD_TEMPLATE_HASH: "bbb"}))));
        assert!(!current.has(&pod("old", json!({POD_TEMPLATE_HASH: "aaa"}))));
        let mut stale = d.clone();
        stale["metadata"]["generation"] = json!(3);
        assert_eq!(super::current(&stale, &sets), None, "not observed yet");
    }

    #[test]
    fn stateful_set_pods_are_judged_by_the_update_revision() {
        let s = json!({"kind": "StatefulSet", "metadata": {"uid": "s", "generation": 1},
            "status": {"observedGeneration": 1, "updateRevision": "db-b", "currentRevision": "db-a"}});
        let current = current(&s, &[]).unwrap();
        assert!(current.has(&pod("s", json!({REVISION_HASH: "db-b"}))));
        assert!(!current.has(&pod("s", json!({REVISION_HASH: "db-a"}))));
        assert!(!current.has(&pod("other", json!({REVISION_HASH: "db-b"}))));
    }
}
