//! Ownership at write time (#31): two bundles deployed into one namespace at once both pass
//! pre-flight before either writes; the one that writes second must fail naming the objects
//! and the other bundle, not take them over. Reproduced deterministically by holding the
//! first write of one deploy until the other has finished. Also: objects an earlier charmer
//! applied as its single manager `charmer` are taken over cleanly by the bundle's manager.

use charmer::contract::BUNDLE_LABEL;
use charmer::deploy::{DeployError, DeployPlan, NoProgress};
use hyper::Method;
use serde_json::{json, Value};

use crate::deploy::{cluster, config_map, deployment, quick_wait, service, shop, NS};
use crate::support::kube_emulator::KubeEmulator;

/// Application `web` of bundle `bundle`: a ConfigMap (applied first), a Service, a Deployment.
fn web(bundle: &str, setting: &str) -> DeployPlan {
    let mut plan = shop(vec![
        ("web", config_map("web", "web-config", setting)),
        ("web", service("web")),
        ("web", deployment("web", "registry.local:5000/web:1")),
    ]);
    plan.bundle = bundle.to_string();
    for o in &mut plan.objects {
        o.object["metadata"]["labels"][BUNDLE_LABEL] = json!(bundle);
        o.object["metadata"]["labels"]["app.kubernetes.io/part-of"] = json!(bundle);
    }
    plan
}

fn managers(object: &Value) -> Vec<&str> {
    object["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["manager"].as_str())
        .collect()
}

#[tokio::test]
async fn the_second_of_two_bundles_racing_for_one_namespace_fails_naming_the_objects() {
    let emulator = KubeEmulator::start();
    emulator.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    let mut held = emulator
        .hold_next(Method::PATCH, &format!("/api/v1/namespaces/{NS}/configmaps/web-config"));

    // shop passes pre-flight (nothing exists yet) and is held at its first write request:
    // the dry-run gate's, so the gate is what must refuse (and it answers for all three).
    let shop = cluster(&emulator).await;
    let shop_prepared = shop.prepare(web("shop", "shop")).await.expect("preflight");
    let options = quick_wait();
    let shop_deploy = shop.apply(&shop_prepared, &options, &NoProgress);
    let iot_deploy = async {
        held.caught().await;
        // Meanwhile iot passes pre-flight too (still nothing exists) and deploys everything.
        let iot = cluster(&emulator).await;
        let prepared = iot.prepare(web("iot", "iot")).await.expect("iot's preflight passes");
        let outcome = iot.apply(&prepared, &options, &NoProgress).await;
        held.release();
        outcome
    };
    let (shop_result, iot_result) = tokio::join!(shop_deploy, iot_deploy);
    assert_eq!(iot_result.expect("iot deploys").revision, Some(1));
    let error = shop_result.expect_err("shop must not take iot's objects");
    assert!(matches!(error, DeployError::OwnedByBundle(_)), "{error:?}");
    let text = error.to_string();
    assert!(
        text.starts_with(&format!(
            "ConfigMap/{NS}/web-config, Service/{NS}/web, Deployment/{NS}/web are managed by bundle iot (field manager charmer/iot): charmer does not take over another bundle's objects; 0 of 3 objects of bundle shop were applied before"
        )),
        "{text}"
    );
    assert!(text.contains("hint: remove bundle iot from namespace shop first"), "{text}");
    for (kind, name) in [("ConfigMap", "web-config"), ("Service", "web"), ("Deployment", "web")] {
        let live = emulator.get(kind, NS, name).unwrap();
        assert_eq!(live["metadata"]["labels"][BUNDLE_LABEL], "iot", "{kind} {name}");
        assert_eq!(managers(&live), ["charmer/iot"], "{kind} {name}");
    }
    assert_eq!(emulator.get("ConfigMap", NS, "web-config").unwrap()["data"]["setting"], "iot");
}

#[tokio::test]
async fn objects_an_earlier_charmer_applied_for_the_bundle_are_taken_over_cleanly() {
    let emulator = KubeEmulator::start();
    let cluster = cluster(&emulator).await;
    let mut first = web("shop", "a");
    first.objects[0].object["data"]["retired"] = json!("x");
    let prepared = cluster.prepare(first.clone()).await.unwrap();
    cluster.apply(&prepared, &quick_wait(), &NoProgress).await.unwrap();
    // As charmer before field managers per bundle left them: every field held by `charmer`.
    for o in &first.objects {
        let mut object = o.object.clone();
        object["metadata"]["namespace"] = json!(NS);
        let (kind, name) =
            (object["kind"].as_str().unwrap(), object["metadata"]["name"].as_str().unwrap());
        emulator.delete(kind, NS, name);
        emulator.insert_as("charmer", object);
    }

    // The same values but one field fewer, and a changed value elsewhere.
    let mut second = web("shop", "a");
    second.objects[2].object["spec"]["replicas"] = json!(3);
    let prepared = cluster.prepare(second).await.expect("the legacy manager's objects are ours");
    cluster.apply(&prepared, &quick_wait(), &NoProgress).await.expect("taken over");
    let config = emulator.get("ConfigMap", NS, "web-config").unwrap();
    assert_eq!(config["data"], json!({"setting": "a"}), "the dropped field is removed");
    assert_eq!(managers(&config), ["charmer/shop"]);
    let workload = emulator.get("Deployment", NS, "web").unwrap();
    assert_eq!(workload["spec"]["replicas"], 3);
    assert_eq!(managers(&workload), ["charmer/shop"]);
}

#[tokio::test]
async fn hand_edits_of_the_bundles_own_objects_are_still_reverted() {
    let emulator = KubeEmulator::start();
    let cluster = cluster(&emulator).await;
    let prepared = cluster.prepare(web("shop", "a")).await.unwrap();
    cluster.apply(&prepared, &quick_wait(), &NoProgress).await.unwrap();
    let mut edited = emulator.get("ConfigMap", NS, "web-config").unwrap();
    edited["data"]["setting"] = json!("edited");
    emulator.insert_as("kubectl-edit", edited);

    let prepared = cluster.prepare(web("shop", "b")).await.unwrap();
    cluster.apply(&prepared, &quick_wait(), &NoProgress).await.expect("the edit is overwritten");
    let config = emulator.get("ConfigMap", NS, "web-config").unwrap();
    assert_eq!(config["data"]["setting"], "b");
    assert!(managers(&config).contains(&"charmer/shop"), "{:?}", managers(&config));
}
