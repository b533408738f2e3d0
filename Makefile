# One-command set-up: `make demo` and `make test` each create .venv and install on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?= --durations=25

# Offline hygiene (countclip/offline.py says why): no update checks, no hub retries, no telemetry.
export NO_ALBUMENTATIONS_UPDATE := 1
export HF_HUB_OFFLINE := 1
export WANDB_MODE := disabled
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test test-slow test-fast bench lint format clean

setup: $(STAMP)

# Re-runs only when pyproject.toml changes. torch/torchvision come from local wheels via plain
# pip. img2dataset pulls the `dataclasses` backport, which shadows the standard library and
# breaks Prefect's server: remove it, then prove the stack imports and a flow runs.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,dask,ray]'
	$(PY) -m pip uninstall -y -q dataclasses 2>/dev/null || true
	$(PY) scripts/selfcheck.py
	touch $(STAMP)

demo: setup
	$(VENV)/bin/countclip demo --config configs/demo.yaml $(DEMO_ARGS)

# Every test with every real component, on every core (pytest-xdist: most tests wait on
# servers and child processes). test-slow: the rebuild of the shipped baseline and the longer
# variants of fault drills make test already runs once; CI (.ci/run) runs both. xdist's own
# order (files with most tests first) stays: handing out the longest files first ran the heavy
# end-to-end tests side by side: 22 min against 16.7 on 2 quiet cores (one run each).
# One OpenMP thread per torch process (unless OMP_NUM_THREADS is set): the two workers' child
# processes then do not spin against each other on 2 cores (14.9 min against 16.7, one quiet run
# each). test-slow keeps torch's default: it rebuilds the shipped baseline as it was made.
TEST_WORKERS ?= auto
test: setup
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not rebuild and not long" $(PYTEST_ARGS)

test-slow: setup
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "rebuild or long" $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -n $(TEST_WORKERS) -m "not slow and not integration" $(PYTEST_ARGS)

# Every speed benchmark, then one table of every ratio and its goal (benchmarks/ratios.py);
# BENCH_ARGS=--smoke runs each at tiny sizes in seconds (what tests/test_benchmarks.py runs).
BENCH_ARGS ?=
bench: setup
	$(PY) benchmarks/ratios.py $(BENCH_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf data .pytest_cache
