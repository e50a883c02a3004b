//! Version preflight: the cluster's Kubernetes version meets every charm's `assumes:` and
//! every `charmer.io/min-kubernetes` annotation.

use crate::contract::{object_id, MIN_KUBERNETES_ANNOTATION};
use crate::deploy::model::plan::DeployPlan;
use crate::deploy::model::versions::{KubeVersion, VersionNeed, VersionOp};
use crate::diag::Problem;

pub(super) fn check(plan: &DeployPlan, version: KubeVersion) -> Vec<Problem> {
    let mut problems = Vec::new();
    let report = |problems: &mut Vec<Problem>, subject: String, need: &VersionNeed| {
        if !need.allows(version) {
            let hint = match need.op {
                VersionOp::AtLeast => "upgrade the cluster, or choose charm options (or a charm version) that do not need it",
                VersionOp::Below => "use a charm version written for this cluster's Kubernetes release",
            };
            problems.push(
                Problem::new(
                    "preflight",
                    subject,
                    format!("{} needs {need}; the cluster runs {version}", need.source),
                )
                .hint(hint),
            );
        }
    };
    for app in &plan.apps {
        for need in &app.kubernetes {
            report(&mut problems, format!("application {}", app.name), need);
        }
    }
    for o in &plan.objects {
        let Some(text) = o.object["metadata"]["annotations"][MIN_KUBERNETES_ANNOTATION].as_str()
        else {
            continue;
        };
        let subject = object_id(&o.object, None).map(|id| id.to_string()).unwrap_or_default();
        match text.parse::<KubeVersion>() {
            Ok(min) => report(
                &mut problems,
                format!("application {} {subject}", o.app),
                &VersionNeed {
                    op: VersionOp::AtLeast,
                    version: min,
                    source: format!("annotation {MIN_KUBERNETES_ANNOTATION}"),
                },
            ),
            Err(e) => problems.push(Problem::new(
                "preflight",
                format!("application {} {subject}", o.app),
                format!("annotation {MIN_KUBERNETES_ANNOTATION}: {e}"),
            )),
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::operations::preflight::testing::plan;
    use serde_json::json;

    #[test]
    fn version_needs_come_from_assumes_and_annotations() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "annotations": {MIN_KUBERNETES_ANNOTATION: "1.22"}}});
        let p = plan(vec![cm]);
        assert!(check(&p, KubeVersion { major: 1, minor: 22 }).is_empty());
        let problems = check(&p, KubeVersion { major: 1, minor: 19 });
        assert_eq!(problems.len(), 2);
        assert!(
            problems[0].to_string().contains(
                "assumes: k8s-api >= 1.20 needs Kubernetes >= 1.20; the cluster runs 1.19"
            ),
            "{}",
            problems[0]
        );
        assert!(problems[1].to_string().contains("ConfigMap/c"), "{}", problems[1]);
    }
}
