# vadflow - `make help` lists the targets. Every target creates .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# real data: $VADFLOW_DATA, else ../shared/datasets when it exists (CI and developers)
export VADFLOW_DATA ?= $(shell [ -d ../shared/datasets ] && cd ../shared/datasets && pwd)

.PHONY: help install run test test-all bench bench-score table-stgnf reproduce-table clean

help: ## list every target
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv with the pinned dependencies

run: $(STAMP) ## train the quickstart (MSG-Flow + trajectory on synthetic data, ~30 s), print its AUC and its score-over-time PNG
	$(BIN)/vadflow-train experiment=quickstart

test: $(STAMP) ## fast tests (real-data tests run too when the data root exists)
	$(BIN)/python -m pytest -m "not slow" -rs

test-all: $(STAMP) ## every test, slow real-data training included
	$(BIN)/python -m pytest -rs

bench: $(STAMP) ## speed and memory of STG-NF on HR-ShanghaiTech (needs the data root), every method's throughput, vadflow-score on 1 h of tracks
	$(BIN)/python -m vadflow.bench

bench-epochs: $(STAMP) ## what trajectory=flow adds to STG-NF's training epoch: 6 pairs of whole epochs, alternating, each in a fresh process (needs the data root)
	$(BIN)/python -m vadflow.bench --epoch-pairs 6 --methods stgnf stgnf+trajectory

bench-score: $(STAMP) ## vadflow-score on 1 hour of synthetic tracks (25 fps, 5 people per frame); no data root needed
	$(BIN)/python -m vadflow.bench --score-only

table-stgnf: $(STAMP) ## STG-NF, 3 seeds x HR-ShanghaiTech, HR-Avenue, PoseLift: imputed vs zero joints, official quirks
	$(BIN)/python -m vadflow.reproduce --spec experiments/stgnf_real.yaml
	$(BIN)/python -m vadflow.reproduce --spec experiments/stgnf_quirks.yaml

reproduce-table: $(STAMP) ## run the missing/stale cells of experiments/table.yaml, write experiments/results/table.{md,csv,png}
	$(BIN)/python -m vadflow.reproduce

clean: ## remove caches and run directories (keeps .venv)
	rm -rf .cache runs .pytest_cache
