#!/usr/bin/env bash
# Benchmark (not a test): `charmer sbom` of a ~1 GiB image archive, time and peak RSS.
#
# The archive is synthetic: the `full` bundle's images live in public registries, which an
# offline machine cannot pull, so its 1 GB archive cannot be built here. It holds ten images
# of gzip'd random layers (~1 GiB, what a `full` release carries: every byte must be inflated
# and walked) and one image whose gzip'd layer holds real-sized
# package metadata: a dpkg status of 3,000 packages, 3,000 node_modules package.json files and
# 500 Python dist-infos. Memory must not grow with the archive: it is read one layer stream
# per core, keeping only package metadata.
#
# Needs: cargo, python3, /usr/bin/time; ~2.5 GiB of free disk under $BENCH_DIR (default a temp
# dir). Usage: scripts/bench-sbom.sh [RUNS]   (default 3)
set -euo pipefail

RUNS=${1:-3}
source "$(dirname "$0")/bench-lib.sh"
bench_start

echo "making a ~1 GiB image archive..." >&2
make_layout "$WORK/layout" "a=100;b=100;c=100;d=100;e=100;f=100;g=100;h=100;i=100;j=100@base"
python3 - "$WORK/layout" <<'EOF'
import hashlib, io, json, sys, tarfile, zlib
out = sys.argv[1]
def put(data, media):
    h = hashlib.sha256(data).hexdigest()
    open(f"{out}/blobs/sha256/{h}", "wb").write(data)
    return {"mediaType": media, "digest": "sha256:" + h, "size": len(data)}
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
    def add(name, data):
        info = tarfile.TarInfo(name); info.size = len(data); tar.addfile(info, io.BytesIO(data))
    add("etc/os-release", b'ID=debian\nVERSION_ID="12"\n')
    status = "".join(f"Package: pkg{n}\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.{n}-1\nDescription: package {n}\n a longer description line\n\n" for n in range(3000))
    add("var/lib/dpkg/status", status.encode())
    for n in range(3000):
        add(f"app/node_modules/mod{n}/package.json", json.dumps({"name": f"mod{n}", "version": f"1.0.{n}", "license": "MIT"}).encode())
        add(f"app/node_modules/mod{n}/index.js", b"module.exports = 1;\n" * 50)
    for n in range(500):
        add(f"usr/lib/python3/dist-packages/dist{n}-1.0.dist-info/METADATA", f"Metadata-Version: 2.1\nName: dist{n}\nVersion: 1.0.{n}\nLicense: MIT\n\n".encode())
raw = buf.getvalue()
comp = zlib.compressobj(6, zlib.DEFLATED, 31)
layer = put(comp.compress(raw) + comp.flush(), "application/vnd.oci.image.layer.v1.tar+gzip")
config = put(json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]}}).encode(), "application/vnd.oci.image.config.v1+json")
manifest = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": config, "layers": [layer]}).encode(), "application/vnd.oci.image.manifest.v1+json")
manifest["annotations"] = {"org.opencontainers.image.ref.name": "bench.example/bench/packages:1.0"}
index = json.load(open(f"{out}/index.json"))
index["manifests"].append(manifest)
json.dump(index, open(f"{out}/index.json", "w"))
EOF
(cd "$WORK/layout" && tar -cf "$WORK/full.tar" oci-layout index.json blobs)
rm -rf "$WORK/layout"
echo "archive: $(($(stat -c %s "$WORK/full.tar") >> 20)) MiB" >&2

times=() peaks=()
for run in $(seq "$RUNS"); do
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$CHARMER" sbom "$WORK/full.tar" --out "$WORK/bom.json"
  read -r seconds kib < "$WORK/time"
  times+=("$seconds") peaks+=("$kib")
  echo "run $run: ${seconds} s, peak RSS $((kib / 1024)) MiB" >&2
done
packages=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sum(len(c.get("components", [])) for c in d["components"]))' "$WORK/bom.json")
echo "packages found: $packages"
echo "sbom of $(($(stat -c %s "$WORK/full.tar") >> 20)) MiB: median $(echo "${times[*]}" | median) s (${times[*]}), peak RSS median $(( $(echo "${peaks[*]}" | median | cut -d. -f1) / 1024 )) MiB"
