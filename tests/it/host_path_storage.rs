//! Storage on a node's disk for clusters without a provisioner (#31 item 12): mongodb, hivemq
//! and mlflow share one `host_path` design — a PersistentVolume reserved for the data claim
//! through a private storage class, and an init container that gives the directory to the
//! server's uid (kubelet applies no fsGroup to hostPath volumes) — and pre-flight accepts the
//! claim on a cluster with no storage class at all, because the rendered volume fits it.

use serde_json::{json, Value};

use crate::charms::{find, objects, render};
use crate::deploy::charmer_in;
use crate::support::kube_emulator::KubeEmulator;

/// (bundle, application, its data claim, the workload's kind, where the data is mounted,
/// the owner the init container gives it, the volume's size).
const CASES: [(&str, &str, &str, &str, &str, &str, &str); 3] = [
    ("ai-appstore", "mongodb", "data-mongodb-0", "StatefulSet", "/data/db", "999:999", "8Gi"),
    ("iot", "hivemq", "hivemq-data", "Deployment", "/opt/hivemq/data", "10000", "2Gi"),
    ("mlops", "mlflow", "mlflow-data", "Deployment", "/mlflow", "1000:1000", "10Gi"),
];

/// The storage class the data claim asks for.
fn claim_class<'a>(
    all: &'a [Value],
    bundle: &str,
    kind: &str,
    app: &str,
    claim: &str,
) -> &'a Value {
    if kind == "StatefulSet" {
        &find(all, "apps/v1", kind, app)["spec"]["volumeClaimTemplates"][0]["spec"]
            ["storageClassName"]
    } else {
        let claim = find(all, "v1", "PersistentVolumeClaim", claim);
        assert_eq!(claim["metadata"]["namespace"].as_str().unwrap_or(bundle), bundle);
        &claim["spec"]["storageClassName"]
    }
}

#[test]
fn host_path_renders_a_volume_reserved_for_the_claim_and_an_init_container_that_owns_it() {
    for (bundle, app, claim, kind, mount, owner, size) in CASES {
        let host_path = format!("{app}.host_path=/srv/{app}");
        let all = objects(&render(&[&format!("bundles/{bundle}"), "--config", &host_path]));
        let pv = find(&all, "v1", "PersistentVolume", &format!("{bundle}-{app}-data"));
        assert!(
            pv["metadata"].get("namespace").is_none(),
            "{app}: PersistentVolumes are cluster-wide"
        );
        assert_eq!(pv["spec"]["claimRef"], json!({"namespace": bundle, "name": claim}), "{app}");
        assert_eq!(
            pv["spec"]["hostPath"],
            json!({"path": format!("/srv/{app}"), "type": "DirectoryOrCreate"})
        );
        assert_eq!(pv["spec"]["capacity"]["storage"], size, "{app}");
        assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain", "{app}");
        assert_eq!(pv["spec"]["storageClassName"], format!("{app}-hostpath"), "{app}");
        assert_eq!(claim_class(&all, bundle, kind, app, claim), &pv["spec"]["storageClassName"]);

        let pod = &find(&all, "apps/v1", kind, app)["spec"]["template"]["spec"];
        let init = &pod["initContainers"][0];
        assert_eq!(init["name"], "data-permissions", "{app}");
        assert_eq!(init["command"], json!(["chown", owner, mount]), "{app}");
        assert_eq!(init["image"], pod["containers"][0]["image"], "{app}: no other image to carry");
        assert_eq!(
            init["securityContext"]["capabilities"],
            json!({"drop": ["ALL"], "add": ["CHOWN"]})
        );
        assert_eq!(init["volumeMounts"], json!([{"name": "data", "mountPath": mount}]), "{app}");
        assert!(pod["containers"][0]["volumeMounts"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "data", "mountPath": mount})));

        let prepared = format!("{app}.host_path_fix_permissions=false");
        let all = objects(&render(&[
            &format!("bundles/{bundle}"),
            "--config",
            &host_path,
            "--config",
            &prepared,
        ]));
        let pod = &find(&all, "apps/v1", kind, app)["spec"]["template"]["spec"];
        assert!(pod.get("initContainers").is_none(), "{app}: the directory is prepared by hand");
        let without = objects(&render(&[&format!("bundles/{bundle}")]));
        assert!(!without.iter().any(|o| o["kind"] == "PersistentVolume"), "{app}");
    }
}

#[test]
fn host_path_that_cannot_take_effect_is_said() {
    let out = crate::charms::charmer(&[
        "render",
        "bundles/mlops",
        "--config",
        "mlflow.host_path=/srv/mlflow",
        "--config",
        "mlflow.backend_store_uri_secret=db",
        "--config",
        "mlflow.artifact_store=s3",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("host_path is set, but nothing is stored on the local volume"),
        "{stderr}"
    );
    let out = crate::charms::charmer(&[
        "render",
        "bundles/iot",
        "--config",
        "hivemq.host_path=/srv/hivemq",
        "--config",
        "hivemq.persistence=false",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("host_path takes effect only when persistence is true"), "{stderr}");
}

#[test]
fn preflight_lets_the_claims_bind_the_rendered_volumes_on_a_cluster_without_storage_classes() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for (bundle, app, ..) in &CASES[1..] {
        let emulator = KubeEmulator::start();
        // No storage class: without host_path the claim cannot bind, and preflight says so.
        let (code, _, err) = charmer_in(
            root,
            &emulator,
            &["deploy", &format!("bundles/{bundle}"), "--timeout", "30s"],
        );
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains("no storage class is set, the cluster has no default storage class"),
            "{app}: {err}"
        );
        let host_path = format!("{app}.host_path=/srv/{app}");
        let args =
            ["deploy", &format!("bundles/{bundle}"), "--config", &host_path, "--timeout", "30s"];
        let (code, out, err) = charmer_in(root, &emulator, &args);
        assert_eq!(code, 0, "{app}: {err}");
        assert!(out.contains(&format!("PersistentVolume/{bundle}-{app}-data")), "{app}: {out}");
        let pv = emulator.get("PersistentVolume", "", &format!("{bundle}-{app}-data")).unwrap();
        assert_eq!(pv["spec"]["claimRef"]["name"], format!("{app}-data"), "{app}");
    }
}
