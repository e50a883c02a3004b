//! Bundles, resolver and renderer through the real CLI, on the small demo charms in
//! tests/fixtures/demo (a `db` providing `mongodb_client` with published relation data, a
//! `web` requiring it).

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/demo")
}

fn charmer(args: &[&str]) -> std::process::Output {
    Command::cargo_bin("charmer").unwrap().current_dir(demo()).args(args).output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = charmer(args);
    assert!(
        out.status.success(),
        "charmer {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(args: &[&str]) -> String {
    let out = charmer(args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "charmer {args:?} should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

fn docs(stream: &str) -> Vec<serde_yaml::Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(stream)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn find<'a>(objects: &'a [serde_yaml::Value], kind: &str, name: &str) -> &'a serde_yaml::Value {
    objects
        .iter()
        .find(|o| o["kind"].as_str() == Some(kind) && o["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

#[test]
fn check_prints_the_plan_with_provenance_and_redacted_secrets() {
    let plan = ok(&[
        "check",
        "bundles/demo",
        "--config",
        "web.service_type=NodePort",
        "--config",
        "mydb.password=hunter2",
    ]);
    assert!(plan.contains("web: charm web 1.2.0"), "{plan}");
    assert!(plan.contains("service_type = NodePort  (--config)"), "{plan}");
    assert!(plan.contains("replicas = 3  (bundle bundles/demo/bundle.yaml)"), "{plan}");
    assert!(plan.contains("password = <secret>  (--config)"), "{plan}");
    assert!(!plan.contains("hunter2"), "{plan}");
    assert!(plan.contains("db -> mydb:database (mongodb_client)"), "{plan}");
}

/// `check --output json` is data: relations, images and network policies as objects, not
/// the text lines; the text plan prints the same facts as lines.
#[test]
fn check_json_is_structured_and_says_what_the_text_says() {
    let args = [
        "check",
        "bundles/demo",
        "--network-policies",
        "relations",
        "--registry",
        "reg.local:5000/x",
    ];
    let text = ok(&args);
    assert!(text.contains("\n  relations:\n    db -> mydb:database (mongodb_client)\n"), "{text}");
    assert!(
        text.contains(
            "    web-image: docker.io/library/nginx:1.27 -> reg.local:5000/x/library/nginx:1.27\n"
        ),
        "{text}"
    );
    assert!(text.contains("\n  mydb-relations (mydb): admits web on 27018/TCP\n"), "{text}");
    assert!(text.contains("\n  web-relations (web): admits nobody\n"), "{text}");

    let json = ok(&[&args[..], &["--output", "json"]].concat());
    let plan: serde_json::Value = serde_json::from_str(&json).unwrap();
    let web = plan["applications"].as_array().unwrap().iter().find(|a| a["name"] == "web").unwrap();
    assert_eq!(
        web["relations"],
        serde_json::json!([{
            "endpoint": "db", "remote_app": "mydb", "remote_endpoint": "database",
            "interface": "mongodb_client"
        }])
    );
    assert_eq!(
        web["images"],
        serde_json::json!([{
            "resource": "web-image", "source": "docker.io/library/nginx:1.27",
            "target": "reg.local:5000/x/library/nginx:1.27"
        }])
    );
    assert_eq!(
        plan["network_policies"],
        serde_json::json!([
            {"name": "mydb-relations", "application": "mydb", "ingress": [
                {"from": [{"application": "web"}], "ports": [{"port": 27018, "protocol": "TCP"}]}
            ]},
            {"name": "web-relations", "application": "web", "ingress": []}
        ])
    );
}

#[test]
fn merge_order_is_defaults_bundle_overlays_config_files_then_config() {
    let json = ok(&[
        "check",
        "bundles/demo",
        "--output",
        "json",
        "--overlay",
        "bundles/demo/overlay-tune.yaml",
        "--config-file",
        "web=bundles/demo/web-values.yaml",
        "--config",
        "web.replicas=9",
    ]);
    let plan: serde_json::Value = serde_json::from_str(&json).unwrap();
    let app = |name: &str| {
        plan["applications"].as_array().unwrap().iter().find(|a| a["name"] == name).unwrap().clone()
    };
    let web = app("web");
    let setting = |app: &serde_json::Value, key: &str| {
        app["config"].as_array().unwrap().iter().find(|c| c["key"] == key).cloned()
    };
    assert_eq!(
        setting(&web, "replicas").unwrap()["value"],
        9,
        "--config wins over the config file"
    );
    assert_eq!(setting(&web, "replicas").unwrap()["source"]["kind"], "command-line");
    assert_eq!(setting(&web, "service_type").unwrap()["value"], "LoadBalancer");
    assert_eq!(setting(&web, "service_type").unwrap()["source"]["kind"], "config-file");
    assert_eq!(web["scale"], 5, "the overlay's scale replaces the bundle's");
    let db = app("mydb");
    assert!(
        setting(&db, "port").is_none(),
        "options: {{port: null}} in an overlay restores the charm default"
    );
    assert_eq!(setting(&db, "password").unwrap()["value"], "<secret>");
    assert_eq!(setting(&db, "password").unwrap()["source"]["kind"], "overlay");
}

#[test]
fn include_file_values_are_read_relative_to_the_overlay() {
    let stream = ok(&["render", "bundles/demo", "--overlay", "bundles/demo/overlay-tune.yaml"]);
    let objects = docs(&stream);
    assert_eq!(find(&objects, "Secret", "mydb-credentials")["stringData"]["password"], "from-file");
    assert_eq!(find(&objects, "Service", "mydb")["spec"]["ports"][0]["port"], 27017);
}

#[test]
fn an_overlay_with_a_null_application_removes_it_and_its_relations() {
    let plan = ok(&["check", "bundles/demo", "--overlay", "bundles/demo/overlay-drop-web.yaml"]);
    assert!(!plan.contains("\nweb:"), "{plan}");
    assert!(!plan.contains("relations:"), "{plan}");
}

#[test]
fn relation_data_published_by_the_provider_reaches_the_requirer() {
    let objects = docs(&ok(&["render", "bundles/demo", "--namespace", "prod"]));
    let deployment = find(&objects, "Deployment", "web");
    let env = &deployment["spec"]["template"]["spec"]["containers"][0]["env"][0];
    assert_eq!(env["name"], "DB_HOST");
    assert_eq!(env["value"], "mydb.prod.svc.cluster.local");
    for o in &objects {
        assert_eq!(o["metadata"]["namespace"], "prod");
        assert_eq!(o["metadata"]["labels"]["app.kubernetes.io/managed-by"], "charmer");
        assert_eq!(o["metadata"]["labels"]["charmer.io/bundle"], "demo");
    }
}

#[test]
fn registry_and_image_map_relocate_every_image_and_the_lock_records_them() {
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("retagged-images.txt");
    std::fs::write(&map, "# from the mirror job\n10.0.0.5:5000/mirror/library/nginx:1.27@sha256:1111111111111111111111111111111111111111111111111111111111111111\n").unwrap();
    let out = dir.path().join("out");
    ok(&[
        "render",
        "bundles/demo",
        "--registry",
        "10.0.0.5:5000/mirror",
        "--image-map",
        map.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let web = docs(&std::fs::read_to_string(out.join("web.yaml")).unwrap());
    let db = docs(&std::fs::read_to_string(out.join("mydb.yaml")).unwrap());
    assert_eq!(
        find(&web, "Deployment", "web")["spec"]["template"]["spec"]["containers"][0]["image"],
        "10.0.0.5:5000/mirror/library/nginx:1.27@sha256:1111111111111111111111111111111111111111111111111111111111111111",
        "the image map is used first, with its digest"
    );
    assert_eq!(
        find(&db, "StatefulSet", "mydb")["spec"]["template"]["spec"]["containers"][0]["image"],
        "10.0.0.5:5000/mirror/library/mongo:7.0.14"
    );
    let lock: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(out.join("bundle.lock")).unwrap()).unwrap();
    assert_eq!(lock["applications"]["web"]["version"], "1.2.0");
    assert_eq!(lock["applications"]["web"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(
        lock["applications"]["mydb"]["images"]["db-image"]["source"],
        "docker.io/library/mongo:7.0.14"
    );
    assert_eq!(
        lock["applications"]["mydb"]["images"]["db-image"]["target"],
        "10.0.0.5:5000/mirror/library/mongo:7.0.14"
    );
    let listed = ok(&["images", "list", "bundles/demo", "--registry", "10.0.0.5:5000/mirror"]);
    assert_eq!(listed, "docker.io/library/mongo:7.0.14 -> 10.0.0.5:5000/mirror/library/mongo:7.0.14\ndocker.io/library/nginx:1.27 -> 10.0.0.5:5000/mirror/library/nginx:1.27\n");
    assert_eq!(
        ok(&["images", "list", "bundles/demo", "--why", "nginx:1.27"]),
        "web (charm web 1.2.0, resource web-image)\n"
    );
    // --output json is honoured with --why too: the list's own entries for that image.
    let why: serde_json::Value = serde_json::from_str(&ok(&[
        "images",
        "list",
        "bundles/demo",
        "--registry",
        "10.0.0.5:5000/mirror",
        "--why",
        "10.0.0.5:5000/mirror/library/nginx:1.27",
        "--output",
        "json",
    ]))
    .unwrap();
    assert_eq!(
        why,
        serde_json::json!({"images": [{
            "source": "docker.io/library/nginx:1.27",
            "target": "10.0.0.5:5000/mirror/library/nginx:1.27",
            "used_by": [{"app": "web", "charm": "web", "version": "1.2.0", "resource": "web-image"}]
        }]})
    );
}

#[test]
fn rendering_is_deterministic() {
    let a = ok(&["render", "bundles/demo", "--registry", "r.example:5000"]);
    let b = ok(&["render", "bundles/demo", "--registry", "r.example:5000"]);
    assert_eq!(a, b);
    assert!(
        a.starts_with("---\n# Source: mydb/templates/secret.yaml\n"),
        "objects sorted by application then kind order:\n{a}"
    );
}

#[test]
fn every_problem_is_reported_at_once_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle.yaml");
    std::fs::write(
        &bundle,
        "bundle: kubernetes\nname: bad\napplications:\n  mydb:\n    charm: db\n    scale: -1\n    options: {port: \"x\", prot: 1}\n  web:\n    charm: web\n    options: {service_type: Ingress}\n  other:\n    charm: missing\nrelations:\n  - [web, ghost]\n",
    )
    .unwrap();
    let charms = demo().join("charms");
    let err = fails(&[
        "check",
        bundle.to_str().unwrap(),
        "--charms",
        charms.to_str().unwrap(),
        "--config",
        "ghost.x=1",
    ]);
    let b = bundle.display().to_string();
    let expected = [
        format!("error: {b}: applications.mydb.scale: -1 is not a valid scale"),
        "error: --config: ghost: the bundle has no application named \"ghost\"".to_string(),
        format!("error: {b}: applications.mydb.options.prot: unknown option \"prot\" (hint: did you mean \"port\"?"),
        format!("error: {b}: applications.mydb.options.port: expected an int, got a string"),
        format!("error: {b}: applications.web.options.service_type: \"Ingress\" is not allowed; allowed values: \"ClusterIP\", \"NodePort\", \"LoadBalancer\""),
        format!("error: {b}: applications.other.charm: no charm named \"missing\""),
        format!("error: {b}: relations[0]: unknown application \"ghost\""),
    ];
    for line in expected {
        assert!(err.lines().any(|l| l.starts_with(&line)), "missing {line:?} in:\n{err}");
    }
    assert_eq!(err.lines().count(), 7, "{err}");
}

fn write_bundle(dir: &Path, body: &str) -> String {
    let bundle = dir.join("bundle.yaml");
    std::fs::write(&bundle, format!("bundle: kubernetes\nname: t\napplications:\n  mydb: {{charm: db}}\n  web: {{charm: web}}\n{body}")).unwrap();
    bundle.display().to_string()
}

#[test]
fn relations_are_checked_against_endpoints_and_interfaces() {
    let dir = tempfile::tempdir().unwrap();
    let charms = demo().join("charms");
    let charms = charms.to_str().unwrap();
    let b = write_bundle(dir.path(), "relations: []\n");
    let err = fails(&["check", &b, "--charms", charms]);
    assert!(err.contains("applications.web: requires endpoint \"db\" (interface mongodb_client) is not related (hint: add the relation [web:db, mydb:database])"), "{err}");
    let b = write_bundle(dir.path(), "relations:\n  - [web:db, mydb:nothere]\n");
    let err = fails(&["check", &b, "--charms", charms]);
    assert!(err.contains("relations[0]: application \"mydb\" (charm db) has no endpoint \"nothere\" (hint: endpoints: database)"), "{err}");
    let b = write_bundle(dir.path(), "relations:\n  - [web:db, mydb:database]\n  - [mydb, web]\n");
    let err = fails(&["check", &b, "--charms", charms]);
    assert!(err.contains("relations[1]: duplicate relation mydb - web"), "{err}");
}

#[test]
fn a_typo_in_a_template_fails_naming_template_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let charms = dir.path().join("charms");
    crate::support::copy_dir(&demo().join("charms"), &charms);
    let deploy = charms.join("web/templates/deploy.yaml");
    let text =
        std::fs::read_to_string(&deploy).unwrap().replace("config.replicas", "config.replcias");
    std::fs::write(&deploy, text).unwrap();
    let err = fails(&["render", "bundles/demo", "--charms", charms.to_str().unwrap()]);
    assert!(
        err.contains(&format!(
            "error: {}: application web: line 6: undefined value",
            deploy.display()
        )),
        "{err}"
    );
}

#[test]
fn the_air_gap_lint_refuses_images_that_are_not_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let charms = dir.path().join("charms");
    crate::support::copy_dir(&demo().join("charms"), &charms);
    let deploy = charms.join("web/templates/deploy.yaml");
    let text = std::fs::read_to_string(&deploy)
        .unwrap()
        .replace("{{ images[\"web-image\"] }}", "docker.io/library/busybox:1.36");
    std::fs::write(&deploy, text).unwrap();
    let err = fails(&[
        "render",
        "bundles/demo",
        "--charms",
        charms.to_str().unwrap(),
        "--registry",
        "10.0.0.5:5000",
    ]);
    assert!(
        err.contains("application web: Deployment web: container web: image docker.io/library/busybox:1.36 is not one of the charm's resolved images"),
        "{err}"
    );
}

/// Charmed Kubeflow's bundle (`_github_*` keys, channels, revisions, `trust`, relations with
/// and without endpoints): the one written here, and the real one when present beside the
/// repository.
#[test]
fn kubeflow_bundles_parse() {
    for fixtures in crate::support::juju_fixture_sets() {
        let input = charmer::bundle::BundleInput {
            bundle: fixtures.join("bundle-kubeflow__1.8-stable__bundle.yaml"),
            ..Default::default()
        };
        let bundle = charmer::bundle::Bundle::load(&input).unwrap();
        assert_eq!(bundle.name, "kubeflow");
        assert!(bundle.applications.len() > 10, "{}", bundle.applications.len());
        let gateway = &bundle.applications["istio-ingressgateway"];
        assert_eq!(gateway.charm, charmer::bundle::CharmRef::Name("istio-gateway".into()));
        assert!(gateway.trust);
        assert!(bundle
            .relations
            .iter()
            .any(|r| r.ends[0].app == "dex-auth"
                && r.ends[1].endpoint.as_deref() == Some("oidc-client")));
    }
}

/// A bare version in a bundle is that version exactly (as Helm and npm users read it): with
/// web 1.0.0 and 1.1.0 side by side, `version: "1.0.0"` takes 1.0.0, `^1.0` takes 1.1.0, and
/// `1.x` is refused with a hint.
#[test]
fn a_bare_bundle_version_is_exact() {
    let tmp = tempfile::tempdir().unwrap();
    crate::support::copy_dir(&demo(), tmp.path());
    let archives = tmp.path().join("archives");
    let web = tmp.path().join("charms/web");
    for version in ["1.0.0", "1.1.0"] {
        std::fs::write(web.join("version"), format!("{version}\n")).unwrap();
        Command::cargo_bin("charmer")
            .unwrap()
            .args(["pack"])
            .arg(&web)
            .arg("--out")
            .arg(&archives)
            .assert()
            .success();
    }
    std::fs::remove_dir_all(&web).unwrap();
    let bundle = tmp.path().join("bundles/demo/bundle.yaml");
    let original = std::fs::read_to_string(&bundle).unwrap();
    let chosen = |requirement: &str| {
        std::fs::write(&bundle, original.replace("\"^1.0\"", &format!("\"{requirement}\"")))
            .unwrap();
        let out = Command::cargo_bin("charmer")
            .unwrap()
            .current_dir(tmp.path())
            .args(["check", "bundles/demo", "--charms", "charms", "--charms", "archives"])
            .args(["--output", "json"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let version = plan["applications"]
            .as_array()
            .and_then(|apps| apps.iter().find(|a| a["name"] == "web"))
            .map(|web| web["version"].as_str().unwrap_or_default().to_string());
        (version, stderr)
    };
    assert_eq!(chosen("1.0.0").0.as_deref(), Some("1.0.0"), "exactly 1.0.0, not ^1.0.0");
    assert_eq!(chosen("=1.0.0").0.as_deref(), Some("1.0.0"));
    assert_eq!(chosen("^1.0").0.as_deref(), Some("1.1.0"));
    let (version, stderr) = chosen("1.x");
    assert_eq!(version, None);
    assert!(
        stderr.contains("applications.web.version: \"1.x\" has a wildcard")
            && stderr.contains("hint: write"),
        "{stderr}"
    );
}

/// An edited charm source beside the archive published from it, both 1.0.0: two charms under
/// one version is an error naming both (a warning with --prefer-source, which takes the source).
#[test]
fn two_contents_under_one_version_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    crate::support::copy_dir(&demo(), tmp.path());
    let web = tmp.path().join("charms/web");
    let version = std::fs::read_to_string(web.join("version")).unwrap().trim().to_string();
    let check = |extra: &[&str]| {
        Command::cargo_bin("charmer")
            .unwrap()
            .current_dir(tmp.path())
            .args(["check", "bundles/demo", "--charms", "charms", "--charms", "dist"])
            .args(extra)
            .output()
            .unwrap()
    };
    Command::cargo_bin("charmer")
        .unwrap()
        .arg("pack")
        .arg(&web)
        .arg("--out")
        .arg(tmp.path().join("dist"))
        .assert()
        .success();
    // The same content twice is fine.
    assert!(check(&[]).status.success());

    let config = std::fs::read_to_string(web.join("config.yaml")).unwrap();
    std::fs::write(web.join("config.yaml"), format!("{config}\n# edited without a version bump\n"))
        .unwrap();
    let refused = check(&[]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!("web {version} is in "))
            && stderr.contains("with different content"),
        "{stderr}"
    );
    assert!(
        stderr.contains("charms/web (sha256 ")
            && stderr.contains(&format!("web_{version}.charm (sha256 ")),
        "{stderr}"
    );
    assert!(stderr.contains("--prefer-source"), "{stderr}");

    let preferred = check(&["--prefer-source"]);
    let stderr = String::from_utf8_lossy(&preferred.stderr);
    assert!(preferred.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: ") && stderr.contains("--prefer-source takes the source folder"),
        "{stderr}"
    );
}

/// Overlays that remove every application would make deploy prune the whole bundle: refused,
/// pointing to `charmer remove`.
#[test]
fn overlays_that_remove_every_application_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let overlay = tmp.path().join("none.yaml");
    std::fs::write(&overlay, "applications:\n  web: null\n  mydb: null\n").unwrap();
    let err = fails(&["check", "bundles/demo", "--overlay", overlay.to_str().unwrap()]);
    assert!(
        err.contains("applications: the overlays (") && err.contains("remove every application"),
        "{err}"
    );
    assert!(
        err.contains("hint: to take the bundle out of a cluster, use `charmer remove demo`"),
        "{err}"
    );
}
