#!/usr/bin/env python3
"""Benchmark: `charmer render --registry` vs `kubectl kustomize` with its `images:` transformer.

Generates bundles of N applications, each its own charm with its own image, in two shapes:
`three` (a Deployment, a Service and a ConfigMap) and `four` (the same plus a ServiceAccount
the Deployment runs as), renders them with charmer (relocating every image to a private
registry), and runs `kubectl kustomize` on an equivalent kustomization: the same manifests
rendered without a registry, plus one `images:` entry per image doing the same relocation.
Reports median wall time over several runs, the ratio, and charmer's peak RSS.

Usage: scripts/bench-render.py [--runs 5] [--sizes 7,100,500] [--shapes three,four]
                               [--charmer target/release/charmer]
This is a benchmark, not a test: it asserts nothing and never runs in CI.
"""
import argparse, os, shutil, statistics, subprocess, sys, tempfile, time

SERVICE_ACCOUNT = """apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ app }}
automountServiceAccountToken: false
---
"""

CHARM_TEMPLATE = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ app }}
spec:
  replicas: {{ config.replicas }}
  selector:
    matchLabels: {{ selector_labels | tojson }}
  template:
    metadata:
      labels: {{ labels | tojson }}
    spec:
      serviceAccountName: {{ app }}
      containers:
        - name: main
          image: {{ images.image }}
          ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata:
  name: {{ app }}
spec:
  selector: {{ selector_labels | tojson }}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ app }}-config
data:
  LOG_LEVEL: {{ config.log_level | tojson }}
"""


def make_bundle(root, n, shape):
    charms = os.path.join(root, "charms")
    for i in range(n):
        d = os.path.join(charms, f"svc{i}")
        os.makedirs(os.path.join(d, "templates"))
        with open(os.path.join(d, "metadata.yaml"), "w") as f:
            f.write(f"name: svc{i}\nsummary: generated service {i}\nresources:\n  image:\n    type: oci-image\n"
                    f"    upstream-source: quay.io/example/team{i % 13}/svc{i}:1.{i}.0\ncontainers:\n  main: {{resource: image}}\n")
        with open(os.path.join(d, "manifest.yaml"), "w") as f:
            f.write("bases: [{name: ubuntu, channel: '22.04', architectures: [amd64]}]\n")
        with open(os.path.join(d, "config.yaml"), "w") as f:
            f.write("options:\n  replicas: {type: int, default: 1}\n  log_level: {type: string, default: info, enum: [debug, info, warn]}\n")
        with open(os.path.join(d, "version"), "w") as f:
            f.write("1.0.0\n")
        with open(os.path.join(d, "templates", "app.yaml"), "w") as f:
            if shape == "four":
                f.write(SERVICE_ACCOUNT + CHARM_TEMPLATE)
            else:
                f.write(CHARM_TEMPLATE.replace("      serviceAccountName: {{ app }}\n", ""))
    with open(os.path.join(root, "bundle.yaml"), "w") as f:
        f.write(f"bundle: kubernetes\nname: bench{n}\napplications:\n")
        for i in range(n):
            f.write(f"  svc{i}:\n    charm: svc{i}\n    scale: 2\n    options: {{replicas: 2}}\n")


def timed(cmd, runs):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def peak_rss_mib(cmd):
    r = subprocess.run(["/usr/bin/time", "-v"] + cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in r.stderr.splitlines():
        if "Maximum resident set size" in line:
            return int(line.split()[-1]) / 1024
    return float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sizes", default="7,100,500")
    ap.add_argument("--shapes", default="three,four")
    ap.add_argument("--charmer", default="target/release/charmer")
    args = ap.parse_args()
    charmer = os.path.abspath(args.charmer)
    kubectl = shutil.which("kubectl")
    registry = "10.0.0.5:5000"
    print(f"{'shape':>6} {'apps':>5} {'charmer s':>10} {'kustomize s':>12} {'ratio':>8} {'charmer RSS MiB':>16}")
    for shape, n in [(shape, int(s)) for shape in args.shapes.split(",") for s in args.sizes.split(",")]:
        with tempfile.TemporaryDirectory() as root:
            make_bundle(root, n, shape)
            out = os.path.join(root, "out")
            cmd = [charmer, "render", os.path.join(root, "bundle.yaml"), "--registry", registry, "--out", out]
            c = timed(cmd, args.runs)
            rss = peak_rss_mib(cmd)
            k = float("nan")
            if kubectl:
                base = os.path.join(root, "kustomize")
                subprocess.run([charmer, "render", os.path.join(root, "bundle.yaml"), "--out", base], check=True, stdout=subprocess.DEVNULL)
                with open(os.path.join(base, "kustomization.yaml"), "w") as f:
                    f.write("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n")
                    for i in range(n):
                        f.write(f"  - svc{i}.yaml\n")
                    f.write("images:\n")
                    for i in range(n):
                        f.write(f"  - name: quay.io/example/team{i % 13}/svc{i}\n    newName: {registry}/example/team{i % 13}/svc{i}\n")
                k = timed([kubectl, "kustomize", base], max(1, args.runs if n < 500 else 1))
            ratio = k / c if c else float("nan")
            print(f"{shape:>6} {n:>5} {c:>10.4f} {k:>12.3f} {ratio:>7.0f}x {rss:>16.1f}")
            sys.stdout.flush()
    if not kubectl:
        print("kubectl is not installed: kustomize column not measured")


if __name__ == "__main__":
    main()
