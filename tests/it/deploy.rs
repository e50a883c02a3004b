//! The deploy stage against the Kubernetes API emulator (tests/it/support/kube_emulator.rs),
//! through the real kube client: library API first, then the CLI.

use std::collections::BTreeMap;
use std::time::Duration;

use charmer::contract::{BUNDLE_LABEL, GENERATE_ANNOTATION, MIN_KUBERNETES_ANNOTATION};
use charmer::deploy::{
    Action, ApplyOptions, Cluster, DeployError, DeployPlan, NoProgress, Outcome, PlanApp,
    PlanObject, Prepared, RecordStatus, RemoveOptions, WaitOptions, GENERATE_MANAGER,
};
use hyper::Method;
use serde_json::{json, Value};

use crate::support::kube_emulator::{Behaviour, KubeEmulator};

pub(crate) const NS: &str = "shop";

pub(crate) fn labels(app: &str) -> Value {
    json!({
        "app.kubernetes.io/name": app, "app.kubernetes.io/instance": app, "app.kubernetes.io/part-of": "shop",
        "app.kubernetes.io/managed-by": "charmer", "app.kubernetes.io/version": "1.0.0", BUNDLE_LABEL: "shop",
    })
}

pub(crate) fn config_map(app: &str, name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels(app)}, "data": {"setting": value}})
}

pub(crate) fn deployment(app: &str, image: &str) -> Value {
    let selector = json!({"app.kubernetes.io/name": app, "app.kubernetes.io/instance": app});
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": app, "labels": labels(app)},
        "spec": {"replicas": 2, "selector": {"matchLabels": selector},
                 "template": {"metadata": {"labels": labels(app)}, "spec": {"containers": [{"name": app, "image": image}]}}},
    })
}

pub(crate) fn service(app: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": app, "labels": labels(app)},
           "spec": {"selector": {"app.kubernetes.io/instance": app}, "ports": [{"port": 80}]}})
}

pub(crate) fn generated_secret(app: &str, plain: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret",
           "metadata": {"name": format!("{app}-credentials"), "labels": labels(app), "annotations": {GENERATE_ANNOTATION: "root-password"}},
           "stringData": {"username": plain}})
}

pub(crate) fn app(name: &str, after: &[&str]) -> PlanApp {
    PlanApp {
        images: vec![format!("registry.local:5000/{name}:1")],
        after: after.iter().map(|s| s.to_string()).collect(),
        ..PlanApp::new(name, name, "1.0.0")
    }
}

/// The shop bundle: `db` (a provider) and `web` (requires db), or only the apps listed.
pub(crate) fn shop(objects: Vec<(&str, Value)>) -> DeployPlan {
    let mut apps = vec![app("db", &[]), app("web", &["db"])];
    apps.retain(|a| objects.iter().any(|(o, _)| *o == a.name));
    DeployPlan {
        bundle: "shop".into(),
        namespace: NS.into(),
        registry: Some("registry.local:5000".parse().unwrap()),
        apps,
        objects: objects
            .into_iter()
            .map(|(app, object)| PlanObject { app: app.into(), object })
            .collect(),
    }
}

pub(crate) fn full_shop(setting: &str) -> DeployPlan {
    shop(vec![
        ("web", deployment("web", "registry.local:5000/web:1")),
        ("web", config_map("web", "web-config", setting)),
        ("web", service("web")),
        ("db", deployment("db", "registry.local:5000/db:1")),
        ("db", generated_secret("db", "admin")),
        ("db", service("db")),
    ])
}

pub(crate) fn quick_wait() -> ApplyOptions {
    ApplyOptions {
        prune: true,
        wait: Some(WaitOptions { timeout: Duration::from_secs(30), ..WaitOptions::default() }),
        ..ApplyOptions::default()
    }
}

pub(crate) async fn cluster(emulator: &KubeEmulator) -> Cluster {
    Cluster::connect(&emulator.client_options()).await.expect("connect to the emulator")
}

pub(crate) async fn prepare(emulator: &KubeEmulator, plan: DeployPlan) -> (Cluster, Prepared) {
    let cluster = cluster(emulator).await;
    let prepared = cluster.prepare(plan).await.expect("preflight passes");
    (cluster, prepared)
}

pub(crate) async fn deploy_with(
    emulator: &KubeEmulator,
    plan: DeployPlan,
    options: &ApplyOptions,
) -> Result<Outcome, DeployError> {
    let cluster = cluster(emulator).await;
    let prepared = cluster.prepare(plan).await?;
    cluster.apply(&prepared, options, &NoProgress).await
}

/// [`quick_wait`] with another timeout, polling every 20 ms.
fn waiting_up_to(timeout: Duration) -> ApplyOptions {
    ApplyOptions { wait: Some(WaitOptions { timeout, ..WaitOptions::default() }), ..quick_wait() }
}

pub(crate) async fn deploy(emulator: &KubeEmulator, plan: DeployPlan) -> Outcome {
    deploy_with(emulator, plan, &quick_wait()).await.expect("deploy succeeds")
}

fn applied(outcome: &Outcome) -> Vec<(String, Action)> {
    outcome.applied.iter().map(|a| (a.id.to_string(), a.action)).collect()
}

pub(crate) fn record_status(emulator: &KubeEmulator, revision: u32) -> Option<String> {
    let record = emulator.get("Secret", NS, &format!("charmer.shop.v{revision}"))?;
    record["metadata"]["labels"]["charmer.io/status"].as_str().map(str::to_string)
}

/// Object keys whose resourceVersion differs between two snapshots (or exist in one only).
fn changed(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> =
        before.keys().chain(after.keys()).filter(|k| before.get(*k) != after.get(*k)).collect();
    keys.into_iter().cloned().collect()
}

pub(crate) fn decoded(secret: &Value, key: &str) -> String {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(secret["data"][key].as_str().expect("key present"))
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

/// Applications that need nothing of each other are applied at once, one kind rank after
/// the other: while the first Deployment of a wave is held on its way in, the next one of the
/// same wave is applied; the application requiring one of them gets nothing applied until
/// all of its provider's objects are through.
#[tokio::test]
async fn independent_applications_are_applied_at_once_and_providers_still_first() {
    let emulator = KubeEmulator::start();
    emulator.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    let mut plan = shop(vec![
        ("db", config_map("db", "db-config", "a")),
        ("db", deployment("db", "registry.local:5000/db:1")),
        ("web", config_map("web", "web-config", "a")),
        ("web", deployment("web", "registry.local:5000/web:1")),
        ("cache", config_map("cache", "cache-config", "a")),
        ("cache", deployment("cache", "registry.local:5000/cache:1")),
    ]);
    plan.apps.push(app("cache", &[]));
    let cluster = cluster(&emulator).await;
    let prepared = cluster.prepare(plan).await.unwrap();
    let held_path = format!("/apis/apps/v1/namespaces/{NS}/deployments/cache");
    let mut dry_run = emulator.hold_next(Method::PATCH, &held_path);
    let options = ApplyOptions::default();
    let deploying = cluster.apply(&prepared, &options, &NoProgress);
    let watching = async {
        // The gate's dry run comes first; the real apply is armed before it may go on.
        dry_run.caught().await;
        let mut held = emulator.hold_next(Method::PATCH, &held_path);
        dry_run.release();
        held.caught().await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while emulator.get("Deployment", NS, "db").is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "db's Deployment was not applied while cache's was held: one at a time"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            emulator.get("ConfigMap", NS, "web-config").is_none(),
            "web requires db: nothing of it before all of db is applied"
        );
        held.release();
    };
    let (outcome, ()) = tokio::join!(deploying, watching);
    let order: Vec<String> = applied(&outcome.unwrap()).into_iter().map(|(id, _)| id).collect();
    assert_eq!(
        order,
        [
            "ConfigMap/shop/cache-config",
            "ConfigMap/shop/db-config",
            "Deployment/shop/cache",
            "Deployment/shop/db",
            "ConfigMap/shop/web-config",
            "Deployment/shop/web",
        ],
        "reported in apply order"
    );
}

#[tokio::test]
async fn first_deploy_creates_namespace_then_objects_providers_first_and_records_revision_1() {
    let emulator = KubeEmulator::start();
    let outcome = deploy(&emulator, full_shop("a")).await;
    assert_eq!(outcome.revision, Some(1));
    assert_eq!(
        applied(&outcome),
        [
            ("Secret/shop/db-credentials".to_string(), Action::Created),
            ("Service/shop/db".into(), Action::Created),
            ("Deployment/shop/db".into(), Action::Created),
            ("ConfigMap/shop/web-config".into(), Action::Created),
            ("Service/shop/web".into(), Action::Created),
            ("Deployment/shop/web".into(), Action::Created),
        ]
    );
    let writes = emulator.writes();
    assert_eq!(
        writes[..3],
        [
            "PATCH /api/v1/namespaces/shop",
            "POST /apis/coordination.k8s.io/v1/namespaces/shop/leases",
            "POST /api/v1/namespaces/shop/secrets",
        ],
        "the namespace, the lock in it, then the record, created (never overwritten): {writes:#?}"
    );
    assert_eq!(
        writes.last().map(String::as_str),
        Some("DELETE /apis/coordination.k8s.io/v1/namespaces/shop/leases/charmer.shop.lock"),
        "the lock is released last"
    );
    assert!(
        writes[3..writes.len() - 1].iter().all(|w| w.starts_with("PATCH ")),
        "every object is server-side applied: {writes:#?}"
    );
    let web = emulator.get("Deployment", NS, "web").unwrap();
    assert_eq!(
        web["status"]["observedGeneration"], web["metadata"]["generation"],
        "waited for the controller to see the spec"
    );
    assert_eq!(web["status"]["readyReplicas"], 2);
    let managers: Vec<&str> = web["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, ["charmer/shop"], "the bundle's own field manager");
    assert_eq!(record_status(&emulator, 1).as_deref(), Some("deployed"));
    let record = emulator.get("Secret", NS, "charmer.shop.v1").unwrap();
    assert_eq!(record["type"], "charmer.io/revision");
    assert!(
        record["metadata"]["labels"].get(BUNDLE_LABEL).is_none(),
        "records are not bundle objects"
    );
}

#[tokio::test]
async fn redeploying_an_unchanged_bundle_changes_nothing() {
    let emulator = KubeEmulator::start();
    deploy(&emulator, full_shop("a")).await;
    let before = emulator.resource_versions();
    let writes_before = emulator.writes().len();
    let outcome = deploy(&emulator, full_shop("a")).await;
    assert_eq!(outcome.revision, None, "no new revision for the same plan");
    assert!(!outcome.changed());
    assert!(
        outcome.applied.iter().all(|a| a.action == Action::Unchanged),
        "{:?}",
        applied(&outcome)
    );
    assert_eq!(changed(&before, &emulator.resource_versions()), Vec::<String>::new());
    assert!(emulator.get("Secret", NS, "charmer.shop.v2").is_none());
    assert!(emulator.writes().len() > writes_before, "applies were sent, and were no-ops");
}

#[tokio::test]
async fn changing_a_config_value_changes_only_that_object() {
    let emulator = KubeEmulator::start();
    deploy(&emulator, full_shop("a")).await;
    let before = emulator.resource_versions();
    let outcome = deploy(&emulator, full_shop("b")).await;
    assert_eq!(outcome.revision, Some(2));
    let configured: Vec<String> = outcome
        .applied
        .iter()
        .filter(|a| a.action != Action::Unchanged)
        .map(|a| a.id.to_string())
        .collect();
    assert_eq!(configured, ["ConfigMap/shop/web-config"]);
    let changed = changed(&before, &emulator.resource_versions());
    assert_eq!(
        changed,
        ["ConfigMap/shop/web-config", "Secret/shop/charmer.shop.v1", "Secret/shop/charmer.shop.v2"]
    );
    assert_eq!(emulator.get("ConfigMap", NS, "web-config").unwrap()["data"]["setting"], "b");
    assert_eq!(record_status(&emulator, 1).as_deref(), Some("superseded"));
    assert_eq!(record_status(&emulator, 2).as_deref(), Some("deployed"));
}

#[tokio::test]
async fn a_field_removed_from_the_rendered_object_is_removed_and_other_managers_fields_stay() {
    let emulator = KubeEmulator::start();
    let mut with_extra = config_map("web", "web-config", "a");
    with_extra["data"]["extra"] = json!("x");
    deploy(&emulator, shop(vec![("web", with_extra)])).await;
    // Another tool adds a label of its own.
    emulator.insert(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-config", "namespace": NS, "labels": {"team": "ops"}}}));
    deploy(&emulator, shop(vec![("web", config_map("web", "web-config", "a"))])).await;
    let live = emulator.get("ConfigMap", NS, "web-config").unwrap();
    assert_eq!(live["data"], json!({"setting": "a"}));
    assert_eq!(live["metadata"]["labels"]["team"], "ops");
}

#[tokio::test]
async fn a_removed_application_is_pruned_and_nothing_outside_the_inventory_is_touched() {
    let emulator = KubeEmulator::start();
    deploy(&emulator, full_shop("a")).await;
    // Not in any inventory, though one carries the bundle's label.
    emulator.insert(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "someone-elses", "namespace": NS}, "data": {}}));
    emulator.insert(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "hand-made", "namespace": NS, "labels": {BUNDLE_LABEL: "shop"}}}));
    let db_only = shop(vec![
        ("db", deployment("db", "registry.local:5000/db:1")),
        ("db", generated_secret("db", "admin")),
        ("db", service("db")),
    ]);
    let outcome = deploy(&emulator, db_only).await;
    let pruned: Vec<String> = outcome.pruned.iter().map(ToString::to_string).collect();
    assert_eq!(
        pruned,
        ["Deployment/shop/web", "Service/shop/web", "ConfigMap/shop/web-config"],
        "workloads go first"
    );
    for (kind, name) in [("Deployment", "web"), ("Service", "web"), ("ConfigMap", "web-config")] {
        assert!(emulator.get(kind, NS, name).is_none(), "{kind} {name} pruned");
    }
    for name in ["someone-elses", "hand-made"] {
        assert!(emulator.get("ConfigMap", NS, name).is_some(), "{name} survives");
    }
    assert!(emulator.get("Deployment", NS, "db").is_some());
    assert!(emulator.get("Pod", NS, "web-g1-0").is_none(), "the workload's pods went with it");
}

#[tokio::test]
async fn no_prune_keeps_objects_of_removed_applications() {
    let emulator = KubeEmulator::start();
    deploy(&emulator, full_shop("a")).await;
    let options = ApplyOptions { prune: false, ..quick_wait() };
    let outcome =
        deploy_with(&emulator, shop(vec![("db", service("db"))]), &options).await.unwrap();
    assert!(outcome.pruned.is_empty());
    assert!(emulator.get("Deployment", NS, "web").is_some());
    // The next pruning deploy still knows about them: the failed-to-prune inventory is kept.
    deploy(&emulator, shop(vec![("db", service("db"))])).await;
    assert!(emulator.get("Deployment", NS, "web").is_none());
}

#[tokio::test]
async fn a_failing_preflight_reports_every_problem_and_writes_nothing() {
    let emulator = KubeEmulator::start();
    emulator.set_version(1, 19);
    let mut plan = full_shop("a");
    plan.apps[1].required_secrets = vec!["tls-cert".into()];
    plan.apps[0].kubernetes =
        charmer::deploy::kubernetes_needs(&[serde_yaml::Value::String("k8s-api >= 1.20".into())]);
    let claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "labels": labels("db")},
                       "spec": {"storageClassName": "fast", "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
    let default_claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "logs", "labels": labels("db")},
                       "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
    let route = json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService", "metadata": {"name": "web", "labels": labels("web")}, "spec": {}});
    let mut knative = config_map("web", "serving-backend", "knative");
    knative["metadata"]["annotations"] = json!({MIN_KUBERNETES_ANNOTATION: "1.20"});
    plan.objects.push(PlanObject { app: "db".into(), object: claim });
    plan.objects.push(PlanObject { app: "db".into(), object: default_claim });
    plan.objects.push(PlanObject { app: "web".into(), object: route });
    plan.objects.push(PlanObject { app: "web".into(), object: knative });
    plan.objects.push(PlanObject {
        app: "web".into(),
        object: deployment("cache", "docker.io/library/redis:7"),
    });
    let cluster = cluster(&emulator).await;
    let error = cluster.prepare(plan).await.err().expect("preflight fails");
    let text = error.to_string();
    let expected = [
        "preflight: application db: assumes: k8s-api >= 1.20 needs Kubernetes >= 1.20; the cluster runs 1.19",
        "preflight: application web ConfigMap/serving-backend: annotation charmer.io/min-kubernetes needs Kubernetes >= 1.20",
        "preflight: VirtualService (networking.istio.io/v1beta1) of application web: the cluster does not serve this kind",
        "install the CustomResourceDefinition for VirtualService in group networking.istio.io",
        "preflight: Secret/shop/tls-cert: required by web but missing (hint: create it before deploying: kubectl create namespace shop --dry-run=client -o yaml | kubectl apply -f - && kubectl create secret generic tls-cert -n shop",
        "preflight: PersistentVolumeClaim/shop/data: storage class \"fast\" does not exist in the cluster, and no pre-created PersistentVolume of that class fits it",
        "preflight: PersistentVolumeClaim/shop/logs: no storage class is set, the cluster has no default storage class, and no pre-created PersistentVolume without a class fits it",
        "preflight: Deployment/shop/cache container cache: image docker.io/library/redis:7 is not in the registry registry.local:5000",
    ];
    for line in expected {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert_eq!(text.lines().count(), expected.len() - 1, "one line per problem:\n{text}");
    assert_eq!(emulator.writes(), Vec::<String>::new(), "nothing was written");
}

#[tokio::test]
async fn storage_classes_hostpath_volumes_and_installed_crds_satisfy_preflight() {
    let emulator = KubeEmulator::start();
    emulator.insert(json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "standard",
        "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}, "provisioner": "x"}));
    emulator.serve_group("serving.knative.dev", "v1", &[("Service", "services", true)]);
    emulator.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    emulator.insert(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls-cert", "namespace": NS}, "data": {}}));
    let claim = |name: &str, class: Option<&str>| {
        let mut c = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "labels": labels("db")},
                           "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
        if let Some(class) = class {
            c["spec"]["storageClassName"] = json!(class);
        }
        c
    };
    let volume = json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "mongodb-pv", "labels": labels("db")},
        "spec": {"storageClassName": "aas-mongodb", "capacity": {"storage": "8Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/bitnami/mongodb"}}});
    let knative = json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {"name": "predict", "labels": labels("web")},
        "spec": {"template": {"spec": {"containers": [{"name": "model", "image": "registry.local:5000/model:1"}]}}}});
    let mut plan = shop(vec![
        ("db", claim("data", Some("aas-mongodb"))),
        ("db", claim("logs", None)),
        ("db", volume),
        ("web", knative),
        ("web", config_map("web", "web-config", "a")),
    ]);
    plan.apps[1].required_secrets = vec!["tls-cert".into()];
    let outcome = deploy(&emulator, plan).await;
    assert_eq!(outcome.revision, Some(1));
    assert_eq!(
        emulator.get("PersistentVolumeClaim", NS, "data").unwrap()["status"]["phase"],
        "Bound"
    );
    assert!(emulator.get("Service", NS, "predict").is_some());
}

#[tokio::test]
async fn a_crd_and_its_custom_resources_deploy_together() {
    let emulator = KubeEmulator::start();
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gateways.example.io", "labels": labels("web")},
        "spec": {"group": "example.io", "scope": "Namespaced", "names": {"kind": "Gateway", "plural": "gateways"},
                 "versions": [{"name": "v1", "served": true, "storage": true}]}});
    let gateway = json!({"apiVersion": "example.io/v1", "kind": "Gateway", "metadata": {"name": "main", "labels": labels("web")}, "spec": {"port": 80}});
    let plan = shop(vec![("web", gateway), ("web", crd)]);
    let (cluster, prepared) = prepare(&emulator, plan.clone()).await;
    let changes = cluster.changes(&prepared, true).await.unwrap();
    assert_eq!(changes.count(Action::Created), 3, "a kind not served yet shows as created");
    assert_eq!(changes.objects[0].id.to_string(), "Namespace/shop", "the namespace too");
    let outcome = cluster.apply(&prepared, &quick_wait(), &NoProgress).await.unwrap();
    assert_eq!(
        applied(&outcome)[0].0,
        "CustomResourceDefinition/gateways.example.io",
        "definitions first"
    );
    assert_eq!(emulator.get("Gateway", NS, "main").unwrap()["spec"]["port"], 80);
    // Removing the bundle keeps the CRD: deleting it would delete every Gateway in the cluster.
    let removal = cluster.remove("shop", NS, &RemoveOptions::default(), &NoProgress).await.unwrap();
    assert_eq!(
        removal.deleted.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["Gateway/shop/main"]
    );
    assert_eq!(removal.kept.len(), 1);
    assert!(emulator.get("CustomResourceDefinition", "", "gateways.example.io").is_some());
}

#[tokio::test]
async fn a_workload_that_never_becomes_ready_fails_at_the_timeout_naming_it() {
    let emulator = KubeEmulator::start();
    emulator.set_behaviour("web", Behaviour::NeverReady);
    let options = waiting_up_to(Duration::from_secs(1));
    let error = deploy_with(&emulator, full_shop("a"), &options).await.expect_err("times out");
    let text = error.to_string();
    assert!(matches!(error, DeployError::Timeout { .. }), "{text}");
    assert!(text.contains("Deployment/shop/web (0 of 2 replicas ready, 2 updated)"), "{text}");
    assert!(!text.contains("Deployment/shop/db"), "db became ready: {text}");
    assert_eq!(record_status(&emulator, 1).as_deref(), Some("failed"));
}

/// Deploy waits for a Knative Service's `Ready` condition: a ready one passes, one still
/// rolling out times out naming Knative's reason, one reporting `False` on its way to ready
/// passes, and a failed revision fails once `False` stays for 5 polls.
#[tokio::test]
async fn knative_services_are_waited_for_by_their_ready_condition() {
    let knative = || {
        json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {"name": "predict", "labels": labels("web")},
            "spec": {"template": {"spec": {"containers": [{"name": "model", "image": "registry.local:5000/model:1"}]}}}})
    };
    let options = waiting_up_to(Duration::from_secs(1));
    let emulator = KubeEmulator::start();
    emulator.serve_group("serving.knative.dev", "v1", &[("Service", "services", true)]);
    deploy_with(&emulator, shop(vec![("web", knative())]), &options).await.expect("ready");

    let emulator = KubeEmulator::start();
    emulator.serve_group("serving.knative.dev", "v1", &[("Service", "services", true)]);
    emulator.set_behaviour("predict", Behaviour::NeverReady);
    let error = deploy_with(&emulator, shop(vec![("web", knative())]), &options)
        .await
        .expect_err("times out");
    let text = error.to_string();
    assert!(matches!(error, DeployError::Timeout { .. }), "{text}");
    assert!(text.contains("Service/shop/predict (RevisionMissing: Configuration"), "{text}");

    let emulator = KubeEmulator::start();
    emulator.serve_group("serving.knative.dev", "v1", &[("Service", "services", true)]);
    emulator.set_behaviour("predict", Behaviour::BrieflyFailing("CrashLoopBackOff"));
    let options = waiting_up_to(Duration::from_secs(600));
    deploy_with(&emulator, shop(vec![("web", knative())]), &options)
        .await
        .expect("a False on the way to True is waited out");
    assert_eq!(record_status(&emulator, 1).as_deref(), Some("deployed"));

    let emulator = KubeEmulator::start();
    emulator.serve_group("serving.knative.dev", "v1", &[("Service", "services", true)]);
    emulator.set_behaviour("predict", Behaviour::Failing("CrashLoopBackOff"));
    let error =
        deploy_with(&emulator, shop(vec![("web", knative())]), &options).await.expect_err("fails");
    let text = error.to_string();
    assert!(matches!(error, DeployError::Failed { .. }), "{text}");
    assert!(text.contains("Service/shop/predict"), "{text}");
    assert!(
        text.contains(
            "RevisionFailed: Revision \"predict-00001\" failed with message: CrashLoopBackOff."
        ),
        "{text}"
    );
    assert_eq!(record_status(&emulator, 1).as_deref(), Some("failed"));
}

#[tokio::test]
async fn image_pull_backoff_fails_fast_naming_pod_and_container() {
    let emulator = KubeEmulator::start();
    emulator.set_behaviour("web", Behaviour::Failing("ImagePullBackOff"));
    let options = waiting_up_to(Duration::from_secs(600));
    let error = deploy_with(&emulator, full_shop("a"), &options).await.expect_err("fails");
    match &error {
        DeployError::PodFailing { object, pod, container, reason, message } => {
            assert_eq!(object, "Deployment/shop/web");
            assert_eq!(pod, "web-g1-0");
            assert_eq!(container, "web");
            assert_eq!(reason, "ImagePullBackOff");
            assert!(message.contains("registry.local:5000/web:1"), "{message}");
        }
        other => panic!("expected a failing pod, got {other}"),
    }
}

#[tokio::test]
async fn transient_503s_and_dropped_connections_are_retried() {
    let emulator = KubeEmulator::start();
    deploy(&emulator, full_shop("a")).await;
    emulator.fail_next(3);
    let outcome = deploy(&emulator, full_shop("b")).await;
    assert_eq!(emulator.failures_served(), 3);
    assert_eq!(outcome.revision, Some(2));
    emulator.drop_next(2);
    let outcome = deploy(&emulator, full_shop("c")).await;
    assert_eq!(emulator.failures_served(), 5);
    assert_eq!(outcome.revision, Some(3));
}

#[tokio::test]
async fn a_namespace_that_cannot_be_created_fails_preflight() {
    let emulator = KubeEmulator::start();
    emulator.forbid_namespaces();
    let error =
        cluster(&emulator).await.prepare(full_shop("a")).await.err().expect("preflight fails");
    assert_eq!(
        error.to_string(),
        "preflight: namespace shop: does not exist and cannot be created: namespaces is forbidden: User \"deployer\" cannot create resource \"namespaces\" \
         in API group \"\" at the cluster scope (hint: ask an administrator to create it, or deploy into a namespace you may use with --namespace)"
    );
    assert_eq!(emulator.writes(), Vec::<String>::new());
}

#[tokio::test]
async fn api_errors_name_the_object() {
    let emulator = KubeEmulator::start();
    let mut bad = config_map("web", "web-config", "a");
    bad["metadata"]["namespace"] = json!("elsewhere");
    let error =
        deploy_with(&emulator, shop(vec![("web", bad)]), &quick_wait()).await.expect_err("fails");
    assert!(
        error.to_string().ends_with(
            ":\napplication web: ConfigMap/elsewhere/web-config: namespaces \"elsewhere\" not found"
        ),
        "{error}"
    );
}

#[tokio::test]
async fn rollback_reapplies_a_recorded_revision_as_a_new_one() {
    let emulator = KubeEmulator::start();
    deploy(&emulator, full_shop("a")).await;
    deploy(&emulator, shop(vec![("web", config_map("web", "web-config", "b"))])).await;
    assert!(emulator.get("Deployment", NS, "db").is_none());
    let cluster = cluster(&emulator).await;
    let (plan, revision) = cluster.rollback_plan("shop", NS, None).await.unwrap();
    assert_eq!(revision, 1);
    let prepared = cluster.prepare(plan).await.unwrap();
    let outcome = cluster.apply(&prepared, &quick_wait(), &NoProgress).await.unwrap();
    assert_eq!(outcome.revision, Some(3));
    assert_eq!(emulator.get("ConfigMap", NS, "web-config").unwrap()["data"]["setting"], "a");
    assert!(emulator.get("Deployment", NS, "db").is_some());
    let status = cluster.status("shop", NS).await.unwrap();
    let states: Vec<(u32, RecordStatus)> =
        status.revisions.iter().map(|r| (r.revision, r.status)).collect();
    assert_eq!(
        states,
        [(1, RecordStatus::Superseded), (2, RecordStatus::Superseded), (3, RecordStatus::Deployed)]
    );
    let missing = cluster.rollback_plan("shop", NS, Some(9)).await.err().unwrap();
    assert_eq!(
        missing.to_string(),
        "bundle shop has no revision 9 to roll back to in namespace shop"
    );
}

#[tokio::test]
async fn dry_run_writes_nothing_and_masks_secret_values() {
    let emulator = KubeEmulator::start();
    let (cluster, prepared) = prepare(&emulator, full_shop("a")).await;
    let changes = cluster.changes(&prepared, true).await.unwrap();
    assert_eq!(changes.count(Action::Created), 7, "6 objects and their namespace");
    assert_eq!(emulator.writes(), Vec::<String>::new());
    cluster.apply(&prepared, &quick_wait(), &NoProgress).await.unwrap();

    let (cluster, prepared) = prepare(&emulator, full_shop("a")).await;
    assert!(
        cluster.changes(&prepared, true).await.unwrap().is_empty(),
        "no change after deploying"
    );

    let writes = emulator.writes().len();
    let mut plan = full_shop("a");
    plan.objects[4].object["stringData"]["username"] = json!("root-user-secret");
    plan.objects.remove(0);
    let (cluster, prepared) = prepare(&emulator, plan).await;
    let changes = cluster.changes(&prepared, true).await.unwrap();
    assert_eq!(emulator.writes().len(), writes, "dry-run requests are not writes");
    let summary: Vec<(String, Action)> = changes
        .objects
        .iter()
        .filter(|c| c.action != Action::Unchanged)
        .map(|c| (c.id.to_string(), c.action))
        .collect();
    assert_eq!(
        summary,
        [
            ("Secret/shop/db-credentials".to_string(), Action::Configured),
            ("Deployment/shop/web".into(), Action::Pruned)
        ]
    );
    let all = serde_json::to_string(&changes).unwrap();
    assert!(!all.contains("root-user-secret") && !all.contains("YWRtaW4"), "{all}");
    let secret_diff = &changes.objects.iter().find(|c| c.id.kind == "Secret").unwrap().diff;
    assert!(
        secret_diff.contains("-  username: '*** (before)'")
            && secret_diff.contains("+  username: '*** (after)'"),
        "{secret_diff}"
    );
    assert!(secret_diff.contains("root-password: '***'"), "{secret_diff}");
}

#[tokio::test]
async fn generated_credentials_are_created_once_and_kept() {
    let emulator = KubeEmulator::start();
    let outcome = deploy(&emulator, full_shop("a")).await;
    assert_eq!(outcome.generated.len(), 1);
    assert_eq!(outcome.generated[0].1, ["root-password"]);
    let first = emulator.get("Secret", NS, "db-credentials").unwrap();
    let password = decoded(&first, "root-password");
    assert_eq!(password.len(), 32);
    assert!(password.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(decoded(&first, "username"), "admin");
    let owners: Vec<&str> = first["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert_eq!(owners, [GENERATE_MANAGER, "charmer/shop"]);

    let again = deploy(&emulator, full_shop("a")).await;
    assert!(again.generated.is_empty());
    let second = emulator.get("Secret", NS, "db-credentials").unwrap();
    assert_eq!(second["metadata"]["resourceVersion"], first["metadata"]["resourceVersion"]);

    // A change to the rendered part of the Secret keeps the generated value.
    let mut plan = full_shop("a");
    plan.objects[4].object["stringData"]["username"] = json!("operator");
    deploy(&emulator, plan).await;
    let third = emulator.get("Secret", NS, "db-credentials").unwrap();
    assert_eq!(decoded(&third, "username"), "operator");
    assert_eq!(decoded(&third, "root-password"), password);
}

#[tokio::test]
async fn status_shows_applications_versions_images_and_readiness() {
    let emulator = KubeEmulator::start();
    let cluster = cluster(&emulator).await;
    let error = cluster.status("shop", NS).await.err().unwrap();
    assert_eq!(
        error.to_string(),
        "bundle shop is not deployed in namespace shop (no revision records)"
    );
    deploy(&emulator, full_shop("a")).await;
    let status = cluster.status("shop", NS).await.unwrap();
    assert_eq!((status.revision, status.state), (1, RecordStatus::Deployed));
    let apps: Vec<(String, String, i64, i64)> = status
        .apps
        .iter()
        .map(|a| (a.name.clone(), a.version.clone(), a.ready_pods, a.desired_pods))
        .collect();
    assert_eq!(
        apps,
        [("db".to_string(), "1.0.0".to_string(), 2, 2), ("web".into(), "1.0.0".into(), 2, 2)]
    );
    assert_eq!(status.apps[1].images, ["registry.local:5000/web:1"]);
}

#[tokio::test]
async fn remove_deletes_exactly_the_inventory_and_the_records() {
    let emulator = KubeEmulator::start();
    deploy(&emulator, full_shop("a")).await;
    deploy(&emulator, full_shop("b")).await;
    emulator.insert(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "hand-made", "namespace": NS, "labels": {BUNDLE_LABEL: "shop"}}}));
    let cluster = cluster(&emulator).await;
    let removal = cluster.remove("shop", NS, &RemoveOptions::default(), &NoProgress).await.unwrap();
    assert_eq!(removal.deleted.len(), 6);
    assert_eq!(removal.records, ["charmer.shop.v1", "charmer.shop.v2"]);
    let left: Vec<String> =
        emulator.resource_versions().into_keys().filter(|k| k.contains("/shop/")).collect();
    assert_eq!(left, ["ConfigMap/shop/hand-made"], "only what was never in the inventory remains");
    assert!(emulator.get("Namespace", "", NS).is_some(), "the namespace stays");
}

// The CLI, on the demo bundle of tests/fixtures/demo (the `mydb` StatefulSet with a generated
// root password, and `web`).

pub(crate) fn demo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/demo")
}

/// `charmer ARGS --kubeconfig` against the emulator, in the demo fixture: (exit, stdout, stderr).
pub(crate) fn charmer(emulator: &KubeEmulator, args: &[&str]) -> (i32, String, String) {
    charmer_in(&demo(), emulator, args)
}

/// Runs charmer in `dir` against the emulator.
pub(crate) fn charmer_in(
    dir: &std::path::Path,
    emulator: &KubeEmulator,
    args: &[&str],
) -> (i32, String, String) {
    let kubeconfig = emulator.kubeconfig();
    let out = crate::support::charmer()
        .current_dir(dir)
        .args(args)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn cli_diff_dry_run_deploy_status_rollback_remove() {
    let emulator = KubeEmulator::start();
    let (code, diff, err) = charmer(&emulator, &["deploy", "bundles/demo", "--diff"]);
    assert_eq!(code, 1, "changes to make: {err}");
    assert!(
        diff.contains("# Secret/demo/mydb-credentials created") && diff.contains("+  replicas: 3"),
        "{diff}"
    );
    assert!(!diff.contains("s3cret"), "secret values are masked: {diff}");

    let (code, dry, err) = charmer(&emulator, &["deploy", "bundles/demo", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        dry.contains("created    Namespace/demo\n")
            && dry.contains("6 to create, 0 to change, 0 to prune, 0 unchanged"),
        "{dry}"
    );
    assert!(dry.ends_with("dry run: nothing was changed\n"), "{dry}");
    assert_eq!(emulator.writes(), Vec::<String>::new());

    // No terminal: no question, no waiting for an answer.
    let (code, out, err) = charmer(&emulator, &["deploy", "bundles/demo", "--timeout", "30s"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("created    Secret/demo/mydb-credentials (generated root-password)"),
        "{out}"
    );
    assert!(out.ends_with("demo deployed to namespace demo as revision 1, ready\n"), "{out}");
    assert_eq!(emulator.get("StatefulSet", "demo", "mydb").unwrap()["status"]["readyReplicas"], 1);

    let (code, diff, err) = charmer(&emulator, &["deploy", "bundles/demo", "--diff"]);
    assert_eq!((code, diff.as_str()), (0, ""), "{err}");
    let (code, diff, _) =
        charmer(&emulator, &["deploy", "bundles/demo", "--diff", "--config", "web.replicas=4"]);
    assert_eq!(code, 1);
    assert!(
        diff.contains("# Deployment/demo/web configured")
            && diff.contains("-  replicas: 3")
            && diff.contains("+  replicas: 4"),
        "{diff}"
    );
    let (code, _, err) =
        charmer(&emulator, &["deploy", "bundles/demo", "--diff", "--context", "elsewhere"]);
    assert_eq!(code, 2, "errors exit 2 with --diff: {err}");
    assert!(err.starts_with("error: Kubernetes client configuration:"), "{err}");

    let (code, out, err) =
        charmer(&emulator, &["deploy", "bundles/demo", "--config", "web.replicas=4"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("configured Deployment/demo/web")
            && out.contains("unchanged  Secret/demo/mydb-credentials"),
        "{out}"
    );
    assert!(out.ends_with("as revision 2, ready\n"), "{out}");

    let (code, status, err) = charmer(&emulator, &["status", "demo"]);
    assert_eq!(code, 0, "{err}");
    let expected = "bundle demo in namespace demo: revision 2 (deployed)\n\
                    APP   CHARM  VERSION  READY  IMAGES\n\
                    mydb  db     1.0.0    1/1    docker.io/library/mongo:7.0.14\n\
                    web   web    1.2.0    4/4    docker.io/library/nginx:1.27\n\
                    revisions:\n";
    assert!(status.starts_with(expected), "{status}");
    let revisions: Vec<Vec<&str>> =
        status[expected.len()..].lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(revisions.len(), 2, "{status}");
    for (row, (n, state)) in revisions.iter().zip([("1", "superseded"), ("2", "deployed")]) {
        assert_eq!((row[0], row[1]), (n, state), "{status}");
        assert!(humantime::parse_rfc3339(row[2]).is_ok(), "a time: {status}");
    }

    let (code, out, err) =
        charmer(&emulator, &["rollback", "demo", "-n", "demo", "--timeout", "30s"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.ends_with("demo rolled back to revision 1 in namespace demo as revision 3, ready\n"),
        "{out}"
    );
    assert_eq!(emulator.get("Deployment", "demo", "web").unwrap()["spec"]["replicas"], 3);

    let (code, out, err) = charmer(&emulator, &["remove", "demo"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.ends_with(
            "removed demo from namespace demo: 5 objects and 3 revision records deleted\n"
        ),
        "{out}"
    );
    let (code, _, err) = charmer(&emulator, &["status", "demo"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "error: bundle demo is not deployed in namespace demo (no revision records)\n")
    );
}

#[test]
fn cli_preflight_failure_touches_nothing() {
    let emulator = KubeEmulator::start();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle.yaml");
    std::fs::write(
        &bundle,
        "bundle: kubernetes\nname: demo\napplications:\n  mydb: {charm: db, scale: 1}\n  web: {charm: web, scale: 1, required-secrets: [tls-cert]}\nrelations:\n  - [web, mydb]\n",
    )
    .unwrap();
    let charms = demo().join("charms");
    let args = [
        "deploy",
        bundle.to_str().unwrap(),
        "--charms",
        charms.to_str().unwrap(),
        "--registry",
        "registry.local:5000",
    ];
    let (code, out, err) = charmer(&emulator, &args);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        err,
        "error: preflight: Secret/demo/tls-cert: required by web but missing \
         (hint: create it before deploying: kubectl create namespace demo --dry-run=client -o yaml \
         | kubectl apply -f - && kubectl create secret generic tls-cert -n demo --from-literal=KEY=VALUE)\n"
    );
    assert_eq!(emulator.writes(), Vec::<String>::new());
}
