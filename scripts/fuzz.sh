#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser of untrusted bytes (fuzz/fuzz_targets/*.rs) with
# cargo-fuzz (libFuzzer, AddressSanitizer), SECONDS each, FUZZ_JOBS targets at a time
# (default 1; each fuzzer uses one core). Not a test: CI runs the regression tests
# (tests/it/fuzz_regressions.rs) instead. Exits 1 when any fuzzer failed (found a crash).
#
# Needs the nightly toolchain and `cargo install cargo-fuzz`. Seed corpora come from the
# repository's own fixtures (charms, bundles, overlays, the shared Juju files, a published
# release and an image archive made here) and grow in fuzz/corpus/<target> between runs.
# A crash leaves its input in fuzz/artifacts/<target>/: add it to tests/it/fuzz_regressions.rs.
#
# Usage: [FUZZ_JOBS=N] scripts/fuzz.sh [SECONDS] [TARGET...]   (default 600 s, every target)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-600}
shift || true
cd fuzz
targets=("$@")
if ((${#targets[@]} == 0)); then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

# Seeds, written once (a corpus folder that exists is kept as it grew).
seed() { # seed TARGET FILE...
    local dir="corpus/$1"
    shift
    if [[ ! -d $dir ]]; then
        mkdir -p "$dir"
        for f in "$@"; do [[ -f $f ]] && cp "$f" "$dir/$(echo "$f" | tr '/' '_')"; done
    fi
}
root=..
charmer=$root/target/debug/charmer
(cd $root && cargo build --quiet --locked)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for c in $root/charms/*/; do "$charmer" pack "$c" --out "$work/charms" >/dev/null; done
"$charmer" keygen --out "$work/key" >/dev/null
"$charmer" publish $root/charms/* --out "$work/release" --sign-key "$work/key.key" >/dev/null
printf '{"format":"charmer-airgap/1","bundle":"bundle/bundle.yaml","overlays":["bundle/o.yaml"],"charms":["charms/a_1.0.0.charm"],"lock":"bundle.lock","images":["ghcr.io/a/b:1"]}' >"$work/airgap.json"
printf '%s\n' 'Bearer realm="https://auth.example/token",service="registry",scope="repository:a/b:pull"' >"$work/challenge"
printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}' >"$work/manifest.json"
python3 - "$work/images.tar" <<'PY'
import io, json, sys, tarfile, hashlib
blob = b"{}"
digest = hashlib.sha256(blob).hexdigest()
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + digest, "size": 2},
    "layers": []}).encode()
mdigest = hashlib.sha256(manifest).hexdigest()
index = json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": "sha256:" + mdigest, "size": len(manifest),
    "annotations": {"org.opencontainers.image.ref.name": "ghcr.io/a/b:1"}}]}).encode()
with tarfile.open(sys.argv[1], "w") as tar:
    for name, data in [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", index),
                       ("blobs/sha256/" + digest, blob), ("blobs/sha256/" + mdigest, manifest)]:
        info = tarfile.TarInfo(name); info.size = len(data); tar.addfile(info, io.BytesIO(data))
PY
seed charm_archive "$work"/charms/*.charm
seed charm_yaml $root/charms/*/metadata.yaml $root/charms/*/config.yaml $root/../shared/fixtures/juju/*.yaml
seed bundle $root/bundles/*/bundle.yaml $root/bundles/*/overlays/*.yaml $root/../shared/fixtures/juju/*bundle*.yaml
seed published_index "$work/release/index.yaml" "$work/release/SHA256SUMS"
seed minisign "$work/key.pub" "$work/key.key" "$work/release/index.yaml.sig"
seed airgap_contents "$work/airgap.json" $root/tests/it/snapshots/*.yaml
printf '%s' '{"token":"t","expires_in":300}' >"$work/token.json"
seed registry_response "$work/manifest.json" "$work/challenge" "$work/token.json"
seed image_archive "$work/images.tar"
mkdir -p corpus/config_value corpus/image_reference
printf 'backend.port=8080' >corpus/config_value/seed1
printf 'ghcr.io/org/app:1.2@sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a' >corpus/image_reference/seed1

cargo +nightly fuzz build
# The binaries cargo-fuzz built, run directly: `cargo fuzz run` would rebuild whenever the
# sources changed since, and its output hides the fuzzer's own failures.
bin=target/$(rustc +nightly -vV | sed -n 's/^host: //p')/release
# fuzz TARGET: runs one fuzzer; its statistics (and a failure) go to $work/TARGET.summary.
fuzz() {
    local target=$1 log="$work/$1.log" summary="$work/$1.summary"
    mkdir -p "corpus/$target" "artifacts/$target"
    echo "== $target: ${seconds} s" >&2
    if ! "$bin/$target" "corpus/$target" -max_total_time="$seconds" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="artifacts/$target/" \
        >"$log" 2>&1; then
        echo "!! $target: the fuzzer failed; crash inputs in fuzz/artifacts/$target" >"$summary"
    fi
    grep -E '^(stat::number_of_executed_units|stat::new_units_added|SUMMARY)' "$log" \
        >>"$summary" || true
}
for target in "${targets[@]}"; do
    while (($(jobs -rp | wc -l) >= ${FUZZ_JOBS:-1})); do wait -n || true; done
    fuzz "$target" &
done
wait
failed=0
for target in "${targets[@]}"; do
    echo "== $target" >&2
    cat "$work/$target.summary" >&2
    if grep -q '^!!' "$work/$target.summary"; then failed=1; fi
done
exit "$failed"
