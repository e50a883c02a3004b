//! Drawings of a resolved bundle: applications (charm, version, scale), relations labelled
//! with their interfaces, and how the bundle is exposed outside the cluster — as Graphviz
//! DOT ([`dot`]) or as a self-contained SVG with its own layered layout ([`svg`]), for
//! operators' docs on machines without Graphviz. Both are pure and deterministic.
//!
//! Arrows point from the requiring end of a relation to the providing end. An application
//! whose Service type option (`gateway_service_type`, or any option named `*service_type`)
//! is `LoadBalancer` or `NodePort` gets an arrow from an "outside the cluster" node.

mod layout;

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::charm::{ConfigValue, Role};
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
    interface: String,
    /// `app:endpoint → app:endpoint`.
    detail: String,
}

impl Diagram {
    fn new(model: &Model) -> Diagram {
        let apps = model
            .applications
            .iter()
            .map(|(name, app)| {
                let mut lines = vec![
                    name.clone(),
                    format!("charm {} {}", app.charm.name(), app.charm.version_label()),
                    format!("scale {}", app.scale),
                ];
                let exposure = exposure(&app.config);
                let external = exposure
                    .as_ref()
                    .filter(|(kind, _)| kind == "LoadBalancer" || kind == "NodePort")
                    .map(|(kind, ports)| {
                        if ports.is_empty() {
                            kind.clone()
                        } else {
                            format!("{kind} {}", ports.join(", "))
                        }
                    });
                if let Some((kind, ports)) = &exposure {
                    let ports = if ports.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", ports.join(", "))
                    };
                    lines.push(format!("Service {kind}{ports}"));
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
                Edge {
                    from: from.0.clone(),
                    to: to.0.clone(),
                    interface: r.interface.clone(),
                    detail: format!("{}:{} → {}:{} ({})", from.0, from.1, to.0, to.1, r.interface),
                }
            })
            .collect();
        edges.sort();
        Diagram {
            title: format!("bundle {} (namespace {})", model.name, model.namespace),
            apps,
            edges,
        }
    }
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

/// The bundle as a Graphviz DOT digraph.
pub fn dot(model: &Model) -> String {
    let d = Diagram::new(model);
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
            quote(&e.interface),
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
        }
    }

    #[test]
    fn dot_shows_apps_relations_and_exposure() {
        let text = dot(&appstore("LoadBalancer"));
        assert!(text.starts_with("digraph \"ai-appstore\" {\n"), "{text}");
        assert!(
            text.contains("  \"backend\" [label=\"backend\\ncharm backend 2.3.1\\nscale 3\"];"),
            "{text}"
        );
        assert!(text.contains("  \"istio-gateway\" [label=\"istio-gateway\\ncharm istio-gateway 1.17.0\\nscale 1\\nService LoadBalancer\"];"), "{text}");
        assert!(text.contains("  \"backend\" -> \"mongodb\" [label=\"mongodb_client\", tooltip=\"backend:database → mongodb:database (mongodb_client)\"];"), "{text}");
        assert!(text.contains("  \"istio-gateway\" -> \"frontend\" [label=\"http\""), "{text}");
        assert!(text.contains("  \"outside the cluster\" -> \"istio-gateway\" [style=dashed, label=\"LoadBalancer\"];"), "{text}");
        assert_eq!(text, dot(&appstore("LoadBalancer")));
    }

    #[test]
    fn cluster_internal_services_have_no_outside_arrow_and_node_ports_are_shown() {
        let text = dot(&appstore("ClusterIP"));
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
        };
        let text = dot(&model);
        assert!(text.contains("Service NodePort (30135, 30134)"), "{text}");
        assert!(
            text.contains("-> \"hivemq\" [style=dashed, label=\"NodePort 30135, 30134\"]"),
            "{text}"
        );
    }

    #[test]
    fn quotes_are_escaped() {
        assert_eq!(quote("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
    }
}
