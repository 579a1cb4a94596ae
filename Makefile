# Entry points: build, test, lint, demo, bench. `.ci/run` calls `make test`.
CARGO ?= cargo

.PHONY: all build deps test lint fmt demo bench bench-compare docs clean

all: build

deps:
	./scripts/install-deps.sh

build: deps
	$(CARGO) build --release --bins

# The whole test suite: unit, property and end-to-end tests, and those of the bench's report
# script. The end-to-end tests run the real binaries, so they are built first in the same
# profile.
test: deps
	python3 -m unittest discover -s scripts -p '*_test.py'
	$(CARGO) build --bins
	$(CARGO) test --workspace --no-fail-fast

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	./scripts/check-deps.sh

fmt:
	$(CARGO) fmt --all

# Start a server on a temporary datastore, back up a directory, list, restore, compare.
demo: build
	./scripts/demo.sh $(DEMO_SOURCE)

bench: build
	./scripts/bench.sh

# This project next to restic and borg on the same corpora (docs/BENCHMARKS.md). The scripts
# run target/release, so the build ignores CARGO_TARGET_DIR. BENCH_SCALE=0.05 for a quick run;
# BENCH_COMPARE_ARGS="--out FILE" also writes the report to FILE.
bench-compare: deps
	env -u CARGO_TARGET_DIR $(CARGO) build --release --bins
	./scripts/bench-compare.sh $(BENCH_COMPARE_ARGS)

# The OpenAPI document, generated from the route and privilege tables.
docs:
	$(CARGO) run -q -p backup-server -- openapi > docs/openapi.json

clean:
	$(CARGO) clean
