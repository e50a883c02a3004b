#!/usr/bin/env bash
# Benchmark (not a test): air-gap archives.
#
#   1. delta sizes: an update whose image shares a 30 MiB base with the old one (full archive
#      vs `airgap export --since OLD`), and a realistic five-image release where two app
#      layers change and one image is rebuilt from scratch;
#   2. import throughput: `airgap import` of a ~1 GiB archive vs a plain `images push` of the
#      same archive, each into an empty registry (median of RUNS runs).
#
# Needs: cargo, python3, docker-registry, bc; ~4 GiB of free disk under $BENCH_DIR (default
# a temp dir). Usage: scripts/bench-airgap.sh [RUNS]   (default 3)
set -euo pipefail

RUNS=${1:-3}
source "$(dirname "$0")/bench-lib.sh"
bench_start
SRC=$(free_port) DST=$(free_port)
registry_start source "$SRC"

# put_images NAME SPEC: makes the images of SPEC and pushes them to the source registry as
# 127.0.0.1:$SRC/bench/<name>:<tag>.
put_images() {
  make_layout "$WORK/$1" "$2"
  (cd "$WORK/$1" && tar -cf "$WORK/$1.tar" oci-layout index.json blobs)
  rm -rf "$WORK/$1"
  "$CHARMER" images push "$WORK/$1.tar" --registry "127.0.0.1:$SRC" --insecure-http --quiet \
    --retagged-out "$WORK/$1.retagged"
}

# bundle DIR VERSION IMAGE...: a bundle of one charm (version VERSION) running IMAGEs
# (name:tag under the source registry), one container each.
bundle() {
  local dir=$1 version=$2; shift 2
  rm -rf "$dir"; mkdir -p "$dir/charms/stack"
  {
    printf 'name: stack\nsummary: bench\ndescription: bench\nresources:\n'
    for image in "$@"; do printf '  %s: {type: oci-image, upstream-source: "127.0.0.1:%s/bench/%s"}\n' "${image%%:*}" "$SRC" "$image"; done
    printf 'containers:\n'
    for image in "$@"; do printf '  %s: {resource: %s}\n' "${image%%:*}" "${image%%:*}"; done
  } > "$dir/charms/stack/metadata.yaml"
  printf 'bases:\n- name: ubuntu\n  channel: "22.04"\n  architectures: [amd64]\n' > "$dir/charms/stack/manifest.yaml"
  echo "$version" > "$dir/charms/stack/version"
  printf 'bundle: kubernetes\nname: bench\napplications:\n  stack:\n    charm: stack\n    scale: 1\n' > "$dir/bundle.yaml"
}
export_() { # export_ DIR OUT [--since OLD...]
  local dir=$1 out=$2; shift 2
  "$CHARMER" airgap export "$dir/bundle.yaml" --out "$out" --insecure-http --quiet "$@"
}
size() { stat -c %s "$1"; }
mib() { echo "scale=1; $1 / 1048576" | bc; }

echo "delta: one image on a 30 MiB base..." >&2
put_images small "app:1.0=30@base,2;app:2.0=30@base,2"
bundle "$WORK/b1" 1.0.0 app:1.0; export_ "$WORK/b1" "$WORK/small-1.tar"
bundle "$WORK/b2" 1.1.0 app:2.0; export_ "$WORK/b2" "$WORK/small-2-full.tar"
export_ "$WORK/b2" "$WORK/small-2-delta.tar" --since "$WORK/small-1.tar"
S_FULL=$(size "$WORK/small-2-full.tar") S_DELTA=$(size "$WORK/small-2-delta.tar")

echo "delta: five images, two app layers changed, one image rebuilt..." >&2
put_images real "db:1=120;web:1=80@rt,15;api:1=80@rt,25;worker:1=80@rt,10;ui:1=40;web:2=80@rt,16;api:2=80@rt,26;ui:2=40"
bundle "$WORK/r1" 1.0.0 db:1 web:1 api:1 worker:1 ui:1; export_ "$WORK/r1" "$WORK/real-1.tar"
bundle "$WORK/r2" 1.1.0 db:1 web:2 api:2 worker:1 ui:2; export_ "$WORK/r2" "$WORK/real-2-full.tar"
export_ "$WORK/r2" "$WORK/real-2-delta.tar" --since "$WORK/real-1.tar"
R_FULL=$(size "$WORK/real-2-full.tar") R_DELTA=$(size "$WORK/real-2-delta.tar")
rm -f "$WORK"/small-*.tar "$WORK"/real-*.tar "$WORK/small.tar" "$WORK/real.tar"

echo "import throughput: ~1 GiB archive..." >&2
SPEC="img01=100,4;img02=100,4;img03=100,4;img04=100,4;img05=100,4;img06=100,4;img07=100,4;img08=100,4;img09=100,4;img10=50,50,4"
put_images big "$SPEC"
rm -f "$WORK/big.tar"
bundle "$WORK/big" 1.0.0 img01:1.0 img02:1.0 img03:1.0 img04:1.0 img05:1.0 img06:1.0 img07:1.0 img08:1.0 img09:1.0 img10:1.0
export_ "$WORK/big" "$WORK/big-airgap.tar"
BIG=$(size "$WORK/big-airgap.tar")
declare -a IMPORT PUSH
for run in $(seq "$RUNS"); do
  echo "run $run/$RUNS..." >&2
  registry_start target "$DST"; rm -rf "$WORK/imported"
  IMPORT+=("$(timed "$CHARMER" airgap import "$WORK/big-airgap.tar" --registry "127.0.0.1:$DST" --insecure-http --quiet --out "$WORK/imported")")
  registry_start target "$DST"
  PUSH+=("$(timed "$CHARMER" images push "$WORK/big-airgap.tar" --registry "127.0.0.1:$DST" --insecure-http --quiet --retagged-out "$WORK/retagged.txt")")
done
i=$(echo "${IMPORT[@]}" | median); p=$(echo "${PUSH[@]}" | median)

cat <<EOF

delta archives                                    full        delta      delta/full
one image, 30 MiB shared base + 2 MiB layer     $(mib "$S_FULL") MiB    $(mib "$S_DELTA") MiB    $(echo "scale=3; $S_DELTA / $S_FULL" | bc)
five images (290 MiB), 2 layers + 1 image new   $(mib "$R_FULL") MiB   $(mib "$R_DELTA") MiB   $(echo "scale=3; $R_DELTA / $R_FULL" | bc)

import throughput, $(mib "$BIG") MiB archive, runs: $RUNS, $(nproc) cores (medians)
airgap import (checksums + push)   $(printf '%6.2f s' "$i")
images push of the same archive    $(printf '%6.2f s' "$p")
ratio                              $(echo "scale=2; $i / $p" | bc)x
all runs (s): import ${IMPORT[*]} | push ${PUSH[*]}
EOF
