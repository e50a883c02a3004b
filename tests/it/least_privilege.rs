//! Deploying as a namespace admin (issue #18): the emulator's RBAC gives the user only the
//! built-in aggregated `admin` role in the namespace, as shared clusters do for tenants.

use charmer::deploy::{NoProgress, PrepareOptions, RecordStatus, RemoveOptions};
use serde_json::json;

use crate::deploy::{cluster, deploy_with, full_shop, labels, quick_wait, shop, NS};
use crate::support::kube_emulator::{namespace_admin, Grant, KubeEmulator};

fn tenant(emulator: &KubeEmulator, leases: bool) {
    emulator.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    emulator.restrict_to(namespace_admin(NS, leases));
}

fn with_claim(mut plan: charmer::deploy::DeployPlan) -> charmer::deploy::DeployPlan {
    plan.objects.push(charmer::deploy::PlanObject {
        app: "db".into(),
        object: json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "db-data", "labels": labels("db")},
            "spec": {"storageClassName": "fast", "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}}}),
    });
    plan
}

const STORAGE_WARNING: &str = "storage class not verified: no permission to list \
                               storageclasses.storage.k8s.io at the cluster scope";

#[tokio::test]
async fn a_namespace_admin_deploys_sees_status_and_removes() {
    let emulator = KubeEmulator::start();
    tenant(&emulator, true);
    let cluster = cluster(&emulator).await;
    let prepared = cluster.prepare(with_claim(full_shop("a"))).await.expect("preflight passes");
    assert_eq!(prepared.warnings(), [STORAGE_WARNING]);
    assert!(prepared.namespace_exists());
    cluster.apply(&prepared, &quick_wait(), &NoProgress).await.expect("deploy succeeds");
    assert!(emulator.get("PersistentVolumeClaim", NS, "db-data").is_some());

    let status = cluster.status("shop", NS).await.expect("status works");
    assert_eq!((status.revision, status.state), (1, RecordStatus::Deployed));

    deploy_with(&emulator, with_claim(full_shop("b")), &quick_wait()).await.expect("redeploy");
    let removal = cluster
        .remove("shop", NS, &RemoveOptions::default(), &NoProgress)
        .await
        .expect("remove works");
    assert_eq!(removal.records, ["charmer.shop.v1", "charmer.shop.v2"]);
    assert!(emulator.get("Deployment", NS, "web").is_none());
}

#[tokio::test]
async fn strict_preflight_fails_on_what_it_cannot_verify_and_writes_nothing() {
    let emulator = KubeEmulator::start();
    tenant(&emulator, true);
    let options = PrepareOptions { strict: true, ..Default::default() };
    let error = cluster(&emulator)
        .await
        .prepare_with(with_claim(full_shop("a")), &options)
        .await
        .err()
        .expect("preflight fails");
    assert_eq!(
        error.to_string(),
        "preflight: storage class: not verified: storageclasses.storage.k8s.io is forbidden: \
         User \"deployer\" cannot list resource \"storageclasses\" in API group \"storage.k8s.io\" \
         at the cluster scope (hint: grant list storageclasses.storage.k8s.io at the cluster scope \
         (or deploy without --strict-preflight to only warn))"
    );
    assert_eq!(emulator.writes(), Vec::<String>::new());
}

#[tokio::test]
async fn a_missing_namespace_a_tenant_may_not_create_is_one_problem() {
    let emulator = KubeEmulator::start();
    emulator.restrict_to(namespace_admin(NS, true));
    let error =
        cluster(&emulator).await.prepare(full_shop("a")).await.err().expect("preflight fails");
    assert_eq!(
        error.to_string(),
        "preflight: namespace shop: does not exist and cannot be created: namespaces \"shop\" is \
         forbidden: User \"deployer\" cannot patch resource \"namespaces\" in API group \"\" in \
         the namespace \"shop\" (hint: ask an administrator to create it, or deploy into a \
         namespace you may use with --namespace)"
    );
    assert_eq!(emulator.writes(), Vec::<String>::new());
}

#[tokio::test]
async fn without_leases_the_lock_is_a_preflight_problem_naming_the_verbs() {
    let emulator = KubeEmulator::start();
    tenant(&emulator, false);
    let error =
        cluster(&emulator).await.prepare(full_shop("a")).await.err().expect("preflight fails");
    assert_eq!(
        error.to_string(),
        "preflight: Lease/shop/charmer.shop.lock: the bundle's lock needs get, create, update, \
         delete on leases (coordination.k8s.io) in namespace shop, which this identity may not \
         do (hint: ask an administrator to grant the Role `charmer rbac` prints (Kubernetes \
         releases whose built-in edit and admin roles lack Leases need it))"
    );
    // Granting exactly the lock's verbs is enough.
    let mut grants = namespace_admin(NS, false);
    grants.push(Grant::new(
        Some(NS),
        &["coordination.k8s.io"],
        &["leases"],
        &["get", "create", "update", "delete"],
    ));
    emulator.restrict_to(grants);
    deploy_with(&emulator, full_shop("a"), &quick_wait()).await.expect("deploy succeeds");
}

#[tokio::test]
async fn cluster_scoped_objects_a_tenant_may_not_read_are_named() {
    let emulator = KubeEmulator::start();
    tenant(&emulator, true);
    let class = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "shop-local", "labels": labels("db")}, "provisioner": "kubernetes.io/no-provisioner"});
    let error = cluster(&emulator)
        .await
        .prepare(shop(vec![("db", class)]))
        .await
        .err()
        .expect("preflight fails");
    assert_eq!(
        error.to_string(),
        "preflight: StorageClass/shop-local: cannot be read: storageclasses.storage.k8s.io \
         \"shop-local\" is forbidden: User \"deployer\" cannot get resource \"storageclasses\" in \
         API group \"storage.k8s.io\" at the cluster scope (hint: deploying it needs permissions \
         this identity lacks; `charmer rbac BUNDLE` prints the Role (and ClusterRole) to grant)"
    );
}

/// The grants a Role or ClusterRole of `charmer rbac` gives when bound (a Role in its
/// namespace, a ClusterRole by a ClusterRoleBinding).
fn grants_of(role: &serde_json::Value) -> Vec<Grant> {
    let namespace = role["metadata"]["namespace"].as_str();
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
    };
    role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| Grant {
            groups: strings(&rule["apiGroups"]),
            resources: strings(&rule["resources"]),
            verbs: strings(&rule["verbs"]),
            namespace: namespace.map(str::to_string),
        })
        .collect()
}

#[tokio::test]
async fn the_printed_role_is_enough_to_deploy_see_status_roll_back_and_remove() {
    let emulator = KubeEmulator::start();
    emulator.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    let plan = with_claim(full_shop("a"));
    let roles = charmer::deploy::roles(&plan).unwrap();
    assert!(roles.cluster_role.is_none(), "a namespaced bundle needs no ClusterRole");
    emulator.restrict_to(grants_of(&roles.role));
    let cluster = cluster(&emulator).await;
    let prepared = cluster.prepare(plan).await.expect("preflight passes");
    assert_eq!(prepared.warnings(), [STORAGE_WARNING]);
    cluster.apply(&prepared, &quick_wait(), &NoProgress).await.expect("deploy succeeds");
    deploy_with(&emulator, with_claim(full_shop("b")), &quick_wait()).await.expect("redeploy");
    let (plan, _) = cluster.rollback_plan("shop", NS, None).await.expect("rollback plan");
    let prepared = cluster.prepare(plan).await.expect("rollback preflight");
    cluster.apply(&prepared, &quick_wait(), &NoProgress).await.expect("rollback");
    assert_eq!(cluster.status("shop", NS).await.expect("status").revision, 3);
    let options = RemoveOptions { destroy_storage: true, ..Default::default() };
    cluster.remove("shop", NS, &options, &NoProgress).await.expect("remove works");
    assert!(emulator.get("PersistentVolumeClaim", NS, "db-data").is_none());

    // One verb less and deploy stops before writing anything.
    let mut fewer = grants_of(&roles.role);
    for grant in &mut fewer {
        grant.verbs.retain(|v| !(grant.resources.contains(&"leases".to_string()) && v == "update"));
    }
    emulator.restrict_to(fewer);
    let writes = emulator.writes().len();
    let error = cluster.prepare(full_shop("a")).await.err().expect("preflight fails");
    assert!(error.to_string().contains("the bundle's lock needs update on leases"), "{error}");
    assert_eq!(emulator.writes().len(), writes);
}

#[test]
fn cli_rbac_prints_a_valid_role_that_lets_a_tenant_deploy_the_demo() {
    let out = crate::support::charmer()
        .current_dir(crate::deploy::demo())
        .args(["rbac", "bundles/demo"])
        .output()
        .unwrap();
    let (stdout, stderr) =
        (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap());
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr, "", "every kind of the demo is known");
    let documents: Vec<serde_json::Value> = stdout
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_yaml::from_str(d).unwrap())
        .collect();
    let kinds: Vec<&str> = documents.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Role"], "no cluster-scoped objects: no ClusterRole");
    assert_eq!(documents[0]["metadata"]["namespace"], "demo");

    if crate::support::tools_present(&["kubernetes-validate"]) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rbac.yaml");
        std::fs::write(&file, &stdout).unwrap();
        for version in crate::charms::KUBERNETES_VERSIONS {
            crate::charms::validate(std::slice::from_ref(&file), version);
        }
    }

    let emulator = KubeEmulator::start();
    emulator.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}}));
    emulator.restrict_to(grants_of(&documents[0]));
    let args = ["deploy", "bundles/demo", "--timeout", "30s", "--skip-image-check"];
    let (code, out, err) = crate::deploy::charmer(&emulator, &args);
    assert_eq!(code, 0, "{err}");
    assert!(out.ends_with("demo deployed to namespace demo as revision 1, ready\n"), "{out}");
    assert!(!err.contains("warning:"), "{err}");

    // Without reading its namespace, deploy warns it could not verify it; strict, it fails.
    let mut grants = grants_of(&documents[0]);
    for grant in &mut grants {
        grant.resources.retain(|r| r != "namespaces");
    }
    grants.retain(|g| !g.resources.is_empty());
    emulator.restrict_to(grants);
    let args = [
        "deploy",
        "bundles/demo",
        "--timeout",
        "30s",
        "--config",
        "web.replicas=4",
        "--skip-image-check",
    ];
    let (code, _, err) = crate::deploy::charmer(&emulator, &args);
    assert_eq!(code, 0, "{err}");
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning: ")).collect();
    assert_eq!(
        warnings,
        ["warning: namespace demo not verified: no permission to get namespaces \"demo\"; \
          assuming it exists"]
    );
    let (code, _, err) =
        crate::deploy::charmer(&emulator, &[&args[..], &["--strict-preflight"]].concat());
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "error: preflight: namespace demo: not verified: namespaces \"demo\" is forbidden"
        ),
        "{err}"
    );
    let (code, out, err) = crate::deploy::charmer(&emulator, &["status", "demo"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("mydb"), "{out}");
    let (code, _, err) = crate::deploy::charmer(&emulator, &["remove", "demo", "--yes"]);
    assert_eq!(code, 0, "{err}");
    assert!(emulator.get("StatefulSet", "demo", "mydb").is_none());
}

#[tokio::test]
async fn a_bundle_with_cluster_scoped_objects_needs_and_gets_a_cluster_role() {
    let emulator = KubeEmulator::start();
    emulator.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    let class = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "shop-local", "labels": labels("db")}, "provisioner": "kubernetes.io/no-provisioner"});
    let plan =
        || shop(vec![("db", class.clone()), ("web", crate::deploy::config_map("web", "c", "a"))]);
    let roles = charmer::deploy::roles(&plan()).unwrap();
    let cluster_role = roles.cluster_role.expect("a ClusterRole for the StorageClass");
    assert_eq!(
        cluster_role["rules"],
        json!([{"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"],
                "verbs": ["create", "delete", "get", "list", "patch", "watch"]}])
    );
    // The Role alone is not enough; with the ClusterRole bound, deploy and remove work.
    emulator.restrict_to(grants_of(&roles.role));
    assert!(cluster(&emulator).await.prepare(plan()).await.is_err());
    emulator.restrict_to([grants_of(&roles.role), grants_of(&cluster_role)].concat());
    deploy_with(&emulator, plan(), &quick_wait()).await.expect("deploy succeeds");
    assert!(emulator.get("StorageClass", "", "shop-local").is_some());
    let cluster = cluster(&emulator).await;
    cluster.remove("shop", NS, &RemoveOptions::default(), &NoProgress).await.expect("remove");
    assert!(emulator.get("StorageClass", "", "shop-local").is_none());
}
