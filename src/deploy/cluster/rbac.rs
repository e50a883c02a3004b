//! The permissions deploy, status, rollback and remove need for one bundle, as a Role for
//! the namespace and, only when the bundle has cluster-scoped objects, a ClusterRole: what an
//! administrator grants a deploying identity (`charmer rbac`). Worked out offline from the
//! plan, so kinds are mapped to resources by a table of built-in kinds and the bundle's own
//! CustomResourceDefinitions; any other kind is guessed as the API server guesses it and
//! reported.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::access::LOCK_VERBS;
use crate::contract::group_of;
use crate::deploy::model::plan::DeployPlan;

/// Verbs on every object of the bundle: server-side apply creates (`create` and `patch`),
/// preflight reads (`get`), status and prune find objects (`list`), waits list and watch
/// them, prune and remove delete.
const OBJECT_VERBS: &[&str] = &["create", "delete", "get", "list", "patch", "watch"];
/// Verbs on cluster-scoped objects: as above (found by inventory; listed and watched only by
/// waits).
const CLUSTER_OBJECT_VERBS: &[&str] = &["create", "delete", "get", "list", "patch", "watch"];
/// Verbs on kinds kept data may live in (claims, Secrets, ConfigMaps), found by label and
/// marked or deleted by status, prune and remove, even when this revision renders none.
const KEPT_VERBS: &[&str] = &["delete", "get", "list", "patch"];

/// Built-in kinds: (group, kind, resource, namespaced).
const BUILT_IN: &[(&str, &str, &str, bool)] = &[
    ("", "ConfigMap", "configmaps", true),
    ("", "Endpoints", "endpoints", true),
    ("", "LimitRange", "limitranges", true),
    ("", "Namespace", "namespaces", false),
    ("", "PersistentVolume", "persistentvolumes", false),
    ("", "PersistentVolumeClaim", "persistentvolumeclaims", true),
    ("", "Pod", "pods", true),
    ("", "ResourceQuota", "resourcequotas", true),
    ("", "Secret", "secrets", true),
    ("", "Service", "services", true),
    ("", "ServiceAccount", "serviceaccounts", true),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        false,
    ),
    ("apiextensions.k8s.io", "CustomResourceDefinition", "customresourcedefinitions", false),
    ("apiregistration.k8s.io", "APIService", "apiservices", false),
    ("apps", "DaemonSet", "daemonsets", true),
    ("apps", "Deployment", "deployments", true),
    ("apps", "ReplicaSet", "replicasets", true),
    ("apps", "StatefulSet", "statefulsets", true),
    ("autoscaling", "HorizontalPodAutoscaler", "horizontalpodautoscalers", true),
    ("batch", "CronJob", "cronjobs", true),
    ("batch", "Job", "jobs", true),
    ("coordination.k8s.io", "Lease", "leases", true),
    ("networking.k8s.io", "Ingress", "ingresses", true),
    ("networking.k8s.io", "IngressClass", "ingressclasses", false),
    ("networking.k8s.io", "NetworkPolicy", "networkpolicies", true),
    ("policy", "PodDisruptionBudget", "poddisruptionbudgets", true),
    ("rbac.authorization.k8s.io", "ClusterRole", "clusterroles", false),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding", "clusterrolebindings", false),
    ("rbac.authorization.k8s.io", "Role", "roles", true),
    ("rbac.authorization.k8s.io", "RoleBinding", "rolebindings", true),
    ("scheduling.k8s.io", "PriorityClass", "priorityclasses", false),
    ("storage.k8s.io", "StorageClass", "storageclasses", false),
];

/// The roles a deploying identity needs for one bundle.
#[derive(Debug, Clone)]
pub struct Roles {
    /// The Role for the namespace (always needed).
    pub role: Value,
    /// The ClusterRole, when the bundle has cluster-scoped objects.
    pub cluster_role: Option<Value>,
    /// Kinds neither built in nor defined by a CRD of the bundle: their resource name and
    /// scope were guessed, one line each saying how.
    pub guessed: Vec<String>,
}

/// (group, resource) → verbs.
type Rules = BTreeMap<(String, String), BTreeSet<&'static str>>;

fn grant(rules: &mut Rules, group: &str, resource: &str, verbs: &[&'static str]) {
    rules.entry((group.to_string(), resource.to_string())).or_default().extend(verbs);
}

/// What `plan` needs: its objects' kinds, its records and kept data, its lock, the pods waits
/// watch, and reading its namespace.
pub fn roles(plan: &DeployPlan) -> Roles {
    let mut namespaced = Rules::new();
    let mut cluster = Rules::new();
    for resource in ["secrets", "configmaps", "persistentvolumeclaims"] {
        grant(&mut namespaced, "", resource, KEPT_VERBS);
    }
    // Revision records are Secrets, created once each.
    grant(&mut namespaced, "", "secrets", &["create"]);
    // Waits watch the bundle's pods, and a Deployment's ReplicaSets (its current revision).
    grant(&mut namespaced, "", "pods", &["get", "list", "watch"]);
    if plan.objects.iter().any(|o| o.object["kind"] == "Deployment") {
        grant(&mut namespaced, "apps", "replicasets", &["list", "watch"]);
    }
    // `charmer logs` reads the pods' logs; `restart` patches the workloads, which deploy needs.
    grant(&mut namespaced, "", "pods/log", &["get"]);
    grant(&mut namespaced, "", "namespaces", &["get"]);
    grant(&mut namespaced, "coordination.k8s.io", "leases", LOCK_VERBS);

    let crds: BTreeMap<(String, String), (String, bool)> = plan
        .objects
        .iter()
        .filter(|o| o.object["kind"] == "CustomResourceDefinition")
        .filter_map(|o| {
            let spec = &o.object["spec"];
            Some((
                (spec["group"].as_str()?.to_string(), spec["names"]["kind"].as_str()?.to_string()),
                (spec["names"]["plural"].as_str()?.to_string(), spec["scope"] != "Cluster"),
            ))
        })
        .collect();
    let mut guessed = BTreeSet::new();
    for o in &plan.objects {
        let (Some(api_version), Some(kind)) =
            (o.object["apiVersion"].as_str(), o.object["kind"].as_str())
        else {
            continue;
        };
        let group = group_of(api_version);
        let known = BUILT_IN
            .iter()
            .find(|(g, k, _, _)| *g == group && *k == kind)
            .map(|(_, _, resource, namespaced)| (resource.to_string(), *namespaced))
            .or_else(|| crds.get(&(group.to_string(), kind.to_string())).cloned());
        let (resource, is_namespaced) = known.unwrap_or_else(|| {
            let resource = guess_resource(kind);
            guessed.insert(format!(
                "{kind} ({api_version}) is neither built in nor defined by a CustomResourceDefinition of the bundle: its resource is taken as {resource:?}, namespaced (check with kubectl api-resources --api-group={group})"
            ));
            (resource, true)
        });
        if is_namespaced {
            grant(&mut namespaced, group, &resource, OBJECT_VERBS);
        } else {
            grant(&mut cluster, group, &resource, CLUSTER_OBJECT_VERBS);
        }
    }
    let name = format!("charmer-deploy-{}", plan.bundle);
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": name, "namespace": plan.namespace},
        "rules": policy_rules(&namespaced),
    });
    let cluster_role = (!cluster.is_empty()).then(|| {
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": format!("{name}-{}", plan.namespace)},
            "rules": policy_rules(&cluster),
        })
    });
    Roles { role, cluster_role, guessed: guessed.into_iter().collect() }
}

/// One rule per group and verb set, listing its resources; sorted by group, then verbs, so
/// the output is deterministic.
fn policy_rules(rules: &Rules) -> Vec<Value> {
    let mut merged: BTreeMap<(&str, Vec<&str>), Vec<&str>> = BTreeMap::new();
    for ((group, resource), verbs) in rules {
        merged
            .entry((group.as_str(), verbs.iter().copied().collect()))
            .or_default()
            .push(resource.as_str());
    }
    merged
        .into_iter()
        .map(|((group, verbs), resources)| {
            json!({"apiGroups": [group], "resources": resources, "verbs": verbs})
        })
        .collect()
}

/// The resource name the API server's own fallback guesses for a kind (lower case, plural
/// by English rules), as `kubectl` does for kinds discovery does not know.
fn guess_resource(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if lower.ends_with('s') {
        format!("{lower}es")
    } else if let Some(stem) = lower.strip_suffix('y') {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::model::plan::{PlanApp, PlanObject};

    fn plan(objects: Vec<Value>) -> DeployPlan {
        DeployPlan {
            bundle: "shop".into(),
            namespace: "tenant".into(),
            registry: None,
            apps: vec![PlanApp::new("web", "web", "1.0.0")],
            objects: objects
                .into_iter()
                .map(|object| PlanObject { app: "web".into(), object })
                .collect(),
        }
    }

    #[test]
    fn a_namespaced_bundle_needs_only_a_role() {
        let roles = roles(&plan(vec![
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}}),
        ]));
        assert!(roles.cluster_role.is_none());
        assert!(roles.guessed.is_empty());
        assert_eq!(
            roles.role["metadata"],
            json!({"name": "charmer-deploy-shop", "namespace": "tenant"})
        );
        assert_eq!(
            roles.role["rules"],
            json!([
                {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create", "delete", "get", "list", "patch"]},
                {"apiGroups": [""], "resources": ["services"], "verbs": ["create", "delete", "get", "list", "patch", "watch"]},
                {"apiGroups": [""], "resources": ["configmaps", "persistentvolumeclaims"], "verbs": ["delete", "get", "list", "patch"]},
                {"apiGroups": [""], "resources": ["namespaces", "pods/log"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["create", "delete", "get", "list", "patch", "watch"]},
                {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["list", "watch"]},
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create", "delete", "get", "update"]},
            ])
        );
    }

    #[test]
    fn cluster_scoped_objects_and_crds_need_a_cluster_role_unknown_kinds_are_reported() {
        let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Cluster", "names": {"kind": "Widget", "plural": "widgets"}}});
        let roles = roles(&plan(vec![
            crd,
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}),
            json!({"apiVersion": "other.io/v1", "kind": "Policy", "metadata": {"name": "p"}}),
        ]));
        let cluster_role = roles.cluster_role.expect("a ClusterRole");
        assert_eq!(cluster_role["metadata"]["name"], "charmer-deploy-shop-tenant");
        assert_eq!(
            cluster_role["rules"],
            json!([
                {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["create", "delete", "get", "list", "patch", "watch"]},
                {"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["create", "delete", "get", "list", "patch", "watch"]},
            ])
        );
        assert_eq!(roles.guessed.len(), 1);
        assert!(
            roles.guessed[0].starts_with("Policy (other.io/v1) is neither built in"),
            "{}",
            roles.guessed[0]
        );
        assert!(roles.guessed[0].contains("\"policies\""), "{}", roles.guessed[0]);
    }

    #[test]
    fn guessed_resources_follow_the_api_servers_rule() {
        assert_eq!(guess_resource("Widget"), "widgets");
        assert_eq!(guess_resource("Policy"), "policies");
        assert_eq!(guess_resource("Ingress"), "ingresses");
    }
}
