//! The air-gap lint: every container image in every rendered object must be one of the
//! images the resolver resolved for that application and, with `--registry`, must be in
//! that registry. Pod specs are found anywhere in an object (`containers`,
//! `initContainers`, `ephemeralContainers` lists), so custom resources that embed pod
//! templates (knative Services, ...) are checked too.

use std::collections::BTreeSet;

use serde_json::Value;

use super::RenderedObject;
use crate::diag::{Problem, Problems};
use crate::images::Reference;
use crate::resolve::Model;

pub(super) fn check(model: &Model, objects: &[RenderedObject], problems: &mut Problems) {
    for o in objects {
        let Some(app) = model.applications.get(&o.app) else { continue };
        let allowed: BTreeSet<&Reference> = app.images.values().map(|i| &i.target).collect();
        let mut found = Vec::new();
        collect_images(&o.object, &mut found);
        for (container, image) in found {
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

fn collect_images<'a>(value: &'a Value, found: &mut Vec<(&'a str, &'a str)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if matches!(key.as_str(), "containers" | "initContainers" | "ephemeralContainers") {
                    for container in child.as_array().into_iter().flatten() {
                        let name = container["name"].as_str().unwrap_or("?");
                        match container.get("image") {
                            Some(Value::String(image)) => found.push((name, image)),
                            _ => found.push((name, "")),
                        }
                    }
                }
                collect_images(child, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_images(i, found)),
        _ => {}
    }
}
