# alexnet_sweep: `make help` lists the targets. Everything runs from the virtual env in .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STORE ?= sqlite:///mlflow.db
PORT ?= 5000
CHROMIUM ?= /usr/bin/chromium
TESTS_WORKERS ?= 2

.DEFAULT_GOAL := help
.PHONY: help install browser postgres demo sweep smoke test test-fast lint bench bench-launchers bench-overhead bench-search search ui server clean clean-results

help: ## Show this list
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -e '.[dev,joblib,ray,slurm,server]'
	touch $@

install: $(VENV)/.installed ## Create .venv and install the package (editable) with every launcher and the test tools

browser: ## Install Debian's chromium for the MLflow UI test if missing (apt-get; sudo when not root)
	@if [ -x "$(CHROMIUM)" ]; then echo "chromium: $(CHROMIUM)"; else \
	  sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y --no-install-recommends chromium; fi

postgres: ## Install Debian's PostgreSQL if missing (apt-get; sudo when not root), for make server and the tests
	@if command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  echo "postgresql: installed"; else \
	  sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y --no-install-recommends postgresql; fi

demo: install ## The user's grid (lr x epochs) on the offline shapes dataset: < 10 min on 2 CPU cores
	$(BIN)/python -m alexnet_sweep -m experiment=demo

sweep: install ## The user's grid on CIFAR-10 at 227x227 (a GPU machine with internet)
	$(BIN)/python -m alexnet_sweep -m optimizer.lr=1e-3,1e-4,5e-5 epochs=5,10

search: install ## A small Optuna study (TPE + ASHA) on offline digits; run it again to continue the same study
	$(BIN)/python -m alexnet_sweep -m experiment=search

smoke: install ## The CI smoke sweep: the same 6-job shape, tiny data, a few minutes on CPU
	$(BIN)/python -m alexnet_sweep -m optimizer.lr=1e-3,1e-4,5e-5 epochs=1,2 experiment=smoke

test: install ## Run the test suite: two pytest workers, a test file each (TESTS_WORKERS=0: one process)
	$(BIN)/python -m pytest -n $(TESTS_WORKERS) --dist loadfile --no-loadscope-reorder

test-fast: install ## The fast tier: no model is trained, under a minute
	$(BIN)/python -m pytest -m "not slow"

lint: install ## Ruff lint and format check
	$(BIN)/ruff check alexnet_sweep hydra_plugins tests
	$(BIN)/ruff format --check alexnet_sweep hydra_plugins tests

bench: install ## Our training path vs the reference notebook's (speed, accuracy): < 5 min on 2 CPU cores
	$(BIN)/python -m alexnet_sweep.bench --out outputs/bench/bench.json

bench-launchers: install ## The smoke grid with 1 vs 2 parallel jobs, and each launcher's per-job start-up: ~5 min
	$(BIN)/python -m alexnet_sweep.bench.launchers --out outputs/bench/launchers.json

bench-overhead: install ## Each short job's set-up and wrap-up with and without model reuse (two 6-job sweeps): ~2 min
	$(BIN)/python -m alexnet_sweep.bench.overhead --out outputs/bench/overhead.json

bench-search: install ## Random search vs TPE vs TPE + ASHA, 3 seeds each, on one offline search space: ~19 min
	$(BIN)/python -m alexnet_sweep.bench.search --out outputs/bench/search.json

ui: install ## MLflow UI of ./mlflow.db on http://127.0.0.1:5000 (loopback only; PORT=... to change)
	$(BIN)/mlflow ui --backend-store-uri $(STORE) --host 127.0.0.1 --port $(PORT)

server: install ## Team tracking server on http://127.0.0.1:5000: runs in PostgreSQL (its own in server/, or MLFLOW_BACKEND_STORE_URI)
	$(BIN)/python -m alexnet_sweep.server --port $(PORT)

clean: ## Remove caches (keeps results and .venv)
	rm -rf .pytest_cache .ruff_cache build *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

clean-results: ## Delete ALL results: the MLflow store (mlflow.db, mlruns/), Hydra outputs (multirun/, outputs/), checkpoints/, reports/
	rm -rf multirun outputs mlruns mlflow.db checkpoints reports
