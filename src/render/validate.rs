//! Offline validation of every rendered object, before anything is written or applied: what
//! the API server would refuse, found while the option that produced the value can still be
//! named.
//!
//! The approach, and why:
//! - Kubernetes' own kinds are read into k8s-openapi's typed structs (the API of the newest
//!   Kubernetes charmer builds against) and written back: a field of the wrong type or a
//!   missing required field fails the read (with its path, through serde_path_to_error), and a
//!   field the round trip drops is a field the API does not have (what `kubectl apply
//!   --validate=strict` refuses). This needs no schema files in the repository and follows
//!   Kubernetes releases with the k8s-openapi crate the deploy stage already uses.
//! - The typed structs do not carry the API server's value rules, so those are written out in
//!   [`crate::kube_rules`] and applied here: object names, label and annotation keys and
//!   values, quantities, ports and port names, duplicate ports and node ports in one object,
//!   container names, selectors that match their pod template.
//! - The custom resources charmer's charms render (Istio `Gateway` and `VirtualService`,
//!   Knative `Service`) are checked against closed shapes written from their published
//!   schemas (istio/api's CRDs, Knative's `Service` types): required fields, value types,
//!   enums, and no unknown field; the embedded pod spec of a Knative Service is checked as a
//!   Kubernetes pod spec. Shipping the CRD schemas themselves would add megabytes of YAML
//!   and a JSON-schema engine for the few fields charms use.
//!   Other custom resources are left to the cluster (charmer cannot know their schemas).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::values::set_by;
use super::RenderedObject;
use crate::charm::ConfigValue;
use crate::diag::{Problem, Problems};
use crate::kube_rules as rules;
use crate::resolve::Application;

/// One problem in one object: the field and what is wrong; `value` is the rendered value an
/// option may have produced (for the hint), `instead` what to give.
struct Finding {
    field: String,
    message: String,
    value: Option<ConfigValue>,
    instead: &'static str,
}

impl Finding {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Finding {
        Finding { field: field.into(), message: message.into(), value: None, instead: "" }
    }

    fn set_by_option(mut self, value: &Value, instead: &'static str) -> Finding {
        self.value = match value {
            Value::String(s) => Some(ConfigValue::String(s.clone())),
            Value::Number(n) => n.as_i64().map(ConfigValue::Int),
            _ => None,
        };
        self.instead = instead;
        self
    }
}

/// Validates the objects of one application.
pub(super) fn check(app: &Application, objects: &[RenderedObject], problems: &mut Problems) {
    for o in objects {
        let mut found = Vec::new();
        check_object(&o.object, &mut found);
        let file = format!("{}/{}", app.charm.origin.path().display(), o.template);
        for f in found {
            let key = format!("application {}: {} {}: {}", o.app, o.kind(), o.name(), f.field);
            let problem = Problem::new(&file, key, f.message);
            problems.push(match &f.value {
                Some(value) if !f.instead.is_empty() => problem.hint(set_by(app, value, f.instead)),
                _ => problem,
            });
        }
    }
}

fn check_object(o: &Value, found: &mut Vec<Finding>) {
    let api = o["apiVersion"].as_str().unwrap_or_default();
    let kind = o["kind"].as_str().unwrap_or_default();
    check_metadata(kind, &o["metadata"], "metadata", found);
    match typed(api, kind, o) {
        Some(problems) => found.extend(problems),
        None if is_kubernetes_group(api) => found.push(Finding::new(
            "apiVersion",
            format!("{api} {kind} is not served by Kubernetes (the API charmer validates against: k8s-openapi's newest)"),
        )),
        None => {}
    }
    match (api, kind) {
        ("networking.istio.io/v1" | "networking.istio.io/v1beta1", "Gateway") => {
            check_shape(&o["spec"], &gateway_shape(), "spec", found)
        }
        ("networking.istio.io/v1" | "networking.istio.io/v1beta1", "VirtualService") => {
            check_shape(&o["spec"], &virtual_service_shape(), "spec", found)
        }
        ("serving.knative.dev/v1", "Service") => {
            check_shape(&o["spec"], &knative_shape(), "spec", found);
            let pod = &o["spec"]["template"]["spec"];
            if pod.is_object() {
                // Knative's RevisionSpec is a Kubernetes pod spec plus its own fields.
                let mut pod_only = pod.clone();
                if let Some(fields) = pod_only.as_object_mut() {
                    for (field, _) in REVISION_FIELDS {
                        fields.remove(*field);
                    }
                }
                let revision: serde_json::Map<String, Value> = REVISION_FIELDS
                    .iter()
                    .map(|(f, t)| ((*f).to_string(), Value::String((*t).to_string())))
                    .collect();
                let given: serde_json::Map<String, Value> = pod
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| revision.contains_key(*k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                check_shape(
                    &Value::Object(given),
                    &Value::Object(revision),
                    "spec.template.spec",
                    found,
                );
                let spec: Result<k8s_openapi::api::core::v1::PodSpec, _> = round_trip(&pod_only);
                found.extend(spec.err().into_iter().flatten().map(|mut f| {
                    f.field = format!("spec.template.spec.{}", f.field);
                    f
                }));
                check_pod(pod, "spec.template.spec", false, found);
            }
        }
        _ => {}
    }
    match kind {
        "Service" if api == "v1" => check_service(&o["spec"], found),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" if api == "apps/v1" => {
            check_selector(o, found)
        }
        _ => {}
    }
    if let Some(pod) = pod_spec(o) {
        let at = if kind == "CronJob" {
            "spec.jobTemplate.spec.template.spec"
        } else {
            "spec.template.spec"
        };
        check_pod(pod, at, true, found);
    }
    check_quantities(o, "", found);
}

/// Groups the API server serves itself (not custom resources).
fn is_kubernetes_group(api: &str) -> bool {
    let group = crate::contract::group_of(api);
    group.is_empty()
        || (group.ends_with(".k8s.io") && !group.ends_with(".x-k8s.io"))
        || matches!(group, "apps" | "batch" | "policy" | "autoscaling")
}

/// Reads `o` into the k8s-openapi type of its kind and writes it back; `None` for a kind
/// k8s-openapi does not have.
fn typed(api: &str, kind: &str, o: &Value) -> Option<Vec<Finding>> {
    use k8s_openapi::api::{apps, autoscaling, batch, core, networking, policy, rbac, storage};
    fn one<T>(api: &str, kind: &str, o: &Value) -> Option<Vec<Finding>>
    where
        T: k8s_openapi::Resource + serde::de::DeserializeOwned + serde::Serialize,
    {
        (T::API_VERSION == api && T::KIND == kind)
            .then(|| round_trip::<T>(o).err().unwrap_or_default())
    }
    None.or_else(|| one::<core::v1::ServiceAccount>(api, kind, o))
        .or_else(|| one::<core::v1::ConfigMap>(api, kind, o))
        .or_else(|| one::<core::v1::Secret>(api, kind, o))
        .or_else(|| one::<core::v1::Service>(api, kind, o))
        .or_else(|| one::<core::v1::PersistentVolumeClaim>(api, kind, o))
        .or_else(|| one::<core::v1::PersistentVolume>(api, kind, o))
        .or_else(|| one::<core::v1::Pod>(api, kind, o))
        .or_else(|| one::<core::v1::Namespace>(api, kind, o))
        .or_else(|| one::<core::v1::Endpoints>(api, kind, o))
        .or_else(|| one::<core::v1::LimitRange>(api, kind, o))
        .or_else(|| one::<core::v1::ResourceQuota>(api, kind, o))
        .or_else(|| one::<apps::v1::Deployment>(api, kind, o))
        .or_else(|| one::<apps::v1::StatefulSet>(api, kind, o))
        .or_else(|| one::<apps::v1::DaemonSet>(api, kind, o))
        .or_else(|| one::<batch::v1::Job>(api, kind, o))
        .or_else(|| one::<batch::v1::CronJob>(api, kind, o))
        .or_else(|| one::<networking::v1::NetworkPolicy>(api, kind, o))
        .or_else(|| one::<networking::v1::Ingress>(api, kind, o))
        .or_else(|| one::<rbac::v1::Role>(api, kind, o))
        .or_else(|| one::<rbac::v1::RoleBinding>(api, kind, o))
        .or_else(|| one::<rbac::v1::ClusterRole>(api, kind, o))
        .or_else(|| one::<rbac::v1::ClusterRoleBinding>(api, kind, o))
        .or_else(|| one::<policy::v1::PodDisruptionBudget>(api, kind, o))
        .or_else(|| one::<autoscaling::v2::HorizontalPodAutoscaler>(api, kind, o))
        .or_else(|| one::<storage::v1::StorageClass>(api, kind, o))
}

/// The typed read and write-back of `value` as `T`: its type errors, else the fields the
/// write-back lost (fields `T` does not have).
fn round_trip<T>(value: &Value) -> Result<T, Vec<Finding>>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let typed: T = serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        vec![Finding::new(if field == "." { String::new() } else { field }, e.inner().to_string())]
    })?;
    let back = serde_json::to_value(&typed).unwrap_or(Value::Null);
    let mut found = Vec::new();
    unknown_fields(value, &back, "", &mut found);
    match found.is_empty() {
        true => Ok(typed),
        false => Err(found),
    }
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    }
}

fn unknown_fields(given: &Value, back: &Value, at: &str, found: &mut Vec<Finding>) {
    match (given, back) {
        (Value::Object(g), Value::Object(b)) => {
            for (key, value) in g {
                match b.get(key) {
                    Some(v) => unknown_fields(value, v, &join(at, key), found),
                    None if value.is_null() => {}
                    None => found.push(Finding::new(join(at, key), "unknown field")),
                }
            }
        }
        (Value::Array(g), Value::Array(b)) => {
            for (i, (value, v)) in g.iter().zip(b).enumerate() {
                unknown_fields(value, v, &format!("{at}[{i}]"), found);
            }
        }
        _ => {}
    }
}

/// The name rule of each kind (the API server's `ValidateObjectMeta` name functions).
fn check_metadata(kind: &str, meta: &Value, at: &str, found: &mut Vec<Finding>) {
    if let Some(name) = meta["name"].as_str() {
        let problem = match kind {
            // Services get DNS records named after them; Namespaces likewise.
            "Service" if at == "metadata" => (!rules::is_dns1035_label(name)).then(|| {
                format!("{name:?} is not a valid Service name (a DNS-1035 label: at most 63 lowercase letters, digits and '-', starting with a letter)")
            }),
            "Namespace" => rules::dns_label_problem(name),
            _ => rules::dns_subdomain_problem(name),
        };
        if let Some(message) = problem {
            found.push(
                Finding::new(format!("{at}.name"), message)
                    .set_by_option(&meta["name"], "a lowercase name (letters, digits, '-')"),
            );
        }
    }
    check_labels(&meta["labels"], &format!("{at}.labels"), true, found);
    check_labels(&meta["annotations"], &format!("{at}.annotations"), false, found);
}

fn check_labels(map: &Value, at: &str, values_too: bool, found: &mut Vec<Finding>) {
    let Some(map) = map.as_object() else { return };
    for (key, value) in map {
        if let Some(message) = rules::qualified_name_problem(key) {
            found.push(Finding::new(at, message));
        }
        if let (true, Some(text)) = (values_too, value.as_str()) {
            if let Some(message) = rules::label_value_problem(text) {
                found.push(Finding::new(format!("{at}.{key}"), message).set_by_option(
                    value,
                    "a label value (at most 63 letters, digits, '-', '_', '.')",
                ));
            }
        }
    }
}

/// The pod spec of a workload, where the pod rules apply.
fn pod_spec(o: &Value) -> Option<&Value> {
    let api = o["apiVersion"].as_str().unwrap_or_default();
    match o["kind"].as_str()? {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job"
            if api != "serving.knative.dev/v1" =>
        {
            Some(&o["spec"]["template"]["spec"]).filter(|s| s.is_object())
        }
        "CronJob" => {
            Some(&o["spec"]["jobTemplate"]["spec"]["template"]["spec"]).filter(|s| s.is_object())
        }
        "Pod" => Some(&o["spec"]).filter(|s| s.is_object()),
        _ => None,
    }
}

/// The pod rules; `names_required`: Kubernetes requires container names, Knative does not.
fn check_pod(pod: &Value, at: &str, names_required: bool, found: &mut Vec<Finding>) {
    let mut names = BTreeSet::new();
    if pod["containers"].as_array().is_none_or(Vec::is_empty) {
        found.push(Finding::new(format!("{at}.containers"), "a pod needs at least one container"));
    }
    for list in ["initContainers", "containers"] {
        for (i, c) in pod[list].as_array().into_iter().flatten().enumerate() {
            let here = format!("{at}.{list}[{i}]");
            for field in ["name", "image"] {
                let given = c[field].as_str().is_some_and(|v| !v.is_empty());
                if !given && (field == "image" || names_required) {
                    found.push(Finding::new(format!("{here}.{field}"), "required field missing"));
                }
            }
            if let Some(name) = c["name"].as_str() {
                if let Some(m) = rules::dns_label_problem(name) {
                    found.push(Finding::new(format!("{here}.name"), m));
                }
                if !names.insert(name) {
                    found.push(Finding::new(
                        format!("{here}.name"),
                        format!("container name {name:?} is used twice in the pod"),
                    ));
                }
            }
            let mut port_names = BTreeSet::new();
            for (j, p) in c["ports"].as_array().into_iter().flatten().enumerate() {
                let field = format!("{here}.ports[{j}]");
                if let Some(n) = p["containerPort"].as_i64() {
                    if let Some(m) = rules::port_problem(n) {
                        found.push(
                            Finding::new(format!("{field}.containerPort"), m)
                                .set_by_option(&p["containerPort"], "a port from 1 to 65535"),
                        );
                    }
                }
                if let Some(name) = p["name"].as_str() {
                    if let Some(m) = rules::port_name_problem(name) {
                        found.push(Finding::new(format!("{field}.name"), m));
                    }
                    if !port_names.insert(name) {
                        found.push(Finding::new(
                            format!("{field}.name"),
                            format!("port name {name:?} is used twice in the container"),
                        ));
                    }
                }
            }
        }
    }
}

/// The API server's Service rules: ports in range, a name on each port when there are
/// several, no port (with its protocol), name or node port twice.
fn check_service(spec: &Value, found: &mut Vec<Finding>) {
    let ports: Vec<&Value> = spec["ports"].as_array().into_iter().flatten().collect();
    let mut seen_ports: BTreeMap<(i64, &str), usize> = BTreeMap::new();
    let mut seen_names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut seen_node_ports: BTreeMap<i64, usize> = BTreeMap::new();
    for (i, p) in ports.iter().enumerate() {
        let at = format!("spec.ports[{i}]");
        let protocol = p["protocol"].as_str().unwrap_or("TCP");
        if let Some(n) = p["port"].as_i64() {
            if let Some(m) = rules::port_problem(n) {
                found.push(
                    Finding::new(format!("{at}.port"), m)
                        .set_by_option(&p["port"], "a port from 1 to 65535"),
                );
            } else if let Some(j) = seen_ports.insert((n, protocol), i) {
                found.push(
                    Finding::new(
                        format!("{at}.port"),
                        format!("port {n}/{protocol} is also spec.ports[{j}]"),
                    )
                    .set_by_option(&p["port"], "another port"),
                );
            }
        }
        match &p["targetPort"] {
            Value::Number(n) => {
                if let Some(m) = n.as_i64().and_then(rules::port_problem) {
                    found.push(
                        Finding::new(format!("{at}.targetPort"), m)
                            .set_by_option(&p["targetPort"], "a port from 1 to 65535"),
                    );
                }
            }
            Value::String(name) => {
                if let Some(m) = rules::port_name_problem(name) {
                    found.push(Finding::new(format!("{at}.targetPort"), m));
                }
            }
            _ => {}
        }
        match p["name"].as_str() {
            Some(name) => {
                if let Some(j) = seen_names.insert(name, i) {
                    found.push(Finding::new(
                        format!("{at}.name"),
                        format!("port name {name:?} is also spec.ports[{j}]'s"),
                    ));
                }
                if let Some(m) = rules::dns_label_problem(name) {
                    found.push(Finding::new(format!("{at}.name"), m));
                }
            }
            None if ports.len() > 1 => found.push(Finding::new(
                format!("{at}.name"),
                "a Service with several ports must name each",
            )),
            None => {}
        }
        if let Some(n) = p["nodePort"].as_i64().filter(|n| *n != 0) {
            if let Some(j) = seen_node_ports.insert(n, i) {
                found.push(
                    Finding::new(format!("{at}.nodePort"), format!("node port {n} is also spec.ports[{j}]'s in this Service (the API server answers \"provided port is already allocated\")"))
                        .set_by_option(&p["nodePort"], "another free node port"),
                );
            }
        }
    }
}

/// A workload's selector must select its own pod template (`selector does not match template
/// labels`).
fn check_selector(o: &Value, found: &mut Vec<Finding>) {
    let Some(selector) = o["spec"]["selector"]["matchLabels"].as_object() else { return };
    let labels = &o["spec"]["template"]["metadata"]["labels"];
    for (key, value) in selector {
        if &labels[key] != value {
            found.push(Finding::new(
                format!("spec.selector.matchLabels.{key}"),
                format!("the selector does not match the pod template's labels ({key}: {value} is not among them)"),
            ));
        }
    }
}

/// Every quantity: container `resources`, a claim's `resources.requests`, a volume's
/// `capacity`, an emptyDir's `sizeLimit`, a quota's `hard`.
fn check_quantities(value: &Value, at: &str, found: &mut Vec<Finding>) {
    let Value::Object(map) = value else {
        if let Value::Array(items) = value {
            for (i, item) in items.iter().enumerate() {
                check_quantities(item, &format!("{at}[{i}]"), found);
            }
        }
        return;
    };
    for (key, child) in map {
        let here = join(at, key);
        match key.as_str() {
            "requests" | "limits" | "capacity" | "hard"
                if at.ends_with("resources") || key == "capacity" || key == "hard" =>
            {
                for (resource, q) in child.as_object().into_iter().flatten() {
                    check_quantity(q, &format!("{here}.{resource}"), found);
                }
            }
            "sizeLimit" => check_quantity(child, &here, found),
            _ => check_quantities(child, &here, found),
        }
    }
}

fn check_quantity(q: &Value, at: &str, found: &mut Vec<Finding>) {
    let text = match q {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return,
    };
    if let Err(m) = rules::parse_quantity(&text) {
        found.push(
            Finding::new(at, m).set_by_option(q, "a Kubernetes quantity such as 512Mi or 250m"),
        );
    }
}

/// A closed shape: objects list their fields (`!` = required; any other field is unknown), a
/// one-element array is "a list of", a longer array of strings is an enum, and the leaves are
/// "string", "int", "port", "bool", "map" (string to string), "duration", "host" or "any".
fn check_shape(value: &Value, shape: &Value, at: &str, found: &mut Vec<Finding>) {
    match shape {
        Value::Object(fields) => {
            let Some(object) = value.as_object() else {
                return found.push(Finding::new(at, "expected an object"));
            };
            for key in object.keys() {
                if !fields.contains_key(key) && !fields.contains_key(&format!("!{key}")) {
                    found.push(Finding::new(join(at, key), "unknown field"));
                }
            }
            for (key, sub) in fields {
                let (required, key) = match key.strip_prefix('!') {
                    Some(k) => (true, k),
                    None => (false, key.as_str()),
                };
                match object.get(key) {
                    Some(v) if !v.is_null() => check_shape(v, sub, &join(at, key), found),
                    _ if required => {
                        found.push(Finding::new(join(at, key), "required field missing"))
                    }
                    _ => {}
                }
            }
        }
        Value::Array(one) if one.len() == 1 => match value.as_array() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    check_shape(item, &one[0], &format!("{at}[{i}]"), found);
                }
            }
            None => found.push(Finding::new(at, "expected a list")),
        },
        Value::Array(allowed) if !allowed.contains(value) => {
            let list: Vec<String> = allowed.iter().map(ToString::to_string).collect();
            found.push(Finding::new(at, format!("{value} is not one of {}", list.join(", "))));
        }
        Value::String(leaf) => {
            let problem = match (leaf.as_str(), value) {
                ("any", _) => None,
                ("string", Value::String(_)) | ("bool", Value::Bool(_)) => None,
                ("int", Value::Number(n)) if n.is_i64() => None,
                ("port", Value::Number(n)) => n
                    .as_i64()
                    .and_then(rules::port_problem)
                    .or_else(|| (!n.is_i64()).then(|| "expected an integer".into())),
                ("duration", Value::String(s)) => rules::parse_duration(s).err(),
                ("host", Value::String(h)) => {
                    // Istio hosts: `*`, `*.domain`, `namespace/host` in Gateways.
                    let bare = match h.split_once('/') {
                        Some((ns, host)) if ns == "*" || ns == "." || rules::is_dns_label(ns) => {
                            host
                        }
                        _ => h.as_str(),
                    };
                    let bare = bare.strip_prefix("*.").unwrap_or(bare);
                    (bare != "*").then(|| rules::hostname_problem(bare)).flatten()
                }
                ("map", Value::Object(m)) => {
                    m.values().any(|v| !v.is_string()).then(|| "expected a map of strings".into())
                }
                (leaf, _) => Some(format!("expected {leaf}, got {value}")),
            };
            if let Some(message) = problem {
                let instead = match leaf.as_str() {
                    "host" => "a bare host name such as web.example.com",
                    "port" => "a port from 1 to 65535",
                    "duration" => "a duration such as 30s",
                    _ => "",
                };
                found.push(Finding::new(at, message).set_by_option(value, instead));
            }
        }
        _ => {}
    }
}

/// The fields Knative's RevisionSpec adds to a pod spec, with their shape.
const REVISION_FIELDS: &[(&str, &str)] = &[
    ("containerConcurrency", "int"),
    ("timeoutSeconds", "int"),
    ("responseStartTimeoutSeconds", "int"),
    ("idleTimeoutSeconds", "int"),
];

/// `networking.istio.io` Gateway's spec (istio/api networking/v1 gateway.proto).
fn gateway_shape() -> Value {
    serde_json::json!({
        "selector": "map",
        "!servers": [{
            "!port": {"!number": "port", "!protocol": ["HTTP", "HTTPS", "GRPC", "GRPC-WEB", "HTTP2", "MONGO", "TCP", "TLS"], "!name": "string", "targetPort": "port"},
            "!hosts": ["host"],
            "bind": "string", "defaultEndpoint": "string", "name": "string",
            "tls": {
                "httpsRedirect": "bool",
                "mode": ["PASSTHROUGH", "SIMPLE", "MUTUAL", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL"],
                "serverCertificate": "string", "privateKey": "string", "caCertificates": "string", "caCrl": "string",
                "credentialName": "string", "credentialNames": ["string"], "subjectAltNames": ["string"],
                "verifyCertificateSpki": ["string"], "verifyCertificateHash": ["string"],
                "minProtocolVersion": ["TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3"],
                "maxProtocolVersion": ["TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3"],
                "cipherSuites": ["string"]
            }
        }]
    })
}

/// `networking.istio.io` VirtualService's spec (istio/api networking/v1 virtual_service.proto);
/// the rarely used subtrees (fault injection, CORS, mirrors, tls/tcp routes) are "any".
fn virtual_service_shape() -> Value {
    let string_match =
        serde_json::json!({"exact": "string", "prefix": "string", "regex": "string"});
    let destination =
        serde_json::json!({"!host": "string", "subset": "string", "port": {"number": "port"}});
    let headers = serde_json::json!({"request": {"set": "map", "add": "map", "remove": ["string"]}, "response": {"set": "map", "add": "map", "remove": ["string"]}});
    serde_json::json!({
        "hosts": ["host"], "gateways": ["string"], "exportTo": ["string"],
        "http": [{
            "name": "string",
            "match": [{
                "name": "string", "uri": string_match, "scheme": string_match, "method": string_match,
                "authority": string_match, "headers": "any", "port": "port", "sourceLabels": "map",
                "gateways": ["string"], "queryParams": "any", "ignoreUriCase": "bool",
                "withoutHeaders": "any", "sourceNamespace": "string", "statPrefix": "string"
            }],
            "route": [{"!destination": destination, "weight": "int", "headers": headers}],
            "redirect": "any", "directResponse": "any", "delegate": {"name": "string", "namespace": "string"},
            "rewrite": {"uri": "string", "authority": "string", "uriRegexRewrite": {"match": "string", "rewrite": "string"}},
            "timeout": "duration",
            "retries": {"attempts": "int", "perTryTimeout": "duration", "retryOn": "string", "retryRemoteLocalities": "bool"},
            "fault": "any", "mirror": "any", "mirrors": "any", "mirrorPercentage": "any", "mirror_percent": "any",
            "corsPolicy": "any", "headers": headers
        }],
        "tls": "any", "tcp": "any"
    })
}

/// Knative `serving.knative.dev/v1` Service's spec (knative/serving's ServiceSpec: a
/// RevisionTemplateSpec and traffic targets); the pod spec is checked as a Kubernetes one.
fn knative_shape() -> Value {
    serde_json::json!({
        "!template": {
            "metadata": {"name": "string", "labels": "map", "annotations": "map"},
            "!spec": "any"
        },
        "traffic": [{
            "tag": "string", "revisionName": "string", "configurationName": "string",
            "latestRevision": "bool", "percent": "int", "url": "string"
        }]
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn problems(o: Value) -> Vec<String> {
        let mut found = Vec::new();
        check_object(&o, &mut found);
        found.into_iter().map(|f| format!("{}: {}", f.field, f.message)).collect()
    }

    fn deployment(container: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
               "spec": {"selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": [container]}}}})
    }

    #[test]
    fn a_valid_deployment_passes() {
        let c = json!({"name": "main", "image": "nginx:1", "ports": [{"containerPort": 8080, "name": "http"}],
                       "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}});
        assert_eq!(problems(deployment(c)), Vec::<String>::new());
    }

    #[test]
    fn types_unknown_fields_and_missing_fields_are_found_with_their_path() {
        let c = json!({"name": "main", "image": "nginx:1", "imagePullPolicy": "Always", "imagePulPolicy": "x"});
        assert_eq!(
            problems(deployment(c)),
            ["spec.template.spec.containers[0].imagePulPolicy: unknown field"]
        );
        let c = json!({"name": "main", "image": "nginx:1", "ports": [{"containerPort": "8080"}]});
        let got = problems(deployment(c));
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with(
                "spec.template.spec.containers[0].ports[0].containerPort: invalid type: string"
            ),
            "{got:?}"
        );
        let c = json!({"image": "nginx:1"});
        assert_eq!(
            problems(deployment(c)),
            ["spec.template.spec.containers[0].name: required field missing"]
        );
    }

    #[test]
    fn the_api_servers_value_rules_apply() {
        let c = json!({"name": "Main", "image": "nginx:1", "ports": [{"containerPort": 70000}],
                       "resources": {"limits": {"memory": "512MB"}}});
        let got = problems(deployment(c));
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].starts_with(
            "spec.template.spec.containers[0].name: \"Main\" is not a DNS-1123 label"
        ));
        assert_eq!(got[1], "spec.template.spec.containers[0].ports[0].containerPort: 70000 is not a port (1-65535)");
        assert!(got[2].starts_with("spec.template.spec.containers[0].resources.limits.memory: \"512MB\" is not a Kubernetes quantity"));
        let mut bad = deployment(json!({"name": "main", "image": "nginx:1"}));
        bad["metadata"]["name"] = json!("istio-gateway-https://web.appstore.ai/");
        bad["spec"]["selector"]["matchLabels"]["app"] = json!("other");
        bad["metadata"]["labels"]["bad key"] = json!("x");
        let got = problems(bad);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].starts_with(
            "metadata.name: \"istio-gateway-https://web.appstore.ai/\" is not a DNS-1123 subdomain"
        ));
        assert!(got[1].starts_with("metadata.labels: key \"bad key\""));
        assert!(got[2].starts_with("spec.selector.matchLabels.app: the selector does not match"));
    }

    #[test]
    fn a_node_port_twice_in_one_service_is_found() {
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hivemq"},
            "spec": {"type": "NodePort", "ports": [
                {"name": "mqtt", "port": 1883, "nodePort": 30135},
                {"name": "ws", "port": 8000, "nodePort": 30135},
                {"port": 8000}]}});
        assert_eq!(
            problems(svc),
            [
                "spec.ports[1].nodePort: node port 30135 is also spec.ports[0]'s in this Service (the API server answers \"provided port is already allocated\")",
                "spec.ports[2].port: port 8000/TCP is also spec.ports[1]",
                "spec.ports[2].name: a Service with several ports must name each",
            ]
        );
    }

    #[test]
    fn istio_and_knative_objects_are_checked_against_their_schemas() {
        let vs = json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
            "metadata": {"name": "web"},
            "spec": {"hosts": ["https://web.appstore.ai/"], "http": [{"route": [{"destination": {"host": "web", "port": {"number": 80}}}], "timout": "5s"}]}});
        let got = problems(vs);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0]
            .starts_with("spec.hosts[0]: \"https://web.appstore.ai/\" is not a bare host name"));
        assert_eq!(got[1], "spec.http[0].timout: unknown field");
        let ksvc = json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {"name": "serve"},
            "spec": {"template": {"spec": {"containers": [{"image": "x", "ports": [{"containerPort": 8080}], "resources": {"limits": {"memory": "2GB"}}}]}}, "trafic": []}});
        let got = problems(ksvc);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0], "spec.trafic: unknown field");
        assert!(got[1].contains("memory: \"2GB\" is not a Kubernetes quantity"), "{got:?}");
    }

    #[test]
    fn kinds_kubernetes_no_longer_serves_are_refused() {
        let pdb = json!({"apiVersion": "policy/v1beta1", "kind": "PodDisruptionBudget", "metadata": {"name": "web"}, "spec": {}});
        assert!(problems(pdb)[0].starts_with(
            "apiVersion: policy/v1beta1 PodDisruptionBudget is not served by Kubernetes"
        ));
        let other = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"anything": 1}});
        assert_eq!(problems(other), Vec::<String>::new());
    }
}
