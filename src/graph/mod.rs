//! Drawings of a resolved bundle: applications (charm, version, scale), relations labelled
//! with their interfaces, and how the bundle is exposed outside the cluster — as Graphviz
//! DOT ([`dot`]) or as a self-contained SVG with its own layered layout ([`svg`]), for
//! operators' docs on machines without Graphviz. Both are pure and deterministic.
//!
//! Arrows point from the requiring end of a relation to the providing end, labelled with the
//! interface and the ports the providing endpoint publishes (`port`, `*-port`, a URL's port).
//! Given the rendered objects ([`reach`]), each box shows the application's NodePort and
//! LoadBalancer Services with their ports (node ports where fixed), the host names its
//! gateway accepts and the routes that reach it; an application with such a Service, or
//! routed by an Ingress or HTTPRoute, gets an arrow from an "outside the cluster" node.
//! Without them (a bundle of Juju operator charms is not rendered), the Service type option
//! (`gateway_service_type`, or any option named `*service_type`) and `*node_port*` options
//! stand in. With `network-policies: relations` each box says whom the application admits.

mod layout;
mod reach;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use crate::bundle::NetworkPolicies;
use crate::charm::{ConfigValue, Role};
use crate::render::Manifests;
use crate::resolve::Model;

pub use layout::svg;

/// The id of the node standing for clients outside the cluster.
const OUTSIDE: &str = "outside the cluster";

/// What the drawings show, read off the model once.
#[derive(Debug, Clone, PartialEq)]
struct Diagram {
    title: String,
    /// Applications, by name.
    apps: BTreeMap<String, AppNode>,
    /// Relations as arrows, one per relation, sorted.
    edges: Vec<Edge>,
}

/// One application box.
#[derive(Debug, Clone, PartialEq)]
struct AppNode {
    /// Lines of text: name, charm and version, scale, exposure.
    lines: Vec<String>,
    /// The Service type when it is reachable from outside (`LoadBalancer`, `NodePort ...`).
    external: Option<String>,
}

/// A relation arrow from the requiring application to the providing one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Edge {
    from: String,
    to: String,
    /// The interface, and the ports the providing endpoint publishes: `mongodb_client :27017`.
    label: String,
    /// `app:endpoint → app:endpoint (interface)`, and the ports.
    detail: String,
}

impl Diagram {
    fn new(model: &Model, manifests: Option<&Manifests>) -> Diagram {
        let reach = manifests.map(reach::reach);
        let apps = model
            .applications
            .iter()
            .map(|(name, app)| {
                let mut lines = vec![
                    name.clone(),
                    format!("charm {} {}", app.charm.name(), app.charm.version_label()),
                    format!("scale {}", app.scale),
                ];
                let external = match &reach {
                    Some(reach) => {
                        let reach = reach.get(name).cloned().unwrap_or_default();
                        reached(&reach, &mut lines)
                    }
                    None => configured_exposure(&app.config, &mut lines),
                };
                if model.network_policies == NetworkPolicies::Relations {
                    lines.push(
                        if external.is_some() {
                            "admits: related apps, outside on exposed ports"
                        } else {
                            "admits: related apps only"
                        }
                        .to_string(),
                    );
                }
                (name.clone(), AppNode { lines, external })
            })
            .collect();
        let mut edges: Vec<Edge> = model
            .relations
            .iter()
            .filter(|r| r.a.0 != r.b.0)
            .map(|r| {
                let role = |(app, endpoint): &(String, String)| {
                    model
                        .applications
                        .get(app)
                        .and_then(|a| a.charm.metadata.endpoint(endpoint))
                        .map(|(role, _)| role)
                };
                let (from, to) =
                    if role(&r.b) == Some(Role::Requires) && role(&r.a) != Some(Role::Requires) {
                        (&r.b, &r.a)
                    } else {
                        (&r.a, &r.b)
                    };
                // What the providing end publishes to the requiring one.
                let ports: BTreeSet<u16> = model
                    .applications
                    .get(&from.0)
                    .and_then(|a| a.relation_data.get(&from.1))
                    .into_iter()
                    .flatten()
                    .filter(|d| d.app == to.0 && d.endpoint == to.1)
                    .flat_map(|d| d.published_ports())
                    .collect();
                let ports = if ports.is_empty() {
                    String::new()
                } else {
                    let ports: Vec<String> = ports.iter().map(|p| format!(":{p}")).collect();
                    format!(" {}", ports.join(" "))
                };
                Edge {
                    from: from.0.clone(),
                    to: to.0.clone(),
                    label: format!("{}{ports}", r.interface),
                    detail: format!(
                        "{}:{} → {}:{} ({}){ports}",
                        from.0, from.1, to.0, to.1, r.interface
                    ),
                }
            })
            .collect();
        edges.sort();
        let policies = match model.network_policies {
            NetworkPolicies::Relations => ", network policies: relations",
            NetworkPolicies::None => "",
        };
        Diagram {
            title: format!("bundle {} (namespace {}{policies})", model.name, model.namespace),
            apps,
            edges,
        }
    }
}

/// Adds what the rendered objects say about reaching an application to its box's lines;
/// returns the label of its arrow from outside the cluster, if it is reachable from there.
fn reached(reach: &reach::Reach, lines: &mut Vec<String>) -> Option<String> {
    lines.extend(reach.services.iter().map(reach::ExposedService::describe));
    if !reach.hosts.is_empty() {
        lines.push(format!("hosts: {}", reach.hosts.join(", ")));
    }
    lines.extend(reach.routes.iter().cloned());
    let mut entries: Vec<String> =
        reach.services.iter().map(reach::ExposedService::entry).collect();
    if reach.routed_from_outside {
        entries.push("Ingress".to_string());
    }
    (!entries.is_empty()).then(|| entries.join("; "))
}

/// Without rendered objects: the Service type the application's config asks for, and its
/// fixed node ports, added to its box's lines; returns the label of its arrow from outside
/// the cluster for `LoadBalancer` and `NodePort`.
fn configured_exposure(
    config: &BTreeMap<String, crate::resolve::Setting>,
    lines: &mut Vec<String>,
) -> Option<String> {
    let (kind, ports) = exposure(config)?;
    let listed = if ports.is_empty() { String::new() } else { format!(" ({})", ports.join(", ")) };
    lines.push(format!("Service {kind}{listed}"));
    (kind == "LoadBalancer" || kind == "NodePort").then(|| {
        if ports.is_empty() {
            kind.clone()
        } else {
            format!("{kind} {}", ports.join(", "))
        }
    })
}

/// The Service type an application's config asks for, and its fixed node ports: the
/// option `gateway_service_type` or one named `*service_type`, and int options named
/// `*node_port*` / `*nodeport*` (non-zero).
fn exposure(config: &BTreeMap<String, crate::resolve::Setting>) -> Option<(String, Vec<String>)> {
    let kind = ["gateway_service_type", "service_type"]
        .iter()
        .filter_map(|k| config.get(*k))
        .chain(config.iter().filter(|(k, _)| k.ends_with("service_type")).map(|(_, s)| s))
        .find_map(|s| match &s.value {
            ConfigValue::String(v) if !v.is_empty() => Some(v.clone()),
            _ => None,
        })?;
    let ports = if kind == "NodePort" {
        config
            .iter()
            .filter(|(k, _)| k.contains("node_port") || k.contains("nodeport"))
            .filter_map(|(_, s)| match s.value {
                ConfigValue::Int(port) if port != 0 => Some(port.to_string()),
                _ => None,
            })
            .collect()
    } else {
        Vec::new()
    };
    Some((kind, ports))
}

/// The bundle as a Graphviz DOT digraph; `manifests`, its rendered objects, give the
/// hosts, routes and exposed ports (see the module docs).
pub fn dot(model: &Model, manifests: Option<&Manifests>) -> String {
    let d = Diagram::new(model, manifests);
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(out, "digraph {} {{", quote(&model.name));
    let _ = writeln!(
        out,
        "  graph [rankdir=TB, labelloc=t, fontname=\"sans-serif\", label={}];",
        quote(&d.title)
    );
    let _ = writeln!(out, "  node [shape=box, style=rounded, fontname=\"sans-serif\"];");
    let _ = writeln!(out, "  edge [fontname=\"sans-serif\", fontsize=10];");
    if d.apps.values().any(|a| a.external.is_some()) {
        let _ = writeln!(out, "  {} [shape=ellipse, style=dashed];", quote(OUTSIDE));
    }
    for (name, app) in &d.apps {
        let _ = writeln!(out, "  {} [label={}];", quote(name), quote(&app.lines.join("\n")));
    }
    for (name, app) in &d.apps {
        if let Some(external) = &app.external {
            let _ = writeln!(
                out,
                "  {} -> {} [style=dashed, label={}];",
                quote(OUTSIDE),
                quote(name),
                quote(external)
            );
        }
    }
    for e in &d.edges {
        let _ = writeln!(
            out,
            "  {} -> {} [label={}, tooltip={}];",
            quote(&e.from),
            quote(&e.to),
            quote(&e.label),
            quote(&e.detail)
        );
    }
    out.push_str("}\n");
    out
}

/// A DOT double-quoted string (`\n` becomes a centred line break).
fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::sync::Arc;

    use super::*;
    use crate::charm::{Charm, CharmFile, Origin};
    use crate::resolve::{Application, Relation, Setting, Source};

    fn charm(name: &str, version: &str, metadata: &str) -> Arc<Charm> {
        let mut files = BTreeMap::new();
        let file = |text: String| CharmFile { data: text.into_bytes(), executable: false };
        files.insert("metadata.yaml".to_string(), file(format!("name: {name}\n{metadata}")));
        files.insert("version".to_string(), file(version.to_string()));
        Arc::new(Charm::from_files(files, Origin::Dir(PathBuf::from(name))).unwrap())
    }

    fn app(
        name: &str,
        charm: Arc<Charm>,
        scale: u32,
        config: &[(&str, ConfigValue)],
    ) -> (String, Application) {
        let config = config
            .iter()
            .map(|(k, v)| (k.to_string(), Setting { value: v.clone(), source: Source::Default }))
            .collect();
        let app = Application {
            name: name.to_string(),
            charm,
            scale,
            trust: false,
            channel: None,
            constraints: None,
            config,
            images: BTreeMap::new(),
            config_images: BTreeMap::new(),
            relation_data: BTreeMap::new(),
            required_secrets: Vec::new(),
        };
        (name.to_string(), app)
    }

    fn relation(a: (&str, &str), b: (&str, &str), interface: &str) -> Relation {
        let (a, b) = if a <= b { (a, b) } else { (b, a) };
        Relation {
            a: (a.0.into(), a.1.into()),
            b: (b.0.into(), b.1.into()),
            interface: interface.into(),
        }
    }

    /// The ai-appstore shape: gateway → frontend → backend → mongodb, gateway exposed.
    pub(crate) fn appstore(service_type: &str) -> Model {
        let gateway = charm("istio-gateway", "1.17.0", "requires:\n  ingress: {interface: http}\n");
        let frontend = charm(
            "frontend",
            "1.0.0",
            "provides:\n  web: {interface: http}\nrequires:\n  api: {interface: http-api}\n",
        );
        let backend = charm("backend", "2.3.1", "provides:\n  api: {interface: http-api}\nrequires:\n  database: {interface: mongodb_client}\n");
        let mongodb =
            charm("mongodb", "6.0.0", "provides:\n  database: {interface: mongodb_client}\n");
        let applications = [
            app(
                "istio-gateway",
                gateway,
                1,
                &[("gateway_service_type", ConfigValue::String(service_type.into()))],
            ),
            app("frontend", frontend, 2, &[]),
            app("backend", backend, 3, &[]),
            app("mongodb", mongodb, 1, &[]),
        ]
        .into_iter()
        .collect();
        let mut relations = vec![
            relation(("istio-gateway", "ingress"), ("frontend", "web"), "http"),
            relation(("frontend", "api"), ("backend", "api"), "http-api"),
            relation(("backend", "database"), ("mongodb", "database"), "mongodb_client"),
        ];
        relations.sort();
        Model {
            name: "ai-appstore".into(),
            bundle_file: "bundle.yaml".into(),
            namespace: "apps".into(),
            registry: None,
            applications,
            relations,
            network_policies: Default::default(),
        }
    }

    #[test]
    fn dot_shows_network_policies_when_relations_become_policies() {
        let mut model = appstore("LoadBalancer");
        assert!(!dot(&model, None).contains("admits"), "mode none: nothing to show");
        model.network_policies = NetworkPolicies::Relations;
        let text = dot(&model, None);
        assert!(text.contains("network policies: relations"), "{text}");
        assert!(text.contains("admits: related apps, outside on exposed ports"), "{text}");
        assert!(text.contains("admits: related apps only"), "{text}");
    }

    #[test]
    fn dot_shows_apps_relations_and_exposure() {
        let text = dot(&appstore("LoadBalancer"), None);
        assert!(text.starts_with("digraph \"ai-appstore\" {\n"), "{text}");
        assert!(
            text.contains("  \"backend\" [label=\"backend\\ncharm backend 2.3.1\\nscale 3\"];"),
            "{text}"
        );
        assert!(text.contains("  \"istio-gateway\" [label=\"istio-gateway\\ncharm istio-gateway 1.17.0\\nscale 1\\nService LoadBalancer\"];"), "{text}");
        assert!(text.contains("  \"backend\" -> \"mongodb\" [label=\"mongodb_client\", tooltip=\"backend:database → mongodb:database (mongodb_client)\"];"), "{text}");
        assert!(text.contains("  \"istio-gateway\" -> \"frontend\" [label=\"http\""), "{text}");
        assert!(text.contains("  \"outside the cluster\" -> \"istio-gateway\" [style=dashed, label=\"LoadBalancer\"];"), "{text}");
        assert_eq!(text, dot(&appstore("LoadBalancer"), None));
    }

    #[test]
    fn cluster_internal_services_have_no_outside_arrow_and_node_ports_are_shown() {
        let text = dot(&appstore("ClusterIP"), None);
        assert!(!text.contains(OUTSIDE), "{text}");
        assert!(text.contains("Service ClusterIP"), "{text}");

        let hivemq = charm("hivemq", "2024.3.0", "");
        let config = [
            ("service_type", ConfigValue::String("NodePort".into())),
            ("mqtt_node_port", ConfigValue::Int(30135)),
            ("web_node_port", ConfigValue::Int(30134)),
        ];
        let model = Model {
            name: "iot".into(),
            bundle_file: "bundle.yaml".into(),
            namespace: "iot".into(),
            registry: None,
            applications: [app("hivemq", hivemq, 1, &config)].into_iter().collect(),
            relations: vec![],
            network_policies: Default::default(),
        };
        let text = dot(&model, None);
        assert!(text.contains("Service NodePort (30135, 30134)"), "{text}");
        assert!(
            text.contains("-> \"hivemq\" [style=dashed, label=\"NodePort 30135, 30134\"]"),
            "{text}"
        );
    }

    fn rendered(app: &str, object: serde_json::Value) -> crate::render::RenderedObject {
        crate::render::RenderedObject { app: app.into(), template: "t.yaml".into(), object }
    }

    /// The appstore as rendered: the gateway's NodePort Service (one node port fixed), its
    /// Gateway's hosts and VirtualService routes, an Ingress and an HTTPRoute to backend.
    fn appstore_rendered() -> Manifests {
        let service = |name: &str, kind: &str, ports: serde_json::Value| {
            serde_json::json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                               "spec": {"type": kind, "ports": ports}})
        };
        let objects = vec![
            rendered("backend", service("backend", "ClusterIP", serde_json::json!([{"port": 80}]))),
            rendered(
                "frontend",
                service("frontend", "ClusterIP", serde_json::json!([{"port": 80}])),
            ),
            rendered(
                "istio-gateway",
                service(
                    "istio-gateway",
                    "NodePort",
                    serde_json::json!([{"name": "http2", "port": 80, "nodePort": 30080}, {"name": "https", "port": 443}]),
                ),
            ),
            rendered(
                "istio-gateway",
                serde_json::json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "Gateway",
                    "metadata": {"name": "istio-gateway"},
                    "spec": {"servers": [{"hosts": ["web.example.com", "api.example.com"]}, {"hosts": ["web.example.com"]}]}}),
            ),
            rendered(
                "istio-gateway",
                serde_json::json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
                "metadata": {"name": "istio-gateway"},
                "spec": {"hosts": ["web.example.com"], "http": [
                    {"match": [{"uri": {"prefix": "/"}}], "route": [{"destination": {"host": "frontend.apps.svc.cluster.local"}}]},
                    {"match": [{"uri": {"prefix": "/x/"}}], "route": [{"destination": {"host": "elsewhere.other.svc.cluster.local"}}]}
                ]}}),
            ),
            rendered(
                "backend",
                serde_json::json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                    "metadata": {"name": "backend"},
                    "spec": {"rules": [{"host": "api.example.com", "http": {"paths": [
                        {"path": "/v1", "backend": {"service": {"name": "backend"}}}]}}]}}),
            ),
            rendered(
                "backend",
                serde_json::json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                    "metadata": {"name": "backend"},
                    "spec": {"rules": [{"backendRefs": [{"name": "backend.apps"}]}]}}),
            ),
        ];
        Manifests { bundle: "ai-appstore".into(), namespace: "apps".into(), objects }
    }

    #[test]
    fn rendered_objects_give_hosts_routes_and_ports() {
        let model = appstore("LoadBalancer");
        let text = dot(&model, Some(&appstore_rendered()));
        assert!(
            text.contains("  \"istio-gateway\" [label=\"istio-gateway\\ncharm istio-gateway 1.17.0\\nscale 1\\nService NodePort: http2 80 (node 30080), https 443\\nhosts: api.example.com, web.example.com\"];"),
            "the rendered Service wins over the option; hosts once each, sorted: {text}"
        );
        assert!(
            text.contains("-> \"istio-gateway\" [style=dashed, label=\"NodePort 30080 + 1 picked by Kubernetes\"]"),
            "{text}"
        );
        assert!(text.contains("\\nvia istio-gateway: web.example.com/\"];"), "{text}");
        assert!(
            text.contains(
                "\\nHTTPRoute backend: / (any host)\\nIngress backend: api.example.com/v1\"];"
            ),
            "{text}"
        );
        assert!(text.contains("-> \"backend\" [style=dashed, label=\"Ingress\"]"), "{text}");
        assert!(
            !text.contains("elsewhere") && !text.contains("/x/"),
            "another namespace's: {text}"
        );
        assert!(!text.contains("-> \"mongodb\" [style=dashed"), "{text}");
    }

    #[test]
    fn relation_arrows_carry_the_ports_the_provider_publishes() {
        let mut model = appstore("LoadBalancer");
        let data =
            |app: &str, endpoint: &str, pairs: &[(&str, &str)]| crate::resolve::RelationData {
                app: app.into(),
                endpoint: endpoint.into(),
                interface: "i".into(),
                data: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            };
        let backend = model.applications.get_mut("backend").unwrap();
        backend.relation_data.insert(
            "database".into(),
            vec![data("mongodb", "database", &[("host", "mongodb.apps"), ("port", "27017")])],
        );
        let frontend = model.applications.get_mut("frontend").unwrap();
        frontend.relation_data.insert(
            "api".into(),
            vec![data(
                "backend",
                "api",
                &[("url", "http://backend.apps.svc:8080/v1"), ("metrics-port", "9090")],
            )],
        );
        let text = dot(&model, None);
        assert!(
            text.contains("\"backend\" -> \"mongodb\" [label=\"mongodb_client :27017\", tooltip=\"backend:database → mongodb:database (mongodb_client) :27017\"];"),
            "{text}"
        );
        assert!(
            text.contains("\"frontend\" -> \"backend\" [label=\"http-api :8080 :9090\""),
            "{text}"
        );
        assert!(
            text.contains("\"istio-gateway\" -> \"frontend\" [label=\"http\", "),
            "nothing published: {text}"
        );
    }

    #[test]
    fn quotes_are_escaped() {
        assert_eq!(quote("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
    }
}
