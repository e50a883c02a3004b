#!/usr/bin/env bash
# The wait of deploy against the in-repo Kubernetes API emulator: 7 and 100 applications
# (a Deployment of 2 replicas, a Service and a ConfigMap each) whose pods all start at once
# while the deploy waits. Prints, per size, how long the deploy took to return after the
# pods became ready and the requests the whole deploy made, by verb and resource (the wait's
# are the `list`/`watch` ones: one of each per kind and namespace, whatever the size).
# Asserts nothing; run it by hand on a quiet machine. RUNS (default 3) repeats it.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${1:-3}
cd "$ROOT"
for _ in $(seq "$RUNS"); do
  cargo test --release --quiet --test it -- --ignored --exact health::bench_wait --nocapture 2>/dev/null |
    grep '^apps='
done
