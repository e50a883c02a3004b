//! `status`: a deployed bundle as its latest revision record and the live objects say.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::contract::ObjectId;
use crate::contract::BUNDLE_LABEL;
use crate::deploy::cluster::client::Cluster;
use crate::deploy::error::DeployError;
use crate::deploy::health::kstatus::{health, waits_for, Health};
use crate::deploy::health::pods::{pod_problems, PodProblem};
use crate::deploy::health::revision;
use crate::deploy::model::kinds::Lookup;
use crate::deploy::state::record::{self, inventory_groups, with_kinds, RecordStatus, Revision};

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
    /// A LoadBalancer Service with no external address yet (no load-balancer controller
    /// answered): reachable meanwhile through its node ports.
    PendingLoadBalancer {
        /// The Service.
        service: String,
        /// Its node ports, the fallback.
        node_ports: Vec<i64>,
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

impl std::fmt::Display for Exposure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exposure::NodePort { service, node_port, port, protocol } => {
                write!(f, "node port {node_port} -> {port}/{protocol} (Service {service})")
            }
            Exposure::LoadBalancer { service, address } => {
                write!(f, "load balancer {address} (Service {service})")
            }
            Exposure::PendingLoadBalancer { service, node_ports } => {
                write!(f, "load balancer pending for Service {service}: no external address yet (does the cluster run a load-balancer controller?)")?;
                match node_ports.as_slice() {
                    [] => Ok(()),
                    ports => {
                        let ports: Vec<String> = ports.iter().map(i64::to_string).collect();
                        write!(
                            f,
                            "; meanwhile reach it on node port {} of any node",
                            ports.join(", ")
                        )
                    }
                }
            }
            Exposure::Host { url, via, name } => write!(f, "{url} ({via} {name})"),
        }
    }
}

impl Cluster {
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
        // The bundle's pods and ReplicaSets, read once: pods are judged only when they run
        // their workload's current revision, as the wait judges them.
        let selector = format!("{BUNDLE_LABEL}={bundle}");
        let read = |api_version: &'static str, kind: &'static str| {
            let selector = selector.clone();
            let kinds = &kinds;
            async move {
                match kinds.find(api_version, kind) {
                    Lookup::Served(kind) => self.list(&kind, Some(namespace), &selector).await,
                    _ => Ok(Vec::new()),
                }
            }
        };
        let pods = read("v1", "Pod").await?;
        let replica_sets = read("apps/v1", "ReplicaSet").await?;
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
                let health = health(&entry.id.group, &entry.id.kind, &live);
                if health != Health::Current {
                    let reason = health.to_string();
                    status.waiting.push(NotReady { object: entry.id.clone(), reason });
                    if let Some(current) = revision::current(&live, &replica_sets) {
                        for pod in pods.iter().filter(|p| current.has(p)) {
                            status.problems.extend(pod_problems(pod));
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
        // A revision's apply time is in its record; `updated` is when the record last changed.
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
                    applied: r.applied.clone().unwrap_or_default(),
                    updated: times.get(&r.revision).cloned().unwrap_or_default(),
                    reason: r.reason.clone(),
                })
                .collect(),
            apps,
        })
    }
}

impl Cluster {
    /// The LoadBalancer Services among `targets` still without an external address, as
    /// `status` words them (with their node ports, the fallback); read after a wait, when a
    /// load-balancer controller, if there is one, has had time to answer.
    pub(crate) async fn pending_load_balancers(
        &self,
        targets: &[crate::deploy::model::targets::Target],
    ) -> Result<Vec<String>, DeployError> {
        let mut pending = Vec::new();
        for t in targets.iter().filter(|t| {
            t.id.group.is_empty()
                && t.id.kind == "Service"
                && t.object["spec"]["type"] == "LoadBalancer"
        }) {
            let Some(live) = self.get(&t.kind, &t.id).await? else { continue };
            for exposure in exposed("Service", &t.id.name, &live) {
                if matches!(exposure, Exposure::PendingLoadBalancer { .. }) {
                    pending.push(format!("application {}: {exposure}", t.app));
                }
            }
        }
        Ok(pending)
    }
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
            let addresses: Vec<String> = list(&live["status"]["loadBalancer"]["ingress"])
                .iter()
                .filter_map(|i| i["hostname"].as_str().or(i["ip"].as_str()).map(str::to_string))
                .collect();
            if service_type == "LoadBalancer" && addresses.is_empty() {
                let node_ports = list(&live["spec"]["ports"])
                    .iter()
                    .filter_map(|p| p["nodePort"].as_i64())
                    .collect();
                found.push(Exposure::PendingLoadBalancer { service: name.to_string(), node_ports });
            }
            for address in addresses {
                found.push(Exposure::LoadBalancer { service: name.to_string(), address });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn texts<T: ToString>(items: Vec<T>) -> Vec<String> {
        items.iter().map(ToString::to_string).collect()
    }
    use serde_json::json;

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
