//! The air-gap lint: every container image in every rendered object must be one of the
//! images the resolver resolved for that application and, with `--registry`, must be in
//! that registry. Pod specs are found anywhere in an object (`containers`,
//! `initContainers`, `ephemeralContainers` lists), so custom resources that embed pod
//! templates (knative Services, ...) are checked too.

use std::collections::BTreeSet;

use super::RenderedObject;
use crate::contract::container_images;
use crate::diag::{Problem, Problems};
use crate::images::Reference;
use crate::resolve::Model;

pub(super) fn check(model: &Model, objects: &[RenderedObject], problems: &mut Problems) {
    for o in objects {
        let Some(app) = model.applications.get(&o.app) else { continue };
        let allowed: BTreeSet<&Reference> = app.images.values().map(|i| &i.target).collect();
        for (container, image) in container_images(&o.object) {
            let file = format!("{}/{}", app.charm.origin.path().display(), o.template);
            let key =
                format!("application {}: {} {}: container {container}", o.app, o.kind(), o.name());
            let parsed: Result<Reference, _> = image.parse();
            let problem = match &parsed {
                Err(e) => Some((e.to_string(), "use {{ images.<resource> }} for the image".to_string())),
                Ok(r) if !allowed.contains(r) => Some((
                    format!("image {image} is not one of the charm's resolved images"),
                    "declare it as an oci-image resource in metadata.yaml and use {{ images.<resource> }}".to_string(),
                )),
                Ok(r) => match &model.registry {
                    Some(reg) if !r.is_in(reg) => Some((format!("image {image} is not in the registry {reg}"), "use {{ images.<resource> }} for the image".to_string())),
                    _ => None,
                },
            };
            if let Some((message, hint)) = problem {
                problems.push(Problem::new(file, key, message).hint(hint));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::images::Registry;
    use crate::resolve::testing::{app, charm, lines, model};
    use crate::resolve::Image;

    const UPSTREAM: &str = "upstream.example/shop/backend:1.0";
    const PRIVATE: &str = "registry.example:5000/shop/backend:1.0";

    /// Lints `objects` of application `backend`, whose one image resolved to `target`.
    fn lint(target: &str, registry: Option<&str>, objects: &[Value]) -> Problems {
        let mut backend = app("backend", charm("backend", "", ""));
        let image = Image { source: UPSTREAM.parse().unwrap(), target: target.parse().unwrap() };
        backend.images.insert("image".into(), image);
        let registry: Option<Registry> = registry.map(|r| r.parse().unwrap());
        let model = model(vec![backend], registry);
        let objects: Vec<RenderedObject> = objects
            .iter()
            .map(|o| RenderedObject {
                app: "backend".into(),
                template: "templates/backend.yaml".into(),
                object: o.clone(),
            })
            .collect();
        let mut problems = Problems::default();
        check(&model, &objects, &mut problems);
        problems
    }

    fn deployment(pod: Value) -> Value {
        json!({"kind": "Deployment", "metadata": {"name": "backend"},
               "spec": {"template": {"spec": pod}}})
    }

    #[test]
    fn resolved_images_in_the_registry_pass() {
        let pod = json!({"initContainers": [{"name": "setup", "image": PRIVATE}],
                         "containers": [{"name": "main", "image": PRIVATE}]});
        let problems = lint(PRIVATE, Some("registry.example:5000"), &[deployment(pod)]);
        assert!(problems.is_empty(), "{problems}");
    }

    #[test]
    fn every_container_list_is_checked_and_named_with_file_and_container() {
        let pod = json!({"containers": [{"name": "main", "image": UPSTREAM}],
                         "initContainers": [{"name": "setup", "image": PRIVATE}],
                         "ephemeralContainers": [{"name": "debug", "image": "busybox"}]});
        let problems = lint(PRIVATE, Some("registry.example:5000"), &[deployment(pod)]);
        let hint = "(hint: declare it as an oci-image resource in metadata.yaml and use {{ \
                    images.<resource> }})";
        assert_eq!(
            lines(&problems),
            [
                format!(
                    "charms/backend/templates/backend.yaml: application backend: Deployment \
                     backend: container main: image {UPSTREAM} is not one of the charm's \
                     resolved images {hint}"
                ),
                format!(
                    "charms/backend/templates/backend.yaml: application backend: Deployment \
                     backend: container debug: image busybox is not one of the charm's resolved \
                     images {hint}"
                ),
            ]
        );
    }

    #[test]
    fn pod_templates_inside_custom_resources_are_checked() {
        let service = json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "metadata": {"name": "backend-fn"},
            "spec": {"template": {"spec": {"containers": [{"name": "user", "image": UPSTREAM}]}}}});
        let problems = lint(PRIVATE, Some("registry.example:5000"), &[service]);
        assert_eq!(problems.0.len(), 1, "{problems}");
        assert_eq!(problems.0[0].key, "application backend: Service backend-fn: container user");
    }

    #[test]
    fn a_resolved_image_outside_the_private_registry_is_reported() {
        // An image map may send an image anywhere; the registry still has the last word.
        let mirrored = "mirror.example/shop/backend:1.0";
        let pod = json!({"containers": [{"name": "main", "image": mirrored}]});
        let problems = lint(mirrored, Some("registry.example:5000"), &[deployment(pod)]);
        assert_eq!(problems.0.len(), 1, "{problems}");
        assert_eq!(
            problems.0[0].message,
            format!("image {mirrored} is not in the registry registry.example:5000")
        );
    }

    #[test]
    fn without_a_registry_resolved_upstream_images_pass_but_a_missing_image_does_not() {
        let pod = json!({"containers": [{"name": "main", "image": UPSTREAM}, {"name": "sidecar"}]});
        let problems = lint(UPSTREAM, None, &[deployment(pod)]);
        assert_eq!(problems.0.len(), 1, "{problems}");
        assert_eq!(problems.0[0].key, "application backend: Deployment backend: container sidecar");
        assert_eq!(
            problems.0[0].hint.as_deref(),
            Some("use {{ images.<resource> }} for the image")
        );
    }
}
