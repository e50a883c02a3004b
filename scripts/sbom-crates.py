#!/usr/bin/env python3
"""CycloneDX 1.6 JSON SBOM of charmer itself: every crate the release binary is built from.

    python3 scripts/sbom-crates.py --version X.Y.Z [--target TRIPLE] > charmer-X.Y.Z.cdx.json

Reads `cargo metadata` (offline, locked: the crates' licenses and the dependency graph for the
target) and `Cargo.lock` (the registry checksums). Lists the crates reachable from charmer
through normal and build dependencies (build scripts and proc macros run at build time, so
they are part of the supply chain); dev-dependencies are left out, they are not in the binary.
Deterministic: the serial number is derived from the content and the timestamp is
SOURCE_DATE_EPOCH's, so the same commit gives the same file.

Written by hand (standard library only) because the tools that do this (cargo-cyclonedx) are a
separate install and a network-free release must not depend on one.
"""

import argparse
import datetime
import hashlib
import json
import os
import subprocess
import sys
import tomllib
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cargo_metadata(target):
    args = ["cargo", "metadata", "--format-version", "1", "--locked", "--offline"]
    if target:
        args += ["--filter-platform", target]
    out = subprocess.run(args, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def lock_checksums():
    with open(os.path.join(ROOT, "Cargo.lock"), "rb") as f:
        lock = tomllib.load(f)
    return {(p["name"], p["version"]): p.get("checksum") for p in lock.get("package", [])}


def reachable(metadata):
    """Package ids reachable from the root through normal and build dependencies."""
    nodes = {n["id"]: n for n in metadata["resolve"]["nodes"]}
    root = metadata["resolve"]["root"]
    seen, stack = {root}, [root]
    while stack:
        for dep in nodes[stack.pop()]["deps"]:
            kinds = {k["kind"] for k in dep["dep_kinds"]}
            if kinds & {None, "build"} and dep["pkg"] not in seen:
                seen.add(dep["pkg"])
                stack.append(dep["pkg"])
    return root, seen, nodes


def purl(package):
    return f"pkg:cargo/{package['name']}@{package['version']}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", required=True, help="the release version")
    parser.add_argument("--target", help="target triple whose dependencies count")
    args = parser.parse_args()

    metadata = cargo_metadata(args.target)
    checksums = lock_checksums()
    root, ids, nodes = reachable(metadata)
    packages = {p["id"]: p for p in metadata["packages"]}
    ref = {pid: purl(packages[pid]) for pid in ids}

    components = []
    missing = []
    for pid in sorted(ids - {root}, key=lambda i: (packages[i]["name"], packages[i]["version"])):
        p = packages[pid]
        component = {
            "type": "library",
            "bom-ref": ref[pid],
            "name": p["name"],
            "version": p["version"],
            "purl": ref[pid],
        }
        if p.get("license"):
            component["licenses"] = [{"expression": p["license"]}]
        else:
            missing.append(f"{p['name']} {p['version']}: no license in its Cargo.toml")
        checksum = checksums.get((p["name"], p["version"]))
        if checksum:
            component["hashes"] = [{"alg": "SHA-256", "content": checksum}]
        elif p.get("source"):
            missing.append(f"{p['name']} {p['version']}: no checksum in Cargo.lock")
        components.append(component)
    if missing:
        sys.exit("sbom-crates: " + "; ".join(missing))

    me = packages[root]
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    bom = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "version": 1,
        "metadata": {
            "timestamp": datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
            .strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {"components": [{"type": "application", "name": "scripts/sbom-crates.py"}]},
            "component": {
                "type": "application",
                "bom-ref": ref[root],
                "name": me["name"],
                "version": args.version,
                "purl": f"pkg:cargo/{me['name']}@{args.version}",
                "licenses": [{"expression": me["license"]}],
            },
        },
        "components": components,
        "dependencies": [
            {
                "ref": ref[pid],
                "dependsOn": sorted(
                    ref[d["pkg"]]
                    for d in nodes[pid]["deps"]
                    if d["pkg"] in ids and {k["kind"] for k in d["dep_kinds"]} & {None, "build"}
                ),
            }
            for pid in sorted(ids, key=lambda i: ref[i])
        ],
    }
    text = json.dumps(bom, indent=2, sort_keys=True)
    # A serial number that changes exactly when the content does.
    serial = uuid.UUID(bytes=hashlib.sha256(text.encode()).digest()[:16], version=4)
    bom["serialNumber"] = f"urn:uuid:{serial}"
    print(json.dumps(bom, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
