//! Issue #11: no silent wrong results. Every everyday mistake either does what the user meant
//! or fails with one line per problem; Juju keys charmer does not act on are warned about.
//! Each test works on a copy of tests/fixtures/demo so it can add its own files.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{charmer, copy_dir};

/// A fresh copy of the demo fixture (bundles/demo, charms/).
fn demo_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("demo");
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/demo"), &root);
    (dir, root)
}

fn run(root: &Path, args: &[&str]) -> Output {
    charmer().current_dir(root).args(args).output().unwrap()
}

/// stderr of a run that must fail with exit 1.
fn fails(root: &Path, args: &[&str]) -> String {
    let out = run(root, args);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "charmer {args:?} should fail: {stderr}");
    stderr
}

/// (stdout, stderr) of a run that must succeed.
fn succeeds(root: &Path, args: &[&str]) -> (String, String) {
    let out = run(root, args);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "charmer {args:?} failed: {stderr}");
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

fn write(root: &Path, path: &str, text: &str) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn misspelt_overlay_keys_are_errors_with_a_did_you_mean_hint() {
    let (_t, root) = demo_copy();
    write(
        &root,
        "typos.yaml",
        "required-secrets: [x]\napplications:\n  web:\n    option: {replicas: 9}\n    scael: 3\n    required-secret: [tls]\n",
    );
    let err = fails(&root, &["check", "bundles/demo", "--overlay", "typos.yaml"]);
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines.contains(&"error: typos.yaml: applications.web.option: unknown key \"option\" (hint: did you mean \"options\"?)"),
        "{err}"
    );
    assert!(
        lines.contains(&"error: typos.yaml: applications.web.scael: unknown key \"scael\" (hint: did you mean \"scale\"?)"),
        "{err}"
    );
    assert!(
        lines.contains(&"error: typos.yaml: applications.web.required-secret: unknown key \"required-secret\" (hint: did you mean \"required-secrets\"?)"),
        "{err}"
    );
    assert!(
        err.contains("error: typos.yaml: required-secrets: unknown key \"required-secrets\" (hint: required-secrets belongs to an application"),
        "{err}"
    );
    assert_eq!(lines.len(), 4, "{err}");
}

#[test]
fn duplicate_keys_are_errors_in_bundles_overlays_and_config_files() {
    let (_t, root) = demo_copy();
    let bundle = std::fs::read_to_string(root.join("bundles/demo/bundle.yaml")).unwrap();
    let twice = bundle.replace("relations:", "  web:\n    charm: web\n    scale: 9\nrelations:");
    write(&root, "bundles/twice/bundle.yaml", &twice);
    let err = fails(&root, &["check", "bundles/twice"]);
    assert!(err.contains("bundles/twice/bundle.yaml: line"), "{err}");
    assert!(err.contains("duplicate entry with key \"web\""), "{err}");
    write(&root, "values.yaml", "replicas: 2\nreplicas: 3\n");
    let err = fails(&root, &["check", "bundles/demo", "--config-file", "web=values.yaml"]);
    assert!(err.contains("error: values.yaml: line"), "{err}");
    assert!(err.contains("duplicate entry with key \"replicas\""), "{err}");
}

#[test]
fn juju_keys_charmer_ignores_are_warned_about_once_and_underscore_keys_are_silent() {
    let (_t, root) = demo_copy();
    write(
        &root,
        "juju.yaml",
        "series: focal\ndescription: tuned\napplications:\n  web:\n    expose: true\n    constraints: mem=1G\n    annotations: {gui-x: '1'}\n    _github_repo_name: web-operator\n  mydb:\n    expose: true\n",
    );
    let (_, stderr) = succeeds(&root, &["check", "bundles/demo", "--overlay", "juju.yaml"]);
    let warnings: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        warnings,
        [
            "warning: juju.yaml: series: ignored: charmer does not choose a charm base; the charm's images decide",
            "warning: juju.yaml: applications.*.expose: ignored (set on mydb, web): charmer does not expose applications; use the charm's service options (e.g. service_type)",
            "warning: bundles/demo/bundle.yaml: applications.web.constraints: ignored: charm web is deployed by charmer, which applies no Juju constraints; set requests and limits with the charm's options",
        ],
        "{stderr}"
    );
}

#[test]
fn scale_and_num_units_together_are_refused() {
    let (_t, root) = demo_copy();
    write(&root, "both.yaml", "applications:\n  web:\n    scale: 2\n    num_units: 3\n");
    let err = fails(&root, &["check", "bundles/demo", "--overlay", "both.yaml"]);
    assert!(
        err.contains(
            "error: both.yaml: applications.web.num_units: both scale and num_units are set"
        ),
        "{err}"
    );
}

/// The `password` of the rendered `mydb-credentials` Secret.
fn rendered_password(stream: &str) -> String {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(stream)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
        .find(|o| o["kind"].as_str() == Some("Secret"))
        .and_then(|o| o["stringData"]["password"].as_str().map(str::to_string))
        .expect("a Secret with stringData.password")
}

#[test]
fn config_files_read_includes_relative_to_themselves_and_config_reads_at_files() {
    let (_t, root) = demo_copy();
    write(&root, "values/ca.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n");
    write(&root, "values/db.yaml", "password: include-file://ca.pem\n");
    let (stream, _) =
        succeeds(&root, &["render", "bundles/demo", "--config-file", "mydb=values/db.yaml"]);
    assert_eq!(rendered_password(&stream), "-----BEGIN CERTIFICATE-----\nMIIB\n");
    write(&root, "values/b64.yaml", "password: include-base64://ca.pem\n");
    let (stream, _) =
        succeeds(&root, &["render", "bundles/demo", "--config-file", "mydb=values/b64.yaml"]);
    assert_eq!(rendered_password(&stream), "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIK");
    let (stream, _) =
        succeeds(&root, &["render", "bundles/demo", "--config", "mydb.password=@values/ca.pem"]);
    assert_eq!(rendered_password(&stream), "-----BEGIN CERTIFICATE-----\nMIIB\n");
    write(&root, "values/missing.yaml", "password: include-file://nope.pem\n");
    let err = fails(
        &root,
        &[
            "check",
            "bundles/demo",
            "--config-file",
            "mydb=values/missing.yaml",
            "--config",
            "web.replicas=@nope.txt",
        ],
    );
    assert!(
        err.contains("error: values/missing.yaml: password: cannot include values/nope.pem"),
        "{err}"
    );
    assert!(err.contains("error: --config: web.replicas: cannot read nope.txt"), "{err}");
}

#[test]
fn relocation_is_idempotent_and_a_partial_image_map_alone_fails_naming_what_it_lacks() {
    let (_t, root) = demo_copy();
    write(
        &root,
        "relocated.yaml",
        "applications:\n  web:\n    resources:\n      web-image: registry.example:5000/shop/aas-frontend:1.10\n",
    );
    let (stream, _) = succeeds(
        &root,
        &[
            "render",
            "bundles/demo",
            "--overlay",
            "relocated.yaml",
            "--registry",
            "registry.example:5000/shop",
        ],
    );
    assert!(stream.contains("image: registry.example:5000/shop/aas-frontend:1.10\n"), "{stream}");
    assert!(
        stream.contains("image: registry.example:5000/shop/library/mongo:7.0.14\n"),
        "{stream}"
    );
    assert!(!stream.contains("shop/shop"), "{stream}");

    write(&root, "partial.txt", "10.0.0.5:5000/library/mongo:7.0.14\n");
    let err = fails(&root, &["render", "bundles/demo", "--image-map", "partial.txt"]);
    assert_eq!(
        err.trim_end(),
        "error: bundles/demo/bundle.yaml: charms/web/metadata.yaml: resources.web-image.upstream-source: image docker.io/library/nginx:1.27 is not in the --image-map (hint: add its retagged line to the image map, or give --registry for the images the map lacks)"
            .replace("charms/web", &root.join("charms/web").display().to_string()),
        "{err}"
    );
    // With --registry too, the map wins where it has the image and the registry takes the rest.
    let (stream, _) = succeeds(
        &root,
        &["render", "bundles/demo", "--image-map", "partial.txt", "--registry", "10.0.0.5:5000"],
    );
    assert!(stream.contains("image: 10.0.0.5:5000/library/nginx:1.27\n"), "{stream}");
}

/// stderr of `charmer ARGS` run in the repository (its charms/ and bundles/), failing.
fn repo_fails(args: &[&str]) -> String {
    fails(Path::new(env!("CARGO_MANIFEST_DIR")), args)
}

#[test]
fn check_refuses_node_ports_out_of_range_or_taken_twice_relative_host_paths_and_too_much_scale() {
    let nodeport = "bundles/full/overlays/nodeport.yaml";
    let err = repo_fails(&[
        "check",
        "bundles/full",
        "--overlay",
        nodeport,
        "--config",
        "hivemq.websocket_node_port=80",
        "--config",
        "mongodb.host_path=data/db",
    ]);
    // The charms declare these options' formats: refused at resolve, naming the option.
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(err.contains("error: --config: applications.hivemq.options.websocket_node_port: 80 is outside the node port range 30000-32767 (0 lets Kubernetes pick one)"), "{err}");
    assert!(err.contains("error: --config: applications.mongodb.options.host_path: \"data/db\" does not match the pattern \"/.*\""), "{err}");
    // A node port taken by another Service is only known once every object is rendered.
    let err = repo_fails(&[
        "check",
        "bundles/full",
        "--overlay",
        nodeport,
        "--config",
        "istio-gateway.http_node_port=30135",
    ]);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("application istio-gateway: Service istio-gateway: spec.ports[1].nodePort: node port 30135 is also used by Service hivemq of application hivemq (hint: set istio-gateway.http_node_port (from --config) to another free node port)"), "{err}");

    let (_t, root) = demo_copy();
    write(&root, "scale.yaml", "applications:\n  mongodb:\n    scale: 3\n");
    let err = repo_fails(&[
        "check",
        "bundles/full",
        "--overlay",
        root.join("scale.yaml").to_str().unwrap(),
    ]);
    assert!(
        err.contains("bundles/full/bundle.yaml: applications.mongodb.scale: charm mongodb runs at most 1 instance(s), not 3 (hint: set scale: 1"),
        "{err}"
    );
}

#[test]
fn registry_strings_with_bad_ports_are_usage_errors() {
    for bad in ["registry.example:abc", "registry.example:99999"] {
        let out = charmer()
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["check", "bundles/full", "--registry", bad])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        assert!(stderr.contains("the port must be a number from 1 to 65535"), "{stderr}");
    }
}

#[test]
fn a_bad_option_does_not_hide_a_missing_relation() {
    let (_t, root) = demo_copy();
    write(
        &root,
        "bundles/norel/bundle.yaml",
        "bundle: kubernetes\nname: norel\napplications:\n  mydb: {charm: db}\n  web:\n    charm: web\n    options: {replicas: many}\n",
    );
    let err = fails(&root, &["check", "bundles/norel"]);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(err.contains("applications.web.options.replicas: expected an int"), "{err}");
    assert!(
        err.contains("applications.web: requires endpoint \"db\" (interface mongodb_client) is not related (hint: add the relation [web:db, mydb:database])"),
        "{err}"
    );
}

#[test]
fn check_lists_the_secrets_that_must_exist_before_deploy() {
    let (_t, root) = demo_copy();
    write(
        &root,
        "secrets.yaml",
        "applications:\n  backend:\n    required-secrets: [tls-ca, regcred]\n",
    );
    let (plan, _) = succeeds(
        Path::new(env!("CARGO_MANIFEST_DIR")),
        &[
            "check",
            "bundles/full",
            "--config",
            "hivemq.image_pull_secret=regcred",
            "--overlay",
            root.join("secrets.yaml").to_str().unwrap(),
        ],
    );
    assert!(
        plan.ends_with("\nSecrets that must exist in namespace full before deploy:\n  regcred  (needed by backend, hivemq)\n  tls-ca  (needed by backend)\n"),
        "{plan}"
    );
}

/// A charm with options running an image on `registry`, and a bundle of it.
fn mqtt_bundle(dir: &Path, registry: &str) {
    write(
        dir,
        "charms/mqtt/metadata.yaml",
        &format!("name: mqtt\nsummary: s\nresources:\n  img: {{type: oci-image, upstream-source: '{registry}/team/app:1.0'}}\n"),
    );
    write(
        dir,
        "charms/mqtt/config.yaml",
        "options:\n  mqtt_node_port: {type: int, default: 30135}\n  token: {type: secret, default: ''}\n",
    );
    write(dir, "charms/mqtt/version", "1.0.0\n");
    write(dir, "charms/mqtt/templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '{{ app }}'}\ndata: {port: '{{ config.mqtt_node_port }}'}\n");
    write(
        dir,
        "bundle/bundle.yaml",
        "bundle: kubernetes\nname: iot\napplications:\n  hivemq: {charm: mqtt}\n",
    );
}

#[test]
fn airgap_export_carries_config_values_and_refuses_secret_ones() {
    use crate::support::registry::{Kind, Layout, Registry};
    if !crate::support::tools_present(crate::support::REGISTRY_TOOLS) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = work.path();
    let registry = Registry::start(Kind::Plain);
    let mut layout = Layout::new(&root.join("layout"));
    let layer = layout.layer(81, 10_000);
    let image = layout.image("amd64", &[&layer]);
    layout.name(&image, "app");
    layout.push_with_skopeo("app", &registry, "team/app:1.0");
    mqtt_bundle(root, &registry.host());
    write(root, "values.yaml", "mqtt_node_port: 31884\n");
    let (_, stderr) = succeeds(
        root,
        &[
            "airgap",
            "export",
            "bundle/bundle.yaml",
            "--config",
            "hivemq.mqtt_node_port=31883",
            "--out",
            "a.tar",
            "--insecure-http",
        ],
    );
    assert!(!stderr.contains("error"), "{stderr}");
    let side = format!("{}/side", registry.host());
    let out = run(
        root,
        &["airgap", "import", "a.tar", "--registry", &side, "--insecure-http", "--out", "side"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let carried = std::fs::read_to_string(root.join("side/charmer-export-config.yaml")).unwrap();
    assert!(carried.contains("hivemq:\n    options:\n      mqtt_node_port: 31883\n"), "{carried}");
    assert!(stdout.contains("--overlay side/charmer-export-config.yaml"), "{stdout}");
    let (stream, _) = succeeds(
        root,
        &[
            "render",
            "side/bundle.yaml",
            "--charms",
            "side/charms",
            "--overlay",
            "side/charmer-export-config.yaml",
        ],
    );
    assert!(stream.contains("port: '31883'"), "{stream}");

    // --config-file values travel too; secret values do not, whatever their source.
    let (_, _) = succeeds(
        root,
        &[
            "airgap",
            "export",
            "bundle/bundle.yaml",
            "--config-file",
            "hivemq=values.yaml",
            "--out",
            "b.tar",
            "--insecure-http",
        ],
    );
    let member = std::process::Command::new("tar")
        .args(["-xOf", "b.tar", "bundle/charmer-export-config.yaml"])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&member.stdout).contains("mqtt_node_port: 31884"));
    let err = fails(
        root,
        &[
            "airgap",
            "export",
            "bundle/bundle.yaml",
            "--config",
            "hivemq.token=hunter2",
            "--out",
            "c.tar",
            "--insecure-http",
        ],
    );
    assert!(
        err.contains("error: --config: applications.hivemq.options.token: a secret value cannot be carried in an air-gap archive (hint: set it to '' at export and give it on the air-gapped side (--config hivemq.token=@FILE, or the Juju script's environment variable))"),
        "{err}"
    );
    assert!(!err.contains("hunter2") && !root.join("c.tar").exists(), "{err}");
}

use crate::deploy::charmer as on_cluster;

#[test]
fn deploy_records_overrides_config_shows_them_and_reuse_config_keeps_them() {
    let emulator = crate::support::kube_emulator::KubeEmulator::start();
    let first = [
        "deploy",
        "bundles/demo",
        "--timeout",
        "30s",
        "--config",
        "web.replicas=4",
        "--config",
        "mydb.password=hunter2",
    ];
    let (code, out, err) = on_cluster(&emulator, &first);
    assert_eq!(code, 0, "{out}{err}");

    let (code, shown, err) = on_cluster(&emulator, &["config", "demo", "-n", "demo"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        shown,
        "bundle demo in namespace demo: revision 1\n\
         APP   OPTION        VALUE      SOURCE\n\
         mydb  password      <secret>   --config\n\
         mydb  port          27018      bundle bundles/demo/bundle.yaml\n\
         web   replicas      4          --config\n\
         web   service_type  ClusterIP  charm default\n"
    );
    let (code, shown, _) = on_cluster(&emulator, &["config", "demo", "web", "--output", "json"]);
    assert_eq!(code, 0);
    assert!(shown.contains("\"replicas\"") && !shown.contains("mydb"), "{shown}");
    assert!(!shown.contains("hunter2"));

    // A re-deploy without the overrides says what it reverts...
    let (code, diff, err) = on_cluster(&emulator, &["deploy", "bundles/demo", "--diff"]);
    assert_eq!(code, 1, "{err}");
    assert!(diff.contains("+  replicas: 3"), "{diff}");
    assert!(
        err.contains("warning: revision 1: web.replicas: 4 (set by --config) becomes 3 (bundle bundles/demo/bundle.yaml) (hint: give the override again, or deploy with --reuse-config"),
        "{err}"
    );
    assert!(
        err.contains("warning: revision 1: mydb.password: <secret> (set by --config) becomes <secret> (charm default)"),
        "{err}"
    );
    assert!(!err.contains("hunter2") && !diff.contains("hunter2"), "{err}{diff}");
    // ...and --reuse-config keeps them, secrets included: nothing changes.
    let (code, diff, err) = on_cluster(
        &emulator,
        &["deploy", "bundles/demo", "--diff", "--reuse-config", "--skip-image-check"],
    );
    assert_eq!((code, diff.as_str(), err.as_str()), (0, "", ""));
    // Flags given now win over the reused ones.
    let (code, diff, err) = on_cluster(
        &emulator,
        &["deploy", "bundles/demo", "--diff", "--reuse-config", "--config", "web.replicas=5"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(diff.contains("-  replicas: 4") && diff.contains("+  replicas: 5"), "{diff}");
    assert!(err.contains("web.replicas: 4 (set by --config) becomes 5 (--config)"), "{err}");
}

#[test]
fn a_template_rendering_a_key_twice_fails_instead_of_keeping_the_last() {
    let (_t, root) = demo_copy();
    let path = root.join("charms/db/templates/svc.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("spec:\n", "spec:\n  type: NodePort\n  type: ClusterIP\n"))
        .unwrap();
    let err = fails(&root, &["check", "bundles/demo"]);
    assert!(
        err.contains(
            "charms/db/templates/svc.yaml: application mydb: document 1: rendered invalid YAML"
        ),
        "{err}"
    );
    assert!(err.contains("duplicate entry with key \"type\""), "{err}");
}

/// A flag that cannot take effect is an error before anything is read or touched: waiting
/// flags without a wait, apply-only flags with `--dry-run` or `--diff`.
#[test]
fn flags_that_cannot_take_effect_are_refused() {
    let run = |args: &[&str]| {
        let out = crate::support::charmer().args(args).output().unwrap();
        (out.status.code(), String::from_utf8(out.stderr).unwrap())
    };
    for args in [
        &["deploy", "nowhere", "--no-wait", "--timeout", "5m"][..],
        &["restart", "shop", "web", "--no-wait", "--timeout", "5m"],
        &["rollback", "shop", "--no-wait", "--timeout", "5m"],
        &["deploy", "nowhere", "--diff", "--timeout", "5m"],
        &["deploy", "nowhere", "--dry-run", "--timeout", "5m"],
    ] {
        let (code, err) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains("cannot be used with '--timeout <DURATION>'"), "{args:?}: {err}");
    }
    // A dry run or diff changes nothing, asks nothing and takes no lock: clap refuses the
    // flags that could only matter to an apply.
    for (mode, flag) in [
        ("--dry-run", "--yes"),
        ("--dry-run", "--no-wait"),
        ("--diff", "--rollback-on-failure"),
        ("--diff", "--wait-for-lock=5s"),
    ] {
        let (code, err) = run(&["deploy", "nowhere", mode, flag]);
        assert_eq!(code, Some(2), "{flag}: {err}");
        let name = flag.split('=').next().unwrap_or(flag);
        assert!(err.contains(&format!("'{mode}' cannot be used with '{name}")), "{flag}: {err}");
    }
}
