//! The permissions deploy, status, rollback and remove need for one bundle, as a Role for
//! the namespace and, only when the bundle has cluster-scoped objects, a ClusterRole: what an
//! administrator grants a deploying identity (`charmer rbac`). A Role names resources, not
//! kinds, and a resource name cannot be worked out from a kind (Istio's `Gateway` is
//! `gateways`, an English plural rule would say `gatewaies`), so each name comes from a
//! source that knows it: the API server's discovery when connected (`--discover`), the
//! bundle's own CustomResourceDefinitions (`spec.names.plural`), the built-in kinds, or a
//! table of well-known add-on kinds copied from their projects' CRDs. A kind none of them
//! knows is an error naming it, never a guess.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::access::LOCK_VERBS;
use super::client::Cluster;
use crate::contract::group_of;
use crate::deploy::error::DeployError;
use crate::deploy::model::kinds::{Kinds, Lookup};
use crate::deploy::model::plan::DeployPlan;
use crate::diag::{Problem, Problems};

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

/// Add-on kinds the charms render, with the resource names their projects' own
/// CustomResourceDefinitions give them (`spec.names.plural`, all namespaced): Istio's
/// `manifests/charts/base/files/crd-all.gen.yaml` (istio/istio) and Knative Serving's
/// `config/core/300-resources/` (knative/serving). Used when the bundle does not carry the
/// CRD and no cluster was asked.
const WELL_KNOWN: &[(&str, &str, &str, bool)] = &[
    ("networking.istio.io", "DestinationRule", "destinationrules", true),
    ("networking.istio.io", "Gateway", "gateways", true),
    ("networking.istio.io", "ServiceEntry", "serviceentries", true),
    ("networking.istio.io", "VirtualService", "virtualservices", true),
    ("security.istio.io", "AuthorizationPolicy", "authorizationpolicies", true),
    ("security.istio.io", "PeerAuthentication", "peerauthentications", true),
    ("serving.knative.dev", "Configuration", "configurations", true),
    ("serving.knative.dev", "Revision", "revisions", true),
    ("serving.knative.dev", "Route", "routes", true),
    ("serving.knative.dev", "Service", "services", true),
];

/// The roles a deploying identity needs for one bundle.
#[derive(Debug, Clone)]
pub struct Roles {
    /// The Role for the namespace (always needed).
    pub role: Value,
    /// The ClusterRole, when the bundle has cluster-scoped objects.
    pub cluster_role: Option<Value>,
}

/// (group, resource) → verbs.
type Rules = BTreeMap<(String, String), BTreeSet<&'static str>>;

fn grant(rules: &mut Rules, group: &str, resource: &str, verbs: &[&'static str]) {
    rules.entry((group.to_string(), resource.to_string())).or_default().extend(verbs);
}

/// What `plan` needs: its objects' kinds, its records and kept data, its lock, the pods waits
/// watch, and reading its namespace; worked out offline. Fails naming each kind whose
/// resource name no table and no CustomResourceDefinition of the bundle gives.
pub fn roles(plan: &DeployPlan) -> Result<Roles, Problems> {
    roles_from(plan, None)
}

impl Cluster {
    /// [`roles`] with the resource names and scopes the API server's discovery reports for
    /// the kinds it serves.
    pub async fn discovered_roles(&self, plan: &DeployPlan) -> Result<Roles, DeployError> {
        let groups = plan
            .objects
            .iter()
            .filter_map(|o| o.object["apiVersion"].as_str().map(|v| group_of(v).to_string()))
            .collect();
        let kinds = self.kinds(&groups).await?;
        Ok(roles_from(plan, Some(&kinds))?)
    }
}

/// The resource name and scope of `kind`: from discovery, the bundle's CRDs, then the tables.
fn resource_of(
    served: Option<&Kinds>,
    crds: &BTreeMap<(String, String), (String, bool)>,
    api_version: &str,
    kind: &str,
) -> Option<(String, bool)> {
    let group = group_of(api_version);
    let discovered = served.and_then(|kinds| match kinds.find(api_version, kind) {
        Lookup::Served(found) => Some(found),
        // The name is the same at every version; the Role has no version.
        Lookup::OtherVersions(_) => kinds.preferred(group, kind),
        Lookup::Missing => None,
    });
    if let Some(found) = discovered {
        return Some((found.resource.plural, found.namespaced));
    }
    crds.get(&(group.to_string(), kind.to_string())).cloned().or_else(|| {
        BUILT_IN
            .iter()
            .chain(WELL_KNOWN)
            .find(|(g, k, _, _)| *g == group && *k == kind)
            .map(|(_, _, resource, namespaced)| (resource.to_string(), *namespaced))
    })
}

fn roles_from(plan: &DeployPlan, served: Option<&Kinds>) -> Result<Roles, Problems> {
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
    let mut problems = Problems::default();
    let mut unknown = BTreeSet::new();
    for o in &plan.objects {
        let (Some(api_version), Some(kind)) =
            (o.object["apiVersion"].as_str(), o.object["kind"].as_str())
        else {
            continue;
        };
        let group = group_of(api_version);
        let Some((resource, is_namespaced)) = resource_of(served, &crds, api_version, kind) else {
            if unknown.insert((api_version, kind)) {
                let asked = if served.is_some() { "not served by the cluster, " } else { "" };
                problems.push(
                    Problem::new("rbac", format!("{kind} ({api_version})"), format!("its resource name is not known: {asked}not built into Kubernetes, not defined by a CustomResourceDefinition of the bundle, and not in charmer's table of well-known kinds"))
                        .hint(format!("run `charmer rbac --discover` against a cluster that serves it, or add its CustomResourceDefinition to the bundle (kubectl api-resources --api-group={group} shows the name)")),
                );
            }
            continue;
        };
        if is_namespaced {
            grant(&mut namespaced, group, &resource, OBJECT_VERBS);
        } else {
            grant(&mut cluster, group, &resource, CLUSTER_OBJECT_VERBS);
        }
    }
    problems.into_result(())?;
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
    Ok(Roles { role, cluster_role })
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
        ]))
        .unwrap();
        assert!(roles.cluster_role.is_none());
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
    fn cluster_scoped_objects_and_crds_need_a_cluster_role() {
        let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Cluster", "names": {"kind": "Widget", "plural": "widgetries"}}});
        let roles = roles(&plan(vec![
            crd,
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}),
        ]))
        .unwrap();
        let cluster_role = roles.cluster_role.expect("a ClusterRole");
        assert_eq!(cluster_role["metadata"]["name"], "charmer-deploy-shop-tenant");
        assert_eq!(
            cluster_role["rules"],
            json!([
                {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["create", "delete", "get", "list", "patch", "watch"]},
                {"apiGroups": ["example.com"], "resources": ["widgetries"], "verbs": ["create", "delete", "get", "list", "patch", "watch"]},
            ])
        );
    }

    #[test]
    fn the_istio_gateway_and_knative_services_get_their_projects_resource_names() {
        let roles = roles(&plan(vec![
            json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "Gateway", "metadata": {"name": "g"}}),
            json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService", "metadata": {"name": "v"}}),
            json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {"name": "s"}}),
        ]))
        .unwrap();
        let rules = roles.role["rules"].as_array().unwrap();
        let resources = |group: &str| -> Vec<&str> {
            rules
                .iter()
                .filter(|r| r["apiGroups"][0] == group)
                .flat_map(|r| r["resources"].as_array().unwrap())
                .filter_map(Value::as_str)
                .collect()
        };
        assert_eq!(resources("networking.istio.io"), ["gateways", "virtualservices"]);
        assert_eq!(resources("serving.knative.dev"), ["services"]);
    }

    #[test]
    fn kinds_nobody_names_are_errors_naming_them_never_guesses() {
        let problems = roles(&plan(vec![
            json!({"apiVersion": "other.io/v1", "kind": "Policy", "metadata": {"name": "p"}}),
            json!({"apiVersion": "other.io/v1", "kind": "Policy", "metadata": {"name": "q"}}),
        ]))
        .expect_err("an unknown kind");
        let text = problems.to_string();
        assert_eq!(text.lines().count(), 1, "one line per kind: {text}");
        assert!(text.contains("Policy (other.io/v1): its resource name is not known"), "{text}");
        assert!(text.contains("charmer rbac --discover"), "{text}");
        assert!(!text.contains("policies"), "no guess: {text}");
    }
}
