# `make train` and `make test` set up .venv on first use (torch pinned first: the CPU build on disk,
# not a multi-GB CUDA download), then run. Later calls reuse the environment.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PRESET ?= advanced
ARGS   ?=
# Where pip looks for torch: empty = the default index (PyPI serves Linux the CUDA build, several GB); a user
# without a GPU passes PyTorch's CPU wheel index (README, Quickstart).
TORCH_INDEX ?=
SHARED := $(abspath ../shared/data/cifar-10-batches-py)
# Use the copy beside the checkout when there is one; otherwise cifarlab downloads to ~/.cache/cifarlab.
export CIFAR10_DIR ?= $(if $(wildcard $(SHARED)/test_batch),$(SHARED),)

.PHONY: setup train test lint format bench results report clean
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),)
	$(PY) -m pip install -q -e '.[test,lint]'
	touch $@

train: setup
	$(VENV)/bin/cifarlab train $(PRESET) $(ARGS)

# Every core busy: one test file per worker (a module's fixtures are built once), one torch thread each, as
# two threads a worker would fight over the cores. `pytest` alone runs the same tests one at a time.
test: setup
	OMP_NUM_THREADS=1 $(PY) -m pytest -n auto --dist loadfile $(ARGS)

# ruff (lint + format check) and the import-linter layers contract (pyproject.toml): every import points down.
lint: setup
	$(VENV)/bin/ruff check src tests tools
	$(VENV)/bin/ruff format --check src tests tools
	$(VENV)/bin/lint-imports

format: setup
	$(VENV)/bin/ruff check --fix src tests tools
	$(VENV)/bin/ruff format src tests tools

# Accuracy/speed benchmarks (long): 3 seeds per stage (and the two steps between: stage 2's net with stage 3's
# training, stage 3 before its robustness training), then the README table from their JSON.
bench: setup
	for p in baseline intermediate intermediate-techniques advanced-clean advanced; do \
	  $(VENV)/bin/cifarlab bench $$p --seeds 3 --out results/runs && cp results/runs/$$p.bench.json results/ || exit 1; \
	done
	$(MAKE) results

results: setup
	$(PY) tools/readme_table.py README.md --all docs/experiments.md results/*.bench.json $(wildcard results/avx2/*.bench.json) \
	  $(wildcard results/amx/*.bench.json) $(wildcard results/amx_bf16/*.bench.json) $(wildcard results/xeon/*.bench.json) $(wildcard results/h100/*.bench.json) \
	  $(wildcard results/h200/*.bench.json) $(wildcard results/robust/three_seeds/advanced*.bench.json) \
	  $(wildcard results/checkpoint_rule/*.bench.json)

# The comparison report (evaluation, McNemar, robustness, calibration) of the runs in $(RUNS) (runs already
# evaluated are not evaluated again). The committed one: make report RUNS=results/stages
# ABLATION=results/levers/ablation.json (the stage runs' records, without checkpoints; the ablation of the preset).
RUNS     ?= results/runs
ABLATION ?= $(RUNS)/ablation/ablation.json
report: setup
	$(VENV)/bin/cifarlab compare $(patsubst %/summary.json,%,$(wildcard $(RUNS)/*/summary.json)) --out results/report \
	  $(if $(wildcard $(ABLATION)),--ablation $(ABLATION),)

clean:
	rm -rf $(VENV) runs
