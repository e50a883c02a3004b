//! Checks on rendered values that the API server or kubelet would otherwise refuse only at
//! apply time, half-way through a deploy: node ports (in Kubernetes' default range, and
//! each used by one Service only across the whole bundle) and `hostPath` paths (absolute).
//! They run on the rendered objects, so they see exactly what templates made of the
//! options, and only where a value takes effect (a node port of a ClusterIP Service is
//! never rendered).

use std::collections::BTreeMap;

use serde_json::Value;

use super::RenderedObject;
use crate::charm::ConfigValue;
use crate::diag::{Problem, Problems};
use crate::resolve::{Application, Model};

/// Kubernetes' default `--service-node-port-range`.
const NODE_PORTS: std::ops::RangeInclusive<i64> = 30000..=32767;

pub(super) fn check(model: &Model, objects: &[RenderedObject], problems: &mut Problems) {
    // node port → the first Service using it (application, Service name).
    let mut taken: BTreeMap<i64, (&str, &str)> = BTreeMap::new();
    for o in objects {
        let Some(app) = model.applications.get(&o.app) else { continue };
        let file = format!("{}/{}", app.charm.origin.path().display(), o.template);
        if o.kind() == "Service" {
            let ports = o.object["spec"]["ports"].as_array().into_iter().flatten();
            for (i, port) in ports.enumerate() {
                let Some(node_port) = port.get("nodePort").filter(|p| !p.is_null()) else {
                    continue;
                };
                let key = format!(
                    "application {}: Service {}: spec.ports[{i}].nodePort",
                    o.app,
                    o.name()
                );
                let Some(n) = node_port.as_i64().filter(|n| *n != 0) else {
                    if node_port.as_i64() != Some(0) {
                        problems.push(Problem::new(&file, key, "a node port must be a number"));
                    }
                    continue;
                };
                if !NODE_PORTS.contains(&n) {
                    problems.push(
                        Problem::new(
                            &file,
                            key,
                            format!(
                                "node port {n} is outside {}-{}",
                                NODE_PORTS.start(),
                                NODE_PORTS.end()
                            ),
                        )
                        .hint(set_by(
                            app,
                            &ConfigValue::Int(n),
                            "a port from 30000 to 32767 (0: Kubernetes picks one)",
                        )),
                    );
                    continue;
                }
                match taken.get(&n) {
                    // Twice in the same Service is render::validate's (one object's rule).
                    Some((other_app, other)) if (*other_app, *other) != (o.app.as_str(), o.name()) => {
                        problems.push(
                            Problem::new(
                                &file,
                                key,
                                format!("node port {n} is also used by Service {other} of application {other_app}"),
                            )
                            .hint(set_by(app, &ConfigValue::Int(n), "another free node port")),
                        )
                    }
                    _ => {
                        taken.insert(n, (&o.app, o.name()));
                    }
                }
            }
        }
        let mut paths = Vec::new();
        collect_host_paths(&o.object, &mut paths);
        for path in paths {
            if !path.starts_with('/') {
                problems.push(
                    Problem::new(
                        &file,
                        format!("application {}: {} {}: hostPath.path", o.app, o.kind(), o.name()),
                        format!("host path {path:?} is not absolute"),
                    )
                    .hint(set_by(
                        app,
                        &ConfigValue::String(path.to_string()),
                        "an absolute path on the node, e.g. /var/lib/data",
                    )),
                );
            }
        }
    }
}

/// A hint naming the options whose value is `value` (where a bad rendered value most
/// likely came from), and what to set instead.
pub(super) fn set_by(app: &Application, value: &ConfigValue, instead: &str) -> String {
    let options: Vec<String> = app
        .config
        .iter()
        .filter(|(_, s)| &s.value == value)
        .map(|(name, s)| format!("{}.{name} (from {})", app.name, s.source))
        .collect();
    if options.is_empty() {
        format!("use {instead}")
    } else {
        format!("set {} to {instead}", options.join(" or "))
    }
}

fn collect_host_paths<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if key == "hostPath" {
                    if let Some(path) = child.get("path").and_then(Value::as_str) {
                        found.push(path);
                    }
                }
                collect_host_paths(child, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_host_paths(i, found)),
        _ => {}
    }
}
