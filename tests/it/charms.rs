//! The seven charms under charms/ and the bundles under bundles/, through the real CLI: each
//! bundle renders with and without --registry; every object passes the official Kubernetes
//! schemas (kubernetes-validate --strict) or, for the Istio and Knative kinds those schemas do
//! not know, the closed shapes below; overrides change what they should and nothing else;
//! relation data reaches the requiring charms; workloads are hardened and probed; and the
//! rendered output matches the reviewed snapshots in tests/it/snapshots/.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use serde_json::{json, Value};

/// A self-signed P-256 CA certificate made for these tests (valid until 2126): `ca_cert`
/// takes certificates only, parsed.
pub(crate) const TEST_CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBjDCCATGgAwIBAgIULj9tQ0qIx2RY97hsqsscf26UOacwCgYIKoZIzj0EAwIw\nGjEYMBYGA1UEAwwPY2hhcm1lciB0ZXN0IENBMCAXDTI2MTIwNjA1MTk1NloYDzIx\nMjYxMTEyMDUxOTU2WjAaMRgwFgYDVQQDDA9jaGFybWVyIHRlc3QgQ0EwWTATBgcq\nhkjOPQIBBggqhkjOPQMBBwNCAAQnFaVdG7PrlYZGtHX5x+4jurLJpAT4+c6pvtnI\n6xtVkcZPV2ZiNgsgqTH9k7T5/tYZpcFd8o4jIXv65ozcLP9bo1MwUTAdBgNVHQ4E\nFgQUhN3xn8NMdGONeWUswAEENjPVy2cwHwYDVR0jBBgwFoAUhN3xn8NMdGONeWUs\nwAEENjPVy2cwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNJADBGAiEAreGt\nHmnRPStyjog2XjBOmX63HWT4P7k7ubJ8JkqbfyYCIQDKeyNL8KN9WVP2YCt/wADr\nd3MxfUQPAxS5mPyc7GG/Qw==\n-----END CERTIFICATE-----\n";

const BUNDLES: [&str; 4] = ["ai-appstore", "mlops", "iot", "full"];
const REGISTRY: &str = "10.0.0.5:5000/mirror";
/// The oldest and newest Kubernetes versions kubernetes-validate ships schemas for: the
/// manifests must be valid on both.
pub(crate) const KUBERNETES_VERSIONS: [&str; 2] = ["1.25.0", "1.37.0"];
/// The renders kept as snapshots: each bundle, and the option-dependent branches of each
/// charm (the other variants differ from these only in image references or one field).
const SNAPSHOTS: [&str; 7] =
    ["ai-appstore", "ai-appstore-options", "mlops", "mlops-options", "iot", "iot-options", "full"];
/// Set to 1 to rewrite the snapshots from the current output (then review the diff).
const UPDATE_SNAPSHOTS: &str = "CHARMER_UPDATE_SNAPSHOTS";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn charmer(args: &[&str]) -> Output {
    Command::cargo_bin("charmer").unwrap().current_dir(root()).args(args).output().unwrap()
}

/// `charmer render ARGS` to stdout; the YAML stream.
pub(crate) fn render(args: &[&str]) -> String {
    let out = charmer(&[&["render"], args].concat());
    assert!(
        out.status.success(),
        "charmer render {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub(crate) fn objects(stream: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(stream)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// Objects by (app instance label, kind, name), for comparing two renders.
fn by_identity(objects: &[Value]) -> BTreeMap<(String, String, String), Value> {
    objects
        .iter()
        .map(|o| {
            let app = o["metadata"]["labels"]["app.kubernetes.io/instance"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            ((app, o["kind"].as_str().unwrap().to_string(), name(o).to_string()), o.clone())
        })
        .collect()
}

fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

pub(crate) fn find<'a>(
    objects: &'a [Value],
    api_version: &str,
    kind: &str,
    name_: &str,
) -> &'a Value {
    objects
        .iter()
        .find(|o| o["apiVersion"] == api_version && o["kind"] == kind && name(o) == name_)
        .unwrap_or_else(|| panic!("no {api_version} {kind} {name_}"))
}

/// The pod template of a workload (Deployment, StatefulSet, Knative Service).
fn pod_template(o: &Value) -> Option<&Value> {
    match (o["apiVersion"].as_str()?, o["kind"].as_str()?) {
        ("apps/v1", "Deployment" | "StatefulSet" | "DaemonSet")
        | ("serving.knative.dev/v1", "Service") => Some(&o["spec"]["template"]),
        _ => None,
    }
}

fn containers(pod: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers"]
        .into_iter()
        .flat_map(move |k| pod["spec"][k].as_array().into_iter().flatten())
}

fn env<'a>(container: &'a Value, var: &str) -> &'a Value {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == var)
        .unwrap_or_else(|| panic!("no env {var} in {}", container["name"]))
}

/// The renders every schema test covers: each bundle with and without --registry, plus the
/// option-dependent branches (hostPath storage, CA certificate, host names, TLS, Knative, S3,
/// external stores, egress, no persistence).
fn variants() -> Vec<(String, Vec<String>)> {
    let mut v: Vec<(String, Vec<String>)> = Vec::new();
    for b in BUNDLES {
        v.push((b.to_string(), vec![format!("bundles/{b}")]));
        v.push((
            format!("{b}-registry"),
            vec![format!("bundles/{b}"), "--registry".into(), REGISTRY.into()],
        ));
    }
    let with = |bundle: &str, config: &[&str]| -> Vec<String> {
        let mut args = vec![format!("bundles/{bundle}")];
        for c in config {
            args.push("--config".into());
            args.push(c.to_string());
        }
        args
    };
    v.push((
        "ai-appstore-options".into(),
        with(
            "ai-appstore",
            &[
                "mongodb.host_path=/bitnami/mongodb",
                "mongodb.host_path_node=node-1",
                "mongodb.cache_size_gb=0.5",
                &format!("backend.ca_cert={TEST_CA}"),
                "backend.extra_env_secret=aas-settings",
                "backend.cors_origins=https://web.appstore.ai",
                "backend.hostname=api.appstore.ai",
                "frontend.hostname=web.appstore.ai",
                "istio-gateway.tls_secret=appstore-tls",
                "istio-gateway.gateway_service_type=NodePort",
                "istio-gateway.http_node_port=30080",
                "frontend.image_pull_secret=registry-login",
                "frontend.replicas=1",
            ],
        ),
    ));
    v.push((
        "mlops-options".into(),
        with(
            "mlops",
            &[
                "serving.backend=knative",
                "serving.model_alias=champion",
                "serving.extra_env_secret=serving-s3",
                "mlflow.artifact_store=s3",
                "mlflow.s3_endpoint_url=http://minio.storage:9000",
                "mlflow.s3_credentials_secret=mlflow-s3",
                "mlflow.backend_store_uri_secret=mlflow-db",
                "mlflow.s3_ignore_tls=true",
                "mlflow.replicas=2",
            ],
        ),
    ));
    v.push((
        "iot-options".into(),
        with(
            "iot",
            &[
                "hivemq.service_type=ClusterIP",
                "hivemq.persistence=false",
                "hivemq.allow_all_clients=false",
            ],
        ),
    ));
    v.push((
        "iot-host-path".into(),
        with("iot", &["hivemq.host_path=/var/lib/hivemq-data", "hivemq.host_path_node=node-1"]),
    ));
    v.push(("mlops-host-path".into(), with("mlops", &["mlflow.host_path=/var/lib/mlflow-data"])));
    v.push((
        "egress".into(),
        with(
            "ai-appstore",
            &[
                "istio-gateway.kind=egress",
                "istio-gateway.gateway_service_type=ClusterIP",
                "istio-gateway.hosts=pypi.internal, git.internal",
            ],
        ),
    ));
    let mut overlay = vec![
        "bundles/full".to_string(),
        "--overlay".into(),
        "bundles/full/overlays/nodeport.yaml".into(),
    ];
    overlay.extend(["--registry".to_string(), REGISTRY.to_string()]);
    v.push(("full-nodeport-registry".into(), overlay));
    for environment in ["local", "production"] {
        let overlay = format!("bundles/mlops/overlays/{environment}.yaml");
        v.push((
            format!("mlops-{environment}"),
            vec!["bundles/mlops".into(), "--overlay".into(), overlay],
        ));
    }
    v
}

#[test]
fn every_bundle_renders_and_passes_the_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let mut failures = Vec::new();
    for (label, args) in variants() {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let rendered = objects(&render(&args));
        assert!(!rendered.is_empty(), "{label}: nothing rendered");
        if args.contains(&"--registry") {
            for o in &rendered {
                for c in pod_template(o).into_iter().flat_map(containers) {
                    let image = c["image"].as_str().unwrap();
                    assert!(
                        image.starts_with(&format!("{REGISTRY}/")),
                        "{label}: {} {}: image {image} is not relocated",
                        o["kind"],
                        name(o)
                    );
                }
            }
        }
        let mut core = Vec::new();
        for o in &rendered {
            match custom_kind_problems(o, &rendered) {
                Some(problems) => {
                    failures.extend(
                        problems
                            .into_iter()
                            .map(|p| format!("{label}: {} {}: {p}", o["kind"], name(o))),
                    );
                    // A Knative Service's pod is a Kubernetes pod: validate it as one.
                    if o["apiVersion"] == "serving.knative.dev/v1" {
                        core.push(knative_pod(o));
                    }
                }
                None => core.push(o.clone()),
            }
        }
        let file = dir.path().join(format!("{label}.yaml"));
        let stream: String =
            core.iter().map(|o| format!("---\n{}", serde_yaml::to_string(o).unwrap())).collect();
        std::fs::write(&file, stream).unwrap();
        files.push(file);
    }
    assert!(
        failures.is_empty(),
        "Istio/Knative objects do not fit their shapes:\n{}",
        failures.join("\n")
    );
    if !crate::support::tools_present(&["kubernetes-validate"]) {
        return;
    }
    for version in KUBERNETES_VERSIONS {
        validate(&files, version);
    }
}

/// Runs kubernetes-validate once over every file. An unknown kind is only a warning to it,
/// so that fails here too.
pub(crate) fn validate(files: &[PathBuf], version: &str) {
    let out = std::process::Command::new("kubernetes-validate")
        .args(["--strict", "--quiet", "-k", version])
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("kubernetes-validate: {e}"));
    let report =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success()
            && !report.contains("ERROR")
            && !report.contains("Couldn't find schema"),
        "kubernetes-validate --strict -k {version}:\n{report}"
    );
}

/// The Knative Service's revision template as the Pod Knative makes of it — Knative-only
/// fields dropped, probes aimed at the serving port as Knative defaults them — so
/// kubernetes-validate checks every container field.
fn knative_pod(service: &Value) -> Value {
    let mut spec = service["spec"]["template"]["spec"].clone();
    for knative_only in [
        "containerConcurrency",
        "timeoutSeconds",
        "responseStartTimeoutSeconds",
        "idleTimeoutSeconds",
    ] {
        spec.as_object_mut().unwrap().remove(knative_only);
    }
    for container in spec["containers"].as_array_mut().into_iter().flatten() {
        let port = container["ports"][0]["containerPort"].clone();
        for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
            if let Some(get) = container[probe]["httpGet"].as_object_mut() {
                get.entry("port").or_insert(port.clone());
            }
        }
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name(service), "labels": service["spec"]["template"]["metadata"]["labels"]}, "spec": spec})
}

/// Problems of an object of a kind the official schemas do not know; None for other kinds.
fn custom_kind_problems(o: &Value, all: &[Value]) -> Option<Vec<String>> {
    let mut problems = Vec::new();
    let shape = match (o["apiVersion"].as_str()?, o["kind"].as_str()?) {
        ("networking.istio.io/v1beta1", "Gateway") => {
            gateway_selects_a_proxy(o, all, &mut problems);
            json!({"!selector": "map", "!servers": [{
                "!port": {"!number": "port", "!name": "string", "!protocol": ["HTTP", "HTTPS", "HTTP2", "GRPC", "TCP", "TLS", "MONGO"]},
                "!hosts": ["string"],
                "tls": {"httpsRedirect": "bool", "mode": ["SIMPLE", "MUTUAL", "PASSTHROUGH", "ISTIO_MUTUAL"], "credentialName": "string"}
            }]})
        }
        ("networking.istio.io/v1beta1", "VirtualService") => {
            routes_reach_rendered_services(o, all, &mut problems);
            json!({"!hosts": ["string"], "gateways": ["string"], "!http": [{
                "name": "string",
                "match": [{"uri": {"prefix": "string", "exact": "string"}}],
                "rewrite": {"uri": "string"},
                "!route": [{"!destination": {"!host": "string", "port": {"!number": "port"}}, "weight": "int"}]
            }]})
        }
        ("serving.knative.dev/v1", "Service") => {
            // Knative's own rules (pkg/apis/serving/k8s_validation.go): one port across all
            // containers, on the serving container; the others (sidecars) take no probes.
            let spec = &o["spec"]["template"]["spec"];
            let list = spec["containers"].as_array().cloned().unwrap_or_default();
            let ports: usize =
                list.iter().map(|c| c["ports"].as_array().map(Vec::len).unwrap_or(0)).sum();
            if list.is_empty() || ports != 1 {
                problems.push(format!(
                    "Knative serves exactly one port across its containers, got {ports}"
                ));
            }
            for sidecar in list.iter().filter(|c| c["ports"].is_null()) {
                for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                    if !sidecar[probe].is_null() {
                        problems.push(format!(
                            "Knative refuses {probe} on sidecar {}",
                            sidecar["name"]
                        ));
                    }
                }
            }
            json!({"!template": {
                "!metadata": {"labels": "map", "annotations": "map"},
                "!spec": {"serviceAccountName": "string", "enableServiceLinks": "bool", "containerConcurrency": "int",
                          "timeoutSeconds": "int", "imagePullSecrets": [{"!name": "string"}], "!containers": "any"}
            }})
        }
        _ => return None,
    };
    check_shape(&o["spec"], &shape, "spec", &mut problems);
    let metadata =
        json!({"!name": "string", "!namespace": "string", "!labels": "map", "annotations": "map"});
    check_shape(&o["metadata"], &metadata, "metadata", &mut problems);
    Some(problems)
}

/// A closed shape: objects list their keys (`!` = required; any other key is a problem), a
/// one-element array is "a list of", a longer array of strings is an enum, and the leaves
/// are "string", "int", "port", "bool", "map" (string to string) or "any".
fn check_shape(value: &Value, shape: &Value, at: &str, problems: &mut Vec<String>) {
    match shape {
        Value::Object(fields) => {
            let Some(object) = value.as_object() else {
                return problems.push(format!("{at}: expected an object, got {value}"));
            };
            for key in object.keys() {
                if !fields.contains_key(key) && !fields.contains_key(&format!("!{key}")) {
                    problems.push(format!("{at}.{key}: unknown field"));
                }
            }
            for (key, sub) in fields {
                let (required, key) = match key.strip_prefix('!') {
                    Some(k) => (true, k),
                    None => (false, key.as_str()),
                };
                match object.get(key) {
                    Some(v) => check_shape(v, sub, &format!("{at}.{key}"), problems),
                    None if required => problems.push(format!("{at}.{key}: missing")),
                    None => {}
                }
            }
        }
        Value::Array(items) if items.len() == 1 => match value.as_array() {
            Some(list) if !list.is_empty() => {
                for (i, item) in list.iter().enumerate() {
                    check_shape(item, &items[0], &format!("{at}[{i}]"), problems);
                }
            }
            _ => problems.push(format!("{at}: expected a non-empty list, got {value}")),
        },
        Value::Array(allowed) => {
            if !allowed.contains(value) {
                problems
                    .push(format!("{at}: {value} is not one of {}", Value::Array(allowed.clone())));
            }
        }
        Value::String(leaf) => {
            let fits = match leaf.as_str() {
                "string" => value.is_string(),
                "int" => value.is_i64(),
                "port" => value.as_i64().is_some_and(|p| (1..=65535).contains(&p)),
                "bool" => value.is_boolean(),
                "map" => value.as_object().is_some_and(|m| m.values().all(Value::is_string)),
                _ => true,
            };
            if !fits {
                problems.push(format!("{at}: expected {leaf}, got {value}"));
            }
        }
        _ => unreachable!("shapes are objects, arrays or strings"),
    }
}

/// An Istio Gateway is useless unless its selector matches the gateway proxy's pods.
fn gateway_selects_a_proxy(gateway: &Value, all: &[Value], problems: &mut Vec<String>) {
    let Some(selector) = gateway["spec"]["selector"].as_object() else { return };
    let selected = all
        .iter()
        .filter_map(pod_template)
        .any(|pod| selector.iter().all(|(k, v)| &pod["metadata"]["labels"][k] == v));
    if !selected {
        problems
            .push(format!("selector {} matches no rendered pod", Value::Object(selector.clone())));
    }
}

/// Every VirtualService must be bound to a rendered Gateway and route to rendered Services on
/// ports they expose.
fn routes_reach_rendered_services(vs: &Value, all: &[Value], problems: &mut Vec<String>) {
    let namespace = vs["metadata"]["namespace"].as_str().unwrap_or_default();
    for gateway in vs["spec"]["gateways"].as_array().into_iter().flatten() {
        if !all.iter().any(|o| o["kind"] == "Gateway" && o["metadata"]["name"] == *gateway) {
            problems.push(format!("gateway {gateway} is not rendered"));
        }
    }
    let destinations = vs["spec"]["http"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|h| h["route"].as_array().into_iter().flatten());
    for d in destinations.map(|r| &r["destination"]) {
        let host = d["host"].as_str().unwrap_or_default();
        let port = &d["port"]["number"];
        let service = host.strip_suffix(&format!(".{namespace}.svc.cluster.local")).unwrap_or(host);
        let found = all.iter().any(|o| {
            o["apiVersion"] == "v1"
                && o["kind"] == "Service"
                && name(o) == service
                && o["spec"]["ports"].as_array().into_iter().flatten().any(|p| &p["port"] == port)
        });
        if !found {
            problems.push(format!("routes to {host}:{port}, which is not a rendered Service port"));
        }
    }
}

#[test]
fn the_gateway_service_type_override_changes_the_service_type_and_nothing_else() {
    let before = by_identity(&objects(&render(&["bundles/full"])));
    let after = by_identity(&objects(&render(&[
        "bundles/full",
        "--config",
        "istio-gateway.gateway_service_type=NodePort",
    ])));
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "the same objects are rendered"
    );
    let changed: Vec<_> = before.keys().filter(|k| before[*k] != after[*k]).collect();
    let service = ("istio-gateway".to_string(), "Service".to_string(), "istio-gateway".to_string());
    assert_eq!(changed, vec![&service], "only the gateway's Service changes");
    assert_eq!(before[&service]["spec"]["type"], "LoadBalancer");
    assert_eq!(after[&service]["spec"]["type"], "NodePort");
    let mut reverted = after[&service].clone();
    reverted["spec"]["type"] = json!("LoadBalancer");
    assert_eq!(reverted, before[&service], "nothing but spec.type differs");

    // The overlay of seed 001 does exactly the same.
    let overlay = by_identity(&objects(&render(&[
        "bundles/full",
        "--overlay",
        "bundles/full/overlays/nodeport.yaml",
    ])));
    assert_eq!(overlay, after);
}

#[test]
fn a_wrong_option_value_is_rejected_listing_the_allowed_ones_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let out = charmer(&[
        "render",
        "bundles/full",
        "--config",
        "istio-gateway.gateway_service_type=Ingress",
        "--config",
        "serving.backend=lambda",
        "--out",
        dest.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            r#""Ingress" is not allowed; allowed values: "LoadBalancer", "NodePort", "ClusterIP""#
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(r#""lambda" is not allowed; allowed values: "deployment", "knative""#),
        "{stderr}"
    );
    assert!(!dest.exists(), "nothing is written when an option is invalid");
}

#[test]
fn relation_data_reaches_the_requiring_charms() {
    let all = objects(&render(&["bundles/full", "--namespace", "prod"]));
    let container = |app: &str| {
        pod_template(find(&all, "apps/v1", "Deployment", app)).unwrap()["spec"]["containers"][0]
            .clone()
    };

    // backend ← mongodb: the Service, the database and the application account's Secret.
    let backend = container("backend");
    assert_eq!(
        env(&backend, "PROD_MONGO_DSN")["value"],
        "mongodb://mongodb.prod.svc.cluster.local:27017/appStoreProdDb?authSource=appStoreProdDb"
    );
    assert_eq!(env(&backend, "PROD_DB_NAME")["value"], "appStoreProdDb");
    for (var, key) in [("PROD_MONGO_USERNAME", "username"), ("PROD_MONGO_PASSWORD", "password")] {
        assert_eq!(
            env(&backend, var)["valueFrom"]["secretKeyRef"],
            json!({"name": "mongodb-app-credentials", "key": key})
        );
    }
    let mongo_service = find(&all, "v1", "Service", "mongodb");
    assert_eq!(mongo_service["spec"]["ports"][0]["port"], 27017);
    let credentials = find(&all, "v1", "Secret", "mongodb-app-credentials");
    assert_eq!(credentials["metadata"]["annotations"]["charmer.io/generate"], "password");
    assert_eq!(
        credentials["data"]["username"], "YWFzRGJTZXJ2aWNlQWNjdA==",
        "base64 of aasDbServiceAcct"
    );
    assert!(
        credentials["data"].get("password").is_none(),
        "the password is generated at deploy, never rendered"
    );
    let mongod = &pod_template(find(&all, "apps/v1", "StatefulSet", "mongodb")).unwrap()["spec"]
        ["containers"][0];
    assert_eq!(
        env(mongod, "MONGO_APP_PASSWORD")["valueFrom"]["secretKeyRef"]["name"],
        "mongodb-app-credentials",
        "mongod creates the account the backend logs in with"
    );

    // serving ← mlflow.
    let serving = container("serving");
    assert_eq!(
        env(&serving, "MLFLOW_TRACKING_URI")["value"],
        "http://mlflow.prod.svc.cluster.local:5000"
    );
    assert_eq!(env(&serving, "MLSERVER_MODEL_URI")["value"], "models:/demo-model/Production");
    assert_eq!(find(&all, "v1", "Service", "mlflow")["spec"]["ports"][0]["port"], 5000);

    // frontend ← backend: in-cluster URL for the /api/ proxy, same-origin path for the browser.
    let frontend = container("frontend");
    assert_eq!(env(&frontend, "BACKEND_URL")["value"], "http://backend.prod.svc.cluster.local:80");
    assert_eq!(env(&frontend, "BACKEND_PUBLIC_URL")["value"], "/api");

    // istio-gateway ← frontend, backend: one VirtualService, longest prefix first.
    let vs = find(&all, "networking.istio.io/v1beta1", "VirtualService", "istio-gateway");
    let routes: Vec<(&str, &str)> = vs["spec"]["http"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["match"][0]["uri"]["prefix"].as_str().unwrap(),
                h["route"][0]["destination"]["host"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        routes,
        [("/api/", "backend.prod.svc.cluster.local"), ("/", "frontend.prod.svc.cluster.local")]
    );
    assert_eq!(vs["spec"]["http"][0]["rewrite"]["uri"], "/", "the API is served at / behind /api/");
}

#[test]
fn host_names_give_each_application_its_own_virtual_service() {
    let all = objects(&render(&[
        "bundles/ai-appstore",
        "--config",
        "backend.hostname=api.appstore.ai",
        "--config",
        "frontend.hostname=web.appstore.ai",
    ]));
    let api = find(
        &all,
        "networking.istio.io/v1beta1",
        "VirtualService",
        "istio-gateway-api.appstore.ai",
    );
    assert_eq!(api["spec"]["hosts"], json!(["api.appstore.ai"]));
    assert_eq!(
        api["spec"]["http"][0]["match"][0]["uri"]["prefix"], "/",
        "on its own host the API is at /"
    );
    assert!(api["spec"]["http"][0].get("rewrite").is_none());
    let web = find(
        &all,
        "networking.istio.io/v1beta1",
        "VirtualService",
        "istio-gateway-web.appstore.ai",
    );
    assert_eq!(
        web["spec"]["http"][0]["route"][0]["destination"]["host"],
        "frontend.ai-appstore.svc.cluster.local"
    );
    let gateway = find(&all, "networking.istio.io/v1beta1", "Gateway", "istio-gateway");
    assert_eq!(
        gateway["spec"]["servers"][0]["hosts"],
        json!(["*", "api.appstore.ai", "web.appstore.ai"])
    );
    let frontend = &pod_template(find(&all, "apps/v1", "Deployment", "frontend")).unwrap()["spec"]
        ["containers"][0];
    assert_eq!(
        env(frontend, "BACKEND_PUBLIC_URL")["value"],
        "//api.appstore.ai",
        "the browser calls the API on its host name"
    );
}

#[test]
fn option_dependent_objects_follow_their_options() {
    // Knative: no Deployment or plain Service, a Knative Service that asks for Kubernetes 1.20.
    let knative = objects(&render(&["bundles/mlops", "--config", "serving.backend=knative"]));
    assert!(!knative.iter().any(|o| o["kind"] == "Deployment" && name(o) == "serving"));
    let service = find(&knative, "serving.knative.dev/v1", "Service", "serving");
    assert_eq!(service["metadata"]["annotations"]["charmer.io/min-kubernetes"], "1.20");
    assert!(
        !knative
            .iter()
            .any(|o| o["apiVersion"] == "v1" && o["kind"] == "Service" && name(o) == "serving"),
        "Knative owns the Service of that name"
    );
    let plain = objects(&render(&["bundles/mlops"]));
    assert!(
        !plain
            .iter()
            .any(|o| o["metadata"]["annotations"]["charmer.io/min-kubernetes"].is_string()),
        "the Deployment backend needs no minimum version"
    );

    // hostPath storage: tests/it/host_path_storage.rs.
    let all = objects(&render(&[
        "bundles/ai-appstore",
        "--config",
        &format!("backend.ca_cert={TEST_CA}"),
    ]));

    // ca_cert: a Secret holding the PEM, mounted, and pointed at.
    let ca = find(&all, "v1", "Secret", "backend-ca");
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(TEST_CA);
    assert_eq!(ca["data"]["ca.crt"], encoded.as_str(), "base64 of the option's text");
    let backend = &pod_template(find(&all, "apps/v1", "Deployment", "backend")).unwrap()["spec"];
    assert_eq!(
        env(&backend["containers"][0], "REQUESTS_CA_BUNDLE")["value"],
        "/etc/charmer/ca/ca.crt"
    );
    assert!(backend["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["secret"]["secretName"] == "backend-ca"));
    let without = objects(&render(&["bundles/ai-appstore"]));
    assert!(!without.iter().any(|o| name(o) == "backend-ca"));
}

#[test]
fn workloads_are_hardened_and_probed() {
    let all = objects(&render(&["bundles/full"]));
    let mut knative = objects(&render(&["bundles/mlops", "--config", "serving.backend=knative"]));
    knative.retain(|o| o["apiVersion"] == "serving.knative.dev/v1");
    let mut problems = Vec::new();
    for o in all.iter().chain(&knative) {
        let Some(pod) = pod_template(o) else { continue };
        let what = format!("{} {}", o["kind"], name(o));
        let selector_labels = json!({"app.kubernetes.io/name": pod["metadata"]["labels"]["app.kubernetes.io/name"], "app.kubernetes.io/instance": name(o)});
        if o["apiVersion"] == "apps/v1" && o["spec"]["selector"]["matchLabels"] != selector_labels {
            problems.push(format!("{what}: the selector must be exactly the selector labels"));
        }
        for label in [
            "app.kubernetes.io/part-of",
            "app.kubernetes.io/managed-by",
            "app.kubernetes.io/version",
            "charmer.io/bundle",
        ] {
            if !pod["metadata"]["labels"][label].is_string() {
                problems.push(format!("{what}: the pod template lacks the label {label}"));
            }
        }
        let pod_security = &pod["spec"]["securityContext"];
        for c in containers(pod) {
            let at = format!("{what} container {}", c["name"]);
            let security = &c["securityContext"];
            let setting = |key: &str| {
                if security[key].is_null() {
                    &pod_security[key]
                } else {
                    &security[key]
                }
            };
            // The one root container: chown of a fresh hostPath directory, CHOWN only.
            let chown_only = security["capabilities"]["add"] == json!(["CHOWN"]);
            if setting("runAsNonRoot") != &json!(true) && !chown_only {
                problems.push(format!("{at}: not runAsNonRoot"));
            }
            if setting("seccompProfile") != &json!({"type": "RuntimeDefault"}) {
                problems.push(format!("{at}: seccomp profile is not RuntimeDefault"));
            }
            if security["allowPrivilegeEscalation"] != json!(false)
                || security["capabilities"]["drop"] != json!(["ALL"])
            {
                problems.push(format!(
                    "{at}: must drop ALL capabilities and forbid privilege escalation"
                ));
            }
            if !c["resources"]["requests"]["memory"].is_string()
                || !c["resources"]["limits"]["memory"].is_string()
            {
                problems.push(format!("{at}: needs memory requests and limits"));
            }
            let is_init = pod["spec"]["initContainers"].as_array().is_some_and(|l| l.contains(c));
            // Knative refuses probes on sidecars (containers without the serving port).
            let knative_sidecar =
                o["apiVersion"] == "serving.knative.dev/v1" && c["ports"].is_null();
            if !is_init
                && !knative_sidecar
                && (c["readinessProbe"].is_null() || c["livenessProbe"].is_null())
            {
                problems.push(format!("{at}: needs readiness and liveness probes"));
            }
            if c["image"].as_str().is_some_and(|i| i.ends_with(":latest") || !i.contains(':')) {
                problems.push(format!("{at}: image {} has no explicit tag", c["image"]));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn rendered_bundles_match_the_reviewed_snapshots() {
    let snapshots = root().join("tests/it/snapshots");
    let update = std::env::var(UPDATE_SNAPSHOTS).is_ok_and(|v| v == "1");
    let mut stale = Vec::new();
    for (label, args) in
        variants().into_iter().filter(|(label, _)| SNAPSHOTS.contains(&label.as_str()))
    {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let actual = render(&args);
        let path = snapshots.join(format!("{label}.yaml"));
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        if actual == expected {
            continue;
        }
        if update {
            std::fs::create_dir_all(&snapshots).unwrap();
            std::fs::write(&path, &actual).unwrap();
            eprintln!("rewrote {}", path.display());
            continue;
        }
        let line = actual
            .lines()
            .zip(expected.lines())
            .position(|(a, e)| a != e)
            .unwrap_or_else(|| actual.lines().count().min(expected.lines().count()));
        stale.push(format!(
            "{}: differs from line {}:\n  expected: {:?}\n  actual:   {:?}",
            path.display(),
            line + 1,
            expected.lines().nth(line).unwrap_or("<end>"),
            actual.lines().nth(line).unwrap_or("<end>")
        ));
    }
    assert!(
        stale.is_empty(),
        "rendered output changed; review it and rerun with {UPDATE_SNAPSHOTS}=1 to accept:\n{}",
        stale.join("\n")
    );
}

/// HiveMQ CE 2024.3 is built with `user = "10000"` and no group, its home root-owned 0770/0660:
/// the broker needs group 0. Its run.sh always opens remote JMX; the charm binds it to loopback.
#[test]
fn hivemq_runs_with_group_zero_and_jmx_on_loopback_only() {
    let all = objects(&render(&["bundles/iot"]));
    let pod = pod_template(find(&all, "apps/v1", "Deployment", "hivemq")).unwrap();
    let security = &pod["spec"]["securityContext"];
    assert_eq!(security["runAsUser"], 10000);
    assert_eq!(security["runAsGroup"], 0, "the image's files are group 0, 0770/0660");
    assert_eq!(security["fsGroup"], 0, "volumes writable by the image's group");
    assert_eq!(security["runAsNonRoot"], true);
    let broker = &pod["spec"]["containers"][0];
    let java_opts = env(broker, "JAVA_OPTS")["value"].as_str().unwrap();
    assert!(java_opts.contains("-Dcom.sun.management.jmxremote.host=127.0.0.1"), "{java_opts}");
    let ports = |o: &Value, key: &str| -> Vec<i64> {
        o[key].as_array().unwrap().iter().map(|p| p["port"].as_i64().unwrap()).collect()
    };
    let service = find(&all, "v1", "Service", "hivemq");
    assert!(!ports(&service["spec"], "ports").contains(&9010), "JMX is not a Service port");
}

/// istiod gives a gateway its `credentialName` certificate only if its service account may
/// read Secrets there: with TLS the gateway gets upstream's Role, and only under `trust: true`.
#[test]
fn a_tls_gateway_gets_a_role_to_read_its_secrets_and_needs_trust() {
    let tls = ["bundles/ai-appstore", "--config", "istio-gateway.tls_secret=appstore-tls"];
    let all = objects(&render(&tls));
    let role = find(&all, "rbac.authorization.k8s.io/v1", "Role", "istio-gateway-secrets");
    assert_eq!(
        role["rules"],
        json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "watch", "list"]}])
    );
    let binding =
        find(&all, "rbac.authorization.k8s.io/v1", "RoleBinding", "istio-gateway-secrets");
    assert_eq!(binding["roleRef"]["name"], "istio-gateway-secrets");
    let proxy = find(&all, "apps/v1", "Deployment", "istio-gateway");
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": pod_template(proxy).unwrap()["spec"]["serviceAccountName"], "namespace": "ai-appstore"}])
    );

    let plain = objects(&render(&["bundles/ai-appstore"]));
    assert!(!plain.iter().any(|o| o["kind"] == "Role" || o["kind"] == "RoleBinding"));

    let dir = tempfile::tempdir().unwrap();
    let overlay = dir.path().join("untrusted.yaml");
    std::fs::write(&overlay, "applications:\n  istio-gateway:\n    trust: false\n").unwrap();
    let out = charmer(&[&["render"], &tls[..], &["--overlay", overlay.to_str().unwrap()]].concat());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "TLS without trust must not render");
    assert!(stderr.contains("tls_secret needs `trust: true`"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing half-rendered");
}

/// MLServer 1.6 exits when a model fails to load at start-up: on both backends the server
/// starts without it, a loader container loads it through the repository API once it is
/// registered, and the server is ready when the model is loaded or MLflow has none to serve.
#[test]
fn serving_starts_without_a_registered_model_and_loads_it_later() {
    let deployment = objects(&render(&["bundles/mlops"]));
    let knative = objects(&render(&["bundles/mlops", "--config", "serving.backend=knative"]));
    let pods = [
        pod_template(find(&deployment, "apps/v1", "Deployment", "serving")).unwrap(),
        pod_template(find(&knative, "serving.knative.dev/v1", "Service", "serving")).unwrap(),
    ];
    for pod in pods {
        let server = &pod["spec"]["containers"][0];
        assert_eq!(env(server, "MLSERVER_LOAD_MODELS_AT_STARTUP")["value"], "false");
        let loader = &pod["spec"]["containers"][1];
        assert_eq!(loader["name"], "model-loader");
        assert_eq!(loader["image"], server["image"], "no extra image to mirror");
        assert!(loader["ports"].is_null(), "Knative allows one port, the server's");
        assert_eq!(env(loader, "MODEL_NAME")["value"], env(server, "MLSERVER_MODEL_NAME")["value"]);
        let script = loader["args"][0].as_str().unwrap();
        assert!(script.contains("/v2/repository/models/{name}/load"), "{script}");
        assert!(script.contains("/v2/models/{name}/ready"), "{script}");
        // Knative runs an exec readiness probe with the kubelet, on the serving container.
        let readiness = server["readinessProbe"]["exec"]["command"].as_array().unwrap();
        assert_eq!(readiness[..2], [json!("python"), json!("-c")]);
        if crate::support::tools_present(&["python3"]) {
            let out = std::process::Command::new("python3")
                .args(["-c", "import sys; compile(sys.argv[1], 'model-loader', 'exec')", script])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            readiness_follows_the_model(server);
        }
    }
}

/// Runs the server's readiness command against stand-ins for MLServer and MLflow (a Python
/// HTTP server answering fixed statuses and bodies by path) in every state that matters.
fn readiness_follows_the_model(server: &Value) {
    let script = server["readinessProbe"]["exec"]["command"][2].as_str().unwrap();
    let stub = r#"
import http.server, json, sys
routes = json.loads(sys.argv[1])
class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        status, body = routes.get(self.path, [404, ""])
        self.send_response(status)
        self.end_headers()
        self.wfile.write(body.encode())
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Answer)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;
    let ready = "/v2/models/demo-model/ready";
    let latest =
        "/api/2.0/mlflow/registered-models/get-latest-versions?name=demo-model&stages=Production";
    let alias = "/api/2.0/mlflow/registered-models/alias?name=demo-model&alias=champion";
    let version = r#"{"model_versions": [{"version": "1"}]}"#;
    // (routes, model URI, ready?)
    let cases = [
        (json!({ready: [200, ""]}), "models:/demo-model/Production", true),
        (json!({}), "models:/demo-model/Production", true),
        (json!({latest: [200, "{}"]}), "models:/demo-model/Production", true),
        (json!({latest: [200, version]}), "models:/demo-model/Production", false),
        (json!({alias: [200, r#"{"model_version": {}}"#]}), "models:/demo-model@champion", false),
        (json!({}), "models:/demo-model@champion", true),
    ];
    for (routes, uri, want) in cases {
        let mut stand_in = std::process::Command::new("python3")
            .args(["-c", stub, &routes.to_string()])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut port = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(stand_in.stdout.as_mut().unwrap()),
            &mut port,
        )
        .unwrap();
        let port = port.trim();
        let status = std::process::Command::new("python3")
            .args(["-c", script])
            .env("MLSERVER_MODEL_NAME", "demo-model")
            .env("MLSERVER_HTTP_PORT", port)
            .env("MLFLOW_TRACKING_URI", format!("http://127.0.0.1:{port}/"))
            .env("MLSERVER_MODEL_URI", uri)
            .status()
            .unwrap();
        stand_in.kill().unwrap();
        stand_in.wait().unwrap();
        assert_eq!(status.success(), want, "{uri} with {routes}");
    }
    // MLflow out of reach: not ready (the model may exist).
    let status = std::process::Command::new("python3")
        .args(["-c", script])
        .env("MLSERVER_MODEL_NAME", "demo-model")
        .env("MLSERVER_HTTP_PORT", crate::support::registry::free_port().to_string())
        .env(
            "MLFLOW_TRACKING_URI",
            format!("http://127.0.0.1:{}", crate::support::registry::free_port()),
        )
        .env("MLSERVER_MODEL_URI", "models:/demo-model/Production")
        .status()
        .unwrap();
    assert!(!status.success(), "an unreachable MLflow is not ready");
}

/// The app user lives in the app database: the published URI authenticates there.
#[test]
fn the_mongodb_uri_authenticates_on_the_app_database() {
    let all = objects(&render(&["bundles/full"]));
    let pod = pod_template(find(&all, "apps/v1", "Deployment", "backend")).unwrap();
    let dsn = env(&pod["spec"]["containers"][0], "PROD_MONGO_DSN")["value"].as_str().unwrap();
    assert_eq!(
        dsn,
        "mongodb://mongodb.full.svc.cluster.local:27017/appStoreProdDb?authSource=appStoreProdDb"
    );
    // The init script creates the user in MONGO_APP_DATABASE: the authSource above.
    let sts = pod_template(find(&all, "apps/v1", "StatefulSet", "mongodb")).unwrap();
    assert_eq!(env(&sts["spec"]["containers"][0], "MONGO_APP_DATABASE")["value"], "appStoreProdDb");
    let init = find(&all, "v1", "ConfigMap", "mongodb-init");
    let script = init["data"]["10-create-app-user.js"].as_str().unwrap();
    assert!(script.contains("db.getSiblingDB(name)") && script.contains("MONGO_APP_DATABASE"));
}

/// `network-policies: relations`: each application admits its related applications on the
/// ports they were published, exposed applications admit anyone on their exposed ports only,
/// egress stays open (DNS, API), and the mode follows overlays and the flag.
#[test]
fn relations_become_network_policies() {
    let all = objects(&render(&["bundles/full"]));
    let policy = |app: &str| {
        find(&all, "networking.k8s.io/v1", "NetworkPolicy", &format!("{app}-relations"))
    };
    let from = |rule: &Value| {
        rule["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/instance"].clone()
    };
    let pod_ports = |kind: &str, app: &str| -> Vec<Value> {
        let pod = pod_template(find(&all, "apps/v1", kind, app)).unwrap();
        containers(pod)
            .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
            .map(|p| p["name"].clone())
            .collect()
    };
    // MongoDB: only the backend, only on mongod's port (the Service's 27017 → named port).
    let mongodb = policy("mongodb");
    assert_eq!(mongodb["spec"]["policyTypes"], json!(["Ingress"]), "egress (DNS, API) untouched");
    assert_eq!(
        mongodb["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/instance"],
        "mongodb"
    );
    let rules = mongodb["spec"]["ingress"].as_array().unwrap();
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(from(&rules[0]), "backend");
    assert_eq!(rules[0]["ports"].as_array().unwrap().len(), 1);
    assert!(pod_ports("StatefulSet", "mongodb").contains(&rules[0]["ports"][0]["port"]));
    // MLflow (no auth): only the model server. The model server: nobody relates to it.
    let mlflow = policy("mlflow")["spec"]["ingress"].as_array().unwrap().clone();
    assert_eq!(mlflow.iter().map(from).collect::<Vec<_>>(), vec![json!("serving")]);
    // No rules at all: denied by `policyTypes: [Ingress]`, with no `ingress: []` (which the
    // API server stores as absent, so every deploy would see a change).
    let serving = policy("serving");
    assert_eq!(serving["spec"]["policyTypes"], json!(["Ingress"]));
    assert!(serving["spec"].get("ingress").is_none(), "{serving}");
    // The backend: the gateway (ingress) and the frontend (api), never anyone.
    let backend = policy("backend")["spec"]["ingress"].as_array().unwrap().clone();
    assert_eq!(
        backend.iter().map(from).collect::<Vec<_>>(),
        vec![json!("frontend"), json!("istio-gateway")]
    );
    // Exposed: HiveMQ (NodePort) admits anyone on MQTT and WebSocket only — never JMX.
    let hivemq = policy("hivemq")["spec"]["ingress"].clone();
    assert_eq!(
        hivemq,
        json!([{"ports": [{"port": "mqtt", "protocol": "TCP"}, {"port": "websocket", "protocol": "TCP"}]}])
    );
    let gateway = policy("istio-gateway")["spec"]["ingress"].clone();
    assert!(
        gateway[0]["from"].is_null() && gateway[0]["ports"].as_array().unwrap().len() == 3,
        "{gateway}"
    );
    // No policy admits anyone on a port that is not a pod port of its application.
    for o in all.iter().filter(|o| o["kind"] == "NetworkPolicy") {
        let app =
            o["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/instance"].as_str().unwrap();
        let workload = all.iter().find(|w| name(w) == app && pod_template(w).is_some()).unwrap();
        let ports: Vec<Value> = containers(pod_template(workload).unwrap())
            .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
            .map(|p| p["name"].clone())
            .collect();
        for rule in o["spec"]["ingress"].as_array().into_iter().flatten() {
            for p in rule["ports"].as_array().unwrap() {
                assert!(ports.contains(&p["port"]), "{}: {} is no pod port", name(o), p["port"]);
            }
        }
    }

    // The mode: the flag wins over the bundle; an overlay can turn it off; a typo is an error.
    let off = objects(&render(&["bundles/full", "--network-policies", "none"]));
    assert!(!off.iter().any(|o| o["kind"] == "NetworkPolicy"));
    let on = objects(&render(&["bundles/ai-appstore", "--network-policies", "relations"]));
    assert!(on.iter().any(|o| o["kind"] == "NetworkPolicy" && name(o) == "mongodb-relations"));
    assert!(
        !objects(&render(&["bundles/ai-appstore"])).iter().any(|o| o["kind"] == "NetworkPolicy"),
        "default: none"
    );
    let dir = tempfile::tempdir().unwrap();
    let overlay = dir.path().join("open.yaml");
    std::fs::write(&overlay, "network-policies: none\n").unwrap();
    let overlaid = objects(&render(&["bundles/full", "--overlay", overlay.to_str().unwrap()]));
    assert!(!overlaid.iter().any(|o| o["kind"] == "NetworkPolicy"));
    std::fs::write(&overlay, "network-policies: relation\n").unwrap();
    let out = charmer(&["render", "bundles/full", "--overlay", overlay.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("network-policies") && stderr.contains("\"relation\""), "{stderr}");

    // `check` lists them in its plan.
    let out = charmer(&["check", "bundles/full"]);
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(plan.contains("network policies: relations"), "{plan}");
    assert!(plan.contains("mongodb-relations (mongodb): admits backend on mongo/TCP"), "{plan}");
    assert!(plan.contains("serving-relations (serving): admits nobody"), "{plan}");
}

/// `graph` shows how each application is reached, from the rendered objects: the gateway's
/// Service with its ports and node ports, the host names it accepts, the routes to each
/// application, and on every relation arrow the port the provider publishes.
#[test]
fn graph_shows_hosts_and_ports() {
    let args = [
        "graph",
        "bundles/ai-appstore",
        "--format",
        "dot",
        "--config",
        "istio-gateway.hosts=appstore.example.com",
        "--config",
        "frontend.hostname=web.appstore.ai",
        "--config",
        "istio-gateway.gateway_service_type=NodePort",
        "--config",
        "istio-gateway.http_node_port=30080",
    ];
    let out = charmer(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dot = String::from_utf8(out.stdout).unwrap();
    for expected in [
        "\\nService NodePort: status-port 15021, http2 80 (node 30080), https 443\\nhosts: appstore.example.com, web.appstore.ai\"",
        "-> \"istio-gateway\" [style=dashed, label=\"NodePort 30080 + 2 picked by Kubernetes\"]",
        "\"frontend\" [label=\"frontend\\ncharm frontend 1.0.0\\nscale 2\\nvia istio-gateway: web.appstore.ai/\"]",
        "\\nvia istio-gateway: appstore.example.com/api/\"]",
        "\"backend\" -> \"mongodb\" [label=\"mongodb_client :27017\"",
        "\"istio-gateway\" -> \"frontend\" [label=\"ingress :80\"",
    ] {
        assert!(dot.contains(expected), "graph lacks {expected:?}:\n{dot}");
    }

    // The SVG says the same; the hivemq of the full bundle shows its fixed node ports.
    let out = charmer(&["graph", "bundles/full"]);
    let svg = String::from_utf8(out.stdout).unwrap();
    for expected in [
        ">Service NodePort: mqtt 1883 (node 30135), websocket 8000 (node 30134)</text>",
        ">NodePort 30135, 30134</text>",
        ">Service LoadBalancer: status-port 15021, http2 80, https 443</text>",
        ">hosts: *</text>",
        ">via istio-gateway: /api/ (any host)</text>",
        ">mlflow-tracking :5000</text>",
    ] {
        assert!(svg.contains(expected), "SVG lacks {expected:?}:\n{svg}");
    }
}

/// The full bundle's single way in survives a drain: two proxies and a PDB keeping one.
#[test]
fn the_full_bundle_runs_two_gateway_proxies_with_a_disruption_budget() {
    let all = objects(&render(&["bundles/full"]));
    let proxy = find(&all, "apps/v1", "Deployment", "istio-gateway");
    assert_eq!(proxy["spec"]["replicas"], 2);
    let pdb = find(&all, "policy/v1", "PodDisruptionBudget", "istio-gateway");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert_eq!(pdb["spec"]["selector"]["matchLabels"], proxy["spec"]["selector"]["matchLabels"]);
}

#[test]
fn seed_004_environments_are_mlops_overlays() {
    let local =
        objects(&render(&["bundles/mlops", "--overlay", "bundles/mlops/overlays/local.yaml"]));
    let mlflow = find(&local, "apps/v1", "Deployment", "mlflow");
    let server = containers(pod_template(mlflow).unwrap()).next().unwrap();
    assert!(server["args"]
        .as_array()
        .unwrap()
        .contains(&json!("--artifacts-destination=s3://shield-demo-local/artifacts")));
    assert_eq!(env(server, "MLFLOW_S3_ENDPOINT_URL")["value"], "http://10.0.1.1:9000");
    let claim = find(&local, "v1", "PersistentVolumeClaim", "mlflow-data");
    assert_eq!(claim["spec"]["storageClassName"], "microk8s-hostpath");
    assert_eq!(find(&local, "apps/v1", "Deployment", "serving")["spec"]["replicas"], 1);

    let production =
        objects(&render(&["bundles/mlops", "--overlay", "bundles/mlops/overlays/production.yaml"]));
    let mlflow = find(&production, "apps/v1", "Deployment", "mlflow");
    assert_eq!(mlflow["spec"]["replicas"], 2, "no local volume: the server scales out");
    let pod = pod_template(mlflow).unwrap();
    let server = containers(pod).next().unwrap();
    assert!(server["args"]
        .as_array()
        .unwrap()
        .contains(&json!("--artifacts-destination=gs://shield-demo-prod/artifacts")));
    assert_eq!(
        env(server, "GOOGLE_APPLICATION_CREDENTIALS")["value"],
        "/var/secrets/google/credentials.json"
    );
    assert_eq!(
        env(server, "MLFLOW_BACKEND_STORE_URI")["valueFrom"]["secretKeyRef"]["name"],
        "mlflow-db"
    );
    let volumes = pod["spec"]["volumes"].as_array().unwrap();
    assert!(volumes.iter().any(|v| v["secret"]["secretName"] == "mlflow-gcs"), "{volumes:?}");
    assert!(
        !production.iter().any(|o| o["kind"] == "PersistentVolumeClaim"),
        "nothing on a local volume"
    );
}
