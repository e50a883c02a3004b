#!/usr/bin/env bash
# The test command (README): installs what the tests need when it is missing, checks format
# and lints, then runs every test of the crate with the locked dependencies and exits with
# cargo's status.
#
# Needs, beyond Rust (>= the crate's rust-version): Debian packages docker-registry, skopeo,
# apache2-utils (htpasswd) and openssl for the registry tests, minisign for the signature
# interoperability test (publish), bsdutils (`script`, a pseudo-terminal) for the deploy
# question's tests, PyPI kubernetes-validate for the schema checks, PyPI cyclonedx-bom,
# cyclonedx-python-lib and spdx-tools for the SBOM checks, Debian's golang-go for the Go binary
# the SBOM test builds (optional elsewhere: without it that part is SKIPPED, named), and cargo-deny (crates.io) for the
# dependency checks. Installing needs root; when everything is there, it installs and prints
# nothing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

missing=()
need() { # need COMMAND DEBIAN-PACKAGE
    command -v "$1" >/dev/null 2>&1 || missing+=("$2")
}
need docker-registry docker-registry
need skopeo skopeo
need htpasswd apache2-utils
need openssl openssl
need minisign minisign
need script bsdutils # the pseudo-terminal of the Apply? [y/N] tests (Essential on Debian)
need go golang-go   # a Go binary whose build information the SBOM test reads
if ! command -v kubernetes-validate >/dev/null 2>&1 && ! python3 -m pip --version >/dev/null 2>&1; then
    missing+=(python3-pip)
fi

if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "scripts/test.sh: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
        exit 1
    fi
    echo "scripts/test.sh: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v kubernetes-validate >/dev/null 2>&1; then
    echo "scripts/test.sh: installing kubernetes-validate (PyPI)" >&2
    # Debian marks its Python as externally managed; older pips lack the flag.
    python3 -m pip install --quiet --break-system-packages kubernetes-validate 2>/dev/null ||
        python3 -m pip install --quiet kubernetes-validate
    # A pyenv Python only gets a shim for the new command after a rehash.
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
fi

# The official CycloneDX and SPDX libraries check the bills of materials charmer writes
# (tests/it/sbom.rs); pinned, so a new schema release cannot change a test's verdict.
if ! command -v cyclonedx-py >/dev/null 2>&1 || ! command -v pyspdxtools >/dev/null 2>&1; then
    echo "scripts/test.sh: installing cyclonedx-bom, cyclonedx-python-lib and spdx-tools (PyPI)" >&2
    sbom_tools=("cyclonedx-bom==7.5.0" "cyclonedx-python-lib[json-validation]==11.12.0" "spdx-tools==0.8.5")
    python3 -m pip install --quiet --break-system-packages "${sbom_tools[@]}" 2>/dev/null ||
        python3 -m pip install --quiet "${sbom_tools[@]}"
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "scripts/test.sh: cargo not found; install Rust with rustup (the crate needs its rust-version)" >&2
    exit 1
fi

# Style first: a red format or lint check blocks a landing as a failing test does.
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings

# The dependency graph: licences, bans and sources offline (deny.toml); advisories only when
# the advisory database can be fetched, said either way.
if ! cargo deny --version >/dev/null 2>&1; then
    echo "scripts/test.sh: installing cargo-deny (crates.io; a few minutes)" >&2
    cargo install --quiet --locked cargo-deny --version 0.20.2
fi
cargo deny --offline check --hide-inclusion-graph licenses bans sources
if cargo deny fetch db >/dev/null 2>&1; then
    cargo deny --offline check --hide-inclusion-graph advisories
else
    echo "scripts/test.sh: advisories not checked: the advisory database cannot be fetched from here" >&2
fi

# Everything above was installed, so no test may skip for a missing program.
export CHARMER_TEST_REQUIRE_TOOLS=1
# --all-targets runs the library, binary, integration-test and bench targets' tests (the
# crate has no doc tests; running them would end the log on an empty "0 passed" summary).
cargo test --locked --all-targets
