# Shared by the benchmark scripts (sourced; not run alone). Sets $ROOT (the repository) and
# $WORK (a scratch folder: $BENCH_DIR, else a new temp dir, removed on exit).
# Provides: bench_start, make_layout, registry_start / registry_stop_all, free_port, now,
# median, timed.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${BENCH_DIR:-$(mktemp -d /tmp/charmer-bench.XXXXXX)}
mkdir -p "$WORK"

# bench_start: builds the release binary ($CHARMER); on exit, stops the registries and
# removes $WORK unless it is $BENCH_DIR.
bench_start() {
  trap bench_cleanup EXIT
  echo "building charmer (release)..." >&2
  (cd "$ROOT" && cargo build --release --quiet)
  CHARMER="$ROOT/target/release/charmer"
}
bench_cleanup() {
  registry_stop_all
  [ -n "${BENCH_DIR:-}" ] || rm -rf "$WORK"
}

# make_layout DIR SPEC: writes an OCI image layout; SPEC is "name[:tag]=layer,layer;..." per
# image (tag 1.0 by default), each layer "size_mib" or "size_mib@key": layers with the same
# key are one layer shared by those images. Each layer is a tar holding one random file,
# gzip'd with stored blocks (already compressed, as real layers are). Images are named
# bench.example/bench/name:tag.
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
names = []; seed = 0; shared = {}
for image in spec.split(";"):
    name, sizes = image.split("=", 1)
    if ":" not in name: name += ":1.0"
    layers, diffs = [], []
    for item in sizes.split(","):
        mib, _, key = item.partition("@")
        if key and key in shared: d, diff = shared[key]
        else:
            seed += 1; d, diff = layer(seed, int(mib))
            if key: shared[key] = (d, diff)
        layers.append(d); diffs.append(diff)
    config = put(json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diffs}}).encode())
    config["mediaType"] = "application/vnd.oci.image.config.v1+json"
    manifest = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": config, "layers": layers}).encode())
    manifest["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
    manifest["annotations"] = {"org.opencontainers.image.ref.name": f"bench.example/bench/{name}"}
    names.append(manifest)
json.dump({"schemaVersion": 2, "manifests": names}, open(f"{out}/index.json", "w"))
open(f"{out}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
EOF
}


free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

declare -gA REGISTRY_PIDS=()
# registry_start NAME PORT [keep]: (re)starts a docker-registry on 127.0.0.1:PORT with its
# storage in $WORK/NAME (emptied first unless "keep").
registry_start() {
  local name=$1 port=$2 keep=${3:-}
  local pid=${REGISTRY_PIDS[$name]:-}
  if [ -n "$pid" ]; then kill "$pid"; wait "$pid" 2>/dev/null || true; fi
  [ "$keep" = keep ] || rm -rf "$WORK/$name"
  mkdir -p "$WORK/$name"
  cat > "$WORK/$name.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $WORK/$name}}
http: {addr: 127.0.0.1:$port}
EOF
  docker-registry serve "$WORK/$name.yml" >"$WORK/$name.log" 2>&1 &
  REGISTRY_PIDS[$name]=$!
  for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/"$port") 2>/dev/null && return; sleep 0.05; done
  echo "registry $name did not start" >&2; exit 1
}
registry_stop_all() {
  local pid
  for pid in "${REGISTRY_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  REGISTRY_PIDS=()
}
now() { date +%s.%N; }
median() { tr ' ' '\n' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
timed() { local t0; t0=$(now); "$@" >/dev/null; echo "$(now) - $t0" | bc; }
