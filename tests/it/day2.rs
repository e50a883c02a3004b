//! Day-2 operations against the Kubernetes API emulator: `status` in detail, `logs`,
//! `restart`, `list`, `rollback` without an earlier revision; library first, then the CLI.

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::Duration;

use charmer::deploy::{
    DeployError, Exposure, LogLine, LogOptions, LogSink, NoProgress, RecordStatus, WaitOptions,
    RESTARTED_AT_ANNOTATION, RESTART_MANAGER,
};
use serde_json::{json, Value};

use crate::deploy::{
    app, charmer, cluster, config_map, deploy, deploy_with, deployment, full_shop, labels,
    quick_wait, service, shop, NS,
};
use crate::support::kube_emulator::{Behaviour, KubeEmulator};

/// A broker like seed 002's hivemq: one StatefulSet pod with a claim, exposed on a node port.
fn broker() -> Vec<(&'static str, Value)> {
    let selector = json!({"app.kubernetes.io/name": "db", "app.kubernetes.io/instance": "db"});
    vec![
        (
            "db",
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "labels": labels("db")},
               "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": selector},
                        "template": {"metadata": {"labels": labels("db")}, "spec": {"containers": [
                            {"name": "broker", "image": "registry.local:5000/db:1"},
                            {"name": "exporter", "image": "registry.local:5000/exporter:1"}]}}}}),
        ),
        (
            "db",
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "db-data", "labels": labels("db")},
               "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
        ),
        (
            "db",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "labels": labels("db")},
               "spec": {"type": "NodePort", "selector": selector, "ports": [{"port": 1883, "nodePort": 31883, "protocol": "TCP"}]}}),
        ),
    ]
}

/// An emulator with a default storage class, for the broker's claim.
pub(crate) fn emulator_with_storage() -> KubeEmulator {
    let emulator = KubeEmulator::start();
    emulator.insert(json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "standard",
        "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}, "provisioner": "x"}));
    emulator
}

fn web_ingress() -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web", "labels": labels("web")},
           "spec": {"tls": [{"hosts": ["shop.example"]}], "rules": [{"host": "shop.example"}]}})
}

fn broker_and_web() -> charmer::deploy::DeployPlan {
    let mut objects = broker();
    objects.push(("web", deployment("web", "registry.local:5000/web:1")));
    objects.push(("web", web_ingress()));
    shop(objects)
}

#[tokio::test]
async fn status_counts_pods_and_says_why_they_do_not_run_and_what_is_exposed() {
    let emulator = emulator_with_storage();
    emulator.set_behaviour("web", Behaviour::Failing("ImagePullBackOff"));
    let error = deploy_with(&emulator, broker_and_web(), &quick_wait()).await.unwrap_err();
    assert!(matches!(error, DeployError::PodFailing { .. }), "{error}");

    let status = cluster(&emulator).await.status("shop", NS).await.unwrap();
    assert_eq!(status.state, RecordStatus::Failed);
    let db = &status.apps[0];
    assert_eq!(
        (db.name.as_str(), db.ready_pods, db.desired_pods),
        ("db", 1, 1),
        "one pod, not 2/2"
    );
    assert!(db.waiting.is_empty() && db.problems.is_empty(), "{db:?}");
    assert_eq!(
        db.exposes,
        [Exposure::NodePort {
            service: "db".into(),
            node_port: 31883,
            port: json!(1883),
            protocol: "TCP".into()
        }]
    );
    assert_eq!(db.exposes[0].to_string(), "node port 31883 -> 1883/TCP (Service db)");
    let web = &status.apps[1];
    assert_eq!((web.ready_pods, web.desired_pods), (0, 2), "0 of 2, not 0/1");
    assert_eq!(texts(&web.waiting), ["Deployment/shop/web (0 of 2 replicas ready, 2 updated)"]);
    assert_eq!(web.waiting[0].reason, "0 of 2 replicas ready, 2 updated");
    assert_eq!(
        (web.problems[0].container.as_deref(), web.problems[0].reason.as_str()),
        (Some("web"), "ImagePullBackOff")
    );
    assert_eq!(web.problems[0].image.as_deref(), Some("registry.local:5000/web:1"));
    assert_eq!(
        texts(&web.problems),
        [
            "pod web-g1-0 container web: ImagePullBackOff (image registry.local:5000/web:1): Back-off pulling image \"registry.local:5000/web:1\"",
            "pod web-g1-1 container web: ImagePullBackOff (image registry.local:5000/web:1): Back-off pulling image \"registry.local:5000/web:1\"",
        ]
    );
    assert_eq!(texts(&web.exposes), ["https://shop.example (Ingress web)"]);
    // `status --output json` is this, as data.
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(
        json["apps"][0]["exposes"],
        json!([{"kind": "node-port", "service": "db", "node_port": 31883, "port": 1883, "protocol": "TCP"}])
    );
    assert_eq!(
        json["apps"][1]["exposes"],
        json!([{"kind": "host", "url": "https://shop.example", "via": "Ingress", "name": "web"}])
    );
    assert_eq!(json["apps"][1]["waiting"][0]["object"]["kind"], "Deployment");
    assert_eq!(json["apps"][1]["problems"][0]["reason"], "ImagePullBackOff");
    assert_eq!(json["apps"][1]["problems"][0]["image"], "registry.local:5000/web:1");
    let history: Vec<(u32, RecordStatus)> =
        status.revisions.iter().map(|r| (r.revision, r.status)).collect();
    assert_eq!(history, [(1, RecordStatus::Failed)]);
    assert!(humantime::parse_rfc3339(&status.revisions[0].updated).is_ok(), "{status:?}");
}

/// Each item's text, as `status` prints it.
fn texts<T: ToString>(items: &[T]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

/// Collects log lines.
#[derive(Default)]
struct Collected(Vec<String>);

impl LogSink for Collected {
    fn line(&mut self, l: LogLine) -> bool {
        self.0.push(format!("{}/{} {}", l.pod, l.container, l.text));
        true
    }
}

async fn logs(
    emulator: &KubeEmulator,
    app: &str,
    options: &LogOptions,
) -> Result<Vec<String>, DeployError> {
    let mut lines = Collected::default();
    cluster(emulator).await.logs("shop", NS, app, options, &mut lines).await?;
    Ok(lines.0)
}

#[tokio::test]
async fn logs_show_every_pod_and_container_of_an_application() {
    let emulator = emulator_with_storage();
    deploy(&emulator, broker_and_web()).await;
    emulator.append_log(NS, "db-0", "broker", "listening on 1883");
    emulator.append_log(NS, "web-g1-1", "web", "GET / 200");

    let all = logs(&emulator, "db", &LogOptions::default()).await.unwrap();
    assert_eq!(
        all,
        [
            "db-0/broker started registry.local:5000/db:1",
            "db-0/broker listening on 1883",
            "db-0/exporter started registry.local:5000/exporter:1",
        ]
    );
    let tail = LogOptions { tail: Some(1), ..LogOptions::default() };
    assert_eq!(
        logs(&emulator, "web", &tail).await.unwrap(),
        ["web-g1-0/web started registry.local:5000/web:1", "web-g1-1/web GET / 200"]
    );
    let one = LogOptions { container: Some("exporter".into()), ..LogOptions::default() };
    assert_eq!(
        logs(&emulator, "db", &one).await.unwrap(),
        ["db-0/exporter started registry.local:5000/exporter:1"]
    );

    let wrong = LogOptions { container: Some("sidecar".into()), ..LogOptions::default() };
    assert_eq!(
        logs(&emulator, "db", &wrong).await.unwrap_err().to_string(),
        "no pod of application db has a container sidecar (containers: broker, exporter)"
    );
    assert_eq!(
        logs(&emulator, "cache", &LogOptions::default()).await.unwrap_err().to_string(),
        "bundle shop has no application cache (applications: db, web)"
    );
}

#[tokio::test]
async fn restart_replaces_the_pods_and_a_later_deploy_keeps_the_restart() {
    let emulator = KubeEmulator::start();
    let plan = shop(vec![
        ("web", deployment("web", "registry.local:5000/web:1")),
        ("web", config_map("web", "web-config", "a")),
    ]);
    deploy(&emulator, plan.clone()).await;
    assert_eq!(emulator.pods(NS), ["web-g1-0", "web-g1-1"]);

    let wait = WaitOptions { timeout: Duration::from_secs(30), ..WaitOptions::default() };
    let restarted = cluster(&emulator)
        .await
        .restart("shop", NS, "web", "2026-01-02T03:04:05Z", Some(&wait), &NoProgress)
        .await
        .unwrap();
    assert_eq!(
        restarted.workloads.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["Deployment/shop/web"]
    );
    let live = emulator.get("Deployment", NS, "web").unwrap();
    assert_eq!(
        live["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT_ANNOTATION],
        "2026-01-02T03:04:05Z"
    );
    assert_eq!(live["status"]["readyReplicas"], 2, "waited for the new pods");
    assert_eq!(emulator.pods(NS), ["web-g2-0", "web-g2-1"], "every pod replaced");
    let managers: Vec<&str> = live["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(managers.contains(&RESTART_MANAGER), "{managers:?}");

    // The same bundle again: the restart stays, and the pods are not rolled a second time.
    deploy(&emulator, plan).await;
    let live = emulator.get("Deployment", NS, "web").unwrap();
    assert_eq!(
        live["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT_ANNOTATION],
        "2026-01-02T03:04:05Z"
    );
    assert_eq!(emulator.pods(NS), ["web-g2-0", "web-g2-1"]);

    let cluster = cluster(&emulator).await;
    let nothing = cluster.restart("shop", NS, "nope", "now", None, &NoProgress).await.unwrap_err();
    assert_eq!(nothing.to_string(), "bundle shop has no application nope (applications: web)");
    let config_only = shop(vec![("db", config_map("db", "db-config", "x"))]);
    deploy(&emulator, config_only).await;
    let error = cluster.restart("shop", NS, "db", "now", None, &NoProgress).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "application db runs no Deployment, StatefulSet or DaemonSet to restart"
    );
}

#[tokio::test]
async fn list_shows_the_latest_revision_of_each_bundle() {
    let emulator = KubeEmulator::start();
    let cluster = cluster(&emulator).await;
    assert!(cluster.list_bundles(None).await.unwrap().is_empty());
    deploy(&emulator, full_shop("a")).await;
    deploy(&emulator, full_shop("b")).await;
    let mut other = shop(vec![("web", service("web"))]);
    other.bundle = "blog".into();
    other.namespace = "blog".into();
    other.apps = vec![app("web", &[])];
    deploy(&emulator, other).await;

    let all: Vec<(String, String, u32, RecordStatus)> = cluster
        .list_bundles(None)
        .await
        .unwrap()
        .into_iter()
        .map(|b| (b.namespace, b.bundle, b.revision, b.status))
        .collect();
    assert_eq!(
        all,
        [
            ("blog".into(), "blog".into(), 1, RecordStatus::Deployed),
            ("shop".into(), "shop".into(), 2, RecordStatus::Deployed),
        ]
    );
    let in_shop = cluster.list_bundles(Some(NS)).await.unwrap();
    assert_eq!(in_shop.len(), 1);
    assert!(humantime::parse_rfc3339(&in_shop[0].updated).is_ok(), "{in_shop:?}");
}

#[tokio::test]
async fn rollback_with_no_earlier_revision_says_so() {
    let emulator = KubeEmulator::start();
    deploy(&emulator, full_shop("a")).await;
    let error = cluster(&emulator).await.rollback_plan("shop", NS, None).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "bundle shop in namespace shop has no earlier deployed revision to roll back to \
         (revisions: 1 deployed)"
    );
}

#[test]
fn cli_logs_restart_list_and_status_by_path() {
    let emulator = KubeEmulator::start();
    let (code, _, err) = charmer(&emulator, &["deploy", "bundles/demo", "--timeout", "30s"]);
    assert_eq!(code, 0, "{err}");

    let (code, out, err) = charmer(&emulator, &["logs", "demo", "web", "--tail", "5"]);
    assert_eq!(code, 0, "{err}");
    let started = "started docker.io/library/nginx:1.27";
    assert_eq!(
        out,
        format!("web-g1-0/web {started}\nweb-g1-1/web {started}\nweb-g1-2/web {started}\n"),
        "plain text when stdout is not a terminal"
    );
    let (code, _, err) = charmer(&emulator, &["logs", "demo", "nope"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "error: bundle demo has no application nope (applications: mydb, web)\n")
    );

    // Following: the pods a restart brings are followed too.
    let mut follower = std::process::Command::new(env!("CARGO_BIN_EXE_charmer"))
        .current_dir(crate::deploy::demo())
        .args(["logs", "demo", "web", "-f", "--kubeconfig"])
        .arg(emulator.kubeconfig())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, received) = mpsc::channel();
    let stdout = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(l).is_err() {
                break;
            }
        }
    });
    let next = || received.recv_timeout(Duration::from_secs(30)).expect("a followed line");
    let mut first: Vec<String> = (0..3).map(|_| next()).collect();
    first.sort();
    assert_eq!(first[0], format!("web-g1-0/web {started}"));

    let (code, out, err) =
        charmer(&emulator, &["restart", "bundles/demo", "web", "--timeout", "30s"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "restarted Deployment/demo/web\nweb in namespace demo restarted, ready\n");
    let mut after: Vec<String> = (0..3).map(|_| next()).collect();
    after.sort();
    assert_eq!(
        after,
        (0..3).map(|i| format!("web-g2-{i}/web {started}")).collect::<Vec<_>>(),
        "the new pods' logs"
    );
    follower.kill().unwrap();
    follower.wait().unwrap();

    let (code, out, err) = charmer(&emulator, &["list"]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["NAMESPACE", "BUNDLE", "REVISION", "STATUS", "UPDATED"]);
    assert_eq!(rows[1][..4], ["demo", "demo", "1", "deployed"]);
    assert_eq!(rows.len(), 2, "{out}");
    let (code, out, _) = charmer(&emulator, &["list", "-n", "elsewhere"]);
    assert_eq!((code, out.as_str()), (0, "no bundles deployed in namespace elsewhere\n"));
    let (code, out, _) = charmer(&emulator, &["list", "--output", "json"]);
    assert_eq!(code, 0);
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((json[0]["bundle"].as_str(), json[0]["revision"].as_u64()), (Some("demo"), Some(1)));

    // status takes the bundle's path as well as its name.
    let (code, out, err) = charmer(&emulator, &["status", "bundles/demo", "--output", "json"]);
    assert_eq!(code, 0, "{err}");
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["bundle"], "demo");
    assert_eq!(
        (json["apps"][1]["name"].as_str(), json["apps"][1]["ready_pods"].as_i64()),
        (Some("web"), Some(3))
    );

    let (code, _, err) = charmer(&emulator, &["rollback", "demo"]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "error: bundle demo in namespace demo has no earlier deployed revision to roll back to \
         (revisions: 1 deployed)\n"
    );
}

#[test]
fn an_insecure_kubeconfig_gets_one_warning_in_charmers_words() {
    let emulator = KubeEmulator::start();
    let text = std::fs::read_to_string(emulator.kubeconfig()).unwrap();
    let line = text.lines().find(|l| l.trim_start().starts_with("server: ")).unwrap();
    let server = format!("{line}\n");
    let insecure = emulator.kubeconfig().with_file_name("insecure-kubeconfig");
    let skip = format!("{server}    insecure-skip-tls-verify: true\n");
    std::fs::write(&insecure, text.replace(&server, &skip)).unwrap();
    let out =
        crate::support::charmer().arg("list").arg("--kubeconfig").arg(&insecure).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("insecure-skip-tls-verify") && lines[0].contains("charmer"), "{err}");
}
