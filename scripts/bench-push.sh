#!/usr/bin/env bash
# Benchmark (not a test): pushing images into a local registry with `charmer images push`
# versus sequential `skopeo copy`, in the same run, on the same machine.
#
#   1. first push of ~10 images / ~1 GiB into an empty registry (median of RUNS runs each);
#   2. re-push of the same images when the registry has everything (median of RUNS runs);
#   3. peak RSS of charmer pushing one 2 GiB single-layer image (/usr/bin/time -v).
#
# Layers are random data in gzip "stored" blocks (already compressed, as real layers are), so
# skopeo sends them as they are instead of recompressing. Needs: cargo, python3,
# docker-registry, skopeo, /usr/bin/time; ~8 GiB of free disk under $BENCH_DIR (default a
# temp dir). Usage: scripts/bench-push.sh [RUNS]   (default 3)
set -euo pipefail

RUNS=${1:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${BENCH_DIR:-$(mktemp -d /tmp/charmer-bench.XXXXXX)}
mkdir -p "$WORK"
REGISTRY_PID=
cleanup() {
  if [ -n "$REGISTRY_PID" ]; then kill "$REGISTRY_PID" 2>/dev/null || true; wait "$REGISTRY_PID" 2>/dev/null || true; fi
  [ -n "${BENCH_DIR:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

echo "building charmer (release)..." >&2
(cd "$ROOT" && cargo build --release --quiet)
CHARMER="$ROOT/target/release/charmer"

# make_layout DIR SPEC: writes an OCI image layout; SPEC is "name:size_mib,size_mib;..." per
# image. Each layer is a tar holding one random file, gzip'd with stored blocks.
make_layout() {
  python3 - "$1" "$2" <<'EOF'
import gzip, hashlib, json, os, sys, tarfile, zlib
out, spec = sys.argv[1], sys.argv[2]
os.makedirs(f"{out}/blobs/sha256", exist_ok=True)
def put(data):
    h = hashlib.sha256(data).hexdigest()
    with open(f"{out}/blobs/sha256/{h}", "wb") as f: f.write(data)
    return {"digest": "sha256:" + h, "size": len(data)}
def layer(seed, mib):
    # tar header + random bytes + padding, gzip'd without compression, streamed to disk
    tmp = f"{out}/layer.tmp"; raw = hashlib.sha256(); packed = hashlib.sha256(); size = 0
    info = tarfile.TarInfo(f"data-{seed}"); info.size = mib << 20
    header = info.tobuf(format=tarfile.USTAR_FORMAT)
    comp = zlib.compressobj(0, zlib.DEFLATED, 31)
    with open(tmp, "wb") as f:
        def emit(chunk):
            nonlocal size
            raw.update(chunk); c = comp.compress(chunk)
            if c: packed.update(c); f.write(c); size += len(c)
        emit(header)
        for _ in range(mib): emit(os.urandom(1 << 20))
        emit(b"\0" * 1024)
        c = comp.flush(); packed.update(c); f.write(c); size += len(c)
    os.rename(tmp, f"{out}/blobs/sha256/{packed.hexdigest()}")
    return {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + packed.hexdigest(), "size": size}, "sha256:" + raw.hexdigest()
names = []; seed = 0
for image in spec.split(";"):
    name, sizes = image.split(":", 1)
    layers, diffs = [], []
    for mib in sizes.split(","):
        seed += 1; d, diff = layer(seed, int(mib)); layers.append(d); diffs.append(diff)
    config = put(json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diffs}}).encode())
    config["mediaType"] = "application/vnd.oci.image.config.v1+json"
    manifest = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": config, "layers": layers}).encode())
    manifest["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
    manifest["annotations"] = {"org.opencontainers.image.ref.name": f"bench.example/bench/{name}:1.0"}
    names.append(manifest)
json.dump({"schemaVersion": 2, "manifests": names}, open(f"{out}/index.json", "w"))
open(f"{out}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
EOF
}

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start_registry() { # fresh storage unless $1 = keep
  if [ -n "$REGISTRY_PID" ]; then kill "$REGISTRY_PID"; wait "$REGISTRY_PID" 2>/dev/null || true; REGISTRY_PID=; fi
  [ "${1:-}" = keep ] || rm -rf "$WORK/storage"
  cat > "$WORK/registry.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $WORK/storage}}
http: {addr: 127.0.0.1:$PORT}
EOF
  docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
  REGISTRY_PID=$!
  for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && return; sleep 0.05; done
  echo "registry did not start" >&2; exit 1
}
now() { date +%s.%N; }
median() { tr ' ' '\n' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

SPEC="img01:100,4;img02:100,4;img03:100,4;img04:100,4;img05:100,4;img06:100,4;img07:100,4;img08:100,4;img09:100,4;img10:50,50,4"
echo "generating 10 images (~1 GiB)..." >&2
make_layout "$WORK/layout" "$SPEC"
(cd "$WORK/layout" && tar -cf "$WORK/images.tar" oci-layout index.json blobs)
TOTAL=$(du -sb "$WORK/layout/blobs" | cut -f1)
IMAGES=$(python3 -c "import json; print(' '.join(m['annotations']['org.opencontainers.image.ref.name'] for m in json.load(open('$WORK/layout/index.json'))['manifests']))")

charmer_push() { "$CHARMER" images push "$WORK/images.tar" --registry "127.0.0.1:$PORT" --insecure-http --quiet --retagged-out "$WORK/retagged.txt"; }
skopeo_push() {
  for ref in $IMAGES; do
    skopeo copy -q --dest-tls-verify=false "oci:$WORK/layout:$ref" "docker://127.0.0.1:$PORT/${ref#bench.example/}"
  done
}
timed() { local t0; t0=$(now); "$@" >/dev/null; echo "$(now) - $t0" | bc; }

declare -a C_FIRST S_FIRST C_AGAIN S_AGAIN
for run in $(seq "$RUNS"); do
  echo "run $run/$RUNS: first push..." >&2
  start_registry; C_FIRST+=("$(timed charmer_push)")
  start_registry; S_FIRST+=("$(timed skopeo_push)")
  echo "run $run/$RUNS: re-push..." >&2
  C_AGAIN+=("$(timed charmer_push)")
  S_AGAIN+=("$(timed skopeo_push)")
done

echo "peak RSS: one 2 GiB single-layer image..." >&2
rm -rf "$WORK/layout" "$WORK/images.tar"
make_layout "$WORK/big" "big:2048"
(cd "$WORK/big" && tar -cf "$WORK/big.tar" oci-layout index.json blobs)
rm -rf "$WORK/big"
start_registry
/usr/bin/time -v "$CHARMER" images push "$WORK/big.tar" --registry "127.0.0.1:$PORT" --insecure-http --quiet --retagged-out "$WORK/retagged.txt" 2>"$WORK/time.txt"
RSS_KB=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$WORK/time.txt")
BIG_SECONDS=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORK/time.txt")

c1=$(echo "${C_FIRST[@]}" | median); s1=$(echo "${S_FIRST[@]}" | median)
c2=$(echo "${C_AGAIN[@]}" | median); s2=$(echo "${S_AGAIN[@]}" | median)
cat <<EOF

images: 10, $(echo "scale=2; $TOTAL / 1000000000" | bc) GB of blobs; runs: $RUNS; $(nproc) cores
                      charmer      sequential skopeo   ratio
first push (median)   $(printf '%6.2f s' "$c1")     $(printf '%6.2f s' "$s1")            $(echo "scale=1; $s1 / $c1" | bc)x   (charmer $(echo "scale=0; $TOTAL / $c1 / 1000000" | bc) MB/s)
re-push (median)      $(printf '%6.3f s' "$c2")     $(printf '%6.3f s' "$s2")            $(echo "scale=1; $s2 / $c2" | bc)x
2 GiB single layer:   peak RSS $(echo "scale=1; $RSS_KB / 1024" | bc) MiB, $BIG_SECONDS wall
all runs (s): charmer first ${C_FIRST[*]} | skopeo first ${S_FIRST[*]} | charmer again ${C_AGAIN[*]} | skopeo again ${S_AGAIN[*]}
EOF
