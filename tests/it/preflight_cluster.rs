//! Pre-flight reads the cluster as it is, before any write (#26): node ports held anywhere,
//! host directories of other PersistentVolumes, the keys pods read from Secrets and
//! ConfigMaps, images looked up in a real registry (Debian's docker-registry), logins
//! without pull secrets, and images moving to another registry.

use std::sync::Arc;

use charmer::deploy::{DeployPlan, NoProgress, PrepareOptions, RegistryAccess};
use charmer::registry::auth::{Credentials, Keychain};
use charmer::registry::client::{Client, ClientOptions};
use charmer::transport::TlsOptions;
use serde_json::{json, Value};

use crate::deploy::{cluster, deploy_with, deployment, labels, quick_wait, service, shop, NS};
use crate::support::kube_emulator::{namespace_admin, KubeEmulator};
use crate::support::registry::{free_port, Kind, Layout, Registry, PASSWORD, USER};

fn node_port_service(name: &str, port: i64) -> Value {
    let mut s = service(name);
    s["spec"]["type"] = json!("NodePort");
    s["spec"]["ports"][0]["nodePort"] = json!(port);
    s
}

async fn preflight(
    emulator: &KubeEmulator,
    plan: DeployPlan,
    options: &PrepareOptions,
) -> Result<charmer::deploy::Prepared, String> {
    let cluster = cluster(emulator).await;
    cluster.prepare_with(plan, options).await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_node_port_taken_in_another_namespace_is_named_and_our_own_is_not_a_conflict() {
    let emulator = KubeEmulator::start();
    emulator.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}));
    let mut other = node_port_service("frontend", 30135);
    other["metadata"]["namespace"] = json!("a");
    emulator.insert(other);
    let plan = shop(vec![("web", node_port_service("web", 30135))]);
    let error =
        preflight(&emulator, plan, &PrepareOptions::default()).await.err().expect("refused");
    assert_eq!(
        error,
        "preflight: Service/shop/web: node port 30135 is already allocated: another Service, \
         a/frontend, holds it (node ports are unique in the whole cluster) (hint: set another \
         node port for this application (or leave it unset for one the cluster picks), or \
         free the port first)"
    );
    assert_eq!(emulator.writes(), Vec::<String>::new(), "nothing written");

    // The bundle's own Service keeps its port across deploys.
    deploy_with(&emulator, shop(vec![("web", node_port_service("web", 30136))]), &quick_wait())
        .await
        .unwrap();
    let again = shop(vec![("web", node_port_service("web", 30136))]);
    preflight(&emulator, again, &PrepareOptions::default()).await.unwrap();
}

#[tokio::test]
async fn an_identity_that_may_not_list_services_cluster_wide_gets_a_warning() {
    let emulator = KubeEmulator::start();
    emulator.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    emulator.restrict_to(namespace_admin(NS, true));
    let plan = shop(vec![("web", node_port_service("web", 30200))]);
    let prepared = preflight(&emulator, plan.clone(), &PrepareOptions::default()).await.unwrap();
    assert!(
        prepared.warnings().contains(
            &"node ports not verified: no permission to list services at the cluster scope"
                .to_string()
        ),
        "{:?}",
        prepared.warnings()
    );
    let strict = PrepareOptions { strict: true, ..PrepareOptions::default() };
    let error = preflight(&emulator, plan, &strict).await.err().expect("refused");
    assert!(
        error.contains("preflight: node ports: not verified: services is forbidden"),
        "{error}"
    );
}

fn host_path_volume(name: &str, path: &str, claim: (&str, &str)) -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
           "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                    "claimRef": {"namespace": claim.0, "name": claim.1},
                    "hostPath": {"path": path, "type": "DirectoryOrCreate"}}})
}

#[tokio::test]
async fn a_host_path_another_persistent_volume_uses_is_refused_naming_it_and_its_claim() {
    let emulator = KubeEmulator::start();
    emulator.insert(host_path_volume("a-mongodb-data", "/srv/mongo", ("a", "data-mongodb-0")));
    let mut volume = host_path_volume("shop-db-data", "/srv/mongo/", (NS, "data-db-0"));
    volume["metadata"]["labels"] = labels("db");
    let plan = shop(vec![("db", volume.clone())]);
    let error =
        preflight(&emulator, plan, &PrepareOptions::default()).await.err().expect("refused");
    assert_eq!(
        error,
        "preflight: PersistentVolume/shop-db-data: host path /srv/mongo/ is already used by \
         PersistentVolume a-mongodb-data (claim a/data-mongodb-0); two volumes on one directory \
         mix two applications' data (hint: give this application another host directory (its \
         host path option), or remove the other volume first if its data is no longer needed)"
    );
    // Another directory passes; so does the bundle's own volume on a re-deploy.
    volume["spec"]["hostPath"]["path"] = json!("/srv/mongo-shop");
    deploy_with(&emulator, shop(vec![("db", volume.clone())]), &quick_wait()).await.unwrap();
    preflight(&emulator, shop(vec![("db", volume)]), &PrepareOptions::default()).await.unwrap();
}

/// `mlflow`, reading the S3 credentials from Secret `mlflow-s3`.
fn mlflow() -> Value {
    let mut d = deployment("web", "registry.local:5000/web:1");
    d["spec"]["template"]["spec"]["containers"][0]["env"] = json!([
        {"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {"name": "mlflow-s3", "key": "AWS_ACCESS_KEY_ID"}}},
        {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": {"name": "mlflow-s3", "key": "AWS_SECRET_ACCESS_KEY"}}},
        {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "tuning", "key": "level", "optional": true}}},
        {"name": "ROOT", "valueFrom": {"secretKeyRef": {"name": "db-credentials", "key": "root-password"}}},
    ]);
    d
}

fn s3_secret(keys: &[&str]) -> Value {
    let data: serde_json::Map<String, Value> =
        keys.iter().map(|k| (k.to_string(), json!("eA=="))).collect();
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "mlflow-s3", "namespace": NS}, "data": data})
}

#[tokio::test]
async fn missing_secret_keys_are_refused_with_hints_naming_them() {
    let emulator = KubeEmulator::start();
    // The generated key counts: deploy fills it on the first deploy.
    let plan =
        || shop(vec![("web", mlflow()), ("db", crate::deploy::generated_secret("db", "admin"))]);
    let error =
        preflight(&emulator, plan(), &PrepareOptions::default()).await.err().expect("refused");
    assert_eq!(
        error,
        "preflight: Secret/shop/mlflow-s3: required by web but missing (hint: create it before \
         deploying: kubectl create namespace shop --dry-run=client -o yaml | kubectl apply -f - \
         && kubectl create secret generic mlflow-s3 -n shop --from-literal=AWS_ACCESS_KEY_ID=... \
         --from-literal=AWS_SECRET_ACCESS_KEY=...)"
    );

    emulator.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    emulator.insert(s3_secret(&["AWS_ACCESS_KEY", "AWS_SECRET_KEY"]));
    let error =
        preflight(&emulator, plan(), &PrepareOptions::default()).await.err().expect("refused");
    assert_eq!(
        error,
        "preflight: Secret/shop/mlflow-s3: lacks keys AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY \
         that web read(s); it holds AWS_ACCESS_KEY, AWS_SECRET_KEY (hint: add them before \
         deploying: kubectl patch secret mlflow-s3 -n shop --type merge -p \
         '{\"stringData\":{\"AWS_ACCESS_KEY_ID\":\"...\",\"AWS_SECRET_ACCESS_KEY\":\"...\"}}')"
    );
    assert_eq!(emulator.writes(), Vec::<String>::new(), "nothing written");
}

#[tokio::test]
async fn the_emulated_kubelet_reports_create_container_config_error_for_a_missing_key() {
    let emulator = KubeEmulator::start();
    emulator.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    emulator.insert(s3_secret(&["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]));
    let mut web = mlflow();
    web["spec"]["template"]["spec"]["containers"][0]["env"].as_array_mut().unwrap().truncate(3);
    let cluster = cluster(&emulator).await;
    let prepared = cluster.prepare(shop(vec![("web", web)])).await.unwrap();
    // Someone replaces the Secret between preflight and the pods' start.
    emulator.delete("Secret", NS, "mlflow-s3");
    emulator.insert(s3_secret(&["AWS_ACCESS_KEY", "AWS_SECRET_KEY"]));
    let error = cluster.apply(&prepared, &quick_wait(), &NoProgress).await.expect_err("refused");
    let text = error.to_string();
    assert!(
        text.contains(
            "pod web-g1-0 container web: CreateContainerConfigError: couldn't find key \
             AWS_ACCESS_KEY_ID in Secret shop/mlflow-s3"
        ),
        "{text}"
    );
}

/// A registry access for `registry` (credentials for it when given), no mirrors, no retries.
fn access(registry: &Registry, login: bool) -> RegistryAccess {
    let tls = match registry.kind {
        Kind::Plain => TlsOptions { insecure_http: true, ..TlsOptions::default() },
        _ => TlsOptions { ca_file: Some(registry.certs().join("ca.crt")), ..TlsOptions::default() },
    };
    let credentials = login.then(|| (registry.host(), Credentials::new(USER, PASSWORD)));
    let keychain = Keychain::new(credentials).unwrap();
    let client = Client::new(ClientOptions { tls, retries: 0, keychain }).unwrap();
    RegistryAccess { client: Arc::new(client), mirrors: Default::default() }
}

/// Pushes a small image to `registry` as `target`.
fn push(registry: &Registry, target: &str) {
    let work = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(&work.path().join("layout"));
    let layer = layout.layer(7, 10_000);
    let image = layout.image("amd64", &[&layer]);
    layout.name(&image, "img");
    layout.push_with_skopeo("img", registry, target);
}

fn with_registry(plan: DeployPlan, host: &str) -> DeployPlan {
    DeployPlan { registry: Some(host.parse().unwrap()), ..plan }
}

#[tokio::test]
async fn an_image_missing_from_a_real_registry_is_refused_unless_the_check_is_skipped() {
    if !crate::support::tools_present(crate::support::REGISTRY_TOOLS) {
        return;
    }
    let registry = Registry::start(Kind::Plain);
    let host = registry.host();
    push(&registry, "web:1");
    let emulator = KubeEmulator::start();
    let plan = || {
        let web = deployment("web", &format!("{host}/web:1"));
        let db = deployment("db", &format!("{host}/db:1"));
        with_registry(shop(vec![("web", web), ("db", db)]), &host)
    };
    let options =
        PrepareOptions { registries: Some(access(&registry, false)), ..Default::default() };
    let error = preflight(&emulator, plan(), &options).await.err().expect("refused");
    assert_eq!(
        error,
        format!(
            "preflight: Deployment/shop/db container db: image {host}/db:1 is not in its registry \
             {host}: the pods would wait in ImagePullBackOff (hint: push it first (`charmer images \
             push ARCHIVE --registry REGISTRY`, or `charmer airgap import`), or deploy with \
             --skip-image-check when the cluster pulls from elsewhere)"
        )
    );
    let skipped = PrepareOptions { registries: None, ..Default::default() };
    preflight(&emulator, plan(), &skipped).await.unwrap();
}

#[tokio::test]
async fn an_unreachable_registry_is_a_warning() {
    let emulator = KubeEmulator::start();
    let host = format!("127.0.0.1:{}", free_port());
    let plan =
        with_registry(shop(vec![("web", deployment("web", &format!("{host}/web:1")))]), &host);
    let tls = TlsOptions { insecure_http: true, ..TlsOptions::default() };
    let client = Client::new(ClientOptions { tls, retries: 0, keychain: Keychain::default() });
    let access = RegistryAccess { client: Arc::new(client.unwrap()), mirrors: Default::default() };
    let options = PrepareOptions { registries: Some(access), ..Default::default() };
    let prepared = preflight(&emulator, plan, &options).await.unwrap();
    let warnings = prepared.warnings().join("\n");
    assert!(
        warnings.starts_with(&format!(
            "images in registry {host} not checked: it cannot be reached from here (cannot reach registry {host}: "
        )),
        "{warnings}"
    );
}

#[tokio::test]
async fn a_registry_asking_for_a_login_while_pods_have_no_pull_secret_is_a_warning() {
    if !crate::support::tools_present(crate::support::REGISTRY_TOOLS) {
        return;
    }
    let registry = Registry::start(Kind::TlsAuth);
    let host = registry.host();
    push(&registry, "web:1");
    push(&registry, "db:1");
    let emulator = KubeEmulator::start();
    let mut db = deployment("db", &format!("{host}/db:1"));
    db["spec"]["template"]["spec"]["imagePullSecrets"] = json!([{"name": "registry-login"}]);
    let web = deployment("web", &format!("{host}/web:1"));
    let pull_secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "registry-login", "labels": labels("db")},
                             "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": "e30="}});
    let plan = with_registry(shop(vec![("web", web), ("db", db), ("db", pull_secret)]), &host);
    let options =
        PrepareOptions { registries: Some(access(&registry, true)), ..Default::default() };
    let prepared = preflight(&emulator, plan.clone(), &options).await.unwrap();
    assert_eq!(
        prepared.warnings(),
        [format!(
            "registry {host} asks for a login, but the pods of application web name no image pull \
             secret (Deployment/shop/web container web): the cluster's pulls are refused unless \
             its nodes hold credentials for it; set the application's image_pull_secret option \
             (a Secret made with `kubectl create secret docker-registry`)"
        )]
    );
    // Without credentials charmer cannot look: that is said too.
    let options =
        PrepareOptions { registries: Some(access(&registry, false)), ..Default::default() };
    let prepared = preflight(&emulator, plan, &options).await.unwrap();
    let warnings = prepared.warnings().join("\n");
    assert!(
        warnings.contains(&format!("images in registry {host} not checked: {host}: HEAD manifest")),
        "{warnings}"
    );
    assert!(warnings.contains("the registry asks for a login"), "{warnings}");
    assert!(
        warnings.contains("the pods of application web name no image pull secret"),
        "{warnings}"
    );
}

#[tokio::test]
async fn images_moving_to_another_registry_are_refused_unless_allowed() {
    let emulator = KubeEmulator::start();
    let relocated = shop(vec![("web", deployment("web", "registry.local:5000/web:1"))]);
    deploy_with(&emulator, relocated, &quick_wait()).await.unwrap();
    // A re-deploy that forgot --registry: the images go back to their public source.
    let mut public = shop(vec![("web", deployment("web", "docker.io/library/nginx:1.27"))]);
    public.registry = None;
    public.apps[0].images = vec!["docker.io/library/nginx:1.27".into()];
    let error = preflight(&emulator, public.clone(), &PrepareOptions::default())
        .await
        .err()
        .expect("refused");
    assert_eq!(
        error,
        "preflight: application web: images move from registry registry.local:5000 (revision 1) \
         to docker.io (hint: deploy with --registry registry.local:5000 as revision 1 was, or pass \
         --allow-registry-change to move the images on purpose)"
    );
    let allow = PrepareOptions { allow_registry_change: true, ..Default::default() };
    let prepared = preflight(&emulator, public, &allow).await.unwrap();
    assert_eq!(
        prepared.notes(),
        ["application web: images move from registry registry.local:5000 (revision 1) to docker.io (--allow-registry-change)"]
    );
}

/// The CLI: `--registry` with images never pushed is refused before anything is written,
/// `--skip-image-check` deploys anyway, and a later deploy without `--registry` is refused
/// unless `--allow-registry-change`.
#[test]
fn cli_image_check_skip_and_registry_change() {
    if !crate::support::tools_present(crate::support::REGISTRY_TOOLS) {
        return;
    }
    let registry = Registry::start(Kind::Plain);
    let host = registry.host();
    push(&registry, "library/nginx:1.27");
    let emulator = KubeEmulator::start();
    let run = |extra: &[&str]| {
        let mut args = vec!["deploy", "bundles/demo", "--no-wait"];
        args.extend(extra);
        crate::deploy::charmer(&emulator, &args)
    };
    let (code, _, err) = run(&["--registry", &host, "--insecure-http"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("image {host}/library/mongo:7.0.14 is not in its registry {host}")),
        "{err}"
    );
    assert!(!err.contains("nginx"), "pushed: {err}");
    assert_eq!(emulator.writes(), Vec::<String>::new(), "nothing written");

    let (code, out, err) = run(&["--registry", &host, "--insecure-http", "--skip-image-check"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.ends_with("demo deployed to namespace demo as revision 1\n"), "{out}");

    let (code, _, err) = run(&["--skip-image-check"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("error: preflight: application web: images move from registry {host} (revision 1) to docker.io (hint: deploy with --registry {host} as revision 1 was")),
        "{err}"
    );
    let (code, out, err) = run(&["--skip-image-check", "--allow-registry-change"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("note: application web: images move from registry"), "{out}");
}
