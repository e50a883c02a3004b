//! Issue #25: what `check` accepts, the cluster accepts. Every case of the issue, through the
//! real CLI on the repository's charms and bundles: option constraints checked at resolve
//! for values from every source (naming where the value was set), credentials refused in
//! plain options (and never exported), rendered objects validated offline, and the hints for
//! mistakes a new user makes.

use std::path::Path;

use crate::support::charmer;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// (exit code, stderr) of `charmer ARGS` in the repository.
fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = charmer().current_dir(repo()).args(args).output().unwrap();
    (out.status.code(), String::from_utf8(out.stderr).unwrap())
}

/// stderr of a `check` that must fail with exit 1.
fn check_fails(args: &[&str]) -> String {
    let mut all = vec!["check"];
    all.extend_from_slice(args);
    let (code, stderr) = run(&all);
    assert_eq!(code, Some(1), "charmer {all:?} should fail: {stderr}");
    stderr
}

fn one_error(args: &[&str]) -> String {
    let err = check_fails(args);
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

#[test]
fn out_of_range_and_malformed_values_are_refused_naming_option_source_and_fix() {
    for (config, expected) in [
        ("backend.replicas=-1", "error: --config: applications.backend.options.replicas: -1 is below the minimum 0 (option type int) (hint: replicas: minimum 0)"),
        ("backend.port=70000", "error: --config: applications.backend.options.port: 70000 is not a port (1-65535) (option type int) (hint: port: format port)"),
        ("mlflow.workers=-3", "error: --config: applications.mlflow.options.workers: -3 is below the minimum 1"),
        ("backend.memory_limit=512MB", "error: --config: applications.backend.options.memory_limit: \"512MB\" is not a Kubernetes quantity"),
        ("mongodb.storage_size=8GB", "error: --config: applications.mongodb.options.storage_size: \"8GB\" is not a Kubernetes quantity"),
        ("serving.model_name=", "error: --config: applications.serving.options.model_name: the value must not be empty"),
        ("frontend.hostname=https://web.appstore.ai/", "error: --config: applications.frontend.options.hostname: \"https://web.appstore.ai/\" is not a bare host name"),
        ("backend.ca_cert=ca.pem", "error: --config: applications.backend.options.ca_cert: the value is not a PEM certificate (no -----BEGIN CERTIFICATE----- block); in a bundle write include-file://ca.pem, on the command line @ca.pem"),
        ("hivemq.websocket_node_port=80", "node port range 30000-32767"),
    ] {
        let err = one_error(&["bundles/full", "--config", config]);
        assert!(err.contains(expected), "{config}: {err}");
    }
}

#[test]
fn values_from_overlays_and_config_files_name_their_file() {
    let dir = tempfile::tempdir().unwrap();
    let overlay = dir.path().join("prod.yaml");
    std::fs::write(&overlay, "applications:\n  backend:\n    options:\n      memory_limit: 1GB\n")
        .unwrap();
    let values = dir.path().join("values.yaml");
    std::fs::write(&values, "replicas: -2\n").unwrap();
    let err = check_fails(&[
        "bundles/full",
        "--overlay",
        overlay.to_str().unwrap(),
        "--config-file",
        &format!("frontend={}", values.display()),
    ]);
    assert!(err.contains(&format!("error: {}: applications.backend.options.memory_limit: \"1GB\" is not a Kubernetes quantity", overlay.display())), "{err}");
    assert!(
        err.contains(&format!(
            "error: {}: applications.frontend.options.replicas: -2 is below the minimum 0",
            values.display()
        )),
        "{err}"
    );
}

#[test]
fn one_option_bounding_another_is_checked_and_ignored_options_are_warned_about() {
    let err = one_error(&[
        "bundles/mlops",
        "--config",
        "serving.backend=knative",
        "--config",
        "serving.min_scale=5",
        "--config",
        "serving.max_scale=1",
    ]);
    assert!(err.contains("error: --config: applications.serving.options.max_scale: max_scale=1 is below min_scale=5 (set by --config); max_scale must be at least min_scale"), "{err}");

    // Stacking local (S3) and production (GCS): the S3 options no longer take effect, and the
    // S3 credentials Secret is no longer one that must exist.
    let out = charmer()
        .current_dir(repo())
        .args([
            "check",
            "bundles/mlops",
            "--overlay",
            "bundles/mlops/overlays/local.yaml",
            "--overlay",
            "bundles/mlops/overlays/production.yaml",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    for option in ["s3_bucket", "s3_credentials_secret", "s3_endpoint_url", "s3_prefix"] {
        let line = format!("warning: bundles/mlops/overlays/local.yaml: applications.mlflow.options.{option}: ignored: {option} takes effect only when artifact_store is \"s3\" (it is \"gcs\", set by overlay bundles/mlops/overlays/production.yaml)");
        assert!(stderr.contains(&line), "{stderr}");
    }
    let secrets = stdout.split("Secrets that must exist").nth(1).unwrap_or_default();
    assert!(!secrets.contains("mlflow-s3"), "{stdout}");
    assert!(secrets.contains("mlflow-gcs"), "{stdout}");
}

#[test]
fn a_node_port_twice_in_one_service_is_refused_before_apply() {
    let err = one_error(&[
        "bundles/full",
        "--overlay",
        "bundles/full/overlays/nodeport.yaml",
        "--config",
        "hivemq.websocket_node_port=30135",
    ]);
    assert!(err.contains("application hivemq: Service hivemq: spec.ports[1].nodePort: node port 30135 is also spec.ports[0]'s in this Service"), "{err}");
    assert!(err.contains("hivemq.websocket_node_port (from --config)"), "{err}");
}

#[test]
fn credentials_are_refused_in_plain_options_never_shown_and_never_exported() {
    let uri = "postgresql://mlflow:pw@10.20.0.3:5432/mlflow";
    let err = one_error(&[
        "bundles/mlops",
        "--config",
        &format!("mlflow.backend_store_uri_secret={uri}"),
    ]);
    assert!(err.contains("applications.mlflow.options.backend_store_uri_secret: the value looks like a URL with a password"), "{err}");
    assert!(!err.contains("pw@"), "{err}");
    let key = "-----BEGIN PRIVATE KEY-----\nMC4CAQA=\n-----END PRIVATE KEY-----\n";
    let err = one_error(&["bundles/full", "--config", &format!("backend.ca_cert={key}")]);
    assert!(err.contains("the value looks like a PEM private key"), "{err}");
    assert!(!err.contains("MC4CAQA"), "{err}");

    // In an overlay, on its way into an air-gap archive: refused, nothing written.
    let dir = tempfile::tempdir().unwrap();
    let overlay = dir.path().join("db.yaml");
    std::fs::write(
        &overlay,
        format!("applications:\n  mlflow:\n    options:\n      backend_store_uri_secret: {uri}\n"),
    )
    .unwrap();
    let archive = dir.path().join("out.tar");
    let (code, err) = run(&[
        "airgap",
        "export",
        "bundles/mlops",
        "--overlay",
        overlay.to_str().unwrap(),
        "--out",
        archive.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("looks like a URL with a password"), "{err}");
    assert!(!err.contains("pw@") && !archive.exists(), "{err}");
}

#[test]
fn required_secrets_must_be_secret_names() {
    let dir = tempfile::tempdir().unwrap();
    let overlay = dir.path().join("secrets.yaml");
    std::fs::write(
        &overlay,
        "applications:\n  backend:\n    required-secrets: [ok-name, Bad_Name]\n",
    )
    .unwrap();
    let err = one_error(&["bundles/full", "--overlay", overlay.to_str().unwrap()]);
    assert!(
        err.contains(
            "applications.backend.required-secrets[1]: \"Bad_Name\" is not a DNS-1123 subdomain"
        ),
        "{err}"
    );
}

#[test]
fn mistakes_of_a_new_user_get_pointers() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    // A misspelt application in an overlay.
    let typo = write("typo.yaml", "applications:\n  servng:\n    options: {workers: 2}\n");
    let err = one_error(&["bundles/mlops", "--overlay", &typo]);
    assert!(
        err.contains("applications.servng.charm: missing (hint: did you mean \"serving\"?"),
        "{err}"
    );
    // A Helm values file given to --config-file.
    let helm = write("helm.yaml", "image:\n  repository: mlflow\n  tag: '2.0'\n");
    let err = one_error(&["bundles/mlops", "--config-file", &format!("mlflow={helm}")]);
    assert!(err.contains("unknown option \"image\" (hint: this looks like a Helm values file; charmer sets images as resources: in an overlay, applications.mlflow.resources.<resource>: <image reference> (charm mlflow resources: mlflow-image))"), "{err}");
    // An overlay given to --config-file.
    let overlay = write("overlay.yaml", "applications:\n  mlflow: {options: {workers: 2}}\n");
    let err = one_error(&["bundles/mlops", "--config-file", &format!("mlflow={overlay}")]);
    assert!(err.contains(&format!("looks like an overlay (it has applications:); give it with --overlay {overlay}, not --config-file")), "{err}");
    // An image map that sends an image outside the --registry.
    let map = write("retagged-images.txt", "elsewhere.example:5000/hivemq/hivemq-ce:2024.3\n");
    let (code, err) =
        run(&["check", "bundles/iot", "--image-map", &map, "--registry", "10.0.0.5:5000"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("the --image-map sends image"), "{err}");
    assert!(err.contains("which is not in the --registry 10.0.0.5:5000"), "{err}");
    assert!(!err.contains("{{ images"), "the template is not the cause: {err}");
}
