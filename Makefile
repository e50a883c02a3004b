# Everyday commands. `make help` lists them. CI runs `bash .ci/run` (= scripts/test.sh).
.PHONY: help test test-all lint deny fmt snapshots bench bench-render bench-push fuzz release

help:
	@echo "make test        cargo test (tests whose programs are missing are SKIPPED, named)"
	@echo "make test-all    what CI runs: install the test programs (root), fmt, clippy, all tests"
	@echo "make lint        cargo fmt --check and clippy -D warnings"
	@echo "make deny        cargo deny: licences, bans, sources (deny.toml); advisories when reachable"
	@echo "make fmt         format the tree (rustfmt.toml)"
	@echo "make snapshots   rewrite tests/it/snapshots from the current renders (review the diff)"
	@echo "make bench       both benchmarks (render vs kustomize, push vs skopeo); not tests"
	@echo "make release VERSION=x.y.z SIGN_KEY=keys/release.key   a signed release in dist/charmer-x.y.z/"
	@echo "make fuzz        every fuzz target for FUZZ_SECONDS (600) each, FUZZ_JOBS (1) at a time (nightly, cargo-fuzz)"

test:
	cargo test --locked --all-targets

test-all:
	bash scripts/test.sh

lint:
	cargo fmt --check
	cargo clippy --locked --all-targets -- -D warnings

deny:
	cargo deny --offline check --hide-inclusion-graph licenses bans sources
	cargo deny fetch db && cargo deny --offline check --hide-inclusion-graph advisories

fmt:
	cargo fmt

release:
	@test -n "$(VERSION)" || { echo "make release VERSION=x.y.z SIGN_KEY=keys/release.key" >&2; exit 2; }
	SIGN_KEY=$(SIGN_KEY) bash scripts/release.sh $(VERSION)

snapshots:
	CHARMER_UPDATE_SNAPSHOTS=1 cargo test --locked --test it charms::rendered_bundles_match_the_reviewed_snapshots
	git diff --stat tests/it/snapshots

bench: bench-render bench-push

bench-render:
	cargo build --release --locked
	python3 scripts/bench-render.py --charmer target/release/charmer

bench-push:
	bash scripts/bench-push.sh

FUZZ_SECONDS ?= 600
FUZZ_JOBS ?= 1
fuzz:
	FUZZ_JOBS=$(FUZZ_JOBS) bash scripts/fuzz.sh $(FUZZ_SECONDS)
