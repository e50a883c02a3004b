//! Juju's own file shapes must load unchanged: charmer keeps and ignores the keys it does not
//! use, shows their options and the images in their `upstream-source`. Every check runs on
//! the files written in this repository (`tests/fixtures/juju-written/`) and again on
//! Canonical's real files when they are present beside it (`support::upstream_juju_fixtures`).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{charmer, juju_fixture_sets, sha256_file};

/// The charms among the fixtures: file-name prefix of their metadata/config pair, the name
/// in their metadata, and the version the test gives them.
const CHARMS: [(&str, &str, &str); 2] = [
    ("istio-operators__istio-gateway__track-1.17__", "istio-gateway", "1.17.3"),
    ("mongodb-k8s-operator__6-edge__", "mongodb-k8s", "6.0.6"),
];
/// charmcraft's manifest, put into every fixture charm.
const MANIFEST: &str = "charmcraft__sample-basic-platforms__manifest.yaml";
/// The Charmed Kubeflow bundle among the fixtures (`resolve_render` reads it).
const BUNDLE: &str = "bundle-kubeflow__1.8-stable__bundle.yaml";
/// Where a fixture set says where its files come from: the written set's README, the real
/// set's provenance table.
const PROVENANCE: [&str; 2] = ["README.md", "SOURCES.md"];

/// Builds a charm folder from a fixture pair of the set in `fixtures` plus the set's manifest
/// and a version file.
fn fixture_charm(fixtures: &Path, root: &Path, prefix: &str, name: &str, version: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for member in ["metadata.yaml", "config.yaml"] {
        std::fs::copy(fixtures.join(format!("{prefix}{member}")), dir.join(member)).unwrap();
    }
    std::fs::copy(fixtures.join(MANIFEST), dir.join("manifest.yaml")).unwrap();
    std::fs::write(dir.join("version"), format!("{version}\n")).unwrap();
    dir
}

/// The `CHARMS[index]` fixture charm of every fixture set, each in a temporary folder kept
/// alive by the first value.
fn fixture_charms(index: usize) -> Vec<(tempfile::TempDir, PathBuf)> {
    let (prefix, name, version) = CHARMS[index];
    juju_fixture_sets()
        .iter()
        .map(|fixtures| {
            let tmp = tempfile::tempdir().unwrap();
            let dir = fixture_charm(fixtures, tmp.path(), prefix, name, version);
            (tmp, dir)
        })
        .collect()
}

fn inspect_json(path: &Path) -> (Value, String) {
    let assert = charmer().arg("inspect").arg(path).args(["--output", "json"]).assert().success();
    let out = assert.get_output();
    (
        serde_json::from_slice(&out.stdout).expect("JSON"),
        String::from_utf8(out.stderr.clone()).unwrap(),
    )
}

fn option<'a>(view: &'a Value, name: &str) -> &'a Value {
    view["options"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no option {name} in {view:#}"))
}

#[test]
fn every_fixture_file_is_covered() {
    let mut known: Vec<String> = CHARMS
        .iter()
        .flat_map(|(p, _, _)| [format!("{p}config.yaml"), format!("{p}metadata.yaml")])
        .collect();
    known.push(MANIFEST.to_string());
    known.push(BUNDLE.to_string());
    for dir in juju_fixture_sets() {
        let mut found: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| !PROVENANCE.contains(&name.as_str()))
            .collect();
        found.sort();
        known.sort();
        assert_eq!(
            found,
            known,
            "a fixture was added or removed in {}: give it a test",
            dir.display()
        );
    }
}

#[test]
fn every_fixture_charm_packs_verifies_and_inspects() {
    for (index, (_, name, version)) in CHARMS.into_iter().enumerate() {
        for (tmp, dir) in fixture_charms(index) {
            check_packs_verifies_and_inspects(tmp.path(), &dir, name, version);
        }
    }
}

fn check_packs_verifies_and_inspects(tmp: &Path, dir: &Path, name: &str, version: &str) {
    let out = tmp.join("dist");
    charmer().arg("pack").arg(dir).arg("--out").arg(&out).assert().success();
    let archive = out.join(format!("{name}_{version}.charm"));
    let verified = charmer().arg("verify").arg(&archive).assert().success();
    let stdout = String::from_utf8(verified.get_output().stdout.clone()).unwrap();
    assert_eq!(
        stdout,
        format!("ok  {}  {name} {version}  sha256 {}\n", archive.display(), sha256_file(&archive))
    );
    let (mut from_archive, _) = inspect_json(&archive);
    let (mut from_dir, _) = inspect_json(dir);
    // Warnings name where the charm was read from; the rest is the same.
    let (a, d) = (from_archive["warnings"].take(), from_dir["warnings"].take());
    assert_eq!(a.as_array().unwrap().len(), d.as_array().unwrap().len());
    assert_eq!(from_archive, from_dir, "{name}: the folder and its archive inspect the same");
    assert_eq!(from_archive["name"], name);
    assert_eq!(from_archive["version"], version);
}

#[test]
fn istio_gateway_shows_its_options_and_the_image_hidden_in_config() {
    for (_tmp, dir) in fixture_charms(0) {
        let (view, _) = inspect_json(&dir);
        assert_eq!(view["summary"], "Controls ingress/egress traffic for an Istio service mesh");
        let names: Vec<&str> = view["options"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["gateway_service_type", "kind", "proxy-image"]);
        let service = option(&view, "gateway_service_type");
        assert_eq!(
            (service["type"].as_str(), service["default"].as_str()),
            (Some("string"), Some("LoadBalancer"))
        );
        assert!(service["description"]
            .as_str()
            .unwrap()
            .starts_with("Type of service for the ingress gateway"));
        assert_eq!(option(&view, "kind")["default"], "");
        let proxy = option(&view, "proxy-image");
        assert_eq!(
            (proxy["type"].as_str(), proxy["default"].as_str()),
            (Some("string"), Some("docker.io/istio/proxyv2:1.17.3"))
        );
        assert_eq!(
            view["resources"],
            serde_json::json!({}),
            "the real charm declares no resource for its proxy image"
        );
        assert_eq!(
            view["endpoints"],
            serde_json::json!([{"name": "istio-pilot", "role": "requires", "interface": "k8s-service", "optional": false}])
        );

        let text = String::from_utf8(
            charmer().arg("inspect").arg(&dir).assert().success().get_output().stdout.clone(),
        )
        .unwrap();
        assert!(text.contains("  gateway_service_type (string) default LoadBalancer\n"), "{text}");
        assert!(
            text.contains("  proxy-image (string) default docker.io/istio/proxyv2:1.17.3\n"),
            "{text}"
        );
    }
}

/// The rule: every image a charm runs must be a declared resource. Canonical's
/// istio-gateway hides its proxy image in a config option; charmer says so, as a warning
/// (the charm stays usable), in `inspect` and `verify`.
#[test]
fn images_hidden_in_config_are_warned_about() {
    for (tmp, dir) in fixture_charms(0) {
        let warning = |file: &Path| {
            format!(
            "{}/config.yaml: options.proxy-image.default: \"docker.io/istio/proxyv2:1.17.3\" looks like a container image hidden in a config option \
             (hint: declare docker.io/istio/proxyv2:1.17.3 as a resource of type oci-image with upstream-source, so the air-gap tooling sees it)",
            file.display()
        )
        };
        let (view, stderr) = inspect_json(&dir);
        assert_eq!(view["warnings"], serde_json::json!([warning(&dir)]));
        assert_eq!(stderr, "", "JSON carries the warnings itself");

        let inspected = charmer().arg("inspect").arg(&dir).assert().success();
        assert_eq!(
            String::from_utf8(inspected.get_output().stderr.clone()).unwrap(),
            format!("warning: {}\n", warning(&dir))
        );

        let out = tmp.path().join("dist");
        charmer().arg("pack").arg(&dir).arg("--out").arg(&out).assert().success();
        let archive = out.join("istio-gateway_1.17.3.charm");
        let verified = charmer().arg("verify").arg(&archive).assert().success();
        let output = verified.get_output();
        assert!(String::from_utf8(output.stdout.clone()).unwrap().starts_with("ok  "));
        assert_eq!(
            String::from_utf8(output.stderr.clone()).unwrap(),
            format!("warning: {}\n", warning(&archive))
        );

        // Declaring the image as a resource silences it.
        let metadata = std::fs::read_to_string(dir.join("metadata.yaml")).unwrap()
        + "resources:\n  proxy-image:\n    type: oci-image\n    upstream-source: docker.io/istio/proxyv2:1.17.3\n";
        std::fs::write(dir.join("metadata.yaml"), metadata).unwrap();
        let (view, _) = inspect_json(&dir);
        assert_eq!(view["warnings"], serde_json::json!([]));
    }
}

#[test]
fn mongodb_shows_its_options_endpoints_and_pinned_image() {
    for (_tmp, dir) in fixture_charms(1) {
        let (view, stderr) = inspect_json(&dir);
        assert_eq!(
            (view["warnings"].clone(), stderr.as_str()),
            (serde_json::json!([]), ""),
            "nothing to warn about in mongodb-k8s"
        );
        let image = "ghcr.io/canonical/charmed-mongodb@sha256:b4b3edb805b20de471da57802643bfadbf979f112d738bc540ab148d145ddcfe";
        assert_eq!(view["resources"]["mongodb-image"]["type"], "oci-image");
        assert_eq!(view["resources"]["mongodb-image"]["upstream-source"], image);
        assert_eq!(view["containers"]["mongod"]["resource"], "mongodb-image");
        assert_eq!(
            view["containers"]["mongod"]["mounts"],
            serde_json::json!([{"storage": "mongodb", "location": "/var/lib/mongodb"}])
        );
        assert_eq!(
            view["storage"]["mongodb-logs"],
            serde_json::json!({"type": "filesystem", "location": "/var/log/mongodb"})
        );
        let auto_delete = option(&view, "auto-delete");
        assert_eq!(
            (auto_delete["type"].as_str(), auto_delete["default"].as_bool()),
            (Some("boolean"), Some(false))
        );
        assert_eq!(option(&view, "role")["default"], "replication");
        let endpoints = view["endpoints"].as_array().unwrap();
        assert_eq!(endpoints.len(), 12);
        assert!(endpoints.contains(&serde_json::json!({"name": "database", "role": "provides", "interface": "mongodb_client", "optional": false})));
        assert!(endpoints.contains(&serde_json::json!({"name": "logging", "role": "requires", "interface": "loki_push_api", "optional": true})));
        assert!(endpoints.contains(&serde_json::json!({"name": "database-peers", "role": "peers", "interface": "mongodb-peers", "optional": false})));

        let text = String::from_utf8(
            charmer().arg("inspect").arg(&dir).assert().success().get_output().stdout.clone(),
        )
        .unwrap();
        assert!(
            text.contains(&format!("resources:\n  mongodb-image (oci-image) {image}\n")),
            "{text}"
        );
        assert!(text.contains("containers:\n  mongod runs mongodb-image\n"), "{text}");
    }
}
