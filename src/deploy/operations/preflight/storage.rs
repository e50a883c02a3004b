//! Storage preflight: every claim (and StatefulSet claim template) can bind: its storage
//! class exists, or a default class does, or a pre-created PersistentVolume fits it.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::contract::ObjectId;
use crate::deploy::cluster::access::Unverified;
use crate::deploy::cluster::client::Cluster;
use crate::deploy::error::DeployError;
use crate::deploy::model::kinds::{Kinds, Lookup};
use crate::deploy::model::plan::DeployPlan;
use crate::diag::Problem;

/// The permission listing PersistentVolumes needs.
const VOLUMES_PERMISSION: &str = "list persistentvolumes at the cluster scope";

impl Cluster {
    pub(super) async fn check_storage(
        &self,
        kinds: &Kinds,
        plan: &DeployPlan,
        notes: &mut Vec<String>,
        unverified: &mut Unverified,
    ) -> Result<Vec<Problem>, DeployError> {
        let claims = claims(plan);
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let classes = match kinds.find("storage.k8s.io/v1", "StorageClass") {
            Lookup::Served(kind) => {
                let permission = "list storageclasses.storage.k8s.io at the cluster scope";
                let listed =
                    self.list_all_or_note(&kind, "storage class", permission, unverified).await?;
                // Without the classes, no claim can be judged.
                let Some(classes) = listed else { return Ok(Vec::new()) };
                classes
            }
            _ => Vec::new(),
        };
        let names: BTreeSet<&str> =
            classes.iter().filter_map(|c| c["metadata"]["name"].as_str()).collect();
        let default_class = classes.iter().any(|c| {
            let annotations = &c["metadata"]["annotations"];
            [
                "storageclass.kubernetes.io/is-default-class",
                "storageclass.beta.kubernetes.io/is-default-class",
            ]
            .iter()
            .any(|a| annotations[*a] == "true")
        });
        let rendered_classes: BTreeSet<&str> = plan
            .objects
            .iter()
            .filter(|o| o.object["kind"] == "StorageClass")
            .filter_map(|o| o.object["metadata"]["name"].as_str())
            .collect();
        let volumes: Vec<&Value> = plan
            .objects
            .iter()
            .filter(|o| o.object["kind"] == "PersistentVolume")
            .map(|o| &o.object)
            .collect();
        // Pre-created volumes (seed 000's workaround for clusters with no provisioner).
        // `None`: the identity may not list them, so a claim no class serves is not verified.
        let (claim_kind, mut cluster_volumes) =
            match (kinds.find("v1", "PersistentVolumeClaim"), kinds.find("v1", "PersistentVolume"))
            {
                (Lookup::Served(claim_kind), Lookup::Served(volume_kind)) => {
                    let what = "pre-created PersistentVolumes";
                    let listed = self
                        .list_all_or_note(&volume_kind, what, VOLUMES_PERMISSION, unverified)
                        .await?;
                    (Some(claim_kind), listed)
                }
                _ => (None, Some(Vec::new())),
            };
        let mut problems = Vec::new();
        for claim in claims {
            let bound_volume = volumes.iter().any(|v| {
                let name_matches =
                    claim.volume_name.is_some_and(|n| v["metadata"]["name"].as_str() == Some(n));
                let class_matches =
                    claim.class.is_some_and(|c| v["spec"]["storageClassName"].as_str() == Some(c));
                name_matches || class_matches
            });
            if bound_volume {
                continue;
            }
            match claim.class {
                Some("") if claim.volume_name.is_none() => {}
                Some(class) if names.contains(class) || rendered_classes.contains(class) => {}
                None if default_class => {}
                class => {
                    // Each claim (each replica's, for claim templates) needs its own volume,
                    // unless it exists and is bound already (a re-deploy, a kept claim).
                    let mut missing = 0;
                    for name in &claim.names {
                        if let Some(kind) = &claim_kind {
                            let id = ObjectId {
                                group: String::new(),
                                kind: "PersistentVolumeClaim".into(),
                                namespace: Some(plan.namespace.clone()),
                                name: name.clone(),
                            };
                            let live = self.get(kind, &id).await?;
                            if live.is_some_and(|c| c["status"]["phase"] == "Bound") {
                                continue;
                            }
                        }
                        let claim_ref = (plan.namespace.as_str(), name.as_str());
                        let Some(cluster_volumes) = cluster_volumes.as_mut() else { continue };
                        match take_volume(cluster_volumes, &claim, claim_ref) {
                            Some(volume) => notes.push(format!(
                                "{}{}: will bind the pre-created {volume}",
                                claim.subject,
                                if claim.names.len() > 1 {
                                    format!(" ({name})")
                                } else {
                                    String::new()
                                }
                            )),
                            None => missing += 1,
                        }
                    }
                    if missing == 0 {
                        continue;
                    }
                    let (message, hint) = match class {
                        Some(class) => (
                            format!("storage class {class:?} does not exist in the cluster, and no pre-created PersistentVolume of that class fits it"),
                            storage_hint(&names, Some(class)),
                        ),
                        None => (
                            "no storage class is set, the cluster has no default storage class, and no pre-created PersistentVolume without a class fits it".to_string(),
                            storage_hint(&names, None),
                        ),
                    };
                    problems.push(Problem::new("preflight", &claim.subject, message).hint(hint));
                }
            }
        }
        Ok(problems)
    }
}

impl Cluster {
    /// A problem for each host directory a PersistentVolume of the plan (`hostPath` or
    /// `local`) shares with another PersistentVolume: two volumes on one directory are two
    /// applications (say, two mongod processes) writing one data directory.
    pub(super) async fn check_host_paths(
        &self,
        kinds: &Kinds,
        plan: &DeployPlan,
        unverified: &mut Unverified,
    ) -> Result<Vec<Problem>, DeployError> {
        let wanted: Vec<(&str, HostDir<'_>)> = plan
            .objects
            .iter()
            .filter(|o| o.object["kind"] == "PersistentVolume")
            .filter_map(|o| Some((o.object["metadata"]["name"].as_str()?, host_dir(&o.object)?)))
            .collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let Lookup::Served(kind) = kinds.find("v1", "PersistentVolume") else {
            return Ok(Vec::new());
        };
        let what = "host paths of PersistentVolumes";
        let Some(live) = self.list_all_or_note(&kind, what, VOLUMES_PERMISSION, unverified).await?
        else {
            return Ok(Vec::new());
        };
        let mut problems = Vec::new();
        for (i, (name, dir)) in wanted.iter().enumerate() {
            let same_dir = |other: &HostDir<'_>| {
                other.path.trim_end_matches('/') == dir.path.trim_end_matches('/')
                    && (other.node.is_null() || dir.node.is_null() || other.node == dir.node)
            };
            let taken = live.iter().find_map(|v| {
                let other = v["metadata"]["name"].as_str()?;
                (other != *name && same_dir(&host_dir(v)?)).then(|| {
                    let claim = &v["spec"]["claimRef"];
                    match (claim["namespace"].as_str(), claim["name"].as_str()) {
                        (Some(ns), Some(c)) => format!("PersistentVolume {other} (claim {ns}/{c})"),
                        _ => format!("PersistentVolume {other} (no claim)"),
                    }
                })
            });
            let twin = wanted[..i]
                .iter()
                .find(|(_, d)| same_dir(d))
                .map(|(other, _)| format!("PersistentVolume {other} of this deploy"));
            if let Some(other) = taken.or(twin) {
                problems.push(
                    Problem::new("preflight", format!("PersistentVolume/{name}"), format!("host path {} is already used by {other}; two volumes on one directory mix two applications' data", dir.path))
                        .hint("give this application another host directory (its host path option), or remove the other volume first if its data is no longer needed"),
                );
            }
        }
        Ok(problems)
    }
}

/// A directory on a node a PersistentVolume stores its data in.
struct HostDir<'a> {
    path: &'a str,
    /// `spec.nodeAffinity` (null: any node).
    node: &'a Value,
}

/// The host directory of a `hostPath` or `local` PersistentVolume.
fn host_dir(volume: &Value) -> Option<HostDir<'_>> {
    let spec = &volume["spec"];
    let path = spec["hostPath"]["path"].as_str().or_else(|| spec["local"]["path"].as_str())?;
    Some(HostDir { path, node: &spec["nodeAffinity"] })
}

/// Takes the smallest pre-created volume the claim can bind: free (or reserved for this
/// claim), of the claim's class (none: no class), big enough, with its access modes and
/// volume mode. Returns how to name it.
fn take_volume(
    volumes: &mut Vec<Value>,
    claim: &Claim<'_>,
    claim_ref: (&str, &str),
) -> Option<String> {
    let class = claim.class.unwrap_or("");
    let fits = |v: &Value| {
        let spec = &v["spec"];
        let reference = &spec["claimRef"];
        let free = match reference["name"].as_str() {
            Some(name) => (reference["namespace"].as_str().unwrap_or(""), name) == claim_ref,
            None => v["status"]["phase"].as_str().is_none_or(|p| p == "Available"),
        };
        let modes: BTreeSet<&str> = spec["accessModes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let size = spec["capacity"]["storage"].as_str().and_then(quantity);
        free && spec["storageClassName"].as_str().unwrap_or("") == class
            && claim.volume_name.is_none_or(|n| v["metadata"]["name"].as_str() == Some(n))
            && claim.access_modes.iter().all(|m| modes.contains(m))
            && spec["volumeMode"].as_str().unwrap_or("Filesystem") == claim.volume_mode
            && match (claim.request, size) {
                (Some(wanted), Some(size)) => size >= wanted,
                (None, _) => true,
                (Some(_), None) => false,
            }
    };
    let best = volumes
        .iter()
        .enumerate()
        .filter(|(_, v)| fits(v))
        .min_by(|(_, a), (_, b)| {
            let size = |v: &Value| v["spec"]["capacity"]["storage"].as_str().and_then(quantity);
            size(a).partial_cmp(&size(b)).unwrap_or(std::cmp::Ordering::Equal)
        })
        .map(|(i, _)| i)?;
    let volume = volumes.remove(best);
    let spec = &volume["spec"];
    let modes: Vec<&str> =
        spec["accessModes"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    Some(format!(
        "PersistentVolume {} (storageClassName {:?}, {}, {})",
        volume["metadata"]["name"].as_str().unwrap_or("?"),
        spec["storageClassName"].as_str().unwrap_or(""),
        spec["capacity"]["storage"].as_str().unwrap_or("?"),
        modes.join(", ")
    ))
}

/// A Kubernetes quantity (`10Gi`, `500M`, `1.5Ti`, `1e9`) in bytes, by the API server's
/// grammar (`kube_rules`, which option checks use too).
fn quantity(text: &str) -> Option<f64> {
    crate::kube_rules::parse_quantity(text.trim()).ok().map(|q| q.0)
}

fn storage_hint(existing: &BTreeSet<&str>, class: Option<&str>) -> String {
    let existing = if existing.is_empty() {
        "none".to_string()
    } else {
        existing.iter().copied().collect::<Vec<_>>().join(", ")
    };
    let class = class.map(|c| format!(" with storageClassName {c}")).unwrap_or_default();
    format!("set the charm's storage class option to an existing class (existing: {existing}), install a provisioner, or render a hostPath PersistentVolume{class}")
}

/// One volume claim of the plan: a PersistentVolumeClaim or a StatefulSet's claim template.
struct Claim<'a> {
    subject: String,
    /// The claims it makes: one, or one per replica of a StatefulSet.
    names: Vec<String>,
    class: Option<&'a str>,
    volume_name: Option<&'a str>,
    /// Requested bytes.
    request: Option<f64>,
    access_modes: Vec<&'a str>,
    volume_mode: &'a str,
}

fn claim(spec: &Value, subject: String, names: Vec<String>) -> Claim<'_> {
    Claim {
        subject,
        names,
        class: spec["storageClassName"].as_str(),
        volume_name: spec["volumeName"].as_str(),
        request: spec["resources"]["requests"]["storage"].as_str().and_then(quantity),
        access_modes: spec["accessModes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect(),
        volume_mode: spec["volumeMode"].as_str().unwrap_or("Filesystem"),
    }
}

fn claims(plan: &DeployPlan) -> Vec<Claim<'_>> {
    let mut claims = Vec::new();
    for o in &plan.objects {
        let object = &o.object;
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let namespace = object["metadata"]["namespace"].as_str().unwrap_or(&plan.namespace);
        match object["kind"].as_str() {
            Some("PersistentVolumeClaim") => claims.push(claim(
                &object["spec"],
                format!("PersistentVolumeClaim/{namespace}/{name}"),
                vec![name.to_string()],
            )),
            Some("StatefulSet") => {
                let replicas = object["spec"]["replicas"].as_u64().unwrap_or(1);
                for template in
                    object["spec"]["volumeClaimTemplates"].as_array().into_iter().flatten()
                {
                    let claim_name = template["metadata"]["name"].as_str().unwrap_or_default();
                    claims.push(claim(
                        &template["spec"],
                        format!("StatefulSet/{namespace}/{name} volumeClaimTemplates {claim_name}"),
                        (0..replicas).map(|i| format!("{claim_name}-{name}-{i}")).collect(),
                    ));
                }
            }
            _ => {}
        }
    }
    claims
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::operations::preflight::testing::plan;
    use serde_json::json;

    #[test]
    fn quantities_are_bytes() {
        assert_eq!(quantity("10Gi"), Some(10.0 * 1024f64.powi(3)));
        assert_eq!(quantity("500M"), Some(5e8));
        assert_eq!(quantity("1.5Ti"), Some(1.5 * 1024f64.powi(4)));
        assert_eq!(quantity("1e3"), Some(1000.0));
        assert_eq!(quantity("2048"), Some(2048.0));
        assert_eq!(quantity("10GB"), None);
        assert!(quantity("1Gi") > quantity("1G"));
    }

    #[test]
    fn claims_include_statefulset_templates() {
        let sts = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
            "spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"storageClassName": "fast"}}]}});
        let p = plan(vec![sts]);
        let found = claims(&p);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].class, Some("fast"));
        assert_eq!(found[0].subject, "StatefulSet/ns/db volumeClaimTemplates data");
    }
}
