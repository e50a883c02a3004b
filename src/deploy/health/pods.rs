//! What is wrong with a workload's pods: containers waiting (and whether waiting will fix
//! it), pods that cannot be scheduled. `deploy`'s wait fails on the first fatal problem;
//! `status` lists them all.

use serde::Serialize;
use serde_json::Value;

/// Waiting reasons of a container that waiting will not fix.
const FATAL_REASONS: &[&str] = &[
    "ImagePullBackOff",
    "ErrImagePull",
    "CrashLoopBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
];

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

/// Why a pod's containers do not run, and whether it cannot be scheduled.
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
        if matches!(reason, "ContainerCreating" | "PodInitializing") {
            continue;
        }
        problems.push(PodProblem {
            pod: name.to_string(),
            container: Some(c["name"].as_str().unwrap_or("?").to_string()),
            reason: reason.to_string(),
            image: text(&c["image"]).filter(|_| reason.contains("Image")),
            restarts: c["restartCount"].as_i64().filter(|n| *n > 0),
            message: text(&waiting["message"]),
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
            });
        }
    }
    problems
}

/// The first container of a pod stuck in a state waiting will not fix.
pub(crate) fn pod_failure(pod: &Value) -> Option<PodProblem> {
    pod_problems(pod)
        .into_iter()
        .find(|p| p.container.is_some() && FATAL_REASONS.contains(&p.reason.as_str()))
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
        let failure = pod_failure(&pod).map(|p| (p.container, p.reason, p.message));
        assert_eq!(
            failure,
            Some((
                Some("app".into()),
                "ImagePullBackOff".into(),
                Some("Back-off pulling image".into())
            ))
        );
        let starting = json!({"status": {"containerStatuses": [{"name": "app", "state": {"waiting": {"reason": "ContainerCreating"}}}]}});
        assert_eq!(pod_failure(&starting), None);
    }
}
