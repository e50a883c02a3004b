//! What a terminal user sees in everyday moments: one error line with a hint for a cluster or
//! registry that cannot be reached (never retried), no colour codes in logs that go to a pipe,
//! hints for habits from Helm and Juju, `render --out` into an earlier render, `images push`
//! of several archives at once.

use crate::deploy::charmer;
use crate::support::kube_emulator::KubeEmulator;
use crate::support::registry::{free_port, Kind, Layout, Registry};

#[test]
fn a_refused_connection_is_one_error_line_with_a_hint_and_is_not_retried() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: http://127.0.0.1:{port}}}\n\
             contexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\nusers:\n- name: u\n  user: {{}}\n"
        ),
    )
    .unwrap();
    let out = crate::support::charmer()
        .args(["-v", "status", "demo", "--kubeconfig"])
        .arg(&kubeconfig)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err,
        format!(
            "error: cannot reach the Kubernetes API server at http://127.0.0.1:{port}/: connection \
             refused (hint: is the API server running at that address? check the cluster chosen \
             with --kubeconfig / --context)\n"
        ),
        "one line, no retries logged, no ERROR lines from the client before it"
    );
}

#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    let emulator = KubeEmulator::start();
    emulator.fail_next(1);
    let kubeconfig = emulator.kubeconfig();
    let out = crate::support::charmer()
        .args(["-v", "list", "--kubeconfig"])
        .arg(&kubeconfig)
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("retrying in"), "the 503 is retried and logged: {err}");
    assert!(!err.contains('\x1b'), "no escape codes on a pipe: {err:?}");
    let (_, listed, _) = charmer(&emulator, &["list"]);
    assert_eq!(listed, "no bundles deployed in any namespace\n");
}

/// A one-image archive in `dir`.
fn small_archive(dir: &std::path::Path) -> std::path::PathBuf {
    named_archive(dir, "app", 7)
}

/// An archive `NAME.tar` in `dir` holding image `example.com/team/NAME:1.0`.
fn named_archive(dir: &std::path::Path, name: &str, seed: u64) -> std::path::PathBuf {
    let mut layout = Layout::new(&dir.join(format!("layout-{name}")));
    let layer = layout.layer(seed, 1000);
    let image = layout.image("amd64", &[&layer]);
    layout.name(&image, &format!("example.com/team/{name}:1.0"));
    let archive = dir.join(format!("{name}.tar"));
    layout.write_tar(&archive);
    archive
}

fn push(
    dir: &std::path::Path,
    archive: &std::path::Path,
    host: &str,
    flags: &[&str],
) -> (i32, String) {
    let out = crate::support::charmer()
        .current_dir(dir)
        .args(["-v", "images", "push", "--registry", host])
        .arg(archive)
        .args(flags)
        .env("DOCKER_CONFIG", dir.join("docker"))
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn a_registry_that_refuses_is_one_error_line_and_is_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let archive = small_archive(dir.path());
    let host = format!("127.0.0.1:{}", free_port());
    let (code, err) = push(dir.path(), &archive, &host, &["--insecure-http"]);
    assert_eq!(code, 1);
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        errors,
        [format!("error: cannot reach registry {host}: connection refused (hint: is a registry listening at {host}?)")],
        "{err}"
    );
    assert!(
        !err.contains("retrying") && !err.contains("ERROR"),
        "not retried, no log stack: {err}"
    );
}

#[test]
fn a_registry_certificate_from_an_unknown_ca_points_to_ca_file() {
    if !crate::support::tools_present(crate::support::REGISTRY_TOOLS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let archive = small_archive(dir.path());
    let registry = Registry::start(Kind::Tls);
    let (code, err) = push(dir.path(), &archive, &registry.host(), &[]);
    assert_eq!(code, 1);
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        errors,
        [format!(
            "error: cannot reach registry {host}: TLS: the certificate of 127.0.0.1 (CN=127.0.0.1) \
             is issued by CN=charmer test CA, which charmer does not trust (hint: trust that CA's \
             certificate (or the registry's own self-signed one) with --ca-file FILE, or as \
             {}/certs.d/{host}/ca.crt)",
            crate::support::NO_SITE_FILES,
            host = registry.host()
        )],
        "{err}"
    );
    assert!(
        !err.contains("retrying") && !err.contains("ERROR"),
        "not retried, no log stack: {err}"
    );
}

#[tokio::test]
async fn a_missing_image_pull_secret_is_created_with_kubectl_create_secret_docker_registry() {
    use crate::deploy::{cluster, deployment, shop};
    let emulator = KubeEmulator::start();
    let mut web = deployment("web", "registry.local:5000/web:1");
    web["spec"]["template"]["spec"]["imagePullSecrets"] =
        serde_json::json!([{"name": "registry-login"}]);
    let mut plan = shop(vec![("web", web)]);
    plan.apps[0].required_secrets = vec!["registry-login".into()];
    let error = cluster(&emulator).await.prepare(plan).await.err().expect("preflight fails");
    assert_eq!(
        error.to_string(),
        "preflight: Secret/shop/registry-login: required by web but missing (hint: create it \
         before deploying: kubectl create namespace shop --dry-run=client -o yaml | kubectl apply \
         -f - && kubectl create secret docker-registry registry-login -n shop \
         --docker-server=REGISTRY --docker-username=USER --docker-password=PASSWORD)"
    );
}

#[test]
fn helm_habits_point_to_charmer_flags() {
    let out = crate::support::charmer()
        .args(["check", "bundles/demo", "--set", "web.replicas=2"])
        .current_dir(crate::deploy::demo())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("error: unexpected argument '--set' found"), "{err}");
    assert!(
        err.ends_with(
            "hint: --set is Helm's; charmer sets one option with --config APP.KEY=VALUE (repeatable)\n"
        ),
        "{err}"
    );
    let out = crate::support::charmer()
        .args(["deploy", "bundles/demo", "-f", "values.yaml"])
        .current_dir(crate::deploy::demo())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("hint: -f is Helm's; charmer reads an application's options from a YAML file with --config-file APP=FILE"), "{err}");
}

#[test]
fn render_out_into_an_earlier_render_removes_the_files_of_dropped_applications() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let render = |args: &[&str]| {
        let result = crate::support::charmer()
            .current_dir(crate::deploy::demo())
            .args(args)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert_eq!(result.status.code(), Some(0), "{}", String::from_utf8_lossy(&result.stderr));
        String::from_utf8(result.stdout).unwrap()
    };
    render(&["render", "bundles/demo"]);
    std::fs::write(out.join("notes.yaml"), "mine: true\n").unwrap();
    let smaller = dir.path().join("bundle.yaml");
    std::fs::write(
        &smaller,
        "bundle: kubernetes\nname: demo\napplications:\n  mydb: {charm: db, scale: 1}\n",
    )
    .unwrap();
    let charms = crate::deploy::demo().join("charms");
    let printed =
        render(&["render", smaller.to_str().unwrap(), "--charms", charms.to_str().unwrap()]);
    assert!(
        printed.ends_with(&format!(
            "removed {} (no longer in the bundle)\n",
            out.join("web.yaml").display()
        )),
        "{printed}"
    );
    assert_eq!(
        crate::support::entries(&out),
        ["bundle.lock", "mydb.yaml", "notes.yaml"],
        "only the dropped application's file goes"
    );
}

#[test]
fn images_push_takes_several_archives_and_writes_one_retagged_list() {
    if !crate::support::tools_present(crate::support::REGISTRY_TOOLS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let first = named_archive(dir.path(), "app", 11);
    let second = named_archive(dir.path(), "worker", 12);
    let registry = Registry::start(Kind::Plain);
    let out = crate::support::charmer()
        .current_dir(dir.path())
        .args(["images", "push", "--registry", &registry.host(), "--insecure-http"])
        .arg(&first)
        .arg(&second)
        .env("DOCKER_CONFIG", dir.path().join("docker"))
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("2 images: 4 blobs sent"), "{stdout}");
    let retagged = std::fs::read_to_string(dir.path().join("retagged-images.txt")).unwrap();
    let host = registry.host();
    let images: Vec<&str> = retagged.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(images.len(), 2, "{retagged}");
    assert!(images[0].starts_with(&format!("{host}/team/app:1.0@sha256:")), "{retagged}");
    assert!(images[1].starts_with(&format!("{host}/team/worker:1.0@sha256:")), "{retagged}");

    // One image: no plural.
    let out = crate::support::charmer()
        .current_dir(dir.path())
        .args(["images", "push", "--registry", &host, "--insecure-http"])
        .arg(&first)
        .env("DOCKER_CONFIG", dir.path().join("docker"))
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("\n1 image: 0 blobs sent"), "{stdout}");
}
