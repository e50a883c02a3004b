#!/usr/bin/env bash
# A release of charmer, as the connected side downloads it and carries it across the air gap:
#
#   scripts/release.sh VERSION            (or: make release VERSION=x.y.z SIGN_KEY=keys/release.key)
#
# writes OUT (default dist/charmer-VERSION/):
#   charmer-VERSION-<target>            the optimised binary, one per target built
#   completions/                        bash, zsh and fish completions
#   man/                                man pages (charmer.1 and one per subcommand)
#   charms/                             the seven charms as .charm archives with index.yaml,
#                                       SHA256SUMS and signatures (`charmer publish`)
#   charmer-VERSION.cdx.json            CycloneDX SBOM of charmer itself (every crate)
#   CHANGELOG.md, compatibility.md
#   SHA256SUMS, SHA256SUMS.sig          over every file above, signed with SIGN_KEY (minisign
#                                       format: `minisign -Vm SHA256SUMS -x SHA256SUMS.sig`)
#
# Environment: SIGN_KEY (required; `charmer keygen --out keys/release`), OUT, and for the
# tests RELEASE_BINARY (use this already-built binary instead of building; it counts as the
# host target) and RELEASE_ALLOW_DIRTY=1 (allow uncommitted changes). The build is
# reproducible: SOURCE_DATE_EPOCH is the commit's time, so the same commit gives the same bytes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() { echo "release: $*" >&2; exit 1; }

version=${1:-${VERSION:-}}
[[ -n $version ]] || die "usage: scripts/release.sh VERSION (SIGN_KEY=keys/release.key)"
[[ -n ${SIGN_KEY:-} ]] || die "SIGN_KEY is not set: the release is signed (make one with: charmer keygen --out keys/release)"
[[ -f $SIGN_KEY ]] || die "SIGN_KEY $SIGN_KEY: no such file"

crate_version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
[[ $version == "$crate_version" ]] ||
    die "VERSION $version is not the crate's version $crate_version: set version in Cargo.toml first, so --version tells the truth"
grep -q "^## \[$version\]" CHANGELOG.md ||
    die "CHANGELOG.md has no '## [$version]' section: say what this release changes"
if [[ ${RELEASE_ALLOW_DIRTY:-} != 1 ]] && [[ -n $(git status --porcelain --untracked-files=no) ]]; then
    die "the work tree has uncommitted changes: a release is built from a commit (git stash, or commit them)"
fi

out=${OUT:-dist/charmer-$version}
rm -rf "$out"
mkdir -p "$out"
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)
export SOURCE_DATE_EPOCH

# The checkout's and cargo's own paths must not end up in the binary (they appear in panic
# locations), so the same commit builds the same bytes from any folder.
root=$(pwd)
export RUSTFLAGS="--remap-path-prefix=$root=charmer --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=cargo"

host=$(rustc -vV | sed -n 's/^host: //p')
built=()
skipped=()
if [[ -n ${RELEASE_BINARY:-} ]]; then
    install -m 0755 "$RELEASE_BINARY" "$out/charmer-$version-$host"
    built+=("$host (given binary)")
else
    # The host first; then aarch64 and a static musl build when their toolchains are here.
    targets=("$host")
    installed=$(rustup target list --installed 2>/dev/null || true)
    for extra in aarch64-unknown-linux-gnu x86_64-unknown-linux-musl; do
        [[ $extra == "$host" ]] && continue
        if ! grep -qx "$extra" <<<"$installed"; then
            skipped+=("$extra (rustup target not installed)")
        elif [[ $extra == aarch64-* ]] && ! command -v aarch64-linux-gnu-gcc >/dev/null; then
            skipped+=("$extra (no aarch64-linux-gnu-gcc linker)")
        elif [[ $extra == *-musl ]] && ! command -v musl-gcc >/dev/null; then
            skipped+=("$extra (no musl-gcc for the C parts of aws-lc-rs)")
        else
            targets+=("$extra")
        fi
    done
    for target in "${targets[@]}"; do
        linker_env=()
        if [[ $target == aarch64-unknown-linux-gnu ]]; then
            linker_env=(CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc)
        fi
        env "${linker_env[@]}" cargo build --release --locked --target "$target"
        install -m 0755 "target/$target/release/charmer" "$out/charmer-$version-$target"
        built+=("$target")
    done
fi
binary="$out/charmer-$version-$host"

# What the binary says of itself must be this release.
"$binary" --version | grep -q "^charmer $version (commit " ||
    die "$binary --version says '$("$binary" --version)', not $version"

mkdir -p "$out/completions"
"$binary" completions bash >"$out/completions/charmer.bash"
"$binary" completions zsh >"$out/completions/_charmer"
"$binary" completions fish >"$out/completions/charmer.fish"
"$binary" man --out "$out/man" >/dev/null
"$binary" publish charms/* --out "$out/charms" --sign-key "$SIGN_KEY" >/dev/null
python3 scripts/sbom-crates.py --version "$version" --target "$host" >"$out/charmer-$version.cdx.json"
cp CHANGELOG.md "$out/CHANGELOG.md"
cp docs/compatibility.md "$out/compatibility.md"
"$binary" checksum "$out" --sign-key "$SIGN_KEY"

# Check it as a user will, before anyone downloads it.
public=${SIGN_KEY%.key}.pub
if [[ -f $public ]]; then
    "$binary" verify "$out" --key "$public" >/dev/null
    if command -v minisign >/dev/null; then
        minisign -q -Vm "$out/SHA256SUMS" -x "$out/SHA256SUMS.sig" -p "$public"
    fi
    echo "release: verified with $public"
fi

# The oldest glibc the binary runs on: the newest symbol version it needs.
if command -v objdump >/dev/null; then
    glibc=$(objdump -T "$binary" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1 || true)
    needs=${glibc:-no glibc (static)}
else
    needs="an unknown glibc (install binutils for objdump to tell)"
fi
echo "release: $out"
echo "release: built ${built[*]}"
for s in "${skipped[@]}"; do echo "release: not built: $s"; done
echo "release: $binary needs $needs"
