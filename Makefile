# `make train` and `make test` set up .venv on first use (torch 2.11 + torchaudio 2.11, CPU or CUDA).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: train test test-all lint ui clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

train: $(STAMP)  ## train the default experiment (override with EXPERIMENT=... ARGS="key=value ...")
	$(PY) -m speechcompress.cli corpus fetch || true  # real recordings, once; without apt: espeak-ng alone
	$(PY) train.py +experiment=$(or $(EXPERIMENT),rnnoise) $(ARGS)

# pytest-xdist processes for `make test`, one torch thread each (2 cores here)
TEST_WORKERS ?= 2

test: $(STAMP)  ## the default test suite (what CI runs), in TEST_WORKERS processes; prints the 15 slowest
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=15 $(ARGS)

test-all: $(STAMP)  ## also the slow tests: infrastructure re-checks (sweep launchers, SLURM, a real MLflow server, SIGTERM) and full recipe runs
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=15 -m "" $(ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .

ui: $(STAMP)  ## MLflow UI on http://127.0.0.1:5000 (open the link a run's summary prints: its training runs, the project's view)
	@echo "open the link a run's summary printed, http://127.0.0.1:5000/#/experiments/ID/runs?workflowType=machine_learning&viewStateShareKey=speechcompress"
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///experiments/mlflow.db

clean-venv:
	rm -rf $(VENV)
