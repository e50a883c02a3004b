//! `network-policies: relations`: one ingress NetworkPolicy per application, derived from the
//! model's relations and the Services the charms rendered (docs/charms.md, "Network policies").
//!
//! An application's pods admit each application related to it on the ports its providing
//! endpoints publish (keys `port` and `*-port`, and the port of a URL naming its own Service
//! host), translated through its rendered Services to pod ports; and anyone on the ports of
//! its NodePort or LoadBalancer Services. Only ingress is restricted: egress (DNS, the
//! Kubernetes API, istiod, registries) is left as the cluster has it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::RenderedObject;
use crate::bundle::NetworkPolicies;
use crate::contract::{selector_labels, INSTANCE_LABEL};
use crate::resolve::context::standard_labels;
use crate::resolve::plan::{IngressRule, PolicyPeer, PolicyPort, PolicySummary};
use crate::resolve::{Application, Model};

/// The template name generated policies are recorded under.
const SOURCE: &str = "network-policies (relations)";

/// A port on the pods: what a NetworkPolicy rule names, ordered by port then protocol.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct PodPort {
    port: PortValue,
    protocol: String,
}

/// A number or a named container port, numbers first.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PortValue(Value);

impl Ord for PortValue {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let key = |v: &Value| (v.as_u64().is_none(), v.as_u64(), v.as_str().map(str::to_string));
        key(&self.0).cmp(&key(&other.0))
    }
}

impl PartialOrd for PortValue {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The NetworkPolicies the model asks for, one per application that runs pods (none for
/// `network-policies: none`). Applications whose pods Knative runs are left out: Knative's
/// activator and ingress reach them from other namespaces (docs/charms.md).
pub(super) fn policies(model: &Model, objects: &[RenderedObject]) -> Vec<RenderedObject> {
    if model.network_policies != NetworkPolicies::Relations {
        return Vec::new();
    }
    let mut out = Vec::new();
    for app in model.applications.values() {
        let own: Vec<&RenderedObject> = objects.iter().filter(|o| o.app == app.name).collect();
        let runs_pods = own.iter().any(|o| o.object["spec"]["template"]["spec"].is_object());
        let knative = own.iter().any(|o| o.api_version().starts_with("serving.knative.dev/"));
        if !runs_pods || knative {
            continue;
        }
        let services: Vec<&Value> = own
            .iter()
            .filter(|o| o.api_version() == "v1" && o.kind() == "Service")
            .map(|o| &o.object)
            .collect();
        let mut rules = Vec::new();
        for (client, ports) in related_clients(model, app, &services) {
            let client_app = &model.applications[&client];
            rules.push(json!({
                "from": [{"podSelector": {"matchLabels": selector_labels(client_app.charm.name(), &client)}}],
                "ports": policy_ports(&ports),
            }));
        }
        let exposed = exposed_ports(&services);
        if !exposed.is_empty() {
            rules.push(json!({"ports": policy_ports(&exposed)}));
        }
        let mut spec = json!({
            "podSelector": {"matchLabels": selector_labels(app.charm.name(), &app.name)},
            "policyTypes": ["Ingress"],
        });
        // No rules means no ingress at all (policyTypes says so). `ingress: []` would mean
        // the same, but the API server stores it as absent, so every apply would see a change.
        if !rules.is_empty() {
            spec["ingress"] = Value::Array(rules);
        }
        out.push(RenderedObject {
            app: app.name.clone(),
            template: SOURCE.to_string(),
            object: json!({
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {
                    "name": format!("{}-relations", app.name),
                    "namespace": model.namespace,
                    "labels": standard_labels(model, app),
                },
                "spec": spec,
            }),
        });
    }
    out
}

/// Each application `app` provides an endpoint to, with the pod ports it may reach.
fn related_clients(
    model: &Model,
    app: &Application,
    services: &[&Value],
) -> BTreeMap<String, BTreeSet<PodPort>> {
    let mut clients: BTreeMap<String, BTreeSet<PodPort>> = BTreeMap::new();
    for client in model.applications.values().filter(|c| c.name != app.name) {
        for data in client.relation_data.values().flatten().filter(|d| d.app == app.name) {
            let published = data.published_ports();
            let ports = clients.entry(client.name.clone()).or_default();
            if published.is_empty() {
                // The endpoint names no port: the relation is to the Service, all of it.
                ports.extend(services.iter().flat_map(|s| service_ports(s)).map(|(_, p)| p));
            }
            for port in published {
                ports.insert(pod_port(services, port));
            }
        }
    }
    clients
}

/// The pod port behind Service port `port` (its targetPort), or `port` itself when no
/// rendered Service has it.
fn pod_port(services: &[&Value], port: u16) -> PodPort {
    services
        .iter()
        .flat_map(|s| service_ports(s))
        .find(|(service_port, _)| *service_port == u64::from(port))
        .map(|(_, p)| p)
        .unwrap_or(PodPort { port: PortValue(json!(port)), protocol: "TCP".into() })
}

/// (Service port, pod port) for every port of a Service.
fn service_ports(service: &Value) -> Vec<(u64, PodPort)> {
    let ports = service["spec"]["ports"].as_array().map(Vec::as_slice).unwrap_or_default();
    ports
        .iter()
        .filter_map(|p| {
            let number = p["port"].as_u64()?;
            let target =
                if p["targetPort"].is_null() { json!(number) } else { p["targetPort"].clone() };
            let protocol = p["protocol"].as_str().unwrap_or("TCP").to_string();
            Some((number, PodPort { port: PortValue(target), protocol }))
        })
        .collect()
}

/// Pod ports of the Services reachable from outside the cluster (NodePort, LoadBalancer).
fn exposed_ports(services: &[&Value]) -> BTreeSet<PodPort> {
    services
        .iter()
        .filter(|s| matches!(s["spec"]["type"].as_str(), Some("NodePort" | "LoadBalancer")))
        .flat_map(|s| service_ports(s))
        .map(|(_, p)| p)
        .collect()
}

fn policy_ports(ports: &BTreeSet<PodPort>) -> Value {
    ports.iter().map(|p| json!({"protocol": p.protocol, "port": p.port.0})).collect()
}

/// What each NetworkPolicy among `objects` (generated or a charm's own) admits: who, on
/// which ports — for `charmer check`'s plan.
pub fn summary(objects: &[RenderedObject]) -> Vec<PolicySummary> {
    let list = |v: &Value| v.as_array().map(Vec::as_slice).unwrap_or_default().to_vec();
    objects
        .iter()
        .filter(|o| o.kind() == "NetworkPolicy")
        .map(|o| PolicySummary {
            name: o.name().to_string(),
            application: o.app.clone(),
            ingress: list(&o.object["spec"]["ingress"])
                .iter()
                .map(|rule| IngressRule {
                    from: rule["from"].as_array().map(|peers| {
                        peers
                            .iter()
                            .map(|p| {
                                match p["podSelector"]["matchLabels"][INSTANCE_LABEL].as_str() {
                                    Some(app) => {
                                        PolicyPeer { application: Some(app.into()), peer: None }
                                    }
                                    None => PolicyPeer { application: None, peer: Some(p.clone()) },
                                }
                            })
                            .collect()
                    }),
                    ports: list(&rule["ports"])
                        .iter()
                        .map(|p| PolicyPort {
                            port: p["port"].clone(),
                            protocol: p["protocol"].as_str().unwrap_or("TCP").to_string(),
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect()
}
