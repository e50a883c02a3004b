//! `status`, `remove` and the plan `rollback` re-applies, all read from revision records.

use std::collections::BTreeSet;

use serde::Serialize;

use super::apply::{with_kinds, Deletion};
use super::cluster::Lookup;
use super::cluster::{Cluster, Kinds};
use super::keep::{Keep, KeptObjects};
use super::lock::LockOptions;
use super::plan::Plan;
use super::record::{self, Entry, Record, RecordStatus, Revision};
use super::wait::{pod_selector, readiness, waits_for, Readiness};
use super::{DeployError, Progress};
use crate::contract::{object_id, ObjectId, KEPT_FROM_LABEL};

/// A deployed bundle as the cluster has it now.
#[derive(Debug, Clone, Serialize)]
pub struct BundleStatus {
    /// The bundle.
    pub bundle: String,
    /// The namespace.
    pub namespace: String,
    /// The latest revision.
    pub revision: u32,
    /// The latest revision's state.
    pub state: RecordStatus,
    /// Every recorded revision, oldest first.
    pub revisions: Vec<Revision>,
    /// Applications of the latest revision.
    pub apps: Vec<AppStatus>,
}

/// One application's state.
#[derive(Debug, Clone, Serialize)]
pub struct AppStatus {
    /// Application name.
    pub name: String,
    /// Charm name.
    pub charm: String,
    /// Charm version.
    pub version: String,
    /// Images it runs.
    pub images: Vec<String>,
    /// Pods ready, over its Deployments, StatefulSets and DaemonSets.
    pub ready_pods: i64,
    /// Pods wanted: the replicas of its Deployments and StatefulSets and the nodes its
    /// DaemonSets are scheduled on.
    pub desired_pods: i64,
    /// Objects waited for that are not ready, and why.
    pub waiting: Vec<NotReady>,
    /// Why its pods do not run: container waiting reasons (with the image when pulling it
    /// fails), unschedulable pods; one per pod, container and reason.
    pub problems: Vec<PodProblem>,
    /// What it exposes outside the cluster: node ports, load balancer addresses, the hosts
    /// of Ingresses and Gateways.
    pub exposes: Vec<Exposure>,
}

/// An object waited for that is not ready: `Deployment/shop/web (0 of 2 replicas ready)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct NotReady {
    /// The object.
    pub object: ObjectId,
    /// Why it is not ready (`missing` when it does not exist).
    pub reason: String,
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

/// One way an application is reached from outside the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Exposure {
    /// A node port of a NodePort or LoadBalancer Service:
    /// `node port 31883 -> 1883/TCP (Service mqtt)`.
    NodePort {
        /// The Service.
        service: String,
        /// The port on every node.
        node_port: i64,
        /// The Service port it leads to.
        port: serde_json::Value,
        /// `TCP`, `UDP` or `SCTP`.
        protocol: String,
    },
    /// A load balancer's address: `load balancer 203.0.113.7 (Service web)`.
    LoadBalancer {
        /// The Service.
        service: String,
        /// Its host name or IP address.
        address: String,
    },
    /// A host an Ingress or Gateway serves: `https://shop.example (Ingress web)`.
    Host {
        /// `http://host` or `https://host` (`*`: any host).
        url: String,
        /// `Ingress` or `Gateway`.
        via: String,
        /// The Ingress's or Gateway's name.
        name: String,
    },
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.object, self.reason)
    }
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

impl std::fmt::Display for Exposure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exposure::NodePort { service, node_port, port, protocol } => {
                write!(f, "node port {node_port} -> {port}/{protocol} (Service {service})")
            }
            Exposure::LoadBalancer { service, address } => {
                write!(f, "load balancer {address} (Service {service})")
            }
            Exposure::Host { url, via, name } => write!(f, "{url} ({via} {name})"),
        }
    }
}

/// How to remove a bundle.
#[derive(Debug, Clone, Default)]
pub struct RemoveOptions {
    /// Also delete what is otherwise kept: claims (the data), generated credentials of
    /// applications with storage, objects annotated `charmer.io/resource-policy: keep`, and
    /// objects kept from the bundle by earlier prunes and removes.
    pub destroy_storage: bool,
    /// How to take the bundle's lock.
    pub lock: LockOptions,
}

/// What `remove` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Removal {
    /// Objects deleted.
    pub deleted: Vec<ObjectId>,
    /// Objects deleted that finalizers still hold, with the finalizers (every claim has
    /// `kubernetes.io/pvc-protection`, which lets go once no pod mounts it).
    pub terminating: Vec<(ObjectId, Vec<String>)>,
    /// Inventory objects not deleted, and why.
    pub kept: Vec<(ObjectId, String)>,
    /// Objects left in place with their data, marked as kept from the bundle.
    pub retained: Vec<(ObjectId, Keep)>,
    /// Revision records deleted.
    pub records: Vec<String>,
    /// Things the user should know (a lock taken over from a holder that died).
    pub warnings: Vec<String>,
}

impl Cluster {
    async fn records(
        &self,
        bundle: &str,
        namespace: &str,
        groups: impl Fn(&[Record]) -> BTreeSet<String>,
    ) -> Result<(Vec<Record>, Kinds), DeployError> {
        let core = self.kinds(&BTreeSet::new()).await?;
        let records = record::load(self, &core, bundle, namespace).await?;
        if records.is_empty() {
            return Err(DeployError::NotDeployed {
                bundle: bundle.to_string(),
                namespace: namespace.to_string(),
            });
        }
        let kinds = self.kinds(&groups(&records)).await?;
        Ok((records, kinds))
    }

    /// The bundle's applications, versions, images and readiness.
    pub async fn status(&self, bundle: &str, namespace: &str) -> Result<BundleStatus, DeployError> {
        let (records, kinds) = self.records(bundle, namespace, inventory_groups).await?;
        let Some(latest) = records.last() else {
            return Err(DeployError::NotDeployed {
                bundle: bundle.to_string(),
                namespace: namespace.to_string(),
            });
        };
        let entries = with_kinds(
            &kinds,
            latest
                .inventory
                .iter()
                .filter(|e| waits_for(&e.id) || exposing(&e.id.kind))
                .cloned()
                .collect(),
        );
        let pods = match kinds.find("v1", "Pod") {
            Lookup::Served(kind) => Some(kind),
            _ => None,
        };
        let mut apps = Vec::new();
        for app in &latest.plan.apps {
            let mut status = AppStatus {
                name: app.name.clone(),
                charm: app.charm.clone(),
                version: app.version.clone(),
                images: app.images.clone(),
                ready_pods: 0,
                desired_pods: 0,
                waiting: Vec::new(),
                problems: Vec::new(),
                exposes: Vec::new(),
            };
            for (entry, kind) in entries.iter().filter(|(e, _)| e.app == app.name) {
                let Some(live) = self.get(kind, &entry.id).await? else {
                    if waits_for(&entry.id) {
                        let reason = "missing".to_string();
                        status.waiting.push(NotReady { object: entry.id.clone(), reason });
                    }
                    continue;
                };
                status.exposes.extend(exposed(&entry.id.kind, &entry.id.name, &live));
                if !waits_for(&entry.id) {
                    continue;
                }
                if let Some((ready, desired)) = pod_counts(&entry.id.kind, &live) {
                    status.ready_pods += ready;
                    status.desired_pods += desired;
                }
                if let Readiness::Pending(why) | Readiness::Failed(why) =
                    readiness(&entry.id.group, &entry.id.kind, &live)
                {
                    status.waiting.push(NotReady { object: entry.id.clone(), reason: why });
                    if let (Some(pods), Some(selector)) = (&pods, pod_selector(&live)) {
                        for pod in self.list(pods, Some(namespace), &selector).await? {
                            status.problems.extend(pod_problems(&pod));
                        }
                    }
                }
            }
            status.waiting.sort();
            status.problems.sort_by_key(ToString::to_string);
            status.problems.dedup();
            apps.push(status);
        }
        let times: std::collections::BTreeMap<u32, String> = self
            .record_summaries(Some(namespace), &format!("{}={bundle}", record::RECORD_LABEL))
            .await?
            .into_iter()
            .map(|s| (s.revision, s.updated))
            .collect();
        Ok(BundleStatus {
            bundle: bundle.to_string(),
            namespace: namespace.to_string(),
            revision: latest.revision,
            state: latest.status,
            revisions: records
                .iter()
                .map(|r| Revision {
                    revision: r.revision,
                    status: r.status,
                    updated: times.get(&r.revision).cloned().unwrap_or_default(),
                    reason: r.reason.clone(),
                })
                .collect(),
            apps,
        })
    }

    /// Deletes exactly the bundle's inventory (objects still labelled with the bundle; never
    /// CRDs or the namespace), then its revision records, under the bundle's lock. Claims,
    /// generated credentials of applications with storage and objects marked keep are left in
    /// place, marked as kept from the bundle, unless `destroy_storage`, which also deletes
    /// what earlier prunes and removes kept.
    pub async fn remove(
        &self,
        bundle: &str,
        namespace: &str,
        options: &RemoveOptions,
        progress: &dyn Progress,
    ) -> Result<Removal, DeployError> {
        let core = self.kinds(&BTreeSet::new()).await?;
        if record::load(self, &core, bundle, namespace).await?.is_empty() {
            let kept = self.kept_objects(&core, bundle, namespace).await?;
            let (bundle, namespace) = (bundle.to_string(), namespace.to_string());
            if kept.is_empty() {
                return Err(DeployError::NotDeployed { bundle, namespace });
            }
            if !options.destroy_storage {
                let kept = kept.iter().map(ToString::to_string).collect();
                return Err(DeployError::OnlyKept { bundle, namespace, kept });
            }
        }
        let lock = self.lock(bundle, namespace, &options.lock).await?;
        let result = self.remove_locked(&core, bundle, namespace, options, progress).await;
        let (mut removal, taken_over) = lock.release_after(result).await?;
        removal.warnings.extend(taken_over);
        Ok(removal)
    }

    /// `remove` once the lock is held: the records are read again, as they may have changed
    /// while waiting for it.
    async fn remove_locked(
        &self,
        core: &Kinds,
        bundle: &str,
        namespace: &str,
        options: &RemoveOptions,
        progress: &dyn Progress,
    ) -> Result<Removal, DeployError> {
        let records = record::load(self, core, bundle, namespace).await?;
        let kinds = self.kinds(&inventory_groups(&records)).await?;
        let kept = KeptObjects::of(&records);
        let mut entries = record::current_inventory(&records);
        if options.destroy_storage {
            let known: BTreeSet<ObjectId> = entries.iter().map(|e| e.id.clone()).collect();
            for id in self.kept_objects(core, bundle, namespace).await? {
                if !known.contains(&id) {
                    entries.push(Entry { app: String::new(), id });
                }
            }
        }
        let mut removal = Removal::default();
        let entries = with_kinds(&kinds, entries);
        let destroy = options.destroy_storage;
        for (id, deletion) in
            self.dispose(&kinds, entries, bundle, namespace, &kept, destroy, progress).await?
        {
            match deletion {
                Deletion::Deleted => removal.deleted.push(id),
                Deletion::Terminating(finalizers) => removal.terminating.push((id, finalizers)),
                Deletion::Gone => {}
                Deletion::Kept(why) => removal.kept.push((id, why)),
                Deletion::Retained(keep) => removal.retained.push((id, keep)),
            }
        }
        for r in &records {
            record::delete(self, &kinds, bundle, namespace, r.revision).await?;
            removal.records.push(record::name(bundle, r.revision));
        }
        Ok(removal)
    }

    /// Objects earlier prunes and removes kept from the bundle (claims, Secrets and
    /// ConfigMaps: the kinds data and credentials live in).
    async fn kept_objects(
        &self,
        kinds: &Kinds,
        bundle: &str,
        namespace: &str,
    ) -> Result<Vec<ObjectId>, DeployError> {
        let mut found = Vec::new();
        for kind_name in ["PersistentVolumeClaim", "Secret", "ConfigMap"] {
            let Some(kind) = kinds.preferred("", kind_name) else { continue };
            let selector = format!("{KEPT_FROM_LABEL}={bundle}");
            for object in self.list(&kind, Some(namespace), &selector).await? {
                if let Ok(id) = object_id(&object, Some(namespace)) {
                    found.push(id);
                }
            }
        }
        Ok(found)
    }

    /// The plan of revision `revision`, or of the last good revision before the current one
    /// when `None`, with the revision number.
    pub async fn rollback_plan(
        &self,
        bundle: &str,
        namespace: &str,
        revision: Option<u32>,
    ) -> Result<(Plan, u32), DeployError> {
        let (records, _) = self.records(bundle, namespace, |_| BTreeSet::new()).await?;
        let current = records
            .iter()
            .rev()
            .find(|r| r.status == RecordStatus::Deployed)
            .map_or(u32::MAX, |r| r.revision);
        let found = match revision {
            Some(n) => records.iter().find(|r| r.revision == n),
            None => records.iter().rev().find(|r| {
                r.revision < current
                    && matches!(r.status, RecordStatus::Deployed | RecordStatus::Superseded)
            }),
        };
        match (found, revision) {
            (Some(r), _) => Ok((r.plan.clone(), r.revision)),
            (None, Some(revision)) => Err(DeployError::NoRevision {
                bundle: bundle.to_string(),
                namespace: namespace.to_string(),
                revision,
            }),
            (None, None) => Err(DeployError::NoEarlierRevision {
                bundle: bundle.to_string(),
                namespace: namespace.to_string(),
                revisions: records
                    .iter()
                    .map(|r| format!("{} {}", r.revision, r.status))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }
}

fn inventory_groups(records: &[Record]) -> BTreeSet<String> {
    records.iter().flat_map(|r| r.inventory.iter().map(|e| e.id.group.clone())).collect()
}

/// Kinds that can expose an application outside the cluster.
fn exposing(kind: &str) -> bool {
    matches!(kind, "Service" | "Ingress" | "Gateway")
}

/// (ready, desired) pods of a workload; `None` for kinds that are not long-running pods.
fn pod_counts(kind: &str, live: &serde_json::Value) -> Option<(i64, i64)> {
    let status = &live["status"];
    let int = |v: &serde_json::Value| v.as_i64().unwrap_or(0);
    match kind {
        "Deployment" | "StatefulSet" => {
            Some((int(&status["readyReplicas"]), live["spec"]["replicas"].as_i64().unwrap_or(1)))
        }
        "DaemonSet" => Some((int(&status["numberReady"]), int(&status["desiredNumberScheduled"]))),
        _ => None,
    }
}

/// What a live Service, Ingress or Gateway exposes outside the cluster, one entry each.
fn exposed(kind: &str, name: &str, live: &serde_json::Value) -> Vec<Exposure> {
    let list = |v: &serde_json::Value| v.as_array().cloned().unwrap_or_default();
    let host = |url: String, via: &str| Exposure::Host {
        url,
        via: via.to_string(),
        name: name.to_string(),
    };
    let mut found = Vec::new();
    match kind {
        "Service" => {
            let service_type = live["spec"]["type"].as_str().unwrap_or("ClusterIP");
            if !matches!(service_type, "NodePort" | "LoadBalancer") {
                return found;
            }
            for port in list(&live["spec"]["ports"]) {
                if let Some(node_port) = port["nodePort"].as_i64() {
                    found.push(Exposure::NodePort {
                        service: name.to_string(),
                        node_port,
                        port: port["port"].clone(),
                        protocol: port["protocol"].as_str().unwrap_or("TCP").to_string(),
                    });
                }
            }
            for ingress in list(&live["status"]["loadBalancer"]["ingress"]) {
                if let Some(address) = ingress["hostname"].as_str().or(ingress["ip"].as_str()) {
                    found.push(Exposure::LoadBalancer {
                        service: name.to_string(),
                        address: address.to_string(),
                    });
                }
            }
        }
        "Ingress" => {
            let tls_hosts: BTreeSet<String> = list(&live["spec"]["tls"])
                .iter()
                .flat_map(|t| list(&t["hosts"]))
                .filter_map(|h| h.as_str().map(str::to_string))
                .collect();
            for rule in list(&live["spec"]["rules"]) {
                let name = rule["host"].as_str().unwrap_or("*");
                let scheme = if tls_hosts.contains(name) { "https" } else { "http" };
                found.push(host(format!("{scheme}://{name}"), "Ingress"));
            }
        }
        // An Istio Gateway's servers (`hosts`, each `[namespace/]name`) or a Gateway API
        // Gateway's listeners (`hostname`; none: any host).
        "Gateway" => {
            let mut urls = BTreeSet::new();
            for server in list(&live["spec"]["servers"]) {
                let scheme = server_scheme(server["port"]["protocol"].as_str());
                for name in list(&server["hosts"]) {
                    if let Some(name) = name.as_str() {
                        let name = name.rsplit('/').next().unwrap_or(name);
                        urls.insert(format!("{scheme}://{name}"));
                    }
                }
            }
            for listener in list(&live["spec"]["listeners"]) {
                let scheme = server_scheme(listener["protocol"].as_str());
                let name = listener["hostname"].as_str().unwrap_or("*");
                urls.insert(format!("{scheme}://{name}"));
            }
            found.extend(urls.into_iter().map(|url| host(url, "Gateway")));
        }
        _ => {}
    }
    found
}

/// `https` for a gateway port speaking HTTPS or TLS, `http` otherwise.
fn server_scheme(protocol: Option<&str>) -> &'static str {
    match protocol {
        Some("HTTPS" | "TLS") => "https",
        _ => "http",
    }
}

/// Why a pod's containers do not run, and whether it cannot be scheduled.
fn pod_problems(pod: &serde_json::Value) -> Vec<PodProblem> {
    let name = pod["metadata"]["name"].as_str().unwrap_or("?");
    let status = &pod["status"];
    let text = |v: &serde_json::Value| v.as_str().filter(|m| !m.is_empty()).map(str::to_string);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn texts<T: ToString>(items: Vec<T>) -> Vec<String> {
        items.iter().map(ToString::to_string).collect()
    }
    use serde_json::json;

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
    fn node_ports_load_balancers_and_ingress_hosts_are_exposed() {
        let service = json!({"spec": {"type": "NodePort", "ports": [{"port": 1883, "nodePort": 31883, "protocol": "TCP"}]}});
        assert_eq!(
            texts(exposed("Service", "mqtt", &service)),
            ["node port 31883 -> 1883/TCP (Service mqtt)"]
        );
        let internal = json!({"spec": {"ports": [{"port": 80}]}});
        assert!(exposed("Service", "web", &internal).is_empty());
        let ingress = json!({"spec": {"tls": [{"hosts": ["shop.example"]}],
            "rules": [{"host": "shop.example"}, {"host": "admin.example"}]}});
        assert_eq!(
            texts(exposed("Ingress", "web", &ingress)),
            ["https://shop.example (Ingress web)", "http://admin.example (Ingress web)"]
        );
        let istio = json!({"apiVersion": "networking.istio.io/v1beta1", "spec": {"servers": [
            {"port": {"number": 80, "protocol": "HTTP"}, "hosts": ["shop.example", "apps/admin.example"]},
            {"port": {"number": 443, "protocol": "HTTPS"}, "hosts": ["shop.example"]}]}});
        assert_eq!(
            texts(exposed("Gateway", "gw", &istio)),
            [
                "http://admin.example (Gateway gw)",
                "http://shop.example (Gateway gw)",
                "https://shop.example (Gateway gw)"
            ]
        );
        let gateway_api = json!({"spec": {"listeners": [{"protocol": "HTTP"},
            {"protocol": "HTTPS", "hostname": "shop.example"}]}});
        assert_eq!(
            texts(exposed("Gateway", "gw", &gateway_api)),
            ["http://* (Gateway gw)", "https://shop.example (Gateway gw)"]
        );
    }

    #[test]
    fn pods_are_counted_by_replicas_not_by_objects() {
        let one = json!({"spec": {"replicas": 1}, "status": {"readyReplicas": 1}});
        assert_eq!(pod_counts("StatefulSet", &one), Some((1, 1)));
        let none_ready = json!({"spec": {"replicas": 2}, "status": {}});
        assert_eq!(pod_counts("Deployment", &none_ready), Some((0, 2)));
        assert_eq!(pod_counts("PersistentVolumeClaim", &json!({})), None);
    }
}
