//! The kubelet's side of a simulated pod's containers (a child module of the emulator, so
//! it sees its stored objects): a container whose environment reads a Secret or ConfigMap
//! (or a key of one) that does not exist, without `optional: true`, is not started; it
//! waits with reason `CreateContainerConfigError` and the message the kubelet writes
//! (`couldn't find key AWS_ACCESS_KEY_ID in Secret mlops/mlflow-s3`, `secret "x" not
//! found`). Volumes are not judged here: a missing volume source keeps a real pod in
//! ContainerCreating (FailedMount events), which the emulator does not simulate.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Key, Stored};

/// Why the kubelet cannot make `container`'s configuration in namespace `ns`, if it cannot.
pub(super) fn config_error(
    objects: &BTreeMap<Key, Stored>,
    ns: &str,
    container: &Value,
) -> Option<String> {
    let find = |plural: &str, name: &str| {
        let key = (String::new(), plural.to_string(), ns.to_string(), name.to_string());
        objects.get(&key).map(|s| &s.object)
    };
    // (field, plural, what the kubelet calls it in "couldn't find key", in "not found")
    const SOURCES: [(&str, &str, &str, &str); 2] = [
        ("secret", "secrets", "Secret", "secret"),
        ("configMap", "configmaps", "ConfigMap", "configmap"),
    ];
    for env in container["env"].as_array().into_iter().flatten() {
        for (field, plural, kind, lower) in SOURCES {
            let reference = &env["valueFrom"][format!("{field}KeyRef")];
            let (Some(name), Some(key)) = (reference["name"].as_str(), reference["key"].as_str())
            else {
                continue;
            };
            if reference["optional"] == true {
                continue;
            }
            match find(plural, name) {
                None => return Some(format!("{lower} \"{name}\" not found")),
                Some(object) if !has_key(object, key) => {
                    return Some(format!("couldn't find key {key} in {kind} {ns}/{name}"))
                }
                Some(_) => {}
            }
        }
    }
    for from in container["envFrom"].as_array().into_iter().flatten() {
        for (field, plural, _, lower) in SOURCES {
            let reference = &from[format!("{field}Ref")];
            let Some(name) = reference["name"].as_str() else { continue };
            if reference["optional"] != true && find(plural, name).is_none() {
                return Some(format!("{lower} \"{name}\" not found"));
            }
        }
    }
    None
}

/// Whether a Secret or ConfigMap holds `key` (`data` or `binaryData`).
fn has_key(object: &Value, key: &str) -> bool {
    ["data", "binaryData"].iter().any(|field| object[*field].get(key).is_some())
}

/// The first configuration error of the containers of a pod template.
pub(super) fn template_error(
    objects: &BTreeMap<Key, Stored>,
    ns: &str,
    template: &Value,
) -> Option<String> {
    let containers = template["spec"]["containers"].as_array().into_iter().flatten();
    containers.filter_map(|c| config_error(objects, ns, c)).next()
}
