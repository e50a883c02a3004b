#!/usr/bin/env bash
# Builds a charmer release into a folder ready to attach to a release page:
#   charmer-<version>-<target-triple>   the stripped release binary
#   <name>_<version>.charm              every charm under charms/, via `charmer publish`
#   index.yaml, SHA256SUMS (+ .sig files with --sign-key)
# SHA256SUMS covers every file. Running it twice gives the same files; adding to an earlier
# release folder keeps its charm versions, and refuses a changed binary or charm that kept
# its version.
#
# usage: scripts/release.sh [--out DIR] [--charms DIR] [--sign-key KEY]
#   --out DIR       release folder (default: dist)
#   --charms DIR    folder of charm source folders (default: charms)
#   --sign-key KEY  sign with this key (from `charmer keygen`; or set CHARMER_SIGN_KEY)
set -euo pipefail

out=dist
charms=charms
sign_key=${CHARMER_SIGN_KEY:-}
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --charms) charms=$2; shift 2 ;;
        --sign-key) sign_key=$2; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

shopt -s nullglob
sources=("$charms"/*/)
if [ ${#sources[@]} -eq 0 ]; then
    echo "error: no charm folders under $charms/" >&2
    exit 1
fi

# The checkout's and cargo's own paths must not end up in the binary (they appear in panic
# locations), so the same sources build the same bytes from any folder.
cargo_home=${CARGO_HOME:-$HOME/.cargo}
export RUSTFLAGS="--remap-path-prefix=$root=charmer --remap-path-prefix=$cargo_home=cargo"
cargo build --release --locked --quiet

bin=target/release/charmer
target=$(rustc -vV | sed -n 's/^host: //p')
version=$("$bin" --version | awk '{print $2}')
name="charmer-$version-$target"

mkdir -p "$out"
if [ -e "$out/$name" ] && ! cmp -s "$bin" "$out/$name"; then
    echo "error: $out/$name exists with other content (hint: released binaries are immutable: bump the version in Cargo.toml)" >&2
    exit 1
fi
if ! cmp -s "$bin" "$out/$name" 2>/dev/null; then
    # A hidden temporary name, renamed into place: never a half-copied binary.
    install -m 0755 "$bin" "$out/.$name.tmp"
    mv "$out/.$name.tmp" "$out/$name"
fi

# publish writes SHA256SUMS over every file in the folder, the binary included.
"$bin" publish "${sources[@]%/}" --out "$out" ${sign_key:+--sign-key "$sign_key"}
(cd "$out" && sha256sum --check --quiet SHA256SUMS)
echo "release $version for $target in $out/"
