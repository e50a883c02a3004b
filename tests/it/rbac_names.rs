//! `charmer rbac` names resources as the API server does (#31): from discovery with
//! `--discover`, else from the bundle's CRDs and charmer's tables (built-in kinds, and
//! well-known add-on kinds as their projects' CRDs name them); never from a guessed plural.

use std::path::Path;

use serde_json::{json, Value};

use crate::deploy::{charmer_in, cluster, shop};
use crate::support::kube_emulator::KubeEmulator;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The resources the printed Role grants in `group`.
fn granted(stdout: &str, group: &str) -> Vec<String> {
    let role: Value = serde_yaml::from_str(stdout.split("---\n").nth(1).unwrap()).unwrap();
    assert_eq!(role["kind"], "Role");
    role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["apiGroups"][0] == group)
        .flat_map(|r| r["resources"].as_array().unwrap().iter())
        .map(|r| r.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_role_for_a_bundle_with_the_istio_gateway_grants_gateways() {
    let out = crate::support::charmer()
        .current_dir(root())
        .args(["rbac", "bundles/full", "-n", "aas"])
        .output()
        .unwrap();
    let (stdout, stderr) =
        (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap());
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr, "", "every kind of the bundle is known");
    assert_eq!(granted(&stdout, "networking.istio.io"), ["gateways", "virtualservices"]);
    assert!(!stdout.contains("gatewaies"), "{stdout}");
}

#[test]
fn with_discover_the_role_names_what_the_server_serves() {
    let emulator = KubeEmulator::start();
    // A server whose names differ from charmer's table: discovery wins.
    emulator.serve_group(
        "networking.istio.io",
        "v1beta1",
        &[("Gateway", "istiogateways", true), ("VirtualService", "virtualservices", true)],
    );
    let (code, stdout, stderr) =
        charmer_in(root(), &emulator, &["rbac", "bundles/full", "-n", "aas", "--discover"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(granted(&stdout, "networking.istio.io"), ["istiogateways", "virtualservices"]);
    assert_eq!(emulator.writes(), Vec::<String>::new(), "discovery only reads");

    // The cluster flags without --discover cannot take effect: an error, not ignored.
    let (code, _, stderr) = charmer_in(root(), &emulator, &["rbac", "bundles/full"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("--kubeconfig/--context: only used with --discover"), "{stderr}");
}

#[tokio::test]
async fn a_kind_neither_the_server_nor_any_table_knows_is_an_error_naming_it() {
    let emulator = KubeEmulator::start();
    let plan = shop(vec![(
        "web",
        json!({"apiVersion": "other.io/v1", "kind": "Policy", "metadata": {"name": "p"}}),
    )]);
    let error = cluster(&emulator).await.discovered_roles(&plan).await.expect_err("unknown");
    let text = error.to_string();
    assert!(
        text.contains(
            "Policy (other.io/v1): its resource name is not known: not served by the cluster"
        ),
        "{text}"
    );
    assert!(!text.contains("policies"), "no guess: {text}");
}
