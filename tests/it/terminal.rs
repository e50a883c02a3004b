//! What a terminal user sees when things go wrong: one error line with a hint for a cluster
//! that cannot be reached, no retries for refused connections, and no colour codes in logs
//! that go to a pipe or a file.

use crate::deploy::charmer;
use crate::support::kube_emulator::KubeEmulator;

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
