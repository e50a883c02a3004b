//! The server-side dry-run gate and the immutable-field strategy (issue #26), against the
//! Kubernetes API emulator: a change the API server refuses stops the deploy before any write,
//! every refusal listed with its application, object, field and option; growing claim
//! templates are handled (claims expanded, the StatefulSet re-created with its pods and claims
//! kept), other immutable changes are refused with the way forward; StatefulSet claims are
//! the bundle's data.

use charmer::bundle::Source;
use charmer::deploy::{
    Action, DeployError, DeployPlan, NoProgress, RecordedSetting, RemoveOptions,
};
use serde_json::{json, Value};

use crate::deploy::{
    cluster, config_map, deploy, deploy_with, deployment, labels, quick_wait, record_status,
    service, shop, NS,
};
use crate::deploy_state::{default_storage_class, stateful_db};
use crate::support::kube_emulator::KubeEmulator;

/// `plan` with option `option` of application `app` recorded as set to `value` by `source`.
fn with_option(
    mut plan: DeployPlan,
    app: &str,
    option: &str,
    value: &str,
    source: Source,
) -> DeployPlan {
    let app = plan.apps.iter_mut().find(|a| a.name == app).expect("the application");
    let setting = RecordedSetting { value: json!(value), source, secret: false };
    app.config.insert(option.to_string(), setting);
    plan
}

/// Istio's VirtualService, and its validating webhook refusing host names with `_`, as
/// `validation.istio.io` does.
fn istio(emulator: &KubeEmulator) {
    emulator.serve_group(
        "networking.istio.io",
        "v1",
        &[("VirtualService", "virtualservices", true)],
    );
    emulator.validating_webhook("validation.istio.io", "VirtualService", |vs| {
        let hosts = vs["spec"]["hosts"].as_array()?;
        let bad = hosts.iter().filter_map(Value::as_str).find(|h| h.contains('_'))?;
        Some(format!(
            "configuration is invalid: domain name \"{bad}\" invalid (label \"{bad}\" invalid)"
        ))
    });
}

fn virtual_service(host: &str) -> Value {
    json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "web", "labels": labels("web")},
           "spec": {"hosts": [host], "http": [{"route": [{"destination": {"host": "web"}}]}]}})
}

/// `web` (a frontend reached at `hostname`) and `db` (a backend logging at `log_level`).
fn frontend_backend(hostname: &str, log_level: &str) -> DeployPlan {
    let plan = shop(vec![
        ("web", deployment("web", "registry.local:5000/web:1")),
        ("web", virtual_service(hostname)),
        ("db", deployment("db", "registry.local:5000/db:1")),
        ("db", config_map("db", "db-config", log_level)),
    ]);
    let plan = with_option(plan, "web", "hostname", hostname, Source::CommandLine);
    with_option(plan, "db", "log_level", log_level, Source::Overlay("debug.yaml".into()))
}

/// The error's lines after its first (one per refusal).
fn refusals(error: &DeployError) -> Vec<String> {
    error.to_string().lines().skip(1).map(str::to_string).collect()
}

#[tokio::test]
async fn a_value_the_server_refuses_stops_the_deploy_before_any_write() {
    let emulator = KubeEmulator::start();
    istio(&emulator);
    deploy(&emulator, frontend_backend("shop.example", "info")).await;
    let versions = emulator.resource_versions();
    let writes = emulator.writes();

    // The frontend's host is refused; the backend's change alone would be fine.
    let error = deploy_with(&emulator, frontend_backend("bad_host", "debug"), &quick_wait())
        .await
        .unwrap_err();
    assert!(matches!(error, DeployError::Refused { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "the API server refused the deploy in a dry run; nothing of the bundle was applied:\n\
         application web: VirtualService/shop/web: admission webhook \"validation.istio.io\" denied the request: configuration is invalid: domain name \"bad_host\" invalid (label \"bad_host\" invalid); the value of option web.hostname (set by --config) (hint: give web.hostname a value the API server accepts)"
    );
    assert_eq!(emulator.writes(), writes, "no write at all: no lock, no record, no object");
    assert_eq!(emulator.resource_versions(), versions, "the backend was not rolled to debug");
    assert_eq!(emulator.get("ConfigMap", NS, "db-config").unwrap()["data"]["setting"], "info");
    assert_eq!(record_status(&emulator, 1).as_deref(), Some("deployed"));
    assert!(emulator.get("Secret", NS, "charmer.shop.v2").is_none(), "no revision recorded");

    // `--diff` and the dry run pass the same gate: the same refusal, nothing written.
    let cluster = cluster(&emulator).await;
    let prepared = cluster.prepare(frontend_backend("bad_host", "debug")).await.unwrap();
    let error = cluster.changes(&prepared, true).await.unwrap_err();
    assert_eq!(refusals(&error).len(), 1, "{error}");
    assert_eq!(emulator.writes(), writes);
}

#[tokio::test]
async fn every_refusal_is_reported_at_once_with_its_field_and_way_forward() {
    let emulator = KubeEmulator::start();
    istio(&emulator);
    let mut db_service = service("db");
    db_service["spec"]["clusterIP"] = json!("10.0.0.9");
    let plan = |host: &str, web: Value, db: Value| {
        let plan = shop(vec![("web", web), ("web", virtual_service(host)), ("db", db)]);
        with_option(plan, "web", "hostname", host, Source::CommandLine)
    };
    deploy(
        &emulator,
        plan("shop.example", deployment("web", "registry.local:5000/web:1"), db_service.clone()),
    )
    .await;
    let writes = emulator.writes();

    let mut web = deployment("web", "registry.local:5000/web:1");
    web["spec"]["selector"]["matchLabels"]["tier"] = json!("front");
    web["spec"]["template"]["metadata"]["labels"]["tier"] = json!("front");
    db_service["spec"]["clusterIP"] = json!("10.0.0.10");
    let error =
        deploy_with(&emulator, plan("bad_host", web, db_service), &quick_wait()).await.unwrap_err();
    let lines = refusals(&error);
    assert_eq!(lines.len(), 3, "{error}");
    assert!(
        lines[1].starts_with("application web: Deployment/shop/web spec.selector: Invalid value: ")
            && lines[1].contains(": field is immutable; ")
            && lines[1].contains("(hint: render it as {\"matchLabels\":{\"app.kubernetes.io/instance\":\"web\",\"app.kubernetes.io/name\":\"web\"}} again, or `charmer remove` the bundle (its claims and credentials are kept) and deploy again"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with("application web: VirtualService/shop/web: admission webhook"),
        "{}",
        lines[2]
    );
    assert!(
        lines[0].starts_with("application db: Service/shop/db spec.clusterIPs[0]: Invalid value: []string{\"10.0.0.10\"}: may not change once set; made by the charm's templates (no option of db was set explicitly) (hint: render it as 10.0.0.9 again"),
        "{}",
        lines[0]
    );
    assert_eq!(emulator.writes(), writes, "nothing written");
}

/// The `db` bundle: a StatefulSet whose claim template asks for `size`, set by `source`.
fn database(size: &str, source: Source) -> DeployPlan {
    let mut set = stateful_db();
    set["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] =
        json!(size);
    with_option(shop(vec![("db", set)]), "db", "storage_size", size, source)
}

fn storage_class(emulator: &KubeEmulator, expandable: bool) {
    default_storage_class(emulator);
    let mut class = emulator.get("StorageClass", "", "standard").unwrap();
    class["allowVolumeExpansion"] = json!(expandable);
    emulator.insert(class);
}

fn uid(object: &Value) -> String {
    object["metadata"]["uid"].as_str().unwrap().to_string()
}

fn claim_size(emulator: &KubeEmulator) -> String {
    let claim = emulator.get("PersistentVolumeClaim", NS, "data-db-0").expect("the claim");
    claim["spec"]["resources"]["requests"]["storage"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_growing_claim_template_expands_the_claims_and_recreates_the_set_keeping_pods() {
    let emulator = KubeEmulator::start();
    storage_class(&emulator, true);
    deploy(&emulator, database("1Gi", Source::Bundle("bundle.yaml".into()))).await;
    let set_uid = uid(&emulator.get("StatefulSet", NS, "db").unwrap());
    let claim_uid = uid(&emulator.get("PersistentVolumeClaim", NS, "data-db-0").unwrap());
    let pods = emulator.pods(NS);
    let pod_uid = uid(&emulator.get("Pod", NS, &pods[0]).unwrap());

    let bigger = database("2Gi", Source::CommandLine);
    let cluster = cluster(&emulator).await;
    let prepared = cluster.prepare(bigger.clone()).await.unwrap();
    let changes = cluster.changes(&prepared, true).await.unwrap();
    let set = changes.objects.iter().find(|c| c.id.kind == "StatefulSet").unwrap();
    assert_eq!(set.action, Action::Recreated, "the diff says what will happen");
    let changed: Vec<&str> = set.diff.lines().filter(|l| l.contains("storage:")).collect();
    assert_eq!(changed.len(), 2, "{}", set.diff);
    assert!(changed[0].starts_with('-') && changed[0].ends_with("storage: 1Gi"), "{}", set.diff);
    assert!(changed[1].starts_with('+') && changed[1].ends_with("storage: 2Gi"), "{}", set.diff);

    let outcome = deploy(&emulator, bigger).await;
    let expanded: Vec<String> =
        outcome.expanded.iter().map(|(id, from, to)| format!("{id} {from} {to}")).collect();
    assert_eq!(expanded, ["PersistentVolumeClaim/shop/data-db-0 1Gi 2Gi"]);
    let actions: Vec<(String, Action)> =
        outcome.applied.iter().map(|a| (a.id.to_string(), a.action)).collect();
    assert_eq!(actions, [("StatefulSet/shop/db".to_string(), Action::Recreated)]);
    assert_eq!(outcome.revision, Some(2));

    let set = emulator.get("StatefulSet", NS, "db").unwrap();
    assert_ne!(uid(&set), set_uid, "a new StatefulSet");
    assert_eq!(
        set["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "2Gi"
    );
    assert_eq!(claim_size(&emulator), "2Gi", "the claim is expanded");
    assert_eq!(
        uid(&emulator.get("PersistentVolumeClaim", NS, "data-db-0").unwrap()),
        claim_uid,
        "same claim"
    );
    assert_eq!(emulator.pods(NS), pods, "the pods were kept");
    let pod = emulator.get("Pod", NS, &pods[0]).unwrap();
    assert_eq!(uid(&pod), pod_uid, "not restarted");
    assert_eq!(
        pod["metadata"]["ownerReferences"][0]["uid"],
        json!(uid(&set)),
        "adopted by the new set"
    );
    assert_eq!(record_status(&emulator, 2).as_deref(), Some("deployed"));
}

/// Deploys the database at `first`, then at `second`, which the gate must refuse: its refusals,
/// once checked that nothing was written and the claim kept its size.
async fn refused_resize(expandable: bool, first: &str, second: (&str, Source)) -> Vec<String> {
    let emulator = KubeEmulator::start();
    storage_class(&emulator, expandable);
    deploy(&emulator, database(first, Source::CommandLine)).await;
    let writes = emulator.writes();
    let error =
        deploy_with(&emulator, database(second.0, second.1), &quick_wait()).await.unwrap_err();
    assert_eq!(emulator.writes(), writes, "nothing written: {error}");
    assert_eq!(claim_size(&emulator), first);
    refusals(&error)
}

#[tokio::test]
async fn a_growing_claim_whose_class_cannot_expand_is_refused_before_any_write() {
    assert_eq!(
        refused_resize(false, "1Gi", ("2Gi", Source::CommandLine)).await,
        ["application db: StatefulSet/shop/db spec.volumeClaimTemplates[0].spec.resources.requests.storage: claim template data grows from 1Gi to 2Gi, but claim data-db-0 cannot be expanded: persistentvolumeclaims \"data-db-0\" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize; the value of option db.storage_size (set by --config) (hint: set db.storage_size back to 1Gi, or have the claim's StorageClass allow expansion (allowVolumeExpansion: true))"]
    );
}

#[tokio::test]
async fn a_shrinking_claim_template_is_refused_naming_the_option_and_the_way_forward() {
    assert_eq!(
        refused_resize(true, "2Gi", ("1Gi", Source::Overlay("small.yaml".into()))).await,
        ["application db: StatefulSet/shop/db spec.volumeClaimTemplates[0].spec.resources.requests.storage: claim template data: storage cannot shrink from 2Gi to 1Gi (volumes only grow); the value of option db.storage_size (set by overlay small.yaml) (hint: set db.storage_size back to 2Gi, or `charmer remove` the bundle with --destroy-storage (its data is lost) and deploy again)"]
    );
}

#[tokio::test]
async fn rollback_goes_through_the_gate() {
    let emulator = KubeEmulator::start();
    storage_class(&emulator, true);
    deploy(&emulator, database("1Gi", Source::Default)).await;
    deploy(&emulator, database("2Gi", Source::CommandLine)).await;
    let writes = emulator.writes();
    // Revision 1's claim template is smaller than the claims are now.
    let cluster = cluster(&emulator).await;
    let (plan, from) = cluster.rollback_plan("shop", NS, None).await.unwrap();
    assert_eq!(from, 1);
    let prepared = cluster.prepare(plan).await.unwrap();
    let error = cluster.apply(&prepared, &quick_wait(), &NoProgress).await.unwrap_err();
    assert!(refusals(&error)[0].contains("storage cannot shrink from 2Gi to 1Gi"), "{error}");
    assert_eq!(emulator.writes(), writes, "nothing written");
    assert!(emulator.get("Secret", NS, "charmer.shop.v3").is_none());
}

#[tokio::test]
async fn set_claims_are_the_bundles_data_and_only_its_own() {
    let emulator = KubeEmulator::start();
    default_storage_class(&emulator);
    deploy(&emulator, database("1Gi", Source::Default)).await;
    // A claim named like the set's but made by someone else (not the set's selector labels).
    emulator.insert(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data-db-7", "namespace": NS, "labels": {"app": "other"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}));
    let cluster = cluster(&emulator).await;
    let removal = cluster.remove("shop", NS, &RemoveOptions::default(), &NoProgress).await.unwrap();
    let retained: Vec<String> =
        removal.retained.iter().map(|(id, keep)| format!("{id} {keep}")).collect();
    assert_eq!(retained, ["PersistentVolumeClaim/shop/data-db-0 data"]);

    deploy(&emulator, database("1Gi", Source::Default)).await;
    let destroy = RemoveOptions { destroy_storage: true, ..RemoveOptions::default() };
    let removal = cluster.remove("shop", NS, &destroy, &NoProgress).await.unwrap();
    let gone: Vec<String> = removal.terminating.iter().map(|(id, _)| id.to_string()).collect();
    assert_eq!(gone, ["PersistentVolumeClaim/shop/data-db-0"]);
    assert!(emulator.get("PersistentVolumeClaim", NS, "data-db-0").is_none());
    let other = emulator.get("PersistentVolumeClaim", NS, "data-db-7").expect("not the bundle's");
    assert!(other["metadata"]["labels"].get("charmer.io/kept-from").is_none(), "{other}");
}

#[test]
fn cli_diff_and_dry_run_list_the_namespace_they_would_create() {
    let emulator = KubeEmulator::start();
    let (code, diff, err) =
        crate::deploy::charmer(&emulator, &["deploy", "bundles/demo", "--diff"]);
    assert_eq!(code, 1, "{err}");
    assert!(diff.starts_with("# Namespace/demo created\n"), "{diff}");
    assert!(diff.contains("+  name: demo\n"), "{diff}");
    assert!(
        err.contains("note: StatefulSet/demo/mydb: the API server checks it when deploying, not now (its namespace does not exist yet)"),
        "{err}"
    );
    let (code, dry, err) =
        crate::deploy::charmer(&emulator, &["deploy", "bundles/demo", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(dry.contains("created    Namespace/demo\n"), "{dry}");
    assert_eq!(emulator.writes(), Vec::<String>::new());
}

#[tokio::test]
async fn restart_goes_through_the_gate() {
    let emulator = KubeEmulator::start();
    deploy(&emulator, crate::deploy::full_shop("a")).await;
    // A policy webhook that refuses restarts of web (as a change-freeze admission would).
    emulator.validating_webhook("freeze.example.io", "Deployment", |d| {
        let restarted =
            &d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"];
        (d["metadata"]["name"] == "web" && restarted.is_string())
            .then(|| "changes are frozen".to_string())
    });
    let pods = emulator.pods(NS);
    let writes = emulator.writes();
    let cluster = cluster(&emulator).await;
    let error = cluster
        .restart("shop", NS, "web", "2026-01-02T03:04:05Z", None, &NoProgress)
        .await
        .unwrap_err();
    assert_eq!(
        refusals(&error),
        ["application web: Deployment/shop/web: admission webhook \"freeze.example.io\" denied the request: changes are frozen"]
    );
    assert_eq!(emulator.writes(), writes, "nothing restarted");
    assert_eq!(emulator.pods(NS), pods);
}
