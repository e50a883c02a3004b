#!/usr/bin/env bash
# Benchmark (not a test): `charmer deploy --no-wait` of a generated bundle of N applications
# (each its own charm: a Deployment, a Service and a ConfigMap; bench-render.py's shape
# `three`) versus `kubectl apply --server-side` of the same rendered objects, each run into a
# fresh namespace:
#
#   1. against the in-repo Kubernetes API emulator (tests/it/bench_emulator.rs serves it; a
#      debug build, shared by both sides; kubectl with --validate=false, as the emulator
#      serves no OpenAPI documents);
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

echo "starting the emulator (building the test binary if needed)..." >&2
EMULATOR_OUT="$WORK/emulator-kubeconfig"
STOP="$WORK/stop-emulator"
(cd "$ROOT" && CHARMER_BENCH_KUBECONFIG="$EMULATOR_OUT" CHARMER_BENCH_STOP="$STOP" \
  cargo test --quiet --test it -- --ignored --exact bench_emulator::serve_emulator_for_benchmarks \
  >"$WORK/emulator.log" 2>&1) &
EMULATOR_JOB=$!
stop_emulator() { touch "$STOP"; wait "$EMULATOR_JOB" 2>/dev/null || true; bench_cleanup; }
trap stop_emulator EXIT
for _ in $(seq 1200); do [ -s "$EMULATOR_OUT" ] && break; sleep 0.5; done
[ -s "$EMULATOR_OUT" ] || { cat "$WORK/emulator.log" >&2; exit 1; }
EMULATOR_KUBECONFIG=$(cat "$EMULATOR_OUT")

# compare LABEL KUBECONFIG PREFIX KUBECTL_FLAGS...: RUNS deploys with each tool, each into its
# own new namespace; prints the medians and the ratio.
compare() {
  local label=$1 kubeconfig=$2 prefix=$3; shift 3
  local -a c_times=() k_times=()
  for run in $(seq "$RUNS"); do
    local ns="$prefix-c$run"
    c_times+=("$(timed "$CHARMER" deploy "${BUNDLE[@]}" -n "$ns" --no-wait --yes \
      --skip-image-check --kubeconfig "$kubeconfig")")
    ns="$prefix-k$run"
    rm -rf "$WORK/rendered" && "$CHARMER" render "${BUNDLE[@]}" -n "$ns" --out "$WORK/rendered" >/dev/null
    rm -f "$WORK/rendered/bundle.lock"
    kubectl --kubeconfig "$kubeconfig" create namespace "$ns" >/dev/null
    k_times+=("$(timed kubectl --kubeconfig "$kubeconfig" apply --server-side "$@" -n "$ns" -f "$WORK/rendered")")
    echo "  $label run $run/$RUNS: charmer ${c_times[-1]} s, kubectl ${k_times[-1]} s" >&2
  done
  local c k
  c=$(median <<<"${c_times[*]}")
  k=$(median <<<"${k_times[*]}")
  printf '%-10s %4s apps  charmer deploy --no-wait %7.3f s  kubectl apply --server-side %7.3f s  ratio %5.1fx\n' \
    "$label" "$APPS" "$c" "$k" "$(python3 -c "print($k / $c)")"
}

echo "deploying $APPS applications, $RUNS runs per tool..." >&2
compare emulator "$EMULATOR_KUBECONFIG" "$PREFIX" --validate=false
if [ -n "${KUBECONFIG:-}" ] && kubectl version >/dev/null 2>&1; then
  compare cluster "$KUBECONFIG" "$PREFIX"
  for run in $(seq "$RUNS"); do
    kubectl delete namespace "$PREFIX-c$run" "$PREFIX-k$run" --wait=false >/dev/null 2>&1 || true
  done
else
  echo "no real cluster (KUBECONFIG unset or unreachable): emulator figures only" >&2
fi
