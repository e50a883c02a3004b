//! How each application is reached, read off the rendered objects (not guessed from option
//! names): its Services that clients outside the cluster reach (NodePort, LoadBalancer) with
//! their ports and fixed node ports; the host names it accepts (an Istio `Gateway`'s
//! servers); and the routes that bring traffic to it — an Istio `VirtualService`, a
//! Kubernetes `Ingress` or a Gateway API `HTTPRoute` naming its Service as a destination.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::render::{Manifests, RenderedObject};

/// What the rendered objects say about reaching one application.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Reach {
    /// Its Services reachable from outside the cluster, in render order.
    pub services: Vec<ExposedService>,
    /// Host names its gateways accept (`*`: any), sorted.
    pub hosts: Vec<String>,
    /// Routes to it: `via istio-gateway: web.example.com/` or `Ingress web: /`.
    pub routes: Vec<String>,
    /// Whether an Ingress or HTTPRoute brings outside traffic to it (through a controller
    /// that is not part of the bundle).
    pub routed_from_outside: bool,
}

/// A NodePort or LoadBalancer Service.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ExposedService {
    /// `NodePort` or `LoadBalancer`.
    pub kind: String,
    /// Its ports, in order.
    pub ports: Vec<ServicePort>,
}

/// One port of a Service.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ServicePort {
    pub name: Option<String>,
    pub port: u64,
    /// The node port, when the Service fixes one.
    pub node_port: Option<u64>,
}

impl ExposedService {
    /// `LoadBalancer: http2 80, https 443` / `NodePort: mqtt 1883 (node 30135)`.
    pub fn describe(&self) -> String {
        let ports: Vec<String> = self
            .ports
            .iter()
            .map(|p| {
                let name = p.name.as_ref().map(|n| format!("{n} ")).unwrap_or_default();
                let node = p.node_port.map(|n| format!(" (node {n})")).unwrap_or_default();
                format!("{name}{}{node}", p.port)
            })
            .collect();
        format!("Service {}: {}", self.kind, ports.join(", "))
    }

    /// What a client outside connects to: a LoadBalancer's Service ports
    /// (`LoadBalancer 80, 443`); a NodePort's fixed node ports, and how many Kubernetes picks
    /// (`NodePort 30080 + 2 picked by Kubernetes`).
    pub fn entry(&self) -> String {
        if self.kind != "NodePort" {
            let ports: Vec<String> = self.ports.iter().map(|p| p.port.to_string()).collect();
            return format!("{} {}", self.kind, ports.join(", "));
        }
        let fixed: Vec<String> =
            self.ports.iter().filter_map(|p| p.node_port).map(|n| n.to_string()).collect();
        let mut parts = Vec::new();
        if !fixed.is_empty() {
            parts.push(fixed.join(", "));
        }
        match self.ports.len() - fixed.len() {
            0 => {}
            n => parts.push(format!("{n} picked by Kubernetes")),
        }
        format!("NodePort {}", parts.join(" + "))
    }
}

/// Each application's [`Reach`] (only applications with something to say).
pub(super) fn reach(manifests: &Manifests) -> BTreeMap<String, Reach> {
    let mut reach: BTreeMap<String, Reach> = BTreeMap::new();
    // Service name → the application that renders it, to follow routes to applications.
    let owner: BTreeMap<&str, &str> = manifests
        .objects
        .iter()
        .filter(|o| o.api_version() == "v1" && o.kind() == "Service")
        .map(|o| (o.name(), o.app.as_str()))
        .collect();
    let service_app = |host: &str| -> Option<String> {
        let namespace = &manifests.namespace;
        let name = [
            format!(".{namespace}.svc.cluster.local"),
            format!(".{namespace}.svc"),
            format!(".{namespace}"),
        ]
        .iter()
        .find_map(|suffix| host.strip_suffix(suffix.as_str()))
        .unwrap_or(host);
        owner.get(name).map(|app| app.to_string())
    };
    for o in &manifests.objects {
        let group = o.api_version().split('/').next().unwrap_or_default();
        match (group, o.kind()) {
            ("v1", "Service") => {
                if let Some(service) = exposed_service(&o.object) {
                    reach.entry(o.app.clone()).or_default().services.push(service);
                }
            }
            ("networking.istio.io", "Gateway") => {
                let hosts = list(&o.object["spec"]["servers"])
                    .iter()
                    .flat_map(|server| strings(&server["hosts"]))
                    .collect::<Vec<_>>();
                reach.entry(o.app.clone()).or_default().hosts.extend(hosts);
            }
            ("networking.istio.io", "VirtualService") => {
                let hosts = strings(&o.object["spec"]["hosts"]);
                for http in list(&o.object["spec"]["http"]) {
                    let prefixes = strings_at(&http["match"], "/uri/prefix");
                    for route in list(&http["route"]) {
                        let Some(app) =
                            route["destination"]["host"].as_str().and_then(&service_app)
                        else {
                            continue;
                        };
                        let via = format!("via {}", o.app);
                        for path in routes(&hosts, &prefixes) {
                            reach
                                .entry(app.clone())
                                .or_default()
                                .routes
                                .push(format!("{via}: {path}"));
                        }
                    }
                }
            }
            ("networking.k8s.io", "Ingress") => {
                let mut backends: Vec<(Vec<String>, String, &Value)> = Vec::new();
                for rule in list(&o.object["spec"]["rules"]) {
                    let hosts: Vec<String> =
                        rule["host"].as_str().map(str::to_string).into_iter().collect();
                    for path in list(&rule["http"]["paths"]) {
                        let at = path["path"].as_str().unwrap_or("/").to_string();
                        backends.push((hosts.clone(), at, &path["backend"]));
                    }
                }
                let default = &o.object["spec"]["defaultBackend"];
                if default.is_object() {
                    backends.push((Vec::new(), "/".to_string(), default));
                }
                for (hosts, at, backend) in backends {
                    if let Some(app) = backend["service"]["name"].as_str().and_then(&service_app) {
                        add_outside_route(&mut reach, &app, o, &hosts, &at);
                    }
                }
            }
            ("gateway.networking.k8s.io", "HTTPRoute") => {
                let hosts = strings(&o.object["spec"]["hostnames"]);
                for rule in list(&o.object["spec"]["rules"]) {
                    let paths = strings_at(&rule["matches"], "/path/value");
                    let paths = if paths.is_empty() { vec!["/".to_string()] } else { paths };
                    for backend in list(&rule["backendRefs"]) {
                        let kind = backend["kind"].as_str().unwrap_or("Service");
                        let Some(app) = backend["name"]
                            .as_str()
                            .filter(|_| kind == "Service")
                            .and_then(&service_app)
                        else {
                            continue;
                        };
                        for path in &paths {
                            add_outside_route(&mut reach, &app, o, &hosts, path);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    for r in reach.values_mut() {
        r.hosts.sort();
        r.hosts.dedup();
        r.routes.sort();
        r.routes.dedup();
    }
    reach
}

/// A route by an Ingress or HTTPRoute `o` to `app`: outside traffic, through the cluster's
/// controller.
fn add_outside_route(
    reach: &mut BTreeMap<String, Reach>,
    app: &str,
    o: &RenderedObject,
    hosts: &[String],
    path: &str,
) {
    let entry = reach.entry(app.to_string()).or_default();
    entry.routed_from_outside = true;
    for route in routes(hosts, &[path.to_string()]) {
        entry.routes.push(format!("{} {}: {route}", o.kind(), o.name()));
    }
}

/// `host/path` for every host and path; `*` or no host at all is any host.
fn routes(hosts: &[String], paths: &[String]) -> Vec<String> {
    let paths = if paths.is_empty() { vec!["/".to_string()] } else { paths.to_vec() };
    let hosts = if hosts.is_empty() { vec!["*".to_string()] } else { hosts.to_vec() };
    hosts
        .iter()
        .flat_map(|host| {
            paths.iter().map(move |path| match host.as_str() {
                "*" => format!("{path} (any host)"),
                host => format!("{host}{path}"),
            })
        })
        .collect()
}

/// A Service of type NodePort or LoadBalancer, with its ports.
fn exposed_service(service: &Value) -> Option<ExposedService> {
    let kind =
        service["spec"]["type"].as_str().filter(|k| *k == "NodePort" || *k == "LoadBalancer")?;
    let ports = list(&service["spec"]["ports"])
        .iter()
        .filter_map(|p| {
            Some(ServicePort {
                name: p["name"].as_str().map(str::to_string),
                port: p["port"].as_u64()?,
                node_port: p["nodePort"].as_u64().filter(|n| *n != 0),
            })
        })
        .collect();
    Some(ExposedService { kind: kind.to_string(), ports })
}

fn list(value: &Value) -> Vec<&Value> {
    value.as_array().map(|a| a.iter().collect()).unwrap_or_default()
}

fn strings(value: &Value) -> Vec<String> {
    list(value).iter().filter_map(|v| v.as_str().map(str::to_string)).collect()
}

/// The string at JSON `pointer` in each item of the list `value`, where there is one.
fn strings_at(value: &Value, pointer: &str) -> Vec<String> {
    list(value).iter().filter_map(|v| v.pointer(pointer)?.as_str().map(str::to_string)).collect()
}
