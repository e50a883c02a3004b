//! Not a test: the Kubernetes API emulator as a server for `scripts/bench-deploy.sh`, which
//! runs it with `--ignored`. It writes the emulator's kubeconfig path to the file
//! `CHARMER_BENCH_KUBECONFIG` names and serves until the file `CHARMER_BENCH_STOP` names
//! exists (at most an hour). Without those variables it returns at once.

use std::time::{Duration, Instant};

use crate::support::kube_emulator::KubeEmulator;

#[test]
#[ignore = "a server for scripts/bench-deploy.sh, not a test"]
fn serve_emulator_for_benchmarks() {
    let (Some(kubeconfig_out), Some(stop)) =
        (std::env::var_os("CHARMER_BENCH_KUBECONFIG"), std::env::var_os("CHARMER_BENCH_STOP"))
    else {
        return;
    };
    let emulator = KubeEmulator::start();
    std::fs::write(&kubeconfig_out, emulator.kubeconfig().display().to_string())
        .expect("write the kubeconfig path");
    let deadline = Instant::now() + Duration::from_secs(3600);
    while !std::path::Path::new(&stop).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
}
