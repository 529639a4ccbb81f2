# The two commands of the README: `make run` starts a node, `make test` runs
# every test. Both install what they need first (scripts/deps.sh).

# Keep build output outside the clone so CI and fresh clones reuse it.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/herald-target
HERALD_DEBUG := $(CARGO_TARGET_DIR)/debug/herald

.PHONY: run test deps venv build lint bench

# One release build command for `run` and `bench`: any other cargo invocation
# (another -p, another target set) rebuilds rocksdb, ~15 minutes on 2 cores.
# The simulator (sim/) is left out: it needs tokio's test-util (a paused
# clock), which the production binary should not carry.
RELEASE_BUILD := cargo build --release --workspace --exclude herald-sim --all-targets
# Seeds of the deterministic simulator `make test` runs (a few minutes).
SIM_SEEDS ?= 1000

run: deps
	$(RELEASE_BUILD)
	$(CARGO_TARGET_DIR)/release/herald serve $(ARGS)

# `canaries` compiles the simulator's planted bugs (dormant unless a
# canary test switches one on) so sim/tests/canaries.rs can prove they are
# caught.
test: deps venv
	cargo test --workspace --features herald-sim/canaries
	$(CARGO_TARGET_DIR)/debug/sim --seeds $(SIM_SEEDS)
	HERALD_BIN=$(HERALD_DEBUG) .venv/bin/python -m pytest -q tests/api
	HERALD_BIN=$(HERALD_DEBUG) .venv/bin/python -m pytest -q -c tests/api/pytest.ini --rootdir chaos-tests chaos-tests

lint: deps
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

bench: deps
	@scripts/bench-deps.sh
	$(RELEASE_BUILD)
	cargo bench --workspace --exclude herald-sim --benches

deps:
	@scripts/deps.sh

venv:
	@scripts/venv.sh
