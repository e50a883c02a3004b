#!/usr/bin/env bash
# Benchmark (not a test): `charmer deploy --no-wait` of a generated bundle of N applications
# (each its own charm: a Deployment, a Service and a ConfigMap; bench-render.py's shape
# `three`) versus `kubectl apply --server-side` of the same rendered objects, each run into a
# fresh namespace:
#
#   1. against the in-repo Kubernetes API emulator (tests/it/bench_emulator.rs serves it; a
#      release build, so the time is the clients' rather than the unoptimized emulator's — the
#      first build of the test binary in release takes minutes; a fresh emulator for each run
#      of each tool; kubectl with --validate=false, as the emulator serves no OpenAPI
#      documents);
#   2. when KUBECONFIG names a real cluster and kubectl is installed, against it too
#      (namespaces $BENCH_NS_PREFIX-c1..., -k1..., deleted afterwards; default prefix
#      bench-deploy).
#
# charmer's time includes resolving, rendering and every pre-flight read (ownership, Secrets,
# storage, node ports, host paths, the revision records); images are not looked up
# (--skip-image-check: the generated images live in no registry). kubectl's is the apply
# alone, of objects rendered beforehand, into a namespace created beforehand.
#
# Needs: cargo, python3, kubectl. Usage: scripts/bench-deploy.sh [RUNS] [APPS]  (default 5 100)
set -euo pipefail

RUNS=${1:-5}
APPS=${2:-100}
PREFIX=${BENCH_NS_PREFIX:-bench-deploy}
source "$(dirname "$0")/bench-lib.sh"
bench_start
command -v kubectl >/dev/null || { echo "kubectl is needed" >&2; exit 1; }

echo "generating a bundle of $APPS applications..." >&2
python3 - "$ROOT/scripts/bench-render.py" "$WORK/bundle" "$APPS" <<'EOF'
import importlib.util, sys
spec = importlib.util.spec_from_file_location("bench_render", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
module.make_bundle(sys.argv[2], int(sys.argv[3]), "three")
EOF
BUNDLE=("$WORK/bundle/bundle.yaml" --charms "$WORK/bundle/charms")

# Each run of each tool gets an emulator of its own: the emulator keeps every object of
# earlier runs (it has no namespace deletion) and its controllers and watch history cost
# time per stored object, so runs on one emulator would each be slower than the last.
EMULATOR_JOB=
start_emulator() { # sets KUBECONFIG_FOR_RUN to a fresh emulator's kubeconfig
  local out="$WORK/emulator-kubeconfig" stop="$WORK/stop-emulator"
  rm -f "$out" "$stop"
  (cd "$ROOT" && CHARMER_BENCH_KUBECONFIG="$out" CHARMER_BENCH_STOP="$stop" \
    cargo test --release --quiet --test it -- --ignored --exact bench_emulator::serve_emulator_for_benchmarks \
    >"$WORK/emulator.log" 2>&1) &
  EMULATOR_JOB=$!
  for _ in $(seq 1200); do [ -s "$out" ] && break; sleep 0.5; done
  [ -s "$out" ] || { cat "$WORK/emulator.log" >&2; exit 1; }
  KUBECONFIG_FOR_RUN=$(cat "$out")
}
stop_emulator() {
  [ -n "$EMULATOR_JOB" ] || return 0
  touch "$WORK/stop-emulator"; wait "$EMULATOR_JOB" 2>/dev/null || true; EMULATOR_JOB=
}
use_cluster() { KUBECONFIG_FOR_RUN=$KUBECONFIG; }
trap 'stop_emulator; bench_cleanup' EXIT
echo "building the emulator (the test binary) if needed..." >&2
start_emulator && stop_emulator

# compare LABEL SETUP PREFIX KUBECTL_FLAGS...: RUNS deploys with each tool, each into its own
# new namespace (on what SETUP gives: start_emulator or use_cluster); prints the medians and
# the ratio.
compare() {
  local label=$1 setup=$2 prefix=$3; shift 3
  local -a c_times=() k_times=()
  for run in $(seq "$RUNS"); do
    local ns="$prefix-c$run"
    "$setup"
    c_times+=("$(timed "$CHARMER" deploy "${BUNDLE[@]}" -n "$ns" --no-wait --yes \
      --skip-image-check --kubeconfig "$KUBECONFIG_FOR_RUN")")
    stop_emulator
    ns="$prefix-k$run"
    "$setup"
    rm -rf "$WORK/rendered" && "$CHARMER" render "${BUNDLE[@]}" -n "$ns" --out "$WORK/rendered" >/dev/null
    rm -f "$WORK/rendered/bundle.lock"
    kubectl --kubeconfig "$KUBECONFIG_FOR_RUN" create namespace "$ns" >/dev/null
    k_times+=("$(timed kubectl --kubeconfig "$KUBECONFIG_FOR_RUN" apply --server-side "$@" -n "$ns" -f "$WORK/rendered")")
    stop_emulator
    echo "  $label run $run/$RUNS: charmer ${c_times[-1]} s, kubectl ${k_times[-1]} s" >&2
  done
  local c k
  c=$(median <<<"${c_times[*]}")
  k=$(median <<<"${k_times[*]}")
  printf '%-10s %4s apps  charmer deploy --no-wait %7.3f s  kubectl apply --server-side %7.3f s  ratio %5.1fx\n' \
    "$label" "$APPS" "$c" "$k" "$(python3 -c "print($k / $c)")"
}

echo "deploying $APPS applications, $RUNS runs per tool..." >&2
compare emulator start_emulator "$PREFIX" --validate=false
if [ -n "${KUBECONFIG:-}" ] && kubectl version >/dev/null 2>&1; then
  compare cluster use_cluster "$PREFIX"
  # Most of kubectl's time on a small machine is its client-side schema validation before
  # the first request; without it, the comparison is of the requests alone.
  compare no-validate use_cluster "$PREFIX-nv" --validate=false
  for run in $(seq "$RUNS"); do
    for p in "$PREFIX" "$PREFIX-nv"; do
      kubectl delete namespace "$p-c$run" "$p-k$run" --wait=false >/dev/null 2>&1 || true
    done
  done
else
  echo "no real cluster (KUBECONFIG unset or unreachable): emulator figures only" >&2
fi
