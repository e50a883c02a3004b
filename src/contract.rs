//! The contracts shared by stages: the names of the labels and annotations charmer puts on
//! objects and acts on, and their parsers; object identity and the apiVersion split; the name
//! rule; reading YAML with duplicate keys refused. Every stage may use this module; it uses
//! nothing but [`crate::diag`], so it can never close a circle between stages.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::diag::Problem;

/// The value of `app.kubernetes.io/managed-by` on every rendered object.
pub const MANAGER: &str = "charmer";
/// Selector label: the charm's name.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// Selector label: the application's name.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// The bundle an object is part of.
pub const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";
/// Who manages an object ([`MANAGER`]).
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The charm version that rendered an object.
pub const VERSION_LABEL: &str = "app.kubernetes.io/version";
/// The label every object of a bundle carries; deploy's inventory selects on it.
pub const BUNDLE_LABEL: &str = "charmer.io/bundle";
/// The annotation naming Secret keys that deploy generates once (see docs/architecture.md).
pub const GENERATE_ANNOTATION: &str = "charmer.io/generate";
/// Annotation on a rendered object: the cluster must run at least this Kubernetes version.
pub const MIN_KUBERNETES_ANNOTATION: &str = "charmer.io/min-kubernetes";

/// The labels selectors use: charm and application name. They never include the version,
/// because selectors are immutable once a workload exists.
pub fn selector_labels(charm: &str, app: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME_LABEL.to_string(), charm.to_string()),
        (INSTANCE_LABEL.to_string(), app.to_string()),
    ])
}

/// Every label charmer puts on an application's objects (see docs/architecture.md).
pub fn standard_labels(
    bundle: &str,
    charm: &str,
    version: &str,
    app: &str,
) -> BTreeMap<String, String> {
    let mut labels = selector_labels(charm, app);
    labels.insert(PART_OF_LABEL.into(), bundle.to_string());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGER.into());
    labels.insert(VERSION_LABEL.into(), version.to_string());
    labels.insert(BUNDLE_LABEL.into(), bundle.to_string());
    labels
}

/// The keys a rendered Secret asks deploy to generate (its [`GENERATE_ANNOTATION`]: a comma
/// separated list; blanks are skipped).
pub fn generated_keys(object: &Value) -> Vec<String> {
    object["metadata"]["annotations"][GENERATE_ANNOTATION]
        .as_str()
        .map(|list| {
            list.split(',').map(str::trim).filter(|k| !k.is_empty()).map(str::to_string).collect()
        })
        .unwrap_or_default()
}

/// Identity of a Kubernetes object, independent of the API version it is served at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectId {
    /// API group (`""` for core).
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{ns}/{}", self.kind, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

/// The identity of a rendered object; namespaced objects lacking a namespace get `default_ns`
/// (pass `None` when the object is cluster-scoped).
pub fn object_id(object: &Value, default_ns: Option<&str>) -> Result<ObjectId, String> {
    let text =
        |v: Option<&Value>| v.and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    let api_version = text(object.get("apiVersion")).ok_or("object has no apiVersion")?;
    let kind = text(object.get("kind")).ok_or("object has no kind")?;
    let meta = object.get("metadata");
    let name = text(meta.and_then(|m| m.get("name")))
        .ok_or_else(|| format!("{kind} has no metadata.name"))?;
    let namespace =
        text(meta.and_then(|m| m.get("namespace"))).or_else(|| default_ns.map(str::to_string));
    Ok(ObjectId { group: group_of(&api_version).to_string(), kind, namespace, name })
}

/// The group part of an apiVersion (`apps/v1` → `apps`, `v1` → ``).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

/// The version part of an apiVersion (`apps/v1` → `v1`).
pub fn version_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or(api_version, |(_, version)| version)
}

/// Kinds that live outside any namespace.
pub fn is_cluster_scoped(kind: &str) -> bool {
    const CLUSTER: &[&str] = &[
        "Namespace",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "PersistentVolume",
        "StorageClass",
        "PriorityClass",
        "IngressClass",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "APIService",
        "RuntimeClass",
        "CSIDriver",
        "VolumeAttachment",
    ];
    CLUSTER.contains(&kind)
}

/// Juju's name rule for charms, applications and bundles:
/// `[a-z][a-z0-9]*(-[a-z0-9]*[a-z][a-z0-9]*)*`, simplified to lowercase letters, digits and
/// single dashes, starting with a letter.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--")
}

/// Parses YAML text into `T`, naming `file` (and the line) in the problem. A key given twice
/// in one mapping is refused, as Juju's YAML reader does: serde's derived structs and maps
/// would silently keep the last one (two `db` endpoints, two `replicas` options), so the text
/// is first read as a plain `serde_yaml::Value`, whose mappings reject duplicates.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> Result<T, Problem> {
    serde_yaml::from_str::<serde_yaml::Value>(text).map_err(|e| yaml_problem(file, &e))?;
    serde_yaml::from_str(text).map_err(|e| yaml_problem(file, &e))
}

/// Turns a YAML syntax or shape error into a problem naming the file and, where serde_yaml
/// knows it, the line.
pub fn yaml_problem(file: &str, error: &serde_yaml::Error) -> Problem {
    let message = error.to_string();
    let key = match error.location() {
        Some(loc) => format!("line {}", loc.line()),
        None => String::new(),
    };
    Problem::new(file, key, format!("invalid YAML: {message}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_follow_jujus_rule() {
        for ok in ["a", "mongodb", "istio-gateway", "k8s", "a1-b2"] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in ["", "1a", "A", "a-", "a--b", "-a", "a_b", "a.b"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn generated_keys_skip_blanks() {
        let secret = json!({"metadata": {"annotations": {GENERATE_ANNOTATION: "root, , key "}}});
        assert_eq!(generated_keys(&secret), ["root", "key"]);
        assert!(generated_keys(&json!({"metadata": {}})).is_empty());
    }

    #[test]
    fn object_ids_default_the_namespace_and_split_the_group() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
        let id = object_id(&d, Some("shop")).unwrap();
        assert_eq!((id.group.as_str(), id.namespace.as_deref()), ("apps", Some("shop")));
        assert_eq!(id.to_string(), "Deployment/shop/web");
        assert_eq!(group_of("v1"), "");
        assert_eq!(version_of("networking.istio.io/v1beta1"), "v1beta1");
        assert!(object_id(&json!({"kind": "X"}), None).is_err());
    }

    #[test]
    fn duplicate_keys_are_refused_with_the_file() {
        let err = parse_yaml::<serde_yaml::Value>("f.yaml", "a: 1\na: 2\n").unwrap_err();
        assert!(err.to_string().contains("f.yaml"), "{err}");
    }
}
