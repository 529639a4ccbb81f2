# The two commands of the README: `make run` starts a node, `make test` runs
# every test. Both install what they need first (scripts/deps.sh).

# Keep build output outside the clone so CI and fresh clones reuse it.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/herald-target
HERALD_DEBUG := $(CARGO_TARGET_DIR)/debug/herald

.PHONY: run test deps venv build lint bench

# One release build command for `run` and `bench`: any other cargo invocation
# (another -p, another target set) rebuilds rocksdb, ~15 minutes on 2 cores.
RELEASE_BUILD := cargo build --release --workspace --all-targets

run: deps
	$(RELEASE_BUILD)
	$(CARGO_TARGET_DIR)/release/herald serve $(ARGS)

test: deps venv
	cargo test --workspace
	HERALD_BIN=$(HERALD_DEBUG) .venv/bin/python -m pytest -q tests/api
	HERALD_BIN=$(HERALD_DEBUG) .venv/bin/python -m pytest -q -c tests/api/pytest.ini --rootdir chaos-tests chaos-tests

lint: deps
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

bench: deps
	$(RELEASE_BUILD)
	cargo bench --workspace --benches

deps:
	@scripts/deps.sh

venv:
	@scripts/venv.sh
