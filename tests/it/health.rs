//! Health that tells the truth (#27): pods judged by their workload's current revision, the
//! forced rollback of a StatefulSet stuck on a broken pod, the kubelet retry window, the
//! unschedulable grace, the rollback target, the watch-based wait, `--timeout 0s`, and what
//! deploy says about istiod and pending load balancers (#31 items 11 and 13).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use charmer::deploy::{
    ApplyOptions, DeployError, Event, Exposure, NoProgress, PlanApp, Progress, RecordStatus,
    RecordedSetting, WaitOptions,
};
use serde_json::{json, Value};

use crate::deploy::{
    app, cluster, config_map, deploy, deploy_with, deployment, labels, quick_wait, record_status,
    shop, NS,
};
use crate::support::kube_emulator::{Behaviour, Grant, KubeEmulator};

/// A StatefulSet `db` of one replica running `image`, with a data claim template.
fn database(image: &str) -> Value {
    let selector = json!({"app.kubernetes.io/name": "db", "app.kubernetes.io/instance": "db"});
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "labels": labels("db")},
        "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": labels("db")}, "spec": {"containers": [{"name": "db", "image": image}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]},
    })
}

fn with_wait(wait: WaitOptions) -> ApplyOptions {
    ApplyOptions { wait: Some(wait), ..quick_wait() }
}

fn failing_pod(error: &DeployError) -> (&str, &str) {
    match error {
        DeployError::PodFailing { pod, reason, .. } => (pod.as_str(), reason.as_str()),
        other => panic!("expected a failing pod, got {other}"),
    }
}

/// A StatefulSet whose new revision crash-loops is stuck on its broken pod: the real
/// controller does not replace it when the template is reverted. `rollback` (to the last
/// good revision, chosen without `--revision`) deletes it, keeping its claim, and ends
/// deployed; rolling forward to a fixed image after breaking it again does the same.
#[tokio::test]
async fn a_stateful_set_stuck_on_a_broken_pod_is_rolled_back_and_rolled_forward() {
    let emulator = crate::day2::emulator_with_storage();
    emulator
        .set_image_behaviour("registry.local:5000/db:2", Behaviour::Failing("CrashLoopBackOff"));
    deploy(&emulator, shop(vec![("db", database("registry.local:5000/db:1"))])).await;
    let claim = emulator.get("PersistentVolumeClaim", NS, "data-db-0").expect("claim");

    let started = Instant::now();
    let broken = shop(vec![("db", database("registry.local:5000/db:2"))]);
    let error = deploy_with(&emulator, broken.clone(), &quick_wait()).await.expect_err("fails");
    assert_eq!(failing_pod(&error), ("db-0", "CrashLoopBackOff"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(5), "fail-fast took {:?}", started.elapsed());

    let cluster = cluster(&emulator).await;
    let (plan, from) = cluster.rollback_plan("shop", NS, None).await.unwrap();
    assert_eq!(from, 1, "the last good revision, not the failed one the cluster runs");
    let prepared = cluster.prepare(plan).await.unwrap();
    let outcome = cluster.apply(&prepared, &quick_wait(), &NoProgress).await.expect("rolled back");
    assert_eq!(outcome.revision, Some(3));
    assert_eq!(outcome.replaced.len(), 1, "{:?}", outcome.replaced);
    let note = &outcome.replaced[0];
    assert!(
        note.starts_with("deleted pod db-0 of StatefulSet db: it runs earlier revision db-")
            && note.contains("failing (CrashLoopBackOff)")
            && note.ends_with("keeping its claims"),
        "{note}"
    );
    assert_eq!(record_status(&emulator, 3).as_deref(), Some("deployed"));
    let pod = emulator.get("Pod", NS, "db-0").expect("re-created");
    assert_eq!(pod["spec"]["containers"][0]["image"], "registry.local:5000/db:1");
    let kept = emulator.get("PersistentVolumeClaim", NS, "data-db-0").expect("claim kept");
    assert_eq!(kept["metadata"]["uid"], claim["metadata"]["uid"]);

    // Broken again, then rolled forward to a fixed image.
    deploy_with(&emulator, broken, &quick_wait()).await.expect_err("fails again");
    let fixed = shop(vec![("db", database("registry.local:5000/db:3"))]);
    let outcome = deploy_with(&emulator, fixed, &quick_wait()).await.expect("rolled forward");
    assert_eq!(outcome.replaced.len(), 1, "{:?}", outcome.replaced);
    assert_eq!(
        emulator.get("Pod", NS, "db-0").unwrap()["spec"]["containers"][0]["image"],
        "registry.local:5000/db:3"
    );
    let states: Vec<(u32, RecordStatus)> = cluster
        .status("shop", NS)
        .await
        .unwrap()
        .revisions
        .iter()
        .map(|r| (r.revision, r.status))
        .collect();
    assert_eq!(
        states,
        [
            (1, RecordStatus::Superseded),
            (2, RecordStatus::Failed),
            (3, RecordStatus::Superseded),
            (4, RecordStatus::Failed),
            (5, RecordStatus::Deployed)
        ]
    );
}

/// After a bad Deployment revision, a rollback that restores the healthy pods is recorded
/// deployed: the bad revision's pods (still terminating) are not judged.
#[tokio::test]
async fn a_rollback_is_not_failed_by_the_pods_of_the_revision_it_replaces() {
    let emulator = KubeEmulator::start();
    emulator
        .set_image_behaviour("registry.local:5000/web:2", Behaviour::Failing("ImagePullBackOff"));
    deploy(&emulator, shop(vec![("web", deployment("web", "registry.local:5000/web:1"))])).await;
    let bad = shop(vec![("web", deployment("web", "registry.local:5000/web:2"))]);
    let error = deploy_with(&emulator, bad, &quick_wait()).await.expect_err("fails");
    assert_eq!(failing_pod(&error).1, "ImagePullBackOff");
    // The old pods kept serving (the rolling update never scaled them down).
    assert_eq!(emulator.pods(NS), ["web-g1-0", "web-g1-1", "web-g2-0", "web-g2-1"]);

    let cluster = cluster(&emulator).await;
    let (plan, from) = cluster.rollback_plan("shop", NS, None).await.unwrap();
    assert_eq!(from, 1);
    let prepared = cluster.prepare(plan).await.unwrap();
    let started = Instant::now();
    let outcome = cluster.apply(&prepared, &quick_wait(), &NoProgress).await.expect("rolled back");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(record_status(&emulator, outcome.revision.unwrap()).as_deref(), Some("deployed"));
    assert_eq!(emulator.pods(NS), ["web-g1-0", "web-g1-1"], "the bad revision's pods are gone");
    let rs = emulator.get("Deployment", NS, "web").unwrap();
    assert_eq!(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "3");
}

/// A pod already failing on a missing Secret key before the deploy gets the kubelet retry
/// window: fixing the Secret and deploying again works. Without a fix, the deploy fails
/// once the window has passed, saying so.
#[tokio::test]
async fn a_pod_failing_before_the_deploy_gets_one_kubelet_retry_window() {
    let plan = || {
        shop(vec![
            ("web", deployment("web", "registry.local:5000/web:1")),
            ("web", config_map("web", "web-config", "a")),
        ])
    };
    let emulator = KubeEmulator::start();
    emulator.set_behaviour("web", Behaviour::Failing("CreateContainerConfigError"));
    let error = deploy_with(&emulator, plan(), &quick_wait()).await.expect_err("fails");
    assert_eq!(failing_pod(&error).1, "CreateContainerConfigError");

    // The user fixes the Secret: the kubelet's next retry starts the pods.
    emulator.kubelet_retry("web", Duration::from_millis(700));
    let wait = WaitOptions { retry_window: Duration::from_secs(20), ..quick_wait().wait.unwrap() };
    let outcome = deploy_with(&emulator, plan(), &with_wait(wait)).await.expect("retried");
    assert_eq!(record_status(&emulator, outcome.revision.unwrap()).as_deref(), Some("deployed"));

    let emulator = KubeEmulator::start();
    emulator.set_behaviour("web", Behaviour::Failing("CreateContainerConfigError"));
    deploy_with(&emulator, plan(), &quick_wait()).await.expect_err("fails");
    let wait = WaitOptions { retry_window: Duration::from_secs(1), ..quick_wait().wait.unwrap() };
    let started = Instant::now();
    let error = deploy_with(&emulator, plan(), &with_wait(wait)).await.expect_err("still failing");
    assert!(started.elapsed() >= Duration::from_secs(1), "waited the window");
    let text = error.to_string();
    assert!(
        text.contains("CreateContainerConfigError")
            && text.contains("failing since before this operation; still failing after the kubelet retry window of 1s"),
        "{text}"
    );
}

/// Collects the `Waiting` reasons a wait reports.
#[derive(Default)]
struct Seen(Mutex<Vec<String>>);

impl Progress for Seen {
    fn event(&self, event: Event) {
        if let Event::Waiting { why: Some(why), .. } = event {
            self.0.lock().unwrap().push(why);
        }
    }
}

/// A pod the scheduler cannot place is reported with the scheduler's reason while waiting
/// and fails the wait after the unschedulable grace.
#[tokio::test]
async fn an_unschedulable_pod_is_reported_and_fails_after_the_grace() {
    let emulator = KubeEmulator::start();
    let message = "0/3 nodes are available: 3 Insufficient memory.";
    emulator.set_behaviour("web", Behaviour::Unschedulable(message));
    let wait =
        WaitOptions { unschedulable_grace: Duration::from_secs(1), ..quick_wait().wait.unwrap() };
    let cluster = cluster(&emulator).await;
    let prepared = cluster
        .prepare(shop(vec![("web", deployment("web", "registry.local:5000/web:1"))]))
        .await
        .unwrap();
    let seen = Seen::default();
    let started = Instant::now();
    let error = cluster.apply(&prepared, &with_wait(wait), &seen).await.expect_err("fails");
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(matches!(error, DeployError::Unschedulable { .. }), "{error}");
    let text = error.to_string();
    assert!(text.contains(message) && text.contains("--unschedulable-grace"), "{text}");
    let seen = seen.0.lock().unwrap();
    assert!(
        seen.iter().any(|why| why.contains("Deployment/shop/web (0 of 2 replicas ready")
            && why.contains(&format!("Pending, Unschedulable: {message}"))),
        "{seen:?}"
    );
}

/// Rollback with no revision goes to the last revision that deployed successfully and is not
/// what the cluster runs now.
#[tokio::test]
async fn rollback_goes_to_the_last_good_revision_the_cluster_does_not_run() {
    let emulator = KubeEmulator::start();
    let a = shop(vec![("web", config_map("web", "web-config", "a"))]);
    let b = shop(vec![("web", config_map("web", "web-config", "b"))]);
    deploy(&emulator, a.clone()).await;
    deploy(&emulator, b).await;
    let cluster = cluster(&emulator).await;
    assert_eq!(cluster.rollback_plan("shop", NS, None).await.unwrap().1, 1);
    deploy(&emulator, a).await; // revision 3 runs revision 1's plan
    assert_eq!(
        cluster.rollback_plan("shop", NS, None).await.unwrap().1,
        2,
        "not revision 1: the cluster runs that plan now"
    );
}

/// The wait survives a watch whose history expired (410): it lists again and still sees
/// the workload become ready; it watches instead of getting each object.
#[tokio::test]
async fn the_wait_lists_again_after_a_410_and_never_gets_objects_one_by_one() {
    let emulator = std::sync::Arc::new(KubeEmulator::start());
    emulator.set_behaviour("web", Behaviour::NeverReady);
    let background = emulator.clone();
    let helper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(800));
        background.expire_watches();
        std::thread::sleep(Duration::from_millis(300));
        background.kubelet_retry("web", Duration::ZERO);
    });
    let plan = shop(vec![("web", deployment("web", "registry.local:5000/web:1"))]);
    let cluster = cluster(&emulator).await;
    let prepared = cluster.prepare(plan).await.unwrap();
    let before = emulator.requests();
    cluster.apply(&prepared, &quick_wait(), &NoProgress).await.expect("ready after the retry");
    helper.join().unwrap();
    let after = emulator.requests();
    let grew = |k: &str| after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);
    assert!(grew("list deployments") >= 2, "re-listed after the 410: {after:?}");
    assert!(grew("watch deployments") >= 2, "{after:?}");
    // The gate's dry run answered whether the Deployment existed: the apply reads nothing.
    assert_eq!(grew("get deployments"), 0, "{after:?}");
}

/// `--timeout 0s` cannot succeed: refused before anything is applied.
#[test]
fn a_timeout_of_zero_is_refused_before_applying() {
    let emulator = KubeEmulator::start();
    let (code, _, err) =
        crate::deploy::charmer(&emulator, &["deploy", "bundles/demo", "--timeout", "0s"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--timeout 0s cannot succeed: waiting takes at least 1s"), "{err}");
    let (code, _, err) =
        crate::deploy::charmer(&emulator, &["restart", "demo", "web", "--timeout", "0s"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot succeed"), "{err}");
    assert!(emulator.writes().is_empty(), "{:?}", emulator.writes());
}

/// An application with `istiod_address` (istio-gateway): pre-flight warns when the Service
/// there does not exist, or when it may not read it, and the wait names istiod.
#[tokio::test]
async fn istiod_is_checked_by_preflight_and_named_by_the_wait() {
    let gateway = || {
        let mut plan = shop(vec![("web", deployment("web", "registry.local:5000/web:1"))]);
        let setting = RecordedSetting {
            value: json!("istiod.istio-system.svc:15012"),
            source: charmer::bundle::Source::Default,
            secret: false,
        };
        plan.apps = vec![PlanApp {
            config: [("istiod_address".to_string(), setting)].into(),
            ..app("web", &[])
        }];
        plan
    };
    let emulator = KubeEmulator::start();
    emulator.set_behaviour("web", Behaviour::NeverReady);
    let cluster = cluster(&emulator).await;
    let prepared = cluster.prepare(gateway()).await.unwrap();
    assert_eq!(
        prepared.warnings(),
        ["application web needs istiod at istiod.istio-system.svc:15012, but Service istiod does not exist in namespace istio-system: it cannot become ready until Istio's control plane is installed there (or set istiod_address to where it runs)"]
    );
    let wait = WaitOptions { timeout: Duration::from_secs(1), ..quick_wait().wait.unwrap() };
    let error =
        cluster.apply(&prepared, &with_wait(wait), &NoProgress).await.expect_err("times out");
    assert!(
        error.to_string().contains("Deployment/shop/web (0 of 2 replicas ready, 2 updated); it needs istiod at istiod.istio-system.svc:15012 (istiod_address); pre-flight found no Service istiod in namespace istio-system"),
        "{error}"
    );

    let emulator = KubeEmulator::start();
    emulator.insert(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}),
    );
    emulator.insert(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "istiod", "namespace": "istio-system"},
        "spec": {"ports": [{"port": 15012}]}}));
    let prepared = crate::deploy::cluster(&emulator).await.prepare(gateway()).await.unwrap();
    assert!(prepared.warnings().is_empty(), "{:?}", prepared.warnings());

    emulator.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    emulator.restrict_to(charmer_admin_of(NS));
    let prepared = crate::deploy::cluster(&emulator).await.prepare(gateway()).await.unwrap();
    assert_eq!(prepared.warnings().len(), 1, "{:?}", prepared.warnings());
    assert!(
        prepared.warnings()[0].starts_with("application web needs istiod at istiod.istio-system.svc:15012; not verified: services \"istiod\" is forbidden"),
        "{:?}",
        prepared.warnings()
    );
}

/// The namespace admin role in `namespace`, plus reading Namespaces (what a deployer has).
fn charmer_admin_of(namespace: &str) -> Vec<Grant> {
    let mut grants = crate::support::kube_emulator::namespace_admin(namespace, true);
    grants.push(Grant::new(None, &[""], &["namespaces"], &["get"]));
    grants
}

/// A LoadBalancer Service whose external address stays pending is reported, with its node
/// port to use meanwhile, by the deploy and by `status`.
#[tokio::test]
async fn a_pending_load_balancer_is_reported_with_its_node_port() {
    let emulator = KubeEmulator::start();
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "labels": labels("web")},
        "spec": {"type": "LoadBalancer", "selector": {"app.kubernetes.io/instance": "web"},
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}});
    let plan =
        shop(vec![("web", deployment("web", "registry.local:5000/web:1")), ("web", service)]);
    let outcome = deploy(&emulator, plan).await;
    let said = "application web: load balancer pending for Service web: no external address yet (does the cluster run a load-balancer controller?); meanwhile reach it on node port 30080 of any node";
    assert_eq!(outcome.warnings, [said]);
    let status = cluster(&emulator).await.status("shop", NS).await.unwrap();
    assert_eq!(
        status.apps[0].exposes,
        [
            Exposure::NodePort {
                service: "web".into(),
                node_port: 30080,
                port: json!(80),
                protocol: "TCP".into()
            },
            Exposure::PendingLoadBalancer { service: "web".into(), node_ports: vec![30080] },
        ]
    );
}

/// The wait benchmark (`scripts/bench-health.sh` runs it; it asserts nothing): `N`
/// applications of a Deployment (2 replicas), a Service and a ConfigMap, whose pods start
/// only when told to; prints how long the deploy took to return after the emulator reported
/// the last Deployment ready, and the requests it made by verb and resource.
#[tokio::test]
#[ignore = "a benchmark: scripts/bench-health.sh"]
async fn bench_wait() {
    for n in [7, 100] {
        let emulator = std::sync::Arc::new(KubeEmulator::start());
        let names: Vec<String> = (0..n).map(|i| format!("app{i:03}")).collect();
        let mut objects = Vec::new();
        for name in &names {
            emulator.set_behaviour(name, Behaviour::NeverReady);
            let mut d = deployment(name, &format!("registry.local:5000/{name}:1"));
            d["metadata"]["labels"] = labels(name);
            objects.push((name.as_str(), d));
            objects.push((name.as_str(), crate::deploy::service(name)));
            objects.push((name.as_str(), config_map(name, &format!("{name}-config"), "a")));
        }
        let mut plan = shop(vec![]);
        plan.apps = names.iter().map(|n| app(n, &[])).collect();
        plan.objects = objects
            .into_iter()
            .map(|(app, object)| charmer::deploy::PlanObject { app: app.into(), object })
            .collect();
        let cluster = cluster(&emulator).await;
        let prepared = cluster.prepare(plan).await.unwrap();
        let before = emulator.requests();
        let ready_at = std::sync::Arc::new(Mutex::new(None::<Instant>));
        let (background, at) = (emulator.clone(), ready_at.clone());
        let starter = std::thread::spawn(move || {
            // Once every Deployment exists and the wait has begun, all pods start at once.
            while background.get("Deployment", NS, &format!("app{:03}", n - 1)).is_none() {
                std::thread::sleep(Duration::from_millis(10));
            }
            std::thread::sleep(Duration::from_millis(500));
            for i in 0..n {
                background.kubelet_retry(&format!("app{i:03}"), Duration::ZERO);
            }
            // The moment the emulator's controllers report the last Deployment ready.
            while (0..n).any(|i| {
                background.get("Deployment", NS, &format!("app{i:03}")).unwrap()["status"]
                    ["readyReplicas"]
                    != 2
            }) {
                std::thread::sleep(Duration::from_millis(2));
            }
            *at.lock().unwrap() = Some(Instant::now());
        });
        let options =
            with_wait(WaitOptions { timeout: Duration::from_secs(120), ..WaitOptions::default() });
        cluster.apply(&prepared, &options, &NoProgress).await.expect("deployed");
        let returned = Instant::now();
        starter.join().unwrap();
        let ready = ready_at.lock().unwrap().expect("pods ready");
        let after = emulator.requests();
        let mut made: Vec<String> = after
            .iter()
            .map(|(k, v)| (k, v - before.get(k).copied().unwrap_or(0)))
            .filter(|(_, v)| *v > 0)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        made.sort();
        let total: u64 = after.values().sum::<u64>() - before.values().sum::<u64>();
        println!(
            "apps={n} objects={} returned_after_pods_ready={:.3}s requests={total} ({})",
            3 * n,
            returned.saturating_duration_since(ready).as_secs_f64(),
            made.join(" ")
        );
    }
}
