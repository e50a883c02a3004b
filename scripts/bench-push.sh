#!/usr/bin/env bash
# Benchmark (not a test): pushing images into a local registry with `charmer images push`
# versus sequential `skopeo copy`, in the same run, on the same machine.
#
#   1. first push of ~10 images / ~1 GiB into an empty registry (median of RUNS runs each);
#   2. re-push of the same images when the registry has everything (median of RUNS runs);
#   3. peak RSS of charmer's first push of the ~10 images (4 parallel uploads) and of it
#      pushing one 2 GiB single-layer image (/usr/bin/time -v).
#
# Layers are random data in gzip "stored" blocks (already compressed, as real layers are), so
# skopeo sends them as they are instead of recompressing. Needs: cargo, python3,
# docker-registry, skopeo, /usr/bin/time; ~8 GiB of free disk under $BENCH_DIR (default a
# temp dir). Usage: scripts/bench-push.sh [RUNS]   (default 3)
set -euo pipefail

RUNS=${1:-3}
source "$(dirname "$0")/bench-lib.sh"
bench_start

PORT=$(free_port)
start_registry() { registry_start storage "$PORT" "${1:-}"; } # fresh storage unless $1 = keep

SPEC="img01=100,4;img02=100,4;img03=100,4;img04=100,4;img05=100,4;img06=100,4;img07=100,4;img08=100,4;img09=100,4;img10=50,50,4"
echo "generating 10 images (~1 GiB)..." >&2
make_layout "$WORK/layout" "$SPEC"
(cd "$WORK/layout" && tar -cf "$WORK/images.tar" oci-layout index.json blobs)
TOTAL=$(du -sb "$WORK/layout/blobs" | cut -f1)
IMAGES=$(python3 -c "import json; print(' '.join(m['annotations']['org.opencontainers.image.ref.name'] for m in json.load(open('$WORK/layout/index.json'))['manifests']))")

PUSH_ARGS=(images push "$WORK/images.tar" --registry "127.0.0.1:$PORT" --insecure-http --quiet --retagged-out "$WORK/retagged.txt")
charmer_push() { "$CHARMER" "${PUSH_ARGS[@]}"; }
skopeo_push() {
  for ref in $IMAGES; do
    skopeo copy -q --dest-tls-verify=false "oci:$WORK/layout:$ref" "docker://127.0.0.1:$PORT/${ref#bench.example/}"
  done
}

declare -a C_FIRST S_FIRST C_AGAIN S_AGAIN
for run in $(seq "$RUNS"); do
  echo "run $run/$RUNS: first push..." >&2
  start_registry; C_FIRST+=("$(timed charmer_push)")
  start_registry; S_FIRST+=("$(timed skopeo_push)")
  echo "run $run/$RUNS: re-push..." >&2
  C_AGAIN+=("$(timed charmer_push)")
  S_AGAIN+=("$(timed skopeo_push)")
done

# peak_rss_mib PROGRAM ARGS...: runs it under /usr/bin/time -v (a program, not a shell
# function) and prints its peak RSS in MiB; fails if the program did.
peak_rss_mib() {
  /usr/bin/time -v "$@" >/dev/null 2>"$WORK/time.txt" || { cat "$WORK/time.txt" >&2; exit 1; }
  awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); printf "%.1f", $2 / 1024}' "$WORK/time.txt"
}
declare -a C_RSS
for run in $(seq "$RUNS"); do
  echo "peak RSS: first push of the 10 images, run $run/$RUNS..." >&2
  start_registry; C_RSS+=("$(peak_rss_mib "$CHARMER" "${PUSH_ARGS[@]}")")
done

echo "peak RSS: one 2 GiB single-layer image..." >&2
rm -rf "$WORK/layout" "$WORK/images.tar"
make_layout "$WORK/big" "big=2048"
(cd "$WORK/big" && tar -cf "$WORK/big.tar" oci-layout index.json blobs)
rm -rf "$WORK/big"
start_registry
BIG_RSS=$(peak_rss_mib "$CHARMER" images push "$WORK/big.tar" --registry "127.0.0.1:$PORT" --insecure-http --quiet --retagged-out "$WORK/retagged.txt")
BIG_SECONDS=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORK/time.txt")

c1=$(echo "${C_FIRST[@]}" | median); s1=$(echo "${S_FIRST[@]}" | median)
c2=$(echo "${C_AGAIN[@]}" | median); s2=$(echo "${S_AGAIN[@]}" | median)
cat <<EOF

images: 10, $(echo "scale=2; $TOTAL / 1000000000" | bc) GB of blobs; runs: $RUNS; $(nproc) cores
                      charmer      sequential skopeo   ratio
first push (median)   $(printf '%6.2f s' "$c1")     $(printf '%6.2f s' "$s1")            $(echo "scale=1; $s1 / $c1" | bc)x   (charmer $(echo "scale=0; $TOTAL / $c1 / 1000000" | bc) MB/s)
re-push (median)      $(printf '%6.3f s' "$c2")     $(printf '%6.3f s' "$s2")            $(echo "scale=1; $s2 / $c2" | bc)x
10 images, 4 uploads: peak RSS $(echo "${C_RSS[@]}" | median) MiB (median; runs ${C_RSS[*]})
2 GiB single layer:   peak RSS $BIG_RSS MiB, $BIG_SECONDS wall
all runs (s): charmer first ${C_FIRST[*]} | skopeo first ${S_FIRST[*]} | charmer again ${C_AGAIN[*]} | skopeo again ${S_AGAIN[*]}
EOF
