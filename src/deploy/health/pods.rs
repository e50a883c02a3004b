//! What is wrong with a pod, in one diagnosis `deploy`'s wait, `status` and `restart` share:
//! each problem names the pod, the container, the reason and Kubernetes' message, and says
//! how a wait treats it ([`Severity`]): states the kubelet retries, states no retry fixes,
//! pods the scheduler cannot place, and other waiting states that are only reported.

use serde::Serialize;
use serde_json::Value;

/// Waiting reasons the kubelet retries on its own (with a back-off): the image may be pushed,
/// the Secret fixed, the crash be caused by a dependency not up yet.
const RETRIED: &[&str] = &[
    "ImagePullBackOff",
    "ErrImagePull",
    "ErrImageNeverPull",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// Waiting reasons no retry fixes: the pod spec itself must change.
const FATAL: &[&str] = &["InvalidImageName"];

/// Waiting reasons of a container that is on its way up.
const STARTING: &[&str] = &["ContainerCreating", "PodInitializing"];

/// How a wait treats a [`PodProblem`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// The kubelet retries it (image pulls, configuration errors, crash loops): a wait fails
    /// on it at once when it arose during the operation, after one retry window otherwise.
    Retried,
    /// No retry fixes it (an invalid image name): a wait fails on it at once.
    Fatal,
    /// The scheduler finds no node for the pod: a wait fails after its unschedulable grace.
    Unschedulable,
    /// Another state worth saying; a wait does not fail on it.
    Waiting,
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

/// Why a pod does not run: one of its containers waits (`pod web-1 container web:
/// ImagePullBackOff (image REG/web:1), 4 restarts: message`), or the pod cannot be scheduled
/// (`pod web-1: Pending, Unschedulable: message`; no container).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodProblem {
    /// The pod.
    pub pod: String,
    /// The container; none when the pod is not scheduled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The container's waiting reason (`CrashLoopBackOff`), or the pod's scheduling
    /// condition's (`Unschedulable`).
    pub reason: String,
    /// The image, when pulling it is the problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// How often the container restarted, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restarts: Option<i64>,
    /// Kubernetes' message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How a wait treats it.
    pub severity: Severity,
}

impl std::fmt::Display for PodProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(container) = &self.container else {
            let message = self.message.as_deref().unwrap_or("no reason given");
            return write!(f, "pod {}: Pending, {}: {message}", self.pod, self.reason);
        };
        write!(f, "pod {} container {container}: {}", self.pod, self.reason)?;
        if let Some(image) = &self.image {
            write!(f, " (image {image})")?;
        }
        if let Some(restarts) = self.restarts {
            write!(f, ", {restarts} restarts")?;
        }
        match &self.message {
            Some(message) => write!(f, ": {message}"),
            None => Ok(()),
        }
    }
}

/// Everything wrong with a pod: each container waiting in a state other than starting up,
/// and the pod itself when it cannot be scheduled.
pub(crate) fn pod_problems(pod: &Value) -> Vec<PodProblem> {
    let name = pod["metadata"]["name"].as_str().unwrap_or("?");
    let status = &pod["status"];
    let text = |v: &Value| v.as_str().filter(|m| !m.is_empty()).map(str::to_string);
    let mut problems = Vec::new();
    for c in ["initContainerStatuses", "containerStatuses"]
        .iter()
        .flat_map(|k| status[*k].as_array().into_iter().flatten())
    {
        let waiting = &c["state"]["waiting"];
        let Some(reason) = waiting["reason"].as_str() else { continue };
        if STARTING.contains(&reason) {
            continue;
        }
        let severity = if RETRIED.contains(&reason) {
            Severity::Retried
        } else if FATAL.contains(&reason) {
            Severity::Fatal
        } else {
            Severity::Waiting
        };
        problems.push(PodProblem {
            pod: name.to_string(),
            container: Some(c["name"].as_str().unwrap_or("?").to_string()),
            reason: reason.to_string(),
            image: text(&c["image"]).filter(|_| reason.contains("Image")),
            restarts: c["restartCount"].as_i64().filter(|n| *n > 0),
            message: text(&waiting["message"]),
            severity,
        });
    }
    if status["phase"] == "Pending" {
        let unscheduled = status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "PodScheduled" && c["status"] == "False");
        if let Some(c) = unscheduled {
            problems.push(PodProblem {
                pod: name.to_string(),
                container: None,
                reason: c["reason"].as_str().unwrap_or("not scheduled").to_string(),
                image: None,
                restarts: None,
                message: text(&c["message"]),
                severity: Severity::Unschedulable,
            });
        }
    }
    problems
}

/// How often the containers of a pod restarted in all: a crash loop that keeps failing
/// after a kubelet retry restarts again.
pub(crate) fn restarts(pod: &Value) -> i64 {
    ["initContainerStatuses", "containerStatuses"]
        .iter()
        .flat_map(|k| pod["status"][*k].as_array().into_iter().flatten())
        .filter_map(|c| c["restartCount"].as_i64())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn texts<T: ToString>(items: Vec<T>) -> Vec<String> {
        items.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn pod_problems_name_the_reason_the_image_and_unschedulable_pods() {
        let pulling = json!({"metadata": {"name": "web-1"}, "status": {"phase": "Pending",
            "containerStatuses": [{"name": "web", "image": "reg:5000/web:1", "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]}});
        assert_eq!(
            texts(pod_problems(&pulling)),
            ["pod web-1 container web: ImagePullBackOff (image reg:5000/web:1): Back-off pulling image"]
        );
        let crashing = json!({"metadata": {"name": "db-0"}, "status": {"phase": "Running",
            "containerStatuses": [{"name": "db", "image": "db:1", "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        assert_eq!(
            texts(pod_problems(&crashing)),
            ["pod db-0 container db: CrashLoopBackOff, 4 restarts"]
        );
        let unscheduled = json!({"metadata": {"name": "big-0"}, "status": {"phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/1 nodes are available: 1 Insufficient memory."}]}});
        assert_eq!(
            texts(pod_problems(&unscheduled)),
            ["pod big-0: Pending, Unschedulable: 0/1 nodes are available: 1 Insufficient memory."]
        );
        let creating = json!({"metadata": {"name": "x"}, "status": {"phase": "Pending",
            "containerStatuses": [{"name": "x", "state": {"waiting": {"reason": "ContainerCreating"}}}]}});
        assert!(pod_problems(&creating).is_empty());
    }

    #[test]
    fn selectors_and_severities() {
        let d = json!({"spec": {"selector": {"matchLabels": {"app.kubernetes.io/instance": "web", "app.kubernetes.io/name": "nginx"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}}});
        assert_eq!(
            pod_selector(&d).unwrap(),
            "app.kubernetes.io/instance=web,app.kubernetes.io/name=nginx,tier in (a,b)"
        );
        let pod = |reason: &str| {
            json!({"status": {"containerStatuses": [
                {"name": "ok", "state": {"running": {}}, "restartCount": 2},
                {"name": "app", "state": {"waiting": {"reason": reason}}, "restartCount": 1}]}})
        };
        let severity = |reason: &str| pod_problems(&pod(reason)).first().map(|p| p.severity);
        assert_eq!(severity("CreateContainerConfigError"), Some(Severity::Retried));
        assert_eq!(severity("InvalidImageName"), Some(Severity::Fatal));
        assert_eq!(severity("SomethingNew"), Some(Severity::Waiting));
        assert_eq!(severity("ContainerCreating"), None);
        assert_eq!(restarts(&pod("CrashLoopBackOff")), 3);
    }
}
