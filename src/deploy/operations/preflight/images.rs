//! Image preflight: every container image is a valid reference, in the deploy's registry
//! when it has one; and the pull secrets pods name.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::contract::object_id;
use crate::deploy::model::plan::DeployPlan;
use crate::diag::Problem;
use crate::images::Reference;

pub(super) fn check(plan: &DeployPlan) -> Vec<Problem> {
    let mut problems = Vec::new();
    for o in &plan.objects {
        let subject = object_id(&o.object, Some(&plan.namespace))
            .map(|id| id.to_string())
            .unwrap_or_default();
        let mut images = Vec::new();
        container_images(&o.object, &mut images);
        for (container, image) in images {
            match image.parse::<Reference>() {
                Err(e) => problems.push(Problem::new(
                    "preflight",
                    format!("{subject} container {container}"),
                    e.to_string(),
                )),
                Ok(reference) => {
                    if let Some(registry) = plan.registry.as_ref().filter(|r| !reference.is_in(r)) {
                        problems.push(
                            Problem::new("preflight", format!("{subject} container {container}"), format!("image {reference} is not in the registry {registry}"))
                                .hint("render with --registry so images are relocated, and push them with `charmer images push`"),
                        );
                    }
                }
            }
        }
    }
    problems
}

/// Every (container name, image) in an object: any `containers`, `initContainers` or
/// `ephemeralContainers` list at any depth, so pod templates of custom resources count too.
fn container_images<'a>(value: &'a Value, out: &mut Vec<(&'a str, &'a str)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if matches!(key.as_str(), "containers" | "initContainers" | "ephemeralContainers") {
                    for c in child.as_array().into_iter().flatten() {
                        if let Some(image) = c["image"].as_str() {
                            out.push((c["name"].as_str().unwrap_or("?"), image));
                        }
                    }
                } else {
                    container_images(child, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| container_images(i, out)),
        _ => {}
    }
}

/// Adds the names in every `imagePullSecrets` list of `object` (pod specs at any depth).
pub(super) fn pull_secrets<'a>(object: &'a Value, names: &mut BTreeSet<&'a str>) {
    match object {
        Value::Object(map) => {
            for (key, value) in map {
                if key == "imagePullSecrets" {
                    let listed = value.as_array().into_iter().flatten();
                    names.extend(listed.filter_map(|s| s["name"].as_str()));
                } else {
                    pull_secrets(value, names);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| pull_secrets(i, names)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::operations::preflight::testing::plan;
    use serde_json::json;

    #[test]
    fn images_outside_the_registry_are_named_with_their_container() {
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"template": {"spec": {"initContainers": [{"name": "init", "image": "registry.local:5000/busybox:1"}],
                                             "containers": [{"name": "app", "image": "nginx:1.25"}]}}}});
        let problems = check(&plan(vec![deployment]));
        assert_eq!(problems.len(), 1);
        let text = problems[0].to_string();
        assert!(text.contains("Deployment/ns/web container app"), "{text}");
        assert!(
            text.contains(
                "docker.io/library/nginx:1.25 is not in the registry registry.local:5000"
            ),
            "{text}"
        );
    }
}
