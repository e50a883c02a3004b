//! Deploy state is never lost (issue #12), against the Kubernetes API emulator: data and the
//! credentials it was initialised with outlive `remove` and prune and are adopted again;
//! one operation at a time per bundle (a Lease), stale locks taken over; ownership
//! conflicts; interrupted and rolled-back deploys; pre-created PersistentVolumes.

use std::time::Duration;

use charmer::contract::{
    ObjectId, BUNDLE_LABEL, KEPT_ANNOTATION, KEPT_FROM_LABEL, RESOURCE_POLICY_ANNOTATION,
};
use charmer::deploy::{
    Action, ApplyOptions, DeployError, DeployPlan, Event, Interrupt, Keep, LockOptions, NoProgress,
    PlanObject, PrepareOptions, Progress, RecordStatus, RemoveOptions, WaitOptions, KEEP_MANAGER,
};
use serde_json::{json, Value};

use crate::deploy::{
    cluster, config_map, decoded, deploy, deploy_with, deployment, full_shop, generated_secret,
    labels, quick_wait, record_status, service, shop, NS,
};
use crate::support::kube_emulator::{Behaviour, KubeEmulator};

const LEASE: &str = "charmer.shop.lock";

pub(crate) fn default_storage_class(emulator: &KubeEmulator) {
    emulator.insert(json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "standard",
        "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}, "provisioner": "x"}));
}

fn claim(app: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "labels": labels(app)},
           "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
}

/// A database StatefulSet with a claim template `data` (its controller makes `data-db-0`).
pub(crate) fn stateful_db() -> Value {
    let selector = json!({"app.kubernetes.io/name": "db", "app.kubernetes.io/instance": "db"});
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "labels": labels("db")},
        "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": selector},
                 "template": {"metadata": {"labels": labels("db")}, "spec": {"containers": [{"name": "db", "image": "registry.local:5000/db:1"}]}},
                 "volumeClaimTemplates": [{"metadata": {"name": "data"},
                     "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]},
    })
}

/// `db` with storage (a StatefulSet with a claim template, a backup claim, generated
/// credentials) and `web` without (its generated credentials are not kept).
fn with_storage() -> DeployPlan {
    shop(vec![
        ("db", stateful_db()),
        ("db", generated_secret("db", "admin")),
        ("db", claim("db", "db-backup")),
        ("db", service("db")),
        ("web", deployment("web", "registry.local:5000/web:1")),
        ("web", generated_secret("web", "user")),
    ])
}

fn ids(list: &[(ObjectId, Keep)]) -> Vec<(String, Keep)> {
    list.iter().map(|(id, keep)| (id.to_string(), *keep)).collect()
}

fn uid(object: &Value) -> String {
    object["metadata"]["uid"].as_str().unwrap().to_string()
}

fn remove_options(destroy_storage: bool) -> RemoveOptions {
    RemoveOptions { destroy_storage, ..RemoveOptions::default() }
}

#[tokio::test]
async fn remove_keeps_data_and_its_credentials_and_the_next_deploy_adopts_them() {
    let emulator = KubeEmulator::start();
    default_storage_class(&emulator);
    deploy(&emulator, with_storage()).await;
    let password = decoded(&emulator.get("Secret", NS, "db-credentials").unwrap(), "root-password");
    let backup_uid = uid(&emulator.get("PersistentVolumeClaim", NS, "db-backup").unwrap());
    let data_uid = uid(&emulator.get("PersistentVolumeClaim", NS, "data-db-0").unwrap());

    let cluster = cluster(&emulator).await;
    let removal = cluster.remove("shop", NS, &remove_options(false), &NoProgress).await.unwrap();
    assert_eq!(
        ids(&removal.retained),
        [
            ("PersistentVolumeClaim/shop/db-backup".to_string(), Keep::Data),
            ("Secret/shop/db-credentials".into(), Keep::Credentials),
            ("PersistentVolumeClaim/shop/data-db-0".into(), Keep::Data),
        ]
    );
    let deleted: Vec<String> = removal.deleted.iter().map(ToString::to_string).collect();
    assert!(deleted.contains(&"Secret/shop/web-credentials".to_string()), "{deleted:?}");
    assert!(deleted.contains(&"StatefulSet/shop/db".to_string()), "{deleted:?}");
    for (kind, name, why) in [
        ("PersistentVolumeClaim", "db-backup", "data"),
        ("PersistentVolumeClaim", "data-db-0", "data"),
        ("Secret", "db-credentials", "credentials"),
    ] {
        let kept = emulator.get(kind, NS, name).unwrap_or_else(|| panic!("{name} is kept"));
        assert_eq!(kept["metadata"]["labels"][KEPT_FROM_LABEL], "shop", "{name}");
        assert_eq!(kept["metadata"]["annotations"][KEPT_ANNOTATION], why, "{name}");
        assert!(kept["metadata"].get("deletionTimestamp").is_none(), "{name}");
    }
    assert!(emulator.get("Secret", NS, "web-credentials").is_none(), "web has no storage");
    assert!(emulator.get("Secret", NS, "charmer.shop.v1").is_none(), "records are removed");

    // The same bundle again: same claims, same credentials, marks gone.
    let outcome = deploy(&emulator, with_storage()).await;
    let adopted: Vec<String> =
        outcome.adopted.iter().map(|(id, from)| format!("{id} from {from}")).collect();
    assert_eq!(
        adopted,
        [
            "Secret/shop/db-credentials from shop",
            "PersistentVolumeClaim/shop/db-backup from shop",
            "PersistentVolumeClaim/shop/data-db-0 from shop"
        ]
    );
    assert!(
        outcome.generated.iter().all(|(id, _)| id.name != "db-credentials"),
        "no new password: {:?}",
        outcome.generated
    );
    let secret = emulator.get("Secret", NS, "db-credentials").unwrap();
    assert_eq!(decoded(&secret, "root-password"), password);
    assert_eq!(uid(&emulator.get("PersistentVolumeClaim", NS, "db-backup").unwrap()), backup_uid);
    assert_eq!(uid(&emulator.get("PersistentVolumeClaim", NS, "data-db-0").unwrap()), data_uid);
    for (kind, name) in [("PersistentVolumeClaim", "db-backup"), ("Secret", "db-credentials")] {
        let live = emulator.get(kind, NS, name).unwrap();
        assert!(live["metadata"]["labels"].get(KEPT_FROM_LABEL).is_none(), "{name}: {live}");
        let managers: Vec<&str> = live["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["manager"].as_str().unwrap())
            .collect();
        assert!(!managers.contains(&KEEP_MANAGER), "{name}: {managers:?}");
    }
}

#[tokio::test]
async fn destroy_storage_deletes_claims_credentials_and_what_earlier_prunes_kept() {
    let emulator = KubeEmulator::start();
    default_storage_class(&emulator);
    deploy(&emulator, with_storage()).await;
    // An overlay drops db: its data is kept, not pruned, and the dry run says so.
    let web_only = shop(vec![("web", deployment("web", "registry.local:5000/web:1"))]);
    let (dry, prepared) = crate::deploy::prepare(&emulator, web_only.clone()).await;
    let changes = dry.changes(&prepared, true).await.unwrap();
    let kept: Vec<String> = changes
        .objects
        .iter()
        .filter(|c| c.action == Action::Kept)
        .map(|c| format!("{} {}", c.id, c.diff.is_empty()))
        .collect();
    assert_eq!(
        kept,
        ["PersistentVolumeClaim/shop/db-backup true", "Secret/shop/db-credentials true"]
    );
    assert_eq!(changes.count(Action::Pruned), 3, "StatefulSet, Service, web's credentials");
    let outcome = deploy(&emulator, web_only).await;
    assert_eq!(
        ids(&outcome.retained),
        [
            ("PersistentVolumeClaim/shop/db-backup".to_string(), Keep::Data),
            ("Secret/shop/db-credentials".into(), Keep::Credentials),
            ("PersistentVolumeClaim/shop/data-db-0".into(), Keep::Data),
        ]
    );
    assert!(emulator.get("StatefulSet", NS, "db").is_none(), "the workload is pruned");
    assert!(emulator.get("Secret", NS, "web-credentials").is_none());

    // Something still mounts the backup claim: its deletion waits for it.
    emulator.insert(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "backup-job", "namespace": NS},
        "spec": {"containers": [{"name": "b", "image": "x"}], "volumes": [{"name": "b", "persistentVolumeClaim": {"claimName": "db-backup"}}]}}));
    let cluster = cluster(&emulator).await;
    let removal = cluster.remove("shop", NS, &remove_options(true), &NoProgress).await.unwrap();
    assert!(removal.retained.is_empty(), "{:?}", removal.retained);
    // Every claim deletion answers the claim marked for deletion (claim protection); the
    // controller lets the unmounted one go right after.
    let terminating: Vec<String> = removal
        .terminating
        .iter()
        .map(|(id, finalizers)| format!("{id} {}", finalizers.join(",")))
        .collect();
    assert_eq!(
        terminating,
        [
            "PersistentVolumeClaim/shop/data-db-0 kubernetes.io/pvc-protection",
            "PersistentVolumeClaim/shop/db-backup kubernetes.io/pvc-protection"
        ]
    );
    let deleted: Vec<String> = removal.deleted.iter().map(ToString::to_string).collect();
    assert_eq!(deleted, ["Deployment/shop/web", "Secret/shop/db-credentials"]);
    assert!(emulator.get("Secret", NS, "db-credentials").is_none());
    assert!(emulator.get("PersistentVolumeClaim", NS, "data-db-0").is_none());
    let held = emulator.get("PersistentVolumeClaim", NS, "db-backup").unwrap();
    assert!(held["metadata"]["deletionTimestamp"].is_string(), "{held}");
    assert_eq!(held["metadata"]["finalizers"], json!(["kubernetes.io/pvc-protection"]));

    // A deploy now would lose the claim that is on its way out: preflight says so.
    let error = cluster.prepare(with_storage()).await.err().expect("preflight fails");
    assert!(
        error.to_string().contains("PersistentVolumeClaim/shop/db-backup: is being deleted"),
        "{error}"
    );
    emulator.delete("Pod", NS, "backup-job");
    assert!(emulator.get("PersistentVolumeClaim", NS, "db-backup").is_none(), "released");
}

#[tokio::test]
async fn a_charm_can_mark_any_object_keep() {
    let emulator = KubeEmulator::start();
    let mut seed = config_map("web", "seed", "v1");
    seed["metadata"]["annotations"] = json!({RESOURCE_POLICY_ANNOTATION: "keep"});
    deploy(&emulator, shop(vec![("web", seed), ("web", config_map("web", "web-config", "a"))]))
        .await;
    let cluster = cluster(&emulator).await;
    let removal = cluster.remove("shop", NS, &remove_options(false), &NoProgress).await.unwrap();
    assert_eq!(ids(&removal.retained), [("ConfigMap/shop/seed".to_string(), Keep::ResourcePolicy)]);
    assert!(emulator.get("ConfigMap", NS, "web-config").is_none());
    assert_eq!(emulator.get("ConfigMap", NS, "seed").unwrap()["data"]["setting"], "v1");
}

fn lease(holder: &str, renewed: &str, seconds: u32) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": LEASE, "namespace": NS, "annotations": {
            "charmer.io/lock-user": "alice", "charmer.io/lock-host": holder, "charmer.io/lock-pid": "4242", "charmer.io/lock-operation": "deploy"}},
        "spec": {"holderIdentity": format!("alice@{holder} pid 4242 #0000"), "leaseDurationSeconds": seconds,
                 "acquireTime": "2026-01-01T00:00:00.000000Z", "renewTime": renewed}})
}

fn now_micro() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

#[tokio::test]
async fn two_deploys_at_once_one_gets_the_lock_the_other_fails_naming_the_holder() {
    let emulator = KubeEmulator::start();
    let options = quick_wait();
    let (a, b) = tokio::join!(
        deploy_with(&emulator, full_shop("a"), &options),
        deploy_with(&emulator, full_shop("b"), &options),
    );
    let (won, lost) = match (a, b) {
        (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
        (a, b) => panic!("exactly one deploy must win: {a:?} / {b:?}"),
    };
    assert_eq!(won.revision, Some(1));
    let text = lost.to_string();
    assert!(matches!(lost, DeployError::Locked { .. }), "{text}");
    assert!(
        text.starts_with("bundle shop in namespace shop is locked: deploy by ")
            && text.contains(&format!("(pid {})", std::process::id())),
        "{text}"
    );
    assert_eq!(record_status(&emulator, 1).as_deref(), Some("deployed"));
    assert!(emulator.get("Secret", NS, "charmer.shop.v2").is_none(), "one revision only");
    assert!(emulator.get("Lease", NS, LEASE).is_none(), "released");
}

#[tokio::test]
async fn a_live_lock_fails_at_once_or_is_waited_for_and_a_dead_one_is_taken_over() {
    let emulator = KubeEmulator::start();
    emulator.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    emulator.insert(lease("build-7", &now_micro(), 60));
    let error = deploy_with(&emulator, full_shop("a"), &quick_wait()).await.unwrap_err();
    assert!(
        error.to_string().starts_with(
            "bundle shop in namespace shop is locked: deploy by alice@build-7 (pid 4242) since 2026-01-01T00:00:00Z"
        ),
        "{error}"
    );
    assert!(emulator.get("Secret", NS, "charmer.shop.v1").is_none(), "nothing recorded");
    assert!(emulator.get("Deployment", NS, "web").is_none(), "nothing applied");

    // A holder that stops renewing: waiting outlasts its lease, then it is taken over.
    emulator.insert(lease("build-8", &now_micro(), 1));
    let options = ApplyOptions {
        lock: LockOptions { wait: Duration::from_secs(20), ..LockOptions::default() },
        ..quick_wait()
    };
    let outcome = deploy_with(&emulator, full_shop("a"), &options).await.unwrap();
    assert_eq!(outcome.revision, Some(1));
    assert_eq!(outcome.warnings.len(), 1, "{:?}", outcome.warnings);
    assert!(
        outcome.warnings[0].starts_with(
            "took over the lock of bundle shop in namespace shop from deploy by alice@build-8 (pid 4242)"
        ),
        "{:?}",
        outcome.warnings
    );

    // A killed deploy's lock, long expired: taken over at once.
    emulator.insert(lease("build-9", "2026-01-01T00:00:05.000000Z", 60));
    let outcome = deploy_with(&emulator, full_shop("b"), &quick_wait()).await.unwrap();
    assert_eq!(outcome.revision, Some(2));
    assert!(outcome.warnings[0].contains("not renewed since 2026-01-01T00:00:05Z"));
    assert!(emulator.get("Lease", NS, LEASE).is_none());
}

#[tokio::test]
async fn the_lock_is_renewed_while_a_long_deploy_runs() {
    let emulator = KubeEmulator::start();
    emulator.set_behaviour("web", Behaviour::NeverReady);
    let slow = ApplyOptions {
        wait: Some(WaitOptions { timeout: Duration::from_secs(7), ..WaitOptions::default() }),
        lock: LockOptions { duration: Duration::from_secs(2), ..LockOptions::default() },
        ..quick_wait()
    };
    let second = async {
        // Well past the first deploy's 2 s lease: only renewal keeps it alive.
        tokio::time::sleep(Duration::from_secs(5)).await;
        deploy_with(&emulator, full_shop("b"), &quick_wait()).await
    };
    let (first, second) = tokio::join!(deploy_with(&emulator, full_shop("a"), &slow), second);
    assert!(matches!(first, Err(DeployError::Timeout { .. })), "{first:?}");
    assert!(matches!(second, Err(DeployError::Locked { .. })), "{second:?}");
    assert_eq!(record_status(&emulator, 1).as_deref(), Some("failed"));
    assert!(emulator.get("Lease", NS, LEASE).is_none(), "released after failing");
}

#[tokio::test]
async fn a_bundle_changed_between_preflight_and_lock_is_not_applied() {
    let emulator = KubeEmulator::start();
    emulator.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    let cluster = cluster(&emulator).await;
    let stale = cluster.prepare(full_shop("a")).await.unwrap();
    deploy(&emulator, full_shop("b")).await;
    let writes = emulator.writes().len();
    let error = cluster.apply(&stale, &quick_wait(), &NoProgress).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "bundle shop in namespace shop changed since preflight (now at revision 1, by another operation); nothing was applied: run again"
    );
    let written: Vec<String> = emulator.writes()[writes..].to_vec();
    assert_eq!(
        written,
        [
            format!("POST /apis/coordination.k8s.io/v1/namespaces/{NS}/leases"),
            format!("DELETE /apis/coordination.k8s.io/v1/namespaces/{NS}/leases/{LEASE}"),
        ],
        "only the lock"
    );
    assert_eq!(emulator.get("ConfigMap", NS, "web-config").unwrap()["data"]["setting"], "b");
}

#[tokio::test]
async fn objects_of_another_bundle_or_tool_are_not_taken_over_without_adopt() {
    let emulator = KubeEmulator::start();
    emulator.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    // Bundle iot deployed web-config; kubectl created the web Service.
    let mut theirs = config_map("web", "web-config", "iot");
    theirs["metadata"]["namespace"] = json!(NS);
    theirs["metadata"]["labels"][BUNDLE_LABEL] = json!("iot");
    emulator.insert(theirs);
    emulator.insert(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": NS}, "spec": {"ports": [{"port": 8080}]}}));
    let cluster = cluster(&emulator).await;
    let error = cluster.prepare(full_shop("a")).await.err().expect("preflight fails");
    let text = error.to_string();
    assert!(
        text.contains("preflight: ConfigMap/shop/web-config: bundle iot manages it (label charmer.io/bundle=iot); deploy does not take it over silently (hint: deploy with --adopt"),
        "{text}"
    );
    assert!(
        text.contains("preflight: Service/shop/web: it exists and is managed by another tool (field manager kubectl), not by charmer"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 2, "{text}");
    assert_eq!(emulator.get("ConfigMap", NS, "web-config").unwrap()["data"]["setting"], "iot");

    let prepared = cluster
        .prepare_with(full_shop("a"), &PrepareOptions { adopt: true, ..Default::default() })
        .await
        .expect("adopt passes preflight");
    assert_eq!(
        prepared.notes(),
        [
            "adopting ConfigMap/shop/web-config: bundle iot manages it (label charmer.io/bundle=iot)",
            "adopting Service/shop/web: it exists and is managed by another tool (field manager kubectl), not by charmer",
        ]
    );
    cluster.apply(&prepared, &quick_wait(), &NoProgress).await.unwrap();
    let adopted = emulator.get("ConfigMap", NS, "web-config").unwrap();
    assert_eq!(adopted["metadata"]["labels"][BUNDLE_LABEL], "shop");
    assert_eq!(adopted["data"]["setting"], "a");
}

#[tokio::test]
async fn rollback_on_failure_reapplies_the_last_deployed_revision() {
    let emulator = KubeEmulator::start();
    deploy(&emulator, full_shop("a")).await;
    let typo = "registry.local:5000/web:2-typo";
    emulator.set_image_behaviour(typo, Behaviour::Failing("ImagePullBackOff"));
    let mut broken = full_shop("a");
    broken.objects[0].object["spec"]["template"]["spec"]["containers"][0]["image"] = json!(typo);
    let options = ApplyOptions { rollback_on_failure: true, ..quick_wait() };
    let error = deploy_with(&emulator, broken, &options).await.unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, DeployError::RolledBack { to: 1, revision: 3, .. }), "{text}");
    assert!(
        text.starts_with("Deployment/shop/web: pod web-g2-0 container web: ImagePullBackOff")
            && text.ends_with("; rolled back to revision 1 (recorded as revision 3)"),
        "{text}"
    );
    let web = emulator.get("Deployment", NS, "web").unwrap();
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.local:5000/web:1"
    );
    let cluster = cluster(&emulator).await;
    let status = cluster.status("shop", NS).await.unwrap();
    let states: Vec<(u32, RecordStatus)> =
        status.revisions.iter().map(|r| (r.revision, r.status)).collect();
    assert_eq!(
        states,
        [(1, RecordStatus::Superseded), (2, RecordStatus::Failed), (3, RecordStatus::Deployed)]
    );
    let reason = status.revisions[1].reason.as_deref().unwrap();
    assert!(reason.contains("ImagePullBackOff"), "{reason}");
}

fn static_volume(name: &str, size: &str, modes: &[&str]) -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
        "spec": {"storageClassName": "manual", "capacity": {"storage": size}, "accessModes": modes,
                 "hostPath": {"path": format!("/data/{name}")}},
        "status": {"phase": "Available"}})
}

#[tokio::test]
async fn a_pre_created_volume_of_a_class_with_no_storage_class_object_satisfies_preflight() {
    let emulator = KubeEmulator::start();
    let mut data = claim("db", "data");
    data["spec"]["storageClassName"] = json!("manual");
    data["spec"]["resources"]["requests"]["storage"] = json!("8Gi");
    let plan = shop(vec![("db", data.clone())]);
    // Too small, wrong access mode: neither fits.
    emulator.insert(static_volume("small", "1Gi", &["ReadWriteOnce"]));
    emulator.insert(static_volume("shared-only", "20Gi", &["ReadOnlyMany"]));
    let cluster = cluster(&emulator).await;
    let error = cluster.prepare(plan.clone()).await.err().expect("nothing fits");
    assert!(
        error.to_string().contains("PersistentVolumeClaim/shop/data: storage class \"manual\" does not exist in the cluster, and no pre-created PersistentVolume of that class fits it"),
        "{error}"
    );
    emulator.insert(static_volume("mongodb-pv", "10Gi", &["ReadWriteOnce", "ReadOnlyMany"]));
    emulator.insert(static_volume("huge", "1Ti", &["ReadWriteOnce"]));
    let prepared = cluster.prepare(plan).await.expect("the pre-created volume fits");
    assert_eq!(
        prepared.notes(),
        ["PersistentVolumeClaim/shop/data: will bind the pre-created PersistentVolume mongodb-pv (storageClassName \"manual\", 10Gi, ReadWriteOnce, ReadOnlyMany)"],
        "the smallest volume that fits"
    );
    // Two claims cannot bind one volume.
    let mut second = data.clone();
    second["metadata"]["name"] = json!("logs");
    let mut two = shop(vec![("db", data)]);
    two.objects.push(PlanObject { app: "db".into(), object: second });
    let prepared = cluster.prepare(two).await.expect("two volumes fit");
    assert!(prepared.notes()[1].contains("PersistentVolume huge"), "{:?}", prepared.notes());
}

// The CLI: Ctrl-C during the wait, status, and a re-run that converges.

#[test]
fn sigint_mid_wait_records_interrupted_releases_the_lock_and_a_rerun_converges() {
    let emulator = KubeEmulator::start();
    emulator.set_behaviour("web", Behaviour::NeverReady);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_charmer"))
        .env_remove("RUST_LOG")
        .current_dir(crate::deploy::demo())
        .args(["deploy", "bundles/demo", "--timeout", "5m", "--kubeconfig"])
        .arg(emulator.kubeconfig())
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    // Waiting: web is applied (and never ready), the record is pending.
    while emulator.get("Deployment", "demo", "web").is_none()
        || emulator.get("Secret", "demo", "charmer.demo.v1").is_none()
    {
        assert!(started.elapsed() < Duration::from_secs(60), "the deploy never got to waiting");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The last object is applied: a moment later the deploy is polling for readiness.
    std::thread::sleep(Duration::from_secs(1));
    assert!(emulator.get("Lease", "demo", "charmer.demo.lock").is_some(), "held while running");
    // The shell's builtin `kill` (a fresh Debian machine may lack procps' /bin/kill).
    let status = std::process::Command::new("sh")
        .args(["-c", &format!("kill -INT {}", child.id())])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("error: interrupted while waiting (all 5 objects applied); revision 1 is recorded as interrupted: run the same command again to converge"),
        "{stderr}"
    );
    assert!(emulator.get("Lease", "demo", "charmer.demo.lock").is_none(), "lock released");
    let record = emulator.get("Secret", "demo", "charmer.demo.v1").unwrap();
    assert_eq!(record["metadata"]["labels"]["charmer.io/status"], "interrupted");

    let (code, status, err) = crate::deploy::charmer(&emulator, &["status", "demo"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        status.contains("revisions:\n  1    interrupted ")
            && status.ends_with("  interrupted while waiting (all 5 objects applied)\n"),
        "{status}"
    );

    emulator.set_behaviour("web", Behaviour::Ready);
    // The workload must change for the simulated controller to act on the new behaviour.
    let (code, out, err) = crate::deploy::charmer(
        &emulator,
        &["deploy", "bundles/demo", "--timeout", "30s", "--config", "web.replicas=2"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.ends_with("demo deployed to namespace demo as revision 2, ready\n"), "{out}");
}

#[test]
fn cli_remove_lists_what_it_keeps_and_destroy_storage_deletes_it() {
    let emulator = KubeEmulator::start();
    let (code, _, err) =
        crate::deploy::charmer(&emulator, &["deploy", "bundles/demo", "--timeout", "30s"]);
    assert_eq!(code, 0, "{err}");
    // The demo's mydb has no storage: its credentials go with it.
    let (code, out, err) = crate::deploy::charmer(&emulator, &["remove", "demo"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("deleted Secret/demo/mydb-credentials"), "{out}");
    assert!(out.ends_with("5 objects and 1 revision record deleted\n"), "{out}");

    let claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "web-data", "namespace": "demo",
        "labels": {BUNDLE_LABEL: "demo", KEPT_FROM_LABEL: "demo"}}, "spec": {"accessModes": ["ReadWriteOnce"]}});
    emulator.insert(claim);
    let (code, _, err) = crate::deploy::charmer(&emulator, &["remove", "demo"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "error: bundle demo is not deployed in namespace demo; kept from it: PersistentVolumeClaim/demo/web-data (delete them with --destroy-storage)\n")
    );
    let (code, out, err) =
        crate::deploy::charmer(&emulator, &["remove", "demo", "--destroy-storage"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "deleted PersistentVolumeClaim/demo/web-data (gone once its finalizers let go: kubernetes.io/pvc-protection)\n\
         removed demo from namespace demo: 1 object and 0 revision records deleted\n"
    );
    assert!(emulator.get("PersistentVolumeClaim", "demo", "web-data").is_none());
}

/// The demo with storage: mydb's StatefulSet gets a claim template, and a backup claim of class
/// `manual` that only a pre-created PersistentVolume can satisfy (seed 000's workaround).
fn demo_with_storage() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let copied = std::process::Command::new("cp")
        .arg("-r")
        .arg(crate::deploy::demo().join("."))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(copied.success());
    let templates = dir.path().join("charms/db/templates");
    let mut sts = std::fs::read_to_string(templates.join("sts.yaml")).unwrap();
    sts.push_str(
        "  volumeClaimTemplates:\n    - metadata: {name: data}\n      spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n",
    );
    std::fs::write(templates.join("sts.yaml"), sts).unwrap();
    std::fs::write(
        templates.join("backup.yaml"),
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: {{ app }}-backup\nspec:\n  storageClassName: manual\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 5Gi}}\n",
    )
    .unwrap();
    dir
}

#[test]
fn cli_remove_keeps_the_databases_claims_and_password_and_a_redeploy_uses_them() {
    let emulator = KubeEmulator::start();
    default_storage_class(&emulator);
    emulator.insert(static_volume("backup-pv", "10Gi", &["ReadWriteOnce"]));
    let demo = demo_with_storage();
    let run = |args: &[&str]| crate::deploy::charmer_in(demo.path(), &emulator, args);
    let (code, out, err) = run(&["deploy", "bundles/demo", "--timeout", "30s"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("note: PersistentVolumeClaim/demo/mydb-backup: will bind the pre-created PersistentVolume backup-pv (storageClassName \"manual\", 10Gi, ReadWriteOnce)\n"),
        "{out}"
    );
    let password =
        decoded(&emulator.get("Secret", "demo", "mydb-credentials").unwrap(), "root-password");

    let (code, out, err) = run(&["remove", "demo"]);
    assert_eq!(code, 0, "{err}");
    for kept in [
        "kept    PersistentVolumeClaim/demo/mydb-backup (data): delete with --destroy-storage\n",
        "kept    Secret/demo/mydb-credentials (credentials): delete with --destroy-storage\n",
        "kept    PersistentVolumeClaim/demo/data-mydb-0 (data): delete with --destroy-storage\n",
    ] {
        assert!(out.contains(kept), "{kept:?} in:\n{out}");
    }
    assert!(
        out.ends_with("removed demo from namespace demo: 4 objects and 1 revision record deleted, 3 kept (a later deploy of demo adopts them)\n"),
        "{out}"
    );

    let (code, out, err) = run(&["deploy", "bundles/demo", "--timeout", "30s"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("adopted    Secret/demo/mydb-credentials (kept from bundle demo)\n")
            && out.contains(
                "adopted    PersistentVolumeClaim/demo/data-mydb-0 (kept from bundle demo)\n"
            )
            && !out.contains("generated root-password"),
        "{out}"
    );
    let again = emulator.get("Secret", "demo", "mydb-credentials").unwrap();
    assert_eq!(decoded(&again, "root-password"), password, "the data's password is kept");

    let (code, out, err) = run(&["remove", "demo", "--destroy-storage", "--yes"]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("kept"), "{out}");
    for gone in ["mydb-backup", "data-mydb-0"] {
        assert!(emulator.get("PersistentVolumeClaim", "demo", gone).is_none(), "{gone}");
    }
    assert!(emulator.get("Secret", "demo", "mydb-credentials").is_none());
}

#[tokio::test]
async fn a_revision_number_taken_by_another_operation_is_never_overwritten() {
    let emulator = KubeEmulator::start();
    emulator.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    let cluster = cluster(&emulator).await;
    let prepared = cluster.prepare(full_shop("a")).await.unwrap();
    // An operation that ignores the lock (an older charmer) writes revision 1 meanwhile,
    // without the record label preflight and the lock's re-check select on.
    emulator.insert(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "charmer.shop.v1", "namespace": NS}, "data": {"release": "b3RoZXI="}}));
    let error = cluster.apply(&prepared, &quick_wait(), &NoProgress).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "revision record charmer.shop.v1: another operation recorded this revision first; run again"
    );
    let other = emulator.get("Secret", NS, "charmer.shop.v1").unwrap();
    assert_eq!(other["data"]["release"], "b3RoZXI=", "not overwritten");
    assert!(emulator.get("Deployment", NS, "web").is_none(), "nothing applied");
    assert!(emulator.get("Lease", NS, LEASE).is_none(), "lock released");
}

#[tokio::test]
async fn a_node_port_another_bundle_holds_fails_preflight_naming_the_service_that_holds_it() {
    let emulator = KubeEmulator::start();
    let node_port = |name: &str| {
        let mut s = service(name);
        s["spec"]["type"] = json!("NodePort");
        s["spec"]["ports"][0]["nodePort"] = json!(30080);
        s
    };
    deploy(&emulator, shop(vec![("web", node_port("web"))])).await;
    let mut other = shop(vec![("web", node_port("web"))]);
    other.bundle = "iot".into();
    other.namespace = "iot".into();
    let error = deploy_with(&emulator, other, &quick_wait()).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "preflight: Service/iot/web: node port 30080 is already allocated: another Service, shop/web, holds it (node ports are unique in the whole cluster) (hint: set another node port for this application (or leave it unset for one the cluster picks), or free the port first)"
    );
    assert!(emulator.get("Namespace", "", "iot").is_none(), "nothing written");
}

#[tokio::test]
async fn a_cluster_wide_object_of_another_bundle_is_refused_even_into_a_new_namespace() {
    let emulator = KubeEmulator::start();
    let role = |bundle: &str| {
        let mut labels = labels("web");
        labels[BUNDLE_LABEL] = json!(bundle);
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": "reader", "labels": labels}, "rules": []})
    };
    emulator.insert(role("iot"));
    let cluster = cluster(&emulator).await;
    let error = cluster.prepare(shop(vec![("web", role("shop"))])).await.err().unwrap();
    assert!(
        error.to_string().starts_with(
            "preflight: ClusterRole/reader: bundle iot manages it (label charmer.io/bundle=iot)"
        ),
        "{error}"
    );
    assert!(emulator.get("Namespace", "", NS).is_none(), "nothing was created");
}

/// Triggers an interrupt once `after` objects are applied, as Ctrl-C would mid-apply.
struct StopAfter {
    after: usize,
    seen: std::sync::atomic::AtomicUsize,
    interrupt: Interrupt,
}

impl Progress for StopAfter {
    fn event(&self, event: Event) {
        if let Event::Applied { .. } = event {
            let seen = self.seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            if seen == self.after {
                self.interrupt.trigger();
            }
        }
    }
}

#[tokio::test]
async fn an_interrupt_mid_apply_records_what_may_be_applied_and_a_rerun_converges() {
    let emulator = KubeEmulator::start();
    let interrupt = Interrupt::default();
    let stop = StopAfter { after: 4, seen: Default::default(), interrupt: interrupt.clone() };
    let options = ApplyOptions { interrupt: Some(interrupt), ..quick_wait() };
    let cluster = cluster(&emulator).await;
    let prepared = cluster.prepare(full_shop("a")).await.unwrap();
    let error = cluster.apply(&prepared, &options, &stop).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "interrupted after applying 4 of 6 objects; revision 1 is recorded as interrupted: run the same command again to converge"
    );
    assert_eq!(record_status(&emulator, 1).as_deref(), Some("interrupted"));
    assert!(emulator.get("ConfigMap", NS, "web-config").is_some(), "the 4th object was applied");
    assert!(emulator.get("Deployment", NS, "web").is_none(), "the 6th was not");
    assert!(emulator.get("Lease", NS, LEASE).is_none(), "lock released");

    // The interrupted revision's inventory covers what it applied: a re-run without web
    // prunes web's config map.
    let db_only = shop(vec![
        ("db", deployment("db", "registry.local:5000/db:1")),
        ("db", generated_secret("db", "admin")),
        ("db", service("db")),
    ]);
    let outcome = deploy(&emulator, db_only).await;
    assert_eq!(outcome.revision, Some(2));
    let pruned: Vec<String> = outcome.pruned.iter().map(ToString::to_string).collect();
    assert_eq!(pruned, ["ConfigMap/shop/web-config"]);
    let status = cluster.status("shop", NS).await.unwrap();
    let states: Vec<(u32, RecordStatus)> =
        status.revisions.iter().map(|r| (r.revision, r.status)).collect();
    assert_eq!(states, [(1, RecordStatus::Interrupted), (2, RecordStatus::Deployed)]);
    assert_eq!(
        status.revisions[0].reason.as_deref(),
        Some("interrupted after applying 4 of 6 objects")
    );
}
