# The two commands of the README: `make run` starts a node, `make test` runs
# every test. Both install what they need first (scripts/deps.sh).

# Keep build output outside the clone so CI and fresh clones reuse it.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/herald-target
HERALD_DEBUG := $(CARGO_TARGET_DIR)/debug/herald

.PHONY: run test deps venv build lint bench

run: deps
	cargo run --release -p herald-node --bin herald -- serve $(ARGS)

test: deps venv
	cargo test --workspace
	HERALD_BIN=$(HERALD_DEBUG) .venv/bin/python -m pytest -q tests/api

lint: deps
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

bench: deps
	cargo build --release --workspace --all-targets
	cargo bench --workspace --benches

deps:
	@scripts/deps.sh

venv:
	@scripts/venv.sh
